"""Outputs matched by name, kinds, task metrics, budgets and ``decision-lost`` on hand-made
arrays, against values computed by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from liteparity.cli.check import load_plugin
from liteparity.errors import DataError, UsageError
from liteparity.measure.decisions import decision_findings
from liteparity.measure.detections import Detections
from liteparity.measure.evaluate import output_order
from liteparity.measure.kinds import OutputKind, guess_kind, parse_kind, postprocess_kinds
from liteparity.measure.metrics import TaskAccumulator, check_labels, classes
from liteparity.measure.outputs import Measures, OutputsAccumulator, headline
from liteparity.measure.tasks import Decisions, Masks, Regression, task_for
from liteparity.results.check import ACCURACY, CandidateResult, CheckResult, OutputResult
from liteparity.results.fix import Budget


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


def test_post_processed_detections_matched_by_hand() -> None:
    """One sample, (ymin, xmin, ymax, xmax) boxes. Reference: A (class 1) and B (class 2)
    above 0.5, C below. Candidate: A' (class 1, IoU 0.81 with A), B' (class 1 where B was:
    another class, no match), and D (class 2, nowhere near B)."""
    ref_boxes = [[0, 0, 1, 1], [2, 2, 3, 3], [5, 5, 6, 6]]
    cand_boxes = [[0, 0, 0.9, 0.9], [2, 2, 3, 3], [7, 7, 8, 8], [9, 9, 9, 9]]
    related = (
        {
            "boxes": np.array([[*ref_boxes, [0, 0, 0, 0]]], float),
            "classes": np.array([[1, 2, 1, 0]], float),
            "count": np.array([[3.0]]),
        },
        {
            "boxes": np.array([cand_boxes], float),
            "classes": np.array([[1, 1, 2, 0]], float),
            "count": np.array([[3.0]]),
        },
    )
    ref_scores, cand_scores = np.array([[0.9, 0.8, 0.4, 0.0]]), np.array([[0.7, 0.9, 0.6, 0.99]])
    spec = parse_kind("detections:boxes=boxes,classes=classes,count=count,threshold=0.5")
    d = Detections(spec)
    d.update(ref_scores, cand_scores, None, related)
    v = d.values()  # the 4th candidate detection is past its count: not kept
    assert (v["reference_positives"], v["candidate_positives"], v["matched"]) == (2, 3, 1)
    assert v["precision"] == pytest.approx(1 / 3) and v["recall"] == pytest.approx(1 / 2)
    assert v["matched_iou_mean"] == pytest.approx(0.81)  # 0.9 x 0.9 inside 1 x 1
    assert v["agreement"] == 0.0 and v["presence_changed"] == 0.0
    assert postprocess_kinds(
        ["detection_boxes", "detection_classes", "detection_scores", "num_detections"]
    ) == {
        "detection_scores": OutputKind(
            "detections",
            boxes="detection_boxes",
            classes="detection_classes",
            count="num_detections",
        )
    }
    with pytest.raises(UsageError, match="boxes=OUTPUT"):
        parse_kind("detections:classes=c")


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


def test_an_integer_output_is_ids_compared_exactly_and_its_own_class() -> None:
    """An argmax inside the model (class ids) is neither a flag at a threshold nor a regression."""
    ref = np.array([3, 7, 0, 9], np.int32)
    cand = np.array([3, 1, 0, 9], np.int32)
    assert guess_kind(ref, integer_labels=True).kind == "ids"
    assert guess_kind(ref.astype(bool), integer_labels=False).kind == "ids"
    acc = task_for(guess_kind(ref, False))
    acc.update(ref, cand, None)
    acc.update(np.array([[1, 2], [3, 4]]), np.array([[1, 2], [3, 5]]), None)
    assert acc.values() == {"agreement": 4 / 6, "equal_share": 6 / 8}
    assert classes(cand).tolist() == [3, 1, 0, 9]  # the ids, not "> 0.5"
    check_labels(np.array([3, 7, 0, 9]), ref)  # any id can be a class: no 2-class refusal
    accuracy = TaskAccumulator(ACCURACY)
    accuracy.update(cand, np.array([3, 7, 0, 8]), ref)
    assert accuracy.value == 0.5


def test_the_headline_is_the_worst_output() -> None:
    outputs = (_output("a", 30.0, max_abs_error=9.0), _output("b", 3.6, max_abs_error=0.1))
    assert headline(outputs)["sqnr_db"] == 3.6 and headline(outputs)["max_abs_error"] == 0.1
    # class ids (an argmax inside the model) have no error size: a scores output heads
    ids = _output("cls", 1.2, kind="ids", agreement=0.75, max_abs_error=7.0)
    scores = _output("scores", 25.0, kind="scores", max_abs_error=0.02)
    top = headline((ids, scores))
    assert top["sqnr_db"] == 25.0 and top["max_abs_error"] == 0.02
    assert top["agreement"] == 0.75  # the ids' agreement is still the lowest agreement
    assert headline((ids,))["sqnr_db"] == 1.2  # ids alone: they are all there is


def test_budgets_name_the_broken_output() -> None:
    flag = _output("presence", 20.0, kind="flag", agreement=0.5, threshold=0.5)
    flag = OutputResult("presence", "presence", "flag", {**flag.metrics, "decisions_lost": 0.5})
    row = CandidateResult("int8", "int8", outputs=(_output("world", 3.6), flag))
    result = CheckResult(None, {}, (row,))
    assert result.violations(min_agreement=0.9) == [
        "int8: output presence agreement 0.5000 < --min-agreement 0.9"
    ]
    assert result.violations(min_agreement=0.9, budget_outputs=["world"]) == []
    with pytest.raises(UsageError, match="--budget-output nope"):
        result.violations(min_agreement=0.9, budget_outputs=["nope"])


def test_each_output_gets_its_own_drop_against_its_own_labels() -> None:
    """A flag labelled with class ids (accuracy points), a regression labelled with float
    targets (% MSE increase), and one without labels (MSE as % of the reference's power)."""
    ref = {"flag": np.array([[0.9], [0.2], [0.7], [0.1]]), "reg": np.array([[1.0, 2.0]] * 4)}
    cand = {"flag": np.array([[0.4], [0.2], [0.7], [0.6]]), "reg": np.array([[1.5, 2.0]] * 4)}
    free = {"free": np.array([[2.0], [0.0], [2.0], [0.0]])}
    labels = {"flag": np.array([1, 0, 0, 0]), "reg": np.array([[1.0, 1.0]] * 4)}
    names = ["flag", "reg", "free"]
    acc = OutputsAccumulator.create(names, names, Measures.parse(["free=regression"]))
    acc.update(
        [ref["flag"], ref["reg"], free["free"]],
        [cand["flag"], cand["reg"], free["free"] + 1.0],
        labels,
    )
    out = {o.name: o.metrics for o in acc.results()}
    # flag: reference right on samples 0, 1, 3 (3/4); candidate on 1 only (1/4): 50 points
    assert (out["flag"]["task_metric"], out["flag"]["reference_task_value"]) == ("accuracy", 0.75)
    assert out["flag"]["drop"] == pytest.approx(50.0)
    # reg: reference MSE (0 + 1) / 2 = 0.5, candidate (0.25 + 1) / 2 = 0.625: +25 %
    assert out["reg"]["task_metric"] == "mse" and out["reg"]["drop"] == pytest.approx(25.0)
    # free: MSE 1 against the reference's mean square (4 + 0 + 4 + 0) / 4 = 2: 50 %
    assert out["free"]["task_metric"] == "mse_vs_reference"
    assert out["free"]["drop"] == pytest.approx(50.0)
    row = CandidateResult("int8", "int8", outputs=acc.results())
    result = CheckResult(None, {}, (row,))
    assert result.violations(max_drop=40.0) == [
        "int8: output flag drop 50.00 accuracy points > --max-drop 40.0",
        "int8: output free drop 50.00 % > --max-drop 40.0",
    ]
    assert result.violations(max_drop=40.0, budget_outputs=["reg"]) == []


def test_a_lost_decision_breaks_fixs_budget_whatever_the_numbers() -> None:
    budget = Budget(max_drop=1.0, outputs=("presence",))
    assert budget.met(0.0, None) and not budget.met(0.0, None, ["presence"])
    assert not budget.met(1.5, None)


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
