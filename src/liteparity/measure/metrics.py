"""Output and task metrics, accumulated batch by batch (memory does not grow with the data).

Error metrics are over every output value of every output: ``max_abs_error``, ``rmse``,
``sqnr_db = 10·log10(Σref² / Σ(ref−cand)²)`` and ``cosine`` (the mean over samples of the
cosine between the reference's and the candidate's output vectors). A candidate's headline
task metric and top-1 ``agreement`` read the first output; ``measure.outputs`` gives every
output its own, against its own labels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from liteparity.errors import DataError, InternalError
from liteparity.measure.kinds import is_integer
from liteparity.results.check import ACCURACY, MSE, MSE_VS_REFERENCE, NO_TASK

#: Errors kept per candidate for the report's histogram (memory stays bounded).
ERROR_SAMPLE = 4096


def task_kind(labels: np.ndarray | None) -> str:
    """Which task metric fits the labels (integer class ids → accuracy)."""
    if labels is None:
        return MSE_VS_REFERENCE
    return ACCURACY if np.issubdtype(np.asarray(labels).dtype, np.integer) else MSE


def classes(output: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Top-1 class per sample: argmax over the last axis, or ``> threshold`` for one unit
    (0.5 for a sigmoid, 0 for a logit); one integer unit is the class id itself (an argmax
    inside the model)."""
    flat = output.reshape(len(output), -1)
    if flat.shape[1] == 1 and is_integer(flat):
        return flat[:, 0].astype(np.int64)
    if flat.shape[1] == 1:
        return (flat[:, 0] > threshold).astype(np.int64)
    return np.asarray(flat.argmax(axis=1))


def check_labels(
    labels: np.ndarray | None, output: np.ndarray, name: str = "the model's first output"
) -> None:
    """A clear error when integer labels cannot be classes of this output."""
    if labels is None or not len(labels):
        return
    width = output.reshape(len(output), -1).shape[1]
    if width == 1 and is_integer(output):  # class ids: any id can be a class
        return
    classes_ = 2 if width == 1 else width
    low, high = int(np.min(labels)), int(np.max(labels))
    if low < 0 or high >= classes_:
        raise DataError(
            f"labels range over [{low}, {high}] but {name} has {classes_} "
            f"classes: expected class ids 0..{classes_ - 1} (one id per sample; labels for "
            "another output go in the .npz as y:<output name>)"
        )


@dataclass
class TaskAccumulator:
    """Running task metric for one model (the reference or a candidate)."""

    kind: str
    count: int = 0
    total: float = 0.0  # correct predictions, or summed squared error
    per_batch: list[float] = field(default_factory=list)  # the metric of each batch
    sum_sq_ref: float = 0.0  # Σref² of the reference's output, for relative MSE
    ref_values: int = 0
    output: str = "the model's first output"  # what error messages call the output
    threshold: float = 0.5  # one-unit outputs: the decision's threshold (0 for a logit)
    #: per-sample squared errors: their count, sum and sum of squares (``interval`` of MSEs)
    samples: int = 0
    sample_sum: float = 0.0
    sample_sum_sq: float = 0.0

    def update(self, output: np.ndarray, labels: np.ndarray | None, reference: np.ndarray) -> None:
        self.sum_sq_ref += float(np.sum(np.square(reference, dtype=np.float64)))
        self.ref_values += reference.size
        if self.kind == NO_TASK:  # no labels, no reference: nothing to score against
            return
        if self.kind == ACCURACY:
            if labels is None:  # task_kind gives accuracy only for integer labels
                raise InternalError("an accuracy metric was asked for without labels")
            predicted = classes(output, self.threshold)
            correct = float(np.sum(predicted == labels.reshape(len(labels))))
            self.total += correct
            self.count += len(output)
            self.per_batch.append(correct / len(output))
        else:
            target = np.asarray(reference if self.kind == MSE_VS_REFERENCE else labels, np.float64)
            if target.size != output.size:
                raise DataError(
                    f"labels have {target.size // max(len(target), 1)} value(s) per sample but "
                    f"{self.output} has {output.size // max(len(output), 1)}: "
                    "expected float targets shaped like the output (or integer class ids)"
                )
            diff = output.astype(np.float64) - target.reshape(output.shape)
            self.total += float(np.sum(diff * diff))
            self.count += diff.size
            self.per_batch.append(float(np.mean(diff * diff)))
            per_sample = np.mean((diff * diff).reshape(len(diff), -1), axis=1)
            self.samples += len(per_sample)
            self.sample_sum += float(np.sum(per_sample))
            self.sample_sum_sq += float(np.sum(per_sample * per_sample))

    @property
    def value(self) -> float | None:
        return self.total / self.count if self.count else None

    @property
    def baseline(self) -> float | None:
        """Run on the reference: what a candidate's ``drop`` is measured against, its value,
        or 0 for MSE against the reference (the reference's error against itself)."""
        return 0.0 if self.kind == MSE_VS_REFERENCE else self.value

    def interval(self) -> tuple[float, float] | None:
        """The 95% confidence interval of ``value`` as an estimate over the population the
        samples come from: Wilson's for an accuracy, the normal one over per-sample squared
        errors for an MSE. Shown when a slow candidate is measured on fewer samples."""
        z = 1.959964
        if self.kind == ACCURACY and self.count:
            n, p = self.count, self.total / self.count
            centre = (p + z * z / (2 * n)) / (1 + z * z / n)
            half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
            return (max(0.0, centre - half), min(1.0, centre + half))
        if self.kind in (MSE, MSE_VS_REFERENCE) and self.samples > 1:
            n = self.samples
            mean = self.sample_sum / n
            var = max(0.0, (self.sample_sum_sq - n * mean * mean) / (n - 1))
            half = z * math.sqrt(var / n)
            return (max(0.0, mean - half), mean + half)
        return None

    @property
    def reference_power(self) -> float | None:
        """Mean square of the reference output: the scale of "MSE vs reference"."""
        return self.sum_sq_ref / self.ref_values if self.ref_values else None


@dataclass
class ErrorAccumulator:
    """Running error statistics of candidate outputs against reference outputs."""

    values: int = 0
    samples: int = 0
    non_finite: int = 0  # candidate output values that are NaN or ±Inf
    sum_sq_err: float = 0.0
    sum_sq_ref: float = 0.0
    max_abs: float = 0.0
    cosine_sum: float = 0.0
    agree: int = 0
    #: top-1 agreement makes sense (a class vector, or labelled 0/1); None: decide on the
    #: first batch from the output's width
    classify: bool | None = None
    #: a bounded sample of the errors, up to 256 per batch (for histograms in reports)
    sample: list[float] = field(default_factory=list)

    def update(self, reference: list[np.ndarray], candidate: list[np.ndarray]) -> None:
        refs = [r.reshape(len(r), -1).astype(np.float64) for r in reference]
        cands = [c.reshape(len(c), -1).astype(np.float64) for c in candidate]
        ref, cand = np.concatenate(refs, axis=1), np.concatenate(cands, axis=1)
        self.non_finite += int(cand.size - np.count_nonzero(np.isfinite(cand)))
        diff = cand - ref
        if len(self.sample) < ERROR_SAMPLE:
            step = max(1, diff.size // 256)
            self.sample.extend(diff.ravel()[::step][: ERROR_SAMPLE - len(self.sample)].tolist())
        self.values += diff.size
        self.samples += len(ref)
        self.sum_sq_err += float(np.sum(diff * diff))
        self.sum_sq_ref += float(np.sum(ref * ref))
        # np.max propagates NaN (Python's max would drop it and report 0 for all-NaN outputs)
        self.max_abs = float(np.max([self.max_abs, float(np.max(np.abs(diff), initial=0.0))]))
        norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1)
        dots = np.sum(ref * cand, axis=1)
        ref_zero = np.linalg.norm(ref, axis=1) == 0
        cand_zero = np.linalg.norm(cand, axis=1) == 0
        # Both silent: identical (1). One silent: nothing in common (0).
        cos = np.where(
            norms == 0,
            np.where(ref_zero & cand_zero, 1.0, 0.0),
            dots / np.where(norms == 0, 1.0, norms),
        )
        self.cosine_sum += float(np.sum(cos))
        if self.classify is None:
            self.classify = reference[0].reshape(len(reference[0]), -1).shape[1] > 1
        if self.classify:
            self.agree += int(np.sum(classes(reference[0]) == classes(candidate[0])))

    def metrics(self) -> dict[str, float | None]:
        if not self.values:
            return dict.fromkeys(
                ("agreement", "max_abs_error", "rmse", "sqnr_db", "cosine", "non_finite_share")
            )
        if self.sum_sq_err == 0:
            sqnr = math.inf
        elif self.sum_sq_ref == 0:
            sqnr = -math.inf
        else:
            sqnr = 10 * math.log10(self.sum_sq_ref / self.sum_sq_err)
        return {
            "agreement": self.agree / self.samples if self.classify else None,
            "max_abs_error": self.max_abs,
            "rmse": math.sqrt(self.sum_sq_err / self.values),
            "sqnr_db": sqnr,
            "cosine": self.cosine_sum / self.samples,
            "non_finite_share": self.non_finite / self.values,
        }


def drop(
    kind: str,
    reference: float | None,
    candidate: float | None,
    reference_power: float | None = None,
) -> float | None:
    """How much worse a candidate is, in points: accuracy points lost, or the percent increase
    of MSE (against labels), or MSE as a percent of the reference's mean square (no labels)."""
    if candidate is None or reference is None:
        return None
    if kind == ACCURACY:
        return 100.0 * (reference - candidate)
    if kind == MSE:
        return 100.0 * (candidate - reference) / reference if reference else math.inf
    return 100.0 * candidate / reference_power if reference_power else math.inf
