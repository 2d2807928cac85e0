"""Data that is probably mis-scaled: uint8 0-255 images fed to a model calibrated on [0, 1]
ran silently (reference accuracy 82.9 %). Two ranges tell what a model expects without
knowing how it was trained: the calibration data's, and the real range a quantized input's
``(scale, zero_point)`` covers. Evaluation data whose spread is ``FAR`` times larger or
smaller than either is probably in other units: a warning, not a guess at a fix.

A finer, per-share account of clipping and wasted codes is ``explain``'s
``input-range-mismatch`` finding; this is the coarse check every ``check`` gets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Spreads this many times apart are different units (0-255 vs [0, 1] is 255, [-1, 1] vs
#: [0, 1] is 2, a batch of darker photos well under 10).
FAR = 10.0


@dataclass(frozen=True)
class Span:
    """The finite values' [low, high] of one input over some rows."""

    low: float
    high: float

    @property
    def width(self) -> float:
        return self.high - self.low

    def __str__(self) -> str:
        return f"[{self.low:.4g}, {self.high:.4g}]"


def spans(batches: Sequence[Sequence[np.ndarray]]) -> list[Span | None]:
    """Per input, the span of the float values in ``batches`` (lists of input arrays); None
    for an input that is not float (token ids, indices: no scale to get wrong) or has no
    finite value."""
    if not batches:
        return []
    out: list[Span | None] = []
    for k in range(len(batches[0])):
        arrays = [np.asarray(batch[k]) for batch in batches]
        if not all(np.issubdtype(a.dtype, np.floating) for a in arrays):
            out.append(None)
            continue
        finite = [a[np.isfinite(a)] for a in arrays]
        finite = [f for f in finite if f.size]
        out.append(
            Span(float(min(f.min() for f in finite)), float(max(f.max() for f in finite)))
            if finite
            else None
        )
    return out


def far_apart(data: Span, expected: Span) -> bool:
    """Whether ``data`` spreads ``FAR`` times wider or narrower than ``expected`` (a constant
    input on either side says nothing about units)."""
    if data.width <= 0 or expected.width <= 0:
        return False
    ratio = data.width / expected.width
    return ratio >= FAR or ratio <= 1 / FAR


def calibration_warnings(
    names: Sequence[str], data: Sequence[Span | None], calibration: Sequence[Span | None]
) -> list[str]:
    """One warning per input whose evaluation data and calibration data are in other units."""
    return _warnings(
        names,
        data,
        calibration,
        "input {name!r}: the evaluation data spans {data} but the calibration data {expected}: "
        "probably scaled differently (e.g. pixels 0-255 against [0, 1]; see --scale)",
    )


def quantization_warnings(
    names: Sequence[str], data: Sequence[Span | None], covered: Sequence[Span | None]
) -> list[str]:
    """One warning per quantized input whose ``(scale, zero_point)`` covers (``covered``:
    None for a float input) a range in other units than the data's."""
    return _warnings(
        names,
        data,
        covered,
        "input {name!r}: the data spans {data} but the input's quantization covers "
        "{expected}: probably scaled differently (see --scale)",
    )


def _warnings(
    names: Sequence[str],
    data: Sequence[Span | None],
    expected: Sequence[Span | None],
    text: str,
) -> list[str]:
    """``text`` for every input whose data is ``far_apart`` from its ``expected`` span."""
    return [
        text.format(name=name, data=d, expected=e)
        for name, d, e in zip(names, data, expected, strict=True)
        if d is not None and e is not None and far_apart(d, e)
    ]
