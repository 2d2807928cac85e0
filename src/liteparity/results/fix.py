"""What ``fix`` and ``compare-qat`` return: the trials, the winner, the held-out check."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from liteparity.errors import UsageError
from liteparity.plain import json_number, strict_json


@dataclass(frozen=True)
class Budget:
    """What the user accepts: points lost (accuracy, or % MSE) and agreement, for each output
    in ``outputs`` on its own (None: every output with a task metric)."""

    max_drop: float | None = 1.0
    min_agreement: float | None = None
    outputs: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.max_drop is None and self.min_agreement is None:
            raise UsageError("give a budget: --max-drop and/or --min-agreement")

    def met(
        self, drop: float | None, agreement: float | None, lost: Collection[str] = ()
    ) -> bool:
        """Whether the worst budgeted output's ``drop``, the lowest budgeted ``agreement``
        and the budgeted outputs that ``lost`` their decisions (``decision-lost``) are
        within the budget."""
        if lost:
            return False
        if self.max_drop is not None and (drop is None or drop > self.max_drop):
            return False
        return not (
            self.min_agreement is not None and (agreement is None or agreement < self.min_agreement)
        )


@dataclass(frozen=True)
class Trial:
    """One model the search built and measured."""

    recipe: str
    keep_float: tuple[str, ...]  # layer groups kept in float (int8 variants)
    size_bytes: int
    latency_ms: float
    metric: float | None
    drop: float | None
    agreement: float | None
    within_budget: bool
    pareto: bool = False

    @property
    def name(self) -> str:
        kept = f" + float {', '.join(self.keep_float)}" if self.keep_float else ""
        return self.recipe + kept

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "recipe": self.recipe,
            "keep_float": list(self.keep_float),
            "size_bytes": self.size_bytes,
            "latency_ms": self.latency_ms,
            "metric": json_number(self.metric),
            "drop": json_number(self.drop),
            "agreement": self.agreement,
            "within_budget": self.within_budget,
            "pareto": self.pareto,
        }


@dataclass(frozen=True)
class FixResult:
    """What ``liteparity.fix`` returns: every trial, the winner and how it holds up."""

    model: str
    metric_name: str
    reference_metric: float | None
    budget: Budget
    prefer: str
    trials: tuple[Trial, ...]
    winner: Trial
    met: bool  # the winner meets the budget on the search split and on held-out data
    reason: str
    held_out: dict[str, Any]
    search_samples: int
    out: str | None = None
    content: bytes = field(default=b"", repr=False)
    search_trials: int = 0  # quantize+evaluate trials of the selective search
    #: trials that met the budget on the search split and broke it on held-out data: their
    #: held-out numbers, by trial name
    held_out_broken: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: ``explain``'s findings on the held-out data: plain int8, then the winner
    before: tuple[Any, ...] = ()
    after: tuple[Any, ...] = ()
    skipped: dict[str, str] = field(default_factory=dict)  # recipe → why it failed
    #: where the trials ran: engine, nodes, shards, shard_rows, data, and what a fault retried
    engine: dict[str, Any] | None = None

    @property
    def held_out_met(self) -> bool:
        held = self.held_out
        return self.budget.met(held.get("drop"), held.get("agreement"), held.get("lost") or ())

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "engine": self.engine,
            "metric": self.metric_name,
            "reference_metric": self.reference_metric,
            "budget": {
                "max_drop": self.budget.max_drop,
                "min_agreement": self.budget.min_agreement,
                "outputs": list(self.budget.outputs) if self.budget.outputs else None,
            },
            "prefer": self.prefer,
            "winner": self.winner.to_dict(),
            "met": self.met,
            "reason": self.reason,
            "held_out": self.held_out,
            "held_out_met": self.held_out_met,
            "held_out_broken": self.held_out_broken,
            "search_samples": self.search_samples,
            "selective_search_trials": self.search_trials,
            "trials": [t.to_dict() for t in self.trials],
            "out": self.out,
            "skipped": self.skipped,
            "findings_before": [f.to_dict() for f in self.before],
            "findings_after": [f.to_dict() for f in self.after],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return strict_json(self.to_dict(), indent)


@dataclass(frozen=True)
class QatComparison:
    """Seed 003: the QAT model converted directly against its weights copied into the float
    model and post-training quantized, over resampled evaluation batches."""

    model: str
    epochs: int
    resample_size: int
    accuracies: dict[str, tuple[float, ...]]  # reference / qat / copied → one per resample
    agreement: dict[str, float]  # with the reference, over all evaluation samples
    train_samples: int
    eval_samples: int

    def summary(self) -> dict[str, dict[str, float]]:
        return {
            name: {
                "mean": float(np.mean(v)),
                "std": float(np.std(v)),
                "min": float(np.min(v)),
                "max": float(np.max(v)),
            }
            for name, v in self.accuracies.items()
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "epochs": self.epochs,
            "resample_size": self.resample_size,
            "train_samples": self.train_samples,
            "eval_samples": self.eval_samples,
            "summary": self.summary(),
            "agreement": self.agreement,
            "accuracies": {k: list(v) for k, v in self.accuracies.items()},
        }

    def to_json(self, indent: int | None = 2) -> str:
        return strict_json(self.to_dict(), indent)
