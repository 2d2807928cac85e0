"""TensorFlow graphs run as they are: a frozen ``GraphDef`` in a TF1 session (batched, or one
sample at a time when batch 1 is baked in), the same graph computing in float64 (the noise
floor), and the ranges quantization-aware training left in its FakeQuant nodes. Nothing here
knows about ``Source``: the frozen-graph source and the float64 twin both build on it."""

from __future__ import annotations

from typing import Any

import numpy as np

from liteparity._tf import import_tensorflow


class GraphRunner:
    """Runs a frozen ``GraphDef`` in a TF1 session, batched, or one sample at a time when
    the graph has batch 1 baked in: into an input's shape (a Keras ``Input(batch_size=1)``,
    which the session refuses to feed more rows) or into a reshape (found on the first run)."""

    def __init__(
        self, graph_def: Any, inputs: list[str], outputs: list[str], dtype: Any = None
    ) -> None:
        tf = import_tensorflow()
        self._graph = tf.Graph()
        with self._graph.as_default():
            tf.compat.v1.import_graph_def(graph_def, name="")
        self._session = tf.compat.v1.Session(graph=self._graph)
        self.inputs = [self._graph.get_tensor_by_name(_tensor(n)) for n in inputs]
        self.outputs = [self._graph.get_tensor_by_name(_tensor(n)) for n in outputs]
        self._dtype = dtype
        self._per_sample = any(t.shape.rank and t.shape[0] == 1 for t in self.inputs)

    def predict(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        if self._dtype is not None:
            inputs = [x.astype(self._dtype) if x.dtype.kind == "f" else x for x in inputs]
        if not self._per_sample:
            try:
                return self._run(inputs)
            except import_tensorflow().errors.OpError:
                if len(inputs[0]) == 1:
                    raise
                self._per_sample = True  # batch 1 baked into a reshape: go one by one
        parts = [self._run([x[i : i + 1] for x in inputs]) for i in range(len(inputs[0]))]
        return [np.concatenate(chunk) for chunk in zip(*parts, strict=True)]

    def _run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        feed = dict(zip(self.inputs, inputs, strict=True))
        return [np.asarray(o) for o in self._session.run(self.outputs, feed_dict=feed)]

    def close(self) -> None:
        self._session.close()


def float64_graph(graph_def: Any) -> Any:
    """The same frozen graph computing in float64: every float32 type attribute and constant
    becomes float64. Running both on the same data measures the float32 noise floor."""
    tf = import_tensorflow()
    single, double = tf.float32.as_datatype_enum, tf.float64.as_datatype_enum

    twin = tf.compat.v1.GraphDef()
    twin.CopyFrom(graph_def)
    for node in twin.node:
        for key, attr in node.attr.items():
            if attr.type == single:
                attr.type = double
            if attr.HasField("list"):
                for i, t in enumerate(attr.list.type):
                    if t == single:
                        attr.list.type[i] = double
            if key == "value" and attr.tensor.dtype == single:
                value = tf.make_ndarray(attr.tensor).astype(np.float64)
                attr.tensor.CopyFrom(tf.make_tensor_proto(value))
    return twin


def learned_ranges(graph_def: Any) -> dict[str, tuple[float, float]]:
    """The activation ranges learned in quantization-aware training, by Keras layer name: the
    ``FakeQuantWithMinMaxVars`` nodes of a frozen graph whose input is computed, not a weight.
    ``tfmot`` wraps layers as ``quant_<name>``; the input quantizer is ``quantize_layer``."""
    tf = import_tensorflow()
    nodes = {n.name: n for n in graph_def.node}

    def constant(name: str) -> float | None:
        node = nodes.get(name.split(":")[0].lstrip("^"))
        while node is not None and node.op == "Identity":
            node = nodes.get(node.input[0].split(":")[0])
        if node is None or node.op != "Const":
            return None
        return float(tf.make_ndarray(node.attr["value"].tensor).reshape(-1)[0])

    ranges = {}
    for node in graph_def.node:
        if node.op != "FakeQuantWithMinMaxVars" or len(node.input) < 3:
            continue
        if constant(node.input[0]) is not None or "ReadVariableOp" in node.input[0]:
            continue  # a weight quantizer, not an activation's
        lo, hi = constant(node.input[1]), constant(node.input[2])
        layer = next(
            (p for p in node.name.split("/") if p.startswith("quant_") or p == "quantize_layer"),
            None,
        )
        if lo is not None and hi is not None and layer is not None:
            ranges[layer.removeprefix("quant_")] = (lo, hi)
    return ranges


def _tensor(name: str) -> str:
    return name if ":" in name else f"{name}:0"
