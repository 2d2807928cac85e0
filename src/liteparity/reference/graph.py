"""TF1 frozen graphs (``.pb``): the reference itself, the float64 twin that measures the noise
floor, and the ranges learned in quantization-aware training (FakeQuant nodes)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from liteparity._tf import import_tensorflow
from liteparity.data.binding import IOSpec
from liteparity.errors import ModelError, UsageError, first_line
from liteparity.reference.base import Source, _shape
from liteparity.reference.graph_runner import GraphRunner


class FrozenGraphSource(Source):
    """A TF1 frozen ``GraphDef`` (``.pb``), with input and output names."""

    format = "frozen_graph"

    def __init__(
        self,
        path: str,
        *,
        inputs: Sequence[str] | None = None,
        outputs: Sequence[str] | None = None,
        input_shapes: Sequence[tuple[int, ...]] | None = None,
    ) -> None:
        super().__init__(path)
        self.graph_def = _parse(path)
        inputs, outputs = _endpoints(path, self.graph_def, inputs, outputs)
        self._runner = GraphRunner(self.graph_def, inputs, outputs)
        self._in, self._out = self._runner.inputs, self._runner.outputs
        shapes = list(input_shapes) if input_shapes else [None] * len(inputs)
        if len(shapes) != len(inputs):
            raise UsageError(f"{len(shapes)} input shapes for {len(inputs)} inputs")
        resolved = [_input_shape(path, t, given) for t, given in zip(self._in, shapes, strict=True)]
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


def _parse(path: str) -> Any:
    """The ``GraphDef`` in ``path``; a file that is not one is a ``ModelError``."""
    tf = import_tensorflow()
    from google.protobuf.message import DecodeError  # (TensorFlow's own protobuf)

    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(Path(path).read_bytes())
    except (DecodeError, OSError) as exc:
        raise ModelError(f"{path}: not a frozen GraphDef (.pb): {first_line(exc)}") from exc
    if not graph_def.node:
        raise ModelError(f"{path}: the graph is empty")
    return graph_def


def _endpoints(
    path: str, graph_def: Any, inputs: Sequence[str] | None, outputs: Sequence[str] | None
) -> tuple[list[str], list[str]]:
    """The graph's inputs (given, else its Placeholders) and outputs (given, else its one
    sink), each checked to name a node."""
    nodes = {node.name: node for node in graph_def.node}
    placeholders = [n for n, node in nodes.items() if node.op == "Placeholder"]
    inputs = list(inputs or placeholders)
    if not inputs:
        raise UsageError(f"{path}: the graph has no Placeholder: name its inputs (--inputs)")
    if not outputs:
        consumed = {i.split(":")[0].lstrip("^") for node in graph_def.node for i in node.input}
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
    return inputs, list(outputs)


def _input_shape(path: str, tensor: Any, given: tuple[int, ...] | None) -> tuple[int, ...]:
    """An input's shape, given or read from the graph; every dimension but the batch known."""
    known = tensor.shape.rank is not None
    dims = _shape(given) if given is not None else (_shape(tensor.shape.as_list()) if known else ())
    if any(d < 0 for d in dims[1:]) or not dims:
        raise UsageError(
            f"{path}: input {tensor.op.name!r} has shape {list(dims)}: give it with "
            "--input-shapes (e.g. 1,28,28,1)"
        )
    return dims
