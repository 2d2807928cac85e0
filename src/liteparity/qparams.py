"""Quantization arithmetic: ``(scale, zero_point)`` ⇄ ``(mean, std_dev)`` ⇄ ``(min, max)``.

The seeds' users hand-code these formulas again and again and get them wrong; here they live
once, as plain numpy functions over one frozen value, and everything else calls them.

    real = (q − zero_point) · scale            q = clamp(round(real / scale) + zero_point)
    TF1 ``quantized_input_stats = (mean, std_dev)``:  real = (q − mean) / std_dev
    so  scale = 1 / std_dev,  zero_point = mean  (rounded: the converter "nudges" it)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from liteparity.errors import UsageError

#: Integer types a TFLite tensor can be quantized to, with their code range.
DTYPE_RANGES: dict[str, tuple[int, int]] = {
    "uint8": (0, 255),
    "int8": (-128, 127),
    "int16": (-32768, 32767),
    "int32": (-(2**31), 2**31 - 1),
}


def dtype_range(dtype: str) -> tuple[int, int]:
    """The smallest and largest code of ``dtype``; a clear error for any other type."""
    if dtype in DTYPE_RANGES:  # the common case, without numpy's dtype parsing
        return DTYPE_RANGES[dtype]
    try:
        return DTYPE_RANGES[np.dtype(dtype).name]
    except (KeyError, TypeError):
        raise UsageError(
            f"unknown quantized type {dtype!r}: expected one of {', '.join(DTYPE_RANGES)}"
        ) from None


@dataclass(frozen=True, eq=False)
class QParams:
    """Quantization parameters of one tensor: per-tensor (one scale) or per-channel (``axis``)."""

    scale: np.ndarray  # 1-D float64 (numbers are taken and made arrays in ``__post_init__``)
    zero_point: np.ndarray  # 1-D int64
    dtype: str
    axis: int | None = None

    def __post_init__(self) -> None:
        scale = np.atleast_1d(np.asarray(self.scale, dtype=np.float64))
        zero_point = np.atleast_1d(np.asarray(self.zero_point, dtype=np.int64))
        if scale.shape != zero_point.shape:
            raise UsageError(
                f"{scale.size} scales but {zero_point.size} zero points: expected one each"
            )
        if np.any(scale <= 0) or not np.all(np.isfinite(scale)):
            raise UsageError(f"scale must be a positive finite number, got {scale.tolist()}")
        qmin, qmax = dtype_range(self.dtype)
        if np.any(zero_point < qmin) or np.any(zero_point > qmax):
            raise UsageError(
                f"zero point {zero_point.tolist()} lies outside {self.dtype}'s [{qmin}, {qmax}]"
            )
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "zero_point", zero_point)
        object.__setattr__(self, "dtype", np.dtype(self.dtype).name)

    @property
    def per_channel(self) -> bool:
        return self.scale.size > 1

    @property
    def mean(self) -> np.ndarray:
        """TF1's ``mean``: the code that stands for real 0."""
        return self.zero_point.astype(np.float64)

    @property
    def std_dev(self) -> np.ndarray:
        """TF1's ``std_dev``: codes per real unit."""
        return 1.0 / self.scale

    @property
    def min(self) -> np.ndarray:
        """The smallest real value the codes can represent."""
        return np.asarray((dtype_range(self.dtype)[0] - self.zero_point) * self.scale)

    @property
    def max(self) -> np.ndarray:
        """The largest real value the codes can represent."""
        return np.asarray((dtype_range(self.dtype)[1] - self.zero_point) * self.scale)

    def to_dict(self) -> dict[str, Any]:
        """Plain values; scalars for a per-tensor tensor, lists per channel."""

        def plain(a: np.ndarray) -> Any:
            return a.item() if a.size == 1 else a.tolist()

        return {
            "dtype": self.dtype,
            "scale": plain(self.scale),
            "zero_point": plain(self.zero_point),
            "mean": plain(self.mean),
            "std_dev": plain(self.std_dev),
            "min": plain(self.min),
            "max": plain(self.max),
            **({"axis": self.axis} if self.per_channel else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> QParams:
        """The inverse of ``to_dict`` (the derived ``mean``, ``min``... are recomputed)."""
        return cls(np.asarray(d["scale"]), np.asarray(d["zero_point"]), d["dtype"], d.get("axis"))


def from_mean_std(mean: float, std_dev: float, dtype: str = "uint8") -> QParams:
    """TF1's ``quantized_input_stats``: ``real = (q − mean) / std_dev``."""
    if std_dev <= 0:
        raise UsageError(f"std_dev must be positive, got {std_dev}")
    return QParams(np.asarray(1.0 / std_dev), np.asarray(round(mean)), dtype)


def from_min_max(minimum: float, maximum: float, dtype: str = "uint8") -> QParams:
    """The parameters that cover ``[minimum, maximum]``, with the zero point nudged so that
    real 0 is exactly representable (what TFLite's converter does)."""
    if minimum > maximum:
        raise UsageError(f"min must be below max, got min={minimum}, max={maximum}")
    qmin, qmax = dtype_range(dtype)
    # Real zero must be representable (zero padding, ReLU): widen the range to include it.
    minimum, maximum = min(minimum, 0.0), max(maximum, 0.0)
    if minimum == maximum:
        raise UsageError(f"the range [{minimum}, {maximum}] is empty: nothing to quantize")
    scale = (maximum - minimum) / (qmax - qmin)
    zero_point = int(np.clip(round(qmin - minimum / scale), qmin, qmax))
    return QParams(np.asarray(scale), np.asarray(zero_point), dtype)


def from_details(details: dict[str, Any]) -> QParams | None:
    """Parameters of a LiteRT tensor-details dict; ``None`` for a float tensor (scale 0)."""
    qp = details.get("quantization_parameters") or {}
    scales = np.asarray(qp.get("scales", []), dtype=np.float64)
    if scales.size == 0 or not np.any(scales):
        scale, zero_point = details.get("quantization", (0.0, 0))
        if not scale:
            return None
        scales, zero_points = np.array([scale]), np.array([zero_point])
    else:
        zero_points = np.asarray(qp["zero_points"])
        if zero_points.size == 1 and scales.size > 1:  # one zero point shared by all channels
            zero_points = np.repeat(zero_points, scales.size)
    dtype = np.dtype(details["dtype"]).name
    if dtype not in DTYPE_RANGES:
        return None
    axis = int(qp.get("quantized_dimension", 0)) if scales.size > 1 else None
    return QParams(scales, zero_points, dtype, axis)


def _broadcast(values: np.ndarray, qp: QParams, ndim: int) -> np.ndarray:
    """Shape per-channel values so they line up with ``qp.axis`` of an ``ndim`` array."""
    if not qp.per_channel:
        return values.reshape(())
    shape = [1] * ndim
    shape[qp.axis if qp.axis is not None else 0] = values.size
    return values.reshape(shape)


def quantize(real: np.ndarray, qp: QParams) -> np.ndarray:
    """``q = clamp(round(real / scale) + zero_point)`` in the tensor's integer type, computed
    as LiteRT's QUANTIZE kernels do (builtin and XNNPack alike): in float32, as ``real ·
    (1 / scale)``, rounding half to even. Quantizing in float64, or dividing, moves some codes
    by one: an ``int8-io`` model fed this way then differs from the ``int8`` model whose own
    QUANTIZE op turns the same float input into codes."""
    real = np.asarray(real, dtype=np.float32)
    inverse = np.float32(1) / _broadcast(qp.scale.astype(np.float32), qp, real.ndim)
    zero_point = _broadcast(qp.zero_point, qp, real.ndim)
    qmin, qmax = dtype_range(qp.dtype)
    codes = np.clip(np.round(real * inverse) + zero_point, qmin, qmax)
    return np.asarray(codes, dtype=qp.dtype)


def dequantize(codes: np.ndarray, qp: QParams) -> np.ndarray:
    """``real = (q − zero_point) · scale`` as float32 (the precision TFLite computes in)."""
    codes = np.asarray(codes)
    scale = _broadcast(qp.scale, qp, codes.ndim)
    zero_point = _broadcast(qp.zero_point, qp, codes.ndim)
    return np.asarray((codes.astype(np.float64) - zero_point) * scale, dtype=np.float32)


def edge_codes(codes: np.ndarray, qp: QParams) -> tuple[int, int]:
    """How many codes sit on the lowest and on the highest code of a per-tensor quantized
    tensor. The lowest code counts only when it stands for a value below zero: a ReLU's
    zeros sit there by design, not by clipping."""
    qmin, qmax = dtype_range(qp.dtype)
    zero = int(qp.zero_point[0])
    if not codes.size:
        return 0, 0
    # min/max first: most tensors never touch an edge, and counting costs two passes
    low = int(np.count_nonzero(codes == qmin)) if qmin < zero and codes.min() == qmin else 0
    high = int(np.count_nonzero(codes == qmax)) if qmax > zero and codes.max() == qmax else 0
    return low, high
