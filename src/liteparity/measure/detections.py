"""Detections as a detector's user reads them: the boxes, classes and scores that
``TFLite_Detection_PostProcess`` (or any post-processed detector) returns, matched between
the reference and the candidate.

Per sample, the detections kept are the first ``count`` whose score is above the threshold.
The candidate's detections are matched to the reference's greedily, highest score first,
each to the unmatched reference detection of the same class with the highest IoU, if that
IoU reaches ``iou`` (0.5 by default, as in COCO's AP50). The reference plays the ground
truth: precision is the share of the candidate's detections matched, recall the share of the
reference's; the IoU of matched boxes says how far they moved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from liteparity.errors import InternalError
from liteparity.measure.kinds import OutputKind
from liteparity.plain import ratio

#: Both models' outputs of one batch, by name: (reference, candidate).
Related = tuple[dict[str, np.ndarray], dict[str, np.ndarray]]


def corner_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boxes given by opposite corners (``(y_min, x_min, y_max, x_max)`` or
    ``(x_min, y_min, x_max, y_max)``: the same for both); 1 for two empty boxes."""
    a_lo, a_hi = np.minimum(a[:2], a[2:4]), np.maximum(a[:2], a[2:4])
    b_lo, b_hi = np.minimum(b[:2], b[2:4]), np.maximum(b[:2], b[2:4])
    inter = float(np.prod(np.clip(np.minimum(a_hi, b_hi) - np.maximum(a_lo, b_lo), 0, None)))
    union = float(np.prod(a_hi - a_lo) + np.prod(b_hi - b_lo)) - inter
    return inter / union if union > 0 else 1.0


def match(
    reference: tuple[np.ndarray, np.ndarray],
    candidate: tuple[np.ndarray, np.ndarray, np.ndarray],
    iou: float,
) -> list[tuple[int, int, float]]:
    """Greedy matching of one sample's detections: ``reference`` is (boxes, classes),
    ``candidate`` (boxes, classes, scores). Returns (reference index, candidate index,
    IoU) for each match."""
    ref_boxes, ref_classes = reference
    boxes, classes, scores = candidate
    taken: set[int] = set()
    pairs = []
    for k in np.argsort(-scores, kind="stable"):
        best, best_iou = -1, -1.0
        for j in range(len(ref_boxes)):
            if j in taken or ref_classes[j] != classes[k]:
                continue
            value = corner_iou(ref_boxes[j], boxes[k])
            if value > best_iou:  # ties: the first reference detection
                best, best_iou = j, value
        if best >= 0 and best_iou >= iou:
            taken.add(best)
            pairs.append((best, int(k), best_iou))
    return pairs


@dataclass
class Detections:
    """The kept detections of both models, matched (see the module's docstring)."""

    spec: OutputKind
    samples: int = 0
    exact: int = 0  # samples whose every detection is matched, both ways
    reference_positives: int = 0
    candidate_positives: int = 0
    matched: int = 0
    appeared: int = 0
    vanished: int = 0
    ious: list[float] = field(default_factory=list)

    def update(
        self,
        ref: np.ndarray,
        cand: np.ndarray,
        labels: np.ndarray | None,
        related: Related | None = None,
    ) -> None:
        if related is None:
            raise InternalError("detections were measured without their boxes output")
        for i in range(len(ref)):
            r_boxes, r_classes, _ = self._kept(ref, related[0], i)
            c_boxes, c_classes, c_scores = self._kept(cand, related[1], i)
            pairs = match((r_boxes, r_classes), (c_boxes, c_classes, c_scores), self.spec.iou)
            self.samples += 1
            self.reference_positives += len(r_boxes)
            self.candidate_positives += len(c_boxes)
            self.matched += len(pairs)
            self.exact += int(len(pairs) == len(r_boxes) == len(c_boxes))
            self.appeared += int(not len(r_boxes) and len(c_boxes) > 0)
            self.vanished += int(len(r_boxes) > 0 and not len(c_boxes))
            self.ious += [value for _, _, value in pairs]

    def _kept(
        self, scores: np.ndarray, outputs: dict[str, np.ndarray], i: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sample ``i``'s detections above the threshold, among the first ``count``."""
        s = scores[i].reshape(-1)
        boxes = outputs[str(self.spec.boxes)][i].reshape(len(s), -1)
        classes = (
            outputs[self.spec.classes][i].reshape(-1)
            if self.spec.classes is not None
            else np.zeros(len(s))
        )
        n = len(s)
        if self.spec.count is not None:
            n = min(n, round(float(outputs[self.spec.count][i].reshape(-1)[0])))
        keep = np.flatnonzero(s[:n] > float(self.spec.threshold or 0.0))
        return boxes[keep, :4], np.round(classes[keep]), s[keep]

    def values(self) -> dict[str, Any]:
        return {
            "threshold": self.spec.threshold,
            "iou_threshold": self.spec.iou,
            "samples": self.samples,
            "agreement": ratio(self.exact, self.samples),
            "reference_positives": self.reference_positives,
            "candidate_positives": self.candidate_positives,
            "matched": self.matched,
            "precision": ratio(self.matched, self.candidate_positives),
            "recall": ratio(self.matched, self.reference_positives),
            "matched_iou_mean": float(np.mean(self.ious)) if self.ious else None,
            "appeared": self.appeared,
            "vanished": self.vanished,
            "presence_changed": ratio(self.appeared + self.vanished, self.samples),
        }
