"""The ``liteparity`` command: a thin shell over the Python API.

Library errors (``LiteparityError``) become one red line and their exit code here, and nowhere
else; ``--debug`` shows the traceback. Exit codes: 0 fine, 1 a budget is broken, 2 bad input
or a candidate that could not be measured, 130 interrupted.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from liteparity import __version__
from liteparity.errors import LiteparityError, UsageError

app = typer.Typer(
    name="liteparity",
    help="Find, explain and fix the accuracy gap between a TensorFlow/Keras model and its "
    "TensorFlow Lite (LiteRT) conversion.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)

Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")]

# Options shared by several commands, declared once.
Model = Annotated[
    str,
    typer.Argument(
        help="Reference model: .keras, .h5, SavedModel dir, frozen .pb or float .tflite."
    ),
]
Data = Annotated[
    str,
    typer.Option(
        "--data", "-d", help="Evaluation data: .npz (x, y), .npy, .csv[.gz] or an image folder."
    ),
]
CalibrationData = Annotated[
    str | None, typer.Option(help="Calibration data (default: a seeded split of --data).")
]
Inputs = Annotated[list[str] | None, typer.Option(help="Frozen graph input names.")]
Outputs = Annotated[list[str] | None, typer.Option(help="Frozen graph output names.")]
InputShapes = Annotated[
    list[str] | None, typer.Option(help="Frozen graph input shapes, e.g. 1,784 (repeat per input).")
]
CalibrationSamples = Annotated[int, typer.Option(help="Calibration samples.")]
MaxSamples = Annotated[
    int | None, typer.Option(help="Use at most this many evaluation samples (seeded choice).")
]
Seed = Annotated[int, typer.Option(help="Seed of every data split.")]
JsonPath = Annotated[Path | None, typer.Option("--json", help="Write the result as JSON.")]
Report = Annotated[
    Path | None, typer.Option(help="Write a self-contained HTML report (plots, findings).")
]
ImageSize = Annotated[str | None, typer.Option(help="Image folders: resize to HxW.")]
Scale = Annotated[
    float | None,
    typer.Option(
        help="Image folders: multiply pixels by this (e.g. 0.00392156862745098 for [0, 1])."
    ),
]
LabelColumn = Annotated[int | None, typer.Option(help="CSV: column holding the label (-1: last).")]
Unsafe = Annotated[
    bool, typer.Option(help="Allow Keras Lambda/custom layers (runs code from the model file).")
]


def _show(result: Any) -> None:
    """Print a result's terminal view (the renderers load only when there is one to show)."""
    from liteparity.report.terminal import render

    console.print(render(result))


def _fail(message: str, code: int) -> None:
    err.print(f"[bold red]liteparity:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def handle_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library errors into one line and an exit code (tracebacks with --debug)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except LiteparityError as exc:
            if kwargs.get("debug"):
                raise
            _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted; no partial output was written", 130)

    return wrapper


@contextmanager
def progress_bar() -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress bar fed by the library's ``progress(stage, done, total)`` callback."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("{task.description:<24}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )
    task = bar.add_task("loading model", total=None)

    def update(stage: str, done: int, total: int) -> None:
        bar.update(task, description=stage, completed=done, total=total or None)

    with bar:
        yield update


def _split(values: list[str] | None) -> list[str] | None:
    """``--recipes a,b --recipes c`` → ``[a, b, c]``."""
    if not values:
        return None
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def _shapes(values: list[str] | None) -> list[tuple[int, ...]] | None:
    if not values:
        return None
    try:
        return [tuple(int(d) for d in v.replace("x", ",").split(",")) for v in values]
    except ValueError:
        raise UsageError(
            f"--input-shapes {values}: expected comma-separated integers, e.g. 1,28,28,1"
        ) from None


def _image_size(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        h, w = (int(v) for v in value.lower().replace(",", "x").split("x"))
    except ValueError:
        raise UsageError(f"--image-size {value!r}: expected HEIGHTxWIDTH, e.g. 28x28") from None
    return h, w


def _model_options(
    inputs: list[str] | None,
    outputs: list[str] | None,
    input_shapes: list[str] | None,
    unsafe: bool,
) -> dict[str, Any]:
    """The API's model-loading keywords from the shared CLI options."""
    return {
        "inputs": _split(inputs),
        "outputs": _split(outputs),
        "input_shapes": _shapes(input_shapes),
        "unsafe": unsafe,
    }


def _data_options(
    calibration_data: str | None,
    calibration_samples: int,
    max_samples: int | None,
    seed: int,
    image_size: str | None = None,
    scale: float | None = None,
    label_column: int | None = None,
) -> dict[str, Any]:
    """The API's data keywords from the shared CLI options."""
    return {
        "calibration_data": calibration_data,
        "calibration_samples": calibration_samples,
        "max_samples": max_samples,
        "seed": seed,
        "image_size": _image_size(image_size),
        "scale": scale,
        "label_column": label_column,
    }


def write_output(path: Path, text: str) -> None:
    """Write via a temporary file and a rename, so no half-written file is ever left."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _save(path: Path | None, text: Callable[[], str]) -> None:
    """Write ``text()`` to ``path`` when one was asked for, and say so."""
    if path is not None:
        write_output(path, text())
        err.print(f"wrote {path}")


def _report_check(
    result: Any, json_path: Path | None, max_drop: float | None, min_agreement: float | None
) -> None:
    _show(result)
    if result.noise_floor is not None or any(c.findings for c in result.candidates):
        from liteparity.report.findings import findings_view

        console.print(findings_view(result))
    _save(json_path, result.to_json)
    failed = [c for c in result.candidates if c.error]
    broken = result.violations(max_drop, min_agreement)
    for line in broken:
        err.print(f"[bold yellow]budget:[/] {line}", highlight=False)
    if failed:
        raise typer.Exit(2)
    if broken:
        raise typer.Exit(1)


def check_or_explain(
    ctx: typer.Context,
    model: Model,
    data: Data,
    calibration_data: CalibrationData = None,
    recipes: Annotated[
        list[str] | None,
        typer.Option(
            "--recipes",
            "-r",
            help="Recipes, comma-separated, or 'all' (the default without --candidate).",
        ),
    ] = None,
    candidate: Annotated[
        list[Path] | None,
        typer.Option(help="A .tflite to compare with the reference (repeatable)."),
    ] = None,
    inputs: Inputs = None,
    outputs: Outputs = None,
    input_shapes: InputShapes = None,
    mean: Annotated[
        float | None,
        typer.Option(help="legacy-uint8: quantized_input_stats mean (real = (q - mean) / std)."),
    ] = None,
    std: Annotated[
        float | None, typer.Option(help="legacy-uint8: quantized_input_stats std_dev.")
    ] = None,
    default_ranges: Annotated[
        tuple[float, float] | None, typer.Option(help="legacy-uint8: default_ranges_stats MIN MAX.")
    ] = None,
    calibration_samples: CalibrationSamples = 200,
    max_samples: MaxSamples = None,
    seed: Seed = 0,
    json_path: JsonPath = None,
    save_models: Annotated[
        Path | None, typer.Option(help="Directory to write each converted .tflite to.")
    ] = None,
    max_drop: Annotated[
        float | None,
        typer.Option(
            help="Exit 1 when a candidate loses more than this many accuracy points (or % MSE)."
        ),
    ] = None,
    min_agreement: Annotated[
        float | None,
        typer.Option(help="Exit 1 when a candidate's top-1 agreement is below this fraction."),
    ] = None,
    image_size: ImageSize = None,
    scale: Scale = None,
    label_column: LabelColumn = None,
    unsafe: Unsafe = False,
    qat_epochs: Annotated[
        int, typer.Option(help="Epochs of quantization-aware fine-tuning for --recipes qat.")
    ] = 1,
    resume: Annotated[
        bool,
        typer.Option(help="Reuse converted models and finished results of earlier runs."),
    ] = False,
    report: Report = None,
    debug: Debug = False,
) -> None:
    from liteparity.convert.recipes import LegacySettings
    from liteparity.diagnose.explain import explain
    from liteparity.measure.check import check as run_check

    legacy = None
    if mean is not None or std is not None:
        if mean is None or std is None:
            raise UsageError("--mean and --std go together (TF1 quantized_input_stats)")
        legacy = LegacySettings(mean, std, default_ranges)
    elif default_ranges is not None:
        raise UsageError("--default-ranges needs --mean and --std (the legacy-uint8 recipe)")
    run = explain if ctx.info_name == "explain" else run_check
    with progress_bar() as progress:
        result = run(
            model,
            data=data,
            recipes=_split(recipes),
            candidates=candidate or (),
            legacy=legacy,
            save_dir=save_models,
            **_model_options(inputs, outputs, input_shapes, unsafe),
            **_data_options(
                calibration_data,
                calibration_samples,
                max_samples,
                seed,
                image_size,
                scale,
                label_column,
            ),
            progress=progress,
            resume=resume,
            qat_epochs=qat_epochs,
        )
    _write_report(report, result)
    _report_check(result, json_path, max_drop, min_agreement)


def _write_report(path: Path | None, result: Any) -> None:
    if path is not None:
        from liteparity.report.html import write_report

        write_report(path, result, "liteparity " + " ".join(sys.argv[1:]))
        err.print(f"wrote {path}")


CHECK_HELP = """Convert MODEL under each recipe, run every candidate on LiteRT, and measure the gap.

[dim]Examples:[/]

  liteparity check model.keras --data eval.npz --calibration-data cal.npz --recipes all

  liteparity check float.tflite --candidate quant.tflite --data eval.npz

  liteparity check graph.pb --inputs input --outputs output --recipes legacy-uint8
  --mean 128 --std 128 --default-ranges 0 6 --data eval.npz
"""

EXPLAIN_HELP = """Like check, then say why each candidate differs: findings with evidence and fixes.

Measures the float32 noise floor (the reference again in float64), how the data sits in each
input's quantized range, and every intermediate tensor of each candidate on a sample of the
data.

[dim]Examples:[/]

  liteparity explain model.keras --recipes all --data eval.npz --calibration-data cal.npz

  liteparity explain model.keras --candidate my_quant.tflite --data eval.npz

  liteparity explain legacy_uint8.tflite --data eval.npz   [dim]# a lone quantized model[/]
"""

app.command("check", help=CHECK_HELP)(handle_errors(check_or_explain))
app.command("explain", help=EXPLAIN_HELP)(handle_errors(check_or_explain))


@app.command()
@handle_errors
def locate(
    model: Model,
    data: Data,
    calibration_data: CalibrationData = None,
    recipe: Annotated[str, typer.Option(help="The recipe to examine.")] = "int8",
    candidate: Annotated[
        Path | None,
        typer.Option(help="Examine this .tflite instead of a recipe (propagated error only)."),
    ] = None,
    inputs: Inputs = None,
    outputs: Outputs = None,
    input_shapes: InputShapes = None,
    calibration_samples: CalibrationSamples = 200,
    max_samples: MaxSamples = None,
    seed: Seed = 0,
    sensitivity: Annotated[
        bool, typer.Option(help="Re-quantize with each layer group in float to rank layers.")
    ] = True,
    csv_path: Annotated[
        Path | None,
        typer.Option(
            "--csv", help="Write every layer as CSV (QuantizationDebugger's columns first)."
        ),
    ] = None,
    json_path: JsonPath = None,
    image_size: ImageSize = None,
    scale: Scale = None,
    label_column: LabelColumn = None,
    unsafe: Unsafe = False,
    report: Report = None,
    model_explorer: Annotated[
        Path | None, typer.Option(help="Write Model Explorer node data (graph coloured by error).")
    ] = None,
    debug: Debug = False,
) -> None:
    """Per-layer error of a quantized model, local and propagated, in Keras layer names.

    [dim]Examples:[/]

      liteparity locate model.keras --recipe int8 --data eval.npz --calibration-data cal.npz
      --csv layers.csv --json layers.json

      liteparity locate model.keras --candidate my_quant.tflite --data eval.npz
    """
    from liteparity.layerwise.locate import locate as run_locate

    with progress_bar() as progress:
        result = run_locate(
            model,
            data=data,
            recipe=recipe,
            candidate=candidate,
            with_sensitivity=sensitivity,
            **_model_options(inputs, outputs, input_shapes, unsafe),
            **_data_options(
                calibration_data,
                calibration_samples,
                max_samples,
                seed,
                image_size,
                scale,
                label_column,
            ),
            progress=progress,
        )
    _show(result)
    jump = result.first_jump
    if jump is not None:
        console.print(
            f"The error first jumps at [bold]{jump.keras_layer or jump.tensor_name}[/] "
            f"({jump.op}, tensor {jump.tensor_name!r}).",
            highlight=False,
        )
    if result.unmatched:
        console.print(
            f"[dim]{len(result.unmatched)} tensor(s) not produced by a Keras layer: "
            f"{', '.join(result.unmatched[:5])}[/]",
            highlight=False,
        )
    _save(csv_path, result.to_csv)
    _save(json_path, result.to_json)
    if model_explorer is not None:
        from liteparity.report.model_explorer import write_node_data

        for path in write_node_data(model_explorer, result):
            err.print(f"wrote {path}")
    _write_report(report, result)


@app.command()
@handle_errors
def fix(
    model: Model,
    data: Data,
    calibration_data: CalibrationData = None,
    max_drop: Annotated[
        float | None, typer.Option(help="Accuracy points (or % MSE) the fixed model may lose.")
    ] = 1.0,
    min_agreement: Annotated[
        float | None, typer.Option(help="Top-1 agreement with the reference it must keep.")
    ] = None,
    prefer: Annotated[str, typer.Option(help="size or latency.")] = "size",
    integer_only: Annotated[
        bool,
        typer.Option(help="Only integer models (int8, int16x8, int8 with a few layers in float)."),
    ] = False,
    qat_epochs: Annotated[
        int,
        typer.Option(
            help="Also try quantization-aware fine-tuning for this many epochs on "
            "the labelled search data (Keras 2 .h5 models)."
        ),
    ] = 0,
    out: Annotated[Path | None, typer.Option(help="Write the chosen .tflite here.")] = None,
    json_path: JsonPath = None,
    inputs: Inputs = None,
    outputs: Outputs = None,
    input_shapes: InputShapes = None,
    calibration_samples: CalibrationSamples = 200,
    max_samples: MaxSamples = None,
    seed: Seed = 0,
    unsafe: Unsafe = False,
    report: Report = None,
    debug: Debug = False,
) -> None:
    """The smallest (or fastest) model that meets the accuracy budget, written to --out.

    Tries every recipe that needs no training and int8 with the most sensitive layer groups
    kept in float (bisection over the sensitivity ranking, then pruning); measures the winner
    again on held-out data. Exit 1 when nothing meets the budget (the best model found is
    still written).

    [dim]Examples:[/]

      liteparity fix model.keras --data eval.npz --calibration-data cal.npz --max-drop 1.0
      --out model_fixed.tflite --json fix.json

      liteparity fix model.keras --data eval.npz --max-drop 0.5 --prefer latency
    """
    from liteparity.repair.fix import fix as run_fix

    with progress_bar() as progress:
        result = run_fix(
            model,
            data=data,
            max_drop=max_drop,
            min_agreement=min_agreement,
            prefer=prefer,
            integer_only=integer_only,
            qat_epochs=qat_epochs,
            out=out,
            **_model_options(inputs, outputs, input_shapes, unsafe),
            **_data_options(calibration_data, calibration_samples, max_samples, seed),
            progress=progress,
        )
    _show(result)
    w, held = result.winner, result.held_out
    console.print(
        f"winner: [bold]{w.name}[/] — {result.reason}. Held out ({held['samples']} samples): "
        f"drop {_num(held['drop'], '.2f')}, agreement {_num(held['agreement'], '.4f')}"
        + ("" if result.held_out_met else " [bold yellow](breaks the budget on held-out data)[/]")
        + f"; selective search: {result.search_trials} quantize+evaluate trials.",
        highlight=False,
    )
    for label, findings in (("before (plain int8)", result.before), ("after", result.after)):
        top = findings[0] if findings else None
        words = f"{top.verdict} — {top.summary}" if top else "no issues found"
        console.print(f"{label}: {words}", highlight=False)
    if result.out:
        err.print(f"wrote {result.out}")
    _save(json_path, result.to_json)
    _write_report(report, result)
    if not result.met:
        err.print("[bold yellow]budget:[/] no model meets it; wrote the most accurate one found")
        raise typer.Exit(1)


@app.command("compare-qat")
@handle_errors
def compare_qat(
    model: Annotated[str, typer.Argument(help="A float Keras 2 model (.h5).")],
    data: Annotated[
        str, typer.Option("--data", "-d", help="Labelled data: half trains, half evaluates.")
    ],
    epochs: Annotated[int, typer.Option(help="Quantization-aware training epochs.")] = 1,
    resamples: Annotated[int, typer.Option(help="Resampled evaluation batches.")] = 20,
    batch_size: Annotated[int, typer.Option(help="Samples per resampled batch.")] = 100,
    max_samples: MaxSamples = None,
    seed: Seed = 0,
    json_path: JsonPath = None,
    debug: Debug = False,
) -> None:
    """Seed 003: a QAT model converted directly vs its weights copied into the float model and
    post-training quantized, as distributions over resampled batches.

    [dim]Example:[/]

      liteparity compare-qat model.h5 --data train.npz --epochs 3 --resamples 20
    """
    from liteparity.repair.qat import compare_qat as run

    with progress_bar() as progress:
        result = run(
            model,
            data=data,
            epochs=epochs,
            resamples=resamples,
            batch_size=batch_size,
            max_samples=max_samples,
            seed=seed,
            progress=progress,
        )
    _show(result)
    _save(json_path, result.to_json)


@app.command()
@handle_errors
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
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    debug: Debug = False,
) -> None:
    """Convert between (mean, std_dev), (scale, zero_point) and (min, max).

    [dim]Examples:[/]
      liteparity qparams --mean 128 --std 128 --dtype uint8
      liteparity qparams --min 0 --max 1
      liteparity qparams --scale 0.0039215686 --zero-point 0
      liteparity qparams model.tflite
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
    if json_out:
        payload = rows[0] if model is None else rows
        if model is None:
            payload.pop("tensor")
        console.print_json(json.dumps(payload))
        return
    _print_qparams(rows)


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


def _print_qparams(rows: list[dict[str, Any]]) -> None:
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
    console.print(table)


def _num(value: float | None, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.8g}"
    if isinstance(value, list):
        return f"{len(value)} channels"
    return str(value)


@app.command()
@handle_errors
def demo(
    json_path: JsonPath = None,
    report: Report = None,
    debug: Debug = False,
) -> None:
    """Train (once, cached) a small CNN on real MNIST digits and explain every recipe on it.

    The table includes legacy-uint8 with the seeds' settings (mean 0, std 255,
    default_ranges 0 6): the classic "my uint8 model is garbage" case.
    """
    from liteparity.convert.recipes import LegacySettings
    from liteparity.demo import cache_dir, prepare
    from liteparity.diagnose.explain import explain

    err.print(f"demo files: {cache_dir() / 'demo'}")
    with progress_bar() as progress:
        progress("training the demo CNN (first run only)", 0, 0)
        files = prepare()
        result = explain(
            str(files.model),
            data=str(files.eval_data),
            calibration_data=str(files.calibration_data),
            recipes=["all"],
            legacy=LegacySettings(0.0, 255.0, (0.0, 6.0)),
            progress=progress,
        )
    _write_report(report, result)
    _report_check(result, json_path, None, None)


def version_callback(value: bool) -> None:
    if value:
        console.print(f"liteparity {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=version_callback, is_eager=True, help="Show the version."
        ),
    ] = False,
) -> None:
    """Find, explain and fix the accuracy gap between a Keras/TF model and its TFLite twin."""


def main() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(app())
