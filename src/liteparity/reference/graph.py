"""TF1 frozen graphs (``.pb``): the reference itself, the float64 twin that measures the noise
floor, and the ranges learned in quantization-aware training (FakeQuant nodes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from liteparity._tf import import_tensorflow
from liteparity.data.binding import IOSpec
from liteparity.errors import ModelError, UsageError, first_line
from liteparity.reference.base import Source, _shape


class FrozenGraphSource(Source):
    """A TF1 frozen ``GraphDef`` (``.pb``), with input and output names."""

    format = "frozen_graph"

    def __init__(
        self,
        path: str,
        *,
        inputs: list[str] | None = None,
        outputs: list[str] | None = None,
        input_shapes: list[tuple[int, ...]] | None = None,
    ) -> None:
        super().__init__(path)
        tf = import_tensorflow()
        from google.protobuf.message import DecodeError  # (TensorFlow's own protobuf)

        graph_def = tf.compat.v1.GraphDef()
        try:
            graph_def.ParseFromString(Path(path).read_bytes())
        except (DecodeError, OSError) as exc:
            raise ModelError(f"{path}: not a frozen GraphDef (.pb): {first_line(exc)}") from exc
        nodes = {node.name: node for node in graph_def.node}
        if not nodes:
            raise ModelError(f"{path}: the graph is empty")
        placeholders = [n for n, node in nodes.items() if node.op == "Placeholder"]
        inputs = list(inputs or placeholders)
        if not inputs:
            raise UsageError(f"{path}: the graph has no Placeholder: name its inputs (--inputs)")
        consumed = {i.split(":")[0].lstrip("^") for node in graph_def.node for i in node.input}
        if not outputs:
            sinks = [
                n
                for n, node in nodes.items()
                if n not in consumed and node.op not in ("NoOp", "Const", "Placeholder")
            ]
            if len(sinks) != 1:
                raise UsageError(
                    f"{path}: name the graph's outputs (--outputs); candidates: "
                    f"{', '.join(sinks[:10]) or 'none found'}"
                )
            outputs = sinks
        for name in [*inputs, *outputs]:
            if name.split(":")[0] not in nodes:
                raise UsageError(f"{path}: no node named {name!r} in the graph")
        self.graph_def = graph_def
        self._runner = GraphRunner(graph_def, inputs, outputs)
        self._in, self._out = self._runner.inputs, self._runner.outputs
        shapes = list(input_shapes) if input_shapes else [None] * len(inputs)
        if len(shapes) != len(inputs):
            raise UsageError(f"{len(shapes)} input shapes for {len(inputs)} inputs")
        resolved = []
        for tensor, given in zip(self._in, shapes, strict=True):
            known = tensor.shape.rank is not None
            dims = (
                _shape(given)
                if given is not None
                else (_shape(tensor.shape.as_list()) if known else ())
            )
            if any(d < 0 for d in dims[1:]) or not dims:
                raise UsageError(
                    f"{path}: input {tensor.op.name!r} has shape {list(dims)}: give it with "
                    "--input-shapes (e.g. 1,28,28,1)"
                )
            resolved.append(dims)
        self._names = [t.op.name for t in self._in], [t.op.name for t in self._out]
        self.io = IOSpec(
            input_names=tuple(self._names[0]),
            input_shapes=tuple(resolved),
            input_dtypes=tuple(t.dtype.name for t in self._in),
            output_names=tuple(self._names[1]),
        )

    def predict(self, inputs: list[np.ndarray], shared: Any = None) -> list[np.ndarray]:
        return self._runner.predict(inputs)

    def converter(self, batch_size: int | None = None) -> Any:
        tf = import_tensorflow()
        shapes = {
            name: [1, *shape[1:]]
            for name, shape in zip(self.io.input_names, self.io.input_shapes, strict=True)
        }
        return tf.compat.v1.lite.TFLiteConverter.from_frozen_graph(
            self.path, list(self._names[0]), list(self._names[1]), input_shapes=shapes
        )

    def frozen_graph(self) -> tuple[Any, list[str], list[str]]:
        return self.graph_def, list(self._names[0]), list(self._names[1])

    def close(self) -> None:
        self._runner.close()


class GraphRunner:
    """Runs a frozen ``GraphDef`` in a TF1 session, batched, or one sample at a time when
    the graph has batch 1 baked into a reshape."""

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
        self._per_sample = False

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
