"""``fix``: the smallest (or fastest) model that meets the accuracy budget.

Search space: the recipes that need no training (float32, float16, dynamic, int16x8, int8) and
int8 with layer groups kept in float (calibrated once, re-quantized in ~10 ms per variant); for
a float ``.tflite`` source, ai-edge-quantizer's recipes and its int8 with op groups kept in
float (``repair.variants``).
Search: rank the groups by sensitivity, bisect over the ranked prefix for the fewest groups
that meet the budget, then try dropping each kept group. Every trial is measured on a search
split; the winner is measured again on a disjoint held-out split.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from liteparity._tf import debugging
from liteparity.convert.converter import requantize
from liteparity.convert.process import Converter
from liteparity.convert.qat import quantization_aware
from liteparity.convert.recipes import RECIPES
from liteparity.data.binding import IOSpec
from liteparity.data.datasets import OUTPUT_LABEL_PREFIX
from liteparity.data.prepare import BATCH_ROWS, PreparedData, prepare_data
from liteparity.errors import ConversionError, InternalError, InterpreterError, UsageError
from liteparity.files import write_atomic
from liteparity.layerwise.sensitivity import layer_sensitivity
from liteparity.measure.decisions import decision_findings
from liteparity.measure.evaluate import input_order, output_order
from liteparity.measure.metrics import TaskAccumulator, task_kind
from liteparity.measure.outputs import Measures, OutputsAccumulator
from liteparity.measure.resume import keep_conversions
from liteparity.plain import number
from liteparity.progress import Progress, no_progress
from liteparity.reference.base import Source
from liteparity.reference.loader import load_spec
from liteparity.repair.search import _confirm, _mark_pareto, _selective_search
from liteparity.repair.variants import AEQVariants
from liteparity.results.check import (
    Finding,
    budgeted,
    lost_outputs,
    output_breaks,
)
from liteparity.results.fix import Budget, FixResult, Trial
from liteparity.runtime.engine import Engine, open_engine
from liteparity.runtime.jobs import BaseWorker, Reply
from liteparity.runtime.model_jobs import ModelInfo, RunModel
from liteparity.specs import DataSpec, EngineOptions, FixOptions, ModelSpec, from_keywords

#: Recipes tried as they are, smallest first; ``int8-per-tensor`` is int8 with one weight
#: scale per tensor instead of per output channel (some accelerators accept only that).
PLAIN_RECIPES = ("int8", "int8-per-tensor", "int16x8", "dynamic", "float16", "float32")

#: The ones that compute in integers (for integer-only hardware: microcontrollers, NPUs).
INTEGER_RECIPES = ("int8", "int8-per-tensor", "int16x8")

#: Seconds between looks at the workers when none has answered yet.
_POLL_S = 0.002

#: Share of the evaluation rows used for the search; the rest is held out.
SEARCH_SHARE = 0.5


@dataclasses.dataclass
class _Running:
    """A model being measured: which one (``k``), the workers running it with their start's
    reply (in the order they joined: the first one's info sets up the folding), the batches
    fed and folded, the replies waited for in batch order with the worker each went to,
    and what folds its outputs."""

    k: int
    starts: dict[int, Reply] = dataclasses.field(default_factory=dict)
    fed: int = 0
    folded: int = 0
    pending: deque[tuple[int, Reply]] = dataclasses.field(default_factory=deque)
    accumulator: OutputsAccumulator | None = None
    outputs_order: list[int] = dataclasses.field(default_factory=list)

    def in_flight(self, w: int) -> int:
        return sum(1 for v, _ in self.pending if v == w)


class _Bench:
    """Measures candidate models on fixed, in-memory batches against cached references, on
    the run's engine: every output matched by name and measured on its own
    (``measure.outputs``), so the budget reads each budgeted output's drop and agreement, as
    ``check``'s exit code does. One model (``measure``: a step of the search) runs on the
    bench's worker, its batches spread over the engine (Ray: ``shards`` actors); independent
    models (``measure_all``: the plain recipes) run together, a model per worker of the
    engine's pool. Either way the outputs are folded here in batch order: the same numbers."""

    def __init__(
        self,
        engine: Engine,
        worker: BaseWorker,
        batches: list[list[np.ndarray]],
        labels: list[dict[str, np.ndarray]],
        references: list[list[np.ndarray]],
        io: IOSpec,
        order: list[int],
        budget: Budget,
    ) -> None:
        self.engine, self.worker, self.batches, self.labels = engine, worker, batches, labels
        self.references, self.io, self.order, self.budget = references, io, order, budget
        first = io.output_names[0]
        self.kind = task_kind(labels[0].get(first) if labels else None)
        task = TaskAccumulator(self.kind)
        for ref, y in zip(references, labels, strict=True):
            task.update(ref[0], y.get(first), ref[0])
        self.reference_metric = task.baseline

    def measure(self, content: bytes) -> dict[str, Any]:
        """One model's numbers, its latency timed at the end (nothing else runs then); its
        ``InterpreterError`` if it cannot run (the bench's worker is then renewed: a crashed
        one cannot measure the next model)."""
        workers = [self.worker]
        [measured] = self._run([content], workers, timed=True)
        self.worker = workers[0]
        if isinstance(measured, InterpreterError):
            raise measured
        return measured

    def measure_all(self, contents: Sequence[bytes]) -> list[dict[str, Any] | InterpreterError]:
        """Each model's numbers (or its ``InterpreterError``), the models measured together:
        each on the next free worker of the engine's pool (a process per core locally; on
        Ray the ``shards`` actors shared among the models, each model's batches spread over
        its worker's), so a slow model (int16x8's reference kernels) holds one
        worker while the others go through the rest. Every latency is timed afterwards, one
        model after another on the bench's worker: one model's alone, not that of models
        sharing cores."""
        if not contents:
            return []
        pool = self.engine.pool("fix", len(contents))
        try:
            measured = self._run(contents, pool, timed=False)
        finally:
            for worker in pool:
                worker.close()
        for k, m in enumerate(measured):
            if not isinstance(m, InterpreterError):
                try:
                    m["latency_ms"] = self._latency(contents[k])
                except InterpreterError as exc:
                    measured[k] = exc
        return measured

    def _latency(self, content: bytes) -> float:
        """Milliseconds one sample (the first) takes through ``content``, alone."""
        batch = self.engine.batches(held=1)
        try:
            self.worker.start(RunModel(content, latency=True))
            self.worker.feed(batch.put([self.batches[0][i][:1] for i in self.order])).get()
            latency: float = self.worker.result().get().latency_ms
        except InterpreterError:
            self.worker = self.worker.renewed()
            raise
        finally:
            batch.close()
        return latency

    def _run(
        self, contents: Sequence[bytes], workers: list[BaseWorker], timed: bool
    ) -> list[dict[str, Any] | InterpreterError]:
        """Each of ``contents`` measured on the next free one of ``workers``; once no model
        waits, a free worker joins the model with the most batches still to send (a slow
        int16x8 then runs on every worker the others left), its batches dealt to the
        model's workers and folded in batch order: the same numbers whoever ran them. A
        worker is fed up to its ``width`` batches at once, through its own store (shared
        memory locally, the object store on Ray: a few batches each, a few small messages
        in a process's socket, whatever the data's size); every worker is fed before any is
        waited for, and the first answers are folded first. A model that fails renews its
        workers. ``timed``: each model's latency is timed when its batches are done (alone
        only when one model runs on one worker)."""
        if not self.batches:
            raise InternalError("the fix bench has no batches")
        measured: list[dict[str, Any] | InterpreterError | None] = [None] * len(contents)
        # a store per worker, its batches put in turn: batch f is overwritten by batch
        # f + width + 1, sent only once f is folded (a few batches in memory per worker)
        stores = [self.engine.batches(held=w.width + 1) for w in workers]
        ordered = [[inputs[i] for i in self.order] for inputs in self.batches]
        owner: dict[int, _Running] = {}  # by worker
        running: dict[int, _Running] = {}  # by model
        waiting = list(range(len(contents)))
        try:
            while waiting or running:
                for w in range(len(workers)):
                    run = self._next_for(w, owner, running, waiting)
                    if run is not None:
                        job = RunModel(contents[run.k], latency=timed)
                        run.starts[w], owner[w] = workers[w].start(job), run
                for run in running.values():  # every worker busy before any wait
                    self._feed(run, workers, stores, ordered)
                ready = [r for r in running.values() if workers[r.pending[0][0]].answered()]
                if not ready:  # fold whichever answers first: a fast model is not held
                    time.sleep(_POLL_S)  # back by a slow one
                for run in ready:
                    try:
                        done = self._fold(run)
                        if done:
                            first = workers[next(iter(run.starts))]  # its latency, if timed
                            latency = first.result().get().latency_ms if timed else None
                            measured[run.k] = self._numbers(run, latency, contents[run.k])
                    except InterpreterError as exc:
                        measured[run.k], done = exc, True
                        for v in run.starts:  # its replies in flight go with them
                            workers[v] = workers[v].renewed()
                    if done:
                        for v in run.starts:
                            del owner[v]
                        del running[run.k]
        finally:
            for store in stores:
                store.close()
        if any(m is None for m in measured):
            raise InternalError("a model of the fix bench was never measured")
        return [m for m in measured if m is not None]

    def _next_for(
        self,
        w: int,
        owner: dict[int, _Running],
        running: dict[int, _Running],
        waiting: list[int],
    ) -> _Running | None:
        """What free worker ``w`` runs next: the next waiting model, else a share of the
        running one with the most batches still to send; None: nothing."""
        if w in owner:
            return None
        if waiting:
            k = waiting.pop(0)
            running[k] = _Running(k)
            return running[k]
        left = len(self.batches)
        busiest = max(running.values(), key=lambda r: left - r.fed, default=None)
        return busiest if busiest is not None and left > busiest.fed else None

    @staticmethod
    def _feed(
        run: _Running, workers: list[BaseWorker], stores: list[Any], ordered: list[Any]
    ) -> None:
        """Send ``run``'s next batches to its workers with room (each up to its ``width``
        at once: no batch waits on a busy worker that a free one could take), the most room
        first."""
        while run.fed < len(ordered):
            w = max(run.starts, key=lambda v: workers[v].width - run.in_flight(v))
            if run.in_flight(w) >= workers[w].width:
                return
            run.pending.append((w, workers[w].feed(stores[w].put(ordered[run.fed]))))
            run.fed += 1

    def _fold(self, run: _Running) -> bool:
        """Fold ``run``'s next batch; whether every batch is folded."""
        if run.accumulator is None:
            info = next(iter(run.starts.values())).get()
            run.accumulator, run.outputs_order = self._accumulator(info)
        b = run.folded
        _, reply = run.pending.popleft()
        out = reply.get()
        y, ref = self.labels[b], self.references[b]
        run.accumulator.update(ref, [out[j] for j in run.outputs_order], y)
        run.folded += 1
        return run.folded == len(self.batches)

    def _accumulator(self, info: ModelInfo) -> tuple[OutputsAccumulator, list[int]]:
        """What folds a model's outputs (matched to the reference's by name), and the order
        its outputs are taken in."""
        names = self.io.output_names
        outputs_order, _ = output_order(names, [o.name for o in info.outputs])
        matched = [info.outputs[k].name for k in outputs_order]
        reach = [info.output_ranges[k] for k in outputs_order] if info.output_ranges else []
        return OutputsAccumulator.create(names, matched, Measures(), reach), outputs_order

    def _numbers(self, run: _Running, latency_ms: float | None, content: bytes) -> dict[str, Any]:
        """A model's numbers against the budget."""
        measured = run.accumulator
        if measured is None:
            raise InternalError("a model's numbers were asked for before its first batch")
        outputs = measured.results()
        budget = self.budget
        chosen = budgeted(outputs, budget.outputs)
        drops = [d for o in chosen if (d := number(o.metrics.get("drop"))) is not None]
        agreements = [o.agreement for o in chosen if o.agreement is not None]
        lost = lost_outputs(decision_findings(outputs))
        return {
            "metric": outputs[0].metrics.get("task_value"),
            "drop": max(drops, default=None),  # the worst budgeted output's
            "agreement": min(agreements, default=None),
            "lost": sorted(lost & {o.name for o in chosen}),
            "broken": output_breaks(
                outputs, budget.max_drop, budget.min_agreement, budget.outputs, lost
            ),
            "latency_ms": latency_ms,
            "size_bytes": len(content),
        }


def fix(
    model: ModelSpec | str | os.PathLike[str] | Source,
    data: DataSpec | Any,
    options: FixOptions | None = None,
    *,
    progress: Progress | None = None,
    **keywords: Any,
) -> FixResult:
    """Search recipes and selective quantization for the best model within the budget and
    write it to ``out`` (the best model found is written even when none meets the budget).
    ``integer_only`` leaves out float16, dynamic and float32 (int8 with a few layers kept in
    float stays in). ``qat_epochs`` adds quantization-aware fine-tuning on the labelled search
    rows (Keras 2 ``.h5`` models: tfmot does not support Keras 3). Takes the specs, or a model
    and data with keywords naming fields of ``ModelSpec``, ``DataSpec`` and ``FixOptions``
    (``fix("model.keras", data="eval.npz", max_drop=1.0, out="fixed.tflite")``)."""
    model, data, options = from_keywords("fix", model, data, options, FixOptions, keywords)
    budget = Budget(options.max_drop, options.min_agreement, options.budget_outputs)
    progress = progress or no_progress
    engine = open_engine(options, debug=debugging())  # a missing Ray fails before any work
    # Started first (its TensorFlow import overlaps with loading; with ``resume``, only once a
    # model is missing from the cache): a converter crash on one recipe then skips that recipe
    # instead of ending the process. Ray: the conversions run on the cluster instead.
    converter = Converter(model, start=not options.resume, engine=engine)
    try:
        source = load_spec(model)
    except BaseException:
        converter.close()
        raise
    worker = engine.worker("fix")
    search: _Search | None = None
    try:
        prepared = prepare_data(source, data, True)
        if options.resume:
            keep_conversions(converter, model, prepared)
        search_rows, held_rows = _split(prepared.eval_rows, data.seed)
        # A float .tflite's variants are ai-edge-quantizer recipes (repair.variants).
        variants = None if source.convertible else AEQVariants(source, prepared, progress)
        search = _Search(converter, source, prepared, variants, budget, progress, engine)
        search.ahead(options.integer_only)
        search.start(worker, search_rows)
        search.plain(options.integer_only)
        converter.close()  # every conversion is done: free its process (it holds the model)
        search.qat(options.qat_epochs, search_rows)
        search_trials = search.selective()
        result = search.conclude(held_rows, options, search_trials, len(search_rows))
        result = dataclasses.replace(result, engine=engine.describe(len(search_rows), BATCH_ROWS))
    finally:
        converter.close()
        worker.close()
        if search is not None and search.bench is not None:
            search.bench.worker.close()
        source.close()
    return result


def _split(rows: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The search rows and the disjoint held-out rows (seeded)."""
    if len(rows) < 2:
        raise UsageError("fix needs at least 2 evaluation samples (search and held-out)")
    cut = np.random.default_rng(seed + 1).permutation(len(rows))
    share = max(1, int(len(rows) * SEARCH_SHARE))
    return np.sort(rows[cut[:share]]), np.sort(rows[cut[share:]])


class _Search:
    """One fix run's search: the models tried (``trials``, their bytes in ``contents``), the
    recipes the model could not take (``skipped``), all measured on the search rows."""

    def __init__(
        self,
        converter: Converter,
        source: Source,
        prepared: PreparedData,
        variants: AEQVariants | None,
        budget: Budget,
        progress: Progress,
        engine: Engine,
    ) -> None:
        self.converter, self.source, self.prepared = converter, source, prepared
        self.engine = engine
        self.variants, self.budget, self.progress = variants, budget, progress
        self.trials: list[Trial] = []
        self.contents: dict[str, bytes] = {}
        self.skipped: dict[str, str] = {}
        self.calibrated: bytes | None = None
        self.order: list[int] = []
        self.bench: _Bench | None = None

    def ahead(self, integer_only: bool) -> None:
        """Start the conversions ``start`` and ``plain`` ask for at once, where the engine
        can (Ray: ``Converter.ahead``)."""
        if self.variants is None:
            names = INTEGER_RECIPES if integer_only else PLAIN_RECIPES
            recipes = [RECIPES[n] for n in names if n in RECIPES]  # int8-per-tensor: requantized
            self.converter.ahead(recipes, self.prepared.calibration)

    def start(self, worker: BaseWorker, rows: np.ndarray) -> None:
        """Calibrate once (TF sources), learn the model's input order, cache the references."""
        if self.variants is None:
            try:
                self.calibrated = self.converter.convert(
                    self.source, RECIPES["int8"], self.prepared.calibration, calibrate_only=True
                )
            except ConversionError as exc:  # no int8 for this model: the other recipes remain
                self.skipped["int8"] = str(exc)
        float_model = self.variants.float_model() if self.variants else None
        first = worker.start(
            RunModel(
                self.calibrated
                or float_model
                or self.converter.convert(self.source, RECIPES["float32"])
            )
        )
        self.order = input_order(self.source.io.input_names, [i.name for i in first.get().inputs])
        self.bench = self.bench_for(rows, worker)

    def bench_for(self, rows: np.ndarray, worker: BaseWorker | None = None) -> _Bench:
        """A bench over ``rows`` with the reference's outputs cached (on the search bench's
        worker, renewed if a trial crashed the first one)."""
        batches, labels = [], []
        io = self.source.io
        for x, y in self.prepared.binding.labelled_batches(rows, BATCH_ROWS, io.output_names):
            batches.append(x)
            labels.append(y)
        references = [self.source.predict(b) for b in batches]
        if worker is None:
            worker = self._bench().worker
        return _Bench(self.engine, worker, batches, labels, references, io, self.order, self.budget)

    def _bench(self) -> _Bench:
        if self.bench is None:
            raise InternalError("the fix search measured before it started")
        return self.bench

    def trial(self, recipe: str, content: bytes, keep: Sequence[str] = ()) -> Trial:
        """Measure one model (a step of the search) and keep it as a trial."""
        return self._keep(recipe, content, keep, self._bench().measure(content))

    def _keep(self, recipe: str, content: bytes, keep: Sequence[str], m: dict[str, Any]) -> Trial:
        t = Trial(
            recipe,
            tuple(keep),
            m["size_bytes"],
            m["latency_ms"],
            m["metric"],
            m["drop"],
            m["agreement"],
            self.budget.met(m["drop"], m["agreement"], m["lost"]),
        )
        self.trials.append(t)
        self.contents[t.name] = content
        self.progress(f"tried {t.name}", len(self.trials), len(self.trials))
        return t

    def plain(self, integer_only: bool) -> None:
        """Every whole-model recipe the model takes: made first (Ray: converted several at
        once), then measured together (``_Bench.measure_all``), kept in the recipes' order."""
        variants = self.variants
        names = INTEGER_RECIPES if integer_only else PLAIN_RECIPES
        made: dict[str, bytes] = {}
        for name in variants.names(integer_only) if variants else names:
            if name in self.skipped:
                continue
            try:
                if variants is not None:
                    made[name] = variants.plain(name)
                elif name.startswith("int8"):
                    if self.calibrated is not None:
                        made[name] = requantize(self.calibrated, per_channel=name == "int8")
                else:
                    made[name] = self.converter.convert(
                        self.source, RECIPES[name], self.prepared.calibration
                    )
            except (ConversionError, InterpreterError) as exc:  # the model cannot take it
                self.skipped[name] = str(exc)
        self.progress(f"measuring {len(made)} recipes together", 0, len(made))
        measured = self._bench().measure_all(list(made.values()))
        for (name, content), m in zip(made.items(), measured, strict=True):
            if isinstance(m, InterpreterError):  # the model cannot run it
                self.skipped[name] = str(m)
            else:
                self._keep(name, content, (), m)

    def qat(self, epochs: int, rows: np.ndarray) -> None:
        """Quantization-aware fine-tuning on the labelled search rows, when asked for."""
        if epochs > 0 and self.variants is not None:
            self.skipped["qat"] = "quantization-aware training needs a Keras model, not a .tflite"
        elif epochs > 0:
            self.progress(f"quantization-aware training ({epochs} epochs)", 0, 1)
            x, y = self.prepared.binding.take(rows)
            if y is None or len(x) != 1:
                raise UsageError("--qat-epochs needs labelled data (y) for a single-input model")
            try:
                self.trial("qat", quantization_aware(self.source, x[0], y, epochs))
            except (ConversionError, InterpreterError) as exc:
                self.skipped["qat"] = str(exc)
        if not self.trials:
            raise ConversionError(f"no recipe could convert the model: {self.skipped}")

    def selective(self) -> int:
        """When plain int8 breaks the budget: int8 with the most sensitive layer groups kept
        in float (bisection and pruning). The number of trials it took."""
        first, before = self.trials[0], len(self.trials)
        if first.recipe != "int8" or first.within_budget:
            return 0
        bench = self._bench()
        if self.variants is not None:
            groups = self.variants.ranking(bench.measure, first.drop or 0.0)
            _selective_search(groups, self.variants.int8, self.trial, self.budget)
        elif self.calibrated is not None:
            quantized = self.calibrated
            run = layer_sensitivity(
                quantized,
                [[b[i] for i in bench.order] for b in bench.batches],
                bench.references,
                self.source.layer_names(),
                stop=False,  # the search may need every group, not only the top two
                engine=self.engine,
            )
            groups = [(s.layer, s.keep_float) for s in run.ranking if s.share_removed > 0]
            reuse = dict(run.variants)  # the search starts with the most sensitive groups

            def build(names: list[str]) -> bytes:
                return reuse.get(tuple(names)) or requantize(quantized, names)

            _selective_search(groups, build, self.trial, self.budget)
        return len(self.trials) - before

    def conclude(
        self, held_rows: np.ndarray, options: FixOptions, search_trials: int, searched: int
    ) -> FixResult:
        """The winner, confirmed on the held-out rows, written where ``out`` says, with
        explain's findings for plain int8 and for it."""
        held_bench = self.bench_for(held_rows)
        try:
            winner, reason, met, held, broke = _confirm(
                self.trials,
                self.budget,
                options.prefer,
                lambda t: _held_out(held_bench, self.contents[t.name]),
            )
        finally:  # a crash there gave the held-out bench a worker of its own
            if held_bench.worker is not self._bench().worker:
                held_bench.worker.close()
        trials = _mark_pareto(self.trials, options.prefer)
        winner = next(t for t in trials if t.name == winner.name)
        content = self.contents[winner.name]
        written = str(write_atomic(Path(options.out), content)) if options.out else None
        self.progress("explaining before and after", 0, 1)
        plain = self.contents.get("int8", self.contents[trials[0].name])
        before, after = _before_after(
            self.source, self.prepared, held_rows, (plain, content), options
        )
        numbers = {k: held.get(k) for k in ("metric", "drop", "agreement", "lost", "broken")}
        return FixResult(
            model=self.source.path,
            metric_name=self._bench().kind,
            reference_metric=self._bench().reference_metric,
            budget=self.budget,
            prefer=options.prefer,
            trials=tuple(trials),
            winner=winner,
            met=met,
            reason=reason,
            search_samples=searched,
            held_out={"samples": len(held_rows), **numbers},
            out=written,
            content=content,
            search_trials=search_trials,
            held_out_broken=broke,
            before=before,
            after=after,
            skipped=self.skipped,
        )


def _held_out(bench: _Bench, content: bytes) -> dict[str, Any]:
    """A trial's numbers on the held-out rows; a model that crashes there holds nothing."""
    try:
        return bench.measure(content)
    except InterpreterError as exc:
        return {"metric": None, "drop": None, "agreement": None, "lost": [], "error": str(exc)}


def _before_after(
    source: Source,
    prepared: PreparedData,
    rows: np.ndarray,
    models: tuple[bytes, bytes],
    engine: EngineOptions,
) -> tuple[tuple[Finding, ...], tuple[Finding, ...]]:
    """``explain``'s findings for plain int8 and for the winner (``models``), on the held-out
    rows, on the run's engine."""
    import tempfile

    from liteparity.diagnose.explain import explain

    inputs, _ = prepared.binding.take(rows)
    arrays: dict[str, Any] = dict(zip(source.io.input_names, inputs, strict=True))
    names = source.io.output_names
    for name, y in prepared.binding.dataset.labels_for(names).items():
        arrays["y" if name == names[0] else f"{OUTPUT_LABEL_PREFIX}{name}"] = y[rows]
    with tempfile.TemporaryDirectory(prefix="liteparity-fix-") as tmp:
        paths = [Path(tmp) / "before.tflite", Path(tmp) / "after.tflite"]
        for path, content in zip(paths, models, strict=True):
            path.write_bytes(content)
        where = {f.name: getattr(engine, f.name) for f in dataclasses.fields(EngineOptions)}
        result = explain(source, data=arrays, recipes=[], candidates=paths, **where)
    return result.candidates[0].findings, result.candidates[1].findings
