"""The ``fix`` table: every model tried, the Pareto front marked, the winner highlighted."""

from __future__ import annotations

from typing import Any

from ..compare import ACCURACY
from ..repair import FixResult
from .table import _size


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
