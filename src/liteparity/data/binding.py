"""Data bound to a model's inputs (by name, in the model's order), and the seeded row choices
(calibration/evaluation splits, samples) every command shares."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from liteparity.data.datasets import Column, Dataset, FileColumn
from liteparity.errors import DataError


@dataclass(frozen=True)
class Binding:
    """Which dataset column feeds which model input, and how rows are shaped."""

    dataset: Dataset
    columns: tuple[Column, ...]
    sample_shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[str, ...]

    def take(self, rows: np.ndarray) -> tuple[list[np.ndarray], np.ndarray | None]:
        """Inputs (in model order) and labels for the given row indices."""
        inputs = []
        for col, shape, dtype in zip(self.columns, self.sample_shapes, self.dtypes, strict=True):
            x = np.asarray(col[rows])
            if self.dataset.flat and x.ndim == 2 and x.shape[1:] != shape:
                x = x.reshape((len(x), *shape))
            x = x.astype(dtype, copy=False)
            if np.issubdtype(x.dtype, np.floating):
                bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
                if bad.any():
                    where = ", ".join(str(int(r)) for r in rows[bad][:5])
                    raise DataError(
                        f"{self.dataset.source}: NaN or Inf in sample(s) {where}"
                        f"{' …' if bad.sum() > 5 else ''}: clean or drop those rows"
                    )
            inputs.append(x)
        labels = None if self.dataset.labels is None else self.dataset.labels[rows]
        return inputs, labels

    def batches(
        self, rows: np.ndarray, batch_rows: int
    ) -> Iterator[tuple[list[np.ndarray], np.ndarray | None]]:
        for start in range(0, len(rows), batch_rows):
            yield self.take(rows[start : start + batch_rows])

    def labelled_batches(
        self, rows: np.ndarray, batch_rows: int, outputs: Sequence[str]
    ) -> Iterator[tuple[list[np.ndarray], dict[str, np.ndarray]]]:
        """Batches of inputs, each with every output's labels by output name
        (``Dataset.labels_for``: ``y`` is the first output's)."""
        for part, labels in self.labelled_blocks(rows, batch_rows, outputs):
            yield self.take(part)[0], labels

    def labelled_blocks(
        self, rows: np.ndarray, batch_rows: int, outputs: Sequence[str]
    ) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
        """``labelled_batches`` with each batch's row numbers instead of its inputs, for a
        caller that reads them only when it needs them (``take``)."""
        by_output = self.dataset.labels_for(outputs)
        for start in range(0, len(rows), batch_rows):
            part = rows[start : start + batch_rows]
            yield part, {name: y[part] for name, y in by_output.items()}

    def portable(self) -> Binding | None:
        """This binding's inputs as another process reads them, on any machine that sees the
        same files at the same paths: every column read from files by row
        (``FileColumn.anywhere``), no labels; ``take`` there gives the arrays it gives here.
        None when a column lives in this process's memory (arrays, a CSV table)."""
        columns: list[Column] = []
        for col in self.columns:
            if not isinstance(col, FileColumn):
                return None
            columns.append(col.anywhere())
        named = {str(i): col for i, col in enumerate(columns)}
        dataset = Dataset(named, source=self.dataset.source, flat=self.dataset.flat)
        return Binding(dataset, tuple(columns), self.sample_shapes, self.dtypes)


def bind(
    dataset: Dataset,
    names: Sequence[str],
    sample_shapes: Sequence[tuple[int, ...]],
    dtypes: Sequence[str],
) -> Binding:
    """Match dataset columns to model inputs: by name, or the only column to the only input."""
    cols = dict(dataset.columns)
    if len(names) == 1 and len(cols) == 1:
        chosen = list(cols.values())
    else:
        missing = [n for n in names if n not in cols]
        if missing:
            raise DataError(
                f"{dataset.source}: the model has inputs {list(names)} but the data has "
                f"{sorted(cols)}: name one array per input (e.g. np.savez(path, "
                f"{', '.join(f'{n}=...' for n in names)}, y=...))"
            )
        chosen = [cols[n] for n in names]
    dtypes = tuple("float32" if np.dtype(d).kind == "f" else np.dtype(d).name for d in dtypes)
    for name, col, shape in zip(names, chosen, sample_shapes, strict=True):
        got = tuple(col.shape[1:])
        flat_fits = (
            dataset.flat
            and len(got) == 1
            and all(d > 0 for d in shape)
            and int(np.prod(shape)) == got[0]
        )
        if not flat_fits:
            check_sample_shape(name, shape, got, f"{dataset.source}: ")
    shapes = tuple(tuple(int(d) for d in s) for s in sample_shapes)
    return Binding(dataset, tuple(chosen), shapes, dtypes)


def check_sample_shape(name: str, want: Sequence[int], got: Sequence[int], where: str = "") -> None:
    """A ``DataError`` saying how to reshape, unless ``got`` fits ``want`` (-1: any size)."""
    if len(want) == len(got) and all(w in (-1, g) for w, g in zip(want, got, strict=True)):
        return
    shown = ", ".join(str(d) if d >= 0 else "?" for d in want)
    raise DataError(
        f"{where}input {name!r} expects samples of shape ({shown}) but the data has "
        f"{tuple(got)}: reshape the data to (N, {shown})"
    )


def split(n: int, calibration_samples: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint, seeded calibration and evaluation rows (each sorted, for memmap locality)."""
    if n < 2:
        raise DataError(f"cannot split {n} sample(s) into calibration and evaluation sets")
    k = min(calibration_samples, n // 2)
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[:k]), np.sort(order[k:])


def sample_rows(n: int, k: int, seed: int = 0) -> np.ndarray:
    """``k`` seeded rows out of ``n`` (all of them when ``k >= n``)."""
    if k >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


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
