"""Rewrite a ``.tflite`` so every intermediate tensor stays readable with the delegate on.

A delegate (XNNPack, which LiteRT applies by default) computes its partition of the graph in
its own buffers and writes back only the partition's outputs. Reading intermediate tensors
used to mean an undelegated interpreter, 4-5x slower on convolutions. Listing every computed
tensor among the model's outputs makes the delegate write them all: the same kernels that run
the model in production, at their speed.

The flatbuffer is patched in place, not unpacked and rebuilt (that took 15 ms on a 7-layer
CNN in Python and grows with the model): the new outputs vector is appended at the end and the
subgraph's field pointed at it (flatbuffer offsets point forward, so the end is always
reachable); dropped ops are cut out of the operators vector, whose elements are offsets
relative to themselves and are re-based as they move. The graph and its fields' positions are
read by ``liteparity._litert.read_graph`` (the schema that ships with ``ai_edge_litert``, a
private module): no TensorFlow import, so worker processes stay light.
"""

from __future__ import annotations

import struct
from collections.abc import Collection

from liteparity._litert import read_graph
from liteparity.errors import ModelError

#: flatbuffer offsets are 32-bit: a model this large keeps its weights outside (offsets
#: past 2 GB are rejected)
_MAX_SIZE = 2**31 - 1


def expose_tensors(content: bytes, drop_custom_ops: Collection[str] = ()) -> bytes | None:
    """``content`` with every tensor an op computes listed as a model output (after the
    model's own outputs, which keep their places) and the custom ops named in
    ``drop_custom_ops`` removed with their outputs. Tensor indices do not change.

    Tensors folded from constants alone (float16 weights dequantized at load) are not
    listed: XNNPack computes them once, in its own buffers.

    None when the rewrite does not apply: a model with control flow (tensors of WHILE/IF
    bodies cannot be outputs of the main graph), one whose dropped ops feed other ops or
    produce its outputs, one near 2 GB, or a file that is not a TFLite flatbuffer (the
    interpreter then reports it properly)."""
    try:
        graph = read_graph(content)
    except ModelError:
        return None
    if graph.subgraphs != 1 or graph.outputs_field is None:
        return None
    ops = graph.ops
    dropped_ops = {k for k, op in enumerate(ops) if op.custom_code in drop_custom_ops}
    dropped = {i for k in dropped_ops for i in ops[k].outputs}
    kept = [op for k, op in enumerate(ops) if k not in dropped_ops]
    if any(i in dropped for op in kept for i in op.inputs):
        return None  # another op reads what a dropped op computes
    own = graph.outputs
    if dropped & set(own):
        return None  # the model's own outputs would change
    outputs, listed = list(own), set(own)
    computed = {i for op in ops for i in op.outputs} | set(graph.inputs)
    for op in kept:
        inputs = [i for i in op.inputs if i >= 0]
        if inputs and not any(i in computed for i in inputs):
            continue  # folded from constants (float16 weights): XNNPack never writes it
        for i in op.outputs:
            if i >= 0 and i not in listed:
                outputs.append(i)
                listed.add(i)
    if len(content) + 4 * len(outputs) + 8 >= _MAX_SIZE:
        return None
    buf = bytearray(content)
    if dropped_ops:
        if graph.operators_field is None:
            return None
        keep = sorted(set(range(len(ops))) - dropped_ops)
        _cut_vector(buf, graph.operators_field, keep)
    _append_vector(buf, graph.outputs_field, outputs)
    return bytes(buf)


def output_count(content: bytes) -> int:
    """How many outputs the model's main graph lists."""
    return len(read_graph(content).outputs)


def _append_vector(buf: bytearray, field: int, values: list[int]) -> None:
    """Write an int32 vector at the (4-aligned) end and point the field at byte ``field`` (a
    uoffset, relative to its own position) at it."""
    buf.extend(b"\0" * (-len(buf) % 4))
    start = len(buf)
    buf.extend(struct.pack(f"<I{len(values)}i", len(values), *values))
    struct.pack_into("<I", buf, field, start - field)


def _cut_vector(buf: bytearray, field: int, keep: list[int]) -> None:
    """Keep elements ``keep`` of the vector of table offsets the field at ``field`` points
    to, in place: each element is an offset from its own position, so one moved ``d`` places
    earlier grows by ``4·d``."""
    length_at = field + struct.unpack_from("<I", buf, field)[0]
    first = length_at + 4
    old = [struct.unpack_from("<I", buf, first + 4 * k)[0] for k in keep]
    for j, (k, offset) in enumerate(zip(keep, old, strict=True)):
        struct.pack_into("<I", buf, first + 4 * j, offset + 4 * (k - j))
    struct.pack_into("<I", buf, length_at, len(keep))
