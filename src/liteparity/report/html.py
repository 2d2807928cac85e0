"""The self-contained HTML report: one file, inline SVG plots, no script, no network request.

Rendering never computes: it reads results (``CheckResult``, ``LocateResult``,
``FixResult``) and lays them out with the jinja2 templates shipped in this package. Every
name that comes from a model or data is escaped (autoescape).
"""

from __future__ import annotations

import datetime as dt
import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from liteparity.report import plots
from liteparity.report.findings import verdict
from liteparity.report.layers import LAYER_COLUMNS, layer_cells
from liteparity.report.outputs import OUTPUT_COLUMNS, output_cells
from liteparity.report.outputs import wanted as outputs_wanted
from liteparity.report.table import COLUMNS, _size, cells, reference_cells

PACKAGES = ("liteparity", "tensorflow", "ai-edge-litert", "keras", "numpy")


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def _environment() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("liteparity.report", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(result: Any, command: str) -> str:
    """The report for a ``check``/``explain`` (CheckResult), ``locate`` or ``fix`` result."""
    from liteparity.results.check import CheckResult
    from liteparity.results.fix import FixResult
    from liteparity.results.locate import LocateResult

    context: dict[str, Any] = {
        "command": command,
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "versions": _versions(),
        "plots": [],
    }
    if isinstance(result, CheckResult):
        context.update(_check(result))
    elif isinstance(result, LocateResult):
        context.update(_locate(result))
    elif isinstance(result, FixResult):
        context.update(_fix(result))
    else:
        raise TypeError(f"no report for {type(result).__name__}")
    html: str = _environment().get_template("report.html.j2").render(**context)
    return html


def write_report(path: str | Path, result: Any, command: str) -> Path:
    from liteparity.files import write_atomic

    return write_atomic(Path(path), render(result, command).encode())


def _check(result: Any) -> dict[str, Any]:
    ref = result.reference
    metric = (
        ref.metric.name
        if ref
        else (
            result.candidates[0].metric.name
            if result.candidates and result.candidates[0].metric
            else "metric"
        )
    )
    rows = ([reference_cells(result)] if ref else []) + [cells(c) for c in result.candidates]
    verdicts = []
    for c in result.candidates:
        words, _ = verdict(c)
        verdicts.append(
            {
                "name": c.name,
                "verdict": words,
                "level": c.findings[0].severity.value
                if c.findings
                else ("error" if c.error else "info"),
            }
        )
    findings = [
        {
            "candidate": c.name,
            "id": f.id,
            "severity": f.severity.value,
            "summary": f.summary,
            "fix": f.fix,
            "evidence": json.dumps(f.evidence, indent=1, default=str),
        }
        for c in result.candidates
        for f in c.findings
    ]
    figures = _check_figures(result.candidates, metric)
    return {
        "title": "liteparity explain" if result.noise_floor is not None else "liteparity check",
        "provenance": {
            "model": ref.path if ref else None,
            "model size": _size(ref.size_bytes) if ref else None,
            **{k: v for k, v in result.data.items() if not isinstance(v, dict)},
            "calibration": json.dumps(result.data.get("calibration")),
        },
        "noise_floor": result.noise_floor,
        "headers": [metric if c == "metric" else c for c in COLUMNS],
        "rows": rows,
        "output_headers": OUTPUT_COLUMNS if outputs_wanted(result) else (),
        "output_rows": [output_cells(c.name, o) for c in result.candidates for o in c.outputs],
        "verdicts": verdicts,
        "findings": findings,
        "plots": figures,
    }


def _check_figures(candidates: Any, metric: str) -> list[tuple[str, str]]:
    """The check report's plots: metric against size and latency, errors, the metric per
    batch, and the ranges of the tensors findings name."""
    good = [c for c in candidates if not c.error and c.metric]
    figures = []
    if good:
        points = [
            {
                "name": c.name,
                "size_kb": (c.size_bytes or 0) / 1024,
                "latency_ms": c.latency_ms,
                "metric": c.metric.value,
                "bad": any(f.severity.value == "error" for f in c.findings),
            }
            for c in good
        ]
        figures.append(("Metric against size and latency", plots.pareto(points, metric)))
        samples = {c.name: c.error_sample for c in good if c.error_sample}
        if samples:
            figures.append(("Errors: candidate − reference", plots.histograms(samples)))
        per_batch = {c.name: c.batch_metrics for c in good if len(c.batch_metrics) > 1}
        if per_batch:
            figures.append(
                (f"{metric} over the evaluation batches", plots.batches(per_batch, metric))
            )
    bars = _range_bars(candidates)
    if bars:
        figures.append(("Ranges of the tensors named in findings", plots.ranges(bars)))
    return figures


def _range_bars(candidates: Any) -> list[dict[str, Any]]:
    bars = []
    for c in candidates:
        for f in c.findings:
            e = f.evidence
            covered = e.get("covered_range") or e.get("calibrated_range")
            needed = e.get("needed_range") or e.get("evaluation_range") or e.get("data_range")
            name = e.get("tensor") or e.get("input")
            if covered and name:
                bars.append({"name": f"{c.name}: {name}", "covered": covered, "needed": needed})
    return bars[:12]


def _locate(result: Any) -> dict[str, Any]:
    layers = list(result.layers)
    names = [r.keras_layer or r.tensor_name.split(";")[0] for r in layers]

    def db(metric: dict[str, Any] | None) -> float | None:
        value = (metric or {}).get("sqnr_db")
        return value if isinstance(value, float) else None

    figure = plots.layers(names, [db(r.local) for r in layers], [db(r.propagated) for r in layers])
    jump = result.first_jump
    return {
        "title": "liteparity locate",
        "provenance": {
            "model": result.model,
            "candidate": result.candidate,
            "samples": result.samples,
        },
        "headers": list(LAYER_COLUMNS),
        "rows": [layer_cells(r) for r in result.by_impact()],
        "verdicts": [
            {
                "name": result.candidate,
                "verdict": f"error first jumps at {jump.keras_layer or jump.tensor_name}"
                if jump
                else "no layer stands out",
                "level": "warning" if jump else "info",
            }
        ],
        "findings": [],
        "plots": [("Error along the network (SQNR per layer)", figure)],
    }


def _fix(result: Any) -> dict[str, Any]:
    points = [
        {
            "name": t.name,
            "size_kb": t.size_bytes / 1024,
            "latency_ms": t.latency_ms,
            "metric": t.metric,
            "bad": not t.within_budget,
        }
        for t in result.trials
    ]
    return {
        "title": "liteparity fix",
        "provenance": {
            "model": result.model,
            "search samples": result.search_samples,
            "held-out samples": result.held_out["samples"],
            "out": result.out,
        },
        "headers": [
            "model",
            "size",
            "latency ms",
            result.metric_name,
            "drop",
            "agreement",
            "budget",
            "pareto",
        ],
        "rows": [
            [
                t.name,
                _size(t.size_bytes),
                f"{t.latency_ms:.3f}",
                "–" if t.metric is None else f"{t.metric:.4g}",
                "–" if t.drop is None else f"{t.drop:.2f}",
                "–" if t.agreement is None else f"{t.agreement:.4f}",
                "ok" if t.within_budget else "over",
                "◆" if t.pareto else "",
            ]
            for t in result.trials
        ],
        "verdicts": [
            {
                "name": result.winner.name,
                "verdict": result.reason,
                "level": "info" if result.met else "error",
            }
        ],
        "findings": [],
        "plots": [
            (
                "Models tried: metric against size and latency",
                plots.pareto(points, result.metric_name),
            )
        ],
    }
