"""What is inside a ``.tflite``: its tensors and ops (``Anatomy``), read from an interpreter,
and what ops do to quantization ranges. Plain data, computed in a worker process."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from liteparity import _litert, qparams
from liteparity.plain import json_number, json_numbers, number, numbers

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

    def to_dict(self) -> dict[str, Any]:
        return {
            **vars(self),
            "absmax": json_number(self.absmax),
            "channel_absmax": json_numbers(self.channel_absmax),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WeightSummary:
        return cls(
            **{
                **d,
                "absmax": number(d["absmax"]),
                "channel_absmax": tuple(numbers(d["channel_absmax"])),
            }
        )


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

    def to_dict(self) -> dict[str, Any]:
        return {
            **vars(self),
            "shape": list(self.shape),
            "quantization": self.quantization.to_dict() if self.quantization else None,
            "weights": self.weights.to_dict() if self.weights else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TensorRecord:
        q, w = d["quantization"], d["weights"]
        return cls(
            **{
                **d,
                "shape": tuple(d["shape"]),
                "quantization": qparams.QParams.from_dict(q) if q else None,
                "weights": WeightSummary.from_dict(w) if w else None,
            }
        )


@dataclass(frozen=True)
class OpRecord:
    index: int
    name: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    activation: str = "NONE"  # fused activation: "RELU6" fixes the output range to [0, 6]

    def to_dict(self) -> dict[str, Any]:
        return {**vars(self), "inputs": list(self.inputs), "outputs": list(self.outputs)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OpRecord:
        return cls(
            d["index"],
            d["name"],
            tuple(d["inputs"]),
            tuple(d["outputs"]),
            d.get("activation", "NONE"),
        )


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
    #: what could not be read, one line (weights of a model LiteRT's builtin kernels cannot
    #: allocate: a custom op only a delegate resolves); None when everything was read
    unread: str | None = None
    _by_index: dict[int, TensorRecord] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_index.update({t.index: t for t in self.tensors})

    def tensor(self, index: int) -> TensorRecord:
        return self._by_index[index]

    def to_dict(self) -> dict[str, Any]:
        return {
            "tensors": [t.to_dict() for t in self.tensors],
            "ops": [op.to_dict() for op in self.ops],
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "nested": [t.to_dict() for t in self.nested],
            "unread": self.unread,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Anatomy:
        return cls(
            tuple(TensorRecord.from_dict(t) for t in d["tensors"]),
            tuple(OpRecord.from_dict(op) for op in d["ops"]),
            tuple(d["inputs"]),
            tuple(d["outputs"]),
            tuple(TensorRecord.from_dict(t) for t in d["nested"]),
            d.get("unread"),
        )

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


def build_anatomy(
    interpreter: Any, activations: Sequence[str] = (), unread: str | None = None
) -> Anatomy:
    """Read tensors and ops from an interpreter without delegates (a delegate hides the ops
    and tensors it takes over); ``activations``: each op's fused activation, by op index.
    ``unread``: why the interpreter could not be allocated; its weights are then left out."""
    fused = dict(enumerate(activations))
    ops = tuple(
        OpRecord(op.index, op.name, op.inputs, op.outputs, fused.get(op.index, "NONE"))
        for op in _litert.op_details(interpreter)
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
        # not the kernels' own scratch (uninitialised memory); data exists once allocated
        if constant and index in read and unread is None:
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
    for subgraph in range(1, interpreter.num_subgraphs()):
        # (tensors without a shape, optional empty operands, are left out)
        for d in interpreter.get_tensor_details(subgraph):
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
    return Anatomy(tuple(records), ops, inputs, outputs, tuple(nested), unread)


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


#: Ops whose output keeps its input's quantization: they do not set a range of their own
#: (the converter gives their int8 output the input's (scale, zero_point); the kernels of
#: AVERAGE_POOL_2D and RESIZE_BILINEAR require it).
RANGE_PRESERVING_OPS = frozenset(
    {
        "MAX_POOL_2D",
        "AVERAGE_POOL_2D",
        "RESIZE_BILINEAR",
        "RESHAPE",
        "SQUEEZE",
        "EXPAND_DIMS",
        "CONCATENATION",
        "STRIDED_SLICE",
        "SLICE",
        "PAD",
        "PADV2",
        "TRANSPOSE",
        "GATHER",
        "SPLIT",
        "SPLIT_V",
        "SPACE_TO_DEPTH",
        "DEPTH_TO_SPACE",
        "RESIZE_NEAREST_NEIGHBOR",
        "PACK",
        "UNPACK",
        "DEQUANTIZE",
        "SHAPE",
    }
)

#: Ops with a fixed output range by definition (softmax ∈ [0, 1]): never "saturated".
FIXED_RANGE_OPS = frozenset({"SOFTMAX", "LOGISTIC", "TANH", "LOG_SOFTMAX", "HARD_SWISH"})


def is_float_compute(anatomy: Anatomy) -> bool:
    """No quantized, int8 or float16 tensor in any subgraph: a plain float32 model."""
    everything = (*anatomy.tensors, *anatomy.nested)
    return not any(t.quantized or t.dtype in ("float16", "int8") for t in everything)


def quantized_activations(anatomy: Anatomy) -> list[TensorRecord]:
    """Run-time tensors holding integer codes whose range came from data: not the model's
    input (``input-range-mismatch`` covers it) and not a fixed-range op's output (softmax),
    also when that reaches the tensor through requantization or reshaping."""
    producers = {i: op for op in anatomy.ops for i in op.outputs}

    def inherited(index: int, seen: frozenset[int] = frozenset()) -> bool:
        op = producers.get(index)
        if op is None:
            return index in anatomy.inputs
        if op.name in FIXED_RANGE_OPS:
            return True
        if (op.name == "QUANTIZE" or op.name in RANGE_PRESERVING_OPS) and index not in seen:
            return inherited(op.inputs[0], seen | {index})
        return False

    return [
        t
        for t in anatomy.activations()
        if t.quantized
        and not t.quantization.per_channel  # type: ignore[union-attr]
        and not inherited(t.index)
    ]


def input_quantization(anatomy: Anatomy, index: int) -> qparams.QParams | None:
    """The quantization a model input really gets: its own, or that of the QUANTIZE op that
    turns the float input into codes (full-integer models with float I/O)."""
    tensor = anatomy.tensor(index)
    if tensor.quantized:
        return tensor.quantization
    for op in anatomy.consumers(index):
        if op.name == "QUANTIZE":
            return anatomy.tensor(op.outputs[0]).quantization
    return None


def output_quantization(anatomy: Anatomy, index: int) -> qparams.QParams | None:
    """The quantization a model output really has: its own, or that of the codes a
    DEQUANTIZE op turns into the float output (full-integer models with float I/O). The
    output can hold no real value beyond that range, whatever the data."""
    tensor = anatomy.tensor(index)
    if tensor.quantized:
        return tensor.quantization
    for op in anatomy.ops:
        if index in op.outputs and op.name == "DEQUANTIZE":
            return anatomy.tensor(op.inputs[0]).quantization
    return None
