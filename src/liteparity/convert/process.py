"""Conversion in a converter process, so that a converter crash costs one recipe, not the run.

TensorFlow's converter and calibrator are C++ that can segfault on a model they do not expect
(TF 2.21 calibrating a Keras 3 LSTM with a fixed batch of 1). Run in the caller's process, such
a crash ends the whole run with no table and no JSON. Here each conversion is a job
(``ConvertJob``) for a ``runtime.worker.Worker`` child that imports TensorFlow: a crash becomes
one ``ConversionError`` ("converter crashed (signal 11, SIGSEGV) while calibrating int8") and
the next recipe gets a fresh process.

``Converter`` starts its process at once, so that the child's TensorFlow import (seconds)
overlaps with the caller loading the model and reading the data; the process then serves every
recipe of the run, loading the model once. A model given as an already loaded ``Source`` (the
API allows it) cannot be sent to another process and is converted in the caller's.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from multiprocessing.connection import Connection

from liteparity import errors
from liteparity.convert.converter import convert
from liteparity.convert.recipes import RECIPES, LegacySettings, Recipe
from liteparity.data.prepare import Calibration
from liteparity.reference.base import Source
from liteparity.runtime.jobs import Job
from liteparity.runtime.worker import Worker
from liteparity.specs import ModelSpec

#: The model loaded by this converter process (one per run), with the spec it came from.
_loaded: tuple[ModelSpec, Source] | None = None


@dataclass(frozen=True)
class ConvertJob(Job):
    """Convert the model ``model`` names with one recipe; ``start`` returns the ``.tflite``."""

    model: ModelSpec
    recipe: str
    calibration: Calibration | None = None
    legacy: LegacySettings | None = None
    calibrate_only: bool = False

    @property
    def doing(self) -> str:  # type: ignore[override]
        verb = "calibrating" if RECIPES[self.recipe].needs_calibration else "converting"
        return f"{verb} {self.recipe}"

    def start(self) -> bytes:
        return convert(
            _source(self.model),
            RECIPES[self.recipe],
            self.calibration,
            self.legacy,
            calibrate_only=self.calibrate_only,
        )


def _source(spec: ModelSpec) -> Source:
    """The model ``spec`` names, loaded once per process (every recipe of a run shares it)."""
    global _loaded
    from liteparity.reference.loader import load_spec

    if _loaded is None or _loaded[0] != spec:
        if _loaded is not None:
            _loaded[1].close()
        _loaded = None
        _loaded = (spec, load_spec(spec))
    return _loaded[1]


class ConverterProcess(Worker):
    """A worker child that imports TensorFlow and converts; a crash is a ``ConversionError``."""

    module = "liteparity.convert.process"
    kind = "converter"
    crash_error = errors.ConversionError
    log_level = "3"  # the child's stderr is read for a crash's last words: no C++ chatter


class Converter:
    """Converts recipes of one model in a converter process: started at construction (so its
    start overlaps the caller's work), reused for every recipe, restarted after a crash.
    Without ``start`` the process starts on the first conversion. Close it (or use it as a
    context manager) when the run ends. For a ``.tflite`` file it starts only when asked to
    convert."""

    def __init__(self, model: ModelSpec, *, start: bool = True) -> None:
        self._model = model
        self._process: ConverterProcess | None = None
        self._separate = isinstance(model.model, str | os.PathLike)
        # A .tflite source is quantized by ai-edge-quantizer, never by TF's converter: no
        # process importing TensorFlow (seconds of a core) unless a conversion is asked for.
        tflite = self._separate and str(model.model).lower().endswith(".tflite")
        if start and self._separate and not tflite:
            self._process = ConverterProcess("converter")

    def convert(
        self,
        source: Source,
        recipe: Recipe,
        calibration: Calibration | None = None,
        legacy: LegacySettings | None = None,
        *,
        calibrate_only: bool = False,
    ) -> bytes:
        """``converter.convert`` of ``source`` (the model this converter was made for) in
        the converter process; ``ConversionError`` when the converter refuses or crashes."""
        if not self._separate:  # an in-memory Source: it cannot travel
            return convert(source, recipe, calibration, legacy, calibrate_only=calibrate_only)
        if self._process is None:
            self._process = ConverterProcess("converter")
        job = ConvertJob(self._model, recipe.name, calibration, legacy, calibrate_only)
        try:
            content: bytes = self._process.start(job, job.doing).get()
        except errors.ConversionError:
            if self._process.alive:
                raise
            self._process.close()  # it crashed: the next recipe gets a fresh one
            self._process = ConverterProcess("converter")
            raise
        return content

    def close(self) -> None:
        if self._process is not None:
            self._process.close()
            self._process = None

    def __enter__(self) -> Converter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _preload() -> None:
    """Import TensorFlow and Keras while the parent loads the model and reads the data."""
    from liteparity._tf import import_tensorflow

    import_tensorflow()
    import keras  # noqa: F401


if __name__ == "__main__":
    from liteparity.convert import process
    from liteparity.runtime import worker

    process._preload()
    worker._serve(Connection(int(sys.argv[1])))
