"""liteparity: find, explain and fix the accuracy gap between a TensorFlow/Keras model and its
TensorFlow Lite (LiteRT) conversion.

Importing this package is cheap: names load on first use (PEP 562), so a worker process that
imports ``liteparity.runtime.worker`` does not pay for the rest, and TensorFlow is imported only
when a model is loaded or converted.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name → the module that defines it.
_EXPORTS = {
    "RECIPES": "convert.recipes",
    "CandidateResult": "results.check",
    "CheckOptions": "specs",
    "CheckResult": "results.check",
    "ConversionError": "errors",
    "DataError": "errors",
    "DataSpec": "specs",
    "Finding": "results.check",
    "FixOptions": "specs",
    "FixResult": "results.fix",
    "InterpreterError": "errors",
    "LegacySettings": "convert.recipes",
    "LiteModel": "runtime.litemodel",
    "LiteparityError": "errors",
    "LocateOptions": "specs",
    "LocateResult": "results.locate",
    "Metric": "results.check",
    "ModelError": "errors",
    "ModelSpec": "specs",
    "QParams": "qparams",
    "Recipe": "convert.recipes",
    "Severity": "results.check",
    "UsageError": "errors",
    "check": "measure.check",
    "dequantize": "qparams",
    "explain": "diagnose.explain",
    "fix": "repair.fix",
    "from_mean_std": "qparams",
    "from_min_max": "qparams",
    "locate": "layerwise.locate",
    "quantize": "qparams",
}

__all__ = [
    "RECIPES",
    "CandidateResult",
    "CheckOptions",
    "CheckResult",
    "ConversionError",
    "DataError",
    "DataSpec",
    "Finding",
    "FixOptions",
    "FixResult",
    "InterpreterError",
    "LegacySettings",
    "LiteModel",
    "LiteparityError",
    "LocateOptions",
    "LocateResult",
    "Metric",
    "ModelError",
    "ModelSpec",
    "QParams",
    "Recipe",
    "Severity",
    "UsageError",
    "__version__",
    "check",
    "dequantize",
    "explain",
    "fix",
    "from_mean_std",
    "from_min_max",
    "locate",
    "quantize",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'liteparity' has no attribute {name!r}")


if TYPE_CHECKING:
    from liteparity.convert.recipes import RECIPES, LegacySettings, Recipe
    from liteparity.diagnose.explain import explain
    from liteparity.errors import (
        ConversionError,
        DataError,
        InterpreterError,
        LiteparityError,
        ModelError,
        UsageError,
    )
    from liteparity.layerwise.locate import locate
    from liteparity.measure.check import check
    from liteparity.qparams import QParams, dequantize, from_mean_std, from_min_max, quantize
    from liteparity.repair.fix import fix
    from liteparity.results.check import CandidateResult, CheckResult, Finding, Metric, Severity
    from liteparity.results.fix import FixResult
    from liteparity.results.locate import LocateResult
    from liteparity.runtime.litemodel import LiteModel
    from liteparity.specs import CheckOptions, DataSpec, FixOptions, LocateOptions, ModelSpec
