"""``liteparity fix``: the smallest (or fastest) model within the accuracy budget."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from liteparity.cli.groups import uses
from liteparity.cli.options import (
    BudgetOutputs,
    Engine,
    RayAddress,
    Resume,
    Shards,
    data_options,
    model_options,
    output_options,
    split_names,
)
from liteparity.cli.output import Output, err, progress_bar, wrote
from liteparity.specs import DataSpec, FixOptions, ModelSpec


def fix_options(
    max_drop: Annotated[
        float | None, typer.Option(help="Accuracy points (or % MSE) the fixed model may lose.")
    ] = FixOptions.max_drop,
    min_agreement: Annotated[
        float | None, typer.Option(help="Top-1 agreement with the reference it must keep.")
    ] = None,
    prefer: Annotated[str, typer.Option(help="size or latency.")] = FixOptions.prefer,
    integer_only: Annotated[
        bool,
        typer.Option(help="Only integer models (int8, int16x8, int8 with a few layers in float)."),
    ] = FixOptions.integer_only,
    qat_epochs: Annotated[
        int,
        typer.Option(
            help="Also try quantization-aware fine-tuning for this many epochs on "
            "the labelled search data (Keras 2 .h5 models)."
        ),
    ] = FixOptions.qat_epochs,
    out: Annotated[
        Path | None, typer.Option(metavar="PATH", help="Write the chosen .tflite here.")
    ] = None,
    budget_output: BudgetOutputs = None,
    engine: Engine = FixOptions.engine,
    ray_address: RayAddress = None,
    shards: Shards = None,
    resume: Resume = FixOptions.resume,
) -> FixOptions:
    """The options of fix → ``FixOptions``."""
    return FixOptions(
        max_drop,
        min_agreement,
        prefer,
        integer_only,
        qat_epochs,
        out,
        budget_outputs=split_names(budget_output),
        engine=engine,
        ray_address=ray_address,
        shards=shards,
        resume=resume,
    )


@uses(model=model_options, data=data_options, options=fix_options, output=output_options)
def fix(model: ModelSpec, data: DataSpec, options: FixOptions, output: Output) -> None:
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
    from liteparity.report.table import engine_retries
    from liteparity.timings import recording

    with progress_bar() as progress, recording() as timings:
        result = run_fix(model, data, options, progress=progress)
    output.show_profile(timings.to_dict())
    output.show(result)
    w, held = result.winner, result.held_out
    output.console.print(
        f"winner: [bold]{w.name}[/] — {result.reason}. Held out ({held['samples']} samples): "
        f"drop {_num(held['drop'], '.2f')}, agreement {_num(held['agreement'], '.4f')}"
        + ("" if result.held_out_met else " [bold yellow](breaks the budget on held-out data)[/]")
        + f"; selective search: {result.search_trials} quantize+evaluate trials.",
        highlight=False,
    )
    for label, findings in (("before (plain int8)", result.before), ("after", result.after)):
        top = findings[0] if findings else None
        words = f"{top.verdict} — {top.summary}" if top else "no issues found"
        output.console.print(f"{label}: {words}", highlight=False)
    for line in engine_retries(result.engine):  # a lost Ray actor's batches, retried
        output.console.print(line, highlight=False)
    if result.out:
        wrote(result.out)
    output.save_json(result.to_json)
    output.save_report(result)
    if not result.met:
        for line in [result.reason, *(f"{w.name}: {b}" for b in held.get("broken") or ())]:
            err.print(f"[bold yellow]budget:[/] {line}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def _num(value: float | None, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)
