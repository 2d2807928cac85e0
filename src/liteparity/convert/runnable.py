"""Quantized models LiteRT refuses, and why, in one line.

A quantizer can write a model that LiteRT will not prepare: int8 convolution weights with a
non-zero zero point (the int8 kernels take symmetric weights only), a bias of the wrong type
for its activations, int16 activations with a zero point, a weight channel with a zero scale.
LiteRT's own message is a concatenation of delegate notes and a C++ check
(``failed to delegate CONCATENATION node #88tflite/kernels/conv.cc:390
affine_quantization->zero_point->data[i] != 0 (28 != 0)Node number 0 (CONV_2D) failed to
prepare.``). The cause is found by reading the model's tensors against what the kernels
require; the message only says where to look first (its node number or tensor index).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from liteparity.convert.flatbuffer import (
    ints,
    op_name,
    read_model,
    tensor_data,
    tensor_name,
    tensor_type,
)
from liteparity.errors import ConversionError, InterpreterError, first_line
from liteparity.runtime.jobs import Job
from liteparity.runtime.worker import Worker

#: Ops whose kernels take (input, weights, bias): the positions of each among the op's inputs.
_WEIGHTED_OPS = {
    "CONV_2D": (0, 1, 2),
    "DEPTHWISE_CONV_2D": (0, 1, 2),
    "FULLY_CONNECTED": (0, 1, 2),
    "TRANSPOSE_CONV": (2, 1, 3),
}
_KIND = {"FULLY_CONNECTED": "fully-connected"}  # the others are convolutions
#: The bias types LiteRT's integer kernels take, by activation type.
_BIAS_TYPES = {"INT8": ("INT32",), "INT16": ("INT64", "INT32")}
_SYMMETRIC_WEIGHTS = ("INT8", "INT4")


@dataclass(frozen=True)
class Violation:
    """One kernel requirement a tensor of the model breaks."""

    op_index: int
    tensors: frozenset[int]
    text: str


def check_runnable(content: bytes, label: str) -> None:
    """Load and allocate ``content`` as LiteRT will run it (default delegate); if LiteRT
    refuses it, a ``ConversionError`` naming the op, the tensor and what the kernel needs."""
    message = allocation_error(content)
    if message is not None:
        raise ConversionError(
            f"{label}: LiteRT refuses the model: {refusal_cause(content, message)}"
        )


def check_runnable_in_worker(content: bytes, label: str) -> None:
    """``check_runnable`` with the load and allocation in a worker process of its own: LiteRT
    can crash allocating a model a quantizer wrote, and that must not take the run down (the
    crash becomes the refusal's line)."""
    with Worker(f"loading {label}") as worker:
        try:
            message = worker.start(AllocationCheck(content)).get()
        except InterpreterError as exc:
            message = str(exc)
    if message is not None:
        raise ConversionError(
            f"{label}: LiteRT refuses the model: {refusal_cause(content, message)}"
        )


@dataclass(frozen=True)
class AllocationCheck(Job):
    """Load and allocate a model in the worker: LiteRT's message if it refuses, else None."""

    content: bytes

    doing = "loading the quantized model"

    def start(self) -> str | None:
        return allocation_error(self.content)


def allocation_error(content: bytes) -> str | None:
    """LiteRT's message when it cannot load or allocate ``content``, else None."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        Interpreter(model_content=content).allocate_tensors()
    except Exception as exc:  # LiteRT raises ValueError/RuntimeError with long texts
        return str(exc)
    return None


def refusal_cause(content: bytes, message: str) -> str:
    """One line for why LiteRT refused ``content`` with ``message``: the broken requirement
    found in the model's tensors at the node (or else the tensor) the message names, else
    the failing op with LiteRT's own reason."""
    model = read_model(content)
    graph = model.subgraphs[0]
    ops = graph.operators or []
    node, op = _failed_node(message)
    if node is not None and not (node < len(ops) and op_name(model, ops[node]) == op):
        node = None  # a delegate's node (TfLiteXNNPackDelegate), not one of the model's ops
    tensor = _named_tensor(message)
    found = list(violations(model))
    if node is not None:
        found = [v for v in found if v.op_index == node]
    elif tensor is not None:
        found = [v for v in found if tensor in v.tensors]
    if found:
        return found[0].text
    reason = _reason(message)
    if node is None and tensor is not None and tensor < len(graph.tensors):
        node = next((k for k, o in enumerate(ops) if tensor in ints(o.inputs)), None)
        kind = tensor_type(graph.tensors[tensor].type).lower()
        reason = f"{kind} tensor {_quoted(graph, tensor)}: {reason}"
    if node is None:
        return reason
    return f"{op_name(model, ops[node])} {_label(graph, ops[node])}: {reason}"


def violations(model: Any) -> Iterator[Violation]:
    """Every requirement of LiteRT's integer kernels that the main graph's tensors break, in
    op order."""
    graph = model.subgraphs[0]
    for index, op in enumerate(graph.operators or []):
        name = op_name(model, op)
        inputs = ints(op.inputs)
        if name in _WEIGHTED_OPS:
            positions = _WEIGHTED_OPS[name]
            roles = [inputs[p] if p < len(inputs) else -1 for p in positions]
            for problem, tensor in _weighted_op_problems(model, graph, name, *roles):
                yield Violation(
                    index, frozenset({tensor}), f"{name} {_label(graph, op)}: {problem}"
                )
        for i in inputs + ints(op.outputs):
            text = _int16_problem(model, graph, i)
            if text:
                yield Violation(index, frozenset({i}), f"{name} {_label(graph, op)}: {text}")


def _weighted_op_problems(
    model: Any, graph: Any, name: str, x: int, w: int, b: int
) -> Iterator[tuple[str, int]]:
    """What the op's integer kernel requires of its weights and bias, in the kernel's order:
    positive scales, symmetric int8/int4 weights, a wide enough bias, int8 weights under
    int16 activations."""
    if w < 0 or x < 0:
        return
    x_type, w_type = tensor_type(graph.tensors[x].type), tensor_type(graph.tensors[w].type)
    w_low = w_type.lower()
    scales, zero_points, unit = _qparams(model, graph, graph.tensors[w])
    if scales is not None and np.any(~(scales > 0)):
        at = int(np.flatnonzero(~(scales > 0))[0])
        yield (
            f"{w_low} weights {_quoted(graph, w)} with scale {scales[at]:g} in {unit} {at}; "
            "LiteRT requires positive scales",
            w,
        )
    if w_type in _SYMMETRIC_WEIGHTS and zero_points is not None and np.any(zero_points):
        zero_point = int(zero_points[np.flatnonzero(zero_points)[0]])
        kind = _KIND.get(name, "convolution")
        yield (
            f"{w_low} weights with zero point {zero_point}; LiteRT requires 0 for {w_low} "
            f"{kind} weights",
            w,
        )
    wanted = _BIAS_TYPES.get(x_type)
    if wanted and b >= 0 and tensor_type(graph.tensors[b].type) not in wanted:
        b_type = tensor_type(graph.tensors[b].type).lower()
        yield (
            f"{b_type} bias with {x_type.lower()} activations; LiteRT requires "
            f"{' or '.join(t.lower() for t in wanted)}",
            b,
        )
    if x_type == "INT16" and w_type != "INT8":
        yield f"{w_low} weights with int16 activations; LiteRT's int16x8 {name} takes int8", w


def _int16_problem(model: Any, graph: Any, index: int) -> str | None:
    """An int16 activation (not a constant) with a non-zero zero point."""
    if index < 0:
        return None
    tensor = graph.tensors[index]
    if tensor_type(tensor.type) != "INT16" or _constant(model, tensor):
        return None
    _, zero_points, _ = _qparams(model, graph, tensor)
    if zero_points is None or not np.any(zero_points):
        return None
    zero_point = int(zero_points[np.flatnonzero(zero_points)[0]])
    return (
        f"int16 tensor {_quoted(graph, index)} with zero point {zero_point}; LiteRT requires 0 "
        "for int16 activations"
    )


def _qparams(
    model: Any, graph: Any, tensor: Any
) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    """A tensor's scales and zero points, and what one scale covers (a channel, or a block
    of a blockwise tensor, whose scales are a tensor of their own)."""
    q = tensor.quantization
    if q is None:
        return None, None, "channel"
    details = q.details
    if details is not None and hasattr(details, "blockSize"):
        scales = tensor_data(model, graph.tensors[details.scales])
        zero_points = None
        if details.zeroPoints >= 0:
            zero_points = tensor_data(model, graph.tensors[details.zeroPoints])
        return _array(scales, np.float64), _array(zero_points, np.int64), "block"
    return _array(q.scale, np.float64), _array(q.zeroPoint, np.int64), "channel"


def _array(values: Any, dtype: Any) -> np.ndarray | None:
    return None if values is None or not len(values) else np.asarray(values, dtype)


def _constant(model: Any, tensor: Any) -> bool:
    data = model.buffers[tensor.buffer].data
    return data is not None and len(data) > 0


def _label(graph: Any, op: Any) -> str:
    """An op by the tensor it computes (the name users and AEQ know it by)."""
    outputs = ints(op.outputs)
    return _quoted(graph, outputs[0]) if outputs else "''"


def _quoted(graph: Any, index: int) -> str:
    return repr(tensor_name(graph.tensors[index]))


def _failed_node(message: str) -> tuple[int | None, str | None]:
    found = re.search(r"Node number (\d+) \((\w+)\) failed to prepare", message)
    return (int(found.group(1)), found.group(2)) if found else (None, None)


def _named_tensor(message: str) -> int | None:
    found = re.search(r"\btensor (\d+)\b", message)
    return int(found.group(1)) if found else None


def _reason(message: str) -> str:
    """LiteRT's first reason, without the delegate's notes and the node trailer (its
    messages are concatenated without separators)."""
    text = re.sub(r"failed to delegate \w+ node #\d+", "", first_line(message))
    text = re.sub(r"Node number \d+ \(\w+\) failed to prepare\.?", "", text).strip()
    text = re.split(r"(?<=in XNNPACK delegate)", text)[0]
    return text or first_line(message)
