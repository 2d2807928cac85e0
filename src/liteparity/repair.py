"""``fix``: the smallest (or fastest) model that meets the accuracy budget.

Search space: the recipes that need no training (float32, float16, dynamic, int16x8, int8) and
int8 with layer groups kept in float (calibrated once, re-quantized in ~10 ms per variant).
Search: rank the groups by sensitivity, bisect over the ranked prefix for the fewest groups
that meet the budget, then try dropping each kept group. Every trial is measured on a search
split; the winner is measured again on a disjoint held-out split.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import compare, pipeline, recipes, sensitivity, sources
from .errors import ConversionError, InterpreterError, UsageError
from .workers import Worker

#: Recipes tried as they are, smallest first; ``int8-per-tensor`` is int8 with one weight
#: scale per tensor instead of per output channel (some accelerators accept only that).
PLAIN_RECIPES = ("int8", "int8-per-tensor", "int16x8", "dynamic", "float16", "float32")
#: The ones that compute in integers (for integer-only hardware: microcontrollers, NPUs).
INTEGER_RECIPES = ("int8", "int8-per-tensor", "int16x8")
#: Share of the evaluation rows used for the search; the rest is held out.
SEARCH_SHARE = 0.5


@dataclass(frozen=True)
class Budget:
    """What the user accepts: points lost (accuracy, or % MSE) and top-1 agreement."""

    max_drop: float | None = 1.0
    min_agreement: float | None = None

    def __post_init__(self) -> None:
        if self.max_drop is None and self.min_agreement is None:
            raise UsageError("give a budget: --max-drop and/or --min-agreement")

    def met(self, drop: float | None, agreement: float | None) -> bool:
        if self.max_drop is not None and (drop is None or drop > self.max_drop):
            return False
        return not (
            self.min_agreement is not None and (agreement is None or agreement < self.min_agreement)
        )


@dataclass(frozen=True)
class Trial:
    """One model the search built and measured."""

    recipe: str
    keep_float: tuple[str, ...]  # layer groups kept in float (int8 variants)
    size_bytes: int
    latency_ms: float
    metric: float | None
    drop: float | None
    agreement: float | None
    within_budget: bool
    pareto: bool = False

    @property
    def name(self) -> str:
        kept = f" + float {', '.join(self.keep_float)}" if self.keep_float else ""
        return self.recipe + kept

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "recipe": self.recipe,
            "keep_float": list(self.keep_float),
            "size_bytes": self.size_bytes,
            "latency_ms": self.latency_ms,
            "metric": compare.json_number(self.metric),
            "drop": compare.json_number(self.drop),
            "agreement": self.agreement,
            "within_budget": self.within_budget,
            "pareto": self.pareto,
        }


@dataclass(frozen=True)
class FixResult:
    """What ``liteparity.fix`` returns: every trial, the winner and how it holds up."""

    model: str
    metric_name: str
    reference_metric: float | None
    budget: Budget
    prefer: str
    trials: tuple[Trial, ...]
    winner: Trial
    met: bool  # the winner meets the budget on the search split
    reason: str
    held_out: dict[str, Any]
    search_samples: int
    out: str | None = None
    content: bytes = field(default=b"", repr=False)
    search_trials: int = 0  # quantize+evaluate trials of the selective search
    #: ``explain``'s findings on the held-out data: plain int8, then the winner
    before: tuple[Any, ...] = ()
    after: tuple[Any, ...] = ()
    skipped: dict[str, str] = field(default_factory=dict)  # recipe → why it failed

    @property
    def held_out_met(self) -> bool:
        return self.budget.met(self.held_out.get("drop"), self.held_out.get("agreement"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "metric": self.metric_name,
            "reference_metric": self.reference_metric,
            "budget": {
                "max_drop": self.budget.max_drop,
                "min_agreement": self.budget.min_agreement,
            },
            "prefer": self.prefer,
            "winner": self.winner.to_dict(),
            "met": self.met,
            "reason": self.reason,
            "held_out": self.held_out,
            "held_out_met": self.held_out_met,
            "search_samples": self.search_samples,
            "selective_search_trials": self.search_trials,
            "trials": [t.to_dict() for t in self.trials],
            "out": self.out,
            "skipped": self.skipped,
            "findings_before": [f.to_dict() for f in self.before],
            "findings_after": [f.to_dict() for f in self.after],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def __rich__(self) -> Any:
        from .report.fix import fix_table

        return fix_table(self)


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
        task = compare.TaskAccumulator(kind)
        for ref, y in zip(references, labels, strict=True):
            task.update(ref[0], y, ref[0])
        self.reference_metric = 0.0 if kind == compare.MSE_VS_REFERENCE else task.value
        self.power = task.reference_power

    def measure(self, content: bytes) -> dict[str, Any]:
        try:
            return self._measure(content)
        except InterpreterError:  # a crashed worker cannot measure the next model: renew it
            self.worker.close()
            self.worker = Worker("fix")
            raise

    def _measure(self, content: bytes) -> dict[str, Any]:
        self.worker.load(content)
        task = compare.TaskAccumulator(self.kind)
        errors = compare.ErrorAccumulator(classify=True if self.kind == compare.ACCURACY else None)
        for inputs, y, ref in zip(self.batches, self.labels, self.references, strict=True):
            out = self.worker.run([inputs[i] for i in self.order])
            task.update(out[0], y, ref[0])
            errors.update(ref, out)
        value = task.value
        return {
            "metric": value,
            "drop": compare.drop(self.kind, self.reference_metric, value, self.power),
            "agreement": errors.metrics()["agreement"],
            "latency_ms": self.worker.latency_ms([self.batches[0][i] for i in self.order]),
            "size_bytes": len(content),
        }


def fix(
    model: str | os.PathLike[str] | sources.Source,
    *,
    data: Any,
    calibration_data: Any = None,
    max_drop: float | None = 1.0,
    min_agreement: float | None = None,
    prefer: str = "size",
    integer_only: bool = False,
    qat_epochs: int = 0,
    out: str | os.PathLike[str] | None = None,
    inputs: list[str] | None = None,
    outputs: list[str] | None = None,
    input_shapes: list[tuple[int, ...]] | None = None,
    calibration_samples: int = 200,
    max_samples: int | None = None,
    seed: int = 0,
    unsafe: bool = False,
    image_size: tuple[int, int] | None = None,
    scale: float | None = None,
    label_column: int | None = None,
    progress: pipeline.Progress | None = None,
) -> FixResult:
    """Search recipes and selective quantization for the best model within the budget and
    write it to ``out`` (the best model found is written even when none meets the budget).
    ``integer_only`` leaves out float16, dynamic and float32 (int8 with a few layers kept in
    float stays in). ``qat_epochs`` adds quantization-aware fine-tuning on the labelled search
    rows (Keras 2 ``.h5`` models: tfmot does not support Keras 3)."""
    if prefer not in ("size", "latency"):
        raise UsageError(f"--prefer {prefer!r}: expected size or latency")
    budget = Budget(max_drop, min_agreement)
    progress = progress or pipeline._no_progress
    source = sources.load(
        model, inputs=inputs, outputs=outputs, input_shapes=input_shapes, unsafe=unsafe
    )
    if not source.convertible:
        source.close()
        raise UsageError(f"fix needs a TensorFlow model to convert, not {source.path}")
    worker = Worker("fix")
    bench: _Bench | None = None
    try:
        prepared = pipeline.prepare_data(
            source,
            data,
            calibration_data,
            True,
            calibration_samples=calibration_samples,
            max_samples=max_samples,
            seed=seed,
            image_size=image_size,
            scale=scale,
            label_column=label_column,
        )
        rows = prepared.eval_rows
        if len(rows) < 2:
            raise UsageError("fix needs at least 2 evaluation samples (search and held-out)")
        cut = np.random.default_rng(seed + 1).permutation(len(rows))
        search_rows = np.sort(rows[cut[: max(1, int(len(rows) * SEARCH_SHARE))]])
        held_rows = np.sort(rows[cut[max(1, int(len(rows) * SEARCH_SHARE)) :]])
        kind = compare.task_kind(prepared.binding.dataset.labels)

        def bench_for(selected: np.ndarray) -> _Bench:
            batches, labels = [], []
            for x, y in prepared.binding.batches(selected, pipeline.BATCH_ROWS):
                batches.append(x)
                labels.append(y)
            references = [source.predict(b) for b in batches]
            names = [i.name for i in worker.info.inputs]
            order = pipeline.input_order(source.io.input_names, names)
            return _Bench(worker, batches, labels, references, kind, order)

        skipped: dict[str, str] = {}
        calibrated: bytes | None = None
        try:
            calibrated = recipes.convert(
                source, recipes.RECIPES["int8"], prepared.calibration, calibrate_only=True
            )
        except ConversionError as exc:  # no int8 for this model: the other recipes remain
            skipped["int8"] = str(exc)
        worker.load(calibrated or recipes.convert(source, recipes.RECIPES["float32"]))
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

        for name in INTEGER_RECIPES if integer_only else PLAIN_RECIPES:
            if name in skipped:
                continue
            try:
                if name.startswith("int8"):
                    if calibrated is None:
                        continue
                    content = recipes.requantize(calibrated, per_channel=name == "int8")
                else:
                    content = recipes.convert(source, recipes.RECIPES[name], prepared.calibration)
                trial(name, content)
            except (ConversionError, InterpreterError) as exc:  # the model cannot take it
                skipped[name] = str(exc)
        if qat_epochs > 0:
            progress(f"quantization-aware training ({qat_epochs} epochs)", 0, 1)
            x, y = prepared.binding.take(search_rows)
            if y is None or len(x) != 1:
                raise UsageError("--qat-epochs needs labelled data (y) for a single-input model")
            try:
                trial("qat", sources.quantization_aware(source, x[0], y, qat_epochs))
            except (ConversionError, InterpreterError) as exc:
                skipped["qat"] = str(exc)
        if not trials:
            raise ConversionError(f"no recipe could convert the model: {skipped}")
        search_trials = 0
        if trials[0].recipe == "int8" and not trials[0].within_budget:
            ranking = sensitivity.layer_sensitivity(
                calibrated,
                [[b[i] for i in bench.order] for b in bench.batches],
                bench.references,
                source.layer_names(),
            )
            groups = [(s.layer, s.keep_float) for s in ranking if s.share_removed > 0]
            before = len(trials)
            _selective_search(groups, calibrated, trial, budget)
            search_trials = len(trials) - before
        winner, reason, met = _choose(trials, budget, prefer)
        trials = _mark_pareto(trials, prefer)
        winner = next(t for t in trials if t.name == winner.name)
        content = contents[winner.name]
        worker = bench.worker  # renewed if a trial crashed the first one
        held = bench_for(held_rows).measure(content)
        written = None
        if out is not None:
            written = str(pipeline.write_atomic(Path(out), content))
        progress("explaining before and after", 0, 1)
        plain = contents.get("int8", contents[trials[0].name])
        before, after = _before_after(source, prepared, held_rows, plain, content)
    finally:
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
        before=before,
        after=after,
        skipped=skipped,
    )


def _before_after(
    source: sources.Source,
    prepared: pipeline.PreparedData,
    rows: np.ndarray,
    plain: bytes,
    winner: bytes,
) -> tuple[tuple, tuple]:
    """``explain``'s findings for plain int8 and for the winner, on the held-out rows."""
    import tempfile

    from .explain import explain

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


def _selective_search(
    groups: list[tuple[str, tuple[str, ...]]],
    calibrated: bytes,
    trial: Callable[..., Trial],
    budget: Budget,
) -> Trial | None:
    """Fewest float groups that meet the budget: bisect over the sensitivity-ranked prefix,
    then try dropping each kept group. Returns the best trial (None if even all fail)."""

    def build(chosen: list[int]) -> Trial:
        keep = [groups[i][0] for i in chosen]
        names = [n for i in chosen for n in groups[i][1]]
        return trial("int8", recipes.requantize(calibrated, names), keep)

    lo, hi = 1, len(groups)
    if not groups:
        return None
    best = build(list(range(hi)))
    if not best.within_budget:
        return None
    while lo < hi:  # invariant: the prefix of length hi meets the budget
        mid = (lo + hi) // 2
        t = build(list(range(mid)))
        if t.within_budget:
            hi, best = mid, t
        else:
            lo = mid + 1
    kept = list(range(hi))
    for i in list(kept):  # pruning: a kept group the budget does not need goes
        if len(kept) == 1:
            break
        t = build([k for k in kept if k != i])
        if t.within_budget:
            kept.remove(i)
            best = t
    return best


def _choose(trials: list[Trial], budget: Budget, prefer: str) -> tuple[Trial, str, bool]:
    cost = (lambda t: t.size_bytes) if prefer == "size" else (lambda t: t.latency_ms)
    within = [t for t in trials if t.within_budget]
    unit = "bytes" if prefer == "size" else "ms"
    if within:
        best = min(within, key=lambda t: (cost(t), t.drop if t.drop is not None else 0))
        return (
            best,
            (
                f"the {'smallest' if prefer == 'size' else 'fastest'} of "
                f"{len(within)} model(s) within the budget ({cost(best):.4g} {unit}, "
                f"drop {best.drop:.2f})"
            ),
            True,
        )
    best = min(trials, key=lambda t: (t.drop if t.drop is not None else np.inf, cost(t)))
    return best, "no model meets the budget: this is the most accurate one found", False


def _mark_pareto(trials: list[Trial], prefer: str) -> list[Trial]:
    """Trials no other trial beats on both cost and drop."""
    import dataclasses

    cost = (lambda t: t.size_bytes) if prefer == "size" else (lambda t: t.latency_ms)

    def drop(t: Trial) -> float:
        return t.drop if t.drop is not None else np.inf

    out = []
    for t in trials:
        dominated = any(
            cost(o) <= cost(t) and drop(o) <= drop(t) and (cost(o) < cost(t) or drop(o) < drop(t))
            for o in trials
        )
        out.append(dataclasses.replace(t, pareto=not dominated))
    return out


@dataclass(frozen=True)
class QatComparison:
    """Seed 003: the QAT model converted directly against its weights copied into the float
    model and post-training quantized, over resampled evaluation batches."""

    model: str
    epochs: int
    batch_size: int
    accuracies: dict[str, tuple[float, ...]]  # reference / qat / copied → one per resample
    agreement: dict[str, float]  # with the reference, over all evaluation samples
    train_samples: int
    eval_samples: int

    def summary(self) -> dict[str, dict[str, float]]:
        return {
            name: {
                "mean": float(np.mean(v)),
                "std": float(np.std(v)),
                "min": float(np.min(v)),
                "max": float(np.max(v)),
            }
            for name, v in self.accuracies.items()
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "train_samples": self.train_samples,
            "eval_samples": self.eval_samples,
            "summary": self.summary(),
            "agreement": self.agreement,
            "accuracies": {k: list(v) for k, v in self.accuracies.items()},
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def __rich__(self) -> Any:
        from rich.table import Table

        table = Table(
            title=f"compare-qat — accuracy over {len(self.accuracies['qat'])} "
            f"resampled batches of {self.batch_size}",
            title_justify="left",
        )
        for col in ("model", "mean", "std", "min", "max", "agreement"):
            table.add_column(col, justify="left" if col == "model" else "right")
        for name, s in self.summary().items():
            table.add_row(
                name,
                f"{100 * s['mean']:.2f}%",
                f"{100 * s['std']:.2f}",
                f"{100 * s['min']:.2f}%",
                f"{100 * s['max']:.2f}%",
                f"{self.agreement.get(name, 1.0):.4f}",
            )
        return table


def compare_qat(
    model: str | os.PathLike[str] | sources.Source,
    *,
    data: Any,
    epochs: int = 1,
    resamples: int = 20,
    batch_size: int = 100,
    max_samples: int | None = None,
    seed: int = 0,
    progress: pipeline.Progress | None = None,
) -> QatComparison:
    """Fine-tune with QAT on half of the labelled ``data``; on the other half, measure the QAT
    model converted directly and its weights copied into the float model and calibrated
    again, over ``resamples`` batches drawn with replacement (the spread seed 003 plotted)."""
    progress = progress or pipeline._no_progress
    source = sources.load(model)
    try:
        prepared = pipeline.prepare_data(
            source, data, None, False, max_samples=max_samples, seed=seed
        )
        if compare.task_kind(prepared.binding.dataset.labels) != compare.ACCURACY:
            raise UsageError("compare-qat needs integer class labels (y) in --data")
        if len(source.io.input_names) != 1:
            raise UsageError("compare-qat supports single-input models")
        rows = prepared.eval_rows
        order = np.random.default_rng(seed).permutation(len(rows))
        train, held = np.sort(rows[order[: len(rows) // 2]]), np.sort(rows[order[len(rows) // 2 :]])
        (x_train,), y_train = prepared.binding.take(train)
        progress(f"quantization-aware training ({epochs} epochs)", 0, 1)
        direct, copied = sources.quantization_aware(
            source, x_train, y_train, epochs, with_copy=True
        )
        (x_eval,), y_eval = prepared.binding.take(held)
        predictions = {"reference": compare.classes(source.predict([x_eval])[0])}
        for name, content in (("qat", direct), ("copied", copied)):
            with Worker(name, content) as worker:
                predictions[name] = compare.classes(worker.run([x_eval])[0])
    finally:
        source.close()
    draws = np.random.default_rng(seed + 2).integers(0, len(y_eval), (resamples, batch_size))
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
        batch_size,
        accuracies,
        agreement,
        len(train),
        len(held),
    )
