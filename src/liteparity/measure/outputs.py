"""Every output of a candidate measured on its own: error metrics (max|err|, RMSE, SQNR,
cosine) and the task metrics of its kind, accumulated batch by batch; the candidate's headline
is its worst output (lowest SQNR), so the output with the largest scale no longer hides the
others. A user's callable metric rides along, over every output by name."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from liteparity.errors import DataError
from liteparity.measure.kinds import (
    DETECTIONS,
    FLAG,
    IDS,
    REGRESSION,
    OutputKind,
    guess_kind,
    parse_kind,
    postprocess_kinds,
    with_threshold,
)
from liteparity.measure.metrics import (
    ErrorAccumulator,
    TaskAccumulator,
    check_labels,
    drop,
    task_kind,
)
from liteparity.measure.tasks import Task, UserMetric, task_for
from liteparity.results.check import ACCURACY, OutputResult

#: Headline fields read from the worst output.
HEADLINE = ("max_abs_error", "rmse", "sqnr_db", "cosine")


@dataclass(frozen=True)
class Measures:
    """How the outputs are measured: kinds the user picked by output name, and a callable."""

    kinds: Mapping[str, OutputKind] = field(default_factory=dict)
    user: UserMetric | None = None

    @classmethod
    def parse(cls, output_metrics: Sequence[str], user: UserMetric | None = None) -> Measures:
        """From ``--metric OUTPUT=KIND[:options]`` texts."""
        kinds = {}
        for text in output_metrics:
            name, _, kind = text.partition("=")
            kinds[name] = parse_kind(kind)
        return cls(kinds, user)


@dataclass
class OutputAccumulator:
    """One output's running error and task metrics, and the metric its budget reads (``drop``:
    against its own labels, ``y:<name>``, or the reference's values), for the candidate and
    for the reference."""

    name: str
    matched: str
    spec: OutputKind | None  # None: guessed from the first batch
    reach: tuple[float, float] | None = None  # the real range the candidate's codes can hold
    part_of: str | None = None  # the detections output this one is part of
    errors: ErrorAccumulator = field(default_factory=lambda: ErrorAccumulator(classify=False))
    task: Task | None = None
    budget: tuple[TaskAccumulator, TaskAccumulator] | None = None  # candidate, reference

    def update(
        self,
        ref: np.ndarray,
        cand: np.ndarray,
        labels: np.ndarray | None,
        outputs: tuple[Mapping[str, np.ndarray], Mapping[str, np.ndarray]],
    ) -> None:
        if self.task is None:
            integer = labels is not None and np.issubdtype(np.asarray(labels).dtype, np.integer)
            self.spec = with_threshold(self.spec or guess_kind(ref, integer), ref)
            self.task = task_for(self.spec)
            kind, where = task_kind(labels), f"output {self.name}"
            threshold = self.spec.threshold if self.spec.kind == FLAG else None
            self.budget = (
                TaskAccumulator(kind, output=where, threshold=_or(threshold, 0.5)),
                TaskAccumulator(kind, output=where, threshold=_or(threshold, 0.5)),
            )
            spec = self.spec
            for option, named in (
                ("boxes", spec.boxes),
                ("classes", spec.classes),
                ("count", spec.count),
            ):
                if named is not None and named not in outputs[0]:
                    have = sorted(outputs[0])
                    raise DataError(f"{option}={named}: no such output (have {have})")
        candidate, reference = self.budget  # type: ignore[misc]
        if candidate.kind == ACCURACY:
            check_labels(labels, ref, f"output {self.name}")
        candidate.update(cand, labels, ref)
        reference.update(ref, labels, ref)
        self.errors.update([ref], [cand])
        self.task.update(ref, cand, labels, (dict(outputs[0]), dict(outputs[1])))

    def result(self) -> OutputResult:
        metrics: dict[str, Any] = {k: v for k, v in self.errors.metrics().items() if v is not None}
        if self.task is not None:
            metrics.update(self.task.values())
        if self.budget is not None:
            candidate, reference = self.budget
            ref_value = reference.baseline
            metrics["task_metric"] = candidate.kind
            metrics["task_value"] = candidate.value
            metrics["reference_task_value"] = ref_value
            metrics["drop"] = drop(
                candidate.kind, ref_value, candidate.value, reference.reference_power
            )
        if self.reach is not None:
            metrics["reachable_min"], metrics["reachable_max"] = self.reach
        if self.part_of is not None:
            metrics["part_of"] = self.part_of
        kind = self.spec.kind if self.spec else "none"
        return OutputResult(self.name, self.matched, kind, metrics)


@dataclass
class UserAccumulator:
    """A user's callable, its numeric answers averaged over batches by batch size."""

    metric: UserMetric
    names: Sequence[str]
    samples: int = 0
    sums: dict[str, float] = field(default_factory=dict)

    def update(self, ref: list[np.ndarray], cand: list[np.ndarray], labels: Any) -> None:
        by_name = dict(zip(self.names, ref, strict=True)), dict(zip(self.names, cand, strict=True))
        answer = self.metric(*by_name, labels)
        size = len(ref[0])
        for key, value in dict(answer).items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value) * size
        self.samples += size

    def values(self) -> dict[str, float]:
        return {k: v / self.samples for k, v in self.sums.items()} if self.samples else {}


@dataclass
class OutputsAccumulator:
    """Every output of one candidate, in the reference's order."""

    outputs: list[OutputAccumulator]
    user: UserAccumulator | None = None

    @classmethod
    def create(
        cls,
        names: Sequence[str],
        matched: Sequence[str],
        measures: Measures,
        reach: Sequence[tuple[float, float] | None] = (),
    ) -> OutputsAccumulator:
        kinds, user = {**postprocess_kinds(names), **measures.kinds}, measures.user
        unknown = sorted(set(kinds) - set(names))
        if unknown:
            raise DataError(f"--metric names output(s) {unknown}: the model has {list(names)}")
        # a detector's boxes, classes and count are measured through its detections: plain
        # values on their own, and out of the default budget
        parts = {
            part: name
            for name, spec in kinds.items()
            if spec.kind == DETECTIONS
            for part in (spec.boxes, spec.classes, spec.count)
            if part is not None
        }
        kinds = {**{part: OutputKind(REGRESSION) for part in parts}, **kinds}
        ranges = list(reach) or [None] * len(names)
        return cls(
            [
                OutputAccumulator(n, m, kinds.get(n), r, part_of=parts.get(n))
                for n, m, r in zip(names, matched, ranges, strict=True)
            ],
            UserAccumulator(user, names) if user is not None else None,
        )

    def update(
        self, ref: list[np.ndarray], cand: list[np.ndarray], labels: Mapping[str, np.ndarray]
    ) -> None:
        """One batch; ``labels`` by output name (``y`` is the first output's)."""
        names = [o.name for o in self.outputs]
        by_name = (dict(zip(names, ref, strict=True)), dict(zip(names, cand, strict=True)))
        for k, output in enumerate(self.outputs):
            output.update(ref[k], cand[k], labels.get(output.name), by_name)
        if self.user is not None:
            self.user.update(ref, cand, labels.get(names[0]) if names else None)

    def results(self) -> tuple[OutputResult, ...]:
        return tuple(o.result() for o in self.outputs)


def headline(outputs: Sequence[OutputResult]) -> dict[str, float | None]:
    """The candidate's headline numbers: those of its worst output (lowest SQNR), and the
    lowest agreement of any output that has one. Integer ids (``ids``: compared exactly, by
    their agreement) have no meaningful SQNR or error size: one other class id is not "7
    away"; they set the numbers only when every output is ids."""
    if not outputs:
        return dict.fromkeys(("agreement", *HEADLINE))
    valued = [o for o in outputs if o.kind != IDS] or list(outputs)
    worst = min(valued, key=lambda o: _sqnr(o))
    agreements = [o.agreement for o in outputs if o.agreement is not None]
    return {
        "agreement": min(agreements) if agreements else None,
        **{k: worst.metrics.get(k) for k in HEADLINE},
    }


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _sqnr(output: OutputResult) -> float:
    value = output.sqnr_db
    return math.inf if value is None or math.isnan(value) else value
