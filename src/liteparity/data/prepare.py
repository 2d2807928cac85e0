"""The data of one run: bound to the reference, split into calibration and evaluation rows."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from liteparity.data.binding import Binding, IOSpec, bind, sample_rows, split
from liteparity.data.datasets import Dataset, load
from liteparity.data.scaling import calibration_warnings, spans
from liteparity.errors import DataError
from liteparity.specs import DataSpec

#: Rows read from the data per step: large enough for the interpreter's best batch size.
BATCH_ROWS = 256


class HasIO(Protocol):
    """What data is bound to: a model's inputs (any reference source)."""

    @property
    def io(self) -> IOSpec: ...


@dataclass(frozen=True)
class PreparedData:
    """The data bound to a model, split into calibration and evaluation rows."""

    binding: Binding
    eval_rows: np.ndarray
    calibration_binding: Binding
    calibration_rows: np.ndarray
    calibration: Calibration | None
    seed: int
    #: the calibration rows read, in batches of input arrays (what ``calibration`` yields
    #: one sample at a time): ai-edge-quantizer calibrates on whole batches
    calibration_batches: tuple[list[np.ndarray], ...] = ()
    #: the data is probably scaled unlike the calibration data (``measure.scaling``)
    warnings: tuple[str, ...] = ()

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
            "warnings": list(self.warnings),
        }


def prepare_data(source: HasIO, spec: DataSpec, needs_calibration: bool) -> PreparedData:
    """Load ``spec.data`` (and ``spec.calibration_data``) for ``source``. Without calibration
    data, a seeded split of the data calibrates when ``needs_calibration``, and is not
    evaluated."""

    def read(source_data: Any) -> Dataset:
        return load(
            source_data,
            image_size=spec.image_size,
            scale=spec.scale,
            label_column=spec.label_column,
        )

    seed = spec.seed
    dataset = read(spec.data)
    binding = _bind(dataset, source)
    cal_binding, cal_rows, eval_rows = binding, np.arange(0), np.arange(len(dataset))
    if spec.calibration_data is not None:
        cal_binding = _bind(read(spec.calibration_data), source)
        cal_rows = sample_rows(len(cal_binding.dataset), spec.calibration_samples, seed)
    elif needs_calibration:
        cal_rows, eval_rows = split(len(dataset), spec.calibration_samples, seed)
    if spec.max_samples is not None:
        eval_rows = eval_rows[sample_rows(len(eval_rows), spec.max_samples, seed)]
    if not len(eval_rows):
        raise DataError(f"{dataset.source}: no samples left to evaluate")
    calibration, batches = None, tuple[list[np.ndarray], ...]()
    if len(cal_rows):
        batches = tuple(inputs for inputs, _ in cal_binding.batches(cal_rows, BATCH_ROWS))
        calibration = calibration_from(batches)
    warnings: list[str] = []
    if spec.calibration_data is not None:  # else both are rows of one file: same units
        sample = binding.take(eval_rows[:BATCH_ROWS])[0]
        names = source.io.input_names
        warnings = calibration_warnings(names, spans([sample]), spans(batches))
    return PreparedData(
        binding, eval_rows, cal_binding, cal_rows, calibration, seed, batches, tuple(warnings)
    )


def _bind(dataset: Dataset, source: HasIO) -> Binding:
    io = source.io
    dataset.labels_for(io.output_names)  # a y:<name> naming no output fails here, first
    return bind(dataset, io.input_names, io.sample_shapes, io.input_dtypes)


def _labelled(prepared: PreparedData) -> tuple[np.ndarray, np.ndarray] | None:
    """The calibration rows with their labels: what the ``qat`` recipe fine-tunes on."""
    inputs, labels = prepared.calibration_binding.take(prepared.calibration_rows)
    return (inputs[0], labels) if labels is not None and len(inputs) == 1 else None


Calibration = Callable[[], Iterable[list[np.ndarray]]]

#: The converter's complaint about shapes it needs fixed (LSTM/GRU TensorLists).
STATIC_SHAPE_HINT = "to be static"


def calibration_from(batches: Sequence[list[np.ndarray]]) -> Calibration:
    """A representative-dataset function over already-read batches, one sample per yield
    (picklable: the converter process receives it)."""
    return CalibrationBatches(tuple(batches))


@dataclass(frozen=True)
class CalibrationBatches:
    """Calibration batches as the converter's representative dataset: calling it yields one
    sample at a time."""

    batches: tuple[list[np.ndarray], ...]

    def __call__(self) -> Iterable[list[np.ndarray]]:
        for batch in self.batches:
            for i in range(len(batch[0])):
                yield [x[i : i + 1] for x in batch]
