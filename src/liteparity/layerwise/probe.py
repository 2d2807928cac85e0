"""Per-layer error of a quantized model, accumulated batch by batch in a worker process
(``ProbeLayers``, the worker job).

- **local** error: each quantized op against its float twin fed the same dequantized inputs,
  the pairs TF's debug model (``requantize(..., numeric_verify=True)``) builds for its
  NumericVerify ops — the definition TF's QuantizationDebugger uses. The NumericVerify ops
  themselves are left out of the run: their reference kernel cost more than the rest of the
  model, and ``dequantize(q) − float`` is one numpy subtraction here.
- **propagated** error: each tensor against the same tensor of the float TFLite model, both
  run end to end on the same samples.

Both models run with the default delegate, every tensor a model output
(``expose_tensors``; undelegated for models with control flow). Statistics are
running sums (float32 BLAS by blocks, float64 across them): memory does not grow with the
number of samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from liteparity import qparams
from liteparity.measure.stats import ErrorStats
from liteparity.runtime.anatomy import Anatomy
from liteparity.runtime.jobs import Job, state
from liteparity.runtime.litemodel import LiteModel, TensorInfo

NUMERIC_VERIFY = "NumericVerify"

#: Ops whose outputs are not worth a row: shape arithmetic and the (de)quantize glue.
SKIPPED_OPS = frozenset({"SHAPE", "STRIDED_SLICE", "PACK", "DEQUANTIZE", NUMERIC_VERIFY})

#: Samples per invocation (fewer for large models, ``LiteModel.inspect_batch``): every
#: intermediate tensor of a slice is kept in memory.
PROBE_BATCH = 32


@dataclass(frozen=True)
class Target:
    """One tensor to report, and where to read it in each model."""

    name: str  # the tensor's name in the float model (and in a plain quantized model)
    op: str
    index: int  # the tensor in the probed model
    quantization: qparams.QParams | None
    shadow: int | None = None  # the float op fed the dequantized inputs (local reference)
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
        """Both models loaded, every tensor readable, and run once at the batch size used."""
        twin_model = LiteModel(twin, num_threads=threads, inspect=True) if twin else None
        self.model = LiteModel(
            quant, num_threads=threads, inspect=True, skip_custom_ops={NUMERIC_VERIFY}
        )
        self.twin = twin_model
        self.targets = plan(self.model.anatomy(), twin_model.anatomy() if twin_model else None)
        self._twinned = [t for t in self.targets if t.twin is not None]
        self.stats = {t.name: LayerStats() for t in self.targets}
        self._scratch = (np.empty(0, np.float32), np.empty(0, np.float32))
        batch = self.model.inspect_batch(PROBE_BATCH)
        if self.twin is not None:
            batch = self.twin.inspect_batch(batch)
            self.twin.warm_up(batch)
        self.model.warm_up(batch)

    def update(self, inputs: Sequence[np.ndarray]) -> None:
        offset = 0
        for interpreter in self.model.invocations(inputs):
            size = len(interpreter.get_tensor(self.model.inputs[0].index))
            twins = self._twin_values([x[offset : offset + size] for x in inputs], size)
            offset += size
            for t in self.targets:
                self._fold(t, interpreter, twins.get(t.name))
            del twins  # views into the twin's buffers: LiteRT does not invoke while one lives

    def _twin_values(self, chunk: list[np.ndarray], size: int) -> dict[str, np.ndarray]:
        """The twin's tensors for the same samples: views after one batched invocation,
        copies joined up when it runs one sample at a time."""
        if self.twin is None:
            return {}
        runs = self.twin.invocations(chunk, step=size)
        first = next(runs)
        if self.twin.batchable:  # asked after the run: it may just have found it cannot batch
            return {t.name: _view(first, t.twin) for t in self._twinned if t.twin is not None}
        parts = {t.name: [first.get_tensor(t.twin)] for t in self._twinned}
        for interpreter in runs:
            for t in self._twinned:
                parts[t.name].append(interpreter.get_tensor(t.twin))
        return {name: np.concatenate(p) for name, p in parts.items()}

    def _fold(self, t: Target, interpreter: Any, twin: np.ndarray | None) -> None:
        """Fold one target's values of the last invocation into its statistics (the views
        die with this frame, before the next invocation)."""
        raw = _view(interpreter, t.index)
        shadow = _view(interpreter, t.shadow) if t.shadow is not None else None
        real, diff = self._buffers(raw.shape)
        if t.quantization is None:
            real = raw
        else:
            _dequantize(raw, t.quantization, out=real)
        s = self.stats[t.name]
        if shadow is not None:  # what NumericVerify outputs: dequantize(q) − float
            s.local.update(np.subtract(real, shadow, out=diff), shadow)
        if twin is not None and twin.shape == real.shape:
            s.propagated.update(np.subtract(real, twin, out=diff), twin)
        s.count += raw.size
        if t.quantization is not None and not t.quantization.per_channel:
            s.saturated += sum(qparams.edge_codes(raw, t.quantization))

    def _buffers(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Two float32 arrays of ``shape`` for real values and differences, shared by every
        target and kept across batches: fresh temporaries this size cost page faults, 3x the
        arithmetic."""
        size = math.prod(shape)
        if self._scratch[0].size < size:
            self._scratch = (np.empty(size, np.float32), np.empty(size, np.float32))
        return self._scratch[0][:size].reshape(shape), self._scratch[1][:size].reshape(shape)


@dataclass(frozen=True)
class ProbeLayers(Job):
    """``LayerProbe`` as a worker job: ``start`` answers the targets and the quantized
    model's inputs, each batch fed is folded in, ``result`` is the statistics by target name
    (one worker's share: ``LayerStats.merge`` joins several)."""

    quant: bytes
    twin: bytes | None = None
    threads: int = 1
    _probe: LayerProbe = state()

    doing = "comparing layers"

    def start(self) -> tuple[list[Target], list[TensorInfo]]:
        probe = LayerProbe(self.quant, self.twin, self.threads)
        self.keep(_probe=probe)
        return probe.targets, probe.model.inputs

    def feed(self, batch: list[np.ndarray]) -> None:
        self._probe.update(batch)

    def result(self) -> dict[str, LayerStats]:
        return self._probe.stats


def _view(interpreter: Any, index: int) -> np.ndarray:
    """A tensor in place, without the copy ``get_tensor`` makes (a third of the time on
    large activations); valid until the interpreter runs again."""
    view: np.ndarray = interpreter.tensor(index)()
    return view


def _dequantize(raw: np.ndarray, qp: qparams.QParams, out: np.ndarray) -> np.ndarray:
    """Real values into ``out`` (float32) as TFLite's NumericVerify kernel computes them on
    x86: ``scale·q − scale·zero_point`` in float32 (one ulp off the exact value for some
    codes), so local errors equal QuantizationDebugger's to the bit, even where they are only
    rounding (NEON builds of the kernel round their own way; only rounding-level errors
    notice). Per-channel tensors take the exact float64 route."""
    if qp.per_channel:
        np.copyto(out, qparams.dequantize(raw, qp))
        return out
    scale = np.float32(qp.scale[0])
    np.multiply(raw, scale, out=out)
    out -= scale * np.float32(qp.zero_point[0])
    return out
