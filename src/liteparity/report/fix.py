"""The ``fix`` table: every model tried, the Pareto front marked, the winner highlighted."""

from __future__ import annotations

from typing import Any

from liteparity.report.table import _size
from liteparity.results.check import ACCURACY
from liteparity.results.fix import FixResult, QatComparison


def fix_table(result: FixResult) -> Any:
    from rich.table import Table

    accuracy = result.metric_name == ACCURACY
    table = Table(
        title=f"liteparity fix — {result.search_samples} search samples, prefer "
        f"{result.prefer}, budget: drop ≤ {result.budget.max_drop}"
        + (
            f", agreement ≥ {result.budget.min_agreement}"
            if result.budget.min_agreement is not None
            else ""
        ),
        title_justify="left",
    )
    for i, col in enumerate(
        ("model", "size", "latency ms", result.metric_name, "drop", "agreement", "budget", "pareto")
    ):
        table.add_column(col, justify="left" if i == 0 else "right")
    for t in result.trials:
        metric = (
            "–"
            if t.metric is None
            else (f"{100 * t.metric:.2f}%" if accuracy else f"{t.metric:.3g}")
        )
        table.add_row(
            t.name,
            _size(t.size_bytes),
            f"{t.latency_ms:.3f}",
            metric,
            "–" if t.drop is None else f"{t.drop:.2f}",
            "–" if t.agreement is None else f"{t.agreement:.4f}",
            "ok" if t.within_budget else "over",
            "◆" if t.pareto else "",
            style="bold green" if t.name == result.winner.name else None,
        )
    return table


def qat_table(result: QatComparison) -> Any:
    """The ``compare-qat`` table: accuracy over resampled batches, per model."""
    from rich.table import Table

    table = Table(
        title=f"compare-qat — accuracy over {len(result.accuracies['qat'])} "
        f"resampled batches of {result.resample_size}",
        title_justify="left",
    )
    for col in ("model", "mean", "std", "min", "max", "agreement"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for name, s in result.summary().items():
        table.add_row(
            name,
            f"{100 * s['mean']:.2f}%",
            f"{100 * s['std']:.2f}",
            f"{100 * s['min']:.2f}%",
            f"{100 * s['max']:.2f}%",
            f"{result.agreement.get(name, 1.0):.4f}",
        )
    return table
