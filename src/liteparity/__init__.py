"""liteparity: find, explain and fix the accuracy gap between a TensorFlow/Keras model and its
TensorFlow Lite (LiteRT) conversion.

Importing this package is cheap: names load on first use (PEP 562), so a worker process that
imports ``liteparity.workers`` does not pay for the rest, and TensorFlow is imported only when a
model is loaded or converted.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name → the module that defines it.
_EXPORTS = {
    "RECIPES": "recipes",
    "CandidateResult": "results",
    "CheckResult": "results",
    "ConversionError": "errors",
    "DataError": "errors",
    "Finding": "results",
    "FixResult": "repair",
    "InterpreterError": "errors",
    "LegacySettings": "recipes",
    "LiteModel": "litemodel",
    "LiteparityError": "errors",
    "LocateResult": "per_layer",
    "Metric": "results",
    "ModelError": "errors",
    "QParams": "qparams",
    "Recipe": "recipes",
    "Severity": "results",
    "UsageError": "errors",
    "check": "pipeline",
    "dequantize": "qparams",
    "explain": "explain",
    "fix": "repair",
    "from_mean_std": "qparams",
    "from_min_max": "qparams",
    "locate": "per_layer",
    "quantize": "qparams",
}

__all__ = [
    "RECIPES",
    "CandidateResult",
    "CheckResult",
    "ConversionError",
    "DataError",
    "Finding",
    "FixResult",
    "InterpreterError",
    "LegacySettings",
    "LiteModel",
    "LiteparityError",
    "LocateResult",
    "Metric",
    "ModelError",
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
    from .errors import (
        ConversionError,
        DataError,
        InterpreterError,
        LiteparityError,
        ModelError,
        UsageError,
    )
    from .explain import explain
    from .litemodel import LiteModel
    from .per_layer import LocateResult, locate
    from .pipeline import check
    from .qparams import QParams, dequantize, from_mean_std, from_min_max, quantize
    from .recipes import RECIPES, LegacySettings, Recipe
    from .repair import FixResult, fix
    from .results import CandidateResult, CheckResult, Finding, Metric, Severity
