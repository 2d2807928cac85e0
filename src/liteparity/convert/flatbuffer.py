"""A ``.tflite`` as Python objects: read, name ops and tensors, write back.

The schema is the one ``ai_edge_litert`` ships (``schema_py_generated``, object API
``ModelT``), so nothing here imports TensorFlow or ai-edge-quantizer. Unpacking and packing a
MediaPipe-sized model (100-300 tensors, a few MB) takes tens of milliseconds: fine for the
one-off rewrites of ``convert``; ``runtime.surgery`` patches bytes in place where speed
matters.

The one private use of the ``flatbuffers`` builder lives here: constant buffers are written
16-byte aligned (the schema's ``force_align: 16``, which the generated Python code ignores),
as the TFLite converter writes them, so SIMD kernels read weights in place.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from liteparity.errors import ModelError, first_line

#: Every ``.tflite`` carries this identifier at bytes 4..8.
_IDENTIFIER = b"TFL3"
#: Flatbuffer offsets are 32-bit: larger models keep their weights outside (``offset``/``size``).
_MAX_SIZE = 2**31 - 1
_ALIGN = 16
_NUMPY_TYPES = {
    "FLOAT32": "<f4",
    "FLOAT16": "<f2",
    "FLOAT64": "<f8",
    "INT8": "i1",
    "UINT8": "u1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
}


def schema() -> Any:
    """``ai_edge_litert``'s generated TFLite schema module."""
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def read_model(content: bytes) -> Any:
    """The model as a ``ModelT``, every buffer's data inline (weights and custom options a
    large model keeps after the flatbuffer, at an offset, are read into place)."""
    if len(content) < 8 or content[4:8] != _IDENTIFIER:
        raise ModelError("not a .tflite model (no TFL3 identifier)")
    try:
        model = schema().ModelT.InitFromPackedBuf(content, 0)
    except Exception as exc:
        raise ModelError(f"not a readable .tflite model: {first_line(exc)}") from exc
    for buffer in model.buffers or []:
        if buffer.offset > 1:
            buffer.data = np.frombuffer(content, np.uint8, buffer.size, buffer.offset)
            buffer.offset = buffer.size = 0
    for op in (op for graph in model.subgraphs for op in graph.operators or []):
        if op.largeCustomOptionsOffset > 1:
            start, size = op.largeCustomOptionsOffset, op.largeCustomOptionsSize
            op.customOptions = np.frombuffer(content, np.uint8, size, start)
            op.largeCustomOptionsOffset = op.largeCustomOptionsSize = 0
    return model


def write_model(model: Any) -> bytes:
    """The ``.tflite`` bytes of ``model``, constant buffers 16-byte aligned."""
    import flatbuffers

    size = sum(len(b.data) + _ALIGN for b in model.buffers or [] if b.data is not None)
    if size >= _MAX_SIZE:
        raise ModelError("the rewritten model would exceed the 2 GB a .tflite flatbuffer holds")
    buffers = model.buffers
    model.buffers = [_AlignedBuffer(b.data) for b in buffers or []]
    try:
        builder = flatbuffers.Builder(1 << 16)
        builder.Finish(model.Pack(builder), file_identifier=_IDENTIFIER)
        return bytes(builder.Output())
    finally:
        model.buffers = buffers


def op_name(model: Any, op: Any) -> str:
    """``CONV_2D``, or a custom op's own code (``Convolution2DTransposeBias``)."""
    code = model.operatorCodes[op.opcodeIndex]
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    if builtin == schema().BuiltinOperator.CUSTOM:
        return (code.customCode or b"CUSTOM").decode()
    return _builtin_names().get(builtin, f"BUILTIN_{builtin}")


def ints(values: Any) -> list[int]:
    """A vector field (a numpy array, a list, or None when absent) as Python ints."""
    return [] if values is None else [int(v) for v in values]


def tensor_name(tensor: Any) -> str:
    return (tensor.name or b"").decode(errors="replace")


def tensor_data(model: Any, tensor: Any) -> np.ndarray | None:
    """A constant tensor's values (flat), None for a tensor computed at run time or of a
    type numpy does not hold (int4, int2)."""
    data = model.buffers[tensor.buffer].data
    dtype = _NUMPY_TYPES.get(tensor_type(tensor.type))
    if data is None or not len(data) or dtype is None:
        return None
    return np.frombuffer(np.asarray(data, np.uint8).tobytes(), dtype)


def tensor_type(type_code: int) -> str:
    """``INT8``, ``FLOAT16``, ... for a schema ``TensorType`` code."""
    return _names("TensorType").get(type_code, str(type_code))


def _builtin_names() -> dict[int, str]:
    return _names("BuiltinOperator")


@functools.cache
def _names(enum: str) -> dict[int, str]:
    """A schema enum's names by value."""
    return {v: k for k, v in vars(getattr(schema(), enum)).items() if not k.startswith("_")}


class _AlignedBuffer:
    """A ``BufferT`` whose data is packed 16-byte aligned (``force_align: 16``)."""

    def __init__(self, data: Any) -> None:
        self.data = data

    def Pack(self, builder: Any) -> int:  # the generated API calls it by this name
        fb = schema()
        vector = None
        if self.data is not None:
            payload = np.asarray(self.data, np.uint8).tobytes()
            builder.StartVector(1, len(payload), _ALIGN)
            builder.head -= len(payload)
            builder.Bytes[builder.head : builder.head + len(payload)] = payload
            vector = builder.EndVector()
        fb.BufferStart(builder)
        if vector is not None:
            fb.BufferAddData(builder, vector)
        end: int = fb.BufferEnd(builder)
        return end
