"""Per-layer error of a quantized model, accumulated batch by batch in a worker process.

- **local** error: each quantized op against its float twin fed the same dequantized inputs,
  read from the NumericVerify ops of TF's debug model (``recipes.requantize(...,
  numeric_verify=True)``) — the definition TF's QuantizationDebugger uses.
- **propagated** error: each tensor against the same tensor of the float TFLite model, both
  run end to end on the same samples.

Statistics are running sums: memory does not grow with the number of samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import qparams
from .litemodel import LiteModel
from .tensors import Anatomy

NUMERIC_VERIFY = "NumericVerify"
#: Ops whose outputs are not worth a row: shape arithmetic and the (de)quantize glue.
SKIPPED_OPS = frozenset({"SHAPE", "STRIDED_SLICE", "PACK", "DEQUANTIZE", NUMERIC_VERIFY})
#: Samples per invocation: every intermediate tensor of a slice is kept in memory.
PROBE_BATCH = 64


@dataclass
class ErrorStats:
    """Running statistics of ``candidate − reference`` differences of one tensor.

    ``mean_error`` and ``mean_squared_error`` equal QuantizationDebugger's (its per-sample
    means, averaged over samples of equal size). ``max_abs_error`` is the largest error over
    all samples (the debugger averages per-sample maxima) and ``stddev`` is over all values
    (the debugger averages per-sample deviations)."""

    num_elements: int = 0
    total: float = 0.0
    total_sq: float = 0.0
    reference_sq: float = 0.0
    max_abs: float = 0.0

    def update(self, diff: np.ndarray, reference: np.ndarray | None = None) -> None:
        d = np.asarray(diff, dtype=np.float64)
        self.num_elements += d.size
        self.total += float(d.sum())
        self.total_sq += float(np.square(d).sum())
        self.max_abs = max(self.max_abs, float(np.abs(d).max(initial=0.0)))
        if reference is not None:
            self.reference_sq += float(np.square(reference, dtype=np.float64).sum())

    def merge(self, other: ErrorStats) -> ErrorStats:
        return ErrorStats(
            self.num_elements + other.num_elements,
            self.total + other.total,
            self.total_sq + other.total_sq,
            self.reference_sq + other.reference_sq,
            max(self.max_abs, other.max_abs),
        )

    def to_dict(self) -> dict[str, Any]:
        n = self.num_elements
        mean = self.total / n if n else 0.0
        mse = self.total_sq / n if n else 0.0
        if self.total_sq == 0:
            sqnr = math.inf
        elif self.reference_sq == 0:
            sqnr = -math.inf
        else:
            sqnr = 10 * math.log10(self.reference_sq / self.total_sq)
        return {
            "num_elements": n,
            "mean_error": mean,
            "stddev": math.sqrt(max(mse - mean**2, 0.0)),
            "max_abs_error": self.max_abs,
            "mean_squared_error": mse,
            "sqnr_db": sqnr,
        }


@dataclass(frozen=True)
class Target:
    """One tensor to report, and where to read it in each model."""

    name: str  # the tensor's name in the float model (and in a plain quantized model)
    op: str
    index: int  # the tensor in the probed model
    quantization: qparams.QParams | None
    verify: int | None = None  # NumericVerify output: dequantize(q) − float
    shadow: int | None = None  # the float twin op's output fed by NumericVerify
    twin: int | None = None  # the same tensor in the float model


@dataclass
class LayerStats:
    """What the probe accumulates for one target."""

    local: ErrorStats = field(default_factory=ErrorStats)
    propagated: ErrorStats = field(default_factory=ErrorStats)
    count: int = 0
    saturated: int = 0

    def merge(self, other: LayerStats) -> LayerStats:
        return LayerStats(
            self.local.merge(other.local),
            self.propagated.merge(other.propagated),
            self.count + other.count,
            self.saturated + other.saturated,
        )


def verified_name(name: str) -> str:
    """``NumericVerify/<float tensor name><digit>:<index>`` → ``<float tensor name>``, the rule
    QuantizationDebugger applies."""
    base = name.rsplit(":", 1)[0].removeprefix(NUMERIC_VERIFY + "/")
    return base[:-1] if base and base[-1].isdigit() else base


def plan(anatomy: Anatomy, twin: Anatomy | None) -> list[Target]:
    """The tensors to report, in execution order: the verified ones of a debug model, or
    every computed numeric tensor of a plain model."""
    producers = {i: op for op in anatomy.ops for i in op.outputs}
    twin_index = {t.name: t.index for t in twin.activations()} if twin else {}
    targets = []
    verifies = [op for op in anatomy.ops if op.name == NUMERIC_VERIFY]
    if verifies:
        for op in verifies:
            quant, shadow = anatomy.tensor(op.inputs[0]), anatomy.tensor(op.inputs[1])
            # The debug model renames one of the pair (appends "1"); the float model has the
            # original name, which ever of the two kept it.
            names = (quant.name, shadow.name, verified_name(anatomy.tensor(op.outputs[0]).name))
            name = next((n for n in names if n in twin_index), names[2])
            targets.append(
                Target(
                    name,
                    producers[quant.index].name,
                    quant.index,
                    quant.quantization,
                    op.outputs[0],
                    op.inputs[1],
                    twin_index.get(name),
                )
            )
        return targets
    for t in anatomy.activations():
        op = producers[t.index]
        if op.name in SKIPPED_OPS or t.dtype not in ("float32", "int8", "uint8", "int16"):
            continue
        targets.append(
            Target(t.name, op.name, t.index, t.quantization, twin=twin_index.get(t.name))
        )
    return targets


class LayerProbe:
    """The quantized model (and its float twin) in one process, compared tensor by tensor."""

    def __init__(self, quant: bytes, twin: bytes | None = None, threads: int = 1) -> None:
        twin_model = LiteModel(twin, num_threads=threads, inspect=True) if twin else None
        anatomy = LiteModel(quant, inspect=True).anatomy()
        debug = any(op.name == NUMERIC_VERIFY for op in anatomy.ops)
        # A debug model's verified tensors feed non-delegated NumericVerify ops, so they stay
        # readable with the (fast) default delegate; a plain model needs none.
        self.model = LiteModel(quant, num_threads=threads, keep_tensors=debug, inspect=not debug)
        self.twin = twin_model
        self.targets = plan(anatomy, twin_model.anatomy() if twin_model else None)
        self.stats = {t.name: LayerStats() for t in self.targets}
        self._tuned = False

    def update(self, inputs: Sequence[np.ndarray]) -> None:
        if not self._tuned:
            step = min(PROBE_BATCH, len(inputs[0]))
            self.model.batch_size = step
            if self.twin is not None:
                self.twin.batch_size = step
            self._tuned = True
        offset = 0
        for interpreter in self.model.invocations(inputs):
            size = len(interpreter.get_tensor(self.model.inputs[0].index))
            chunk = [x[offset : offset + size] for x in inputs]
            offset += size
            values = {t.name: self._read(interpreter, t) for t in self.targets}
            twins: dict[str, np.ndarray] = {}
            if self.twin is not None:  # one invocation, or one per sample if it cannot batch
                parts: dict[str, list[np.ndarray]] = {}
                for twin_interp in self.twin.invocations(chunk, step=size):
                    for t in self.targets:
                        if t.twin is not None:
                            parts.setdefault(t.name, []).append(twin_interp.get_tensor(t.twin))
                twins = {name: np.concatenate(p) for name, p in parts.items()}
            for t in self.targets:
                self._fold(t, interpreter, values[t.name], twins.get(t.name))

    @staticmethod
    def _read(interpreter: Any, t: Target) -> tuple[np.ndarray, np.ndarray]:
        raw = np.asarray(interpreter.get_tensor(t.index))
        real = qparams.dequantize(raw, t.quantization) if t.quantization else raw
        return raw, real

    def _fold(
        self,
        t: Target,
        interpreter: Any,
        value: tuple[np.ndarray, np.ndarray],
        twin: np.ndarray | None,
    ) -> None:
        raw, real = value
        s = self.stats[t.name]
        if t.verify is not None:
            diff = interpreter.get_tensor(t.verify)
            shadow = interpreter.get_tensor(t.shadow) if t.shadow is not None else None
            s.local.update(diff, shadow)
        if twin is not None and twin.shape == real.shape:
            s.propagated.update(real - twin, twin)
        s.count += raw.size
        if t.quantization is not None and not t.quantization.per_channel:
            s.saturated += sum(qparams.edge_codes(raw, t.quantization))
