"""Model files inspected before anything deserializes them.

A Keras 2 ``.h5`` keeps its architecture as JSON in the HDF5 attribute ``model_config``;
``tf_keras`` has no safe mode for it, and a ``Lambda`` layer there is marshalled Python bytecode
that runs on load. So the config is read here with ``h5py`` (data, never code) and a ``Lambda``
or a layer class Keras does not ship is refused unless the user passed ``--unsafe``. A
``.keras`` archive has its declared member sizes checked first (a ``config.json`` that
inflates to gigabytes is refused before Keras reads it); Keras's own safe mode handles its
Lambdas.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from liteparity._tf import import_tensorflow
from liteparity.data.npfiles import MAX_INFLATE_RATIO
from liteparity.errors import ModelError, first_line

#: The JSON members of a ``.keras`` archive are small; anything larger is not a real model.
MAX_CONFIG_BYTES = 64 << 20

#: Keras 2 layer classes that Keras 3 no longer has, and the wrappers of
#: tensorflow-model-optimization (quantization-aware models): none carries code.
_KERAS2_LAYERS = frozenset(
    {
        "TFOpLambda",  # a TF function named in the config (tf.math.add), not code
        "SlicingOpLambda",
        "InstanceMethod",
        "ClassMethod",
        "Functional",
        "Sequential",
        "Model",
        "DenseFeatures",
        "LocallyConnected1D",
        "LocallyConnected2D",
        "ThresholdedReLU",
        "QuantizeWrapper",
        "QuantizeWrapperV2",
        "QuantizeLayer",
        "QuantizeAnnotate",
    }
)

_UNSAFE_HINT = "pass --unsafe (unsafe=True) if you trust the file"


def check_keras_archive(path: Path) -> None:
    """Refuse a ``.keras`` whose declared member sizes are impossible or absurd."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ModelError(f"{path}: not a readable .keras archive ({first_line(exc)})") from exc
    for info in infos:
        if info.file_size > max(info.compress_size, 1) * MAX_INFLATE_RATIO:
            raise ModelError(
                f"{path}: member {info.filename} claims to inflate {info.compress_size} bytes "
                f"to {info.file_size}, more than compression can: a damaged or hostile archive"
            )
        if info.filename.endswith(".json") and info.file_size > MAX_CONFIG_BYTES:
            raise ModelError(
                f"{path}: {info.filename} is {info.file_size} bytes, far beyond any model "
                f"config (limit {MAX_CONFIG_BYTES}): refused"
            )


def check_h5(path: Path, *, unsafe: bool) -> None:
    """Refuse a Keras 2 ``.h5`` without a model config, or (unless ``unsafe``) one with a
    ``Lambda`` or a layer class Keras does not ship, before ``tf_keras`` ever opens it."""
    config = _h5_model_config(path)
    if unsafe:
        return
    known = _known_layers()
    for name in _layer_classes(config):
        if name == "Lambda":
            raise ModelError(
                f"{path}: the model contains a Lambda layer, whose code would run on load: "
                + _UNSAFE_HINT
            )
        if name not in known:
            raise ModelError(f"{path}: the model contains a custom layer {name!r}: {_UNSAFE_HINT}")


def _h5_model_config(path: Path) -> Any:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
            if raw is None and "model_config" in f:  # some writers keep it as a dataset
                raw = f["model_config"][()]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{path}: not a readable HDF5 file ({first_line(exc)})") from exc
    if raw is None:
        raise ModelError(
            f"{path}: the .h5 holds no model config (weights only?): save the whole model"
        )
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    if not isinstance(raw, str) or len(raw) > MAX_CONFIG_BYTES:
        raise ModelError(f"{path}: the .h5 model config is not JSON text of a sane size")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ModelError(f"{path}: the .h5 model config is not JSON ({first_line(exc)})") from exc


def _layer_classes(config: Any) -> Iterator[str]:
    """The class name of every layer in a Keras config, nested models included."""
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            inner = node.get("config")
            if isinstance(inner, dict) and isinstance(inner.get("layers"), list):
                stack.extend(inner["layers"])
            if "class_name" in node and isinstance(inner, dict) and "name" in inner:
                yield str(node["class_name"])
                stack.extend(v for k, v in inner.items() if k in ("layer", "backward_layer"))
        elif isinstance(node, list):
            stack.extend(node)


@cache
def _known_layers() -> frozenset[str]:
    """Every layer class Keras ships (Keras 3's namespace) and the Keras 2-only ones."""
    import_tensorflow()
    import keras

    return frozenset(dir(keras.layers)) | _KERAS2_LAYERS
