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
from liteparity.errors import ConversionError, InterpreterError, UsageError
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
    prefer, qat_epochs, seed = options.prefer, options.qat_epochs, data.seed
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
    bench: _Bench | None = None
    try:
        prepared = prepare_data(source, data, True)
        rows = prepared.eval_rows
        if len(rows) < 2:
            raise UsageError("fix needs at least 2 evaluation samples (search and held-out)")
        cut = np.random.default_rng(seed + 1).permutation(len(rows))
        search_rows = np.sort(rows[cut[: max(1, int(len(rows) * SEARCH_SHARE))]])
        held_rows = np.sort(rows[cut[max(1, int(len(rows) * SEARCH_SHARE)) :]])
        kind = task_kind(prepared.binding.dataset.labels)

        def bench_for(selected: np.ndarray) -> _Bench:
            batches, labels = [], []
            for x, y in prepared.binding.batches(selected, BATCH_ROWS):
                batches.append(x)
                labels.append(y)
            references = [source.predict(b) for b in batches]
            return _Bench(worker, batches, labels, references, kind, order)

        skipped: dict[str, str] = {}
        calibrated: bytes | None = None
        # A float .tflite's variants are ai-edge-quantizer recipes (repair.variants).
        variants = None if source.convertible else AEQVariants(source, prepared, progress)
        if variants is None:
            try:
                calibrated = converter.convert(
                    source, RECIPES["int8"], prepared.calibration, calibrate_only=True
                )
            except ConversionError as exc:  # no int8 for this model: the other recipes remain
                skipped["int8"] = str(exc)
        float_model = variants.float_model() if variants else None
        first = worker.start(
            RunModel(calibrated or float_model or converter.convert(source, RECIPES["float32"]))
        )
        order = input_order(source.io.input_names, [i.name for i in first.get().inputs])
        bench = bench_for(search_rows)
        contents: dict[str, bytes] = {}
        trials: list[Trial] = []

        def trial(recipe: str, content: bytes, keep: Sequence[str] = ()) -> Trial:
            m = bench.measure(content)
            t = Trial(
                recipe,
                tuple(keep),
                m["size_bytes"],
                m["latency_ms"],
                m["metric"],
                m["drop"],
                m["agreement"],
                budget.met(m["drop"], m["agreement"]),
            )
            trials.append(t)
            contents[t.name] = content
            progress(f"tried {t.name}", len(trials), len(trials))
            return t

        plain_names = INTEGER_RECIPES if options.integer_only else PLAIN_RECIPES
        for name in variants.names(options.integer_only) if variants else plain_names:
            if name in skipped:
                continue
            try:
                if variants is not None:
                    content = variants.plain(name)
                elif name.startswith("int8"):
                    if calibrated is None:
                        continue
                    content = requantize(calibrated, per_channel=name == "int8")
                else:
                    content = converter.convert(source, RECIPES[name], prepared.calibration)
                trial(name, content)
            except (ConversionError, InterpreterError) as exc:  # the model cannot take it
                skipped[name] = str(exc)
        converter.close()  # every conversion is done: free its process (it holds the model)
        if qat_epochs > 0 and variants is not None:
            skipped["qat"] = "quantization-aware training needs a Keras model, not a .tflite"
        elif qat_epochs > 0:
            progress(f"quantization-aware training ({qat_epochs} epochs)", 0, 1)
            x, y = prepared.binding.take(search_rows)
            if y is None or len(x) != 1:
                raise UsageError("--qat-epochs needs labelled data (y) for a single-input model")
            try:
                trial("qat", quantization_aware(source, x[0], y, qat_epochs))
            except (ConversionError, InterpreterError) as exc:
                skipped["qat"] = str(exc)
        if not trials:
            raise ConversionError(f"no recipe could convert the model: {skipped}")
        search_trials = 0
        if trials[0].recipe == "int8" and not trials[0].within_budget:
            before = len(trials)
            if variants is not None:
                groups = variants.ranking(bench.measure, trials[0].drop or 0.0)
                _selective_search(groups, variants.int8, trial, budget)
            elif calibrated is not None:
                quantized = calibrated
                ranking = layer_sensitivity(
                    quantized,
                    [[b[i] for i in bench.order] for b in bench.batches],
                    bench.references,
                    source.layer_names(),
                )
                groups = [(s.layer, s.keep_float) for s in ranking if s.share_removed > 0]
                _selective_search(groups, lambda names: requantize(quantized, names), trial, budget)
            search_trials = len(trials) - before
        worker = bench.worker  # renewed if a trial crashed the first one
        held_bench = bench_for(held_rows)
        winner, reason, met, held, broke = _confirm(
            trials, budget, prefer, lambda t: _held_out(held_bench, contents[t.name])
        )
        trials = _mark_pareto(trials, prefer)
        winner = next(t for t in trials if t.name == winner.name)
        content = contents[winner.name]
        written = None
        if options.out is not None:
            written = str(write_atomic(Path(options.out), content))
        progress("explaining before and after", 0, 1)
        plain = contents.get("int8", contents[trials[0].name])
        findings_before, findings_after = _before_after(source, prepared, held_rows, plain, content)
    finally:
        converter.close()
        worker.close()
        if bench is not None:
            bench.worker.close()
        source.close()
    return FixResult(
        model=source.path,
        metric_name=kind,
        reference_metric=bench.reference_metric,
        budget=budget,
        prefer=prefer,
        trials=tuple(trials),
        winner=winner,
        met=met,
        reason=reason,
        search_samples=len(search_rows),
        held_out={
            "samples": len(held_rows),
            **{k: held[k] for k in ("metric", "drop", "agreement")},
        },
        out=written,
        content=content,
        search_trials=search_trials,
        held_out_broken=broke,
        before=findings_before,
        after=findings_after,
        skipped=skipped,
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
