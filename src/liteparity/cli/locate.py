"""``liteparity locate``: per-layer error in Keras layer names."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from liteparity.cli.groups import uses
from liteparity.cli.options import (
    Engine,
    RayAddress,
    Resume,
    Shards,
    data_options,
    model_options,
    output_options,
)
from liteparity.cli.output import Output, progress_bar, save, wrote
from liteparity.specs import DataSpec, LocateOptions, ModelSpec


def locate_options(
    recipe: Annotated[
        str, typer.Option(help="The recipe to examine (aeq:<name> for AEQ's own).")
    ] = LocateOptions.recipe,
    candidate: Annotated[
        Path | None,
        typer.Option(help="Examine this .tflite instead of a recipe (propagated error only)."),
    ] = None,
    sensitivity: Annotated[
        bool, typer.Option(help="Re-quantize with each layer group in float to rank layers.")
    ] = LocateOptions.with_sensitivity,
    rank_output: Annotated[
        str | None,
        typer.Option(help="Rank layers by their effect on this output only (by name)."),
    ] = None,
    resume: Resume = LocateOptions.resume,
    engine: Engine = LocateOptions.engine,
    ray_address: RayAddress = None,
    shards: Shards = None,
) -> LocateOptions:
    """The options of locate → ``LocateOptions``."""
    return LocateOptions(
        recipe,
        candidate,
        sensitivity,
        rank_output=rank_output,
        resume=resume,
        engine=engine,
        ray_address=ray_address,
        shards=shards,
    )


@uses(model=model_options, data=data_options, options=locate_options, output=output_options)
def locate(
    model: ModelSpec,
    data: DataSpec,
    options: LocateOptions,
    output: Output,
    csv_path: Annotated[
        Path | None,
        typer.Option(
            "--csv",
            metavar="PATH",
            help="Write every layer as CSV (QuantizationDebugger's columns first).",
        ),
    ] = None,
    model_explorer: Annotated[
        Path | None,
        typer.Option(
            metavar="PATH", help="Write Model Explorer node data (graph coloured by error)."
        ),
    ] = None,
) -> None:
    """Per-layer error of a quantized model, local and propagated, in Keras layer names.

    [dim]Examples:[/]

      liteparity locate model.keras --recipe int8 --data eval.npz --calibration-data cal.npz
      --csv layers.csv --json layers.json

      liteparity locate model.keras --candidate my_quant.tflite --data eval.npz --json -
    """
    from liteparity.layerwise.locate import locate as run_locate
    from liteparity.report.table import engine_retries
    from liteparity.timings import recording

    with progress_bar() as progress, recording() as timings:
        result = run_locate(model, data, options, progress=progress)
    output.show_profile(timings.to_dict())
    output.show(result)
    jump = result.first_jump
    if jump is not None:
        output.console.print(
            f"The error first jumps at [bold]{jump.keras_layer or jump.tensor_name}[/] "
            f"({jump.op}, tensor {jump.tensor_name!r}).",
            highlight=False,
        )
    for line in engine_retries(result.engine):  # a lost Ray actor's batches, retried
        output.console.print(line, highlight=False)
    note = (result.sensitivity_run or {}).get("note")
    if note:
        output.console.print(f"[dim]{note}[/]", highlight=False)
    if result.unmatched:
        output.console.print(
            f"[dim]{len(result.unmatched)} tensor(s) not produced by a Keras layer: "
            f"{', '.join(result.unmatched[:5])}[/]",
            highlight=False,
        )
    save(csv_path, result.to_csv)
    output.save_json(result.to_json)
    if model_explorer is not None:
        from liteparity.report.model_explorer import write_node_data

        for path in write_node_data(model_explorer, result):
            wrote(path)
    output.save_report(result)
