"""liteparity: find, explain and fix the accuracy gap between a TensorFlow/Keras model and its
TensorFlow Lite (LiteRT) conversion.

Importing this package is cheap: TensorFlow is imported only when a model is loaded or
converted.
"""

from __future__ import annotations

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
from .pipeline import check
from .qparams import QParams, dequantize, from_mean_std, from_min_max, quantize
from .recipes import RECIPES, LegacySettings, Recipe
from .results import CandidateResult, CheckResult, Finding, Metric, Severity

__version__ = "0.1.0"

__all__ = [
    "RECIPES",
    "CandidateResult",
    "CheckResult",
    "ConversionError",
    "DataError",
    "Finding",
    "InterpreterError",
    "LegacySettings",
    "LiteModel",
    "LiteparityError",
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
    "from_mean_std",
    "from_min_max",
    "quantize",
]
