"""The ``locate`` table: layers by impact, the first layer where the error jumps marked."""

from __future__ import annotations

import math
from typing import Any

from liteparity.results.locate import LayerRecord, LocateResult

#: Rows shown in the terminal; the CSV and JSON have every layer.
ROWS = 20
LAYER_COLUMNS = (
    "layer",
    "op",
    "local SQNR dB",
    "RMSE/scale",
    "propagated SQNR dB",
    "conversion SQNR dB",
    "saturation %",
    "sensitivity %",
)


def _db(metric: dict[str, Any] | None) -> str:
    if not metric:
        return "–"
    value = metric.get("sqnr_db")
    if not isinstance(value, float):
        return "–"
    return "∞" if math.isinf(value) and value > 0 else f"{value:.1f}"


def _num(x: float | None, fmt: str) -> str:
    return "–" if x is None else format(x, fmt)


def layer_cells(r: LayerRecord) -> list[str]:
    name = r.keras_layer or r.tensor_name.split(";")[0]
    return [
        name + ("  ◀ error jumps here" if r.jump else ""),
        r.op,
        _db(r.local),
        _num(r.rmse_over_scale, ".2f"),
        _db(r.propagated),
        _db(r.conversion),
        _num(None if r.saturation is None else 100 * r.saturation, ".2f"),
        _num(None if r.sensitivity is None else 100 * r.sensitivity, ".1f"),
    ]


def layers_table(result: LocateResult) -> Any:
    from rich.table import Table

    table = Table(
        title=f"liteparity locate — {result.candidate}, {result.samples} samples, by impact",
        title_justify="left",
    )
    for i, col in enumerate(LAYER_COLUMNS):
        table.add_column(col, justify="left" if i < 2 else "right", no_wrap=i == 0)
    for r in result.by_impact()[:ROWS]:
        table.add_row(*layer_cells(r), style="bold red" if r.jump else None)
    return table
