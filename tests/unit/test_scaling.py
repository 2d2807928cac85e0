"""Mis-scaled data: spans and the coarse unit check, on hand-made arrays."""

from __future__ import annotations

import numpy as np

from liteparity.data.scaling import (
    Span,
    calibration_warnings,
    far_apart,
    quantization_warnings,
    spans,
)


def test_spans_per_input_over_batches_ignore_non_finite_and_integer_inputs() -> None:
    a1 = np.array([[0.5, np.nan], [2.0, -1.0]], np.float32)
    a2 = np.array([[np.inf, 3.0]], np.float32)
    tokens = np.array([[1, 900]], np.int32)
    got = spans([[a1, tokens], [a2, tokens]])
    assert got == [Span(-1.0, 3.0), None]
    assert spans([[np.full((2, 2), np.nan, np.float32)]]) == [None]


def test_far_apart_is_a_tenfold_spread() -> None:
    unit = Span(0.0, 1.0)
    assert far_apart(Span(0.0, 255.0), unit)  # pixels 0-255 against [0, 1]
    assert far_apart(Span(0.0, 0.00392), unit)  # scaled twice
    assert not far_apart(Span(-1.0, 1.0), unit)  # twice as wide: other data, same units
    assert not far_apart(Span(0.0, 9.9), unit)
    assert far_apart(Span(0.0, 10.0), unit)
    assert not far_apart(Span(3.0, 3.0), unit)  # a constant input says nothing


def test_warnings_name_the_input_and_both_spans() -> None:
    data = [Span(0.0, 255.0), Span(0.0, 1.0), None]
    cal = [Span(0.0, 1.0), Span(0.0, 1.0), Span(0.0, 1.0)]
    (warning,) = calibration_warnings(["image", "mask", "ids"], data, cal)
    assert warning.startswith("input 'image': the evaluation data spans [0, 255] but the ")
    assert "calibration data [0, 1]" in warning
    covered = [Span(-1.0, 0.9922), None, None]
    (warning,) = quantization_warnings(["image", "mask", "ids"], data, covered)
    assert "the input's quantization covers [-1, 0.9922]" in warning
    assert not quantization_warnings(["mask"], [Span(0.0, 1.0)], [Span(-1.0, 0.9922)])
