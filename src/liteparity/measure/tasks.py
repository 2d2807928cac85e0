"""Task metrics of one output by its kind (``kinds``), accumulated batch by batch: what a
classifier, detector, landmark or segmentation user cares about, candidate against reference
(and against labels where given). Every ``values()`` is a dict of plain numbers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from liteparity.errors import InternalError
from liteparity.measure.detections import Detections, Related, corner_iou
from liteparity.measure.kinds import (
    CLASSES,
    DETECTIONS,
    FLAG,
    IDS,
    LANDMARKS,
    MASK,
    REGRESSION,
    SCORES,
    OutputKind,
)
from liteparity.plain import ratio

#: Classes up to which per-class accuracy and the reference↔candidate confusion are kept.
MAX_CONFUSION_CLASSES = 32

#: A user metric: ``metric(reference_outputs, candidate_outputs, labels) -> dict`` over one
#: batch, outputs by name; numeric values are averaged over batches weighted by batch size.
UserMetric = Callable[[Mapping[str, np.ndarray], Mapping[str, np.ndarray], Any], Mapping[str, Any]]


@dataclass
class ClassScores:
    """Top-1 agreement; top-1/top-k accuracy, per-class accuracy against integer labels; the
    confusion between the reference's and the candidate's top-1 class."""

    spec: OutputKind
    samples: int = 0
    agree: int = 0
    labelled: int = 0
    top1: int = 0
    topk: int = 0
    reference_top1: int = 0
    confusion: np.ndarray | None = None
    per_class: np.ndarray | None = None  # [correct, seen] per label

    def update(
        self,
        ref: np.ndarray,
        cand: np.ndarray,
        labels: np.ndarray | None,
        related: Related | None = None,
    ) -> None:
        r, c = ref.reshape(len(ref), -1), cand.reshape(len(cand), -1)
        ref_top, cand_top = r.argmax(axis=1), c.argmax(axis=1)
        self.samples += len(r)
        self.agree += int(np.sum(ref_top == cand_top))
        width = r.shape[1]
        if width <= MAX_CONFUSION_CLASSES:
            if self.confusion is None:
                self.confusion = np.zeros((width, width), np.int64)
                self.per_class = np.zeros((width, 2), np.int64)
            cells = np.bincount(ref_top * width + cand_top, minlength=width * width)
            self.confusion += cells.reshape(width, width)
        if labels is None:
            return
        y = np.asarray(labels).reshape(len(r)).astype(np.int64)
        k = min(self.spec.top, width)
        best = np.argpartition(-c, k - 1, axis=1)[:, :k]
        self.labelled += len(y)
        self.top1 += int(np.sum(cand_top == y))
        self.topk += int(np.sum(np.any(best == y[:, None], axis=1)))
        self.reference_top1 += int(np.sum(ref_top == y))
        if self.per_class is not None:
            width_ = len(self.per_class)
            self.per_class[:, 0] += np.bincount(y[cand_top == y], minlength=width_)[:width_]
            self.per_class[:, 1] += np.bincount(y, minlength=width_)[:width_]

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {"agreement": ratio(self.agree, self.samples)}
        if self.labelled:
            out["top1_accuracy"] = self.top1 / self.labelled
            out[f"top{self.spec.top}_accuracy"] = self.topk / self.labelled
            out["reference_top1_accuracy"] = self.reference_top1 / self.labelled
            if self.per_class is not None:
                out["per_class_accuracy"] = [
                    ratio(float(hit), float(seen)) for hit, seen in self.per_class
                ]
        if self.confusion is not None:
            out["confusion"] = self.confusion.tolist()  # rows: reference, columns: candidate
        return out


@dataclass
class Decisions:
    """A flag (one unit) or per-anchor detection scores, decided at a threshold: how many
    positives each model finds, the candidate's positives against the reference's
    (precision, recall), samples where a detection appeared or vanished, and, with
    ``boxes``, the IoU of the box at the reference's top anchor."""

    spec: OutputKind
    samples: int = 0
    changed: int = 0  # samples whose decisions differ anywhere
    agree: int = 0  # decisions (sample × unit) alike
    decisions: int = 0
    reference_positives: int = 0
    candidate_positives: int = 0
    both: int = 0
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
        t = self.spec.threshold
        r = ref.reshape(len(ref), -1) > t
        c = cand.reshape(len(cand), -1) > t
        self.samples += len(r)
        self.changed += int(np.sum(np.any(r != c, axis=1)))
        self.agree += int(np.sum(r == c))
        self.decisions += r.size
        self.reference_positives += int(r.sum())
        self.candidate_positives += int(c.sum())
        self.both += int(np.sum(r & c))
        self.appeared += int(np.sum(~r.any(axis=1) & c.any(axis=1)))
        self.vanished += int(np.sum(r.any(axis=1) & ~c.any(axis=1)))
        if self.spec.boxes is not None and related is not None:
            boxes = (related[0][self.spec.boxes], related[1][self.spec.boxes])
            scores = ref.reshape(len(ref), -1)
            anchors = scores.shape[1]
            for i in np.flatnonzero(r.any(axis=1)):
                top = int(scores[i].argmax())
                ref_box = boxes[0][i].reshape(anchors, -1)[top, :4]
                self.ious.append(box_iou(ref_box, boxes[1][i].reshape(anchors, -1)[top, :4]))

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "threshold": self.spec.threshold,
            "samples": self.samples,
            # samples whose every decision is the reference's (for a detector, per-anchor
            # agreement would be dominated by the thousands of empty anchors)
            "agreement": ratio(self.samples - self.changed, self.samples),
            "decision_agreement": ratio(self.agree, self.decisions),
            "decisions_lost": ratio(self.changed, self.samples),
            "reference_positives": self.reference_positives,
            "candidate_positives": self.candidate_positives,
        }
        if self.spec.kind == SCORES:
            out["precision"] = ratio(self.both, self.candidate_positives)
            out["recall"] = ratio(self.both, self.reference_positives)
            out["appeared"] = self.appeared
            out["vanished"] = self.vanished
            out["presence_changed"] = ratio(self.appeared + self.vanished, self.samples)
            if self.spec.boxes is not None:
                out["top_box_iou"] = float(np.mean(self.ious)) if self.ious else None
        return out


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boxes given as (cx, cy, w, h); 1 for two empty boxes."""

    def corners(box: np.ndarray) -> np.ndarray:
        half = np.abs(box[2:4]) / 2
        return np.concatenate([box[:2] - half, box[:2] + half])

    return corner_iou(corners(a), corners(b))


@dataclass
class Regression:
    """MAE and max error in the output's own units; landmarks also as points (the distance
    between the reference's and the candidate's point: mean and 95th percentile)."""

    spec: OutputKind
    count: int = 0
    abs_sum: float = 0.0
    max_error: float = 0.0
    distances: list[np.ndarray] = field(default_factory=list)

    def update(
        self,
        ref: np.ndarray,
        cand: np.ndarray,
        labels: np.ndarray | None,
        related: Related | None = None,
    ) -> None:
        diff = cand.reshape(len(cand), -1).astype(np.float64) - ref.reshape(len(ref), -1)
        self.count += diff.size
        self.abs_sum += float(np.sum(np.abs(diff)))
        # np.max, not max(): a NaN must stay NaN (max(0.0, nan) is 0.0, a clean-looking lie).
        self.max_error = float(np.max([self.max_error, np.max(np.abs(diff), initial=0.0)]))
        if self.spec.kind == LANDMARKS and diff.shape[1] % self.spec.dims == 0:
            points = diff.reshape(len(diff), -1, self.spec.dims)
            self.distances.append(np.linalg.norm(points, axis=2).ravel())

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mae": ratio(self.abs_sum, self.count), "max_error": self.max_error}
        if self.distances:
            d = np.concatenate(self.distances)
            out["point_distance_mean"] = float(d.mean())
            out["point_distance_p95"] = float(np.percentile(d, 95))
        return out


@dataclass
class Masks:
    """IoU of the thresholded (one channel) or argmax (several) masks, per sample: the mean
    and the worst sample; two empty masks agree fully (IoU 1)."""

    spec: OutputKind
    ious: list[float] = field(default_factory=list)

    def update(
        self,
        ref: np.ndarray,
        cand: np.ndarray,
        labels: np.ndarray | None,
        related: Related | None = None,
    ) -> None:
        if ref.shape[-1] == 1:
            r, c = ref > self.spec.threshold, cand > self.spec.threshold
            self.ious += [_iou(r[i], c[i]) for i in range(len(r))]
            return
        r, c = ref.argmax(axis=-1), cand.argmax(axis=-1)
        classes = range(1, ref.shape[-1])  # class 0: the background
        for i in range(len(r)):
            self.ious.append(float(np.mean([_iou(r[i] == k, c[i] == k) for k in classes])))

    def values(self) -> dict[str, Any]:
        return {
            "iou_mean": float(np.mean(self.ious)) if self.ious else None,
            "iou_worst": float(np.min(self.ious)) if self.ious else None,
        }


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = int(np.sum(a | b))
    return float(np.sum(a & b)) / union if union else 1.0


@dataclass
class Ids:
    """Integer outputs (an argmax's class ids, a count, token ids) compared exactly: the share
    of samples whose every value is the reference's (``agreement``) and of values alike."""

    spec: OutputKind
    samples: int = 0
    agree: int = 0
    equal: int = 0
    values_seen: int = 0

    def update(
        self,
        ref: np.ndarray,
        cand: np.ndarray,
        labels: np.ndarray | None,
        related: Related | None = None,
    ) -> None:
        same = cand.reshape(len(cand), -1) == ref.reshape(len(ref), -1)
        self.samples += len(same)
        self.agree += int(np.sum(same.all(axis=1)))
        self.equal += int(np.sum(same))
        self.values_seen += same.size

    def values(self) -> dict[str, Any]:
        return {
            "agreement": ratio(self.agree, self.samples),
            "equal_share": ratio(self.equal, self.values_seen),
        }


Task = ClassScores | Decisions | Regression | Masks | Detections | Ids


def task_for(spec: OutputKind) -> Task:
    if spec.kind == CLASSES:
        return ClassScores(spec)
    if spec.kind in (FLAG, SCORES):
        return Decisions(spec)
    if spec.kind == MASK:
        return Masks(spec)
    if spec.kind in (REGRESSION, LANDMARKS):
        return Regression(spec)
    if spec.kind == DETECTIONS:
        return Detections(spec)
    if spec.kind == IDS:
        return Ids(spec)
    raise InternalError(f"no task metric for the output kind {spec.kind!r}")
