"""Reference models: load a source file and run it in TensorFlow.

Supported: Keras 3 ``.keras``, Keras 2 ``.h5`` (loaded by ``tf_keras`` in a child process and
handed back as a SavedModel, so the user's Keras is never switched), SavedModel directories,
TF1 frozen graphs ``.pb`` and float ``.tflite`` files. Every source answers the same few
questions: its inputs (names, per-sample shapes, dtypes), its outputs, ``predict`` on a batch,
and, when it can be converted, a TFLite converter and a frozen graph (for the TF1 recipes).

Only this module and ``recipes`` import TensorFlow, and only when a source is loaded.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelError, UsageError
from .litemodel import first_line, natural_key

TFLITE_IDENTIFIER = b"TFL3"


def import_tensorflow() -> Any:
    """TensorFlow, imported on first use (it costs seconds) with its C++ chatter hushed."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


@contextlib.contextmanager
def quiet() -> Any:
    """Swallow what TensorFlow, Keras and the converter's C++ print ("Saved artifact at ...",
    "fully_quantize: 0, ...") and their warnings; errors still arrive as exceptions."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                yield
        finally:
            for fd, copy in zip((1, 2), saved, strict=True):
                os.dup2(copy, fd)
                os.close(copy)


@dataclass(frozen=True)
class IOSpec:
    """Names, shapes (batch first, -1 where free) and dtypes of a model's inputs/outputs."""

    input_names: tuple[str, ...]
    input_shapes: tuple[tuple[int, ...], ...]
    input_dtypes: tuple[str, ...]
    output_names: tuple[str, ...]

    @property
    def sample_shapes(self) -> tuple[tuple[int, ...], ...]:
        return tuple(shape[1:] for shape in self.input_shapes)


class Source:
    """A loaded reference model. Subclasses fill ``io`` and implement ``predict``."""

    format: str = ""
    convertible: bool = True

    def __init__(self, path: str) -> None:
        self.path = path
        self.io: IOSpec

    def predict(self, inputs: list[np.ndarray], shared: Any = None) -> list[np.ndarray]:
        """Outputs for a batch. ``shared`` is the same batch in shared memory
        (``workers.SharedInputs``), for sources that run in a worker."""
        raise NotImplementedError

    def warm_up(self, inputs: list[np.ndarray]) -> None:
        """Get ready to predict batches like ``inputs`` (a worker measures its batch size)."""

    def converter(self, batch_size: int | None = None) -> Any:
        """A ``tf.lite.TFLiteConverter`` for this model (v2 API, or v1 for frozen graphs);
        ``batch_size`` fixes the batch dimension where the source allows it."""
        raise NotImplementedError

    def frozen_graph(self) -> tuple[Any, list[str], list[str]]:
        """``(graph_def, input op names, output op names)`` for the TF1 converter."""
        raise NotImplementedError

    def size_bytes(self) -> int:
        path = Path(self.path)
        if path.is_dir():
            return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        return path.stat().st_size

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "inputs": [
                {"name": n, "shape": list(s), "dtype": d}
                for n, s, d in zip(
                    self.io.input_names, self.io.input_shapes, self.io.input_dtypes, strict=True
                )
            ],
            "outputs": list(self.io.output_names),
        }

    def close(self) -> None:
        """Release processes or temporary files the source holds."""

    def layer_names(self) -> frozenset[str]:
        """Names of the model's Keras layers (empty when it has none), for reports."""
        return frozenset()

    def float64_twin(self) -> GraphRunner:
        """The model computing in float64, for the noise floor. ``ModelError`` when the graph
        has an op without a float64 kernel (or the source is not a TensorFlow model)."""
        if not self.convertible:
            raise ModelError(f"{self.path}: a .tflite cannot be run in float64")
        graph_def, inputs, outputs = self.frozen_graph()
        try:
            twin = GraphRunner(float64_graph(graph_def), inputs, outputs, np.float64)
            twin.predict(
                [np.zeros((1, *[max(d, 1) for d in s]), np.float32) for s in self.io.sample_shapes]
            )
        except Exception as exc:
            raise ModelError(f"the model cannot run in float64: {first_line(exc)}") from exc
        return twin


#: Written by ``liteparity.keras2`` beside a Keras 2 model's SavedModel: its layer names.
LAYERS_FILE = "liteparity_layers.json"


def keras_layer_names(model: Any) -> list[str]:
    """Every layer name of a (possibly nested) Keras model."""
    out = []
    for layer in getattr(model, "layers", []):
        out.append(layer.name)
        out += keras_layer_names(layer)
    return out


def _shape(dims: Any) -> tuple[int, ...]:
    return tuple(-1 if d is None else int(d) for d in dims)


def _freeze(function: Any) -> tuple[Any, list[str], list[str]]:
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    frozen = convert_variables_to_constants_v2(function)
    graph_def = frozen.graph.as_graph_def()
    names = [t.name.split(":")[0] for t in frozen.inputs if t.dtype.name != "resource"]
    outputs = [t.name.split(":")[0] for t in frozen.outputs]
    return graph_def, names, outputs


class KerasSource(Source):
    """A Keras 3 ``.keras`` file."""

    format = "keras"

    def __init__(self, path: str, *, unsafe: bool = False, model: Any = None) -> None:
        super().__init__(path)
        import_tensorflow()
        import keras

        if model is None:
            try:
                model = keras.saving.load_model(path, safe_mode=not unsafe, compile=False)
            except Exception as exc:
                text = str(exc)
                if "safe_mode" in text or "Lambda" in text or "lambda" in text:
                    raise ModelError(
                        f"{path}: the model contains a Lambda or custom layer that Keras will "
                        "not deserialize in safe mode: pass --unsafe (unsafe=True) if you "
                        "trust the file"
                    ) from exc
                raise ModelError(f"{path}: Keras cannot load it: {first_line(text)}") from exc
        self.model = model
        inputs = list(model.inputs)
        self.io = IOSpec(
            input_names=tuple(t.name for t in inputs),
            input_shapes=tuple(_shape(t.shape) for t in inputs),
            input_dtypes=tuple(str(t.dtype) for t in inputs),
            output_names=tuple(f"output_{i}" for i in range(len(model.outputs))),
        )
        self._layer_probe: tuple[list[str], Any] | None = None

    def predict(self, inputs: list[np.ndarray], shared: Any = None) -> list[np.ndarray]:
        out = self.model.predict_on_batch(inputs[0] if len(inputs) == 1 else inputs)
        if isinstance(out, dict):
            out = list(out.values())
        if not isinstance(out, (list, tuple)):
            out = [out]
        return [np.asarray(o) for o in out]

    def converter(self, batch_size: int | None = None) -> Any:
        tf = import_tensorflow()
        if batch_size is None:
            with quiet():
                return tf.lite.TFLiteConverter.from_keras_model(self.model)
        import keras

        # The same layers and weights behind inputs with a fixed batch dimension.
        inputs = [
            keras.Input(
                batch_shape=(batch_size, *(None if d < 0 else d for d in shape[1:])),
                dtype=dtype,
                name=name,
            )
            for name, shape, dtype in zip(
                self.io.input_names, self.io.input_shapes, self.io.input_dtypes, strict=True
            )
        ]
        try:
            fixed = keras.models.clone_model(
                self.model, input_tensors=inputs if len(inputs) > 1 else inputs[0]
            )
        except Exception as exc:
            raise ModelError(f"cannot fix the batch size of this model: {first_line(exc)}") from exc
        fixed.set_weights(self.model.get_weights())
        with quiet():
            return tf.lite.TFLiteConverter.from_keras_model(fixed)

    def layer_names(self) -> frozenset[str]:
        return frozenset(keras_layer_names(self.model))

    def output_layers(self) -> list[str]:
        """The layer that produces each model output, in output order."""
        return [t._keras_history[0].name for t in self.model.outputs]

    def layer_outputs(self, inputs: list[np.ndarray]) -> dict[str, np.ndarray]:
        """Every top-level layer's output (single-output layers) for one batch."""
        import keras

        if self._layer_probe is None:  # built once: each new Model would retrace
            layers = [
                layer
                for layer in self.model.layers
                if not isinstance(layer, keras.layers.InputLayer)
                and not isinstance(getattr(layer, "output", None), (list, tuple, dict))
            ]
            probe = keras.Model(self.model.inputs, [layer.output for layer in layers])
            self._layer_probe = ([layer.name for layer in layers], probe)
        names, probe = self._layer_probe
        values = probe.predict_on_batch(inputs[0] if len(inputs) == 1 else inputs)
        values = values if isinstance(values, (list, tuple)) else [values]
        return {name: np.asarray(v) for name, v in zip(names, values, strict=True)}

    def frozen_graph(self) -> tuple[Any, list[str], list[str]]:
        tf = import_tensorflow()
        specs = [
            tf.TensorSpec([None if d < 0 else d for d in shape], dtype, name=name)
            for name, shape, dtype in zip(
                self.io.input_names, self.io.input_shapes, self.io.input_dtypes, strict=True
            )
        ]
        model = self.model

        def call(*args: Any) -> Any:
            return model(list(args) if len(args) > 1 else args[0], training=False)

        return _freeze(tf.function(call).get_concrete_function(*specs))


class SavedModelSource(Source):
    """A SavedModel directory, run through its ``serving_default`` signature."""

    format = "saved_model"

    def __init__(
        self, path: str, *, format: str | None = None, keep: Any = None, origin: str | None = None
    ) -> None:
        super().__init__(path)
        tf = import_tensorflow()
        self._keep = keep  # a TemporaryDirectory that must live as long as this source
        self.origin = origin  # the Keras 2 .h5 this SavedModel was exported from
        if format:
            self.format = format
        try:
            loaded = tf.saved_model.load(path)
        except Exception as exc:
            raise ModelError(f"{path}: not a loadable SavedModel: {first_line(exc)}") from exc
        signatures = dict(loaded.signatures)
        if not signatures:
            raise ModelError(f"{path}: the SavedModel has no serving signature")
        key = "serving_default" if "serving_default" in signatures else next(iter(signatures))
        self._loaded, self._fn = loaded, signatures[key]
        specs = self._fn.structured_input_signature[1]
        names = sorted(specs, key=natural_key)
        outputs = sorted(self._fn.structured_outputs, key=natural_key)
        self.io = IOSpec(
            input_names=tuple(names),
            input_shapes=tuple(_shape(specs[n].shape) for n in names),
            input_dtypes=tuple(specs[n].dtype.name for n in names),
            output_names=tuple(outputs),
        )

    def layer_names(self) -> frozenset[str]:
        listed = Path(self.path) / LAYERS_FILE
        return frozenset(json.loads(listed.read_text())) if listed.exists() else frozenset()

    def predict(self, inputs: list[np.ndarray], shared: Any = None) -> list[np.ndarray]:
        out = self._fn(**dict(zip(self.io.input_names, inputs, strict=True)))
        return [out[name].numpy() for name in self.io.output_names]

    def converter(self, batch_size: int | None = None) -> Any:
        tf = import_tensorflow()
        return tf.lite.TFLiteConverter.from_saved_model(self.path)

    def frozen_graph(self) -> tuple[Any, list[str], list[str]]:
        return _freeze(self._fn)

    def close(self) -> None:
        if self._keep is not None:
            self._keep.cleanup()
            self._keep = None


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
        graph_def = tf.compat.v1.GraphDef()
        try:
            graph_def.ParseFromString(Path(path).read_bytes())
        except Exception as exc:
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
            except Exception:
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
    from tensorflow.core.framework import types_pb2

    twin = tf.compat.v1.GraphDef()
    twin.CopyFrom(graph_def)
    for node in twin.node:
        for key, attr in node.attr.items():
            if attr.type == types_pb2.DT_FLOAT:
                attr.type = types_pb2.DT_DOUBLE
            if attr.HasField("list"):
                for i, t in enumerate(attr.list.type):
                    if t == types_pb2.DT_FLOAT:
                        attr.list.type[i] = types_pb2.DT_DOUBLE
            if key == "value" and attr.tensor.dtype == types_pb2.DT_FLOAT:
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


class TFLiteSource(Source):
    """A float ``.tflite`` used as the reference; it runs in a worker process like any
    candidate, so a crashing file cannot take liteparity down."""

    format = "tflite"
    convertible = False

    def __init__(self, path: str) -> None:
        super().__init__(path)
        from .workers import Worker

        self.content = read_tflite(path)
        self.worker = Worker(Path(path).name, self.content)
        try:
            info = self.worker.info
        except BaseException:
            self.worker.close()
            raise
        self.io = IOSpec(
            input_names=tuple(i.name for i in info.inputs),
            input_shapes=tuple(i.shape for i in info.inputs),
            input_dtypes=tuple(
                "float32" if i.quantization is not None else i.dtype for i in info.inputs
            ),
            output_names=tuple(o.name for o in info.outputs),
        )

    def predict(self, inputs: list[np.ndarray], shared: Any = None) -> list[np.ndarray]:
        self.worker.submit(shared if shared is not None else inputs)
        return self.worker.receive()

    def warm_up(self, inputs: list[np.ndarray]) -> None:
        self.worker.tune_batch_size(inputs)

    def close(self) -> None:
        self.worker.close()


def read_tflite(path: str | Path) -> bytes:
    """The bytes of a ``.tflite`` file, refusing anything that is not a TFLite flatbuffer."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    content = path.read_bytes()
    if len(content) < 8 or content[4:8] != TFLITE_IDENTIFIER:
        raise ModelError(
            f"{path}: not a TFLite flatbuffer (no 'TFL3' identifier at byte 4): is the file "
            "truncated or of another kind?"
        )
    return content


def load(
    path: str | Path | Source,
    *,
    inputs: list[str] | None = None,
    outputs: list[str] | None = None,
    input_shapes: list[tuple[int, ...]] | None = None,
    unsafe: bool = False,
) -> Source:
    """Load the reference model at ``path``, choosing the loader by what the file is (a
    loaded ``Source`` is returned as it is)."""
    if isinstance(path, Source):
        return path
    p = Path(path)
    if not p.exists():
        raise ModelError(f"model file not found: {p}")
    name = p.name.lower()
    if p.is_dir():
        if not (p / "saved_model.pb").exists() and not (p / "saved_model.pbtxt").exists():
            raise ModelError(f"{p}: a directory without saved_model.pb is not a SavedModel")
        return SavedModelSource(str(p))
    if name.endswith(".keras"):
        if not zipfile.is_zipfile(p):
            raise ModelError(f"{p}: not a Keras 3 .keras file (it is not a zip archive)")
        return KerasSource(str(p), unsafe=unsafe)
    if name.endswith((".h5", ".hdf5")):
        return _load_keras2(p)
    if name.endswith(".tflite"):
        return TFLiteSource(str(p))
    if name.endswith((".pb", ".pbtxt")):
        return FrozenGraphSource(str(p), inputs=inputs, outputs=outputs, input_shapes=input_shapes)
    raise ModelError(
        f"{p}: unknown model format: expected .keras, .h5, a SavedModel directory, a frozen "
        ".pb graph or a .tflite file"
    )


def _load_keras2(path: Path) -> SavedModelSource:
    """Export a Keras 2 ``.h5`` through ``tf_keras`` in a child process (it needs
    ``TF_USE_LEGACY_KERAS=1`` before TensorFlow is imported), then load the SavedModel."""
    keep = tempfile.TemporaryDirectory(prefix="liteparity-h5-")
    out = Path(keep.name) / "saved_model"
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [sys.executable, "-m", "liteparity.keras2", str(path), str(out)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        keep.cleanup()
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        raise ModelError(f"{path}: tf_keras cannot load it: {lines[-1] if lines else 'unknown'}")
    return SavedModelSource(str(out), format="keras2_h5", keep=keep, origin=str(path))


def quantization_aware(
    source: Source, x: np.ndarray, y: np.ndarray, epochs: int, *, with_copy: bool = False
) -> Any:
    """Fine-tune ``source`` for ``epochs`` with fake quantization (tfmot, in a tf_keras child
    process) on labelled ``(x, y)`` and convert it with the learned ranges. tfmot supports
    Keras 2 models only: a Keras 3 model gets a clear error. ``with_copy`` returns
    ``(qat, copied)``: also the trained weights copied into the float model and post-training
    quantized (seed 003's workaround)."""
    from .errors import ConversionError

    origin = getattr(source, "origin", None)
    if origin is None:
        raise UsageError(
            "quantization-aware training needs a Keras 2 .h5 model: tensorflow-model-"
            "optimization does not support Keras 3 models"
        )
    with tempfile.TemporaryDirectory(prefix="liteparity-qat-") as tmp:
        data, out = Path(tmp) / "train.npz", Path(tmp) / "qat.tflite"
        copied = Path(tmp) / "copied.tflite"
        np.savez(data, x=x, y=y)
        env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
        args = ["qat", origin, str(data), str(out), str(epochs)]
        if with_copy:
            args.append(str(copied))
        proc = subprocess.run(
            [sys.executable, "-m", "liteparity.keras2", *args],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
            raise ConversionError(
                f"quantization-aware training failed: {lines[-1] if lines else 'unknown'}"
            )
        return (out.read_bytes(), copied.read_bytes()) if with_copy else out.read_bytes()


def _tensor(name: str) -> str:
    return name if ":" in name else f"{name}:0"
