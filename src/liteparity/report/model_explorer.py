"""Model Explorer node data: colour the ``.tflite`` graph by each per-layer metric.

The format is Model Explorer's ``node_data_builder`` JSON, written directly (no dependency on
the package): ``{"main": {"results": {<output tensor name>: {"value": v}}, "gradient":
[...]}}``. For every metric worse is redder: a gradient from green to red when larger values
are worse (errors, saturation, sensitivity), from red to green when larger is better (SQNR).
Open with ``model-explorer model.tflite --node_data_paths=PATH``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

#: Graph id of the main subgraph of a TFLite model in Model Explorer.
GRAPH = "main"
GREEN, YELLOW, RED = "#4caf50", "#ffeb3b", "#f44336"

#: metric name → (how to read it from a layer record, larger is worse)
METRICS: dict[str, tuple[Any, bool]] = {
    "local_sqnr_db": (lambda r: (r.local or {}).get("sqnr_db"), False),
    "propagated_sqnr_db": (lambda r: (r.propagated or {}).get("sqnr_db"), False),
    "local_mean_squared_error": (lambda r: (r.local or {}).get("mean_squared_error"), True),
    "rmse_over_scale": (lambda r: r.rmse_over_scale, True),
    "saturation": (lambda r: r.saturation, True),
    "sensitivity": (lambda r: r.sensitivity, True),
}


def node_data(result: Any, metric: str) -> dict[str, Any]:
    """Node data for one metric of a ``LocateResult`` (empty results when it has none)."""
    read, larger_is_worse = METRICS[metric]
    results = {}
    for record in result.layers:
        value = read(record)
        if isinstance(value, (int, float)) and math.isfinite(value):
            results[record.tensor_name] = {"value": float(value)}
    colours = [GREEN, YELLOW, RED] if larger_is_worse else [RED, YELLOW, GREEN]
    gradient = [{"stop": stop, "bgColor": c} for stop, c in zip((0, 0.5, 1), colours, strict=True)]
    return {GRAPH: {"results": results, "gradient": gradient}}


def write_node_data(path: str | Path, result: Any) -> list[Path]:
    """``path`` gets the first metric the result has (local SQNR, else propagated SQNR);
    ``<stem>.<metric>.json`` beside it gets each of the others."""
    from liteparity.files import write_atomic

    path = Path(path)
    present = [m for m in METRICS if node_data(result, m)[GRAPH]["results"]]
    written = []
    for i, metric in enumerate(present):
        target = path if i == 0 else path.with_name(f"{path.stem}.{metric}{path.suffix}")
        text = json.dumps(node_data(result, metric), indent=2)
        written.append(write_atomic(target, text.encode()))
    return written
