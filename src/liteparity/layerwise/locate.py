"""``locate`` (module ``per_layer``): which layer loses the accuracy, in Keras names.

For a recipe liteparity converts, the model is calibrated once and quantized into TF's debug
model, whose NumericVerify ops give each op's **local** error (QuantizationDebugger's
definition); every tensor is also compared with the float32 TFLite model run end to end
(**propagated** error), and for Keras sources each layer's float32 TFLite output with Keras's
own (**conversion**). Batches stream through worker processes, one per core; statistics are
running sums. The sensitivity experiment re-quantizes with one layer group in float at a time.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from liteparity._tf import debugging
from liteparity.convert.process import Converter
from liteparity.convert.produce import Producer
from liteparity.convert.recipes import RECIPES, Recipe, resolve
from liteparity.data.binding import Binding, sample_rows
from liteparity.data.prepare import BATCH_ROWS, PreparedData, prepare_data
from liteparity.errors import UsageError
from liteparity.layerwise.probe import LayerStats, ProbeLayers, Target
from liteparity.layerwise.sensitivity import LayerSensitivity, SensitivityRun, layer_sensitivity
from liteparity.measure.evaluate import input_order
from liteparity.measure.resume import (
    file_fingerprint,
    fingerprint,
    keep_conversions,
    model_file,
    rows_fingerprint,
    runs_cache,
    versions,
)
from liteparity.measure.stats import ErrorStats
from liteparity.progress import Progress, no_progress
from liteparity.reference.base import Source, SourceFacts, read_tflite
from liteparity.reference.described import DescribedSource
from liteparity.reference.loader import load_spec
from liteparity.reference.names import keras_layer
from liteparity.reference.tflite import TFLiteSource
from liteparity.results.locate import LayerRecord, LocateResult
from liteparity.runtime.engine import Engine, open_engine
from liteparity.runtime.jobs import BaseWorker, Reply
from liteparity.runtime.memory import rows_within
from liteparity.runtime.model_jobs import ReadTensors, RunModel
from liteparity.runtime.worker import Worker
from liteparity.specs import DataSpec, LocateOptions, ModelSpec, from_keywords

#: A layer whose propagated SQNR falls at least this many dB below every layer's before it
#: can be where the error jumps (6 dB: the error amplitude doubled); the largest such fall is.
JUMP_DB = 6.0

#: Samples for the sensitivity experiment (one quantize+evaluate per layer group).
SENSITIVITY_SAMPLES = 256

#: Samples for the Keras → TFLite float32 comparison of every layer output, at most, and the
#: memory their layer outputs may take in each of Keras and TFLite.
CONVERSION_SAMPLES = 32

CONVERSION_BUDGET_BYTES = 64 << 20


def locate(
    model: ModelSpec | str | os.PathLike[str] | Source,
    data: DataSpec | Any,
    options: LocateOptions | None = None,
    *,
    progress: Progress | None = None,
    **keywords: Any,
) -> LocateResult:
    """Per-layer local, propagated and conversion error of ``recipe`` (or of ``candidate``,
    a ``.tflite`` you have), with each layer's Keras name and sensitivity. Takes the specs,
    or a model and data with keywords naming fields of ``ModelSpec``, ``DataSpec`` and
    ``LocateOptions`` (``locate("model.keras", data="eval.npz", recipe="int8")``)."""
    model, data, options = from_keywords("locate", model, data, options, LocateOptions, keywords)
    progress = progress or no_progress
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    kept = _Kept.open(model) if options.resume else None
    # Started first (its TensorFlow import overlaps with this process's work; with
    # ``resume``, only once something is not in the cache): a converter crash is then one
    # error line, not the end of the process.
    engine = open_engine(options, debug=debugging())  # a missing Ray fails before any work
    converter = Converter(model, start=kept is None, engine=engine)
    try:
        source = _load(model, converter, kept)
    except BaseException:
        converter.close()
        raise
    pool: list[BaseWorker] = []
    try:
        # Boot the probe workers now: they start while this process converts.
        if options.workers is None:
            pool += engine.pool("locate")
        else:
            pool += [Worker(f"locate {i}") for i in range(options.workers)]
        prepared, quant, name, twin, calibrated = _models(
            source, data, options, converter, progress, kept
        )
        timings["convert"] = time.perf_counter() - clock
        clock = time.perf_counter()
        targets, order = _start_probes(quant, twin, source, pool)
        timings["load"] = time.perf_counter() - clock
        clock = time.perf_counter()
        stats = _probe(prepared, order, pool, progress, engine)
        timings["layers"] = time.perf_counter() - clock
        clock = time.perf_counter()
        layer_names = source.layer_names()
        picked = prepared.eval_rows[
            sample_rows(len(prepared.eval_rows), SENSITIVITY_SAMPLES, data.seed)
        ]
        run = (
            _ranking(
                source,
                prepared,
                picked,
                order,
                calibrated,
                layer_names,
                options,
                progress,
                pool,
                stats,
                converter,
                engine,
            )
            if calibrated is not None and options.with_sensitivity
            else None
        )
        ranking = list(run.ranking) if run is not None else []
        timings["sensitivity"] = time.perf_counter() - clock
        clock = time.perf_counter()
        rows = picked[:CONVERSION_SAMPLES]

        def compare() -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
            return conversion_by_layer(source, twin, prepared.binding, rows, pool[0])

        conversion, aliases = kept.conversion(twin, prepared, rows, compare) if kept else compare()
        timings["conversion_by_layer"] = time.perf_counter() - clock
    finally:
        converter.close()
        source.close()
        for worker in pool:
            worker.close()
    layers = _records(targets, stats, layer_names, aliases, ranking, conversion)
    unmatched = tuple(r.tensor_name for r in layers if r.keras_layer is None)
    return LocateResult(
        source.path,
        name,
        len(prepared.eval_rows),
        layers,
        unmatched if layer_names else (),
        tuple(s.to_dict() for s in ranking),
        timings,
        run.to_dict() if run is not None else None,
        engine.describe(len(prepared.eval_rows), BATCH_ROWS),
    )


class _Kept:
    """What ``resume`` keeps of a locate run for the next one on the same model file: the
    model's facts and the Keras→TFLite comparison of each layer (its conversions are kept
    by ``keep_conversions``, as every command's are), so that a repeated run imports
    TensorFlow nowhere and measures only the quantized model's layers again."""

    def __init__(self, model: ModelSpec, file_key: str) -> None:
        self.model, self.file_key = model, file_key
        self.cache = runs_cache()
        settings = (model.inputs, model.outputs, model.input_shapes, model.unsafe)
        self.facts_key = fingerprint(file_key, settings, versions(), "facts")

    @classmethod
    def open(cls, model: ModelSpec) -> _Kept | None:
        """None for a model with nothing stable to key on (an in-memory ``Source``)."""
        path = model_file(model)
        return cls(model, file_fingerprint(path)) if path is not None else None

    def facts(self, describe: Callable[[], SourceFacts]) -> SourceFacts:
        stored = self.cache.result(self.facts_key)
        if stored is not None:  # where the file is now, whatever its name was then
            return dataclasses.replace(SourceFacts.from_dict(stored), path=str(self.model.model))
        facts = describe()
        self.cache.put_result(self.facts_key, facts.to_dict())
        return facts

    def conversion(
        self,
        twin: bytes | None,
        prepared: PreparedData,
        rows: np.ndarray,
        compare: Callable[[], tuple[dict[str, dict[str, Any]], dict[str, str]]],
    ) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
        """``compare()`` (``conversion_by_layer``), or its result from an earlier run on
        the same model, float twin and rows."""
        data = rows_fingerprint(prepared.binding.columns, rows, None)
        key = fingerprint(self.facts_key, twin or b"", data, "conversion")
        stored = self.cache.result(key)
        if stored is not None:
            return stored["layers"], stored["aliases"]
        layers, aliases = compare()
        self.cache.put_result(key, {"layers": layers, "aliases": aliases})
        return layers, aliases


def _load(model: ModelSpec, converter: Converter, kept: _Kept | None) -> Source:
    """The model to examine. A TensorFlow model file is loaded in the converter process
    only (``DescribedSource``): this process needs no TensorFlow of its own. A ``.tflite``
    (no TensorFlow needed) or an in-memory ``Source`` is loaded here."""
    path = model.model
    if not isinstance(path, str | os.PathLike) or str(path).lower().endswith(".tflite"):
        return load_spec(model)
    facts = kept.facts(converter.describe) if kept else converter.describe()
    return DescribedSource(facts, converter.layer_outputs)


def _models(
    source: Source,
    data: DataSpec,
    options: LocateOptions,
    converter: Converter,
    progress: Progress,
    kept: _Kept | None,
) -> tuple[PreparedData, bytes, str, bytes | None, bytes | None]:
    """The data, the model to examine (the user's ``--candidate`` or the recipe's, and its
    name), its float twin, and the calibrated model sensitivity re-quantizes (None when there
    is none); with ``kept``, the conversions come from the cache where an earlier run made
    them."""
    recipe, candidate = options.recipe, options.candidate
    unbuildable = RECIPES.get(recipe)
    if candidate is None and unbuildable and (unbuildable.legacy or unbuildable.needs_training):
        raise UsageError(
            f"locate cannot build recipe {recipe!r}: give an int8, int8-io, uint8-io, "
            "int16x8, dynamic, float16 or aeq:<name> recipe, or --candidate FILE.tflite"
        )
    chosen = resolve([recipe], source, None)[0] if candidate is None else None
    prepared = prepare_data(source, data, chosen is not None and chosen.needs_calibration)
    if kept:
        keep_conversions(converter, kept.model, prepared, kept.file_key)
    progress("converting", 0, 1)
    if chosen is None:
        assert candidate is not None
        twin = _float_twin(source, converter)
        return prepared, read_tflite(candidate), f"tflite:{Path(candidate).name}", twin, None
    quant, twin, calibrated = _build(source, chosen, prepared, progress, converter)
    return prepared, quant, recipe, twin, calibrated


def _ranking(
    source: Source,
    prepared: PreparedData,
    picked: np.ndarray,
    order: list[int],
    calibrated: bytes,
    layer_names: frozenset[str],
    options: LocateOptions,
    progress: Progress,
    pool: list[BaseWorker],
    stats: dict[str, LayerStats],
    converter: Converter,
    engine: Engine,
) -> SensitivityRun:
    """The sensitivity experiment on the picked rows: each layer group kept in float, on the
    probe workers, against the float32 model (the calibrated one), the groups whose ops
    added the most noise first; each variant re-quantized in the converter process."""
    progress("sensitivity per layer", 0, 0)
    batches = [x for x, _ in prepared.binding.batches(picked, BATCH_ROWS)]
    ordered = [[b[i] for i in order] for b in batches]
    return layer_sensitivity(
        calibrated,
        ordered,
        None,
        layer_names,
        progress,
        source.io.output_names,
        options.rank_output,
        lambda keep: converter.requantize(calibrated, keep),
        pool=pool,
        engine=engine,
        prior=local_noise(stats),
    )


def local_noise(stats: dict[str, LayerStats]) -> dict[str, float]:
    """Each tensor's local error power relative to its signal (``10^(−SQNR/10)``; ``inf`` for
    error on an all-zero tensor: measured first): the noise its own quantization adds, by
    tensor name."""
    return {name: s.local.noise_ratio for name, s in stats.items() if s.local.num_elements}


def _build(
    source: Source,
    recipe: Recipe,
    prepared: PreparedData,
    progress: Progress,
    converter: Converter,
) -> tuple[bytes, bytes | None, bytes | None]:
    """``(quantized model, its float twin, the calibrated model)`` for ``recipe``; the
    calibrated model (int8 recipes of the TF converter) is what sensitivity re-quantizes, and
    computes exactly what the float32 recipe does, so it is the twin as well."""
    if recipe.engine == "aeq":
        producer = Producer(
            source, batches=prepared.calibration_batches, progress=progress, converter=converter
        )
        return producer.make(recipe), producer.float_twin(), None
    if recipe.activations == "int8":
        calibrated = converter.convert(source, recipe, prepared.calibration, calibrate_only=True)
        return converter.requantize(calibrated, numeric_verify=True), calibrated, calibrated
    quant = converter.convert(source, recipe, prepared.calibration)
    return quant, _float_twin(source, converter), None


def _float_twin(source: Source, converter: Converter) -> bytes | None:
    """The float32 TFLite model the quantized one is compared with, tensor by tensor."""
    if isinstance(source, TFLiteSource):
        return source.content
    if source.convertible:
        return converter.convert(source, RECIPES["float32"])
    return None


def _start_probes(
    quant: bytes, twin: bytes | None, source: Source, pool: list[BaseWorker]
) -> tuple[list[Target], list[int]]:
    """Load the quantized model and its float twin into every probe worker at once; the
    targets to report and the order the workers take the inputs in."""
    starts = [worker.start(ProbeLayers(quant, twin)) for worker in pool]
    plans = [start.get() for start in starts]  # the same plan in every worker
    targets, inputs = plans[0]
    return targets, input_order(source.io.input_names, [i.name for i in inputs])


def _probe(
    prepared: PreparedData,
    order: list[int],
    pool: list[BaseWorker],
    progress: Callable[[str, int, int], None],
    engine: Engine,
) -> dict[str, LayerStats]:
    """Stream the evaluation rows through the probe workers (a process per core locally,
    ``shards`` actors on Ray), alternating batches, and merge their statistics in the
    workers' order: a Ray run's sums are those of a local run with as many probe processes
    as shards (float64 merges in another grouping may differ in the last bits)."""
    slots = engine.batches(held=len(pool))  # put in turn: batch k in slot k mod len(pool)
    try:
        busy: list[Reply | None] = [None] * len(pool)
        done, rows = 0, prepared.eval_rows
        for k, (batch, _) in enumerate(prepared.binding.batches(rows, BATCH_ROWS)):
            w = k % len(pool)
            previous = busy[w]
            if previous is not None:
                previous.get()  # the worker is done reading its slot
            busy[w] = pool[w].feed(slots.put(batch).select(order))
            done += len(batch[0])
            progress("comparing layers", done, len(rows))
        merged: dict[str, LayerStats] = {}
        for worker in pool:
            for key, value in worker.result().get().items():
                merged[key] = merged[key].merge(value) if key in merged else value
        return merged
    finally:
        slots.close()


def conversion_by_layer(
    source: Source,
    twin: bytes | None,
    binding: Binding,
    rows: np.ndarray,
    worker: BaseWorker | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Keras fp32 → TFLite fp32, per Keras layer, in execution order: each layer's output
    against the float32 TFLite tensor that layer produced last, keyed by that tensor's name
    (with ``layer`` in each entry). Also returns model-output tensor names
    (``StatefulPartitionedCall:0``) → the Keras layer that produces that output."""
    if not source.compares_layers or twin is None or not len(rows):
        return {}, {}
    own = worker is None
    worker = Worker("conversion") if worker is None else worker
    try:
        info = worker.start(RunModel(twin, anatomy=True)).get()
        order = input_order(source.io.input_names, [i.name for i in info.inputs])
        anatomy = info.anatomy
        # Every layer output of these samples is held twice (Keras, TFLite): a large model gets
        # fewer samples (float32 against float32 differs systematically, if at all).
        fits = rows_within(CONVERSION_BUDGET_BYTES, anatomy.bytes_per_sample(), len(rows))
        inputs = binding.take(rows[:fits])[0]
        keras_out = source.layer_outputs(inputs)
        last: dict[str, int] = {}
        for t in anatomy.activations():
            layer = keras_layer(t.name, keras_out)
            if layer is not None and t.dtype == "float32":
                last[layer] = t.index
        # A layer that produces a model output ends in that output (a fused softmax, say).
        outputs = [o.index for o in info.outputs]
        last.update(zip(source.output_layers(), outputs, strict=False))
        job = ReadTensors(twin, tuple(last.values()))
        _, (values,), _ = worker.run(job, [[inputs[i] for i in order]])
    finally:
        if own:
            worker.close()
    aliases = {
        anatomy.tensor(index).name: layer
        for layer, index in zip(source.output_layers(), outputs, strict=False)
    }
    position = {t.index: k for k, t in enumerate(anatomy.activations())}
    out = {}
    for layer, index in sorted(last.items(), key=lambda item: position.get(item[1], 0)):
        got, want = values.get(index), keras_out[layer]
        if got is None or got.shape != want.shape:
            continue
        stats = ErrorStats()
        stats.update(got - want, want)
        out[anatomy.tensor(index).name] = {"layer": layer, **stats.to_dict()}
    return out, aliases


def _sqnr(s: LayerStats, t: Target) -> float | None:
    """A layer's SQNR: propagated (against the float twin) when measured, else local."""
    if t.twin is not None and s.propagated.num_elements:
        value = s.propagated.to_dict().get("sqnr_db")
    elif t.shadow is not None and s.local.num_elements:
        value = s.local.to_dict().get("sqnr_db")
    else:
        value = None
    return value if isinstance(value, float) and math.isfinite(value) else None


def first_jump(layers: list[tuple[str, float | None]]) -> str | None:
    """Where the error jumps, given each layer's SQNR in execution order (None: not
    measured): the layer whose SQNR falls furthest below every layer's before it (at least
    ``JUMP_DB``). Every quantized layer costs a little; the layer that costs most at once is
    where the signal collapses (a LayerNormalization under int8), even when an earlier layer
    already cost more than ``JUMP_DB``."""
    lowest, best, where = math.inf, JUMP_DB, None
    for name, sqnr in layers:
        if sqnr is None:
            continue
        if math.isfinite(lowest) and lowest - sqnr >= best:
            best, where = lowest - sqnr, name
        lowest = min(lowest, sqnr)
    return where


def _records(
    targets: list[Target],
    stats: dict[str, LayerStats],
    layer_names: frozenset[str],
    aliases: dict[str, str],
    ranking: list[LayerSensitivity],
    conversion: dict[str, dict[str, Any]],
) -> tuple[LayerRecord, ...]:
    share: dict[str, float] = {}
    for sensitivity in ranking:
        for tensor in sensitivity.keep_float:
            share[tensor] = max(share.get(tensor, 0.0), sensitivity.share_removed)
    records = []
    jump_at = first_jump([(t.name, _sqnr(stats.get(t.name, LayerStats()), t)) for t in targets])
    for t in targets:
        s = stats.get(t.name, LayerStats())
        local = s.local.to_dict() if t.shadow is not None and s.local.num_elements else None
        propagated = (
            s.propagated.to_dict() if t.twin is not None and s.propagated.num_elements else None
        )
        q = t.quantization
        scale = float(q.scale[0]) if q is not None else None
        mse = (local or propagated or {}).get("mean_squared_error")
        records.append(
            LayerRecord(
                tensor_name=t.name,
                op=t.op,
                tensor_index=t.index,
                keras_layer=keras_layer(t.name, layer_names) or aliases.get(t.name),
                local=local,
                propagated=propagated,
                conversion=conversion.get(t.name),
                scale=scale,
                zero_point=int(q.zero_point[0]) if q is not None else None,
                rmse_over_scale=math.sqrt(mse) / scale if scale and mse is not None else None,
                saturation=s.saturated / s.count if s.count and q is not None else None,
                sensitivity=share.get(t.name),
                jump=t.name == jump_at,
            )
        )
    return tuple(records)
