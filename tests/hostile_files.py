"""Hostile files for the bad-input tests: a Keras 2 ``.h5`` whose Lambda creates a marker
file, archives whose headers lie, bombs, pickles and images that are not images."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

_EVIL_H5 = """
import os, sys
import tf_keras
marker = sys.argv[2]
touch = lambda t: (__import__("os").system("touch " + marker), t)[1]
layers = [tf_keras.Input((8, 8, 1)), tf_keras.layers.Lambda(touch), tf_keras.layers.Flatten(),
          tf_keras.layers.Dense(10)]
tf_keras.Sequential(layers).save(sys.argv[1])
"""


def evil_h5(path: Path, marker: Path) -> Path:
    """A Keras 2 ``.h5`` whose Lambda layer runs ``touch marker`` whenever it is built."""
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3")
    subprocess.run(
        [sys.executable, "-c", _EVIL_H5, str(path), str(marker)],
        env=env,
        check=True,
        capture_output=True,
    )
    marker.unlink()  # building the model ran it once, here: loading it must not again
    return path


def relabel_layer(src: Path, dst: Path, old: str, new: str) -> Path:
    """A copy of an ``.h5`` whose config names class ``new`` where it named ``old``."""
    import h5py

    dst.write_bytes(src.read_bytes())
    with h5py.File(dst, "r+") as f:
        config = f.attrs["model_config"]
        text = config.decode() if isinstance(config, bytes) else config
        f.attrs["model_config"] = text.replace(f'"{old}"', f'"{new}"')
    return dst


def lie_about_size(path: Path, member: str, size: int) -> Path:
    """Patch the central-directory entry of ``member`` to declare ``size`` uncompressed
    bytes (the data stays as it is)."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    name, at = member.encode(), 0
    while True:  # find the central-directory record of ``member``
        at = data.index(b"PK\x01\x02", at)
        length = struct.unpack_from("<H", data, at + 28)[0]
        if bytes(data[at + 46 : at + 46 + length]) == name:
            break
        at += 4
    assert info.file_size == struct.unpack_from("<I", data, at + 24)[0]
    struct.pack_into("<I", data, at + 24, size)
    path.write_bytes(bytes(data))
    return path


def config_bomb(path: Path, inflated: int) -> Path:
    """A ``.keras``-shaped zip whose ``config.json`` inflates to ``inflated`` bytes."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("metadata.json", "{}")
        with archive.open("config.json", "w", force_zip64=inflated >= 1 << 31) as fh:
            block = b" " * (1 << 20)
            for _ in range(inflated >> 20):
                fh.write(block)
        archive.writestr("model.weights.h5", b"")
    return path


def npz_bomb(path: Path, rows: int) -> Path:
    """A compressed ``.npz`` whose ``x`` (zeros, ``rows`` × 8×8×1 float32) inflates ~1000:1."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("x.npy", "w", force_zip64=True) as fh:
            header = {"descr": "<f4", "fortran_order": False, "shape": (rows, 8, 8, 1)}
            np.lib.format.write_array_header_1_0(fh, header)
            block = bytes(256 * 64 * 4)
            for _ in range(rows // 256):
                fh.write(block)
            fh.write(bytes((rows % 256) * 64 * 4))
        y = np.zeros(rows, np.int64)
        with archive.open("y.npy", "w", force_zip64=True) as fh:
            np.lib.format.write_array(fh, y)
    return path


def lying_npy(path: Path, rows: int) -> Path:
    """A small ``.npy`` whose header claims ``rows`` samples of 8×8×1 float32."""
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": "<f4", "fortran_order": False, "shape": (rows, 8, 8, 1)}
        )
        fh.write(bytes(64 * 4 * 10))
    return path


def pickled_npz(path: Path) -> Path:
    np.savez(path, x=np.array([{"a": 1}] * 4, dtype=object), allow_pickle=True)
    return path


def image_folder(folder: Path, bad: str | None = None, hidden: bool = False) -> Path:
    """Two classes of 8×8 grey PNGs; ``bad``: a file of that name with text in it;
    ``hidden``: a ``.ipynb_checkpoints`` folder and a ``.DS_Store`` beside the classes."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        (folder / label).mkdir(parents=True)
        for i in range(3):
            pixels = rng.integers(0, 256, (8, 8), dtype=np.uint8)
            Image.fromarray(pixels, "L").save(folder / label / f"{i}.png")
    if bad:
        (folder / "cat" / bad).write_text("not an image\n")
    if hidden:
        (folder / ".ipynb_checkpoints").mkdir()
        Image.fromarray(np.zeros((8, 8), np.uint8), "L").save(
            folder / ".ipynb_checkpoints" / "a.png"
        )
        (folder / "cat" / ".DS_Store").write_bytes(b"\0\1")
    return folder


def zero_rows_saved_model(path: Path) -> Path:
    """A SavedModel that returns no rows, whatever it is given (a serving function that
    filters its batch away): nothing can be compared with it."""
    import tensorflow as tf

    class ZeroRows(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 1], tf.float32, name="image")])
        def serve(self, image: tf.Tensor) -> dict[str, tf.Tensor]:
            flat = tf.reshape(image, [-1, 64])
            return {"scores": tf.boolean_mask(flat, tf.reduce_sum(flat, axis=1) < -1.0)}

    module = ZeroRows()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path
