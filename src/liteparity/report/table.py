"""The ``check`` table, for the terminal (rich) and for notebooks (HTML)."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

from liteparity.results.check import ACCURACY, CandidateResult, CheckResult

COLUMNS = (
    "candidate",
    "metric",
    "Δ",
    "agreement",
    "max|err|",
    "RMSE",
    "SQNR dB",
    "cosine",
    "size",
    "latency ms",
)

#: How rows that were not measured look.
STATUS_STYLE = {"error": "red", "not-applicable": "dim"}


def _size(n: int | None) -> str:
    if n is None:
        return "–"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _num(x: float | None, fmt: str = ".3g") -> str:
    if x is None:
        return "–"
    if isinstance(x, float) and math.isinf(x):
        return "∞" if x > 0 else "−∞"
    return format(x, fmt)


def _metric(name: str, value: float | None) -> str:
    if value is None:
        return "–"
    return f"{100 * value:.2f}%" if name == ACCURACY else f"{value:.3g}"


def _delta(name: str, delta: float | None) -> str:
    if delta is None:
        return "–"
    return f"{100 * delta:+.2f} pt" if name == ACCURACY else f"{delta:+.3g}"


def cells(c: CandidateResult) -> list[str]:
    """The table cells of one candidate row (shared by the terminal and HTML renderings)."""
    if c.status != "measured":  # the reason goes under the table (``notes``), not in a cell
        return [c.name, f"{c.status.replace('-', ' ')} (see below)", *[""] * (len(COLUMNS) - 2)]
    name = c.metric.name if c.metric else ""
    value = _metric(name, c.metric.value if c.metric else None)
    if c.metric is not None and c.metric.interval is not None:  # measured on fewer rows
        low, high = (_metric(name, v) for v in c.metric.interval)
        value = f"{value} [{low}, {high}]"
    return [
        c.name + ("*" if c.samples is not None else ""),
        value,
        _delta(name, c.metric_delta),
        _num(c.agreement, ".4f"),
        _num(c.max_abs_error),
        _num(c.rmse),
        _num(c.sqnr_db, ".1f"),
        _num(c.cosine, ".6f"),
        _size(c.size_bytes),
        _num(c.latency_ms, ".3f"),
    ]


def reference_cells(result: CheckResult) -> list[str]:
    ref = result.reference
    if ref is None:
        return []
    return [
        f"reference ({ref.format})",
        _metric(ref.metric.name, ref.metric.value),
        "",
        "",
        "",
        "",
        "",
        "",
        _size(ref.size_bytes),
        "",
    ]


def engine_retries(engine: Mapping[str, Any] | None, told: Collection[str] = ()) -> list[str]:
    """A line for each retry of a run on Ray (``Engine.describe``'s ``retried``) not already
    told (a candidate's warnings carry its own): the reference's batches, a conversion."""
    return [f"engine: {line}" for line in (engine or {}).get("retried", ()) if line not in told]


def check_table(result: CheckResult) -> Any:
    """The table, then one line per row that was not measured, saying why, and one per
    warning (the data's, then each row's): under the table, where a long converter or LiteRT
    message does not squeeze the columns."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    metric = result.reference.metric.name if result.reference else "metric"
    samples = result.data.get("evaluation_samples")
    table = Table(title=f"liteparity check — {metric} on {samples} samples", title_justify="left")
    for i, col in enumerate(COLUMNS):
        table.add_column(
            metric if col == "metric" else col,
            justify="left" if i == 0 else "right",
            no_wrap=i == 0,
        )
    if result.reference:
        table.add_row(*reference_cells(result), style="dim")
    for c in result.candidates:
        table.add_row(*cells(c), style=STATUS_STYLE.get(c.status))
    below = [
        Text(f"{c.name}: {c.status.replace('-', ' ')}: {c.error or c.not_applicable}", style)
        for c in result.candidates
        if (style := STATUS_STYLE.get(c.status))
    ] + [
        Text(
            f"{c.name}*: slow, measured on its first {c.samples} of {samples} samples "
            "(--max-samples-slow), against the reference on the same samples; "
            "[95% confidence interval]"
        )
        for c in result.candidates
        if c.samples is not None
    ]
    below += [Text(f"data: {w}", "yellow") for w in result.data.get("warnings", ())]
    below += [Text(f"{c.name}: {w}", "yellow") for c in result.candidates for w in c.warnings]
    told = {w for c in result.candidates for w in c.warnings}
    below += [Text(line, "yellow") for line in engine_retries(result.engine, told)]
    return Group(table, *below) if below else table
