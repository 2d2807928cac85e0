"""Every private LiteRT API liteparity uses, in one fence (tested by ``tests/test_compat.py``).

LiteRT's public Python surface runs a model. liteparity also lists a model's ops, keeps every
tensor of an undelegated run readable, and reads (and patches) the ``.tflite`` flatbuffer
itself: an underscore method, ``experimental_`` constructor options, and the generated schema
module that ships with ``ai_edge_litert``. Any release may change them, so each use is one
small function here; when one changes, one function and the compatibility test that names it
fail, not every stage that relies on it.

Imports ``ai_edge_litert`` only, lazily: worker processes load this module and never import
TensorFlow.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from liteparity.errors import ModelError, first_line

#: What LiteRT's Python wrapper raises: C++ status failures (a model it cannot prepare or
#: run) become ``RuntimeError``, arguments it refuses (a malformed flatbuffer, a bad shape or
#: dtype) ``ValueError``.
LITERT_ERRORS: tuple[type[Exception], ...] = (RuntimeError, ValueError)

#: vtable slots of the SubGraph table's ``outputs`` and ``operators`` fields in the TFLite
#: schema (``schema.fbs``: fields are only ever appended, so these numbers stay).
_OUTPUTS_SLOT, _OPERATORS_SLOT = 8, 10

#: What the generated schema reader raises on bytes that are not a TFLite flatbuffer: reads
#: past the end (``struct.error``), offsets pointing before the start (``TypeError`` from
#: flatbuffers' number checks), vectors that do not fit (``ValueError`` from numpy) and op
#: codes that are not text (``UnicodeDecodeError``, a ``ValueError``).
_UNREADABLE: tuple[type[Exception], ...] = (struct.error, TypeError, ValueError)
#: ... and an op whose op-code index points past the op-code table.
_UNREADABLE_OR_SHORT: tuple[type[Exception], ...] = (*_UNREADABLE, IndexError)


@dataclass(frozen=True)
class OpDetails:
    """One op of the interpreter's main graph, as the interpreter runs it."""

    index: int
    name: str  # "CONV_2D", "DELEGATE" for a delegate's partition, a custom op's code
    inputs: tuple[int, ...]  # tensor indices; -1 for an optional operand left out
    outputs: tuple[int, ...]


def new_interpreter(content: bytes, num_threads: int, *, undelegated: bool = False) -> Any:
    """A LiteRT ``Interpreter`` for ``content``. ``undelegated`` runs the builtin kernels alone
    and keeps every tensor after ``invoke`` (``experimental_preserve_all_tensors`` with
    ``OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES``): otherwise XNNPack computes in its
    own buffers and intermediate tensors read as stale memory, and the arena reuses them.
    ``ModelError`` when LiteRT refuses the bytes."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    options: dict[str, Any] = {}
    if undelegated:
        options["experimental_preserve_all_tensors"] = True
        options["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        return Interpreter(model_content=content, num_threads=num_threads, **options)
    except LITERT_ERRORS as exc:
        raise ModelError(f"not a valid .tflite model: {first_line(exc)}") from exc


def op_details(interpreter: Any) -> list[OpDetails]:
    """The ops of an interpreter's main graph in execution order, with their tensors
    (``Interpreter._get_ops_details``: LiteRT has no public way to list ops). Under a delegate,
    each partition it took over is one ``DELEGATE`` op."""
    return [
        OpDetails(
            index=int(op["index"]),
            name=str(op["op_name"]),
            inputs=tuple(int(i) for i in op["inputs"]),
            outputs=tuple(int(i) for i in op["outputs"]),
        )
        for op in interpreter._get_ops_details()
    ]


@dataclass(frozen=True)
class FlatOp:
    """One operator as the flatbuffer stores it."""

    custom_code: str  # "" for a builtin op
    inputs: tuple[int, ...]  # -1 for an optional operand left out
    outputs: tuple[int, ...]
    activation: str = "NONE"  # the fused activation ("RELU6"), "NONE" without one


@dataclass(frozen=True)
class FlatGraph:
    """The main graph (subgraph 0) of a ``.tflite`` as stored in its flatbuffer, with where
    its ``outputs`` and ``operators`` fields sit, for in-place patching
    (``runtime.surgery``)."""

    subgraphs: int  # how many subgraphs the model has (control flow bodies add some)
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    ops: tuple[FlatOp, ...]
    #: byte positions of the subgraph's ``outputs`` / ``operators`` fields: each holds a
    #: uoffset (relative to its own position) to an int32 / table-offset vector; None when
    #: the field is absent
    outputs_field: int | None
    operators_field: int | None


def read_graph(content: bytes) -> FlatGraph:
    """The main graph of a ``.tflite``, read with ``ai_edge_litert.schema_py_generated`` (the
    generated TFLite schema; no TensorFlow import). ``ModelError`` when the bytes are not a
    TFLite flatbuffer this reader can follow."""
    from ai_edge_litert import schema_py_generated as schema

    try:
        model = schema.Model.GetRootAs(content, 0)
        subgraphs = model.SubgraphsLength()
        if subgraphs < 1:
            raise ModelError("the .tflite has no graph")
        graph = model.Subgraphs(0)
        ops = []
        for k in range(graph.OperatorsLength()):
            op = graph.Operators(k)
            opcode = model.OperatorCodes(op.OpcodeIndex())  # None: no op code table
            if opcode is None:
                raise ModelError("the .tflite lists operators but no operator codes")
            code = (opcode.CustomCode() or b"").decode()
            ops.append(
                FlatOp(code, _ints(op.InputsAsNumpy()), _ints(op.OutputsAsNumpy()), _activation(op))
            )
        return FlatGraph(
            subgraphs=subgraphs,
            inputs=_ints(graph.InputsAsNumpy()),
            outputs=_ints(graph.OutputsAsNumpy()),
            ops=tuple(ops),
            outputs_field=_field(graph, _OUTPUTS_SLOT),
            operators_field=_field(graph, _OPERATORS_SLOT),
        )
    except _UNREADABLE as exc:
        raise ModelError(f"not a TFLite flatbuffer: {first_line(exc)}") from exc


def unset_variables(content: bytes) -> tuple[str, ...]:
    """The resource variables ``content`` reads (``VAR_HANDLE`` → ``READ_VARIABLE``) that no
    op of any subgraph assigns (``ASSIGN_VARIABLE``), in the order they are read.

    A SavedModel whose variables the converter cannot freeze (a Keras 3 model held by a
    ``tf.Module``, then ``tf.saved_model.save``) converts into such a model: conversion and
    loading succeed, and LiteRT reads variables nobody set, so the outputs are garbage (NaN,
    Inf, or numbers that merely look plausible). Only reads of a handle made in the same
    subgraph count: a handle passed into a loop body is not judged. Called on models LiteRT
    has loaded; bytes this reader cannot follow give ()."""
    from ai_edge_litert import schema_py_generated as schema

    codes = vars(schema.BuiltinOperator)
    var_handle, read, assign = (
        codes["VAR_HANDLE"], codes["READ_VARIABLE"], codes["ASSIGN_VARIABLE"]
    )
    try:
        model = schema.Model.GetRootAs(content, 0)
        builtin = [
            max(c.BuiltinCode(), c.DeprecatedBuiltinCode())
            for c in (model.OperatorCodes(k) for k in range(model.OperatorCodesLength()))
        ]
        reads: list[str] = []
        assigned: set[str] = set()
        for g in range(model.SubgraphsLength()):
            graph, handles = model.Subgraphs(g), dict[int, str]()
            for k in range(graph.OperatorsLength()):
                op = graph.Operators(k)
                code = builtin[op.OpcodeIndex()]
                if code == var_handle:
                    options = schema.OperatorT.InitFromObj(op).builtinOptions
                    name = (getattr(options, "sharedName", None) or b"").decode()
                    handles.update((t, name) for t in _ints(op.OutputsAsNumpy()))
                elif code in (read, assign) and _ints(op.InputsAsNumpy())[:1]:
                    handle = handles.get(_ints(op.InputsAsNumpy())[0])
                    if handle is not None and code == assign:
                        assigned.add(handle)
                    elif handle is not None and handle not in reads:
                        reads.append(handle)
    except _UNREADABLE_OR_SHORT:
        return ()  # LiteRT judges whether the bytes are a model; this reader cannot tell
    return tuple(v for v in reads if v not in assigned)


def _activation(op: Any) -> str:
    """The fused activation of an operator (its builtin options' ``fused_activation_function``,
    read through the schema's object API), "NONE" for an op without one."""
    from ai_edge_litert import schema_py_generated as schema

    options = schema.OperatorT.InitFromObj(op).builtinOptions
    code = getattr(options, "fusedActivationFunction", 0) or 0
    names = {v: k for k, v in vars(schema.ActivationFunctionType).items() if not k.startswith("_")}
    return str(names.get(code, "NONE"))


def preload() -> None:
    """Import the interpreter and the schema now (a worker does it while its parent is still
    converting, so the first request does not pay for it)."""
    import ai_edge_litert.interpreter  # noqa: F401
    from ai_edge_litert import schema_py_generated  # noqa: F401


def _ints(values: Any) -> tuple[int, ...]:
    """A vector read with ``…AsNumpy()`` (the reader returns 0 for an absent one)."""
    return tuple(int(v) for v in values) if not isinstance(values, int) else ()


def _field(table: Any, slot: int) -> int | None:
    """Byte position of a table's field, through the generated class's private ``_tab``."""
    tab = table._tab
    relative = tab.Offset(slot)
    return int(tab.Pos + relative) if relative else None
