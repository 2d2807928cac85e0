"""``explain``: ``check`` plus the measurements that name causes, then the findings.

Two steps. Run: on top of the evaluation stream the ``_Gathering`` hook measures the float32
noise floor (the reference run again in float64 on the same batches), how the data sits in
each input's quantized range, and the values of every intermediate tensor of each candidate
(and of the float32 model, against the candidate's ranges) on a sample of the evaluation rows:
one ``Evidence`` per candidate. Diagnose: the rules turn each candidate's evidence, and nothing
else, into findings. With ``resume`` the evidence is kept beside each cached result, so a
repeated run diagnoses again from it without converting or running any model.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from liteparity.convert.process import Converter
from liteparity.convert.produce import Producer
from liteparity.convert.recipes import RECIPES, aeq_stable
from liteparity.data.binding import Binding, sample_rows
from liteparity.data.prepare import BATCH_ROWS, Calibration
from liteparity.diagnose.evidence import Evidence, NoiseFloor
from liteparity.diagnose.hurts import with_outputs
from liteparity.diagnose.rules import diagnose
from liteparity.diagnose.rules.verdict import may_be_material
from liteparity.errors import InternalError, LiteparityError, first_line
from liteparity.layerwise.locate import CONVERSION_SAMPLES, conversion_by_layer
from liteparity.layerwise.sensitivity import LayerSensitivity, layer_sensitivity
from liteparity.measure.check import run as run_pipeline
from liteparity.measure.evaluate import _Run, candidate_result, input_order
from liteparity.measure.metrics import ErrorAccumulator
from liteparity.measure.stats import CollectTensorStats, InputCoverage, TensorStats
from liteparity.progress import Progress
from liteparity.reference.base import Source
from liteparity.reference.graph_runner import GraphRunner, learned_ranges
from liteparity.reference.tflite import KernelTwin, TFLiteSource
from liteparity.results.check import CandidateResult, CheckResult, Finding
from liteparity.runtime.anatomy import (
    Anatomy,
    input_quantization,
    is_float_compute,
    quantized_activations,
)
from liteparity.runtime.engine import Engine
from liteparity.runtime.jobs import BaseWorker
from liteparity.runtime.worker import Worker
from liteparity.specs import CheckOptions, DataSpec, ModelSpec, from_keywords

#: Evaluation rows whose every intermediate tensor is read: enough for stable ranges and
#: shares, small enough to cost about as much as the evaluation itself.
STATS_SAMPLES = 256


def explain(
    model: ModelSpec | str | os.PathLike[str] | Source,
    data: DataSpec | Any,
    options: CheckOptions | None = None,
    *,
    progress: Progress | None = None,
    **keywords: Any,
) -> CheckResult:
    """``check``, with each candidate's findings (``.findings``) and the document's
    ``noise_floor``. Takes the same arguments as ``check``; with ``resume`` the findings of
    candidates measured before come from their saved evidence."""
    specs = from_keywords("explain", model, data, options, CheckOptions, keywords)
    gathering = _Gathering(progress)
    result = run_pipeline(*specs, hook=gathering, progress=progress)
    evidence = {c.name: ev for c in result.candidates if (ev := gathering.evidence(c)) is not None}
    return diagnosed(result, evidence, gathering.floor())


def diagnosed(
    result: CheckResult, evidence: Mapping[str, Evidence], floor: NoiseFloor
) -> CheckResult:
    """``result`` with each candidate's findings, computed from its evidence alone (a
    candidate without evidence, one that failed, gets none), after those measured outputs
    already gave (``non-finite``), and the noise floor."""
    rows = tuple(
        dataclasses.replace(
            c,  # check's own findings (decision-lost) come first, then the diagnosed ones
            findings=_named(c, evidence.get(c.name)),
        )
        for c in result.candidates
    )
    return dataclasses.replace(result, candidates=rows, noise_floor=floor.to_dict())


def _named(c: CandidateResult, evidence: Evidence | None) -> tuple[Finding, ...]:
    """Check's findings and the diagnosed ones, each naming the outputs it hurts."""
    if evidence is None:
        return c.findings
    found = (*c.findings, *diagnose(evidence))
    return tuple(with_outputs(f, evidence) for f in found)


def _output_tensors(run: _Run) -> tuple[tuple[str, int], ...]:
    """Each reference output's name and the index of the candidate tensor matched to it."""
    if run.info is None or run.outputs is None:
        return ()
    names = [o.name for o in run.outputs.outputs]
    indexes = [run.info.outputs[k].index for k in run.output_order]
    return tuple(zip(names, indexes, strict=True))


class _Gathering:
    """The ``check`` hook that gathers ``Evidence`` for every candidate it sees run, and takes
    back the evidence of candidates resumed from an earlier run."""

    anatomy = True  # every candidate's anatomy comes with its start

    def __init__(self, progress: Progress | None = None) -> None:
        self._progress = progress
        self._evidence: dict[str, Evidence] = {}
        self._started = False
        self._source: Source | None = None
        self._calibration: Calibration | None = None
        self._converter: Converter | None = None
        self._engine: Engine | None = None
        self._learned: dict[str, tuple[float, float]] = {}
        self._layers: frozenset[str] = frozenset()
        self._twin: GraphRunner | KernelTwin | None = None
        self._unavailable: str | None = None
        self._floor = ErrorAccumulator(classify=False)
        self._anatomy: dict[str, Anatomy] = {}
        self._coverage: dict[str, list[tuple[int, InputCoverage]]] = {}

    def evidence(self, row: CandidateResult) -> Evidence | None:
        """A candidate's evidence with its finished result (the metric's drop is known only
        once the reference's metric is); None for a candidate that was not measured."""
        ev = self._evidence.get(row.name)
        return None if ev is None else dataclasses.replace(ev, result=row)

    def kept(self, row: CandidateResult) -> dict[str, Any] | None:
        ev = self.evidence(row)
        return None if ev is None else ev.to_dict()

    def restore(self, name: str, stored: dict[str, Any]) -> bool:
        try:
            self._evidence[name] = Evidence.from_dict(stored)
        except (KeyError, TypeError, ValueError, LiteparityError):
            return False  # written in another format: measure again
        return True

    def floor(self) -> NoiseFloor:
        """The floor measured in this run or, when nothing ran (every candidate resumed), the
        one kept with the evidence."""
        kept = next((ev.floor for ev in self._evidence.values() if ev.floor is not None), None)
        if self._started or kept is None:
            return self._measured_floor()
        return kept

    def start(
        self,
        source: Source | None,
        binding: Binding,
        calibration: Calibration | None,
        converter: Converter,
        engine: Engine,
    ) -> None:
        self._started = True
        self._source, self._calibration = source, calibration
        self._converter, self._engine = converter, engine
        if source is None:
            self._unavailable = "no reference model"
            return
        self._layers = source.layer_names()
        if source.convertible:
            self._learned = learned_ranges(source.frozen_graph()[0])
        try:
            self._twin = source.float64_twin()
        except LiteparityError as exc:
            self._unavailable = str(exc)

    def ready(self, runs: list[_Run]) -> None:
        for run in runs:
            if run.worker is None or run.info is None or run.info.anatomy is None:
                continue
            anatomy = run.info.anatomy
            self._anatomy[run.candidate.name] = anatomy
            coverage = []
            for info, ref_index in zip(run.info.inputs, run.order, strict=True):
                q = input_quantization(anatomy, info.index)
                if q is not None and not q.per_channel:
                    coverage.append((ref_index, InputCoverage(info.name, q)))
            self._coverage[run.candidate.name] = coverage

    def batch(
        self,
        inputs: list[np.ndarray],
        reference: list[np.ndarray] | None,
        outputs: list[tuple[_Run, list[np.ndarray]]],
    ) -> None:
        if self._twin is not None and reference is not None:
            try:
                truth = self._twin.predict(inputs)
            except LiteparityError as exc:  # the twin cannot run these data: no floor
                self._twin.close()
                self._twin, self._unavailable = None, first_line(exc)
            else:
                self._floor.update([t.astype(np.float64) for t in truth], reference)
        for run, _ in outputs:
            for ref_index, cov in self._coverage.get(run.candidate.name, []):
                cov.update(inputs[ref_index])

    def _measured_floor(self) -> NoiseFloor:
        m = self._floor.metrics()
        rms = math.sqrt(self._floor.sum_sq_ref / self._floor.values) if self._floor.values else None
        method = getattr(self._twin, "method", "float64")
        return NoiseFloor(
            m["rmse"], m["max_abs_error"], rms, self._floor.samples, self._unavailable, method
        )

    def finish(self, runs: list[_Run], binding: Binding, rows: np.ndarray) -> None:
        picked = rows[sample_rows(len(rows), STATS_SAMPLES)]
        batches = [x for x, _ in binding.batches(picked, BATCH_ROWS)]
        calibrated = self._calibrated(runs)
        float_model = self._float_model(runs, calibrated)
        floor = self._measured_floor()
        results = {
            run.candidate.name: candidate_result(run, _task_kind(run), None, None)  # evidence()
            for run in runs
            if run.worker is not None
        }
        # The per-layer experiment is the lead for a loss that may be material; a candidate
        # that cannot have one is spared it (its ranking is ``locate``'s to give).
        lossy = {name for name, r in results.items() if may_be_material(r)}
        sensitivity = self._sensitivity(
            [r for r in runs if r.candidate.name in lossy], batches, calibrated
        )
        try:
            for run in runs:
                anatomy = self._anatomy.get(run.candidate.name)
                if run.worker is None or anatomy is None:
                    continue
                stats = float_stats = None
                try:
                    if any(t.quantized for t in anatomy.activations()):
                        job = CollectTensorStats(
                            run.candidate.content,  # type: ignore[arg-type]
                            run.threads,
                            run.batch_size or 1,
                        )
                        stats = self._tensor_stats(run.worker, job, batches, run.order)
                    if float_model is not None and not is_float_compute(anatomy):
                        worker, content = float_model
                        job = CollectTensorStats(content, bounds=_ranges(anatomy))
                        float_stats = self._tensor_stats(worker, job, batches)
                except LiteparityError as exc:  # e.g. a custom op only a delegate resolves
                    anatomy = _unread(anatomy, f"tensor values not read ({first_line(exc)})")
                conversion: tuple[tuple[str, float], ...] = ()
                if is_float_compute(anatomy) and run.candidate.content is not None:
                    layers, _ = (
                        conversion_by_layer(
                            self._source,
                            run.candidate.content,
                            binding,
                            picked[:CONVERSION_SAMPLES],
                        )
                        if self._source
                        else ({}, {})
                    )
                    conversion = tuple((c["layer"], c["sqnr_db"]) for c in layers.values())
                evidence = Evidence(
                    result=results[run.candidate.name],
                    anatomy=anatomy,
                    inputs=tuple(cov for _, cov in self._coverage.get(run.candidate.name, [])),
                    stats=stats,
                    float_stats=float_stats,
                    floor=floor,
                    sensitivity=sensitivity if _int8(run) and run.candidate.name in lossy else (),
                    learned_ranges=self._learned,
                    layers=self._layers,
                    conversion=conversion,
                    output_tensors=_output_tensors(run),
                )
                self._evidence[run.candidate.name] = evidence
        finally:
            if float_model is not None:
                float_model[0].close()
            if self._twin is not None:
                self._twin.close()

    def _calibrated(self, runs: list[_Run]) -> bytes | None:
        """The calibrated float model the int8 recipes share (None without int8 recipes)."""
        if not any(_int8(r) and r.worker is not None for r in runs):
            return None
        if (
            self._source is None
            or self._calibration is None
            or self._converter is None
            or not self._source.convertible  # a .tflite's int8 comes from ai-edge-quantizer
        ):
            return None
        try:
            return self._converter.convert(
                self._source, RECIPES["int8"], self._calibration, calibrate_only=True
            )
        except LiteparityError:
            return None

    def _sensitivity(
        self,
        runs: list[_Run],
        batches: list[list[np.ndarray]],
        calibrated: bytes | None,
    ) -> tuple[LayerSensitivity, ...]:
        """Per-layer sensitivity of the int8 recipes (they share one calibration)."""
        int8 = [r for r in runs if _int8(r) and r.worker is not None]
        if not int8 or self._source is None:
            return ()
        make = None
        try:
            if not self._source.convertible and self._calibration is not None:
                calibrated, make = aeq_int8_variants(self._source, self._calibration)
            if calibrated is None:
                return ()
            ordered = [[b[i] for i in int8[0].order] for b in batches]
            return layer_sensitivity(
                calibrated,
                ordered,
                None,  # the float model's outputs: equal to the reference's up to rounding
                self._layers,
                self._progress,
                self._source.io.output_names,
                make=make,
                engine=self._engine,
            ).ranking
        except LiteparityError:
            return ()

    def _tensor_stats(
        self,
        worker: BaseWorker,
        job: CollectTensorStats,
        batches: list[list[np.ndarray]],
        order: list[int] | None = None,
    ) -> dict[str, TensorStats]:
        """Statistics of every intermediate tensor of ``job``'s model over ``batches``;
        ``order`` takes the model's inputs from the reference's (None: matched by name)."""
        inputs = worker.start(job).get()
        if order is None:
            order = input_order(
                self._source.io.input_names,  # type: ignore[union-attr]
                [i.name for i in inputs],
            )
        for x in batches:
            worker.feed([x[i] for i in order])  # answers nothing: sent without waiting
        stats: dict[str, TensorStats] = worker.result().get()
        return stats

    def _float_model(
        self, runs: list[_Run], calibrated: bytes | None
    ) -> tuple[Worker, bytes] | None:
        """A worker for the float32 TFLite twin whose tensors show the real (unclipped)
        values, and the twin: the float32 candidate when there is one, else the calibrated
        model (it computes the same), else a conversion of the reference."""
        content = next(
            (
                r.candidate.content
                for r in runs
                if r.candidate.recipe == "float32" and r.candidate.content is not None
            ),
            None,
        )
        content = content or calibrated
        if content is None and isinstance(self._source, TFLiteSource):
            content = self._source.content  # a float .tflite reference is its own twin
        try:
            if content is None:
                if self._source is None or not self._source.convertible or not self._converter:
                    return None
                content = self._converter.convert(self._source, RECIPES["float32"])
            return Worker("float32 (for tensor ranges)"), content
        except LiteparityError:
            return None


def _unread(anatomy: Anatomy, what: str) -> Anatomy:
    """``anatomy`` saying also that ``what`` could not be read: the findings that need it are
    left out, the check's numbers stay."""
    said = f"{anatomy.unread}; {what}" if anatomy.unread else what
    return dataclasses.replace(anatomy, unread=said)


def aeq_int8_variants(
    source: Source, calibration: Calibration
) -> tuple[bytes, Callable[[list[str]], bytes]]:
    """For a ``.tflite`` source, whose int8 comes from ai-edge-quantizer: the float model the
    layer groups come from, and AEQ's int8 with named ops kept in float (calibrated on the
    run's calibration samples). Each variant is loaded by the sensitivity worker alone: a
    model LiteRT refuses fails that measurement there, not this process."""
    samples = list(calibration())
    batch = [np.concatenate(column) for column in zip(*samples, strict=True)]
    producer = Producer(source, batches=[batch], check=lambda content, label: None)
    int8 = aeq_stable("int8")
    return producer.float_twin(), lambda keep: producer.make(int8, keep)


def _int8(run: _Run) -> bool:
    """Converted by one of our int8-activation recipes, so it can be re-quantized."""
    recipe = RECIPES.get(run.candidate.recipe or "")
    return recipe is not None and recipe.activations == "int8"


def _ranges(anatomy: Anatomy) -> dict[str, tuple[float, float]]:
    """The real range each quantized activation covers, by tensor name, widened by half a
    step on each side: a value within half a step of an edge rounds to the edge code with
    the ordinary rounding error (the zero-point nudge moves a calibrated range's edges by up
    to half a step), so only values beyond that are outside the range."""
    out = {}
    for t in quantized_activations(anatomy):
        q = t.quantization
        half = float(q.scale[0]) / 2  # type: ignore[union-attr]
        out[t.name] = (float(q.min[0]) - half, float(q.max[0]) + half)  # type: ignore[union-attr]
    return out


def _task_kind(run: _Run) -> str:
    """The task metric a run measured (each run has one from its start)."""
    if run.task is None:
        raise InternalError(f"{run.candidate.name} has no task metric")
    return run.task.kind
