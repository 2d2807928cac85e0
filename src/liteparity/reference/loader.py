"""``load``: pick the reference loader by what the file is."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

from liteparity.errors import ModelError
from liteparity.reference.base import Source
from liteparity.reference.graph import FrozenGraphSource
from liteparity.reference.guard import check_h5, check_keras_archive
from liteparity.reference.keras import KerasSource
from liteparity.reference.saved_model import SavedModelSource, _load_keras2
from liteparity.reference.tflite import TFLiteSource
from liteparity.specs import ModelSpec


def load_spec(spec: ModelSpec) -> Source:
    """The reference model a ``ModelSpec`` names, loaded (what every verb starts with)."""
    return load(
        spec.model,
        inputs=spec.inputs,
        outputs=spec.outputs,
        input_shapes=spec.input_shapes,
        unsafe=spec.unsafe,
    )


def load(
    path: str | os.PathLike[str] | Source,
    *,
    inputs: Sequence[str] | None = None,
    outputs: Sequence[str] | None = None,
    input_shapes: Sequence[tuple[int, ...]] | None = None,
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
        check_keras_archive(p)
        return KerasSource(str(p), unsafe=unsafe)
    if name.endswith((".h5", ".hdf5")):
        check_h5(p, unsafe=unsafe)
        return _load_keras2(p)
    if name.endswith(".tflite"):
        return TFLiteSource(str(p))
    if name.endswith((".pb", ".pbtxt")):
        return FrozenGraphSource(str(p), inputs=inputs, outputs=outputs, input_shapes=input_shapes)
    raise ModelError(
        f"{p}: unknown model format: expected .keras, .h5, a SavedModel directory, a frozen "
        ".pb graph or a .tflite file"
    )
