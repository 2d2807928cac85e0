"""``LiteModel``: one LiteRT interpreter that takes and returns real values.

It owns the things users get wrong by hand: quantizing float inputs and dequantizing outputs
with each tensor's own ``(scale, zero_point)``, batching when the model allows it (and
falling back to one sample at a time when a TF1 graph baked batch 1 into a reshape), and
starting every independent sample from a clean state (stateful LSTMs keep their variables
between invocations otherwise).

This module imports numpy and ``ai_edge_litert`` only: worker processes load it quickly and
never import TensorFlow.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from liteparity import _litert, qparams
from liteparity.data.binding import check_sample_shape
from liteparity.errors import DataError, InterpreterError, ModelError, first_line
from liteparity.runtime.anatomy import Anatomy, build_anatomy
from liteparity.runtime.memory import rows_within
from liteparity.runtime.surgery import expose_tensors, output_count

#: Ops that keep state in resource variables; ``reset_all_variables`` does not reset those,
#: so such models get a fresh interpreter for every independent sample.
RESOURCE_VARIABLE_OPS = frozenset({"VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE"})

#: Batch sizes tried when picking the fastest one (batching is not always faster: measure).
BATCH_SIZES = (1, 8, 32, 128)

#: Samples whose batched outputs are compared, bit for bit, with their one-at-a-time outputs
#: before a batch size is used: a graph with batch 1 baked into a RESHAPE allocates a batch of
#: 8 and returns ``[1, 8·N, …]``, or mixes samples, and only a comparison shows it.
PROOF_SAMPLES = 8

#: Memory an inspected model may hold for one batch: every intermediate tensor is kept, so a
#: large model (MobileNetV2 at 224x224: ~25 MB per sample) gets a smaller batch.
INSPECT_BUDGET_BYTES = 256 << 20

#: Ops the current LiteRT interpreter does not run any more (select-TF / Flex).
_FLEX_PREFIX = "Flex"


@dataclass(frozen=True, eq=False)
class TensorInfo:
    """One input or output of a model: its name, per-sample shape and quantization."""

    name: str
    index: int
    shape: tuple[int, ...]  # signature shape; -1 for a free dimension, batch first
    dtype: str
    quantization: qparams.QParams | None

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return self.shape[1:]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "quantization": self.quantization.to_dict() if self.quantization else None,
        }


def clean_name(name: str) -> str:
    """``serving_default_img:0`` → ``img``: the name a user gave the tensor."""
    name = re.sub(r":\d+$", "", name)
    return name.removeprefix("serving_default_")


def natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


class LiteModel:
    """A ``.tflite`` model on the LiteRT interpreter, fed and read in real (float) values."""

    def __init__(
        self,
        content: bytes,
        *,
        num_threads: int = 1,
        inspect: bool = False,
        skip_custom_ops: Collection[str] = (),
        builtin_kernels: bool = False,
    ) -> None:
        """``inspect=True`` keeps every intermediate tensor readable (``Anatomy.activations``):
        each becomes a model output (``expose_tensors``), so the default delegate
        still runs the model; a model with control flow runs undelegated instead, every tensor
        preserved (slower). Integer kernels of XNNPack may round a code differently from the
        builtin ones: what is read is what the deployed model computes.
        ``skip_custom_ops`` leaves custom ops nobody reads out of an inspected model (the
        debug model's NumericVerify: liteparity computes the same difference itself).
        ``builtin_kernels`` runs LiteRT's builtin kernels only, without the default delegate
        (XNNPack): a second float32 implementation of the same graph, for a noise floor."""
        self._content = bytes(content)
        self._builtin = builtin_kernels
        self._num_threads = num_threads
        self._inspect = inspect
        self._exposed = expose_tensors(self._content, skip_custom_ops) if inspect else None
        self._interpreter = self._new_interpreter()
        ops = {op.name for op in _litert.op_details(self._interpreter)}
        flex = sorted(op for op in ops if op.startswith(_FLEX_PREFIX))
        if flex:
            raise ModelError(
                f"the model uses select-TF (Flex) ops {', '.join(flex)}, which LiteRT no longer "
                "runs: convert without SELECT_TF_OPS"
            )
        self.op_names = frozenset(ops)
        self.resource_variables = bool(ops & RESOURCE_VARIABLE_OPS)
        self.inputs, self.outputs = self._io()
        self.batch_size = 1
        #: why batching was refused for this model, in one line (None: it was not)
        self.batch_refusal: str | None = None
        self._proven: set[int] = {1}
        self._allocated: tuple[tuple[int, ...], ...] | None = None
        self._anatomy: Anatomy | None = None
        self._can_batch = not self.resource_variables and all(
            info.shape and info.shape[0] in (-1, 1) for info in self.inputs
        )

    @property
    def batchable(self) -> bool:
        """Whether samples run in batches (False: one at a time, the batch size is baked in
        or the model keeps state)."""
        return self._can_batch

    # -- construction -------------------------------------------------------------------
    def _new_interpreter(self) -> Any:
        if self._exposed is not None:
            try:
                return _litert.new_interpreter(self._exposed, self._num_threads)
            except ModelError:  # the rewrite did not take: read tensors undelegated instead
                self._exposed = None
        return _litert.new_interpreter(
            self._content, self._num_threads, undelegated=self._inspect or self._builtin
        )

    def _io(self) -> tuple[list[TensorInfo], list[TensorInfo]]:
        """Inputs and outputs in signature order (outputs ``output_0, output_1, …``), or in
        tensor order for models without a signature (TF1 graphs)."""
        it = self._interpreter
        signatures = it.get_signature_list()
        if len(signatures) == 1:
            runner = it.get_signature_runner(next(iter(signatures)))
            ins = runner.get_input_details()
            outs = runner.get_output_details()
            by_index = {d["index"]: d for d in it.get_input_details() + it.get_output_details()}
            inputs = [_info(name, by_index.get(d["index"], d)) for name, d in _natural(ins).items()]
            outputs = [
                _info(name, by_index.get(d["index"], d)) for name, d in _natural(outs).items()
            ]
        else:
            own = it.get_output_details()[: output_count(self._content)]
            inputs = [_info(clean_name(d["name"]), d) for d in it.get_input_details()]
            outputs = [_info(clean_name(d["name"]), d) for d in own]
        return inputs, outputs

    # -- running ------------------------------------------------------------------------
    def check_inputs(self, inputs: Sequence[np.ndarray]) -> None:
        """A clear error when the data cannot feed this model (count or per-sample shape)."""
        if len(inputs) != len(self.inputs):
            raise DataError(
                f"the model has {len(self.inputs)} input(s) "
                f"({', '.join(i.name for i in self.inputs)}) but the data gives {len(inputs)}"
            )
        for info, array in zip(self.inputs, inputs, strict=True):
            check_sample_shape(info.name, info.sample_shape, array.shape[1:])

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Outputs (dequantized to float32) for a batch of real-valued inputs."""
        self.check_inputs(inputs)
        try:
            return self._run(inputs)
        except _Rebatch:
            return self._run(inputs)

    def _run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        n = len(inputs[0])
        parts, start = [], 0
        while start < n:
            chunk = [x[start : start + self._step()] for x in inputs]
            parts.append(self._invoke_proven(chunk))
            start += len(chunk[0])
        return [np.concatenate(chunks) for chunks in zip(*parts, strict=True)]

    def _step(self, wanted: int | None = None) -> int:
        return (wanted or self.batch_size) if self._can_batch else 1

    def _invoke_proven(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """``_invoke``, once the batch size of ``inputs`` is proven to give the outputs of one
        sample at a time (proven on these very samples the first time a size is used)."""
        size = len(inputs[0])
        if size in self._proven:
            return self._invoke(inputs)
        outputs = self.prove(inputs)
        if outputs is None:  # refused: one sample at a time, from now on
            return [np.concatenate(p) for p in zip(*self._singles(inputs, size), strict=True)]
        return outputs

    def _singles(self, inputs: Sequence[np.ndarray], count: int) -> list[list[np.ndarray]]:
        return [self._invoke([x[i : i + 1] for x in inputs]) for i in range(count)]

    def prove(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray] | None:
        """Run ``inputs`` as one batch and compare with one sample at a time (the first
        ``PROOF_SAMPLES``, bit for bit; every output's per-sample shape). The batched outputs
        when they agree; None, with batching refused for good (``batch_refusal`` says why),
        when they do not."""
        size = len(inputs[0])
        try:
            batched = self._invoke(inputs)
        except _Rebatch:
            return None
        singles = self._singles(inputs, min(size, PROOF_SAMPLES))
        reason = _disagreement(self.outputs, batched, singles, size)
        if reason is None:
            self._proven.add(size)
            return batched
        self._can_batch, self.batch_size = False, 1
        self.batch_refusal = f"batch {size}: {reason}"
        return None

    def _invoke(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        it = self._interpreter
        if self.resource_variables:
            # Fresh state for each independent sample: rebuilding is ~0.2 ms for small models.
            self._interpreter = it = self._new_interpreter()
            self._allocated = None
        shapes = tuple(tuple(x.shape) for x in inputs)
        if shapes != self._allocated:
            self._allocate(shapes)
        it.reset_all_variables()
        for info, x in zip(self.inputs, inputs, strict=True):
            it.set_tensor(info.index, _to_input(x, info))
        try:
            it.invoke()
        except _litert.LITERT_ERRORS as exc:
            raise InterpreterError(f"LiteRT failed to run the model: {first_line(exc)}") from exc
        return [_from_output(it.get_tensor(info.index), info) for info in self.outputs]

    def _allocate(self, shapes: tuple[tuple[int, ...], ...]) -> None:
        it = self._interpreter
        try:
            for info, shape in zip(self.inputs, shapes, strict=True):
                it.resize_tensor_input(info.index, list(shape), strict=False)
            it.allocate_tensors()
        except _litert.LITERT_ERRORS as exc:
            if all(shape[0] == 1 for shape in shapes):
                raise InterpreterError(
                    f"LiteRT cannot allocate the model: {first_line(exc)}"
                ) from exc
            # A graph with batch 1 baked in: fall back to one sample at a time, for good.
            self._can_batch, self.batch_size = False, 1
            self.batch_refusal = f"batch {shapes[0][0]}: {first_line(exc)}"
            self._interpreter = self._new_interpreter()
            self._allocate(tuple((1, *shape[1:]) for shape in shapes))
            raise _Rebatch() from exc
        self._allocated = shapes

    def inspect_batch(self, wanted: int) -> int:
        """The largest batch up to ``wanted`` whose intermediate tensors, all kept readable,
        fit in ``INSPECT_BUDGET_BYTES``."""
        return rows_within(INSPECT_BUDGET_BYTES, self.anatomy().bytes_per_sample(), wanted)

    def warm_up(self, batch_size: int) -> None:
        """Allocate and run once on zeros at ``batch_size``: the delegate prepares (XNNPack
        packs its weights) on the first run at a shape, not on the first real batch."""
        self.batch_size = batch_size if self._can_batch else 1
        if any(-1 in i.sample_shape for i in self.inputs):
            return  # zeros of an invented size could fail and make the model look unbatchable
        zeros = [np.zeros((self.batch_size, *i.sample_shape), np.float32) for i in self.inputs]
        # Not ``run``: zeros must not prove the batch size (identical samples hide a model that
        # mixes them); the first real batch does. A shape zeros cannot stand for: the first
        # real batch prepares instead.
        with contextlib.suppress(InterpreterError, _Rebatch):
            self._invoke(zeros)

    def tune_batch_size(
        self, inputs: Sequence[np.ndarray], budget_s: float = 0.3, forced: int | None = None
    ) -> int:
        """Measure seconds per sample for each of ``BATCH_SIZES`` that is proven to give the
        one-at-a-time outputs (best of three runs, so a hiccup does not decide) and keep the
        fastest. ``forced`` skips the measurement, not the proof: a size the model cannot take
        raises ``InterpreterError`` with the reason."""
        self.check_inputs(inputs)
        n = len(inputs[0])
        if forced is not None:
            return self._force(inputs, forced)
        if not self._can_batch or n < 2:
            self.batch_size = 1
            return 1
        best, best_cost = 1, float("inf")
        deadline = time.perf_counter() + budget_s
        for size in (s for s in BATCH_SIZES if s <= n):
            batch = [x[:size] for x in inputs]
            if self._invoke_proven(batch) is None or not self._can_batch:
                break  # (and allocated at this size: the timing below is warm)
            cost = float("inf")
            for _ in range(3):
                start = time.perf_counter()
                self._invoke(batch)
                cost = min(cost, (time.perf_counter() - start) / size)
            if cost < best_cost:
                best, best_cost = size, cost
            if time.perf_counter() > deadline:
                break
        self.batch_size = best if self._can_batch else 1
        return self.batch_size

    def _force(self, inputs: Sequence[np.ndarray], size: int) -> int:
        if size < 1:
            raise DataError(f"--batch-size must be at least 1, got {size}")
        if size > 1 and not self._can_batch:
            raise InterpreterError(
                f"--batch-size {size}: this model runs one sample at a time "
                f"({self.batch_refusal or 'its batch size is fixed or it keeps state'})"
            )
        if size > 1 and len(inputs[0]) >= 2:
            self.prove([x[:size] for x in inputs])
            if not self._can_batch:
                raise InterpreterError(
                    f"--batch-size {size} changes the model's outputs ({self.batch_refusal}): "
                    "use --batch-size 1"
                )
        self.batch_size = size
        return size

    def anatomy(self) -> Anatomy:
        """The model's tensors and ops, read from an undelegated interpreter of the model as
        given (a delegate hides ops, and XNNPack rewrites some weights' quantization)."""
        if self._anatomy is None:
            it = _litert.new_interpreter(self._content, 1, undelegated=True)
            for info in self.inputs:
                shape = [1, *(max(d, 1) for d in info.sample_shape)]
                it.resize_tensor_input(info.index, shape, strict=False)
            unread = None
            try:
                it.allocate_tensors()
            except _litert.LITERT_ERRORS as exc:  # e.g. a custom op only a delegate resolves
                unread = f"weights not read (LiteRT's builtin kernels: {first_line(exc)})"
            try:
                fused = tuple(op.activation for op in _litert.read_graph(self._content).ops)
            except ModelError:
                fused = ()
            self._anatomy = build_anatomy(it, fused, unread)
        return self._anatomy

    def invocations(self, inputs: Sequence[np.ndarray], step: int | None = None) -> Iterator[Any]:
        """Invoke on successive slices of ``inputs`` (``step`` samples, or the batch size) and
        yield the interpreter after each, while its tensors hold that slice's values. A size
        not yet proven is proven on the slice first (see ``prove``)."""
        self.check_inputs(inputs)
        start = 0
        while start < len(inputs[0]):
            chunk = [x[start : start + self._step(step)] for x in inputs]
            size = len(chunk[0])
            if size not in self._proven and self.prove(chunk) is None:
                continue  # batching refused: same slice, one sample at a time
            try:
                self._invoke(chunk)
            except _Rebatch:
                continue
            yield self._interpreter
            start += size

    def latency_ms(self, sample: Sequence[np.ndarray], repeats: int = 30) -> float:
        """Median wall time of one single-sample invocation, in milliseconds."""
        one = [x[:1] for x in sample]
        self.run(one)  # allocation at batch 1 is not part of the latency
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            self._invoke(one)
            times.append(time.perf_counter() - start)
        return float(np.median(times) * 1e3)


def _disagreement(
    outputs: Sequence[TensorInfo],
    batched: list[np.ndarray],
    singles: list[list[np.ndarray]],
    size: int,
) -> str | None:
    """Why a batch of ``size`` does not give the one-at-a-time outputs, or None."""
    for k, info in enumerate(outputs):
        want = (size, *singles[0][k].shape[1:])
        if batched[k].shape != want:
            return f"output {info.name!r} has shape {list(batched[k].shape)}, not {list(want)}"
        for i, single in enumerate(singles):
            if not np.array_equal(batched[k][i : i + 1], single[k], equal_nan=True):
                return f"output {info.name!r} of sample {i} differs from a run of that sample alone"
    return None


class _Rebatch(Exception):
    """Raised once when batching turned out impossible; the caller retries per sample."""


def _natural(details: dict[str, Any]) -> dict[str, Any]:
    return {name: details[name] for name in sorted(details, key=natural_key)}


def _info(name: str, details: dict[str, Any]) -> TensorInfo:
    shape = details.get("shape_signature")
    if shape is None or len(shape) == 0:
        shape = details["shape"]
    return TensorInfo(
        name=name,
        index=int(details["index"]),
        shape=tuple(int(d) for d in shape),
        dtype=np.dtype(details["dtype"]).name,
        quantization=qparams.from_details(details),
    )


def _to_input(x: np.ndarray, info: TensorInfo) -> np.ndarray:
    if info.quantization is not None:  # data always holds real values, as the reference takes
        return qparams.quantize(x, info.quantization)
    return np.ascontiguousarray(x, dtype=info.dtype)


def _from_output(q: np.ndarray, info: TensorInfo) -> np.ndarray:
    if info.quantization is not None:
        return qparams.dequantize(q, info.quantization)
    return np.array(q, copy=True)
