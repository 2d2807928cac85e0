"""qparams against the worked numbers in the seeds and against TFLite's own tensors."""

from __future__ import annotations

from pathlib import Path

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
    # (0.5 · 255 sits on a half-code boundary, where float32 decides: see the LiteRT test)
    p = qparams.from_mean_std(0, 255, "uint8")
    q = qparams.quantize(np.array([-0.5, 0.0, 0.502, 1.0, 2.0]), p)
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


def test_quantize_gives_the_codes_of_litert_own_quantize_op(check_all) -> None:
    """Float values on and around half-code boundaries: ``quantize`` gives exactly the codes the
    int8 model's QUANTIZE op computes (read from a plain interpreter), so ``int8-io`` fed by
    liteparity sees the inputs ``int8`` sees."""
    from ai_edge_litert.interpreter import Interpreter

    content = Path(check_all.candidate("int8").path).read_bytes()
    interpreter = Interpreter(model_content=content, experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    op = next(o for o in interpreter._get_ops_details() if o["op_name"] == "QUANTIZE")
    codes = interpreter.get_tensor_details()[op["outputs"][0]]
    scale, zero_point = codes["quantization"]
    source = interpreter.get_input_details()[0]
    rng = np.random.default_rng(0)
    shape = tuple(source["shape"][1:])
    halves = (rng.integers(-128, 128, (40, *shape)) + 0.5) * np.float32(scale)
    x = np.concatenate([halves, rng.uniform(0, 1, (40, *shape))]).astype(np.float32)
    theirs = []
    for row in x:
        interpreter.set_tensor(source["index"], row[None])
        interpreter.invoke()
        theirs.append(interpreter.get_tensor(codes["index"]).copy())
    ours = qparams.quantize(x, qparams.QParams(scale, zero_point, "int8"))
    assert np.array_equal(ours, np.concatenate(theirs))
