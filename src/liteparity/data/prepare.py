"""The data of one run: bound to the reference, split into calibration and evaluation rows."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from liteparity.data.binding import Binding, bind, sample_rows, split
from liteparity.data.datasets import Dataset, load
from liteparity.errors import DataError, UsageError
from liteparity.reference.base import Source

#: Rows read from the data per step: large enough for the interpreter's best batch size.
BATCH_ROWS = 256


@dataclass(frozen=True)
class PreparedData:
    """The data bound to a model, split into calibration and evaluation rows."""

    binding: Binding
    eval_rows: np.ndarray
    calibration_binding: Binding
    calibration_rows: np.ndarray
    calibration: Calibration | None
    seed: int

    def to_dict(self) -> dict[str, Any]:
        calibration = None
        if len(self.calibration_rows):
            calibration = {
                "source": self.calibration_binding.dataset.source,
                "samples": len(self.calibration_rows),
            }
        return {
            **self.binding.dataset.to_dict(),
            "evaluation_samples": len(self.eval_rows),
            "calibration": calibration,
            "seed": self.seed,
        }


def prepare_data(
    source: Source,
    data: Any,
    calibration_data: Any,
    needs_calibration: bool,
    *,
    calibration_samples: int = 200,
    max_samples: int | None = None,
    seed: int = 0,
    image_size: tuple[int, int] | None = None,
    scale: float | None = None,
    label_column: int | None = None,
) -> PreparedData:
    """Load ``data`` (and ``calibration_data``) for ``source``. Without calibration data, a
    seeded split of ``data`` calibrates when ``needs_calibration``, and is not evaluated."""
    load_kwargs = {"image_size": image_size, "scale": scale, "label_column": label_column}
    dataset = load(data, **load_kwargs)
    binding = _bind(dataset, source)
    cal_binding, cal_rows, eval_rows = binding, np.arange(0), np.arange(len(dataset))
    if calibration_data is not None:
        cal_binding = _bind(load(calibration_data, **load_kwargs), source)
        cal_rows = sample_rows(len(cal_binding.dataset), calibration_samples, seed)
    elif needs_calibration:
        cal_rows, eval_rows = split(len(dataset), calibration_samples, seed)
    if max_samples is not None:
        if max_samples < 1:
            raise UsageError(f"--max-samples must be at least 1, got {max_samples}")
        eval_rows = eval_rows[sample_rows(len(eval_rows), max_samples, seed)]
    if not len(eval_rows):
        raise DataError(f"{dataset.source}: no samples left to evaluate")
    calibration = None
    if len(cal_rows):
        batches = [inputs for inputs, _ in cal_binding.batches(cal_rows, BATCH_ROWS)]
        calibration = calibration_from(batches)
    return PreparedData(binding, eval_rows, cal_binding, cal_rows, calibration, seed)


def _bind(dataset: Dataset, source: Source) -> Binding:
    io = source.io
    return bind(dataset, io.input_names, io.sample_shapes, io.input_dtypes)


def _labelled(prepared: PreparedData) -> tuple[np.ndarray, np.ndarray] | None:
    """The calibration rows with their labels: what the ``qat`` recipe fine-tunes on."""
    inputs, labels = prepared.calibration_binding.take(prepared.calibration_rows)
    return (inputs[0], labels) if labels is not None and len(inputs) == 1 else None


Calibration = Callable[[], Iterable[list[np.ndarray]]]

#: The converter's complaint about shapes it needs fixed (LSTM/GRU TensorLists).
STATIC_SHAPE_HINT = "to be static"


def calibration_from(batches: Sequence[list[np.ndarray]]) -> Calibration:
    """A representative-dataset function over already-read batches, one sample per yield."""

    def generate() -> Iterable[list[np.ndarray]]:
        for batch in batches:
            for i in range(len(batch[0])):
                yield [x[i : i + 1] for x in batch]

    return generate
