"""Make any float ``.tflite`` something ai-edge-quantizer accepts, without changing a bit of
what it computes.

Real models break AEQ three ways. Many have no SignatureDef, and AEQ calibrates through
signature runners (``Invalid signature_key provided: "serving_default"``). Every MediaPipe
model stores its weights as float16 constants behind DEQUANTIZE ops, which AEQ leaves alone
(its "quantized" face detector is the size of the float one). And models from the old
converter keep each op's code in the deprecated field only, so AEQ, which reads the current
one, takes every op for an ADD.

``prepare_tflite`` fixes all three on a copy. Each DEQUANTIZE whose input is a constant
float16 buffer is folded: its output tensor gets the float32 values as its own constant
buffer, the op and the float16 tensor are removed, and every tensor reference is renumbered.
A model without signature gets ``serving_default``, mapping each input and output tensor under
the name a user gave it (``runtime.litemodel.clean_name``), the names liteparity already uses
for that model. Op codes are written in the current field. float16 → float32 is exact and
LiteRT dequantizes those weights once at load anyway, so the prepared model's outputs are
bit-identical (``tests/test_tflite_prep.py`` proves it on three MediaPipe models with real
photos). It takes about 0.1 s for a MediaPipe model (object unpacking and packing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from liteparity.convert.flatbuffer import (
    ints,
    op_name,
    read_model,
    schema,
    tensor_data,
    tensor_name,
    write_model,
)
from liteparity.errors import ModelError
from liteparity.runtime.litemodel import clean_name, natural_key

#: The signature key AEQ looks for by default, and the one added to a model without any.
SIGNATURE_KEY = "serving_default"


@dataclass(frozen=True)
class PreparedTFLite:
    """A float32 copy of a ``.tflite`` that AEQ can calibrate and quantize."""

    content: bytes = field(repr=False)
    signature_key: str
    #: the signature's input names, in the order liteparity feeds the source model's inputs
    input_names: tuple[str, ...]
    folded: int  # float16 DEQUANTIZE ops folded into float32 constants
    signed: bool  # a signature was added


def prepare_tflite(content: bytes) -> PreparedTFLite:
    """The float32, signed copy of ``content`` (``content`` itself when it is both already)."""
    model = read_model(content)
    signatures = model.signatureDefs or []
    if len(signatures) > 1:
        keys = ", ".join(s.signatureKey.decode() for s in signatures)
        raise ModelError(f"the model has several signatures ({keys}); quantize one at a time")
    upgraded = _upgrade_op_codes(model)
    folded = sum(_fold_float16_weights(model, k) for k in range(len(model.subgraphs)))
    signed = not signatures
    if signed:
        model.signatureDefs = [_signature(model.subgraphs[0])]
    signature = model.signatureDefs[0]
    names = [m.name.decode() for m in signature.inputs or []]
    if not signed:  # liteparity feeds a signed model's inputs in natural name order
        names.sort(key=natural_key)
    if folded:
        _drop_unused_buffers(model)
    return PreparedTFLite(
        content=write_model(model) if upgraded or folded or signed else bytes(content),
        signature_key=signature.signatureKey.decode(),
        input_names=tuple(names),
        folded=folded,
        signed=signed,
    )


def _upgrade_op_codes(model: Any) -> bool:
    """Write each op's code in the field the current schema reads; whether any was not.

    Models from the old converter (the face detector) keep the code in
    ``deprecated_builtin_code`` only, leaving ``builtin_code`` 0, which is ADD: LiteRT reads
    the larger of the two, AEQ reads ``builtin_code`` and takes every op for an ADD (it then
    quantizes no weight at all, or convolution weights as if they were activations)."""
    upgraded = False
    for code in model.operatorCodes or []:
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        if code.builtinCode != builtin:
            code.builtinCode, upgraded = builtin, True
    return upgraded


def _fold_float16_weights(model: Any, index: int) -> int:
    """Fold every DEQUANTIZE of a constant float16 tensor in subgraph ``index``; how many
    were. The float16 tensors nothing reads any more are removed."""
    fb = schema()
    graph = model.subgraphs[index]
    tensors, buffers = graph.tensors, model.buffers
    protected = set(ints(graph.inputs)) | set(ints(graph.outputs))
    kept, sources = [], set()
    for op in graph.operators or []:
        weights = _float16_constant(model, graph, op)
        out = ints(op.outputs)[0] if weights is not None else -1
        if weights is None or out in protected or weights.size != _elements(tensors[out]):
            kept.append(op)
            continue
        tensors[out].buffer = len(buffers)
        buffers.append(fb.BufferT())
        buffers[-1].data = np.frombuffer(weights.astype("<f4").tobytes(), np.uint8)
        sources.add(ints(op.inputs)[0])
    folded = len(graph.operators or []) - len(kept)
    graph.operators = kept
    read = {i for op in kept for i in ints(op.inputs) + ints(op.intermediates)} | protected
    _remove_tensors(model, index, sources - read)
    return folded


def _remove_tensors(model: Any, index: int, dead: set[int]) -> None:
    """Drop tensors ``dead`` (which nothing refers to) from subgraph ``index``, renumbering
    every reference to the others: ops, the graph's inputs and outputs, signatures. AEQ reads
    every tensor of a graph while calibrating, and a tensor without data stops it."""
    if not dead:
        return
    graph = model.subgraphs[index]
    new: dict[int, int] = {-1: -1}  # -1: an optional input left out
    for old in range(len(graph.tensors)):
        if old not in dead:
            new[old] = len(new) - 1
    graph.tensors = [t for k, t in enumerate(graph.tensors) if k not in dead]

    def renumber(values: Any) -> list[int] | None:
        return None if values is None else [new[i] for i in ints(values)]

    for op in graph.operators:
        op.inputs, op.outputs = renumber(op.inputs), renumber(op.outputs)
        op.intermediates = renumber(op.intermediates)
    graph.inputs, graph.outputs = renumber(graph.inputs), renumber(graph.outputs)
    for signature in model.signatureDefs or []:
        if signature.subgraphIndex == index:
            for entry in (signature.inputs or []) + (signature.outputs or []):
                entry.tensorIndex = new[entry.tensorIndex]


def _float16_constant(model: Any, graph: Any, op: Any) -> np.ndarray | None:
    """The float16 values a DEQUANTIZE op reads from a constant buffer, else None."""
    inputs, outputs = ints(op.inputs), ints(op.outputs)
    if op_name(model, op) != "DEQUANTIZE" or len(inputs) != 1 or len(outputs) != 1:
        return None
    source, target = graph.tensors[inputs[0]], graph.tensors[outputs[0]]
    fb = schema()
    if source.type != fb.TensorType.FLOAT16 or target.type != fb.TensorType.FLOAT32:
        return None
    return tensor_data(model, source) if source.sparsity is None else None


def _elements(tensor: Any) -> int:
    return int(np.prod(tensor.shape)) if tensor.shape is not None else 1


def _drop_unused_buffers(model: Any) -> None:
    """Empty every buffer that no tensor and no metadata entry points at any more."""
    used = {t.buffer for g in model.subgraphs for t in g.tensors}
    used |= {m.buffer for m in model.metadata or []}
    for index, buffer in enumerate(model.buffers):
        if index not in used:
            buffer.data = None


def _signature(graph: Any) -> Any:
    """``serving_default`` over the graph's inputs and outputs, under their clean names."""
    fb = schema()

    def tensor_map(indices: Any, kind: str) -> list[Any]:
        maps, seen = [], set()
        for index in ints(indices):
            name = clean_name(tensor_name(graph.tensors[index]))
            if name in seen:
                raise ModelError(f"two {kind}s of the model are both named {name!r}")
            seen.add(name)
            entry = fb.TensorMapT()
            entry.name, entry.tensorIndex = name.encode(), int(index)
            maps.append(entry)
        return maps

    signature = fb.SignatureDefT()
    signature.inputs = tensor_map(graph.inputs, "input")
    signature.outputs = tensor_map(graph.outputs, "output")
    signature.signatureKey = SIGNATURE_KEY.encode()
    signature.subgraphIndex = 0
    return signature


def without_signature(content: bytes) -> bytes:
    """``content`` with its signatures removed: a model quantized from a copy that
    ``prepare_tflite`` signed gets back the source's interface, inputs and outputs in tensor
    order (a signature orders them by name, which may not be the source's order)."""
    model = read_model(content)
    graph = model.subgraphs[0]
    for signature in model.signatureDefs or []:
        # The quantizer's float-output DEQUANTIZE writes a new tensor (``X_dequant``): give
        # it the name the signature (and the source) calls it, so outputs match by name.
        for entry in list(signature.inputs or []) + list(signature.outputs or []):
            key = entry.name.decode() if isinstance(entry.name, bytes) else entry.name
            graph.tensors[entry.tensorIndex].name = key.encode()
    model.signatureDefs = []
    return write_model(model)
