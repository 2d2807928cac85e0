"""Which layer's quantization costs the most: quantize the model again with one group of ops
kept in float at a time (calibrated once, re-quantized in ~10 ms per variant).

A group is every op that touches one activation tensor, followed through range-preserving ops
(pooling, reshape): keeping only the op that produces a bad tensor in float does not help, as
its output is quantized again for the next op. Each variant is measured in a worker
(``MeasureVariant``), which returns one number instead of every output.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from liteparity.convert.converter import requantize
from liteparity.errors import UsageError
from liteparity.measure.evaluate import output_order
from liteparity.measure.metrics import ErrorAccumulator
from liteparity.plain import json_number, number
from liteparity.reference.names import label
from liteparity.runtime.anatomy import RANGE_PRESERVING_OPS, Anatomy
from liteparity.runtime.jobs import Job, Reply, state
from liteparity.runtime.litemodel import LiteModel
from liteparity.runtime.model_jobs import RunModel
from liteparity.runtime.worker import Worker

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


def layer_sensitivity(
    calibrated: bytes,
    batches: Sequence[list[np.ndarray]],
    references: Sequence[list[np.ndarray]],
    layers: Collection[str] = (),
    progress: Callable[[str, int, int], None] | None = None,
    reference_names: Sequence[str] = (),
    output: str | None = None,
    make: Callable[[list[str]], bytes] | None = None,
) -> list[LayerSensitivity]:
    """For every group, the output MSE against the reference with that group in float; most
    sensitive first. ``batches`` are inputs in the model's order; ``references`` are the
    reference's outputs, named ``reference_names`` (matched to the model's by name) and, with
    ``output``, only that one output is compared: layers ranked by their effect on it.
    ``progress(stage, done, total)`` hears of each variant (one per layer group: ~0.2 s each
    on MobileNetV2). ``make(names)`` builds the quantized model with the ops writing ``names``
    kept in float: by default a re-quantization of ``calibrated``; for ai-edge-quantizer's
    int8, its recipe with those ops excluded, ``calibrated`` being then the float model the
    groups come from."""
    build = make or (lambda keep: requantize(calibrated, keep))
    if not batches:
        return []
    with Worker("sensitivity") as worker:
        info = worker.start(RunModel(calibrated, anatomy=True)).get()
        anatomy = info.anatomy
        chosen, references = _compared(
            reference_names, [o.name for o in info.outputs], references, output
        )
        variants = [("", []), *groups(anatomy, layers)]
        errors: list[float] = []
        measured: Reply | None = None
        for k, (_, keep) in enumerate(variants):
            if progress is not None:
                progress("sensitivity per layer", k, len(variants))
            # Quantized here while the worker still measures the previous variant: on large
            # models each takes ~0.1-0.2 s, so the two overlap instead of adding up.
            content = build(keep)
            if measured is not None:
                errors.append(measured.get())
            worker.start(MeasureVariant(content, outputs=chosen))
            for inputs, reference in zip(batches, references, strict=True):
                worker.feed([*inputs, *reference])  # answers nothing: sent without waiting
            measured = worker.result()
        errors.append(measured.get())  # type: ignore[union-attr]
    base = errors[0]
    found = [
        LayerSensitivity(name, tuple(keep), base, mse)
        for (name, keep), mse in zip(variants[1:], errors[1:], strict=True)
    ]
    return sorted(found, key=lambda s: -s.share_removed)


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
