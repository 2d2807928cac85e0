"""The runtime's own worker jobs: run a model on batches (``RunModel``, with its batch-size and
latency measurements and, on request, its anatomy) and read chosen tensors (``ReadTensors``)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from liteparity.errors import InterpreterError, LiteparityError
from liteparity.runtime.anatomy import Anatomy, output_quantization
from liteparity.runtime.jobs import Job, state
from liteparity.runtime.litemodel import LiteModel, TensorInfo
from liteparity.runtime.memory import sample_bytes


def _output_ranges(model: LiteModel) -> tuple[tuple[float, float] | None, ...]:
    """Per output, the real range its codes can hold; () when the model's ops cannot be read
    undelegated (a custom op only the default delegate resolves)."""
    try:
        anatomy = model.anatomy()
    except InterpreterError:
        return ()
    ranges = []
    for output in model.outputs:
        q = output_quantization(anatomy, output.index)
        ranges.append(None if q is None or q.per_channel else (float(q.min[0]), float(q.max[0])))
    return tuple(ranges)


def _bytes_per_sample(model: LiteModel) -> int:
    """What one sample costs the interpreter: every computed tensor (its arena holds at most
    that); only the inputs and outputs when the ops cannot be read undelegated."""
    try:
        return model.anatomy().bytes_per_sample()
    except InterpreterError:
        ends = [*model.inputs, *model.outputs]
        return sum(sample_bytes(t.dtype, t.sample_shape) for t in ends)


def _sample_ms(model: LiteModel) -> float | None:
    """Milliseconds one sample of zeros costs (the better of two runs: the first allocates).
    Kernels cost the same on any values, so this is known before any data is read. None for
    inputs with a free dimension or a type zeros cannot stand for."""
    if any(-1 in i.shape[1:] for i in model.inputs):
        return None
    zeros = [np.zeros((1, *i.shape[1:]), np.float32) for i in model.inputs]
    best = float("inf")
    try:
        for _ in range(2):
            start = time.perf_counter()
            model.run(zeros)
            best = min(best, time.perf_counter() - start)
    except LiteparityError:  # every invoke starts from fresh state: nothing to undo
        return None
    return best * 1000


@dataclass(frozen=True)
class ModelInfo:
    """What ``RunModel.start`` reports: the model's inputs and outputs (and its anatomy)."""

    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    anatomy: Anatomy | None = None
    #: per output, the real range its codes can hold (None: a float output)
    output_ranges: tuple[tuple[float, float] | None, ...] = ()
    #: bytes one sample costs while the model runs (``memory.rows_within`` sizes batches)
    bytes_per_sample: int = 0
    #: milliseconds one sample costs (``RunModel.cost``; None: not measured)
    sample_ms: float | None = None


@dataclass(frozen=True)
class RunSummary:
    """What ``RunModel.result`` reports: the batch size it ran at and, if asked, the median
    latency of one sample."""

    batch_size: int
    latency_ms: float | None = None


@dataclass(frozen=True)
class RunModel(Job):
    """Run a ``.tflite`` on the batches fed; each feed answers the outputs (real values).

    ``tune``: the first batch fed also picks the fastest batch size (timed: feed it to one
    worker at a time). ``latency``: ``result`` times single-sample runs of the first sample
    fed. ``anatomy``: ``start`` also reads the model's tensors and ops. ``batch_size`` forces
    the batch (still proven on the first batch fed, see ``LiteModel.tune_batch_size``).
    ``cost``: ``start`` also times one sample (``sample_ms``), so a run knows how long it will
    take before the first batch."""

    content: bytes
    threads: int = 1
    tune: bool = False
    latency: bool = False
    anatomy: bool = False
    builtin_kernels: bool = False  # LiteRT's builtin kernels only (see ``LiteModel``)
    batch_size: int | None = None
    cost: bool = False
    _model: LiteModel = state()
    _sample: list[np.ndarray] | None = state()

    doing = "running the model"
    independent_feeds = True

    def start(self) -> ModelInfo:
        model = LiteModel(
            self.content, num_threads=self.threads, builtin_kernels=self.builtin_kernels
        )
        self.keep(_model=model, _sample=None)
        anatomy = model.anatomy() if self.anatomy else None
        return ModelInfo(
            tuple(model.inputs),
            tuple(model.outputs),
            anatomy,
            _output_ranges(model),
            _bytes_per_sample(model),
            _sample_ms(model) if self.cost else None,
        )

    def feed(self, batch: list[np.ndarray]) -> list[np.ndarray]:
        first = self._sample is None
        if first and (self.tune or self.batch_size is not None):
            self._model.tune_batch_size(batch, forced=self.batch_size)
        outputs = self._model.run(batch)
        if first:  # a copy: a batch in shared memory is overwritten by the next
            self.keep(_sample=[np.array(x[:1]) for x in batch])
        return outputs

    def result(self) -> RunSummary:
        sample = self._sample
        latency = self._model.latency_ms(sample) if self.latency and sample is not None else None
        return RunSummary(self._model.batch_size, latency)


@dataclass(frozen=True)
class ReadTensors(Job):
    """The values of chosen tensors (by index in ``content``) for each batch fed, every
    intermediate tensor readable; one sample per invocation."""

    content: bytes
    indices: tuple[int, ...]
    threads: int = 1
    _model: LiteModel = state()

    doing = "reading tensors"

    def start(self) -> None:
        self.keep(_model=LiteModel(self.content, num_threads=self.threads, inspect=True))

    def feed(self, batch: list[np.ndarray]) -> dict[int, np.ndarray]:
        parts: dict[int, list[np.ndarray]] = {i: [] for i in self.indices}
        for interpreter in self._model.invocations(batch):
            for i in self.indices:
                parts[i].append(interpreter.get_tensor(i))
        return {i: np.concatenate(p) for i, p in parts.items() if p}
