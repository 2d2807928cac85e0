"""Evidence: everything measured about one candidate that the rules read (plain data)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from liteparity.layerwise.names import label
from liteparity.measure.stats import InputCoverage, TensorStats
from liteparity.results.check import CandidateResult
from liteparity.runtime.anatomy import Anatomy


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
    sensitivity: tuple[Any, ...] = ()  # LayerSensitivity, most sensitive first
    learned_ranges: Mapping[str, tuple[float, float]] | None = None  # QAT ranges by layer
    layers: frozenset[str] = frozenset()  # the reference's Keras layer names
    #: Keras fp32 → TFLite fp32 per layer, in execution order: (layer, SQNR dB)
    conversion: tuple[tuple[str, float], ...] = ()

    def label(self, tensor_name: str) -> str:
        """A tensor as reports call it: its Keras layer when known."""
        return label(tensor_name, self.layers)
