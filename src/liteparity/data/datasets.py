"""Datasets: ``.npz``, ``.npy``, CSV, image folders and in-memory arrays, read in batches.

Data always holds *real* values, the ones the reference model takes; candidates with integer
inputs get them quantized by ``LiteModel``. Columns are read lazily by row index (``.npy`` and
``.npz`` members by row, see ``npfiles``; images are decoded per batch), so memory does not grow
with the dataset. Hidden entries of an image folder (``.ipynb_checkpoints``, ``.DS_Store``) are
not data and are skipped.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from liteparity.data.npfiles import MAX_LABEL_BYTES, NpyColumn, npz_columns
from liteparity.errors import DataError

__all__ = ["Dataset", "ImageFolder", "NpyColumn", "load"]

#: npz keys (and CSV headers) taken as labels.
LABEL_KEYS = ("y", "label", "labels", "target")

#: npz keys ``y:<output name>`` hold the labels of that output (``y`` is the first output's).
OUTPUT_LABEL_PREFIX = "y:"

#: npz key taken as the input of a single-input model.
INPUT_KEY = "x"

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})


class Column(Protocol):
    """Anything with a length, a shape and fancy indexing by row: arrays, memmaps, images."""

    shape: tuple[int, ...]

    def __len__(self) -> int: ...

    def __getitem__(self, rows: Any) -> np.ndarray: ...


@runtime_checkable
class FileColumn(Protocol):
    """A column read from files by row (``.npy``, ``.npz`` members, image folders): another
    process, on any machine that sees the same files at the same paths, reads the same rows
    from ``anywhere()``. Arrays and CSV tables live in this process's memory: they are not."""

    def anywhere(self) -> Column:
        """The same column by absolute paths (a copy: nothing opened is shared)."""
        ...


@dataclass(frozen=True)
class Dataset:
    """Named input columns and optional labels, all of the same length: ``labels`` (``y``)
    belong to the model's first output, ``output_labels`` (``y:<output name>``) to the
    output they name."""

    columns: Mapping[str, Column]
    labels: np.ndarray | None = None
    source: str = "arrays"
    flat: bool = False  # rows are flat vectors (CSV): reshaped to the model's input shape
    output_labels: Mapping[str, np.ndarray] = field(default_factory=dict)
    _sizes: tuple[int, ...] = field(init=False, repr=False, default=())

    def __post_init__(self) -> None:
        if not self.columns:
            raise DataError(f"{self.source}: no input arrays found")
        sizes = {name: len(col) for name, col in self.columns.items()}
        if len(set(sizes.values())) > 1:
            raise DataError(f"{self.source}: inputs have different sample counts {sizes}")
        n = next(iter(sizes.values()))
        if n == 0:
            raise DataError(f"{self.source}: the dataset is empty (0 samples)")
        labelled = {"y": self.labels} if self.labels is not None else {}
        labelled.update({OUTPUT_LABEL_PREFIX + k: v for k, v in self.output_labels.items()})
        for key, labels in labelled.items():
            if len(labels) != n:
                named = "" if key == "y" else f" ({key})"
                raise DataError(
                    f"{self.source}: {len(labels)} labels{named} for {n} samples: expected "
                    "one label per sample"
                )

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "samples": len(self),
            "inputs": {name: list(col.shape) for name, col in self.columns.items()},
            "labels": self.labels is not None,
            "output_labels": sorted(self.output_labels),
        }

    def labels_for(self, outputs: Sequence[str]) -> dict[str, np.ndarray]:
        """Each output's labels by output name: ``y:<name>``, and ``y`` for the first output.
        A ``y:`` key naming no output, or the first output labelled twice, is refused."""
        unknown = sorted(set(self.output_labels) - set(outputs))
        if unknown:
            keys = ", ".join(OUTPUT_LABEL_PREFIX + k for k in unknown)
            raise DataError(
                f"{self.source}: labels {keys} name no output: the model's outputs are "
                f"{list(outputs)} (keys y:<output name>)"
            )
        out = dict(self.output_labels)
        if self.labels is not None and outputs:
            if outputs[0] in out:
                raise DataError(
                    f"{self.source}: the first output {outputs[0]!r} has labels twice (y and "
                    f"{OUTPUT_LABEL_PREFIX}{outputs[0]}): keep one"
                )
            out[outputs[0]] = self.labels
        return out

    def fingerprint(self) -> str:
        """A short hash of the source and shapes, for reports and caches."""
        text = repr(self.to_dict()).encode()
        return hashlib.sha256(text).hexdigest()[:16]


# -- loading ---------------------------------------------------------------------------------
def load(
    spec: Any,
    *,
    image_size: tuple[int, int] | None = None,
    scale: float | None = None,
    label_column: int | None = None,
) -> Dataset:
    """A ``Dataset`` from a path (``.npz``, ``.npy``, ``.csv[.gz]``, image folder), an array,
    an ``(x, y)`` tuple, a dict of arrays (with an optional ``y``) or a ``Dataset``."""
    if isinstance(spec, Dataset):
        return spec
    if isinstance(spec, np.ndarray):
        return Dataset({INPUT_KEY: spec})
    if isinstance(spec, tuple) and len(spec) == 2:
        x, y = spec
        columns = dict(x) if isinstance(x, Mapping) else {INPUT_KEY: np.asarray(x)}
        return Dataset(columns, _labels(y, "labels"))
    if isinstance(spec, Mapping):
        return _from_mapping(dict(spec), "arrays")
    if isinstance(spec, (str, Path)):
        path = Path(spec)
        if not path.exists():
            raise DataError(f"data file not found: {path}")
        if path.is_dir():
            return _load_images(path, image_size, scale)
        name = path.name.lower()
        if name.endswith(".npz"):
            return _load_npz(path)
        if name.endswith(".npy"):
            return Dataset({INPUT_KEY: NpyColumn(path)}, source=str(path))
        if name.endswith((".csv", ".csv.gz")):
            return _load_csv(path, label_column)
        raise DataError(
            f"{path}: unknown data format: expected .npz, .npy, .csv, .csv.gz or a folder of images"
        )
    raise DataError(
        f"cannot read data of type {type(spec).__name__}: expected a path, an array, "
        "an (x, y) tuple or a dict of arrays"
    )


def _labels(y: Any, source: str) -> np.ndarray:
    y = np.asarray(y)
    one_hot = (
        y.ndim == 2 and y.shape[1] > 1 and np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all()
    )
    if one_hot:  # class ids; other 2-D labels are regression targets and stay as they are
        y = np.asarray(y.argmax(axis=1))
    labels: np.ndarray = y.reshape(len(y)) if y.ndim > 1 and y.size == len(y) else y
    return labels


def _from_mapping(arrays: dict[str, Any], source: str) -> Dataset:
    labels = None
    for key in LABEL_KEYS:
        if key in arrays:
            labels = _labels(arrays.pop(key), source)
            break
    per_output = {
        k.removeprefix(OUTPUT_LABEL_PREFIX): _labels(arrays.pop(k), source)
        for k in [k for k in arrays if k.startswith(OUTPUT_LABEL_PREFIX)]
    }
    columns = {k: np.asarray(v) if not hasattr(v, "shape") else v for k, v in arrays.items()}
    return Dataset(columns, labels, source=source, output_labels=per_output)


def _load_npz(path: Path) -> Dataset:
    columns: dict[str, Any] = dict(npz_columns(path))
    first = next((k for k in LABEL_KEYS if k in columns), None)
    for key in list(columns):  # labels are one value per sample: read whole
        if key == first or key.startswith(OUTPUT_LABEL_PREFIX):
            columns[key] = columns[key].read_all(MAX_LABEL_BYTES)
    return _from_mapping(columns, str(path))


def _load_csv(path: Path, label_column: int | None) -> Dataset:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt") as fh:
        first = fh.readline().strip().split(",")
    header = not _is_number(first[0]) if first and first[0] else False
    try:
        table = np.loadtxt(
            path, delimiter=",", skiprows=1 if header else 0, ndmin=2, dtype=np.float32
        )
    except ValueError as exc:
        raise DataError(f"{path}: not a numeric CSV ({exc})") from exc
    if header and label_column is None:
        names = [h.strip().lower() for h in first]
        label_column = next((names.index(k) for k in LABEL_KEYS if k in names), None)
    labels = None
    if label_column is not None:
        if not -table.shape[1] <= label_column < table.shape[1]:
            raise DataError(
                f"{path}: --label-column {label_column} but the CSV has {table.shape[1]} columns"
            )
        column = table[:, label_column]
        # Whole numbers are class ids; anything else is a regression target and stays float.
        integral = np.array_equal(column, np.round(column))
        labels = column.astype(np.int64) if integral else column.astype(np.float32)
        table = np.delete(table, label_column, axis=1)
    return Dataset({INPUT_KEY: table}, labels, source=str(path), flat=True)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class ImageFolder:
    """Images decoded per batch: ``folder/<class>/<image>`` (labels) or ``folder/<image>``."""

    def __init__(
        self, files: list[Path], size: tuple[int, int] | None, scale: float | None
    ) -> None:
        self._files, self._scale = files, scale
        with _open_image(files[0]) as first:
            self._mode = "L" if first.mode in ("L", "1", "I;16", "I") else "RGB"
            self._size = size or first.size[::-1]  # PIL is (width, height)
        channels = 1 if self._mode == "L" else 3
        self.shape = (len(files), *self._size, channels)

    def __len__(self) -> int:
        return len(self._files)

    def anywhere(self) -> ImageFolder:
        """This folder's images by their absolute paths."""
        out = copy.copy(self)
        out._files = [f.absolute() for f in self._files]
        return out

    def __getitem__(self, rows: Any) -> np.ndarray:
        out = np.empty((len(rows), *self.shape[1:]), dtype=np.float32)
        for i, row in enumerate(np.asarray(rows)):
            with _open_image(self._files[row]) as img:
                try:
                    img = img.convert(self._mode).resize(self._size[::-1])
                except (OSError, ValueError, SyntaxError) as exc:  # truncated or damaged data
                    raise DataError(f"{self._files[row]}: not a readable image ({exc})") from exc
                out[i] = np.asarray(img, dtype=np.float32).reshape(self.shape[1:])
        return out * self._scale if self._scale is not None else out


def _open_image(path: Path) -> Any:
    """``PIL.Image.open`` with what it raises for a file that is not an image as a ``DataError``
    (and its decompression-bomb guard as one too)."""
    from PIL import Image

    try:
        return Image.open(path)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: not a readable image ({exc})") from exc


def _load_images(folder: Path, size: tuple[int, int] | None, scale: float | None) -> Dataset:
    def visible(d: Path) -> list[Path]:
        return sorted(p for p in d.iterdir() if not p.name.startswith("."))

    classes = [p for p in visible(folder) if p.is_dir()]

    def images(d: Path) -> list[Path]:
        return [p for p in visible(d) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]

    files, labels = images(folder), None
    if classes:
        per_class = [images(c) for c in classes]
        files = [f for group in per_class for f in group]
        labels = np.repeat(np.arange(len(classes)), [len(g) for g in per_class])
    if not files:
        raise DataError(f"{folder}: no images found (expected {', '.join(sorted(IMAGE_SUFFIXES))})")
    return Dataset({INPUT_KEY: ImageFolder(files, size, scale)}, labels, source=str(folder))
