"""The option groups several commands share, each declared once: the model options, the data
options and the output options. Each group is a function whose parameters are its options and
which builds the value the commands take (``ModelSpec``, ``DataSpec``, ``Output``); see
``groups.uses``. The specs check the values, so a bad one is one line naming its option."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from liteparity.cli.output import Output
from liteparity.errors import UsageError
from liteparity.specs import DataSpec, ModelSpec

#: The --help panels of the groups' options.
MODEL, DATA, OUTPUT = "Model options", "Data options", "Output options"
ENGINE = "Engine options"

Model = Annotated[
    str,
    typer.Argument(
        help="Reference model: .keras, .h5, SavedModel dir, frozen .pb or float .tflite.",
        show_default=False,
    ),
]
Inputs = Annotated[
    list[str] | None, typer.Option(rich_help_panel=MODEL, help="Frozen graph input names.")
]
Outputs = Annotated[
    list[str] | None, typer.Option(rich_help_panel=MODEL, help="Frozen graph output names.")
]
InputShapes = Annotated[
    list[str] | None,
    typer.Option(
        rich_help_panel=MODEL, help="Frozen graph input shapes, e.g. 1,784 (repeat per input)."
    ),
]
Unsafe = Annotated[
    bool,
    typer.Option(
        rich_help_panel=MODEL,
        help="Allow Keras Lambda/custom layers (runs code from the model file).",
    ),
]

Resume = Annotated[
    bool,
    typer.Option(help="Reuse converted models and finished results of earlier runs."),
]

BudgetOutputs = Annotated[
    list[str] | None,
    typer.Option(
        "--budget-output",
        help="The output(s) --max-drop and --min-agreement apply to, each on its own "
        "(default: every output with a task metric). Repeatable.",
    ),
]

Data = Annotated[
    str,
    typer.Option(
        "--data",
        "-d",
        rich_help_panel=DATA,
        help="Evaluation data: .npz (x, y), .npy, .csv[.gz] or an image folder.",
    ),
]
LabelledData = Annotated[
    str,
    typer.Option(
        "--data", "-d", rich_help_panel=DATA, help="Labelled data: half trains, half evaluates."
    ),
]
CalibrationData = Annotated[
    str | None,
    typer.Option(
        rich_help_panel=DATA, help="Calibration data (default: a seeded split of --data)."
    ),
]
CalibrationSamples = Annotated[int, typer.Option(rich_help_panel=DATA, help="Calibration samples.")]
MaxSamples = Annotated[
    int | None,
    typer.Option(
        rich_help_panel=DATA, help="Use at most this many evaluation samples (seeded choice)."
    ),
]
Seed = Annotated[int, typer.Option(rich_help_panel=DATA, help="Seed of every data split.")]
ImageSize = Annotated[
    str | None, typer.Option(rich_help_panel=DATA, help="Image folders: resize to HxW.")
]
Scale = Annotated[
    float | None,
    typer.Option(
        rich_help_panel=DATA,
        help="Image folders: multiply pixels by this (e.g. 0.00392156862745098 for [0, 1]).",
    ),
]
LabelColumn = Annotated[
    int | None, typer.Option(rich_help_panel=DATA, help="CSV: column holding the label (-1: last).")
]

Engine = Annotated[
    str,
    typer.Option(
        rich_help_panel=ENGINE,
        help="Where the models run: local (worker processes) or ray (a Ray cluster).",
    ),
]
RayAddress = Annotated[
    str | None,
    typer.Option(
        rich_help_panel=ENGINE,
        help="--engine ray: the cluster (auto, ray://HOST:10001; default: start one here).",
    ),
]
Shards = Annotated[
    int | None,
    typer.Option(
        rich_help_panel=ENGINE,
        help="--engine ray: actors sharing each model's rows, conversions at once "
        "(default: one per cluster CPU).",
    ),
]

JsonPath = Annotated[
    Path | None,
    typer.Option(
        "--json",
        metavar="PATH",
        rich_help_panel=OUTPUT,
        help="Write the result as JSON to PATH (-: stdout).",
    ),
]
Report = Annotated[
    Path | None,
    typer.Option(
        metavar="PATH",
        rich_help_panel=OUTPUT,
        help="Write a self-contained HTML report (plots, findings).",
    ),
]
Profile = Annotated[
    bool,
    typer.Option(
        "--profile",
        rich_help_panel=OUTPUT,
        help="Print where the time went (import, convert, calibrate, reference, ...) in one line.",
    ),
]


def model_options(
    model: Model,
    inputs: Inputs = None,
    outputs: Outputs = None,
    input_shapes: InputShapes = None,
    unsafe: Unsafe = False,
) -> ModelSpec:
    """The model group → ``ModelSpec``."""
    return ModelSpec(
        model, split_names(inputs), split_names(outputs), _shapes(input_shapes), unsafe
    )


def data_options(
    data: Data,
    calibration_data: CalibrationData = None,
    calibration_samples: CalibrationSamples = DataSpec.calibration_samples,
    max_samples: MaxSamples = None,
    seed: Seed = DataSpec.seed,
    image_size: ImageSize = None,
    scale: Scale = None,
    label_column: LabelColumn = None,
) -> DataSpec:
    """The data group → ``DataSpec``."""
    return DataSpec(
        data,
        calibration_data,
        calibration_samples,
        max_samples,
        seed,
        _image_size(image_size),
        scale,
        label_column,
    )


def labelled_data_options(
    data: LabelledData, max_samples: MaxSamples = None, seed: Seed = DataSpec.seed
) -> DataSpec:
    """The data of ``compare-qat``, which trains on half of it and needs no calibration."""
    return DataSpec(data, max_samples=max_samples, seed=seed)


def output_options(
    json_path: JsonPath = None, report: Report = None, profile: Profile = False
) -> Output:
    """The output group → ``Output``."""
    return Output(json_path, report, profile)


def json_option(json_path: JsonPath = None) -> Output:
    """The output of commands without an HTML report (``qparams``, ``compare-qat``)."""
    return Output(json_path)


def split_names(values: list[str] | None) -> tuple[str, ...] | None:
    """``--recipes a,b --recipes c`` → ``(a, b, c)``."""
    if not values:
        return None
    return tuple(v.strip() for value in values for v in value.split(",") if v.strip())


def _shapes(values: list[str] | None) -> tuple[tuple[int, ...], ...] | None:
    if not values:
        return None
    try:
        return tuple(tuple(int(d) for d in v.replace("x", ",").split(",")) for v in values)
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
