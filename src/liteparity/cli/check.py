"""``liteparity check`` and ``liteparity explain``: one command function, two names (explain
adds the findings)."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

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
from liteparity.cli.output import Output, err, progress_bar, save
from liteparity.errors import UsageError
from liteparity.specs import CheckOptions, DataSpec, ModelSpec

CHECK_HELP = """Convert MODEL under each recipe, run every candidate on LiteRT, and measure the gap.

[dim]Examples:[/]

  liteparity check model.keras --data eval.npz --calibration-data cal.npz --recipes all

  liteparity check float.tflite --candidate quant.tflite --data eval.npz --json -

  liteparity check graph.pb --inputs input --outputs output --recipes legacy-uint8
  --mean 128 --std 128 --default-ranges 0 6 --data eval.npz
"""

EXPLAIN_HELP = """Like check, then say why each candidate differs: findings with evidence and fixes.

Measures the float32 noise floor (the reference again in float64; a .tflite reference under
LiteRT's builtin kernels instead of XNNPack), how the data sits in each
input's quantized range, and every intermediate tensor of each candidate on a sample of the
data.

[dim]Examples:[/]

  liteparity explain model.keras --recipes all --data eval.npz --calibration-data cal.npz

  liteparity explain model.keras --candidate my_quant.tflite --data eval.npz

  liteparity explain legacy_uint8.tflite --data eval.npz   [dim]# a lone quantized model[/]
"""


def check_options(
    recipes: Annotated[
        list[str] | None,
        typer.Option(
            "--recipes",
            "-r",
            help=(
                "Recipes, comma-separated, or 'all' (the default without --candidate); "
                "aeq:<name> is one of ai-edge-quantizer's own recipes (any source). A float "
                ".tflite's recipes are made with ai-edge-quantizer."
            ),
        ),
    ] = None,
    candidate: Annotated[
        list[Path] | None,
        typer.Option(help="A .tflite to compare with the reference (repeatable)."),
    ] = None,
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
    save_models: Annotated[
        Path | None, typer.Option(help="Directory to write each converted .tflite to.")
    ] = None,
    resume: Resume = CheckOptions.resume,
    qat_epochs: Annotated[
        int, typer.Option(help="Epochs of quantization-aware fine-tuning for --recipes qat.")
    ] = CheckOptions.qat_epochs,
    max_samples_slow: Annotated[
        int | None,
        typer.Option(
            metavar="N",
            help="Measure a slow candidate (one sample costs it 10x the fastest one's, e.g. "
            "int16x8's reference kernels) on its first N samples only; the table marks it and "
            "shows its metric's 95% confidence interval.",
        ),
    ] = CheckOptions.max_samples_slow,
    metric: Annotated[
        list[str] | None,
        typer.Option(
            "--metric",
            help="OUTPUT=KIND[:options]: how to measure an output (classes, flag, regression, "
            "landmarks, mask, scores; e.g. Identity=landmarks:dims=3). Repeatable.",
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            help="Samples per invocation of each candidate (default: the fastest size proven "
            "to give the one-at-a-time outputs); a size that changes them is refused."
        ),
    ] = None,
    memory_limit: Annotated[
        str | None,
        typer.Option(
            metavar="SIZE",
            help="Memory the evaluation's batches may hold, e.g. 4GB or 512MB "
            "(default: half the machine's memory).",
        ),
    ] = None,
    engine: Engine = CheckOptions.engine,
    ray_address: RayAddress = None,
    shards: Shards = None,
) -> CheckOptions:
    """The options of check and explain → ``CheckOptions``."""
    from liteparity.convert.recipes import LegacySettings

    legacy = None
    if mean is not None or std is not None:
        if mean is None or std is None:
            raise UsageError("--mean and --std go together (TF1 quantized_input_stats)")
        legacy = LegacySettings(mean, std, default_ranges)
    elif default_ranges is not None:
        raise UsageError("--default-ranges needs --mean and --std (the legacy-uint8 recipe)")
    return CheckOptions(
        split_names(recipes),
        tuple(candidate or ()),
        legacy,
        save_models,
        resume,
        qat_epochs,
        output_metrics=tuple(metric or ()),
        batch_size=batch_size,
        memory_limit=memory_limit,
        engine=engine,
        ray_address=ray_address,
        shards=shards,
        max_samples_slow=max_samples_slow,
    )


@uses(model=model_options, data=data_options, options=check_options, output=output_options)
def check_or_explain(
    ctx: typer.Context,
    model: ModelSpec,
    data: DataSpec,
    options: CheckOptions,
    output: Output,
    max_drop: Annotated[
        float | None,
        typer.Option(
            help="Exit 1 when a candidate loses more than this many accuracy points (or % MSE)."
        ),
    ] = None,
    min_agreement: Annotated[
        float | None,
        typer.Option(
            help="Exit 1 when an output's agreement (top-1 class, or decisions) is below this."
        ),
    ] = None,
    budget_output: BudgetOutputs = None,
    csv_path: Annotated[
        Path | None,
        typer.Option(
            "--csv", metavar="PATH", help="Write one row per candidate and output as CSV."
        ),
    ] = None,
    metric_plugin: Annotated[
        str | None,
        typer.Option(
            help="module:function, a metric(reference, candidate, labels) -> dict over each "
            "batch's outputs by name. Imports and RUNS USER CODE: needs --unsafe.",
        ),
    ] = None,
) -> None:
    from liteparity.diagnose.explain import explain
    from liteparity.measure.check import check

    if metric_plugin is not None:
        options = dataclasses.replace(options, metric=load_plugin(metric_plugin, model.unsafe))
    run = explain if ctx.info_name == "explain" else check
    with progress_bar() as progress:
        result = run(model, data, options, progress=progress)
    output.show_profile(result.timings)
    outputs = split_names(budget_output)
    report_check(result, output, max_drop, min_agreement, outputs, csv_path)


def load_plugin(spec: str, unsafe: bool) -> Any:
    """The callable ``module:function`` names; importing it runs the module's code, so only
    with ``--unsafe``."""
    if not unsafe:
        raise UsageError(f"--metric-plugin {spec} imports and runs your code: add --unsafe")
    module_name, _, function = spec.partition(":")
    if not module_name or not function:
        raise UsageError(f"--metric-plugin {spec!r}: expected module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"--metric-plugin: cannot import {module_name}: {exc}") from exc
    metric = getattr(module, function, None)
    if not callable(metric):
        raise UsageError(f"--metric-plugin: {module_name} has no function {function!r}")
    return metric


def report_check(
    result: Any,
    output: Output,
    max_drop: float | None,
    min_agreement: float | None,
    outputs: tuple[str, ...] | None = None,
    csv_path: Path | None = None,
) -> None:
    """Show a check/explain result, write its JSON, its CSV and its HTML report, and exit by the
    budget: 2 when a candidate could not be measured or a file could not be written (a model
    ``--save-models`` could not write included), 1 when one breaks the budget. The table and
    the JSON come first and a failed write does not stop the other: results are never lost to
    an output problem."""
    from liteparity.errors import OutputError

    output.show(result)
    if result.noise_floor is not None or any(c.findings for c in result.candidates):
        from liteparity.report.findings import findings_view

        output.console.print(findings_view(result))
    unwritten = []
    writes: list[Callable[[], None]] = [
        lambda: output.save_json(result.to_json),
        lambda: save(csv_path, result.to_csv),
        lambda: output.save_report(result),
    ]
    for write in writes:
        try:
            write()
        except OutputError as exc:
            unwritten.append(str(exc))
    unwritten += [c.not_saved for c in result.candidates if c.not_saved]
    failed = [c for c in result.candidates if c.error]
    broken = result.violations(max_drop, min_agreement, outputs)
    for line in broken:
        err.print(f"[bold yellow]budget:[/] {line}", highlight=False)
    if unwritten:
        raise OutputError("; ".join(unwritten))
    if failed:
        names = ", ".join(c.name for c in failed)
        err.print(
            f"[bold red]liteparity:[/] {len(failed)} candidate(s) could not be measured: {names}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(2)
    if broken:
        raise typer.Exit(1)
