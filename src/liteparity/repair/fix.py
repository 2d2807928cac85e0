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

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from liteparity.convert.converter import requantize
from liteparity.convert.process import Converter
from liteparity.convert.qat import quantization_aware
from liteparity.convert.recipes import RECIPES
from liteparity.data.prepare import BATCH_ROWS, PreparedData, prepare_data
from liteparity.errors import ConversionError, InternalError, InterpreterError, UsageError
from liteparity.files import write_atomic
from liteparity.layerwise.sensitivity import layer_sensitivity
from liteparity.measure.evaluate import input_order
from liteparity.measure.metrics import ErrorAccumulator, TaskAccumulator, drop, task_kind
from liteparity.progress import Progress, no_progress
from liteparity.reference.base import Source
from liteparity.reference.loader import load_spec
from liteparity.repair.search import _confirm, _mark_pareto, _selective_search
from liteparity.repair.variants import AEQVariants
from liteparity.results.check import ACCURACY, MSE_VS_REFERENCE, Finding
from liteparity.results.fix import Budget, FixResult, Trial
from liteparity.runtime.model_jobs import RunModel
from liteparity.runtime.worker import Worker
from liteparity.specs import DataSpec, FixOptions, ModelSpec, from_keywords

#: Recipes tried as they are, smallest first; ``int8-per-tensor`` is int8 with one weight
#: scale per tensor instead of per output channel (some accelerators accept only that).
PLAIN_RECIPES = ("int8", "int8-per-tensor", "int16x8", "dynamic", "float16", "float32")

#: The ones that compute in integers (for integer-only hardware: microcontrollers, NPUs).
INTEGER_RECIPES = ("int8", "int8-per-tensor", "int16x8")

#: Share of the evaluation rows used for the search; the rest is held out.
SEARCH_SHARE = 0.5


class _Bench:
    """Measures candidate models on fixed, in-memory batches against cached references."""

    def __init__(
        self,
        worker: Worker,
        batches: list[list[np.ndarray]],
        labels: list[np.ndarray | None],
        references: list[list[np.ndarray]],
        kind: str,
        order: list[int],
    ) -> None:
        self.worker, self.batches, self.labels = worker, batches, labels
        self.references, self.kind, self.order = references, kind, order
        task = TaskAccumulator(kind)
        for ref, y in zip(references, labels, strict=True):
            task.update(ref[0], y, ref[0])
        self.reference_metric = 0.0 if kind == MSE_VS_REFERENCE else task.value
        self.power = task.reference_power

    def measure(self, content: bytes) -> dict[str, Any]:
        try:
            return self._measure(content)
        except InterpreterError:  # a crashed worker cannot measure the next model: renew it
            self.worker.close()
            self.worker = Worker("fix")
            raise

    def _measure(self, content: bytes) -> dict[str, Any]:
        self.worker.start(RunModel(content, latency=True)).get()
        task = TaskAccumulator(self.kind)
        errors = ErrorAccumulator(classify=True if self.kind == ACCURACY else None)
        for inputs, y, ref in zip(self.batches, self.labels, self.references, strict=True):
            out = self.worker.feed([inputs[i] for i in self.order]).get()
            task.update(out[0], y, ref[0])
            errors.update(ref, out)
        value = task.value
        return {
            "metric": value,
            "drop": drop(self.kind, self.reference_metric, value, self.power),
            "agreement": errors.metrics()["agreement"],
            "latency_ms": self.worker.result().get().latency_ms,  # of the first sample fed
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
    budget = Budget(options.max_drop, options.min_agreement)
    progress = progress or no_progress
    # Started first (its TensorFlow import overlaps with loading): a converter crash on one
    # recipe then skips that recipe instead of ending the process.
    converter = Converter(model)
    try:
        source = load_spec(model)
    except BaseException:
        converter.close()
        raise
    worker = Worker("fix")
    search: _Search | None = None
    try:
        prepared = prepare_data(source, data, True)
        search_rows, held_rows = _split(prepared.eval_rows, data.seed)
        # A float .tflite's variants are ai-edge-quantizer recipes (repair.variants).
        variants = None if source.convertible else AEQVariants(source, prepared, progress)
        search = _Search(converter, source, prepared, variants, budget, progress)
        search.start(worker, search_rows)
        search.plain(options.integer_only)
        converter.close()  # every conversion is done: free its process (it holds the model)
        search.qat(options.qat_epochs, search_rows)
        search_trials = search.selective()
        result = search.conclude(held_rows, options, search_trials, len(search_rows))
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
    ) -> None:
        self.converter, self.source, self.prepared = converter, source, prepared
        self.variants, self.budget, self.progress = variants, budget, progress
        self.kind = task_kind(prepared.binding.dataset.labels)
        self.trials: list[Trial] = []
        self.contents: dict[str, bytes] = {}
        self.skipped: dict[str, str] = {}
        self.calibrated: bytes | None = None
        self.order: list[int] = []
        self.bench: _Bench | None = None

    def start(self, worker: Worker, rows: np.ndarray) -> None:
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

    def bench_for(self, rows: np.ndarray, worker: Worker | None = None) -> _Bench:
        """A bench over ``rows`` with the reference's outputs cached (on the search bench's
        worker, renewed if a trial crashed the first one)."""
        batches, labels = [], []
        for x, y in self.prepared.binding.batches(rows, BATCH_ROWS):
            batches.append(x)
            labels.append(y)
        references = [self.source.predict(b) for b in batches]
        if worker is None:
            worker = self._bench().worker
        return _Bench(worker, batches, labels, references, self.kind, self.order)

    def _bench(self) -> _Bench:
        if self.bench is None:
            raise InternalError("the fix search measured before it started")
        return self.bench

    def trial(self, recipe: str, content: bytes, keep: Sequence[str] = ()) -> Trial:
        m = self._bench().measure(content)
        t = Trial(
            recipe,
            tuple(keep),
            m["size_bytes"],
            m["latency_ms"],
            m["metric"],
            m["drop"],
            m["agreement"],
            self.budget.met(m["drop"], m["agreement"]),
        )
        self.trials.append(t)
        self.contents[t.name] = content
        self.progress(f"tried {t.name}", len(self.trials), len(self.trials))
        return t

    def plain(self, integer_only: bool) -> None:
        """Every whole-model recipe the model takes."""
        variants = self.variants
        names = INTEGER_RECIPES if integer_only else PLAIN_RECIPES
        for name in variants.names(integer_only) if variants else names:
            if name in self.skipped:
                continue
            try:
                if variants is not None:
                    content = variants.plain(name)
                elif name.startswith("int8"):
                    if self.calibrated is None:
                        continue
                    content = requantize(self.calibrated, per_channel=name == "int8")
                else:
                    content = self.converter.convert(
                        self.source, RECIPES[name], self.prepared.calibration
                    )
                self.trial(name, content)
            except (ConversionError, InterpreterError) as exc:  # the model cannot take it
                self.skipped[name] = str(exc)

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
        winner, reason, met, held, broke = _confirm(
            self.trials,
            self.budget,
            options.prefer,
            lambda t: _held_out(held_bench, self.contents[t.name]),
        )
        trials = _mark_pareto(self.trials, options.prefer)
        winner = next(t for t in trials if t.name == winner.name)
        content = self.contents[winner.name]
        written = str(write_atomic(Path(options.out), content)) if options.out else None
        self.progress("explaining before and after", 0, 1)
        plain = self.contents.get("int8", self.contents[trials[0].name])
        before, after = _before_after(self.source, self.prepared, held_rows, plain, content)
        numbers = {k: held[k] for k in ("metric", "drop", "agreement")}
        return FixResult(
            model=self.source.path,
            metric_name=self.kind,
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
        return {"metric": None, "drop": None, "agreement": None, "error": str(exc)}


def _before_after(
    source: Source,
    prepared: PreparedData,
    rows: np.ndarray,
    plain: bytes,
    winner: bytes,
) -> tuple[tuple[Finding, ...], tuple[Finding, ...]]:
    """``explain``'s findings for plain int8 and for the winner, on the held-out rows."""
    import tempfile

    from liteparity.diagnose.explain import explain

    inputs, labels = prepared.binding.take(rows)
    arrays: dict[str, Any] = dict(zip(source.io.input_names, inputs, strict=True))
    if labels is not None:
        arrays["y"] = labels
    with tempfile.TemporaryDirectory(prefix="liteparity-fix-") as tmp:
        paths = [Path(tmp) / "before.tflite", Path(tmp) / "after.tflite"]
        for path, content in zip(paths, (plain, winner), strict=True):
            path.write_bytes(content)
        result = explain(source, data=arrays, recipes=[], candidates=paths)
    return result.candidates[0].findings, result.candidates[1].findings
