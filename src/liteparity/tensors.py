"""What is inside a ``.tflite``: its tensors and ops (``Anatomy``), and statistics of the
values its tensors take on real data (``TensorStats``).

Both are plain data computed in a worker process (numpy + LiteRT only) and read by the
diagnosis rules; the rules never touch an interpreter.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import qparams

#: Tensor types counted in a sample's memory (strings and resources are not arrays).
_NUMERIC = frozenset({"float32", "float16", "int8", "uint8", "int16", "int32", "int64", "bool"})

#: float16's largest finite value: the float16 recipe clips weights beyond it.
FLOAT16_MAX = 65504.0
#: float16's smallest normal value: below it precision is lost, below ~6e-8 values flush to 0.
FLOAT16_TINY = 6.103515625e-05


@dataclass(frozen=True)
class WeightSummary:
    """Numbers about one constant tensor, small enough to send between processes."""

    absmax: float
    size: int
    at_float16_max: int  # float16 constants sitting exactly at ±65504 (clipped)
    beyond_float16: int  # float32 values that float16 cannot hold
    tiny_for_float16: int  # non-zero float32 values below float16's smallest normal
    channel_absmax: tuple[float, ...]  # per output channel (axis 0, TFLite's layout)


@dataclass(frozen=True)
class TensorRecord:
    """One tensor of a ``.tflite``."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    quantization: qparams.QParams | None
    constant: bool
    producer: str | None  # op that writes it; None for inputs and constants
    weights: WeightSummary | None = None

    @property
    def quantized(self) -> bool:
        return self.quantization is not None


@dataclass(frozen=True)
class OpRecord:
    index: int
    name: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


@dataclass(frozen=True)
class Anatomy:
    """The tensors and ops of a model, and which tensors are its inputs and outputs."""

    tensors: tuple[TensorRecord, ...]
    ops: tuple[OpRecord, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    #: tensors of the other subgraphs (bodies of WHILE/IF: recurrent layers), for their
    #: types only: they cannot be read or matched (index -1)
    nested: tuple[TensorRecord, ...] = ()
    _by_index: dict[int, TensorRecord] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_index.update({t.index: t for t in self.tensors})

    def tensor(self, index: int) -> TensorRecord:
        return self._by_index[index]

    def activations(self) -> list[TensorRecord]:
        """Tensors computed at run time (outputs of ops), in execution order; not those
        computed from constants alone (float16 weights dequantized once, at load)."""
        return [
            self.tensor(i)
            for op in self.ops
            if not op.inputs or not all(i < 0 or self.tensor(i).constant for i in op.inputs)
            for i in op.outputs
            if i >= 0
        ]

    def bytes_per_sample(self) -> int:
        """Memory of every computed tensor for one sample (shapes read at batch 1)."""
        return sum(
            np.dtype(t.dtype).itemsize * math.prod(t.shape)
            for t in self.activations()
            if t.dtype in _NUMERIC
        )

    def weights(self) -> list[TensorRecord]:
        """Constant tensors with more than one value (weights, biases, lookup tables)."""
        return [t for t in self.tensors if t.constant and t.weights is not None]

    def consumers(self, index: int) -> list[OpRecord]:
        return [op for op in self.ops if index in op.inputs]


def build_anatomy(interpreter: Any) -> Anatomy:
    """Read tensors and ops from an allocated interpreter without delegates (a delegate hides
    the ops and tensors it takes over)."""
    ops = tuple(
        OpRecord(
            int(op["index"]),
            op["op_name"],
            tuple(int(i) for i in op["inputs"]),
            tuple(int(i) for i in op["outputs"]),
        )
        for op in interpreter._get_ops_details()
    )
    produced = {i: op.name for op in ops for i in op.outputs}
    read = {i for op in ops for i in op.inputs}
    inputs = tuple(int(d["index"]) for d in interpreter.get_input_details())
    outputs = tuple(int(d["index"]) for d in interpreter.get_output_details())
    records = []
    for d in interpreter.get_tensor_details():
        index = int(d["index"])
        constant = index not in produced and index not in inputs
        summary = None
        if constant and index in read:  # not the kernels' own scratch (uninitialised memory)
            summary = _weight_summary(interpreter, index)
        records.append(
            TensorRecord(
                index=index,
                name=d["name"],
                shape=tuple(int(s) for s in d["shape"]),
                dtype=np.dtype(d["dtype"]).name,
                quantization=qparams.from_details(d),
                constant=constant,
                producer=produced.get(index),
                weights=summary,
            )
        )
    nested = []
    for subgraph in range(1, interpreter._interpreter.NumSubgraphs()):
        for i in range(interpreter._interpreter.NumTensors(subgraph)):
            try:
                d = interpreter._get_tensor_details(i, subgraph)
            except ValueError:  # a tensor without a shape (an optional, empty operand)
                continue
            nested.append(
                TensorRecord(
                    index=-1,
                    name=d["name"],
                    shape=tuple(int(x) for x in d["shape"]),
                    dtype=np.dtype(d["dtype"]).name,
                    quantization=qparams.from_details(d),
                    constant=False,
                    producer=None,
                )
            )
    return Anatomy(tuple(records), ops, inputs, outputs, tuple(nested))


def _weight_summary(interpreter: Any, index: int) -> WeightSummary | None:
    try:
        value = np.asarray(interpreter.get_tensor(index))
    except ValueError:  # no data (a variable, or an optional input left empty)
        return None
    if value.size < 2 or not np.issubdtype(value.dtype, np.number):
        return None
    real = np.abs(value.astype(np.float64))
    channels = real.reshape(len(real), -1).max(axis=1) if real.ndim > 1 else real.max(keepdims=True)
    nonzero = real[real > 0]
    return WeightSummary(
        absmax=float(real.max()),
        size=int(value.size),
        at_float16_max=int(np.sum(real == FLOAT16_MAX)) if value.dtype == np.float16 else 0,
        beyond_float16=int(np.sum(real > FLOAT16_MAX)) if value.dtype == np.float32 else 0,
        tiny_for_float16=int(np.sum(nonzero < FLOAT16_TINY)) if value.dtype == np.float32 else 0,
        channel_absmax=tuple(float(c) for c in channels),
    )


@dataclass
class TensorStats:
    """Running statistics of one tensor's real values over the data seen so far."""

    count: int = 0
    min: float = float("inf")
    max: float = float("-inf")
    at_qmin: int = 0  # values on the lowest code (only counted when it stands below zero)
    at_qmax: int = 0  # values on the highest code
    below: int = 0  # values below the given bounds (calibration range of another model)
    above: int = 0
    channel_absmax: np.ndarray | None = None  # per channel, over the last axis

    def update(
        self,
        value: np.ndarray,
        quantization: qparams.QParams | None,
        bounds: tuple[float, float] | None,
    ) -> None:
        if quantization is not None and not quantization.per_channel:
            low, high = qparams.edge_codes(value, quantization)
            self.at_qmin += low
            self.at_qmax += high
            real = qparams.dequantize(value, quantization)
        else:
            real = np.asarray(value, dtype=np.float32)
        if real.size == 0:
            return
        self.count += real.size
        self.min = min(self.min, float(real.min()))
        self.max = max(self.max, float(real.max()))
        if bounds is not None:
            self.below += int(np.sum(real < bounds[0]))
            self.above += int(np.sum(real > bounds[1]))
        if real.ndim >= 2:
            per_channel = np.abs(real.reshape(-1, real.shape[-1])).max(axis=0)
            if self.channel_absmax is None or self.channel_absmax.shape != per_channel.shape:
                self.channel_absmax = per_channel
            else:
                np.maximum(self.channel_absmax, per_channel, out=self.channel_absmax)

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "min": self.min,
            "max": self.max,
            "at_qmin": self.at_qmin,
            "at_qmax": self.at_qmax,
            "below": self.below,
            "above": self.above,
        }


def collect_stats(
    interpreter: Any,
    anatomy: Anatomy,
    stats: dict[str, TensorStats],
    bounds: Mapping[str, tuple[float, float]],
) -> None:
    """Fold the tensors of the last invocation (of an inspected ``LiteModel``: every tensor
    readable) into ``stats``, keyed by tensor name."""
    for record in anatomy.activations():
        try:
            value = interpreter.get_tensor(record.index)
        except ValueError:
            continue
        if not np.issubdtype(value.dtype, np.number):
            continue
        stats.setdefault(record.name, TensorStats()).update(
            value, record.quantization, bounds.get(record.name)
        )
