"""Keras 3 ``.keras`` references: loaded in safe mode unless the user passed ``--unsafe``."""

from __future__ import annotations

import zipfile
from typing import Any

import numpy as np

from liteparity._tf import freeze, import_tensorflow, output_layer_names, quiet
from liteparity.data.binding import IOSpec
from liteparity.errors import ModelError, first_line
from liteparity.reference.base import Source, _shape, keras_layer_names
from liteparity.reference.names import LayerNames
from liteparity.runtime.memory import sample_bytes

#: What ``keras.saving.load_model`` raises for a file it cannot load: a refused or unknown
#: layer (ValueError, TypeError), a missing archive member (KeyError), unreadable weights
#: (OSError), a damaged archive (BadZipFile).
_LOAD_ERRORS = (ValueError, TypeError, KeyError, OSError, zipfile.BadZipFile)


class KerasSource(Source):
    """A Keras 3 ``.keras`` file."""

    format = "keras"
    calibrates_by_name = True
    compares_layers = True

    def __init__(self, path: str, *, unsafe: bool = False, model: Any = None) -> None:
        super().__init__(path)
        import_tensorflow()
        import keras

        if model is None:
            try:
                model = keras.saving.load_model(path, safe_mode=not unsafe, compile=False)
            except _LOAD_ERRORS as exc:
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
            output_names=keras_output_names(model),
        )
        self._layer_probe: tuple[list[str], Any] | None = None

    def predict(self, inputs: list[np.ndarray], shared: Any = None) -> list[np.ndarray]:
        out = self.model.predict_on_batch(inputs[0] if len(inputs) == 1 else inputs)
        if isinstance(out, dict):  # by name: the dict's order is not the converted model's
            out = [out[name] for name in self.io.output_names]
        if not isinstance(out, (list, tuple)):
            out = [out]
        return [np.asarray(o) for o in out]

    def bytes_per_sample(self) -> int:
        """Every top-level layer's outputs for one sample (a nested model counts by its
        outputs): what predicting a batch holds per row, at most."""
        total = 0
        for layer in self.model.layers:
            try:
                tensors = layer.output
            except (AttributeError, ValueError):  # a layer called several times
                continue
            for t in tensors if isinstance(tensors, (list, tuple)) else [tensors]:
                total += sample_bytes(str(t.dtype), t.shape[1:])
        return total

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
        except (ValueError, TypeError) as exc:  # a subclassed model, a layer it cannot rebuild
            raise ModelError(f"cannot fix the batch size of this model: {first_line(exc)}") from exc
        fixed.set_weights(self.model.get_weights())
        with quiet():
            return tf.lite.TFLiteConverter.from_keras_model(fixed)

    def layer_names(self) -> frozenset[str]:
        # Keras 3 traces each layer under a scope with one uniquifying suffix (see names.py).
        return LayerNames(keras_layer_names(self.model), suffixed=True)

    def output_layers(self) -> list[str]:
        """The layer that produces each model output, in output order."""
        return output_layer_names(self.model)

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

        return freeze(tf.function(call).get_concrete_function(*specs))


def keras_output_names(model: Any) -> tuple[str, ...]:
    """The names the TFLite converter gives a Keras 3 model's outputs in its signature: the
    keys of a dict of outputs, else ``output_0, output_1, …`` in output order (checked on
    TF 2.21, ``tests/test_outputs.py``); liteparity matches candidates' outputs by them."""
    try:
        structure = model.output
    except AttributeError:  # a Sequential model never called: one output, no dict
        structure = None
    if isinstance(structure, dict):
        return tuple(str(key) for key in structure)
    return tuple(f"output_{i}" for i in range(len(model.outputs)))
