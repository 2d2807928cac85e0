"""The rules on evidence built by hand: per family, planted cases that must fire (with the
numbers worked out here) and clean ones that must not. Milliseconds each: no TensorFlow, no
interpreter; tests/test_explain.py checks the same findings end to end on real models."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from liteparity.diagnose.evidence import Evidence, NoiseFloor
from liteparity.diagnose.registry import FINDING_IDS, RULES, rule
from liteparity.diagnose.rules import diagnose
from liteparity.errors import InternalError
from liteparity.layerwise.sensitivity import LayerSensitivity
from liteparity.measure.stats import InputCoverage, TensorStats
from liteparity.qparams import from_mean_std, from_min_max
from liteparity.results.check import Metric
from liteparity.runtime.anatomy import Anatomy, OpRecord, TensorRecord
from tests.unit.handmade import (
    CONV_A,
    CONV_B,
    float_evidence,
    float_model,
    int8_evidence,
    int8_model,
    result,
    weights,
)


def found(ev: Evidence, id_: str) -> list:
    return [f for f in diagnose(ev) if f.id == id_]


def one(ev: Evidence, id_: str):
    (f,) = found(ev, id_)
    return f


# -- wiring --------------------------------------------------------------------------------
def test_every_finding_id_has_exactly_one_rule() -> None:
    produced = [i for ids in RULES for i in ids]
    assert sorted(produced) == sorted(FINDING_IDS)


def test_a_rule_with_an_unknown_id_is_refused() -> None:
    with pytest.raises(InternalError, match="no-such-id"):
        rule("no-such-id")(lambda ev: [])


def test_clean_evidence_gets_no_finding() -> None:
    assert diagnose(int8_evidence()) == ()


def test_findings_come_most_severe_first() -> None:
    ev = float_evidence(
        float_model("float16", weights(36, 65504.0, at_float16_max=2)),
        result=result(rmse=1e-7, max_abs_error=5e-7),
    )
    severities = [f.severity.value for f in diagnose(ev)]
    assert severities == ["error", "info"]  # float16-overflow, then weights-only


# -- float family --------------------------------------------------------------------------
def test_float32_within_the_floor_is_float_noise() -> None:
    f = one(float_evidence(), "float-noise")
    assert f.severity.value == "info"
    assert f.evidence["ratio_to_floor"] == pytest.approx(2e-7 / 1e-7)
    assert not found(float_evidence(), "conversion-error")


def test_float32_far_above_the_floor_is_a_conversion_error_at_its_first_layer() -> None:
    layers = (("conv_a", math.inf), ("conv_b", 35.0), ("dense", 20.0))
    ev = float_evidence(result=result(rmse=1e-3, max_abs_error=4e-3), conversion=layers)
    f = one(ev, "conversion-error")
    assert f.severity.value == "error"
    assert f.evidence["ratio_to_floor"] == pytest.approx(1e4)
    assert f.evidence["first_layer"] == "conv_b"  # the first below 80 dB
    assert f.evidence["first_layer_sqnr_db"] == 35.0
    assert not found(ev, "float-noise")


def test_without_a_floor_float_noise_is_judged_against_the_output_rms() -> None:
    no_floor = NoiseFloor(None, None, output_rms=2.0, samples=0, unavailable="no twin")
    quiet = one(float_evidence(result=result(rmse=1e-6), floor=no_floor), "float-noise")
    assert quiet.evidence["relative_rmse"] == pytest.approx(5e-7)
    loud = one(float_evidence(result=result(rmse=1e-3), floor=no_floor), "conversion-error")
    assert loud.severity.value == "warning"  # no floor: less sure
    assert loud.evidence["relative_rmse"] == pytest.approx(5e-4)


def test_a_quantized_candidate_gets_no_float_finding() -> None:
    ev = int8_evidence(result=result(rmse=1e-3))
    assert not found(ev, "float-noise") and not found(ev, "conversion-error")


def test_int8_weights_with_float_activations_are_weights_only() -> None:
    f = one(float_evidence(float_model("int8")), "weights-only")
    assert f.severity.value == "info"
    assert f.evidence["weight_types"] == ["int8"]
    assert f.evidence["quantized_weight_tensors"] == ["conv_a"]
    assert f.evidence["share_of_weight_values"] == pytest.approx(36 / (36 + 4))  # kernel, bias
    assert not found(float_evidence(), "weights-only")
    assert not found(int8_evidence(), "weights-only")  # activations quantized too


def test_weights_at_65504_are_float16_overflow() -> None:
    clipped = weights(36, 65504.0, at_float16_max=3)
    f = one(float_evidence(float_model("float16", clipped)), "float16-overflow")
    assert f.severity.value == "error"
    assert f.evidence["clipped_values"] == 3
    assert f.evidence["tensors"] == ["conv_a"]
    assert not found(float_evidence(float_model("float16")), "float16-overflow")


def test_activations_beyond_65504_in_a_float16_model_are_float16_overflow() -> None:
    big = {CONV_A: TensorStats(count=100, min=-1.0, max=1e5)}
    f = one(float_evidence(float_model("float16"), float_stats=big), "float16-overflow")
    assert f.severity.value == "warning"
    assert f.evidence["tensors"] == {"conv_a": 1e5}
    small = {CONV_A: TensorStats(count=100, min=-1.0, max=6e4)}
    assert not found(float_evidence(float_model("float16"), float_stats=small), "float16-overflow")


# -- ranges family -------------------------------------------------------------------------
def coverage(q, low: float, high: float, below: int = 0, above: int = 0) -> InputCoverage:
    return InputCoverage("image", q, count=1000, below=below, above=above, min=low, max=high)


def test_std_dev_1_for_data_in_0_1_is_an_input_range_mismatch() -> None:
    """TF1's (mean, std_dev) = (0, 1) covers [0, 255]: data in [0, 1] uses 1/255 of it."""
    ev = int8_evidence(inputs=(coverage(from_mean_std(0.0, 1.0), 0.0, 1.0),))
    f = one(ev, "input-range-mismatch")
    assert f.severity.value == "error"
    assert f.evidence["covered_range"] == [0.0, 255.0]
    assert f.evidence["used_share"] == pytest.approx(1 / 255)
    assert f.evidence["suggested_mean_std_dev"] == pytest.approx([0.0, 255.0])


def test_clipped_inputs_and_wasted_codes_are_input_range_mismatches() -> None:
    clipped = coverage(from_min_max(0.0, 0.2), 0.0, 1.0, above=300)
    assert one(int8_evidence(inputs=(clipped,)), "input-range-mismatch").evidence[
        "clipped_share"
    ] == pytest.approx(0.3)
    narrow = coverage(from_min_max(0.0, 1.0), 0.0, 0.2)  # 20% of the codes: a warning
    assert one(int8_evidence(inputs=(narrow,)), "input-range-mismatch").severity.value == "warning"
    fitting = coverage(from_min_max(0.0, 1.0), 0.0, 1.0)
    assert not found(int8_evidence(inputs=(fitting,)), "input-range-mismatch")


def test_one_range_on_every_tensor_is_dummy_ranges() -> None:
    """default_ranges_stats (0, 6): every range-setting tensor gets scale 6/255."""
    dummy = from_min_max(0.0, 6.0, "int8")
    ev = int8_evidence(anatomy=int8_model(conv_a=dummy, conv_b=dummy))
    f = one(ev, "dummy-ranges")
    assert f.severity.value == "error"
    assert f.evidence["assumed_range"] == pytest.approx([0.0, 6.0])
    assert f.evidence["scale"] == pytest.approx(6 / 255)
    assert f.evidence["tensors"] == ["conv_a", "conv_b"]
    assert not found(int8_evidence(), "dummy-ranges")


def test_relu6_outputs_at_zero_to_six_are_not_dummy_ranges() -> None:
    """Fused ReLU6 outputs have [0, 6] by definition: calibration gives it to every one of
    them that reaches the clip. The same shared range after plain ReLUs is assumed."""
    relu6 = from_min_max(0.0, 6.0, "int8")
    base = int8_model(conv_a=relu6, conv_b=relu6)

    def fused(activation: str) -> Anatomy:
        ops = tuple(
            replace(op, activation=activation) if op.name == "CONV_2D" else op for op in base.ops
        )
        return replace(base, ops=ops)

    assert not found(int8_evidence(anatomy=fused("RELU6")), "dummy-ranges")
    f = one(int8_evidence(anatomy=fused("RELU")), "dummy-ranges")
    assert f.evidence["tensors"] == ["conv_a", "conv_b"]


def test_average_pooling_shares_its_input_range_by_requirement() -> None:
    """conv_a → AVERAGE_POOL_2D → MAX_POOL_2D: three tensors, one range, one range setter
    (TFLite requires the pools' output to keep the input's scale): nothing is assumed."""
    base = int8_model()
    q = base.tensor(4).quantization
    pooled = (
        TensorRecord(
            9, "model_1/pool_1/AvgPool", (1, 4, 4, 4), "int8", q, False, "AVERAGE_POOL_2D"
        ),
        TensorRecord(10, "model_1/pool_2/MaxPool", (1, 2, 2, 4), "int8", q, False, "MAX_POOL_2D"),
    )
    ops = (
        *base.ops,
        OpRecord(4, "AVERAGE_POOL_2D", (4,), (9,)),
        OpRecord(5, "MAX_POOL_2D", (9,), (10,)),
    )
    anatomy = Anatomy((*base.tensors, *pooled), ops, base.inputs, base.outputs)
    assert not found(int8_evidence(anatomy=anatomy), "dummy-ranges")


def test_values_at_an_activations_own_floor_are_not_saturation() -> None:
    """A Rescaling to [-1, 1]: black pixels sit at -1, the lowest code, and the float model
    sits there too (nothing is clipped). Swish's minimum -0.2785 calibrated as the lowest
    code, without a float model: a floor the function has, not clipping."""
    rescaled = from_min_max(-1.0, 1.0, "int8")
    anatomy = int8_model(conv_b=rescaled)
    stats = {CONV_B: TensorStats(count=1000, min=-1.0, max=1.0, at_qmin=300)}
    truth = {CONV_B: TensorStats(count=1000, min=-1.0, max=0.98)}
    assert not found(int8_evidence(anatomy=anatomy, stats=stats, float_stats=truth), "saturation")
    swish = int8_model(conv_b=from_min_max(-0.2785, 4.0, "int8"))
    stats = {CONV_B: TensorStats(count=1000, min=-0.2785, max=3.9, at_qmin=300)}
    assert not found(int8_evidence(anatomy=swish, stats=stats), "saturation")
    # The same pile where the float values go below the range: clipped, 30% → error.
    clipped = {CONV_B: TensorStats(count=1000, min=-2.5, max=0.98)}
    stats = {CONV_B: TensorStats(count=1000, min=-1.0, max=1.0, at_qmin=300)}
    f = one(int8_evidence(anatomy=anatomy, stats=stats, float_stats=clipped), "saturation")
    assert f.severity.value == "error" and f.evidence["share"] == pytest.approx(0.3)


def test_values_piled_on_the_top_code_are_saturation() -> None:
    stats = {CONV_B: TensorStats(count=1000, min=-4.0, max=3.97, at_qmax=150)}
    truth = {CONV_B: TensorStats(count=1000, min=-4.0, max=9.0)}
    f = one(int8_evidence(stats=stats, float_stats=truth), "saturation")
    assert f.severity.value == "error"
    assert f.evidence["share"] == pytest.approx(0.15)
    assert f.evidence["tensor"] == "conv_b"
    assert f.evidence["needed_range"] == [-4.0, 9.0]
    few = {CONV_B: TensorStats(count=1000, min=-4.0, max=3.97, at_qmax=5)}
    assert not found(int8_evidence(stats=few), "saturation")


def test_saturation_at_a_range_learned_in_qat_is_not_a_finding() -> None:
    """The tensor keeps the range QAT learned: the reference clips there too."""
    stats = {CONV_A: TensorStats(count=1000, min=0.0, max=6.0, at_qmax=150)}
    assert found(int8_evidence(stats=stats), "saturation")
    learned = {"conv_a": (0.0, 6.0)}
    assert not found(int8_evidence(stats=stats, learned_ranges=learned), "saturation")


def test_evaluation_values_beyond_the_calibrated_range_are_calibration_range() -> None:
    truth = {CONV_A: TensorStats(count=1000, min=0.0, max=9.5, below=0, above=50)}
    f = one(int8_evidence(float_stats=truth), "calibration-range")
    assert f.severity.value == "warning"  # 5%: above 1%, below 10%
    assert f.evidence["share"] == pytest.approx(0.05)
    assert f.evidence["calibrated_range"] == pytest.approx([0.0, 6.0])
    assert f.evidence["evaluation_range"] == [0.0, 9.5]
    inside = {CONV_A: TensorStats(count=1000, min=0.0, max=5.5)}
    assert not found(int8_evidence(float_stats=inside), "calibration-range")


def test_one_channel_setting_the_scale_is_outlier_scale() -> None:
    """conv_a covers [0, 100] (scale 100/255) because channel 0 reaches 100; the others
    reach 1, i.e. 2.55 codes."""
    wide = from_min_max(0.0, 100.0, "int8")
    absmax = np.array([100.0, 1.0, 1.0, 0.5], np.float32)
    stats = {CONV_A: TensorStats(count=1000, min=0.0, max=100.0, channel_absmax=absmax)}
    lost = result(drop=3.0)  # a material loss: 3 accuracy points
    ev = int8_evidence(anatomy=int8_model(conv_a=wide), float_stats=stats, result=lost)
    f = one(ev, "outlier-scale")
    assert f.severity.value == "error"  # fewer than 16 / 4 codes
    assert f.evidence["channel"] == 0
    assert f.evidence["ratio"] == pytest.approx(100.0)
    assert f.evidence["codes_for_median_channel"] == pytest.approx(1.0 / (100 / 255))
    even = np.array([1.0, 1.2, 0.9, 1.1], np.float32)
    stats = {CONV_A: TensorStats(count=1000, min=0.0, max=1.2, channel_absmax=even)}
    assert not found(int8_evidence(float_stats=stats), "outlier-scale")


def test_an_outlier_scale_that_costs_nothing_is_information() -> None:
    """The same starved channels on a candidate that lost 0.2 points (not material): named,
    but as information; with 8 codes for the median channel and a material loss, a warning."""
    wide = int8_model(conv_a=from_min_max(0.0, 100.0, "int8"))
    absmax = np.array([100.0, 1.0, 1.0, 0.5], np.float32)
    stats = {CONV_A: TensorStats(count=1000, min=0.0, max=100.0, channel_absmax=absmax)}
    f = one(int8_evidence(anatomy=wide, float_stats=stats), "outlier-scale")
    assert f.severity.value == "info" and "no material loss" in f.summary
    # A median channel of 8 codes (between 16 / 4 and 16) with 10% of predictions flipped
    absmax = np.array([100.0, 100 / 255 * 8, 100 / 255 * 8, 1.0], np.float32)
    stats = {CONV_A: TensorStats(count=1000, min=0.0, max=100.0, channel_absmax=absmax)}
    ev = int8_evidence(anatomy=wide, float_stats=stats, result=result(agreement=0.9))
    f = one(ev, "outlier-scale")
    assert f.severity.value == "warning"
    assert f.evidence["codes_for_median_channel"] == pytest.approx(8.0, rel=1e-5)


def test_constant_zero_padding_channels_do_not_make_an_outlier_scale() -> None:
    """Four real channels reaching 0.9–1.2 and four all-zero padding channels: the median of
    all eight would be 0.45 (or 0 with more padding); of the real ones it is 1.05, and the
    scale (1.2/255) gives it 223 codes."""
    absmax = np.array([1.0, 1.2, 0.9, 1.1, 0, 0, 0, 0], np.float32)
    anatomy = int8_model(conv_a=from_min_max(0.0, 1.2, "int8"))
    stats = {CONV_A: TensorStats(count=1000, min=0.0, max=1.2, channel_absmax=absmax)}
    assert not found(int8_evidence(anatomy=anatomy, float_stats=stats), "outlier-scale")
    # One real outlier among real and padding channels is still named, by its own index.
    absmax = np.array([0, 100.0, 1.0, 1.0, 0.5, 0, 0, 0], np.float32)
    wide = int8_model(conv_a=from_min_max(0.0, 100.0, "int8"))
    stats = {CONV_A: TensorStats(count=1000, min=0.0, max=100.0, channel_absmax=absmax)}
    f = one(int8_evidence(anatomy=wide, float_stats=stats), "outlier-scale")
    assert f.evidence["channel"] == 1
    assert f.evidence["median_channel_absmax"] == pytest.approx(1.0)  # of 100, 1, 1, 0.5


# -- training family -----------------------------------------------------------------------
def test_ranges_that_are_not_the_learned_ones_are_qat_mismatch() -> None:
    learned = {"conv_a": (0.0, 6.0), "conv_b": (-4.0, 4.0)}
    recalibrated = int8_model(conv_a=from_min_max(0.0, 2.0, "int8"))
    f = one(int8_evidence(anatomy=recalibrated, learned_ranges=learned), "qat-mismatch")
    assert f.severity.value == "warning"
    assert list(f.evidence["layers"]) == ["conv_a"]  # conv_b kept its learned range
    assert f.evidence["layers"]["conv_a"]["shift"] == pytest.approx(4.0 / 6.0, abs=1e-5)
    assert f.evidence["learned_layers"] == 2
    assert not found(int8_evidence(learned_ranges=learned), "qat-mismatch")


def sensitivity(*shares: float) -> tuple[LayerSensitivity, ...]:
    """A ranking whose k-th layer, kept in float, removes ``shares[k]`` of an MSE of 1."""
    return tuple(
        LayerSensitivity(f"layer{k}", (f"t{k}",), 1.0, 1.0 - s) for k, s in enumerate(shares)
    )


def test_one_layer_removing_most_of_the_error_is_a_sensitive_layer() -> None:
    harmful = int8_evidence(sensitivity=sensitivity(0.8, 0.1), result=result(drop=2.0))
    f = one(harmful, "sensitive-layer")
    assert f.severity.value == "warning"  # 2 accuracy points lost
    assert f.evidence["layer"] == "layer0"
    assert f.evidence["share_removed"] == pytest.approx(0.8)
    assert [r["layer"] for r in f.evidence["ranking"]] == ["layer0", "layer1"]
    mild = int8_evidence(sensitivity=sensitivity(0.8), result=result(drop=0.2, sqnr_db=35.0))
    assert one(mild, "sensitive-layer").severity.value == "info"
    noisy = int8_evidence(sensitivity=sensitivity(0.8), result=result(drop=None, sqnr_db=12.0))
    assert one(noisy, "sensitive-layer").severity.value == "warning"  # SQNR below 20 dB
    spread = int8_evidence(sensitivity=sensitivity(0.3, 0.3), result=result(drop=2.0))
    assert not found(spread, "sensitive-layer")


# -- verdict -------------------------------------------------------------------------------
def test_a_material_loss_nothing_explains_gets_an_explicit_warning() -> None:
    """20% of predictions flipped, 12 points lost, clean ranges: never "no issues found"."""
    lost = result(agreement=0.8, drop=12.0)
    f = one(int8_evidence(result=lost), "unexplained-loss")
    assert f.severity.value == "warning"
    assert f.evidence["reasons"] == [
        "it flips 20.0% of top-1 predictions",
        "it loses 12.00 points",
    ]
    # The best lead there is: keeping 'dense' in float removes 40% (below the 50% that makes
    # it a sensitive-layer finding of its own).
    ranking = (LayerSensitivity("dense", ("t",), 1.0, 0.6),)
    f = one(int8_evidence(result=lost, sensitivity=ranking), "unexplained-loss")
    assert f.evidence["most_sensitive_layer"]["layer"] == "dense"
    assert "'dense'" in f.summary and "40.0%" in f.summary


def test_a_material_loss_with_a_named_cause_gets_no_extra_verdict() -> None:
    dummy = from_min_max(0.0, 6.0, "int8")
    lost = result(agreement=0.8, drop=12.0)
    ev = int8_evidence(result=lost, anatomy=int8_model(conv_a=dummy, conv_b=dummy))
    assert found(ev, "dummy-ranges") and not found(ev, "unexplained-loss")
    # A small loss (1% flipped, 0.2 points) is not material: no verdict either.
    assert not found(int8_evidence(result=result(agreement=0.99)), "unexplained-loss")
    # Without labels, outputs 15 dB from the reference are a material loss.
    no_labels = result(metric=Metric("mse_vs_reference", 0.03), drop=3.0, sqnr_db=15.0)
    assert found(int8_evidence(result=no_labels), "unexplained-loss")


def test_findings_name_the_outputs_they_hurt() -> None:
    """Two outputs: ``main`` (conv_a → conv_b → DEQUANTIZE) and ``aux`` (conv_a →
    DEQUANTIZE). Saturation of conv_b hurts main alone; anything about conv_a hurts both; a
    finding about an output names it; one about the whole model names every output."""
    from liteparity.diagnose.hurts import with_outputs
    from liteparity.results.check import Finding, Severity

    base = int8_model()
    aux = TensorRecord(9, "aux:0", (1, 4), "float32", None, False, "DEQUANTIZE")
    anatomy = Anatomy(
        (*base.tensors, aux), (*base.ops, OpRecord(4, "DEQUANTIZE", (4,), (9,))), (0,), (8, 9)
    )
    stats = {CONV_B: TensorStats(count=1000, min=-4.0, max=3.97, at_qmax=150)}
    truth = {CONV_B: TensorStats(count=1000, min=-4.0, max=9.0)}
    ev = int8_evidence(
        anatomy=anatomy, stats=stats, float_stats=truth, output_tensors=(("main", 8), ("aux", 9))
    )
    saturated = with_outputs(one(ev, "saturation"), ev)
    assert saturated.evidence["outputs"] == ["main"]

    def about(**evidence: object) -> list[str]:
        plain = Finding("x", Severity.WARNING, "", "", dict(evidence), "")
        return with_outputs(plain, ev).evidence["outputs"]

    assert about(tensor="conv_a") == ["main", "aux"]
    assert about(layer="conv_b") == ["main"]
    assert about(output="aux") == ["aux"]
    assert about(share=0.5) == ["main", "aux"]  # the whole model
    assert Evidence.from_dict(ev.to_dict()).output_tensors == ev.output_tensors


def test_a_loss_may_be_material_before_its_drop_is_known() -> None:
    """An accuracy drop of d points flips at least d% of predictions: under 1% flipped and
    outputs above 20 dB, no material loss is possible; anything else may be one."""
    from liteparity.diagnose.rules.verdict import may_be_material

    assert not may_be_material(result(agreement=0.995, sqnr_db=35.0, drop=None))
    assert may_be_material(result(agreement=0.99, sqnr_db=35.0, drop=None))  # 1% flipped
    assert may_be_material(result(agreement=1.0, sqnr_db=15.0, drop=None))
    assert may_be_material(result(agreement=None, drop=None))  # no classes to flip
    assert may_be_material(result(metric=Metric("mse", 0.5), agreement=1.0, drop=None))
