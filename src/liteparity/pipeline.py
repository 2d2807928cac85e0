"""The pipeline behind ``check`` and ``explain``: convert a model under each recipe, run every
candidate on the same batches as the reference, and measure the gap.

Pipeline: load the source → read and split the data → convert each recipe (calibrating on the
calibration rows) → start one worker process per candidate → stream the evaluation rows batch
by batch (reference outputs computed once per batch, shared by every candidate) → finish the
running statistics into one ``CandidateResult`` per candidate.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from . import compare, sources
from . import data as data_module
from . import recipes as recipes_module
from .errors import DataError, LiteparityError, UsageError
from .results import CandidateResult, CheckResult, Metric, ReferenceResult
from .workers import SharedInputs, SharedSlots, Worker

#: ``progress(stage, done, total)``: the CLI turns it into a progress bar.
Progress = Callable[[str, int, int], None]

#: Rows read from the data per step: large enough for the interpreter's best batch size.
BATCH_ROWS = 256


def _no_progress(stage: str, done: int, total: int) -> None:
    return None


@dataclass(frozen=True)
class Candidate:
    """A ``.tflite`` to measure: converted by a recipe or given by the user."""

    name: str
    recipe: str | None
    content: bytes | None = None
    path: str | None = None
    error: str | None = None


@dataclass
class _Run:
    """One candidate's worker and running statistics during evaluation."""

    candidate: Candidate
    worker: Worker | None
    order: list[int] = field(default_factory=list)
    errors: compare.ErrorAccumulator = field(default_factory=compare.ErrorAccumulator)
    task: compare.TaskAccumulator | None = None
    batch_size: int | None = None
    latency_ms: float | None = None
    error: str | None = None

    def fail(self, exc: Exception) -> None:
        self.error = str(exc)
        if self.worker is not None:
            self.worker.close()
            self.worker = None


class Hook(Protocol):
    """Extra measurements riding on the evaluation stream (``explain`` uses one)."""

    def start(
        self,
        source: sources.Source | None,
        binding: data_module.Binding,
        calibration: recipes_module.Calibration | None,
    ) -> None: ...

    def ready(self, runs: list[_Run]) -> None:
        """Workers are up and idle: the moment for synchronous requests (``anatomy``)."""

    def batch(
        self,
        inputs: list[np.ndarray],
        reference: list[np.ndarray] | None,
        outputs: list[tuple[_Run, list[np.ndarray]]],
    ) -> None: ...

    def finish(self, runs: list[_Run], binding: data_module.Binding, rows: np.ndarray) -> None:
        """Called while the workers are still alive."""


def check(
    model: str | os.PathLike[str] | sources.Source,
    *,
    data: Any,
    calibration_data: Any = None,
    recipes: Sequence[str] | None = None,
    candidates: Sequence[str | os.PathLike[str]] = (),
    inputs: list[str] | None = None,
    outputs: list[str] | None = None,
    input_shapes: list[tuple[int, ...]] | None = None,
    legacy: recipes_module.LegacySettings | None = None,
    calibration_samples: int = 200,
    max_samples: int | None = None,
    seed: int = 0,
    save_dir: str | os.PathLike[str] | None = None,
    unsafe: bool = False,
    image_size: tuple[int, int] | None = None,
    scale: float | None = None,
    label_column: int | None = None,
    progress: Progress | None = None,
    resume: bool = False,
    qat_epochs: int = 1,
) -> CheckResult:
    """Measure how far each TFLite candidate of ``model`` is from the model itself.

    ``recipes`` defaults to ``["all"]`` when no ``candidates`` are given. ``data`` and
    ``calibration_data`` take paths or arrays (see ``liteparity.data.load``); without
    ``calibration_data`` a seeded, disjoint split of ``data`` calibrates. A lone quantized
    ``.tflite`` (no recipes, no candidates) is measured on its own, against the labels.
    ``resume`` reuses converted models and finished results of earlier runs on the same
    model and data (kept in liteparity's cache directory). The ``qat`` recipe fine-tunes a
    Keras 2 model for ``qat_epochs`` on the labelled calibration rows.
    """
    options = dict(locals())  # every keyword argument above, by name
    del options["model"]
    return run(model, hook=None, **options)


def run(model: Any, *, hook: Hook | None, **options: Any) -> CheckResult:
    """``check`` with an optional ``Hook``: the one pipeline behind check and explain."""
    o = _Options(**options)
    progress = o.progress or _no_progress
    candidates = list(o.candidates)
    source = sources.load(
        model,
        inputs=o.inputs,
        outputs=o.outputs,
        input_shapes=o.input_shapes,
        unsafe=o.unsafe,
    )
    reference_source: sources.Source | None = source
    try:
        if isinstance(source, sources.TFLiteSource) and not candidates and o.recipes is None:
            # A lone .tflite: measure it on its own (findings that need no reference).
            candidates, reference_source = [source.path], None
        default = [] if candidates or not source.convertible else ["all"]
        recipe_names = list(o.recipes) if o.recipes is not None else default
        chosen = recipes_module.resolve(recipe_names, source, o.legacy)
        user_files = [_read_candidate(path) for path in candidates]
        prepared = prepare_data(
            source,
            o.data,
            o.calibration_data,
            any(r.needs_calibration or r.needs_training for r in chosen),
            calibration_samples=o.calibration_samples,
            max_samples=o.max_samples,
            seed=o.seed,
            image_size=o.image_size,
            scale=o.scale,
            label_column=o.label_column,
        )
        binding, eval_rows, calibration = (
            prepared.binding,
            prepared.eval_rows,
            prepared.calibration,
        )
        resumed = _Resume.open(source, prepared, o) if o.resume else None
        trained = _labelled(prepared) if any(r.needs_training for r in chosen) else None
        converted = _convert_all(
            source,
            chosen,
            calibration,
            o.legacy,
            o.save_dir,
            progress,
            resumed,
            trained,
            o.qat_epochs,
        )
        candidates_ = [*converted, *user_files]
        if hook is not None:
            hook.start(reference_source, binding, calibration)
        # Results finished by an earlier run (check only: explain's findings are not kept).
        done = resumed.results(candidates_, reference_source) if resumed and not hook else {}
        todo = [c for c in candidates_ if c.name not in done]
        reference = done.get("", None)
        results: tuple[CandidateResult, ...] = ()
        if todo or reference is None:
            reference, results = _evaluate(
                reference_source, source.io, todo, binding, eval_rows, progress, hook
            )
            if resumed and not hook:
                resumed.keep(todo, results, reference)
        by_name = {**{c.name: r for c, r in zip(todo, results, strict=True)}, **done}
        results = tuple(by_name[c.name] for c in candidates_)
    finally:
        source.close()
    return CheckResult(reference, prepared.to_dict(), results)


@dataclass
class _Resume:
    """The cache of one run: keys for conversions and for finished results."""

    cache: Any
    conversion_key: str
    data_key: str

    @classmethod
    def open(cls, source: sources.Source, prepared: PreparedData, o: _Options) -> _Resume | None:
        from . import cache as cache_module
        from .demo import cache_dir

        if not Path(source.path).exists():
            return None  # an in-memory model has nothing stable to key on
        model = cache_module.file_fingerprint(source.path)
        calibration = (
            cache_module.batches_fingerprint(prepared.calibration())
            if prepared.calibration
            else None
        )
        dataset = prepared.binding.dataset
        data = cache_module.fingerprint(
            *[np.asarray(col[prepared.eval_rows]) for col in prepared.binding.columns],
            dataset.labels[prepared.eval_rows] if dataset.labels is not None else None,
        )
        return cls(
            cache_module.Cache(cache_dir() / "runs"),
            cache_module.fingerprint(
                model,
                calibration,
                o.legacy,
                o.inputs,
                o.outputs,
                o.input_shapes,
                cache_module.versions(),
            ),
            cache_module.fingerprint(model, data, cache_module.versions()),
        )

    def model_key(self, recipe: str) -> str:
        from .cache import fingerprint

        return fingerprint(self.conversion_key, recipe)

    def _result_key(self, candidate: Candidate | None) -> str:
        from .cache import fingerprint

        content = b"reference" if candidate is None else candidate.content or b""
        return fingerprint(self.data_key, content, candidate.name if candidate else "")

    def results(self, candidates: list[Candidate], reference: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for c in candidates:
            if c.content is not None and (stored := self.cache.result(self._result_key(c))):
                out[c.name] = CandidateResult.from_dict({**stored, "path": c.path})
        stored = self.cache.result(self._result_key(None))
        if stored is not None and reference is not None:
            out[""] = ReferenceResult(**{**stored, "metric": Metric(**stored["metric"])})
        return out

    def keep(
        self,
        candidates: list[Candidate],
        results: tuple[CandidateResult, ...],
        reference: ReferenceResult | None,
    ) -> None:
        for c, r in zip(candidates, results, strict=True):
            if c.content is not None and r.error is None:
                self.cache.put_result(self._result_key(c), r.to_dict())
        if reference is not None:
            self.cache.put_result(self._result_key(None), reference.to_dict())


@dataclass(frozen=True)
class PreparedData:
    """The data bound to a model, split into calibration and evaluation rows."""

    binding: data_module.Binding
    eval_rows: np.ndarray
    calibration_binding: data_module.Binding
    calibration_rows: np.ndarray
    calibration: recipes_module.Calibration | None
    seed: int

    def to_dict(self) -> dict[str, Any]:
        calibration = None
        if len(self.calibration_rows):
            calibration = {
                "source": self.calibration_binding.dataset.source,
                "samples": len(self.calibration_rows),
            }
        return {
            **self.binding.dataset.to_dict(),
            "evaluation_samples": len(self.eval_rows),
            "calibration": calibration,
            "seed": self.seed,
        }


def prepare_data(
    source: sources.Source,
    data: Any,
    calibration_data: Any,
    needs_calibration: bool,
    *,
    calibration_samples: int = 200,
    max_samples: int | None = None,
    seed: int = 0,
    image_size: tuple[int, int] | None = None,
    scale: float | None = None,
    label_column: int | None = None,
) -> PreparedData:
    """Load ``data`` (and ``calibration_data``) for ``source``. Without calibration data, a
    seeded split of ``data`` calibrates when ``needs_calibration``, and is not evaluated."""
    load_kwargs = {"image_size": image_size, "scale": scale, "label_column": label_column}
    dataset = data_module.load(data, **load_kwargs)
    binding = _bind(dataset, source)
    cal_binding, cal_rows, eval_rows = binding, np.arange(0), np.arange(len(dataset))
    if calibration_data is not None:
        cal_binding = _bind(data_module.load(calibration_data, **load_kwargs), source)
        cal_rows = data_module.sample_rows(len(cal_binding.dataset), calibration_samples, seed)
    elif needs_calibration:
        cal_rows, eval_rows = data_module.split(len(dataset), calibration_samples, seed)
    if max_samples is not None:
        if max_samples < 1:
            raise UsageError(f"--max-samples must be at least 1, got {max_samples}")
        eval_rows = eval_rows[data_module.sample_rows(len(eval_rows), max_samples, seed)]
    if not len(eval_rows):
        raise DataError(f"{dataset.source}: no samples left to evaluate")
    calibration = None
    if len(cal_rows):
        batches = [inputs for inputs, _ in cal_binding.batches(cal_rows, BATCH_ROWS)]
        calibration = recipes_module.calibration_from(batches)
    return PreparedData(binding, eval_rows, cal_binding, cal_rows, calibration, seed)


@dataclass(frozen=True)
class _Options:
    """The keyword arguments of ``check`` (and ``explain``), in one value; the defaults live
    in their signatures."""

    data: Any
    calibration_data: Any
    recipes: Sequence[str] | None
    candidates: Sequence[str | os.PathLike[str]]
    inputs: list[str] | None
    outputs: list[str] | None
    input_shapes: list[tuple[int, ...]] | None
    legacy: recipes_module.LegacySettings | None
    calibration_samples: int
    max_samples: int | None
    seed: int
    save_dir: str | os.PathLike[str] | None
    unsafe: bool
    image_size: tuple[int, int] | None
    scale: float | None
    label_column: int | None
    progress: Progress | None
    resume: bool
    qat_epochs: int


def _bind(dataset: data_module.Dataset, source: sources.Source) -> data_module.Binding:
    io = source.io
    return data_module.bind(dataset, io.input_names, io.sample_shapes, io.input_dtypes)


def _read_candidate(path: str | os.PathLike[str]) -> Candidate:
    name = f"tflite:{Path(path).name}"
    try:
        content = sources.read_tflite(path)
    except LiteparityError as exc:
        if not Path(path).exists():
            raise
        return Candidate(name, None, path=str(path), error=str(exc))
    return Candidate(name, None, content=content, path=str(path))


def _convert_all(
    source: sources.Source,
    chosen: list[recipes_module.Recipe],
    calibration: recipes_module.Calibration | None,
    legacy: recipes_module.LegacySettings | None,
    save_dir: str | os.PathLike[str] | None,
    progress: Progress,
    resumed: _Resume | None = None,
    trained: tuple[np.ndarray, np.ndarray] | None = None,
    epochs: int = 1,
) -> list[Candidate]:
    out = []
    for done, recipe in enumerate(chosen):
        progress(f"converting {recipe.name}", done, len(chosen))
        key = resumed.model_key(f"{recipe.name}/{epochs}") if resumed else ""
        content = resumed.cache.model(key) if resumed else None
        if content is None:
            try:
                if recipe.needs_training:
                    if trained is None:
                        raise DataError(
                            "the qat recipe needs labelled calibration data (y) "
                            "for a single-input model"
                        )
                    content = sources.quantization_aware(source, *trained, epochs)
                else:
                    content = recipes_module.convert(source, recipe, calibration, legacy)
            except LiteparityError as exc:
                out.append(Candidate(recipe.name, recipe.name, error=str(exc)))
                continue
            if resumed:
                resumed.cache.put_model(key, content)
        path = None
        if save_dir is not None:
            path = str(write_atomic(Path(save_dir) / f"{recipe.name}.tflite", content))
        out.append(Candidate(recipe.name, recipe.name, content=content, path=path))
    progress("converted", len(chosen), len(chosen))
    return out


def _labelled(prepared: PreparedData) -> tuple[np.ndarray, np.ndarray] | None:
    """The calibration rows with their labels: what the ``qat`` recipe fine-tunes on."""
    inputs, labels = prepared.calibration_binding.take(prepared.calibration_rows)
    return (inputs[0], labels) if labels is not None and len(inputs) == 1 else None


def write_atomic(path: Path, content: bytes) -> Path:
    """Write to a temporary file beside ``path`` and rename it: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(content)
    tmp.replace(path)
    return path


def input_order(reference_names: Sequence[str], names: Sequence[str]) -> list[int]:
    """For each candidate input, the index of the reference input that feeds it."""
    if sorted(names) == sorted(reference_names):
        return [list(reference_names).index(n) for n in names]
    if len(names) == len(reference_names):
        return list(range(len(names)))
    raise DataError(
        f"the candidate has inputs {list(names)} but the reference has {list(reference_names)}"
    )


def _start(candidate: Candidate, io: sources.IOSpec, kind: str, threads: int) -> _Run:
    run = _Run(
        candidate,
        None,
        task=compare.TaskAccumulator(kind),
        errors=compare.ErrorAccumulator(classify=True if kind == compare.ACCURACY else None),
    )
    if candidate.error:
        run.error = candidate.error
        return run
    assert candidate.content is not None
    try:
        run.worker = Worker(candidate.name, candidate.content, threads)
        info = run.worker.info
        run.order = input_order(io.input_names, [i.name for i in info.inputs])
        if len(info.outputs) != len(io.output_names):
            raise DataError(
                f"the candidate has {len(info.outputs)} output(s), the reference "
                f"{len(io.output_names)}"
            )
    except LiteparityError as exc:
        run.fail(exc)
    return run


def _evaluate(
    source: sources.Source | None,
    io: sources.IOSpec,
    candidates: list[Candidate],
    binding: data_module.Binding,
    rows: np.ndarray,
    progress: Progress,
    hook: Hook | None = None,
) -> tuple[ReferenceResult | None, tuple[CandidateResult, ...]]:
    """Stream ``rows`` through the reference (if any) and every candidate. Workers get batch
    k+1 before the main process folds batch k into the statistics, so they are never idle."""
    kind = compare.task_kind(binding.dataset.labels)
    if source is None and kind == compare.MSE_VS_REFERENCE:
        kind = "none"  # a lone model without labels: only findings, no task metric
    reference_task = compare.TaskAccumulator(kind)
    total = len(rows)
    progress("starting interpreters", 0, total)
    batches = binding.batches(rows, BATCH_ROWS)
    current = next(batches)
    if source is not None:
        source.warm_up(current[0])
    # Candidates and the reference run at once: share the cores between them.
    threads = max(1, (os.cpu_count() or 1) // (len(candidates) + 1))
    runs: list[_Run] = []
    slots = SharedSlots()
    try:
        for c in candidates:  # one by one: a failure leaves the started ones to `finally`
            runs.append(_start(c, io, kind, threads))
        for run in runs:
            _guard(
                run,
                lambda r: setattr(
                    r, "batch_size", r.worker.tune_batch_size(_ordered(current[0], r.order))
                ),
            )
        if hook is not None:
            hook.ready(runs)
        shared = slots.put(current[0])
        _submit(runs, shared)
        done = 0
        while current is not None:
            inputs, labels = current
            reference = source.predict(inputs, shared) if source is not None else None
            outputs = _collect(runs, reference)
            if kind == compare.ACCURACY:
                first = (
                    reference if reference is not None else next((out for _, out in outputs), None)
                )
                if first is not None:
                    compare.check_labels(labels, first[0])
            current = next(batches, None)
            if current is not None:
                shared = slots.put(current[0])
                _submit(runs, shared)
            if reference is not None:
                reference_task.update(reference[0], labels, reference[0])
            for run, out in outputs:
                if reference is not None:
                    run.errors.update(reference, out)
                run.task.update(out[0], labels, out[0] if reference is None else reference[0])
            if hook is not None:
                hook.batch(inputs, reference, outputs)
            done += len(inputs[0])
            progress("evaluating", done, total)
        sample = binding.take(rows[:1])[0]
        for run in runs:  # one at a time: parallel runs would disturb each other's timing
            _guard(
                run,
                lambda r: setattr(r, "latency_ms", r.worker.latency_ms(_ordered(sample, r.order))),
            )
        if hook is not None:
            progress("diagnosing", total, total)
            hook.finish(runs, binding, rows)
    finally:
        slots.close()
        for run in runs:
            if run.worker is not None:
                run.worker.close()
    if source is None:
        return None, tuple(candidate_result(run, kind, None, None) for run in runs)
    ref_value = 0.0 if kind == compare.MSE_VS_REFERENCE else reference_task.value
    results = tuple(
        candidate_result(run, kind, ref_value, reference_task.reference_power) for run in runs
    )
    described = source.to_dict()
    reference_result = ReferenceResult(
        path=source.path,
        format=source.format,
        size_bytes=source.size_bytes(),
        metric=Metric(kind, ref_value),
        inputs=described["inputs"],
        outputs=described["outputs"],
    )
    return reference_result, results


def _guard(run: _Run, action: Callable[[_Run], None]) -> None:
    """Do ``action`` on a live run; a failure becomes that run's error."""
    if run.worker is not None:
        try:
            action(run)
        except LiteparityError as exc:
            run.fail(exc)


def _submit(runs: list[_Run], inputs: SharedInputs) -> None:
    for run in runs:
        _guard(run, lambda r: r.worker.submit(inputs.select(r.order)))


def _collect(
    runs: list[_Run], reference: list[np.ndarray] | None
) -> list[tuple[_Run, list[np.ndarray]]]:
    """Each live worker's outputs for the batch in flight; a failure fails only that run."""
    outputs: list[tuple[_Run, list[np.ndarray]]] = []

    def receive(run: _Run) -> None:
        out = run.worker.receive()
        if reference is not None:
            _check_shapes(reference, out)
        outputs.append((run, out))

    for run in runs:
        _guard(run, receive)
    return outputs


def _ordered(inputs: list[np.ndarray], order: list[int]) -> list[np.ndarray]:
    return [inputs[i] for i in order]


def _check_shapes(reference: list[np.ndarray], outputs: list[np.ndarray]) -> None:
    for i, (r, o) in enumerate(zip(reference, outputs, strict=True)):
        if r.shape != o.shape:
            raise DataError(
                f"output {i} has shape {o.shape[1:]} per sample, the reference {r.shape[1:]}"
            )


def candidate_result(
    run: _Run, kind: str, reference: float | None, power: float | None
) -> CandidateResult:
    c = run.candidate
    size = len(c.content) if c.content is not None else None
    if run.error:
        return CandidateResult(c.name, c.recipe, c.path, size, error=run.error)
    value = run.task.value if run.task and kind != "none" else None
    delta = value - reference if value is not None and reference is not None else None
    return CandidateResult(
        name=c.name,
        recipe=c.recipe,
        path=c.path,
        size_bytes=size,
        latency_ms=run.latency_ms,
        metric=Metric(kind, value),
        metric_delta=delta,
        drop=compare.drop(kind, reference, value, power),
        batch_size=run.batch_size,
        error_sample=tuple(run.errors.sample),
        batch_metrics=tuple(run.task.per_batch) if run.task else (),
        **run.errors.metrics(),
    )
