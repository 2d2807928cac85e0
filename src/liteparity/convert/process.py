"""Conversion in a converter process, so that a converter crash costs one recipe, not the run.

TensorFlow's converter and calibrator are C++ that can segfault on a model they do not expect
(TF 2.21 calibrating a Keras 3 LSTM with a fixed batch of 1). Run in the caller's process, such
a crash ends the whole run with no table and no JSON. Here each conversion is a job
(``ConvertJob``) for a ``runtime.worker.Worker`` child that imports TensorFlow: a crash becomes
one ``ConversionError`` ("converter crashed (signal 11, SIGSEGV) while calibrating int8") and
the next recipe gets a fresh process.

``Converter`` starts its process at once, so that the child's TensorFlow import (seconds)
overlaps with the caller loading the model and reading the data; the process then serves every
recipe of the run, loading the model once. It calibrates once per calibration set: int8,
int8-io and uint8-io are the one calibrated model quantized per recipe (``from_calibrated``),
and explain, locate and fix get that same calibrated model; with ``--resume`` it is kept in the
cache for the next run (``keep_calibrated``). A model given as an already loaded ``Source`` (the
API allows it) cannot be sent to another process and is converted in the caller's.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Protocol

from liteparity import errors
from liteparity.convert.converter import calibrates_once, convert, from_calibrated
from liteparity.convert.recipes import RECIPES, LegacySettings, Recipe
from liteparity.data.prepare import Calibration
from liteparity.reference.base import Source
from liteparity.runtime.jobs import Job
from liteparity.runtime.worker import Worker
from liteparity.specs import ModelSpec
from liteparity.timings import stage

#: The model loaded by this converter process (one per run), with the spec it came from.
_loaded: tuple[ModelSpec, Source] | None = None


@dataclass(frozen=True)
class ConvertJob(Job):
    """Convert the model ``model`` names with one recipe; ``start`` returns the ``.tflite``.
    With ``calibrated``, the recipe's model is quantized from that calibrated model instead."""

    model: ModelSpec
    recipe: str
    calibration: Calibration | None = None
    legacy: LegacySettings | None = None
    calibrate_only: bool = False
    calibrated: bytes | None = None

    @property
    def doing(self) -> str:  # type: ignore[override]
        if self.calibrated is not None:
            return f"quantizing {self.recipe}"
        verb = "calibrating" if RECIPES[self.recipe].needs_calibration else "converting"
        return f"{verb} {self.recipe}"

    def start(self) -> bytes:
        if self.calibrated is not None:
            return from_calibrated(self.calibrated, RECIPES[self.recipe])
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


class ModelStore(Protocol):
    """Where converted models outlive the run (``measure.resume.Cache``)."""

    def model(self, key: str) -> bytes | None: ...

    def put_model(self, key: str, content: bytes) -> None: ...


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
        #: calibrated models by activation type, with the calibration each was made from
        self._calibrated: dict[str, tuple[Calibration | None, bytes]] = {}
        self._store: tuple[ModelStore, str] | None = None
        # A .tflite source is quantized by ai-edge-quantizer, never by TF's converter: no
        # process importing TensorFlow (seconds of a core) unless a conversion is asked for.
        tflite = self._separate and str(model.model).lower().endswith(".tflite")
        if start and self._separate and not tflite:
            self._process = ConverterProcess("converter")

    def keep_calibrated(self, store: ModelStore, key: str) -> None:
        """Keep the calibrated models in ``store`` under ``key`` (one per calibration set and
        model: ``--resume``), and take them from there when a run already made them."""
        self._store = (store, key)

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
        the converter process; ``ConversionError`` when the converter refuses or crashes.
        ``calibrate_only`` and the ``calibrates_once`` recipes share one calibration."""
        if calibrate_only:
            return self.calibrated(source, recipe, calibration)
        if calibrates_once(recipe) and calibration is not None:
            calibrated = self.calibrated(source, recipe, calibration)
            with stage("convert"):
                if not self._separate:
                    return from_calibrated(calibrated, recipe)
                return self._run(ConvertJob(self._model, recipe.name, calibrated=calibrated))
        with stage("calibrate" if recipe.needs_calibration else "convert"):
            if not self._separate:  # an in-memory Source: it cannot travel
                return convert(source, recipe, calibration, legacy)
            return self._run(ConvertJob(self._model, recipe.name, calibration, legacy))

    def calibrated(self, source: Source, recipe: Recipe, calibration: Calibration | None) -> bytes:
        """The calibrate-only model of ``source`` on ``calibration`` for ``recipe``'s
        activation type: made once per run (and, with ``keep_calibrated``, once per cache)."""
        kept = self._calibrated.get(recipe.activations)
        if kept is not None and kept[0] is calibration:
            return kept[1]
        key = f"{self._store[1]}/{recipe.activations}" if self._store else ""
        content = self._store[0].model(key) if self._store else None
        if content is None:
            with stage("calibrate"):
                if self._separate:
                    job = ConvertJob(self._model, recipe.name, calibration, calibrate_only=True)
                    content = self._run(job)
                else:
                    content = convert(source, recipe, calibration, calibrate_only=True)
            if self._store:
                self._store[0].put_model(key, content)
        self._calibrated[recipe.activations] = (calibration, content)
        return content

    def _run(self, job: ConvertJob) -> bytes:
        """``job``'s model from the converter process (restarted after a crash)."""
        if self._process is None:
            self._process = ConverterProcess("converter")
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
