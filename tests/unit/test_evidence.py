"""Every measurement a diagnosis reads goes to plain JSON and back: JSON-safe (no NaN or
Infinity literal, no numpy value) and read back to the same numbers, so findings computed from
saved evidence are the findings of the run that measured it."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from liteparity.diagnose.evidence import Evidence, NoiseFloor
from liteparity.diagnose.rules import diagnose
from liteparity.layerwise.sensitivity import LayerSensitivity
from liteparity.measure.stats import InputCoverage, TensorStats
from liteparity.qparams import QParams, from_mean_std
from liteparity.results.check import CandidateResult, Metric
from liteparity.runtime.anatomy import Anatomy, OpRecord, TensorRecord, quantized_activations
from tests.unit.handmade import (
    CONV_A,
    CONV_B,
    float_model,
    int8_evidence,
    int8_model,
    result,
    weights,
)


def roundtrip(value: Any) -> Any:
    """``value`` through JSON text and back; its dict must come back unchanged."""
    d = value.to_dict()
    text = json.dumps(d, allow_nan=False)  # raises on a NaN/inf literal or a numpy value
    back = type(value).from_dict(json.loads(text))
    assert back.to_dict() == d
    return back


def test_plain_numbers_keep_nan_and_infinities() -> None:
    from liteparity.plain import json_number, number

    for value in (math.nan, math.inf, -math.inf, np.float32(-math.inf)):
        assert isinstance(json_number(value), str)
        assert number(json.loads(json.dumps(json_number(value)))) == pytest.approx(
            value, nan_ok=True
        )
    assert json_number(0.5) == 0.5 and number("model") == "model"


def test_qparams_per_tensor_and_per_channel() -> None:
    per_tensor = roundtrip(from_mean_std(127.5, 127.5))
    assert float(per_tensor.scale[0]) == 1 / 127.5 and int(per_tensor.zero_point[0]) == 128
    assert per_tensor.axis is None
    per_channel = roundtrip(QParams(np.array([0.1, 0.2]), np.array([0, 0]), "int8", axis=3))
    assert per_channel.scale.tolist() == [0.1, 0.2] and per_channel.axis == 3


def test_anatomy_with_weights_quantization_and_nested_tensors() -> None:
    nested = TensorRecord(-1, "while/body", (4,), "int8", None, False, None)
    anatomy = int8_model()
    anatomy = Anatomy(anatomy.tensors, anatomy.ops, anatomy.inputs, anatomy.outputs, (nested,))
    back = roundtrip(anatomy)
    assert back.tensor(4).name == CONV_A  # the index is rebuilt
    assert [t.name for t in quantized_activations(back)] == [CONV_A, CONV_B]
    assert back.tensor(2).weights == anatomy.tensor(2).weights
    assert back.tensor(4).quantization.scale.tolist() == pytest.approx([6 / 255])
    assert back.tensor(1).shape == (1, 8, 8, 4) and back.nested[0].dtype == "int8"
    assert back.ops == anatomy.ops


def test_weight_summary_with_non_finite_channels() -> None:
    summary = weights(8, math.inf, at_float16_max=1, channel_absmax=(math.inf, math.nan, 2.0))
    back = roundtrip(float_model("float16", summary)).tensor(1).weights
    assert back.absmax == math.inf and back.at_float16_max == 1
    assert back.channel_absmax[0] == math.inf and math.isnan(back.channel_absmax[1])


def test_op_record() -> None:
    assert roundtrip(OpRecord(3, "CONV_2D", (0, -1, 2), (4,))) == OpRecord(
        3, "CONV_2D", (0, -1, 2), (4,)
    )


def test_tensor_stats_measured_and_empty() -> None:
    stats = TensorStats()
    values = np.array([[-1.0, 0.25, 3.0], [2.0, -0.5, 0.125]], np.float32)
    stats.update(values, None, (-0.75, 2.5))
    back = roundtrip(stats)
    assert (back.count, back.min, back.max, back.below, back.above) == (6, -1.0, 3.0, 1, 1)
    assert back.channel_absmax.dtype == np.float32
    assert back.channel_absmax.tolist() == [2.0, 0.5, 3.0]
    empty = roundtrip(TensorStats())
    assert (empty.min, empty.max, empty.channel_absmax) == (math.inf, -math.inf, None)


def test_input_coverage() -> None:
    cov = InputCoverage("image", from_mean_std(0.0, 255.0))  # covers [0, 1]
    cov.update(np.array([-0.5, 0.0, 0.5, 2.0], np.float32))
    back = roundtrip(cov)
    assert (back.count, back.below, back.above, back.min, back.max) == (4, 1, 1, -0.5, 2.0)
    assert back.clipped == 0.5 and back.used == 1.0
    assert roundtrip(InputCoverage("image", from_mean_std(0.0, 1.0))).min == math.inf


def test_layer_sensitivity() -> None:
    back = roundtrip(LayerSensitivity("conv_a", ("a", "b"), 0.5, 0.125))
    assert back == LayerSensitivity("conv_a", ("a", "b"), 0.5, 0.125)
    assert back.share_removed == 0.75


def test_candidate_result_with_non_finite_numbers() -> None:
    row = CandidateResult(
        "int8",
        "int8",
        path="/tmp/int8.tflite",
        size_bytes=1234,
        latency_ms=0.5,
        metric=Metric("accuracy", 0.9),
        metric_delta=-0.01,
        drop=1.0,
        agreement=0.97,
        max_abs_error=math.nan,
        rmse=math.nan,
        sqnr_db=math.inf,
        cosine=0.999,
        batch_size=8,
    )
    back = roundtrip(row)
    assert back.sqnr_db == math.inf and math.isnan(back.rmse)
    assert back.metric == Metric("accuracy", 0.9) and back.batch_size == 8
    # Not the invalid JSON literal NaN, nor a string where a number goes: null, named in special
    assert row.to_dict()["rmse"] is None and row.to_dict()["special"]["rmse"] == "nan"
    assert row.to_dict()["sqnr_db"] is None and row.to_dict()["special"]["sqnr_db"] == "inf"


def test_noise_floor() -> None:
    floor = NoiseFloor(1e-7, 5e-7, 1.0, 200)
    assert roundtrip(floor) == floor
    missing = NoiseFloor(None, None, None, 0, "no reference model")
    assert roundtrip(missing) == missing


def full_evidence() -> Evidence:
    absmax = np.array([100.0, 1.0, 1.0, 0.5], np.float32)
    return int8_evidence(
        result=result(drop=2.0, sqnr_db=math.inf),
        inputs=(InputCoverage("image", from_mean_std(0.0, 1.0), 1000, 0, 0, 0.0, 1.0),),
        stats={CONV_B: TensorStats(1000, -4.0, 3.97, 0, 150)},
        float_stats={CONV_A: TensorStats(1000, 0.0, 100.0, 0, 0, 0, 60, absmax)},
        sensitivity=(LayerSensitivity("conv_a", ("t",), 1.0, 0.1),),
        learned_ranges={"conv_b": (-1.0, 1.0)},
        conversion=(("conv_a", math.inf), ("conv_b", 35.0)),
    )


def test_evidence_gives_the_same_findings_after_the_round_trip() -> None:
    ev = full_evidence()
    back = roundtrip(ev)
    assert back.learned_ranges == {"conv_b": (-1.0, 1.0)}
    assert back.conversion == (("conv_a", math.inf), ("conv_b", 35.0))
    assert back.layers == ev.layers and back.floor == ev.floor
    findings = diagnose(ev)
    assert {f.id for f in findings} >= {"input-range-mismatch", "qat-mismatch", "sensitive-layer"}
    assert [f.to_dict() for f in diagnose(back)] == [f.to_dict() for f in findings]


def test_evidence_without_optional_measurements() -> None:
    ev = Evidence(result=result(), anatomy=int8_model())
    back = roundtrip(ev)
    assert (back.stats, back.float_stats, back.floor, back.learned_ranges) == (None,) * 4
    assert back.inputs == () and back.sensitivity == () and back.layers == frozenset()
