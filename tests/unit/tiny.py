"""Tiny ``.tflite`` models written with the flatbuffer schema that ships with LiteRT: no
TensorFlow, built in a millisecond, with weights simple enough to check outputs by hand.

``float_model()``: ``x[-1, 4] → FULLY_CONNECTED(W, b) → h → RELU → y``.
``int8_model()``: the same network quantized: ``x → QUANTIZE → x_q → FC (int8) → h →
RELU → y_q → DEQUANTIZE → y``, ``h`` named as in the float model.
"""

from __future__ import annotations

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

W = np.array([[0.5, -0.25, 1.0, 0.0], [-1.0, 0.75, 0.25, 0.5], [0.125, 0.5, -0.5, 1.5]], np.float32)
B = np.array([0.125, -0.25, 0.375], np.float32)

#: (scale, zero point) of the int8 model's tensors.
X_Q = (1 / 32, 0)
W_Q = (1 / 64, 0)
H_Q = (1 / 32, -10)

#: ``h_scale / (x_scale·w_scale)``: a power of two, so rescaling the sums is exact.
STEP = round(H_Q[0] / (X_Q[0] * W_Q[0]))


def grid_inputs(count: int, seed: int = 0) -> np.ndarray:
    """Inputs on the int8 input grid (multiples of 1/32 in [-4, 4)) for which every value is
    exact: the float model's in float32 (multiples of 1/2048) and the int8 model's, since no
    requantization of ``h`` falls on a tie that kernels may round either way."""
    rng = np.random.default_rng(seed)
    rows: list[np.ndarray] = []
    while len(rows) < count:
        x = rng.integers(-128, 128, 4) * X_Q[0]
        if not np.any(accumulators(x[None]) % STEP == STEP // 2):
            rows.append(x)
    return np.array(rows, np.float32)


def accumulators(x: np.ndarray) -> np.ndarray:
    """The int8 FULLY_CONNECTED's int32 sums (units of the bias scale)."""
    xq = np.round(x / X_Q[0]) + X_Q[1]
    wq = np.round(W / W_Q[0])
    return (xq - X_Q[1]) @ wq.T + np.round(B / (X_Q[0] * W_Q[0]))


def float_outputs(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(h, y)`` of the float model, in float64 (exact for ``grid_inputs``)."""
    h = x.astype(np.float64) @ W.T.astype(np.float64) + B
    return h, np.maximum(h, 0.0)


def int8_codes(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(h codes, y)`` of the int8 model by hand: the sums divided by ``STEP``, rounded,
    clamped to int8; RELU keeps codes at or above the zero point; ``y`` dequantized."""
    scale, zero = H_Q
    codes = np.clip(np.round(accumulators(x) / STEP) + zero, -128, 127)
    y = (np.maximum(codes, zero) - zero) * scale
    return codes.astype(np.int64), y


def _quant(scale: float, zero_point: int) -> schema.QuantizationParametersT:
    q = schema.QuantizationParametersT()
    q.scale, q.zeroPoint = [scale], [zero_point]
    return q


class _Graph:
    def __init__(self) -> None:
        self.tensors: list[schema.TensorT] = []
        self.buffers: list[schema.BufferT] = [schema.BufferT()]
        self.ops: list[schema.OperatorT] = []
        self.codes: list[int] = []

    def tensor(self, name, shape, dtype, quant=None, data=None) -> int:
        t = schema.TensorT()
        t.name, t.type = name, dtype
        t.shape = [1 if d < 0 else d for d in shape]
        t.shapeSignature = list(shape)
        t.quantization = quant
        t.buffer = 0
        if data is not None:
            buf = schema.BufferT()
            buf.data = list(np.ascontiguousarray(data).tobytes())
            self.buffers.append(buf)
            t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        return len(self.tensors) - 1

    def op(self, code: int, inputs: list[int], outputs: list[int]) -> None:
        if code not in self.codes:
            self.codes.append(code)
        op = schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = self.codes.index(code), inputs, outputs
        if code == schema.BuiltinOperator.FULLY_CONNECTED:
            op.builtinOptionsType = schema.BuiltinOptions.FullyConnectedOptions
            op.builtinOptions = schema.FullyConnectedOptionsT()
        self.ops.append(op)

    def build(self, inputs: list[int], outputs: list[int]) -> bytes:
        graph = schema.SubGraphT()
        graph.tensors, graph.operators = self.tensors, self.ops
        graph.inputs, graph.outputs = inputs, outputs
        model = schema.ModelT()
        model.version, model.subgraphs, model.buffers = 3, [graph], self.buffers
        model.operatorCodes = []
        for code in self.codes:
            c = schema.OperatorCodeT()
            c.builtinCode, c.deprecatedBuiltinCode, c.version = code, min(code, 127), 1
            model.operatorCodes.append(c)
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())


def float_model() -> bytes:
    g, t, op = _Graph(), schema.TensorType, schema.BuiltinOperator
    x = g.tensor("x", [-1, 4], t.FLOAT32)
    w = g.tensor("w", [3, 4], t.FLOAT32, data=W)
    b = g.tensor("b", [3], t.FLOAT32, data=B)
    h = g.tensor("h", [-1, 3], t.FLOAT32)
    y = g.tensor("y", [-1, 3], t.FLOAT32)
    g.op(op.FULLY_CONNECTED, [x, w, b], [h])
    g.op(op.RELU, [h], [y])
    return g.build([x], [y])


def int8_model() -> bytes:
    g, t, op = _Graph(), schema.TensorType, schema.BuiltinOperator
    x = g.tensor("x", [-1, 4], t.FLOAT32)
    x_q = g.tensor("x_q", [-1, 4], t.INT8, _quant(*X_Q))
    wq = np.round(W / W_Q[0]).astype(np.int8)
    w = g.tensor("w", [3, 4], t.INT8, _quant(*W_Q), data=wq)
    bias_scale = X_Q[0] * W_Q[0]
    bq = np.round(B / bias_scale).astype(np.int32)
    b = g.tensor("b", [3], t.INT32, _quant(bias_scale, 0), data=bq)
    h = g.tensor("h", [-1, 3], t.INT8, _quant(*H_Q))
    y_q = g.tensor("y_q", [-1, 3], t.INT8, _quant(*H_Q))
    y = g.tensor("y", [-1, 3], t.FLOAT32)
    g.op(op.QUANTIZE, [x], [x_q])
    g.op(op.FULLY_CONNECTED, [x_q, w, b], [h])
    g.op(op.RELU, [h], [y_q])
    g.op(op.DEQUANTIZE, [y_q], [y])
    return g.build([x], [y])
