"""Detections of a real ``TFLite_Detection_PostProcess`` model (built in
``tests/detection_model.py``: none ships offline), matched between the float model and its
int8 conversion, against a matching loop written here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import liteparity
from tests.detection_model import build, images

METRIC = "output_2=detections:boxes=output_0,classes=output_1,count=output_3,threshold=0.7"


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return build(tmp_path_factory.mktemp("detector"))


def run(path: Path, x: np.ndarray) -> list[dict[str, np.ndarray]]:
    """Every output of every sample, one sample at a time, by signature key."""
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(path)).get_signature_runner()
    return [runner(image=x[i : i + 1]) for i in range(len(x))]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """(ymin, xmin, ymax, xmax) boxes, written out."""
    h = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    w = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = h * w
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 1.0


def loop(reference: list, candidate: list, threshold: float = 0.7) -> dict[str, float]:
    """Greedy matching, highest candidate score first, same class, IoU >= 0.5."""
    ref_n = cand_n = matched = 0
    ious = []
    for r, c in zip(reference, candidate, strict=True):

        def kept(out):
            n = int(out["output_3"][0])
            return [
                (out["output_0"][0, k], out["output_1"][0, k], out["output_2"][0, k])
                for k in range(n)
                if out["output_2"][0, k] > threshold
            ]

        refs, cands = kept(r), kept(c)
        ref_n, cand_n = ref_n + len(refs), cand_n + len(cands)
        free = list(range(len(refs)))
        for box, cls, _ in sorted(cands, key=lambda d: -d[2]):
            scored = [(iou(refs[j][0], box), j) for j in free if refs[j][1] == cls]
            scored = [(v, j) for v, j in scored if v >= 0.5]
            if scored:
                value, j = max(scored, key=lambda s: (s[0], -s[1]))
                free.remove(j)
                matched += 1
                ious.append(value)
    return {
        "reference_positives": ref_n,
        "candidate_positives": cand_n,
        "matched": matched,
        "precision": matched / cand_n,
        "recall": matched / ref_n,
        "matched_iou_mean": float(np.mean(ious)),
    }


def test_detections_match_an_independent_loop(detector) -> None:
    float_model, int8 = detector
    x = images(12)
    result = liteparity.check(
        float_model, data=x, candidates=[float_model, int8], output_metrics=[METRIC]
    )
    same, quantized = (
        {o.name: o for o in c.outputs}["output_2"].metrics for c in result.candidates
    )
    reference = run(float_model, x)
    expected = loop(reference, run(int8, x))
    assert expected["reference_positives"] > 0 and expected["matched"] < max(
        expected["reference_positives"], expected["candidate_positives"]
    )  # the int8 model really moves some detections
    for key, value in expected.items():
        assert quantized[key] == pytest.approx(value, rel=1e-5), key
    assert same["precision"] == same["recall"] == same["matched_iou_mean"] == 1.0
    assert same["agreement"] == 1.0 and not result.candidates[0].findings
    # boxes, classes and count are measured through the detections, and left out of the
    # default budget: the classes' MSE is no accuracy
    parts = {o.name: o for o in result.candidates[1].outputs if o.name != "output_2"}
    assert {o.metrics["part_of"] for o in parts.values()} == {"output_2"}
    assert {o.kind for o in parts.values()} == {"regression"}
    assert max(o.metrics["drop"] for o in parts.values()) > 1.0 > quantized["drop"]
    assert result.violations(max_drop=1.0) == []
    assert result.violations(max_drop=1.0, budget_outputs=["output_1"])
