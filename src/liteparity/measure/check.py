"""The pipeline behind ``check`` and ``explain``: convert a model under each recipe, run every
candidate on the same batches as the reference, and measure the gap.

Pipeline: load the source → read and split the data → convert each recipe (calibrating on the
calibration rows) → start one worker per candidate (a process, or Ray actors:
``runtime.engine``) → stream the evaluation rows batch by batch (reference outputs computed
once per batch, shared by every candidate; on Ray, data files are read by the actors and a
``.tflite`` reference runs there too) → finish the running statistics into one
``CandidateResult`` per candidate.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from liteparity._tf import debugging
from liteparity.convert.candidates import Candidate, _read_candidate
from liteparity.convert.process import Converter
from liteparity.convert.produce import Producer
from liteparity.convert.qat import quantization_aware
from liteparity.convert.recipes import Recipe, resolve
from liteparity.data.binding import Binding, IOSpec
from liteparity.data.prepare import BATCH_ROWS, Calibration, _labelled, prepare_data
from liteparity.errors import DataError, LiteparityError, NotApplicable, OutputError
from liteparity.files import write_atomic
from liteparity.measure.evaluate import Batching, Hook, _evaluate
from liteparity.measure.outputs import Measures
from liteparity.measure.resume import _Resume
from liteparity.progress import Progress, no_progress
from liteparity.reference.base import Source
from liteparity.reference.loader import load_spec
from liteparity.reference.tflite import TFLiteSource
from liteparity.results.check import CandidateResult, CheckResult, ReferenceResult
from liteparity.runtime.engine import Engine, open_engine
from liteparity.specs import CheckOptions, DataSpec, ModelSpec, from_keywords
from liteparity.timings import recording, stage


def check(
    model: ModelSpec | str | os.PathLike[str] | Source,
    data: DataSpec | Any,
    options: CheckOptions | None = None,
    *,
    progress: Progress | None = None,
    **keywords: Any,
) -> CheckResult:
    """Measure how far each TFLite candidate of ``model`` is from the model itself.

    Takes the specs (``check(ModelSpec(...), DataSpec(...), CheckOptions(...))``) or a model
    and data with keywords naming their fields
    (``check("model.keras", data="eval.npz", recipes=["int8"])``).
    ``recipes`` defaults to ``["all"]`` when no ``candidates`` are given. ``data`` and
    ``calibration_data`` take paths or arrays (see ``liteparity.data.load``); without
    ``calibration_data`` a seeded, disjoint split of ``data`` calibrates. A lone quantized
    ``.tflite`` (no recipes, no candidates) is measured on its own, against the labels.
    ``resume`` reuses converted models and finished results of earlier runs on the same
    model and data (kept in liteparity's cache directory). The ``qat`` recipe fine-tunes a
    Keras 2 model for ``qat_epochs`` on the labelled calibration rows.
    """
    specs = from_keywords("check", model, data, options, CheckOptions, keywords)
    return run(*specs, hook=None, progress=progress)


def run(
    model: ModelSpec,
    data: DataSpec,
    options: CheckOptions,
    *,
    hook: Hook | None,
    progress: Progress | None = None,
) -> CheckResult:
    """``check`` with an optional ``Hook``: the one pipeline behind check and explain."""
    with recording() as timings:
        result = _run(model, data, options, hook, progress or no_progress)
    return dataclasses.replace(result, timings=timings.to_dict())


def _run(
    model: ModelSpec,
    data: DataSpec,
    options: CheckOptions,
    hook: Hook | None,
    progress: Progress,
) -> CheckResult:
    measures = Measures.parse(options.output_metrics, options.metric)  # a typo fails first
    engine = open_engine(options, debug=debugging())  # a missing Ray fails before any work
    candidates = list(options.candidates)
    # Started first: its TensorFlow import overlaps with loading the model and the data (with
    # ``resume``, only when a model is not in the cache).
    converter = Converter(
        model, start=_converts(model, options) and not options.resume, engine=engine
    )
    try:
        with stage("load"):
            source = load_spec(model)
    except BaseException:
        converter.close()
        raise
    reference_source: Source | None = source
    try:
        if isinstance(source, TFLiteSource) and not candidates and options.recipes is None:
            # A lone .tflite: measure it on its own (findings that need no reference).
            candidates, reference_source = [source.path], None
        default = [] if candidates or not source.convertible else ["all"]
        recipe_names = list(options.recipes) if options.recipes is not None else default
        chosen = resolve(recipe_names, source, options.legacy)
        user_files = [_read_candidate(path) for path in candidates]
        with stage("data"):
            prepared = prepare_data(
                source, data, any(r.needs_calibration or r.needs_training for r in chosen)
            )
        binding, eval_rows, calibration = prepared.binding, prepared.eval_rows, prepared.calibration
        resumed = (
            _Resume.open(source, prepared, model, options.legacy, measures)
            if options.resume
            else None
        )
        if resumed:
            converter.keep(resumed.cache, resumed.conversion_key)
        trained = _labelled(prepared) if any(r.needs_training for r in chosen) else None
        producer = Producer(
            source,
            calibration,
            prepared.calibration_batches,
            options.legacy,
            progress,
            converter=converter,
        )
        converted = _convert_all(
            producer,
            chosen,
            {n for n in recipe_names if n != "all"},
            options.save_dir,
            progress,
            resumed,
            trained,
            options.qat_epochs,
        )
        converter.rest()  # Ray: the converter actors leave room for the evaluation's
        limit = options.memory_limit  # bytes: ``CheckOptions`` read the text
        batching = Batching(options.batch_size, int(limit) if limit is not None else None)
        run_on = _Measured(
            reference_source,
            source.io,
            binding,
            eval_rows,
            progress,
            measures,
            batching,
            engine,
            options.max_samples_slow,
        )
        reference, results, block = run_on.candidates(
            [*converted, *user_files], resumed, hook, calibration, converter
        )
    finally:
        converter.close()
        source.close()
    described = engine.describe(len(eval_rows), block or BATCH_ROWS)
    return CheckResult(reference, prepared.to_dict(), results, engine=described)


@dataclass(frozen=True)
class _Measured:
    """Where a run's candidates are measured: the reference (None for a lone model), the
    rows, and how."""

    reference: Source | None
    io: IOSpec
    binding: Binding
    rows: np.ndarray
    progress: Progress
    measures: Measures
    batching: Batching
    engine: Engine
    max_samples_slow: int | None = None

    def candidates(
        self,
        candidates: list[Candidate],
        resumed: _Resume | None,
        hook: Hook | None,
        calibration: Calibration | None,
        converter: Converter,
    ) -> tuple[ReferenceResult | None, tuple[CandidateResult, ...], int | None]:
        """Every candidate's result, in order: from an earlier run where ``resumed`` has it
        (with a hook, only with the hook's own measurements: explain's evidence), else
        measured now, and kept for the next; and the rows per block streamed (None: nothing
        was measured now)."""
        done = resumed.results(candidates, self.reference, hook) if resumed else {}
        todo = [c for c in candidates if c.name not in done]
        reference = done.get("", None)
        results: tuple[CandidateResult, ...] = ()
        block: int | None = None
        if todo or (reference is None and self.reference is not None):
            if hook is not None:
                hook.start(self.reference, self.binding, calibration, converter, self.engine)
            reference, results, block = _evaluate(
                self.reference,
                self.io,
                todo,
                self.binding,
                self.rows,
                self.progress,
                hook,
                self.measures,
                self.batching,
                self.engine,
                self.max_samples_slow,
            )
            if resumed:
                resumed.keep(todo, results, reference, hook)
        by_name = {**{c.name: r for c, r in zip(todo, results, strict=True)}, **done}
        return reference, tuple(by_name[c.name] for c in candidates), block


def _converts(model: ModelSpec, options: CheckOptions) -> bool:
    """Whether the run will likely convert (recipes named, or ``all`` by default)."""
    if options.recipes is not None:
        return bool(options.recipes)
    return not options.candidates and not str(model.model).endswith(".tflite")


def _convert_all(
    producer: Producer,
    chosen: list[Recipe],
    named: set[str],
    save_dir: str | os.PathLike[str] | None,
    progress: Progress,
    resumed: _Resume | None = None,
    trained: tuple[np.ndarray, np.ndarray] | None = None,
    epochs: int = 1,
) -> list[Candidate]:
    """Every recipe's candidate, in order (an error or not-applicable row for a recipe that
    fails); the conversions not in the cache start at once first where the engine can."""
    keys = {r.name: resumed.model_key(f"{r.name}/{epochs}") if resumed else "" for r in chosen}
    cached = {r.name: resumed.cache.model(keys[r.name]) for r in chosen} if resumed else {}
    producer.ahead([r for r in chosen if cached.get(r.name) is None])
    out = []
    for done, recipe in enumerate(chosen):
        progress(f"converting {recipe.name}", done, len(chosen))
        key, content = keys[recipe.name], cached.get(recipe.name)
        if content is None:
            try:
                if recipe.needs_training:
                    if trained is None:
                        raise DataError(
                            "the qat recipe needs labelled calibration data (y) "
                            "for a single-input model"
                        )
                    content = quantization_aware(producer.source, *trained, epochs)
                else:
                    with stage("convert"):
                        content = producer.make(recipe)
            except LiteparityError as exc:
                # With ``all``, a recipe the model cannot take is a fact about the model; one
                # the user named is a failure.
                if isinstance(exc, NotApplicable) and recipe.name not in named:
                    out.append(Candidate(recipe.name, recipe.name, not_applicable=str(exc)))
                else:
                    out.append(Candidate(recipe.name, recipe.name, error=str(exc)))
                continue
            if resumed:
                resumed.cache.put_model(key, content)
        path, not_saved = None, None
        if save_dir is not None:
            target = Path(save_dir) / f"{recipe.name.replace(':', '-')}.tflite"
            try:  # an output problem: the model is still measured, the CLI says it at the end
                path = str(write_atomic(target, content))
            except OutputError as exc:
                not_saved = str(exc)
        out.append(Candidate(recipe.name, recipe.name, content, path, not_saved=not_saved))
    progress("converted", len(chosen), len(chosen))
    return out
