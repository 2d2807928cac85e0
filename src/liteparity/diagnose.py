"""Findings: why a candidate differs from its reference, from measurements only.

Each rule (in ``rules``) reads one candidate's ``Evidence`` (metrics, the model's anatomy,
statistics of its tensors on the evaluation data, the float32 noise floor) and returns
``Finding``s. Rules never look at a recipe's name: a user's own ``.tflite`` is diagnosed the
same way. This module holds the evidence types, the registry and the helpers rules share.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import names, qparams
from .results import CandidateResult, Finding
from .tensors import Anatomy, TensorRecord, TensorStats

#: Ops whose output keeps its input's quantization: they do not set a range of their own.
RANGE_PRESERVING_OPS = frozenset(
    {
        "MAX_POOL_2D",
        "RESHAPE",
        "SQUEEZE",
        "EXPAND_DIMS",
        "CONCATENATION",
        "STRIDED_SLICE",
        "SLICE",
        "PAD",
        "PADV2",
        "TRANSPOSE",
        "GATHER",
        "SPLIT",
        "SPLIT_V",
        "SPACE_TO_DEPTH",
        "DEPTH_TO_SPACE",
        "RESIZE_NEAREST_NEIGHBOR",
        "PACK",
        "UNPACK",
        "DEQUANTIZE",
        "SHAPE",
    }
)
#: Ops with a fixed output range by definition (softmax ∈ [0, 1]): never "saturated".
FIXED_RANGE_OPS = frozenset({"SOFTMAX", "LOGISTIC", "TANH", "LOG_SOFTMAX", "HARD_SWISH"})


@dataclass
class InputCoverage:
    """How the evaluation data sits in one input's quantized range (streamed)."""

    name: str
    quantization: qparams.QParams
    count: int = 0
    below: int = 0
    above: int = 0
    min: float = math.inf
    max: float = -math.inf

    def update(self, x: np.ndarray) -> None:
        q = self.quantization
        half = float(q.scale[0]) / 2  # rounding, not clipping, within half a step
        self.count += x.size
        self.below += int(np.sum(x < float(q.min[0]) - half))
        self.above += int(np.sum(x > float(q.max[0]) + half))
        self.min, self.max = min(self.min, float(x.min())), max(self.max, float(x.max()))

    @property
    def clipped(self) -> float:
        return (self.below + self.above) / self.count if self.count else 0.0

    @property
    def used(self) -> float:
        """Share of the covered range that the data spans."""
        lo, hi = float(self.quantization.min[0]), float(self.quantization.max[0])
        span = min(self.max, hi) - max(self.min, lo)
        return max(span, 0.0) / (hi - lo)


@dataclass(frozen=True)
class NoiseFloor:
    """How far the float32 reference is from its float64 twin on the same data."""

    rmse: float | None
    max_abs_error: float | None
    output_rms: float | None
    samples: int
    unavailable: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rmse": self.rmse,
            "max_abs_error": self.max_abs_error,
            "output_rms": self.output_rms,
            "samples": self.samples,
            "unavailable": self.unavailable,
        }


@dataclass(frozen=True)
class Evidence:
    """Everything measured about one candidate."""

    result: CandidateResult
    anatomy: Anatomy
    inputs: tuple[InputCoverage, ...] = ()
    stats: Mapping[str, TensorStats] | None = None  # the candidate's own tensors
    float_stats: Mapping[str, TensorStats] | None = None  # float32 model, counted vs our ranges
    floor: NoiseFloor | None = None
    sensitivity: tuple[Any, ...] = ()  # sensitivity.LayerSensitivity, most sensitive first
    learned_ranges: Mapping[str, tuple[float, float]] | None = None  # QAT ranges by layer
    layers: frozenset[str] = frozenset()  # the reference's Keras layer names
    #: Keras fp32 → TFLite fp32 per layer, in execution order: (layer, SQNR dB)
    conversion: tuple[tuple[str, float], ...] = ()

    def label(self, tensor_name: str) -> str:
        """A tensor as reports call it: its Keras layer when known."""
        return names.label(tensor_name, self.layers)


Rule = Callable[[Evidence], list[Finding]]
#: Every rule, by the finding ids it can produce (one wiring point).
RULES: dict[tuple[str, ...], Rule] = {}
FINDING_IDS = (
    "float-noise",
    "conversion-error",
    "weights-only",
    "input-range-mismatch",
    "dummy-ranges",
    "saturation",
    "calibration-range",
    "outlier-scale",
    "float16-overflow",
    "qat-mismatch",
    "sensitive-layer",
)


def rule(*ids: str) -> Callable[[Rule], Rule]:
    def register(fn: Rule) -> Rule:
        unknown = set(ids) - set(FINDING_IDS)
        if unknown:
            raise ValueError(f"unknown finding ids {unknown}")
        RULES[ids] = fn
        return fn

    return register


def diagnose(evidence: Evidence) -> tuple[Finding, ...]:
    """Every rule's findings, the most severe first."""
    findings = [f for fn in RULES.values() for f in fn(evidence)]
    return tuple(sorted(findings, key=lambda f: -f.severity.rank))


# -- helpers -------------------------------------------------------------------------------
def covered_range(q: qparams.QParams) -> list[float]:
    """The real [min, max] a per-tensor quantization covers, rounded for reports."""
    return [round(float(q.min[0]), 6), round(float(q.max[0]), 6)]


def percent(x: float) -> str:
    """A share as a percentage, with two decimals below 10%."""
    return f"{100 * x:.2f}%" if x < 0.1 else f"{100 * x:.1f}%"


def is_float_compute(anatomy: Anatomy) -> bool:
    """No quantized, int8 or float16 tensor in any subgraph: a plain float32 model."""
    everything = (*anatomy.tensors, *anatomy.nested)
    return not any(t.quantized or t.dtype in ("float16", "int8") for t in everything)


def quantized_activations(anatomy: Anatomy) -> list[TensorRecord]:
    """Run-time tensors holding integer codes whose range came from data: not the model's
    input (``input-range-mismatch`` covers it) and not a fixed-range op's output (softmax),
    also when that reaches the tensor through requantization or reshaping."""
    producers = {i: op for op in anatomy.ops for i in op.outputs}

    def inherited(index: int, seen: frozenset[int] = frozenset()) -> bool:
        op = producers.get(index)
        if op is None:
            return index in anatomy.inputs
        if op.name in FIXED_RANGE_OPS:
            return True
        if (op.name == "QUANTIZE" or op.name in RANGE_PRESERVING_OPS) and index not in seen:
            return inherited(op.inputs[0], seen | {index})
        return False

    return [
        t
        for t in anatomy.activations()
        if t.quantized
        and not t.quantization.per_channel  # type: ignore[union-attr]
        and not inherited(t.index)
    ]


def input_quantization(anatomy: Anatomy, index: int) -> qparams.QParams | None:
    """The quantization a model input really gets: its own, or that of the QUANTIZE op that
    turns the float input into codes (full-integer models with float I/O)."""
    tensor = anatomy.tensor(index)
    if tensor.quantized:
        return tensor.quantization
    for op in anatomy.consumers(index):
        if op.name == "QUANTIZE":
            return anatomy.tensor(op.outputs[0]).quantization
    return None


# The rules register themselves on import; they live in their own module.
from . import rules as _rules  # noqa: E402, F401
