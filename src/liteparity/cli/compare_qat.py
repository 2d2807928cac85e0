"""``liteparity compare-qat``: seed 003's two ways of turning a QAT model into a .tflite."""

from __future__ import annotations

from typing import Annotated

import typer

from liteparity.cli.groups import uses
from liteparity.cli.options import json_option, labelled_data_options
from liteparity.cli.output import Output, progress_bar
from liteparity.specs import CompareQatOptions, DataSpec, ModelSpec


def qat_model(
    model: Annotated[str, typer.Argument(help="A float Keras 2 model (.h5).", show_default=False)],
) -> ModelSpec:
    """compare-qat's model → ``ModelSpec`` (a Keras 2 file: no graph names, no Lambda switch)."""
    return ModelSpec(model)


def compare_qat_options(
    epochs: Annotated[
        int, typer.Option(help="Quantization-aware training epochs.")
    ] = CompareQatOptions.epochs,
    resamples: Annotated[
        int, typer.Option(help="Resampled evaluation batches.")
    ] = CompareQatOptions.resamples,
    resample_size: Annotated[
        int, typer.Option(help="Samples per resampled batch.")
    ] = CompareQatOptions.resample_size,
) -> CompareQatOptions:
    """The options of compare-qat → ``CompareQatOptions``."""
    return CompareQatOptions(epochs, resamples, resample_size)


@uses(
    model=qat_model,
    data=labelled_data_options,
    options=compare_qat_options,
    output=json_option,
)
def compare_qat(
    model: ModelSpec, data: DataSpec, options: CompareQatOptions, output: Output
) -> None:
    """Seed 003: a QAT model converted directly vs its weights copied into the float model and
    post-training quantized, as distributions over resampled batches.

    [dim]Examples:[/]

      liteparity compare-qat model.h5 --data train.npz --epochs 3 --resamples 20

      liteparity compare-qat model.h5 --data train.npz --json - | jq .accuracies
    """
    from liteparity.repair.qat import compare_qat as run

    with progress_bar() as progress:
        result = run(model, data, options, progress=progress)
    output.show(result)
    output.save_json(result.to_json)
