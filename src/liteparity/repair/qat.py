"""``compare-qat``: a QAT model converted directly vs its weights post-training quantized."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from liteparity.convert.qat import quantization_aware
from liteparity.data.prepare import prepare_data
from liteparity.errors import InternalError, UsageError
from liteparity.measure.metrics import classes, task_kind
from liteparity.progress import Progress, no_progress
from liteparity.reference.base import Source
from liteparity.reference.loader import load_spec
from liteparity.results.check import ACCURACY
from liteparity.results.fix import QatComparison
from liteparity.runtime.model_jobs import RunModel
from liteparity.runtime.worker import Worker
from liteparity.specs import CompareQatOptions, DataSpec, ModelSpec, from_keywords


def compare_qat(
    model: ModelSpec | str | os.PathLike[str] | Source,
    data: DataSpec | Any,
    options: CompareQatOptions | None = None,
    *,
    progress: Progress | None = None,
    **keywords: Any,
) -> QatComparison:
    """Fine-tune with QAT on half of the labelled ``data``; on the other half, measure the QAT
    model converted directly and its weights copied into the float model and calibrated
    again, over ``resamples`` batches drawn with replacement (the spread seed 003 plotted).
    Takes the specs, or a model and data with keywords naming their fields."""
    model, data, options = from_keywords(
        "compare_qat", model, data, options, CompareQatOptions, keywords
    )
    epochs, seed = options.epochs, data.seed
    progress = progress or no_progress
    source = load_spec(model)
    try:
        prepared = prepare_data(source, data, False)
        if task_kind(prepared.binding.dataset.labels) != ACCURACY:
            raise UsageError("compare-qat needs integer class labels (y) in --data")
        if len(source.io.input_names) != 1:
            raise UsageError("compare-qat supports single-input models")
        rows = prepared.eval_rows
        order = np.random.default_rng(seed).permutation(len(rows))
        train, held = np.sort(rows[order[: len(rows) // 2]]), np.sort(rows[order[len(rows) // 2 :]])
        (x_train,), y_train = prepared.binding.take(train)
        if y_train is None:  # task_kind said ACCURACY: the data has labels
            raise InternalError("compare-qat lost the labels it checked")
        progress(f"quantization-aware training ({epochs} epochs)", 0, 1)
        direct, copied = quantization_aware(source, x_train, y_train, epochs, with_copy=True)
        (x_eval,), y_eval = prepared.binding.take(held)
        if y_eval is None:
            raise InternalError("compare-qat lost the labels it checked")
        predictions = {"reference": classes(source.predict([x_eval])[0])}
        for name, content in (("qat", direct), ("copied", copied)):
            with Worker(name) as worker:
                _, (outputs,), _ = worker.run(RunModel(content), [[x_eval]])
                predictions[name] = classes(outputs[0])
    finally:
        source.close()
    draws = np.random.default_rng(seed + 2).integers(
        0, len(y_eval), (options.resamples, options.resample_size)
    )
    accuracies = {
        name: tuple(float(np.mean(p[d] == y_eval[d])) for d in draws)
        for name, p in predictions.items()
    }
    agreement = {
        name: float(np.mean(p == predictions["reference"]))
        for name, p in predictions.items()
        if name != "reference"
    }
    return QatComparison(
        getattr(source, "origin", None) or source.path,
        epochs,
        options.resample_size,
        accuracies,
        agreement,
        len(train),
        len(held),
    )
