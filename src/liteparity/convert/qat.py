"""Quantization-aware training (tfmot, Keras 2 models) in a ``tf_keras`` child process."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from liteparity.errors import UsageError
from liteparity.reference.base import Source


def quantization_aware(
    source: Source, x: np.ndarray, y: np.ndarray, epochs: int, *, with_copy: bool = False
) -> Any:
    """Fine-tune ``source`` for ``epochs`` with fake quantization (tfmot, in a tf_keras child
    process) on labelled ``(x, y)`` and convert it with the learned ranges. tfmot supports
    Keras 2 models only: a Keras 3 model gets a clear error. ``with_copy`` returns
    ``(qat, copied)``: also the trained weights copied into the float model and post-training
    quantized (seed 003's workaround)."""
    from liteparity.errors import ConversionError

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
            [sys.executable, "-m", "liteparity.reference.keras2", *args],
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
