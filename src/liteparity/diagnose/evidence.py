"""Evidence: everything measured about one candidate that the rules read, as plain data.

A run gathers it (``explain``); the rules read nothing else, so findings can be computed again
from saved evidence (``explain --resume``) without converting or running a model. Every part
has ``to_dict``/``from_dict`` with JSON-safe values (non-finite floats as strings, arrays as
lists) that read back to the same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from liteparity.layerwise.sensitivity import LayerSensitivity
from liteparity.measure.stats import InputCoverage, TensorStats
from liteparity.plain import json_number, json_numbers, number, numbers
from liteparity.reference.names import LayerNames, label
from liteparity.results.check import CandidateResult
from liteparity.runtime.anatomy import Anatomy


@dataclass(frozen=True)
class NoiseFloor:
    """How far the float32 reference is from a more exact or independent run of itself on
    the same data: its float64 twin (``method`` "float64", TensorFlow models), or for a
    ``.tflite`` reference the same graph under LiteRT's builtin kernels instead of XNNPack
    ("kernels")."""

    rmse: float | None
    max_abs_error: float | None
    output_rms: float | None
    samples: int
    unavailable: str | None = None
    method: str = "float64"

    @property
    def against(self) -> str:
        """What the floor compares, for messages."""
        if self.method == "kernels":
            return "reference under XNNPack vs builtin kernels"
        return "reference fp32 vs fp64"

    def to_dict(self) -> dict[str, Any]:
        return {
            "rmse": json_number(self.rmse),
            "max_abs_error": json_number(self.max_abs_error),
            "output_rms": json_number(self.output_rms),
            "samples": self.samples,
            "unavailable": self.unavailable,
            "method": self.method,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NoiseFloor:
        return cls(
            number(d["rmse"]),
            number(d["max_abs_error"]),
            number(d["output_rms"]),
            d["samples"],
            d["unavailable"],
            d.get("method", "float64"),
        )


@dataclass(frozen=True)
class Evidence:
    """Everything measured about one candidate."""

    result: CandidateResult
    anatomy: Anatomy
    inputs: tuple[InputCoverage, ...] = ()
    stats: Mapping[str, TensorStats] | None = None  # the candidate's own tensors
    float_stats: Mapping[str, TensorStats] | None = None  # float32 model, counted vs our ranges
    floor: NoiseFloor | None = None
    sensitivity: tuple[LayerSensitivity, ...] = ()  # most sensitive first
    learned_ranges: Mapping[str, tuple[float, float]] | None = None  # QAT ranges by layer
    layers: frozenset[str] = frozenset()  # the reference's Keras layer names
    #: Keras fp32 → TFLite fp32 per layer, in execution order: (layer, SQNR dB)
    conversion: tuple[tuple[str, float], ...] = ()
    #: each reference output's name and the candidate tensor matched to it (its index)
    output_tensors: tuple[tuple[str, int], ...] = ()

    def label(self, tensor_name: str) -> str:
        """A tensor as reports call it: its Keras layer when known."""
        return label(tensor_name, self.layers)

    def to_dict(self) -> dict[str, Any]:
        learned = self.learned_ranges
        return {
            "result": self.result.to_dict(),
            "anatomy": self.anatomy.to_dict(),
            "inputs": [c.to_dict() for c in self.inputs],
            "stats": _stats_to_dict(self.stats),
            "float_stats": _stats_to_dict(self.float_stats),
            "floor": self.floor.to_dict() if self.floor else None,
            "sensitivity": [s.to_dict() for s in self.sensitivity],
            "learned_ranges": None
            if learned is None
            else {k: json_numbers(v) for k, v in learned.items()},
            "layers": _layer_names(self.layers).to_dict(),
            "conversion": [[layer, json_number(db)] for layer, db in self.conversion],
            "output_tensors": [[name, index] for name, index in self.output_tensors],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Evidence:
        learned = d["learned_ranges"]
        return cls(
            result=CandidateResult.from_dict(d["result"]),
            anatomy=Anatomy.from_dict(d["anatomy"]),
            inputs=tuple(InputCoverage.from_dict(c) for c in d["inputs"]),
            stats=_stats_from_dict(d["stats"]),
            float_stats=_stats_from_dict(d["float_stats"]),
            floor=NoiseFloor.from_dict(d["floor"]) if d["floor"] else None,
            sensitivity=tuple(LayerSensitivity.from_dict(s) for s in d["sensitivity"]),
            learned_ranges=None
            if learned is None
            else {k: tuple(numbers(v)) for k, v in learned.items()},  # type: ignore[misc]
            layers=LayerNames.from_dict(d["layers"]),
            conversion=tuple((layer, number(db)) for layer, db in d["conversion"]),
            output_tensors=tuple((n, int(i)) for n, i in d.get("output_tensors", [])),
        )


def _stats_to_dict(stats: Mapping[str, TensorStats] | None) -> dict[str, Any] | None:
    return None if stats is None else {name: s.to_dict() for name, s in stats.items()}


def _stats_from_dict(d: dict[str, Any] | None) -> dict[str, TensorStats] | None:
    return None if d is None else {name: TensorStats.from_dict(s) for name, s in d.items()}


def _layer_names(layers: frozenset[str]) -> LayerNames:
    """``layers`` with its naming convention (a plain set of names: tf_keras's)."""
    return layers if isinstance(layers, LayerNames) else LayerNames(layers)
