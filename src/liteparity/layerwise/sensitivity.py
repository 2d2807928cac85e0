"""Which layer's quantization costs the most: quantize the model again with one group of ops
kept in float at a time (calibrated once, re-quantized in ~10 ms per variant).

A group is every op that touches one activation tensor, followed through range-preserving ops
(pooling, reshape): keeping only the op that produces a bad tensor in float does not help, as
its output is quantized again for the next op. Each variant is measured in a worker
(``MeasureVariant``), which returns one number instead of every output.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from liteparity.convert.converter import requantize
from liteparity.errors import UsageError
from liteparity.measure.evaluate import output_order
from liteparity.measure.metrics import ErrorAccumulator
from liteparity.plain import json_number, number
from liteparity.reference.names import label
from liteparity.runtime.anatomy import RANGE_PRESERVING_OPS, Anatomy
from liteparity.runtime.engine import Engine, LocalEngine
from liteparity.runtime.jobs import BaseWorker, Job, Reply, state
from liteparity.runtime.litemodel import LiteModel
from liteparity.runtime.model_jobs import RunModel
from liteparity.timings import staged

#: Ops that only compute shapes: never worth keeping in float.
SHAPE_OPS = frozenset({"SHAPE", "STRIDED_SLICE", "PACK", "QUANTIZE", "DEQUANTIZE"})


@dataclass(frozen=True)
class LayerSensitivity:
    """Output error with everything quantized, and with one group kept in float."""

    layer: str
    keep_float: tuple[str, ...]  # names of the output tensors of the ops kept in float
    mse_quantized: float
    mse_kept_float: float

    @property
    def share_removed(self) -> float:
        """Share of the output error that disappears when this group stays in float."""
        if self.mse_quantized <= 0:
            return 0.0
        return max(0.0, 1.0 - self.mse_kept_float / self.mse_quantized)

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "keep_float": list(self.keep_float),
            "mse_quantized": json_number(self.mse_quantized),
            "mse_kept_float": json_number(self.mse_kept_float),
            "share_removed": json_number(self.share_removed),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LayerSensitivity:
        """The inverse of ``to_dict`` (``share_removed`` is recomputed)."""
        return cls(
            d["layer"],
            tuple(d["keep_float"]),
            number(d["mse_quantized"]),
            number(d["mse_kept_float"]),
        )


def groups(anatomy: Anatomy, layers: Collection[str] = ()) -> list[tuple[str, list[str]]]:
    """``(name, output tensor names of its ops)`` for each family of float activations
    joined by range-preserving ops, in execution order."""
    producers = {i: op for op in anatomy.ops for i in op.outputs}
    parent: dict[int, int] = {}

    def root(i: int) -> int:
        while parent.get(i, i) != i:
            i = parent[i]
        return i

    float_acts = [t.index for t in anatomy.activations() if t.dtype == "float32"]
    for i in float_acts:
        op = producers[i]
        if op.name in RANGE_PRESERVING_OPS and op.inputs and op.inputs[0] in producers:
            parent[i] = root(op.inputs[0])
    families: dict[int, list[int]] = {}
    for i in float_acts:
        families.setdefault(root(i), []).append(i)
    out = []
    for head, members in families.items():
        ops = {producers[m].index for m in members}
        ops |= {op.index for m in members for op in anatomy.consumers(m)}
        names = [
            anatomy.tensor(o).name
            for op in anatomy.ops
            if op.index in ops and op.name not in SHAPE_OPS
            for o in op.outputs
        ]
        if names:
            out.append((label(anatomy.tensor(head).name, layers), names))
    return out


@dataclass(frozen=True)
class MeasureVariant(Job):
    """The output error of one variant: each batch fed is the model's inputs followed by the
    reference's outputs for them; ``result`` is the mean squared error over every output
    value. ``outputs``: the model's outputs to compare with those references, in their
    order (matched by name; empty: every output, in the model's order)."""

    content: bytes
    threads: int = 1
    outputs: tuple[int, ...] = ()
    _model: LiteModel = state()
    _errors: ErrorAccumulator = state()

    doing = "measuring a variant with layers kept in float"

    def start(self) -> None:
        model = LiteModel(self.content, num_threads=self.threads)
        self.keep(_model=model, _errors=ErrorAccumulator(classify=False))

    def feed(self, batch: list[np.ndarray]) -> None:
        count = len(self._model.inputs)
        out = self._model.run(batch[:count])
        self._errors.update(batch[count:], [out[k] for k in self.outputs] if self.outputs else out)

    def result(self) -> float:
        acc = self._errors
        return float(acc.sum_sq_err / acc.values) if acc.values else 0.0


@dataclass(frozen=True)
class SensitivityRun:
    """What the experiment found and what it cost: the groups measured, most sensitive
    first; the ones left unmeasured (by the stopping rule or the time cap) and why."""

    ranking: tuple[LayerSensitivity, ...]
    groups: int  # layer groups in the model
    skipped: tuple[str, ...] = ()  # groups not measured, most promising first
    stopped: str = "complete"  # "complete", "decided" (stopping rule) or "time" (cap)
    seconds: float = 0.0
    cap_seconds: float = 0.0  # the time cap it ran under
    #: the variant models of the most sensitive groups, by the tensor names kept in
    #: float: ``fix``'s search asks for them again
    variants: tuple[tuple[tuple[str, ...], bytes], ...] = field(default=(), repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "groups": self.groups,
            "measured": len(self.ranking),
            "stopped": self.stopped,
            "skipped": list(self.skipped),
            "seconds": json_number(self.seconds),
            "note": self.note(),
        }

    def note(self) -> str | None:
        """One line for the terminal when groups were left unmeasured."""
        if not self.skipped:
            return None
        why = {
            "decided": "no group left could change the top two (see README, Sensitivity)",
            "time": f"the {self.cap_seconds:g} s cap was reached (the groups whose ops added "
            "the least noise go last)",
        }[self.stopped]
        return (
            f"sensitivity: {len(self.ranking)} of {self.groups} layer groups measured in "
            f"{self.seconds:.1f} s, {len(self.skipped)} left out: {why}"
        )


#: The stopping rule never stops before this many groups are measured: on small models the
#: whole experiment costs less than deciding when to stop would save.
MIN_MEASURED = 8

#: Variant models kept for reuse (``SensitivityRun.variants``): the most sensitive groups'.
REUSED = 2

#: The experiment stops sending variants after this long, whatever is left (the groups
#: most likely to matter go first); it reports what it skipped.
SENSITIVITY_SECONDS = 120.0


def ranked_groups(
    found: Sequence[tuple[str, list[str]]], prior: Mapping[str, float] | None
) -> list[tuple[str, list[str]]]:
    """The groups in the order to measure them: by ``prior`` (a per-tensor error already
    measured, larger worse), summed over each group's tensors, highest first; groups it
    does not score keep their execution order, after the scored ones. No prior: execution
    order."""
    if not prior:
        return list(found)
    score = [sum(prior.get(name, 0.0) for name in keep) for _, keep in found]
    order = sorted(range(len(found)), key=lambda k: (-score[k], k))
    return [found[k] for k in order]


def decided(shares: Sequence[float], total: int) -> bool:
    """Whether the groups not yet measured (``shares``: those measured so far, of ``total``)
    can no longer change the top two of the ranking (what the findings report: the most
    sensitive group and the next one).

    The model: each group's quantization adds its own part to the output's squared error
    (independent rounding noise adds in power), and keeping the group in float removes that
    part, so the shares of all groups sum to about 1 and the groups not measured can remove
    at most ``1 − Σ measured shares`` between them. The answer is decided when that rest is
    at most the second largest share measured, and at least ``MIN_MEASURED`` groups (or
    all) were measured. Where the noise of two groups adds up coherently the shares sum to
    more than 1 and the rule may stop early: the prior puts the likely groups first."""
    if len(shares) >= total:
        return True
    if len(shares) < max(MIN_MEASURED, 2):
        return False
    top = sorted(shares, reverse=True)
    return max(0.0, 1.0 - sum(top)) <= top[1]


@staged("sensitivity")
def layer_sensitivity(
    calibrated: bytes,
    batches: Sequence[list[np.ndarray]],
    references: Sequence[list[np.ndarray]] | None = None,
    layers: Collection[str] = (),
    progress: Callable[[str, int, int], None] | None = None,
    reference_names: Sequence[str] = (),
    output: str | None = None,
    make: Callable[[list[str]], bytes] | None = None,
    *,
    pool: Sequence[BaseWorker] = (),
    engine: Engine | None = None,
    prior: Mapping[str, float] | None = None,
    stop: bool = True,
    seconds: float = SENSITIVITY_SECONDS,
) -> SensitivityRun:
    """For every group, the output MSE against the reference with that group in float; most
    sensitive first. ``batches`` are inputs in the model's order; ``references`` are the
    reference's outputs, named ``reference_names`` (matched to the model's by name) and, with
    ``output``, only that one output is compared: layers ranked by their effect on it.
    ``references=None``: the outputs of ``calibrated`` itself, the float32 model (it differs
    from Keras by float rounding, ~1e-6). ``make(names)`` builds the quantized model with the
    ops writing ``names`` kept in float: by default a re-quantization of ``calibrated``; for
    ai-edge-quantizer's int8, its recipe with those ops excluded, ``calibrated`` being then
    the float model the groups come from.

    Variants are measured in parallel on ``pool`` (default: ``engine.pool``, a process per
    core locally, ``shards`` actors on Ray), variant k on worker k mod len(pool), each
    reading the batches from ``engine``'s store (shared memory locally, Ray's object store:
    put once, read by every variant). Groups go in the order of ``prior``
    (``ranked_groups``) and, with ``stop``, no more are sent once ``decided`` on the errors
    of the variants sent before the last len(pool) (each waited for in the order sent, so
    which finishes first does not matter; a pool of another size may stop at another
    group), or after ``seconds``. ``progress(stage, done, total)`` hears of each
    variant."""
    started = time.perf_counter()
    build = make or (lambda keep: requantize(calibrated, keep))
    if not batches:
        return SensitivityRun((), 0)
    engine = engine or LocalEngine()
    own = [] if pool else engine.pool("sensitivity")
    workers = list(pool) or own
    slots = engine.batches(held=len(batches))  # each put takes the next: batch k, slot k
    try:
        info = workers[0].start(RunModel(calibrated, anatomy=True)).get()
        names = [o.name for o in info.outputs]
        if references is None:
            shared = [slots.put(b) for b in batches]
            floats = _float_outputs(workers, calibrated, shared)
            reference_names = reference_names or names
            order, _ = output_order(reference_names, names)
            references = [[out[i] for i in order] for out in floats]
        chosen, references = _compared(reference_names, names, references, output)
        shared = [
            slots.put([*inputs, *ref]) for inputs, ref in zip(batches, references, strict=True)
        ]
        found = groups(info.anatomy, layers)
        variants = [("", []), *ranked_groups(found, prior)]
        errors: dict[int, float] = {}
        busy: list[tuple[int, Reply] | None] = [None] * len(workers)

        contents: dict[int, bytes] = {}  # in flight
        kept: list[tuple[float, tuple[str, ...], bytes]] = []  # the REUSED best so far

        def collect(w: int) -> None:
            pending = busy[w]
            if pending is not None:
                k = pending[0]
                errors[k] = pending[1].get()
                busy[w] = None
                if k:  # the lowest error with the group in float: the most sensitive
                    kept.append((errors[k], tuple(variants[k][1]), contents.pop(k)))
                    kept.sort(key=lambda item: item[0])
                    del kept[REUSED:]

        stopped, sent = "complete", len(variants)
        for k, (_, keep) in enumerate(variants):
            if stop and k > 1 and 0 in errors:
                shares = [_share(errors[0], errors[j]) for j in errors if j]
                if decided(shares, len(found)):
                    stopped, sent = "decided", k
                    break
                if time.perf_counter() - started > seconds:
                    stopped, sent = "time", k
                    break
            if progress is not None:
                progress("sensitivity per layer", k, len(variants))
            # Quantized here while the workers measure the previous variants.
            content = contents[k] = build(keep)
            w = k % len(workers)
            collect(w)
            workers[w].start(MeasureVariant(content, outputs=chosen))
            for batch in shared:
                workers[w].feed(batch)  # answers nothing: sent without waiting
            busy[w] = (k, workers[w].result())
        for w in range(len(workers)):
            collect(w)
    finally:
        slots.close()
        for worker in own:
            worker.close()
    base = errors[0]
    ranking = [
        LayerSensitivity(name, tuple(keep), base, errors[k])
        for k, (name, keep) in enumerate(variants)
        if k and k in errors
    ]
    return SensitivityRun(
        tuple(sorted(ranking, key=lambda s: -s.share_removed)),
        len(found),
        tuple(name for name, _ in variants[sent:]),
        stopped if sent < len(variants) else "complete",
        time.perf_counter() - started,
        seconds,
        tuple((names, content) for _, names, content in kept),
    )


def _share(base: float, kept: float) -> float:
    return LayerSensitivity("", (), base, kept).share_removed


def _float_outputs(
    workers: Sequence[BaseWorker], content: bytes, shared: Sequence[Any]
) -> list[list[np.ndarray]]:
    """The float model's outputs for each batch in the engine's store, the batches spread
    over the workers."""
    for worker in workers:
        worker.start(RunModel(content))
    replies = [workers[k % len(workers)].feed(batch) for k, batch in enumerate(shared)]
    outputs: list[list[np.ndarray]] = [reply.get() for reply in replies]
    for worker in workers:
        worker.result().get()
    return outputs


def _compared(
    reference_names: Sequence[str],
    names: Sequence[str],
    references: Sequence[list[np.ndarray]],
    output: str | None,
) -> tuple[tuple[int, ...], Sequence[list[np.ndarray]]]:
    """The model's outputs to compare, in the order of the references kept (matched by
    name), and those references: every output, or only ``output``."""
    if not reference_names:
        if output is not None:
            raise UsageError(f"--rank-output {output}: the reference's outputs have no names")
        return (), references
    order, _ = output_order(reference_names, names)  # position when names differ (warned
    if output is None:  # by check; locate's layers are what it reports)
        return tuple(order), references
    if output not in reference_names:
        raise UsageError(f"--rank-output {output}: the model has outputs {list(reference_names)}")
    k = list(reference_names).index(output)
    return (order[k],), [[r[k]] for r in references]
