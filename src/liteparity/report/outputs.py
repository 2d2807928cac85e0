"""The per-output table: one row per candidate and output, so a four-output model stays
readable (the main table keeps one headline row per candidate: its worst output)."""

from __future__ import annotations

from typing import Any

from liteparity.report.table import _num
from liteparity.results.check import CheckResult, OutputResult

OUTPUT_COLUMNS = (
    "candidate",
    "output",
    "kind",
    "task",
    "drop",
    "agreement",
    "max|err|",
    "SQNR dB",
)


def _task(o: OutputResult) -> str:
    """The task numbers of one output, by kind, in a few words."""
    m = o.metrics
    parts: list[str] = []
    if o.kind in ("flag", "scores", "detections"):
        parts.append(f"positives {m.get('reference_positives')}→{m.get('candidate_positives')}")
        if o.kind != "flag":
            parts.append(f"P {_num(m.get('precision'), '.2f')} R {_num(m.get('recall'), '.2f')}")
            if "top_box_iou" in m:
                parts.append(f"top box IoU {_num(m.get('top_box_iou'), '.3f')}")
            if "matched_iou_mean" in m:
                parts.append(f"matched IoU {_num(m.get('matched_iou_mean'), '.3f')}")
    elif o.kind == "mask":
        mean, worst = _num(m.get("iou_mean"), ".3f"), _num(m.get("iou_worst"), ".3f")
        parts.append(f"IoU {mean} (worst {worst})")
    elif o.kind in ("regression", "landmarks"):
        parts.append(f"MAE {_num(m.get('mae'))} · max {_num(m.get('max_error'))}")
        if "point_distance_mean" in m:
            distance, p95 = _num(m["point_distance_mean"]), _num(m.get("point_distance_p95"))
            parts.append(f"point dist {distance} (p95 {p95})")
    elif o.kind == "ids":
        parts.append(f"values alike {_num(m.get('equal_share'), '.4f')}")
    elif o.kind == "classes":
        top = [k for k in m if k.startswith("top") and k not in ("top1_accuracy", "top_box_iou")]
        if "top1_accuracy" in m:
            parts.append(f"top-1 {_num(m['top1_accuracy'], '.4f')}")
        parts += [f"{k.removesuffix('_accuracy')} {_num(m[k], '.4f')}" for k in top]
    return " · ".join(parts)


def _drop(o: OutputResult) -> str:
    """What ``--max-drop`` reads for this output: accuracy points, else % (of MSE)."""
    value = _num(o.metrics.get("drop"), ".2f")
    unit = " pt" if o.metrics.get("task_metric") == "accuracy" else " %"
    return value if value == "–" else value + unit


def output_cells(name: str, o: OutputResult) -> list[str]:
    matched = o.name if o.matched == o.name else f"{o.name} ← {o.matched}"
    return [
        name,
        matched,
        o.kind,
        _task(o),
        _drop(o),
        _num(o.agreement, ".4f"),
        _num(o.metrics.get("max_abs_error")),
        _num(o.sqnr_db, ".1f"),
    ]


def wanted(result: CheckResult) -> bool:
    """Whether the per-output table says more than the main one: several outputs, or an
    output whose task is not class scores."""
    return any(
        len(c.outputs) > 1 or any(o.kind != "classes" for o in c.outputs) for c in result.candidates
    )


def outputs_table(result: CheckResult) -> Any:
    from rich.table import Table

    table = Table(title="every output (headline above: the worst)", title_justify="left")
    for i, col in enumerate(OUTPUT_COLUMNS):
        table.add_column(col, justify="left" if i < 4 else "right", no_wrap=i < 3)
    for c in result.candidates:
        for k, o in enumerate(c.outputs):
            table.add_row(*output_cells(c.name if k == 0 else "", o))
    return table
