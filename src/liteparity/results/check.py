"""The values that cross stage boundaries, as frozen dataclasses with ``to_dict()``.

The JSON output is these dicts, so the names here are the names users see.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from liteparity.plain import json_number, number

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

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Metric:
        return cls(d["name"], number(d["value"]))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": json_number(self.value)}


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
    batch_size: int | None = None
    findings: tuple[Finding, ...] = ()
    error: str | None = None
    #: for reports only (not in the JSON): a sample of errors, the metric of each batch
    error_sample: tuple[float, ...] = field(default=(), repr=False)
    batch_metrics: tuple[float, ...] = field(default=(), repr=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CandidateResult:
        """The inverse of ``to_dict`` for the measured numbers (findings, and the samples kept
        for reports only, are not kept)."""
        metric = d.get("metric")
        return cls(
            name=d["name"],
            recipe=d["recipe"],
            path=d.get("path"),
            size_bytes=d.get("size_bytes"),
            error=d.get("error"),
            metric=Metric.from_dict(metric) if metric else None,
            batch_size=d.get("batch_size"),
            **{key: number(d.get(key)) for key in _MEASURED},
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "recipe": self.recipe,
            "path": self.path,
            "size_bytes": self.size_bytes,
            "latency_ms": json_number(self.latency_ms),
            "metric": self.metric.to_dict() if self.metric else None,
            "metric_delta": json_number(self.metric_delta),
            "drop": json_number(self.drop),
            "agreement": json_number(self.agreement),
            "max_abs_error": json_number(self.max_abs_error),
            "rmse": json_number(self.rmse),
            "sqnr_db": json_number(self.sqnr_db),
            "cosine": json_number(self.cosine),
            "batch_size": self.batch_size,
            "findings": [f.to_dict() for f in self.findings],
            "error": self.error,
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

    def to_dict(self) -> dict[str, Any]:
        doc = {
            "reference": self.reference.to_dict() if self.reference else None,
            "data": self.data,
            "candidates": [c.to_dict() for c in self.candidates],
        }
        if self.noise_floor is not None:
            doc["noise_floor"] = self.noise_floor
        return doc

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def rows(self) -> list[dict[str, Any]]:
        """One plain dict per candidate (what a dataframe or a CSV wants)."""
        rows = []
        for c in self.candidates:
            row = c.to_dict()
            metric = row.pop("metric") or {}
            row.pop("findings")
            row["metric_name"] = metric.get("name")
            row["metric"] = metric.get("value")
            rows.append(row)
        return rows

    def candidate(self, name: str) -> CandidateResult:
        """The row called ``name`` (a recipe name or ``tflite:<file>``)."""
        for c in self.candidates:
            if c.name == name:
                return c
        raise KeyError(f"no candidate {name!r}: have {[c.name for c in self.candidates]}")

    def violations(
        self, max_drop: float | None = None, min_agreement: float | None = None
    ) -> list[str]:
        """Why each candidate breaks the budget, one line each (empty: all within budget)."""
        lines = []
        for c in self.candidates:
            if c.error:
                continue
            if max_drop is not None and c.drop is not None and c.drop > max_drop:
                unit = "accuracy points" if c.metric and c.metric.name == ACCURACY else "%"
                lines.append(f"{c.name}: drop {c.drop:.2f} {unit} > --max-drop {max_drop}")
            if (
                min_agreement is not None
                and c.agreement is not None
                and c.agreement < min_agreement
            ):
                lines.append(
                    f"{c.name}: agreement {c.agreement:.4f} < --min-agreement {min_agreement}"
                )
        return lines
