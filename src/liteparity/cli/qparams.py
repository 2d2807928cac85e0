"""``liteparity qparams``: the seeds' quantization formulas, and the real ranges of a .tflite's
inputs and outputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from liteparity.cli.groups import uses
from liteparity.cli.options import json_option
from liteparity.cli.output import Output
from liteparity.errors import UsageError


@uses(output=json_option)
def qparams(
    model: Annotated[
        Path | None,
        typer.Argument(help="A .tflite: show the real range each input and output covers."),
    ] = None,
    mean: Annotated[float | None, typer.Option(help="TF1 mean (zero point).")] = None,
    std: Annotated[float | None, typer.Option(help="TF1 std_dev (1 / scale).")] = None,
    scale: Annotated[float | None, typer.Option(help="Scale.")] = None,
    zero_point: Annotated[int | None, typer.Option(help="Zero point.")] = None,
    min_: Annotated[float | None, typer.Option("--min", help="Smallest real value.")] = None,
    max_: Annotated[float | None, typer.Option("--max", help="Largest real value.")] = None,
    dtype: Annotated[str, typer.Option(help="uint8, int8 or int16.")] = "uint8",
    *,
    output: Output,
) -> None:
    """Convert between (mean, std_dev), (scale, zero_point) and (min, max).

    [dim]Examples:[/]

      liteparity qparams --mean 128 --std 128 --dtype uint8

      liteparity qparams --min 0 --max 1 --json -

      liteparity qparams --scale 0.0039215686 --zero-point 0

      liteparity qparams model.tflite --json qparams.json
    """
    from liteparity import qparams as qp

    given = {
        "--mean/--std": (mean, std),
        "--scale/--zero-point": (scale, zero_point),
        "--min/--max": (min_, max_),
    }
    used = [k for k, pair in given.items() if any(v is not None for v in pair)]
    if model is not None:
        if used:
            raise UsageError(f"give a .tflite or {used[0]}, not both")
        rows = _tflite_qparams(model)
    else:
        if len(used) != 1:
            raise UsageError(
                "give exactly one of --mean/--std, --scale/--zero-point, "
                "--min/--max, or a .tflite path"
            )
        pair = given[used[0]]
        if any(v is None for v in pair):
            raise UsageError(f"{used[0]} needs both values")
        if used[0] == "--mean/--std":
            params = qp.from_mean_std(mean, std, dtype)  # type: ignore[arg-type]
        elif used[0] == "--scale/--zero-point":
            params = qp.QParams(scale, zero_point, dtype)  # type: ignore[arg-type]
        else:
            params = qp.from_min_max(min_, max_, dtype)  # type: ignore[arg-type]
        rows = [{"tensor": None, **params.to_dict()}]
    output.console.print(_table(rows))
    payload = rows if model is not None else {k: v for k, v in rows[0].items() if k != "tensor"}
    output.save_json(lambda: json.dumps(payload, indent=2))


def _tflite_qparams(path: Path) -> list[dict[str, Any]]:
    from liteparity.reference.base import read_tflite
    from liteparity.runtime.model_jobs import RunModel
    from liteparity.runtime.worker import Worker

    with Worker(path.name) as worker:
        info = worker.start(RunModel(read_tflite(path))).get()
    rows = []
    for role, tensors in (("input", info.inputs), ("output", info.outputs)):
        for t in tensors:
            q = t.quantization.to_dict() if t.quantization else {"dtype": t.dtype}
            rows.append({"tensor": f"{role} {t.name}", **q})
    return rows


def _table(rows: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table()
    keys = ["dtype", "scale", "zero_point", "mean", "std_dev", "min", "max"]
    if rows[0]["tensor"] is not None:
        table.add_column("tensor")
    for key in keys:
        table.add_column(key, justify="right")
    for row in rows:
        cells = [_fmt(row.get(k, "float (not quantized)" if k == "scale" else "")) for k in keys]
        table.add_row(*([row["tensor"]] if row["tensor"] is not None else []), *cells)
    return table


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.8g}"
    if isinstance(value, list):
        return f"{len(value)} channels"
    return str(value)
