"""Outputs matched by name, kinds, task metrics, budgets and ``decision-lost`` on hand-made
arrays, against values computed by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from liteparity.cli.check import load_plugin
from liteparity.errors import DataError, UsageError
from liteparity.measure.decisions import decision_findings
from liteparity.measure.evaluate import output_order
from liteparity.measure.kinds import OutputKind, guess_kind, parse_kind
from liteparity.measure.outputs import Measures, OutputsAccumulator, headline
from liteparity.measure.tasks import Decisions, Masks, Regression
from liteparity.results.check import CandidateResult, CheckResult, OutputResult


def test_outputs_are_matched_by_name_else_by_position_with_a_warning() -> None:
    assert output_order(["b", "a"], ["a", "b"]) == ([1, 0], None)
    order, warning = output_order(["x", "y"], ["p", "q"])
    assert order == [0, 1] and warning is not None and "matched by position" in warning
    assert output_order(["only"], ["other"]) == ([0], None)  # one output: nothing to swap
    with pytest.raises(DataError, match="2 output"):
        output_order(["a"], ["a", "b"])


def test_the_kind_is_read_from_the_output() -> None:
    rng = np.random.default_rng(0)
    assert guess_kind(rng.uniform(size=(4, 1)), False) == OutputKind("flag", 0.5)
    assert guess_kind(rng.normal(size=(4, 1)) * 5, False) == OutputKind("flag", 0.0)
    assert guess_kind(rng.uniform(size=(2, 16, 16, 1)), False) == OutputKind("mask", 0.5)
    assert guess_kind(rng.normal(size=(2, 896, 1)) * 9, False) == OutputKind("scores", 0.0)
    softmax = rng.uniform(size=(4, 10))
    assert guess_kind(softmax / softmax.sum(1, keepdims=True), False).kind == "classes"
    assert guess_kind(rng.normal(size=(4, 63)), False).kind == "regression"
    assert guess_kind(rng.normal(size=(4, 63)), True).kind == "classes"


def test_kinds_chosen_by_the_user_are_checked() -> None:
    assert parse_kind("landmarks:dims=2") == OutputKind("landmarks", dims=2)
    assert parse_kind("scores:threshold=0.7,boxes=reg") == OutputKind("scores", 0.7, boxes="reg")
    with pytest.raises(UsageError, match="unknown output kind"):
        parse_kind("boxes")
    with pytest.raises(UsageError, match="bad option"):
        parse_kind("flag:threshold=high")
    with pytest.raises(DataError, match="nope"):
        OutputsAccumulator.create(["a"], ["a"], Measures.parse(["nope=flag"]))


def test_detection_decisions_counted_by_hand() -> None:
    # 3 samples × 4 anchors, logits (threshold 0)
    ref = np.array([[1, -1, 2, -3], [-1, -1, -1, -1], [3, -2, -2, -2]], float)[..., None]
    cand = np.array([[1, 1, -2, -3], [2, -1, -1, -1], [-3, -2, -2, -2]], float)[..., None]
    d = Decisions(OutputKind("scores", 0.0))
    d.update(ref, cand, None)
    v = d.values()
    # reference positives: (0,0), (0,2), (2,0); candidate: (0,0), (0,1), (1,0); both: (0,0)
    assert (v["reference_positives"], v["candidate_positives"]) == (3, 3)
    assert v["precision"] == pytest.approx(1 / 3) and v["recall"] == pytest.approx(1 / 3)
    assert (v["appeared"], v["vanished"]) == (1, 1)  # sample 1 appeared, sample 2 vanished
    assert v["agreement"] == 0.0  # every sample changed somewhere
    assert v["decision_agreement"] == pytest.approx(8 / 12)


def test_mask_iou_by_hand_and_two_empty_masks_agree() -> None:
    ref = np.zeros((2, 2, 2, 1))
    cand = np.zeros((2, 2, 2, 1))
    ref[0, 0, :, 0] = 0.9  # two pixels
    cand[0, :, 0, 0] = 0.9  # two pixels, one shared
    m = Masks(OutputKind("mask", 0.5))
    m.update(ref, cand, None)
    assert m.values() == {"iou_mean": pytest.approx((1 / 3 + 1) / 2), "iou_worst": 1 / 3}


def _output(name: str, sqnr: float, **metrics: float) -> OutputResult:
    return OutputResult(name, name, metrics.pop("kind", "regression"), {"sqnr_db": sqnr, **metrics})


def test_regression_errors_by_hand_and_a_nan_is_never_hidden() -> None:
    acc = Regression(OutputKind("regression"))
    ref = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    acc.update(ref, ref + np.array([[0.5, -1.5], [0.0, 0.25]], np.float32), None)
    assert acc.values() == {"mae": (0.5 + 1.5 + 0.0 + 0.25) / 4, "max_error": 1.5}
    acc.update(ref, np.full_like(ref, np.nan), None)
    acc.update(ref, ref, None)  # a later clean batch does not wash the NaN out
    assert np.isnan(acc.values()["max_error"]) and np.isnan(acc.values()["mae"])


def test_the_headline_is_the_worst_output() -> None:
    outputs = (_output("a", 30.0, max_abs_error=9.0), _output("b", 3.6, max_abs_error=0.1))
    assert headline(outputs)["sqnr_db"] == 3.6 and headline(outputs)["max_abs_error"] == 0.1


def test_budgets_name_the_broken_output() -> None:
    flag = _output("presence", 20.0, kind="flag", agreement=0.5, threshold=0.5)
    flag = OutputResult("presence", "presence", "flag", {**flag.metrics, "decisions_lost": 0.5})
    row = CandidateResult("int8", "int8", outputs=(_output("world", 3.6), flag))
    result = CheckResult(None, {}, (row,))
    assert result.violations(min_agreement=0.9) == [
        "int8: output presence agreement 0.5000 < --min-agreement 0.9"
    ]
    assert result.violations(min_agreement=0.9, outputs=["world"]) == []
    with pytest.raises(UsageError, match="--budget-output nope"):
        result.violations(min_agreement=0.9, outputs=["nope"])


def test_decision_lost_fires_on_an_unreachable_threshold_not_on_a_kept_one() -> None:
    kept = OutputResult(
        "scores",
        "scores",
        "scores",
        {"threshold": 0.0, "reachable_min": -20.3, "reachable_max": 3.0, "presence_changed": 0.0},
    )
    capped = OutputResult(
        "scores",
        "scores",
        "scores",
        {"threshold": 0.0, "reachable_min": -20.3, "reachable_max": 0.0, "presence_changed": 0.0},
    )
    assert decision_findings([kept]) == ()
    (finding,) = decision_findings([capped])
    assert finding.id == "decision-lost" and finding.evidence["range"] == [-20.3, 0.0]
    assert "cannot reach the threshold 0" in finding.summary


def test_findings_survive_the_resume_cache() -> None:
    """A resumed row keeps what its measurement found (not only the NaN share)."""
    limits = {"threshold": 0.0, "reachable_min": -2.0, "reachable_max": 0.0}
    capped = OutputResult("scores", "scores", "scores", limits)
    row = CandidateResult("int8", "int8", outputs=(capped,), findings=decision_findings([capped]))
    again = CandidateResult.from_dict(json.loads(json.dumps(row.to_dict())))
    assert again.findings == row.findings and again.findings[0].id == "decision-lost"


def test_a_metric_plugin_needs_unsafe() -> None:
    with pytest.raises(UsageError, match="--unsafe"):
        load_plugin("math:dist", unsafe=False)
    with pytest.raises(UsageError, match="no function"):
        load_plugin("math:nothing_here", unsafe=True)
    assert load_plugin("math:dist", unsafe=True)([0], [3]) == 3
