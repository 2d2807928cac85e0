"""What every reference model answers, whatever its format: ``Source`` (inputs, outputs,
``predict``, a converter where it has one) and the checks that a file is a TFLite flatbuffer."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from liteparity.data.binding import IOSpec
from liteparity.errors import ModelError, first_line
from liteparity.reference.names import LayerNames

TFLITE_IDENTIFIER = b"TFL3"


class Source:
    """A loaded reference model. Subclasses fill ``io`` and implement ``predict``."""

    format: str = ""
    convertible: bool = True
    #: Whether the converter's calibrator takes samples by input name (its signature's keys
    #: are ``io.input_names``): it takes a list in the signature's order, not the model's.
    calibrates_by_name: bool = False
    #: Whether ``layer_outputs`` gives every layer's output (a Keras 3 model): what locate
    #: compares with the float32 TFLite model, layer by layer.
    compares_layers: bool = False

    def __init__(self, path: str) -> None:
        self.path = path
        self.io: IOSpec

    def predict(self, inputs: list[np.ndarray], shared: Any = None) -> list[np.ndarray]:
        """Outputs for a batch. ``shared`` is the same batch in shared memory
        (``SharedInputs``), for sources that run in a worker."""
        raise NotImplementedError

    def warm_up(self, inputs: list[np.ndarray]) -> None:
        """Get ready to predict batches like ``inputs`` (a worker measures its batch size)."""

    def job(self) -> Any:
        """The worker job that ``predict`` runs, for an engine that runs the reference on its
        own workers (Ray: once per shard, on the cluster); None: the model runs only in this
        process (a TensorFlow graph or Keras model)."""
        return None

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

    def bytes_per_sample(self) -> int | None:
        """What one sample costs while the model runs (its computed tensors); None when the
        format does not say (a graph: its float32 conversion, the same graph, stands in)."""
        return None

    def layer_names(self) -> frozenset[str]:
        """Names of the model's Keras layers (empty when it has none), for reports."""
        return frozenset()

    def output_layers(self) -> list[str]:
        """The layer that produces each model output, in output order (empty: no layers)."""
        return []

    def layer_outputs(self, inputs: list[np.ndarray]) -> dict[str, np.ndarray]:
        """Every layer's output for one batch, by layer name (``compares_layers``)."""
        raise NotImplementedError(f"a {self.format} model has no layer outputs to compare")

    def float64_twin(self) -> Any:
        """The model computing in float64, for the noise floor. ``ModelError`` when the graph
        has an op without a float64 kernel (or the source is not a TensorFlow model)."""
        if not self.convertible:
            raise ModelError(f"{self.path}: a .tflite cannot be run in float64")
        from liteparity._tf import import_tensorflow
        from liteparity.reference.graph_runner import GraphRunner, float64_graph

        tf = import_tensorflow()
        graph_def, inputs, outputs = self.frozen_graph()
        try:
            twin = GraphRunner(float64_graph(graph_def), inputs, outputs, np.float64)
            twin.predict(
                [np.zeros((1, *[max(d, 1) for d in s]), np.float32) for s in self.io.sample_shapes]
            )
        # no float64 kernel for an op (OpError when run, ValueError when imported)
        except (tf.errors.OpError, ValueError) as exc:
            raise ModelError(f"the model cannot run in float64: {first_line(exc)}") from exc
        return twin


@dataclass(frozen=True)
class SourceFacts:
    """What a caller needs of a model that another process loaded (the run's converter, which
    imports TensorFlow anyway): enough to read the data, choose recipes and name layers, so
    the caller itself never imports TensorFlow. Plain data: it pickles from that process and
    keeps as JSON across runs (``--resume``)."""

    path: str
    format: str
    io: IOSpec
    convertible: bool
    compares_layers: bool
    layer_names: LayerNames
    output_layers: tuple[str, ...]

    @classmethod
    def of(cls, source: Source) -> SourceFacts:
        names = source.layer_names()
        return cls(
            source.path,
            source.format,
            source.io,
            source.convertible,
            source.compares_layers,
            names if isinstance(names, LayerNames) else LayerNames(names),
            tuple(source.output_layers()),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "io": {
                "input_names": list(self.io.input_names),
                "input_shapes": [list(s) for s in self.io.input_shapes],
                "input_dtypes": list(self.io.input_dtypes),
                "output_names": list(self.io.output_names),
            },
            "convertible": self.convertible,
            "compares_layers": self.compares_layers,
            "layer_names": self.layer_names.to_dict(),
            "output_layers": list(self.output_layers),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SourceFacts:
        io = d["io"]
        return cls(
            d["path"],
            d["format"],
            IOSpec(
                tuple(io["input_names"]),
                tuple(tuple(s) for s in io["input_shapes"]),
                tuple(io["input_dtypes"]),
                tuple(io["output_names"]),
            ),
            bool(d["convertible"]),
            bool(d["compares_layers"]),
            LayerNames.from_dict(d["layer_names"]),
            tuple(d["output_layers"]),
        )


#: Written by ``liteparity.reference.keras2`` beside a Keras 2 model's SavedModel: its layer names.
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


def read_tflite(path: str | os.PathLike[str]) -> bytes:
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
