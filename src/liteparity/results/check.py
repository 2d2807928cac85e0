"""The values that cross stage boundaries, as frozen dataclasses with ``to_dict()``.

The JSON output is these dicts, so the names here are the names users see.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from liteparity.errors import UsageError
from liteparity.plain import join_special, json_number, number, split_special, strict_json

#: Task metric names: accuracy against integer labels, MSE against float labels or, with no
#: labels, MSE against the reference's own outputs.
ACCURACY, MSE, MSE_VS_REFERENCE = "accuracy", "mse", "mse_vs_reference"
#: A lone model without labels: no task metric (its findings need none).
NO_TASK = "none"


class Severity(str, Enum):
    """How much a finding matters: ``info`` is normal or expected, ``error`` breaks the model."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        return {"info": 0, "warning": 1, "error": 2}[self.value]


@dataclass(frozen=True)
class Finding:
    """One diagnosed cause: a stable ``id`` (see DESIGN), the numbers, and what to do."""

    id: str
    severity: Severity
    verdict: str  # a few words that lead the terminal output ("normal float32 noise")
    summary: str  # one sentence with the numbers
    evidence: dict[str, Any]
    fix: str

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Finding:
        return cls(d["id"], Severity(d["severity"]), d["verdict"], d["summary"],
                   d["evidence"], d["fix"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "severity": self.severity.value,
            "verdict": self.verdict,
            "summary": self.summary,
            "evidence": self.evidence,
            "fix": self.fix,
        }


@dataclass(frozen=True)
class Metric:
    """A task metric: ``accuracy``, ``mse`` (against labels) or ``mse_vs_reference``."""

    name: str
    value: float | None
    #: its 95% confidence interval, given when it was measured on a sample of the rows
    #: (``--max-samples-slow``)
    interval: tuple[float, float] | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Metric:
        interval = d.get("interval")
        return cls(
            d["name"],
            number(d.get("special") or d["value"]),
            (interval[0], interval[1]) if interval else None,
        )

    def to_dict(self) -> dict[str, Any]:
        """``value`` is a number or ``null``; ``special`` is ``"nan"``/``"inf"`` when the
        value is not finite (NaN outputs under an MSE), else ``null``; ``interval`` only
        when there is one."""
        plain, special = split_special({"value": self.value})
        doc = {"name": self.name, "value": plain["value"], "special": special.get("value")}
        if self.interval is not None:
            doc["interval"] = list(self.interval)
        return doc


def non_finite_finding(share: float, outputs: Sequence[str] | None = None) -> Finding:
    """The ``non-finite`` finding of a candidate whose outputs hold NaN or Inf (``share`` of
    its output values; ``outputs``: those that hold them, when known): an error, whatever the
    other numbers say (they are NaN or mean nothing), and it breaks any budget."""
    where = f" (output {', '.join(outputs)})" if outputs else ""
    return Finding(
        id="non-finite",
        severity=Severity.ERROR,
        verdict="NaN or Inf outputs",
        summary=f"{share:.2%} of the candidate's output values are NaN or Inf{where}",
        evidence={"share": share, **({"outputs": list(outputs)} if outputs else {})},
        fix="check the conversion recipe (float16 overflow, bad calibration ranges) and the "
        "model's numerics on this data",
    )


def unset_variables_finding(names: Sequence[str]) -> Finding:
    """The ``unset-variables`` finding of a candidate that reads resource variables nothing
    assigns (``_litert.unset_variables``): its outputs are undefined, whatever they look
    like, so it is an error and breaks any budget."""
    shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
    return Finding(
        id="unset-variables",
        severity=Severity.ERROR,
        verdict="reads variables nothing sets",
        summary=f"the model reads {len(names)} resource variable(s) that no op assigns "
        f"({shown}): LiteRT runs it on uninitialized memory, so its outputs are undefined",
        evidence={"variables": list(names)},
        fix="the converter left the SavedModel's variables unfrozen (e.g. a Keras 3 model held "
        "by a tf.Module): convert the loaded signature instead, "
        "TFLiteConverter.from_concrete_functions([m.signatures['serving_default']], m) with "
        "m = tf.saved_model.load(dir), or export the Keras model with model.export(dir)",
    )


@dataclass(frozen=True)
class OutputResult:
    """One output of a candidate measured against the same-named output of the reference:
    which candidate output was matched to it, the kind of output it is (``classes``,
    ``flag``, ``regression``, ``landmarks``, ``mask``, ``scores``, or a user's), its error
    metrics and the task metrics of its kind, by name (plain numbers, None when not defined)."""

    name: str  # the reference's output name
    matched: str  # the candidate output matched to it
    kind: str
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def sqnr_db(self) -> float | None:
        value: float | None = number(self.metrics.get("sqnr_db"))
        return value

    @property
    def agreement(self) -> float | None:
        value: float | None = number(self.metrics.get("agreement"))
        return value

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OutputResult:
        metrics = {k: v for k, v in d.items() if k not in ("name", "matched", "kind", "special")}
        metrics = join_special(plain_metrics(metrics, number), d.get("special"))
        return cls(d["name"], d["matched"], d["kind"], metrics)

    def to_dict(self) -> dict[str, Any]:
        flat = {k: v for k, v in self.metrics.items() if not isinstance(v, (dict, list))}
        values, special = split_special(flat)
        nested = {k: v for k, v in self.metrics.items() if k not in flat}
        return {
            "name": self.name,
            "matched": self.matched,
            "kind": self.kind,
            **values,
            **plain_metrics(nested, json_number),
            "special": special,
        }


def plain_metrics(metrics: dict[str, Any], convert: Any) -> dict[str, Any]:
    """``metrics`` with every float converted (``json_number`` out, ``number`` back in)."""
    return {k: convert(v) for k, v in metrics.items()}


#: A candidate's measured numbers (floats that may be non-finite), by field name.
_MEASURED = (
    "latency_ms",
    "metric_delta",
    "drop",
    "agreement",
    "max_abs_error",
    "rmse",
    "sqnr_db",
    "cosine",
    "non_finite_share",
)


@dataclass(frozen=True)
class CandidateResult:
    """One candidate ``.tflite`` measured against the reference on the evaluation rows."""

    name: str  # the recipe name, or ``tflite:<file name>``
    recipe: str | None
    path: str | None = None
    size_bytes: int | None = None
    latency_ms: float | None = None
    metric: Metric | None = None
    metric_delta: float | None = None
    drop: float | None = None  # points lost (see ``drop``)
    agreement: float | None = None
    max_abs_error: float | None = None
    rmse: float | None = None
    sqnr_db: float | None = None
    cosine: float | None = None
    #: the share of output values that are NaN or ±Inf (a ``non-finite`` finding when > 0)
    non_finite_share: float | None = None
    batch_size: int | None = None
    findings: tuple[Finding, ...] = ()
    error: str | None = None
    #: every output on its own (the headline numbers above are the worst output's)
    outputs: tuple[OutputResult, ...] = ()
    #: what the user should know about how the candidate was measured (outputs matched by
    #: position, ...)
    warnings: tuple[str, ...] = ()
    #: the user's callable metric, averaged over the batches
    user_metrics: dict[str, float] = field(default_factory=dict)
    #: why the recipe does not apply to the model (``--recipes all``): not measured, no error
    not_applicable: str | None = None
    #: why the converted model could not be written to ``save_dir`` (``--save-models``)
    not_saved: str | None = None
    #: for reports only (not in the JSON): a sample of errors, the metric of each batch
    error_sample: tuple[float, ...] = field(default=(), repr=False)
    batch_metrics: tuple[float, ...] = field(default=(), repr=False)
    #: the rows it was measured on when fewer than the run's (a slow candidate capped by
    #: ``--max-samples-slow``; its numbers and the reference's it is compared with are on the
    #: first ``samples`` rows); None: every row
    samples: int | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CandidateResult:
        """The inverse of ``to_dict`` for the measured numbers and findings (the samples
        kept for reports only are not kept)."""
        metric = d.get("metric")
        measured = join_special({key: d.get(key) for key in _MEASURED}, d.get("special"))
        return cls(
            name=d["name"],
            recipe=d["recipe"],
            path=d.get("path"),
            size_bytes=d.get("size_bytes"),
            error=d.get("error"),
            not_applicable=d.get("not_applicable"),
            not_saved=d.get("not_saved"),
            metric=Metric.from_dict(metric) if metric else None,
            batch_size=d.get("batch_size"),
            findings=tuple(Finding.from_dict(f) for f in d.get("findings", [])),
            outputs=tuple(OutputResult.from_dict(o) for o in d.get("outputs", [])),
            warnings=tuple(d.get("warnings", [])),
            user_metrics=plain_metrics(d.get("user_metrics", {}), number),
            samples=d.get("samples"),
            **measured,
        )

    @property
    def status(self) -> str:
        """``measured``, ``error`` (it could not be converted or run) or ``not-applicable``."""
        if self.error:
            return "error"
        return "not-applicable" if self.not_applicable else "measured"

    def to_dict(self) -> dict[str, Any]:
        """Measured numbers are a number or ``null``; ``special`` names the non-finite ones
        (``{"sqnr_db": "inf"}``: identical outputs; ``"nan"``: NaN outputs)."""
        measured, special = split_special({key: getattr(self, key) for key in _MEASURED})
        return {
            "name": self.name,
            "recipe": self.recipe,
            "status": self.status,
            "path": self.path,
            "size_bytes": self.size_bytes,
            "metric": self.metric.to_dict() if self.metric else None,
            **measured,
            "special": special,
            "batch_size": self.batch_size,
            "findings": [f.to_dict() for f in self.findings],
            "error": self.error,
            "outputs": [o.to_dict() for o in self.outputs],
            "warnings": list(self.warnings),
            "user_metrics": plain_metrics(self.user_metrics, json_number),
            "not_applicable": self.not_applicable,
            "not_saved": self.not_saved,
            "samples": self.samples,
        }


@dataclass(frozen=True)
class ReferenceResult:
    """The reference model, as measured on the same rows as the candidates."""

    path: str
    format: str
    size_bytes: int | None
    metric: Metric
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "size_bytes": self.size_bytes,
            "metric": self.metric.to_dict(),
            "inputs": self.inputs,
            "outputs": self.outputs,
        }


@dataclass(frozen=True)
class CheckResult:
    """What ``liteparity.check`` returns: the reference, the data, one row per candidate."""

    reference: ReferenceResult | None
    data: dict[str, Any]
    candidates: tuple[CandidateResult, ...]
    noise_floor: dict[str, Any] | None = None  # set by ``explain``
    #: where the candidates ran: engine, nodes, shards (actors per candidate), shard_rows,
    #: data (read by the "actors" or the "driver") and what a fault retried
    engine: dict[str, Any] | None = None
    #: seconds per stage of the run and its wall time (``liteparity.timings``)
    timings: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        doc = {
            "reference": self.reference.to_dict() if self.reference else None,
            "data": self.data,
            "engine": self.engine,
            "candidates": [c.to_dict() for c in self.candidates],
        }
        if self.noise_floor is not None:
            doc["noise_floor"] = self.noise_floor
        if self.timings is not None:
            doc["timings"] = self.timings
        return doc

    def to_json(self, indent: int | None = 2) -> str:
        return strict_json(self.to_dict(), indent)

    def rows(self) -> list[dict[str, Any]]:
        """One plain dict per candidate (what a dataframe or a CSV wants)."""
        rows = []
        for c in self.candidates:
            row = c.to_dict()
            metric = row.pop("metric") or {}
            row.pop("findings")
            row.pop("outputs")
            row.update({f"user:{k}": v for k, v in row.pop("user_metrics").items()})
            row["warnings"] = "; ".join(row["warnings"])
            row["metric_name"] = metric.get("name")
            row["metric"] = metric.get("value")
            rows.append(row)
        return rows

    def to_csv(self) -> str:
        """One row per candidate and output: the candidate's headline columns (``rows``),
        then the output's name, the candidate output matched to it, its kind and every
        number it has (lists, such as a confusion matrix, are left to the JSON)."""
        per_output: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for row, c in zip(self.rows(), self.candidates, strict=True):
            per_output += [(row, o.to_dict()) for o in c.outputs] or [(row, {})]
        columns: dict[str, None] = {}
        for row, output in per_output:
            columns.update(dict.fromkeys(row))
            columns.update(
                {f"output_{k}": None for k, v in output.items() if not isinstance(v, list)}
            )
        out = io.StringIO()
        writer = csv.DictWriter(out, list(columns), extrasaction="ignore")
        writer.writeheader()
        for row, output in per_output:
            writer.writerow({**row, **{f"output_{k}": v for k, v in output.items()}})
        return out.getvalue()

    def candidate(self, name: str) -> CandidateResult:
        """The row called ``name`` (a recipe name or ``tflite:<file>``)."""
        for c in self.candidates:
            if c.name == name:
                return c
        raise KeyError(f"no candidate {name!r}: have {[c.name for c in self.candidates]}")

    def violations(
        self,
        max_drop: float | None = None,
        min_agreement: float | None = None,
        budget_outputs: Sequence[str] | None = None,
    ) -> list[str]:
        """Why each candidate breaks the budget, one line each (empty: all within budget).
        ``--max-drop`` and ``--min-agreement`` apply to each output in ``budget_outputs``
        (default: every output with a task metric), each against its own labels, and the line
        names the broken output; a budgeted output with a ``decision-lost`` finding breaks
        the budget too. A candidate measured without a reference has its headline only."""
        lines = []
        for c in self.candidates:
            if c.status != "measured":
                continue
            budget = max_drop is not None or min_agreement is not None or budget_outputs is not None
            if budget and c.non_finite_share:
                lines.append(f"{c.name}: {c.non_finite_share:.2%} of its outputs are NaN or Inf")
            if budget and any(f.id == "unset-variables" for f in c.findings):
                lines.append(f"{c.name}: it reads variables nothing sets (outputs undefined)")
            if not c.outputs:
                headline = _headline_breaks(c, max_drop, min_agreement)
                lines += [f"{c.name}: {line}" for line in headline]
                continue
            lost = lost_outputs(c.findings)
            broken = output_breaks(c.outputs, max_drop, min_agreement, budget_outputs, lost)
            lines += [f"{c.name}: {line}" for line in broken if budget]
        return lines


def _headline_breaks(
    c: CandidateResult, max_drop: float | None, min_agreement: float | None
) -> list[str]:
    metric = c.metric.name if c.metric else None
    return _breaks("", c.drop, metric, c.agreement, max_drop, min_agreement)


def _breaks(
    label: str,
    drop: float | None,
    metric: str | None,
    agreement: float | None,
    max_drop: float | None,
    min_agreement: float | None,
) -> list[str]:
    """The budget lines of one headline or output (``label`` names it): its ``drop`` (in
    accuracy points for an ``accuracy`` metric, else %) and its ``agreement``."""
    lines = []
    if max_drop is not None and drop is not None and drop > max_drop:
        unit = "accuracy points" if metric == ACCURACY else "%"
        lines.append(f"{label}drop {drop:.2f} {unit} > --max-drop {max_drop}")
    if min_agreement is not None and agreement is not None and agreement < min_agreement:
        lines.append(f"{label}agreement {agreement:.4f} < --min-agreement {min_agreement}")
    return lines


def lost_outputs(findings: Sequence[Finding]) -> set[str]:
    """The outputs named by ``decision-lost`` findings."""
    return {str(f.evidence.get("output")) for f in findings if f.id == "decision-lost"}


def budgeted(
    outputs: Sequence[OutputResult], names: Sequence[str] | None
) -> list[OutputResult]:
    """The outputs a budget applies to: those ``names`` names, else every output with a task
    metric of its own (not a detector's boxes, classes and count: their detections output
    carries the task)."""
    known = [o.name for o in outputs]
    unknown = sorted(set(names or ()) - set(known))
    if unknown:
        raise UsageError(f"--budget-output {', '.join(unknown)}: the model has outputs {known}")
    if names is not None:
        return [o for o in outputs if o.name in names]
    return [o for o in outputs if "part_of" not in o.metrics]


def output_breaks(
    outputs: Sequence[OutputResult],
    max_drop: float | None,
    min_agreement: float | None,
    names: Sequence[str] | None = None,
    lost: Collection[str] = (),
) -> list[str]:
    """How the budgeted outputs (``names``; default every output with a task metric) break
    the budget, one line each naming the output (the name is left out for a model with one
    output): its own drop (``--max-drop``), its agreement (``--min-agreement``), or its lost
    decisions. What ``check``'s exit code and ``fix``'s search both read."""
    lines = []
    for o in budgeted(outputs, names):
        label = f"output {o.name} " if len(outputs) > 1 else ""
        drop, metric = number(o.metrics.get("drop")), o.metrics.get("task_metric")
        lines += _breaks(label, drop, metric, o.agreement, max_drop, min_agreement)
        if o.name in lost:
            lines.append(f"output {o.name} lost its decisions (decision-lost)")
    return lines
