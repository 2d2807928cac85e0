"""What an output means, so that it is measured by what its user cares about.

The kind is read from the output where the output says it (one unit: a binary flag; H×W×C: a
segmentation mask; N×1: per-anchor detection scores; rows of probabilities summing to 1, or an
output with integer labels: class scores; the four outputs of ``TFLite_Detection_PostProcess``,
by their names: detections; an integer output, such as an argmax's class ids or a count:
ids, compared exactly) and is a plain regression otherwise; the user names it where the
output cannot say (``--metric OUTPUT=KIND[:options]``, e.g. ``landmarks:dims=3``,
``scores:threshold=0,boxes=regressors``, ``classes:top=5``,
``detections:boxes=B,classes=C,count=N``).

Decision thresholds are in the output's own units: 0.5 for probabilities (values in [0, 1]),
0 for logits (sigmoid(0) = 0.5), unless given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from liteparity.errors import UsageError

CLASSES, FLAG, REGRESSION, LANDMARKS, MASK, SCORES, DETECTIONS, IDS = (
    "classes",
    "flag",
    "regression",
    "landmarks",
    "mask",
    "scores",
    "detections",
    "ids",
)
KINDS = (CLASSES, FLAG, REGRESSION, LANDMARKS, MASK, SCORES, DETECTIONS, IDS)

#: Kinds whose values are decisions at a threshold (``decision-lost`` watches them).
DECISIONS = (FLAG, SCORES, MASK, DETECTIONS)

#: The names ``TFLite_Detection_PostProcess``'s outputs go by, as (boxes, classes, scores,
#: count): the op's own tensor names, and the TF Object Detection API's signature keys.
POSTPROCESS_NAMES = (
    tuple(f"TFLite_Detection_PostProcess{s}" for s in ("", ":1", ":2", ":3")),
    ("detection_boxes", "detection_classes", "detection_scores", "num_detections"),
)


@dataclass(frozen=True)
class OutputKind:
    """An output's kind and its options (None: read from the reference's values)."""

    kind: str
    threshold: float | None = None  # decision threshold, in the output's own units
    dims: int = 3  # landmarks: coordinates per point
    top: int = 5  # classes: the k of top-k accuracy
    boxes: str | None = None  # scores: each anchor's box (cx, cy, w, h); detections: corners
    classes: str | None = None  # detections: the output holding each detection's class
    count: str | None = None  # detections: the output holding how many detections are valid
    iou: float = 0.5  # detections: the IoU a candidate detection needs to match


def parse_kind(text: str) -> OutputKind:
    """``KIND[:key=value,...]`` (``flag:threshold=0.7``) → ``OutputKind``."""
    kind, _, options = text.partition(":")
    if kind not in KINDS:
        raise UsageError(f"unknown output kind {kind!r}: choose from {', '.join(KINDS)}")
    spec = OutputKind(kind)
    for option in filter(None, options.split(",")):
        key, _, value = option.partition("=")
        try:
            if key == "threshold":
                spec = replace(spec, threshold=float(value))
            elif key == "dims":
                spec = replace(spec, dims=int(value))
            elif key == "top":
                spec = replace(spec, top=int(value))
            elif key == "iou":
                spec = replace(spec, iou=float(value))
            elif key == "boxes" and value:
                spec = replace(spec, boxes=value)
            elif key == "classes" and value:
                spec = replace(spec, classes=value)
            elif key == "count" and value:
                spec = replace(spec, count=value)
            else:
                raise ValueError(key)
        except ValueError:
            raise UsageError(
                f"bad option {option!r} for {kind}: expected threshold=FLOAT, dims=INT, "
                "top=INT, iou=FLOAT, boxes=OUTPUT, classes=OUTPUT or count=OUTPUT"
            ) from None
    if spec.kind == DETECTIONS and spec.boxes is None:
        raise UsageError(f"{text!r}: detections need boxes=OUTPUT (and classes=, count=)")
    return spec


def postprocess_kinds(names: Sequence[str]) -> dict[str, OutputKind]:
    """The detections kind for the scores of ``TFLite_Detection_PostProcess`` when the
    model's outputs carry its names (``POSTPROCESS_NAMES``)."""
    for boxes, classes, scores, count in POSTPROCESS_NAMES:
        if {boxes, classes, scores, count} <= set(names):
            return {scores: OutputKind(DETECTIONS, boxes=boxes, classes=classes, count=count)}
    return {}


def guess_kind(reference: np.ndarray, integer_labels: bool) -> OutputKind:
    """The kind a batch of the reference's output (batch first) says it is."""
    if is_integer(reference):  # ids (an argmax, a count): no threshold, no scores to rank
        return OutputKind(IDS)
    shape = reference.shape[1:]
    width = int(np.prod(shape)) if shape else 1
    probabilities = reference.size > 0 and reference.min() >= 0 and reference.max() <= 1
    threshold = 0.5 if probabilities else 0.0
    if width == 1:
        return OutputKind(FLAG, threshold)
    if integer_labels:
        return OutputKind(CLASSES)
    if len(shape) >= 3 and shape[-3] > 1 and shape[-2] > 1:
        return OutputKind(MASK, threshold if shape[-1] == 1 else None)
    if len(shape) == 2 and shape[-1] == 1:
        return OutputKind(SCORES, threshold)
    rows = reference.reshape(len(reference), -1)
    if len(shape) == 1 and probabilities and np.allclose(rows.sum(axis=1), 1, atol=1e-3):
        return OutputKind(CLASSES)
    return OutputKind(REGRESSION)


def is_integer(values: np.ndarray) -> bool:
    """Whether an output holds integers (or booleans) by its type: ids, not scores."""
    return bool(np.issubdtype(values.dtype, np.integer) or values.dtype == np.bool_)


def with_threshold(spec: OutputKind, reference: np.ndarray) -> OutputKind:
    """``spec`` with its threshold read from the reference's values where the user gave none."""
    if spec.threshold is not None or spec.kind not in DECISIONS:
        return spec
    probabilities = reference.size > 0 and reference.min() >= 0 and reference.max() <= 1
    return replace(spec, threshold=0.5 if probabilities else 0.0)
