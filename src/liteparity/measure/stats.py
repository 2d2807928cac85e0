"""Streaming statistics, in one place: error statistics (MSE, spread, SQNR), statistics of
tensor values (and ``CollectTensorStats``, the worker job that gathers them), and how data sits
in an input's quantized range. Running sums that merge exactly (Chan's formula), so memory does
not grow with the data and workers' parts join."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from liteparity import qparams
from liteparity.plain import json_number, json_numbers, number, numbers
from liteparity.runtime.anatomy import Anatomy
from liteparity.runtime.jobs import Job, state
from liteparity.runtime.litemodel import LiteModel, TensorInfo

#: Elements per float32 BLAS call: partial results add up in float64, so the rounding error
#: stays that of 65536 elements however large the tensor.
_BLOCK = 1 << 16

_ONES = np.ones(_BLOCK, dtype=np.float32)


def _dot(a: np.ndarray, b: np.ndarray | None = None) -> float:
    """``a·b`` (``b`` None: the sum of ``a``) of flat float32 arrays, by blocks; 2-4x faster
    than numpy's float64 reductions."""
    parts = []
    for start in range(0, a.size, _BLOCK):
        block = a[start : start + _BLOCK]
        other = _ONES[: block.size] if b is None else b[start : start + _BLOCK]
        parts.append(float(np.dot(block, other)))
    return math.fsum(parts)


@dataclass
class ErrorStats:
    """Running statistics of ``candidate − reference`` differences of one tensor.

    ``mean_error`` and ``mean_squared_error`` equal QuantizationDebugger's (its per-sample
    means, averaged over samples of equal size). ``max_abs_error`` is the largest error over
    all samples (the debugger averages per-sample maxima) and ``stddev`` is over all values
    (the debugger averages per-sample deviations). The spread is kept as a centred sum of
    squares, batches joined with Chan's formula: an error that is mostly a constant offset
    keeps its (small) deviation instead of losing it to ``E[d²] − mean²``."""

    num_elements: int = 0
    total: float = 0.0
    centred_sq: float = 0.0
    reference_sq: float = 0.0
    max_abs: float = 0.0

    def update(self, diff: np.ndarray, reference: np.ndarray | None = None) -> None:
        """Fold in a batch of differences; ``diff`` serves as scratch (overwritten)."""
        d = np.ravel(np.asarray(diff, dtype=np.float32))
        if not d.size:
            return
        total = _dot(d)
        batch = ErrorStats(d.size, total, max_abs=max(float(d.max()), -float(d.min())))
        if reference is not None:
            r = np.ravel(np.asarray(reference, dtype=np.float32))
            batch.reference_sq = _dot(r, r)
        d -= np.float32(total / d.size)
        batch.centred_sq = _dot(d, d)
        vars(self).update(vars(self.merge(batch)))

    def merge(self, other: ErrorStats) -> ErrorStats:
        n, m = self.num_elements, other.num_elements
        centred = self.centred_sq + other.centred_sq
        if n and m:
            delta = other.total / m - self.total / n
            centred += delta * delta * n * m / (n + m)
        return ErrorStats(
            n + m,
            self.total + other.total,
            centred,
            self.reference_sq + other.reference_sq,
            max(self.max_abs, other.max_abs),
        )

    @property
    def mean_squared_error(self) -> float:
        n = self.num_elements
        mean = self.total / n if n else 0.0
        return (self.centred_sq / n if n else 0.0) + mean * mean

    @property
    def noise_ratio(self) -> float:
        """Error power over signal power (``10^(−SQNR/10)``): 0 for no error, ``inf`` for an
        error on a tensor whose reference is all zeros."""
        error = self.mean_squared_error * self.num_elements
        if error == 0:
            return 0.0
        return error / self.reference_sq if self.reference_sq else math.inf

    def to_dict(self) -> dict[str, Any]:
        n = self.num_elements
        mean = self.total / n if n else 0.0
        variance = self.centred_sq / n if n else 0.0
        ratio = self.noise_ratio
        if ratio == 0:
            sqnr = math.inf  # no error
        elif ratio == math.inf:
            sqnr = -math.inf  # error on a silent tensor
        else:
            sqnr = -10 * math.log10(ratio)
        return {
            "num_elements": n,
            "mean_error": mean,
            "stddev": math.sqrt(variance),
            "max_abs_error": self.max_abs,
            "mean_squared_error": self.mean_squared_error,
            "sqnr_db": sqnr,
        }


@dataclass
class TensorStats:
    """Running statistics of one tensor's real values over the data seen so far."""

    count: int = 0
    min: float = float("inf")
    max: float = float("-inf")
    at_qmin: int = 0  # values on the lowest code (only counted when it stands below zero)
    at_qmax: int = 0  # values on the highest code
    below: int = 0  # values below the given bounds (calibration range of another model)
    above: int = 0
    channel_absmax: np.ndarray | None = None  # per channel, over the last axis

    def update(
        self,
        value: np.ndarray,
        quantization: qparams.QParams | None,
        bounds: tuple[float, float] | None,
    ) -> None:
        if quantization is not None and not quantization.per_channel:
            low, high = qparams.edge_codes(value, quantization)
            self.at_qmin += low
            self.at_qmax += high
            real = qparams.dequantize(value, quantization)
        else:
            real = np.asarray(value, dtype=np.float32)
        if real.size == 0:
            return
        self.count += real.size
        self.min = min(self.min, float(real.min()))
        self.max = max(self.max, float(real.max()))
        if bounds is not None:
            self.below += int(np.sum(real < bounds[0]))
            self.above += int(np.sum(real > bounds[1]))
        if real.ndim >= 2:
            per_channel = np.abs(real.reshape(-1, real.shape[-1])).max(axis=0)
            if self.channel_absmax is None or self.channel_absmax.shape != per_channel.shape:
                self.channel_absmax = per_channel
            else:
                np.maximum(self.channel_absmax, per_channel, out=self.channel_absmax)

    def to_dict(self) -> dict[str, Any]:
        absmax = self.channel_absmax
        return {
            **vars(self),
            "min": json_number(self.min),
            "max": json_number(self.max),
            "channel_absmax": None if absmax is None else json_numbers(absmax),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TensorStats:
        absmax = d["channel_absmax"]
        return cls(
            **{
                **d,
                "min": number(d["min"]),
                "max": number(d["max"]),
                # float32, as measured: the rules' medians and ratios come out the same
                "channel_absmax": None if absmax is None else np.array(numbers(absmax), np.float32),
            }
        )


def collect_stats(
    interpreter: Any,
    anatomy: Anatomy,
    stats: dict[str, TensorStats],
    bounds: Mapping[str, tuple[float, float]],
) -> None:
    """Fold the tensors of the last invocation (of an inspected ``LiteModel``: every tensor
    readable) into ``stats``, keyed by tensor name."""
    for record in anatomy.activations():
        try:
            value = interpreter.get_tensor(record.index)
        except ValueError:
            continue
        if not np.issubdtype(value.dtype, np.number):
            continue
        stats.setdefault(record.name, TensorStats()).update(
            value, record.quantization, bounds.get(record.name)
        )


@dataclass(frozen=True)
class CollectTensorStats(Job):
    """Statistics of every intermediate tensor of ``content`` over the batches fed, by tensor
    name (``result``); ``start`` answers the model's inputs. ``bounds`` counts the values
    outside a real range per tensor name (another model's ranges); ``batch_size`` is the one
    the model runs at (lowered to fit the memory every readable tensor takes)."""

    content: bytes
    threads: int = 1
    batch_size: int = 1
    bounds: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    _model: LiteModel = state()
    _stats: dict[str, TensorStats] = state()

    doing = "reading intermediate tensors"

    def start(self) -> tuple[TensorInfo, ...]:
        model = LiteModel(self.content, num_threads=self.threads, inspect=True)
        model.batch_size = model.inspect_batch(self.batch_size)
        self.keep(_model=model, _stats={})
        return tuple(model.inputs)

    def feed(self, batch: list[np.ndarray]) -> None:
        anatomy = self._model.anatomy()
        for interpreter in self._model.invocations(batch):
            collect_stats(interpreter, anatomy, self._stats, self.bounds)

    def result(self) -> dict[str, TensorStats]:
        return self._stats


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

    def to_dict(self) -> dict[str, Any]:
        return {
            **vars(self),
            "quantization": self.quantization.to_dict(),
            "min": json_number(self.min),
            "max": json_number(self.max),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InputCoverage:
        return cls(
            **{
                **d,
                "quantization": qparams.QParams.from_dict(d["quantization"]),
                "min": number(d["min"]),
                "max": number(d["max"]),
            }
        )

    @property
    def clipped(self) -> float:
        return (self.below + self.above) / self.count if self.count else 0.0

    @property
    def used(self) -> float:
        """Share of the covered range that the data spans."""
        lo, hi = float(self.quantization.min[0]), float(self.quantization.max[0])
        span = min(self.max, hi) - max(self.min, lo)
        return max(span, 0.0) / (hi - lo)
