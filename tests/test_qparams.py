"""qparams against the worked numbers in the seeds and against TFLite's own tensors."""

from __future__ import annotations

import numpy as np
import pytest

from liteparity import qparams
from liteparity.errors import UsageError


def test_mean_std_128_128_uint8_is_the_seed_example() -> None:
    p = qparams.from_mean_std(128, 128, "uint8")
    assert p.scale.item() == 0.0078125
    assert p.zero_point.item() == 128
    assert p.min.item() == -1.0
    assert p.max.item() == 0.9921875


@pytest.mark.parametrize(
    ("lo", "hi", "mean", "std"),
    [(0.0, 1.0, 0.0, 255.0), (0.0, 255.0, 0.0, 1.0), (-1.0, 1.0, 128.0, 127.5)],
)
def test_data_ranges_want_the_seed_mean_std(lo: float, hi: float, mean: float, std: float) -> None:
    # Seeds: [0, 1] → (0, 255); [0, 255] → (0, 1); [−1, 1] → (127.5, 127.5), whose mean the
    # converter nudges to the integer zero point 128.
    p = qparams.from_min_max(lo, hi, "uint8")
    assert p.mean.item() == mean
    assert p.std_dev.item() == pytest.approx(std)


def test_seed_001_output_params_cover_minus_100_to_100() -> None:
    # Seed 001: default_ranges (-100, 100) gave output quantization (0.78431373, 128).
    p = qparams.QParams(0.7843137383460999, 128, "uint8")
    assert p.min.item() == pytest.approx(-100.39, abs=0.01)
    assert p.max.item() == pytest.approx(99.61, abs=0.01)
    seeded = qparams.from_min_max(-100, 100, "uint8")
    assert seeded.scale.item() == pytest.approx(0.7843137383460999)
    assert seeded.zero_point.item() == 128


def test_int8_range_and_roundtrip() -> None:
    p = qparams.from_min_max(-1.0, 1.0, "int8")
    assert p.zero_point.item() == 0
    x = np.linspace(-1, 1, 1001)
    err = np.abs(qparams.dequantize(qparams.quantize(x, p), p) - x)
    assert err.max() <= p.scale.item() / 2 + 1e-7  # rounding error is at most half a step


def test_quantize_clamps_to_the_code_range() -> None:
    p = qparams.from_mean_std(0, 255, "uint8")
    q = qparams.quantize(np.array([-0.5, 0.0, 0.5, 1.0, 2.0]), p)
    assert q.dtype == np.uint8
    assert q.tolist() == [0, 0, 128, 255, 255]


def test_per_channel_dequantize_uses_each_channel_scale() -> None:
    p = qparams.QParams(np.array([0.5, 2.0]), np.array([0, 0]), "int8", axis=0)
    codes = np.array([[2, 2, 2], [3, 3, 3]], dtype=np.int8)
    assert qparams.dequantize(codes, p).tolist() == [[1, 1, 1], [6, 6, 6]]


def test_int16_range() -> None:
    p = qparams.QParams(1 / 32768, 0, "int16")
    assert p.min.item() == -1.0
    assert p.max.item() == pytest.approx(1 - 1 / 32768)


@pytest.mark.parametrize(
    "make",
    [
        lambda: qparams.from_mean_std(0, 0),
        lambda: qparams.from_min_max(2, 1),
        lambda: qparams.from_min_max(0, 0),
        lambda: qparams.QParams(0.1, 300, "uint8"),
        lambda: qparams.QParams(-1.0, 0, "int8"),
        lambda: qparams.QParams(0.1, 0, "float8"),
    ],
)
def test_bad_parameters_are_usage_errors(make) -> None:
    with pytest.raises(UsageError):
        make()


def test_from_details_reads_litert_tensor_dicts() -> None:
    details = {
        "dtype": np.int8,
        "quantization": (0.0, 0),
        "quantization_parameters": {
            "scales": np.array([0.1, 0.2], dtype=np.float32),
            "zero_points": np.array([0, 0]),
            "quantized_dimension": 3,
        },
    }
    p = qparams.from_details(details)
    assert p is not None and p.per_channel and p.axis == 3
    assert qparams.from_details({"dtype": np.float32, "quantization": (0.0, 0)}) is None


def test_a_range_that_excludes_zero_is_widened_to_include_it() -> None:
    p = qparams.from_min_max(0.5, 0.5, "uint8")  # a constant input: [0, 0.5]
    assert p.min.item() == 0.0 and p.max.item() == pytest.approx(0.5)
