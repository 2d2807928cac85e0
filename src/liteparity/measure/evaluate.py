"""Evaluation: stream the rows through the reference and every candidate (each in its worker)
and fold the outputs into running metrics."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from liteparity._litert import unset_variables
from liteparity.convert.candidates import Candidate
from liteparity.convert.process import Converter
from liteparity.data.binding import Binding, IOSpec
from liteparity.data.prepare import BATCH_ROWS, Calibration
from liteparity.data.scaling import Span, quantization_warnings, spans
from liteparity.errors import (
    DataError,
    InternalError,
    LiteparityError,
    ModelError,
    UnreadableData,
    UsageError,
)
from liteparity.measure.decisions import decision_findings
from liteparity.measure.metrics import (
    ErrorAccumulator,
    TaskAccumulator,
    check_labels,
    drop,
    task_kind,
)
from liteparity.measure.outputs import Measures, OutputsAccumulator, headline
from liteparity.progress import Progress
from liteparity.reference.base import Source
from liteparity.results.check import (
    ACCURACY,
    MSE_VS_REFERENCE,
    NO_TASK,
    CandidateResult,
    Finding,
    Metric,
    OutputResult,
    ReferenceResult,
    non_finite_finding,
    unset_variables_finding,
)
from liteparity.runtime.engine import Engine, LocalEngine
from liteparity.runtime.jobs import BaseWorker, Reply
from liteparity.runtime.memory import (
    default_memory_limit,
    resident_bytes,
    rows_within,
    sample_bytes,
)
from liteparity.runtime.model_jobs import ModelInfo, RunModel
from liteparity.runtime.shared import SHARED_SLOTS, SharedInputs
from liteparity.timings import stage

#: A candidate is slow when one sample costs it at least this many times what it costs the
#: fastest candidate (int16x8's reference kernels: ~90× int8 on ResNet50); ``--max-samples-slow``
#: caps the rows of slow candidates only.
SLOW_FACTOR = 10.0


@dataclass
class _Run:
    """One candidate's worker and running statistics during evaluation."""

    candidate: Candidate
    worker: BaseWorker | None
    threads: int = 1
    info: ModelInfo | None = None
    #: the candidate's start, then the batches in flight, oldest first
    replies: deque[Reply] = field(default_factory=deque)
    order: list[int] = field(default_factory=list)
    #: for each reference output, the index of the candidate output matched to it
    output_order: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: ErrorAccumulator = field(default_factory=ErrorAccumulator)
    task: TaskAccumulator | None = None
    outputs: OutputsAccumulator | None = None  # every output on its own
    batch_size: int | None = None
    latency_ms: float | None = None
    error: str | None = None
    #: at most this many rows (a slow candidate under ``--max-samples-slow``), else None
    limit: int | None = None
    seen: int = 0  # rows fed so far
    #: rows of each batch sent to it and not yet read, oldest first (0: capped, not sent)
    in_flight: deque[int] = field(default_factory=deque)
    #: the reference's task metric on the same (capped) rows
    reference_task: TaskAccumulator | None = None

    def fail(self, exc: Exception) -> None:
        self.error = str(exc)
        if self.worker is not None:
            self.worker.close()
            self.worker = None


class Hook(Protocol):
    """Extra measurements riding on the evaluation stream (``explain`` uses one)."""

    #: Whether the hook reads each candidate's anatomy (``_Run.info.anatomy``).
    anatomy: bool

    def start(
        self,
        source: Source | None,
        binding: Binding,
        calibration: Calibration | None,
        converter: Converter,
        engine: Engine,
    ) -> None:
        """Before the first candidate starts; ``converter`` converts ``source`` (the run's
        converter process: a crash there costs the hook's measurement, not the run);
        ``engine`` is the run's, for the hook's own jobs."""

    def ready(self, runs: list[_Run]) -> None:
        """Every candidate is loaded (``_Run.info``), before the first batch."""

    def batch(
        self,
        inputs: list[np.ndarray],
        reference: list[np.ndarray] | None,
        outputs: list[tuple[_Run, list[np.ndarray]]],
    ) -> None: ...

    def finish(self, runs: list[_Run], binding: Binding, rows: np.ndarray) -> None:
        """Called while the workers are still alive."""

    def kept(self, result: CandidateResult) -> dict[str, Any] | None:
        """What the hook measured about a finished candidate, as plain JSON values to keep
        beside its result (``resume``); None: nothing to keep, so nothing to resume."""

    def restore(self, name: str, stored: dict[str, Any]) -> bool:
        """Take back what ``kept`` returned in an earlier run for candidate ``name``, which
        will not run; False when it cannot (then the candidate runs again)."""


@dataclass(frozen=True)
class Batching:
    """How a run batches: ``batch_size`` forces every candidate's (``--batch-size``);
    ``memory_limit`` (bytes; None: ``memory.default_memory_limit()``) bounds what the blocks
    of rows streamed through the reference and the candidates hold (``--memory-limit``)."""

    batch_size: int | None = None
    memory_limit: int | None = None

    def rows(
        self,
        source: Source | None,
        binding: Binding,
        runs: Sequence[_Run],
        in_flight: int = SHARED_SLOTS,
    ) -> int:
        """Rows per block for this run: what fits in the memory left under the limit, given
        what one row costs the reference and each candidate (their measured tensors) and how
        many blocks the engine holds at once (``in_flight``)."""
        limit = self.memory_limit or default_memory_limit()
        per_input = sum(sample_bytes(np.float32, shape) for shape in binding.sample_shapes)
        models = [r.info.bytes_per_sample for r in runs if r.info is not None]
        reference = source.bytes_per_sample() if source is not None else 0
        per_row = row_bytes(per_input, reference, models, in_flight)
        left = limit - resident_bytes()
        rows = rows_within(left, per_row, max(BATCH_ROWS, self.batch_size or 0))
        if self.batch_size is not None and rows < self.batch_size:
            raise UsageError(
                f"--batch-size {self.batch_size} does not fit --memory-limit "
                f"{limit / 2**20:.0f}MB: {rows} row(s) of {per_row / 2**20:.3g}MB fit in the "
                f"{max(left, 0) / 2**20:.0f}MB left"
            )
        return rows


def row_bytes(
    per_input: int,
    reference: int | None,
    candidates: Sequence[int],
    in_flight: int = SHARED_SLOTS,
) -> int:
    """What one row of a block costs: its inputs (read, in each of the ``in_flight`` blocks
    the engine holds, and copied by every candidate's worker), the reference's tensors (a
    source that cannot say costs what its largest candidate does: the same graph) and every
    candidate's."""
    if reference is None:
        reference = max(candidates, default=0)
    copies = in_flight + 1 + len(candidates)
    return per_input * copies + reference + sum(candidates)


def input_order(reference_names: Sequence[str], names: Sequence[str]) -> list[int]:
    """For each candidate input, the index of the reference input that feeds it."""
    if sorted(names) == sorted(reference_names):
        return [list(reference_names).index(n) for n in names]
    if len(names) == len(reference_names):
        return list(range(len(names)))
    raise DataError(
        f"the candidate has inputs {list(names)} but the reference has {list(reference_names)}"
    )


def output_order(
    reference_names: Sequence[str], names: Sequence[str]
) -> tuple[list[int], str | None]:
    """For each reference output, the index of the candidate output matched to it: by name
    (signature keys, tensor names, Keras output names), else by position with a warning (the
    second item). Names are the safe key: a model with a signature lists its outputs in
    signature order, one without in tensor order, so positions differ between two files of
    the same model, and two same-shaped outputs would silently swap."""
    if len(names) != len(reference_names):
        raise DataError(
            f"the candidate has {len(names)} output(s), the reference {len(reference_names)}"
        )
    if sorted(names) == sorted(reference_names) and len(set(names)) == len(names):
        return [list(names).index(n) for n in reference_names], None
    order = list(range(len(names)))
    if list(names) == list(reference_names) or len(names) == 1:
        return order, None
    return order, (
        f"outputs matched by position: the candidate's names {list(names)} are not the "
        f"reference's {list(reference_names)}"
    )


def _start(
    candidate: Candidate,
    kind: str,
    threads: int,
    anatomy: bool,
    batch_size: int | None,
    engine: Engine,
) -> _Run:
    """Start loading the candidate in its worker (without waiting: they load at once)."""
    run = _Run(
        candidate,
        None,
        threads,
        task=TaskAccumulator(kind),
        errors=ErrorAccumulator(classify=True if kind == ACCURACY else None),
    )
    if candidate.error or candidate.not_applicable:
        run.error = candidate.error
        return run
    if candidate.content is None:  # a candidate has its bytes or the error that kept them
        raise InternalError(f"candidate {candidate.name} has neither a model nor an error")
    run.worker = engine.worker(candidate.name)
    job = RunModel(
        candidate.content,
        threads,
        tune=True,
        latency=True,
        anatomy=anatomy,
        batch_size=batch_size,
        cost=True,
    )
    run.replies.append(run.worker.start(job))
    return run


def _loaded(run: _Run, io: IOSpec, measures: Measures) -> None:
    """Wait for the candidate's model and check that it fits the reference's inputs and
    outputs."""
    info = run.info = run.replies.popleft().get()
    run.order = input_order(io.input_names, [i.name for i in info.inputs])
    run.output_order, warning = output_order(io.output_names, [o.name for o in info.outputs])
    if warning:
        run.warnings.append(warning)
    matched = [info.outputs[k].name for k in run.output_order]
    reach = [info.output_ranges[k] for k in run.output_order] if info.output_ranges else []
    run.outputs = OutputsAccumulator.create(io.output_names, matched, measures, reach)


def _scaling(run: _Run, data: list[Span | None]) -> None:
    """Warn when the data (``data``: the first block's span per reference input) is in other
    units than the range a quantized input of the candidate covers."""
    info = run.info
    if info is None:
        return
    covered = [
        None
        if (q := i.quantization) is None or q.per_channel
        else Span(float(q.min[0]), float(q.max[0]))
        for i in info.inputs
    ]
    names = [i.name for i in info.inputs]
    run.warnings += quantization_warnings(names, [data[j] for j in run.order], covered)


def _evaluate(
    source: Source | None,
    io: IOSpec,
    candidates: list[Candidate],
    binding: Binding,
    rows: np.ndarray,
    progress: Progress,
    hook: Hook | None = None,
    measures: Measures | None = None,
    batching: Batching | None = None,
    engine: Engine | None = None,
    max_samples_slow: int | None = None,
) -> tuple[ReferenceResult | None, tuple[CandidateResult, ...], int]:
    """Stream ``rows`` through the reference (if any) and every candidate, in blocks that
    ``batching`` sizes. Workers get the next blocks (``engine.ahead`` of them) before the main
    process folds block k into the statistics, so they are never idle; the folding is in
    order whatever the engine, so its numbers are too. An engine may read the blocks where
    the data lives (``Batches.put_rows``) and run a ``.tflite`` reference on its own workers
    (``Engine.runs_reference``); this process then reads only the first block and what it
    needs itself. Slow candidates stop after ``max_samples_slow`` rows (``cap_slow``). Also
    answers the rows per block it streamed."""
    batching = batching or Batching()
    engine = engine or LocalEngine()
    first = io.output_names[0] if io.output_names else ""
    kind = task_kind(binding.dataset.labels_for(io.output_names).get(first))
    if source is None and kind == MSE_VS_REFERENCE:
        kind = NO_TASK  # a lone model without labels: only findings, no task metric
    reference_task = TaskAccumulator(kind)
    total = len(rows)
    progress("starting interpreters", 0, total)
    # Candidates and the reference run at once here: share the cores between them (an
    # actor on a cluster has its own).
    local = max(1, (os.cpu_count() or 1) // (len(candidates) + 1))
    threads = local if isinstance(engine, LocalEngine) else 1
    runs: list[_Run] = []
    store = engine.batches(binding)
    pending: deque[_Block] = deque()
    blocks: Iterator[tuple[np.ndarray, dict[str, np.ndarray]]] = iter(())
    # A .tflite reference on an engine that runs it (Ray): its outputs are computed once
    # per shard on the cluster, from the same batches as the candidates'.
    job = source.job() if source is not None and engine.runs_reference else None
    remote = engine.worker(f"{Path(source.path).name} (reference)") if source and job else None

    def send(block: _Block, wait: bool = False) -> None:
        with stage("data"):
            block.handle = store.put_rows(block.rows)
            if block.handle is None:  # the workers cannot read the data: read it here
                block.handle = store.put(block.read(binding))
            pending.append(block)
        if remote is not None:
            with stage("reference"):
                block.reference = remote.feed(block.handle)
                if wait:  # the first block: the reference times its batch sizes alone too
                    block.reference.get()
        with stage("candidates"):
            _submit(runs, block.handle, wait)

    def fill() -> None:
        """Blocks in flight up to the engine's ``ahead`` beyond the one read next."""
        while len(pending) <= engine.ahead:
            with stage("data"):
                part = next(blocks, None)
            if part is None:
                return
            send(_Block(*part))

    try:
        with stage("candidates"):
            if remote is not None and job is not None:
                remote.start(job)
            for c in candidates:  # one by one: a failure leaves the started ones to `finally`
                anatomy = hook is not None and hook.anatomy
                runs.append(_start(c, kind, threads, anatomy, batching.batch_size, engine))
            for run in runs:
                _guard(run, lambda r: _loaded(r, io, measures or Measures()))
            cap_slow(runs, max_samples_slow, total, kind)
        with stage("data"):
            block = batching.rows(source, binding, runs, engine.ahead + 1)
            blocks = binding.labelled_blocks(rows, block, io.output_names)
            first_block = _Block(*next(blocks))
            data = spans([first_block.read(binding)])  # the one block always read here
        for run in runs:
            if run.info is not None:
                _scaling(run, data)
        if source is not None and remote is None:
            with stage("reference"):
                source.warm_up(first_block.read(binding))
        if hook is not None:
            hook.ready(runs)
        evaluating = f"evaluating{estimate(runs, total)}"
        progress(evaluating, 0, total)
        # One candidate at a time on the first block: each times batch sizes on it.
        send(first_block, wait=True)
        fill()
        done = 0
        while pending:
            now = pending.popleft()
            samples = len(now.rows)
            with stage("reference"):
                reference = _reference(source, now, binding)
            if reference is not None:
                _check_rows(io, reference, samples)
            with stage("candidates"):
                outputs = _collect(runs, reference)
            if kind == ACCURACY:
                _check_labels(now.labels.get(first), reference, outputs)
            fill()  # after the collect: the block's slot is free again
            with stage("metrics"):
                _fold(reference_task, reference, outputs, now.labels, first)
            if hook is not None:
                with stage("diagnose"):
                    whole = [(r, out) for r, out in outputs if len(out[0]) == samples]
                    hook.batch(now.read(binding), reference, whole)
            done += samples
            progress(evaluating, done, total)
        with stage("candidates"):
            for run in runs:  # one at a time: parallel runs would disturb each other's timing
                _guard(run, _finish)
        if hook is not None:
            progress("diagnosing", total, total)
            with stage("diagnose"):
                hook.finish(runs, binding, rows)
    finally:
        store.close()
        if remote is not None:
            remote.close()
        for run in runs:
            if run.worker is not None:
                run.worker.close()
    return (*_results(source, runs, kind, reference_task), block)


@dataclass
class _Block:
    """One block of rows on its way through the engine: its row numbers and labels, where
    the engine keeps it (``handle``), the reference's reply when the engine runs the
    reference, and its inputs once read here: only what needs them here reads them (the
    reference in this process, a hook, an engine whose workers cannot read the data)."""

    rows: np.ndarray
    labels: dict[str, np.ndarray]
    handle: Any = None
    reference: Reply | None = None
    inputs: list[np.ndarray] | None = None

    def read(self, binding: Binding) -> list[np.ndarray]:
        if self.inputs is None:
            self.inputs = binding.take(self.rows)[0]
        return self.inputs


def _reference(source: Source | None, block: _Block, binding: Binding) -> list[np.ndarray] | None:
    """The reference's outputs for ``block``: its engine's reply, or computed here (from the
    shared memory the candidates read, for a source that runs in a local worker)."""
    if source is None:
        return None
    if block.reference is not None:
        outputs: list[np.ndarray] = block.reference.get()
        return outputs
    on_disk = block.handle if isinstance(block.handle, SharedInputs) else None
    return source.predict(block.read(binding), on_disk)


def slow(costs: Sequence[float | None]) -> list[bool]:
    """Which of the candidates whose per-sample ``costs`` (ms) are given are slow: at least
    ``SLOW_FACTOR`` times the fastest one's. Unmeasured costs are not slow."""
    known = [c for c in costs if c is not None and c > 0]
    if not known:
        return [False] * len(costs)
    fastest = min(known)
    return [c is not None and c >= SLOW_FACTOR * fastest for c in costs]


def cap_slow(runs: list[_Run], limit: int | None, total: int, kind: str) -> None:
    """Measure the slow candidates on their first ``limit`` rows only (``--max-samples-slow``),
    against the reference on those same rows."""
    if limit is None or limit >= total:
        return
    live = [r for r in runs if r.info is not None and r.worker is not None]
    for run, is_slow in zip(live, slow([r.info.sample_ms for r in live]), strict=True):  # type: ignore[union-attr]
        if is_slow:
            run.limit, run.reference_task = limit, TaskAccumulator(kind)


def estimate(runs: list[_Run], total: int) -> str:
    """`` (~2m10s)``: how long the candidates will take, from their measured per-sample costs
    (they share the cores), or "" when a cost is unknown."""
    costs = [r.info.sample_ms for r in runs if r.info is not None and r.worker is not None]
    if not costs or any(c is None for c in costs):
        return ""
    rows = [min(total, r.limit or total) for r in runs if r.info is not None and r.worker]
    each = [c * n / 1000 for c, n in zip(costs, rows, strict=True)]  # type: ignore[operator]
    seconds = max(max(each), sum(each) / (os.cpu_count() or 1))
    minutes, secs = divmod(round(seconds), 60)
    return f" (~{minutes}m{secs:02d}s)" if minutes else f" (~{secs}s)"


def _check_labels(
    labels: np.ndarray | None,
    reference: list[np.ndarray] | None,
    outputs: list[tuple[_Run, list[np.ndarray]]],
) -> None:
    """Integer labels must be classes of the first output (the reference's, else the first
    candidate's)."""
    seen = reference if reference is not None else next((out for _, out in outputs), None)
    if seen is not None:
        check_labels(labels, seen[0])


def _fold(
    reference_task: TaskAccumulator,
    reference: list[np.ndarray] | None,
    outputs: list[tuple[_Run, list[np.ndarray]]],
    by_output: dict[str, np.ndarray],
    first: str,
) -> None:
    """One batch into the reference's task metric and every run's running statistics (the
    headline's task metric reads the first output and its labels, each output its own); a
    run capped inside the batch (``--max-samples-slow``) folds its first rows only."""
    labels = by_output.get(first)
    if reference is not None:
        reference_task.update(reference[0], labels, reference[0])
    for run, out in outputs:
        rows = len(out[0])  # fewer than the batch's when the run's cap falls inside it
        ref = [r[:rows] for r in reference] if reference is not None else None
        mine = {name: y[:rows] for name, y in by_output.items()}
        lab = mine.get(first)
        if ref is not None:
            run.errors.update(ref, out)
            if run.reference_task is not None:
                run.reference_task.update(ref[0], lab, ref[0])
        if run.task is not None:
            run.task.update(out[0], lab, out[0] if ref is None else ref[0])
        if ref is not None and run.outputs is not None:
            run.outputs.update(ref, out, mine)


def _results(
    source: Source | None, runs: list[_Run], kind: str, reference_task: TaskAccumulator
) -> tuple[ReferenceResult | None, tuple[CandidateResult, ...]]:
    """The finished runs as results (and the reference's, when there is one)."""
    if source is None:
        return None, tuple(candidate_result(run, kind, None, None) for run in runs)
    ref_value = reference_task.baseline
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
        except UnreadableData:
            raise  # the rows, not the model: every run would fail on them
        except LiteparityError as exc:
            run.fail(exc)


def _submit(runs: list[_Run], inputs: Any, wait: bool = False) -> None:
    """Send a batch (``SharedInputs`` or ``RayInputs``: the engine's) to every live run, only
    up to its ``limit`` rows."""
    rows = inputs.rows

    def feed(run: _Run) -> None:
        take = max(0, rows if run.limit is None else min(rows, run.limit - run.seen))
        run.in_flight.append(take)
        if not take:
            return
        batch = inputs.select(run.order)
        run.replies.append(run.worker.feed(batch if take == rows else batch.head(take)))  # type: ignore[union-attr]
        run.seen += take
        if wait:
            run.replies[-1].get()

    for run in runs:
        _guard(run, feed)


def _collect(
    runs: list[_Run], reference: list[np.ndarray] | None
) -> list[tuple[_Run, list[np.ndarray]]]:
    """Each live worker's outputs for the batch in flight; a failure fails only that run."""
    outputs: list[tuple[_Run, list[np.ndarray]]] = []

    def receive(run: _Run) -> None:
        take = run.in_flight.popleft()
        if not take:  # capped: it has all its rows
            return
        out = run.replies.popleft().get()
        out = [out[k] for k in run.output_order]  # in the reference's order, matched by name
        if reference is not None:
            _check_shapes([r[:take] for r in reference], out)
        outputs.append((run, out))

    for run in runs:
        _guard(run, receive)
    return outputs


def _finish(run: _Run) -> None:
    """End the candidate's run: the batch size it ran at, and its latency."""
    summary = run.worker.result().get()  # type: ignore[union-attr]
    run.batch_size, run.latency_ms = summary.batch_size, summary.latency_ms
    run.warnings.extend(run.worker.retried)  # type: ignore[union-attr]


def _check_rows(io: IOSpec, reference: list[np.ndarray], samples: int) -> None:
    """One output row per sample: a reference that filters, pools or drops its batch cannot
    be compared with anything, sample by sample."""
    for name, out in zip(io.output_names, reference, strict=True):
        rows = out.shape[0] if out.ndim else 0
        if rows != samples:
            raise ModelError(
                f"the reference returned {rows} rows for {samples} samples (output {name!r}): "
                "liteparity compares one output row per sample"
            )


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
    if c.not_applicable:
        return CandidateResult(c.name, c.recipe, c.path, not_applicable=c.not_applicable)
    if run.error:
        return CandidateResult(
            c.name,
            c.recipe,
            c.path,
            size,
            error=run.error,
            warnings=tuple(run.warnings),
            not_saved=c.not_saved,
        )
    outputs = run.outputs.results() if run.outputs is not None else ()
    metrics = run.errors.metrics()
    share = metrics["non_finite_share"]
    nan = [o.name for o in outputs if o.metrics.get("non_finite_share")]  # outputs holding NaN
    measured: dict[str, Any] = {**metrics, **headline(outputs)} if outputs else dict(metrics)
    value = run.task.value if run.task else None
    interval = None
    if run.reference_task is not None and reference is not None:  # capped: the same rows
        reference = run.reference_task.baseline
        power = run.reference_task.reference_power
        interval = run.task.interval() if run.task else None
    delta = value - reference if value is not None and reference is not None else None
    return CandidateResult(
        name=c.name,
        recipe=c.recipe,
        path=c.path,
        size_bytes=size,
        latency_ms=run.latency_ms,
        metric=Metric(kind, value, interval),
        metric_delta=delta,
        drop=drop(kind, reference, value, power),
        batch_size=run.batch_size,
        error_sample=tuple(run.errors.sample),
        batch_metrics=tuple(run.task.per_batch) if run.task else (),
        outputs=outputs,
        findings=_findings(c.content, share, nan, outputs),
        warnings=tuple(run.warnings),
        not_saved=c.not_saved,
        user_metrics=run.outputs.user.values() if run.outputs and run.outputs.user else {},
        samples=run.seen if run.limit is not None else None,
        **measured,
    )


def _findings(
    content: bytes | None,
    share: float | None,
    nan: Sequence[str],
    outputs: Sequence[OutputResult],
) -> tuple[Finding, ...]:
    """What the measurement itself shows is wrong: variables nothing sets, NaN/Inf outputs
    (``nan``: the outputs holding them), decisions an output can no longer reach."""
    unset = unset_variables(content) if content is not None else ()
    return (
        ((unset_variables_finding(unset),) if unset else ())
        + ((non_finite_finding(share, nan),) if share else ())
        + decision_findings(outputs)
    )
