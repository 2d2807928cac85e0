"""SavedModel references, and Keras 2 ``.h5`` files exported to a SavedModel by ``tf_keras`` in
a child process (so the user's Keras is never switched)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from liteparity._tf import freeze, import_tensorflow
from liteparity.data.binding import IOSpec
from liteparity.errors import ModelError, first_line
from liteparity.reference.base import LAYERS_FILE, Source, _shape
from liteparity.runtime.litemodel import natural_key


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
        except (OSError, ValueError, tf.errors.OpError) as exc:  # unreadable, incomplete
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
        return freeze(self._fn)

    def close(self) -> None:
        if self._keep is not None:
            self._keep.cleanup()
            self._keep = None


def _load_keras2(path: Path) -> SavedModelSource:
    """Export a Keras 2 ``.h5`` through ``tf_keras`` in a child process (it needs
    ``TF_USE_LEGACY_KERAS=1`` before TensorFlow is imported), then load the SavedModel."""
    keep = tempfile.TemporaryDirectory(prefix="liteparity-h5-")
    out = Path(keep.name) / "saved_model"
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [sys.executable, "-m", "liteparity.reference.keras2", str(path), str(out)],
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
