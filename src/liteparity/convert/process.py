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
and explain, locate and fix get that same calibrated model; with ``--resume`` every model it
makes is kept in the cache for the next run of any command (``keep``). Since the process holds
the model, it also answers what locate asks of it (``describe``, ``layer_outputs``) and
re-quantizes (``requantize``), so that locate's own process never imports TensorFlow. A model
given as an already loaded ``Source`` (the API allows it) cannot be sent to another process
and is converted in the caller's.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Protocol

import numpy as np

from liteparity import errors
from liteparity.convert.converter import calibrates_once, convert, from_calibrated, requantize
from liteparity.convert.recipes import RECIPES, LegacySettings, Recipe
from liteparity.data.prepare import Calibration
from liteparity.reference.base import Source, SourceFacts
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


@dataclass(frozen=True)
class RequantizeJob(Job):
    """``converter.requantize`` of a calibrated model (a sensitivity variant, locate's debug
    model), where TensorFlow is already imported."""

    calibrated: bytes
    keep_float: tuple[str, ...] = ()
    numeric_verify: bool = False
    doing = "re-quantizing the calibrated model"

    def start(self) -> bytes:
        return requantize(self.calibrated, self.keep_float, numeric_verify=self.numeric_verify)


@dataclass(frozen=True)
class DescribeJob(Job):
    """The facts of the model ``model`` names (``SourceFacts``), loaded here."""

    model: ModelSpec
    doing = "loading the model"

    def start(self) -> SourceFacts:
        return SourceFacts.of(_source(self.model))


@dataclass(frozen=True)
class LayerOutputsJob(Job):
    """Every layer's output of the model ``model`` names for one batch (``compares_layers``)."""

    model: ModelSpec
    inputs: tuple[np.ndarray, ...]
    doing = "running the model's layers"

    def start(self) -> dict[str, np.ndarray]:
        return _source(self.model).layer_outputs(list(self.inputs))


def _digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


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
    """Where converted models outlive the run (``measure.resume.Cache``): ``keep``."""

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
        self._facts: SourceFacts | None = None
        # A .tflite source is quantized by ai-edge-quantizer, never by TF's converter: no
        # process importing TensorFlow (seconds of a core) unless a conversion is asked for.
        tflite = self._separate and str(model.model).lower().endswith(".tflite")
        if start and self._separate and not tflite:
            self._process = ConverterProcess("converter")

    def keep(self, store: ModelStore, key: str) -> None:
        """Keep every model this converter makes (calibrated, converted, re-quantized) in
        ``store`` under keys made from ``key`` (``resume.conversion_key``: model file,
        calibration set, settings, versions; ``--resume``), and take them from there when an
        earlier run, of any command, made them."""
        self._store = (store, key)

    def _make(self, name: str, job: Job, here: Callable[[], bytes]) -> bytes:
        """``job``'s model from the converter process (``here()``, in this process, for an
        in-memory model, which cannot travel), or what an earlier run kept under ``name``
        (``keep``)."""
        key = _digest(f"{self._store[1]}\0{name}".encode()) if self._store else ""
        content = self._store[0].model(key) if self._store else None
        if content is None:
            content = self._run(job) if self._separate else here()
            if self._store:
                self._store[0].put_model(key, content)
        return content

    def describe(self) -> SourceFacts:
        """The model's facts, read in the converter process (which loads it once for every
        job of the run)."""
        if self._facts is None:
            self._facts = self._run(DescribeJob(self._model))
        return self._facts

    def layer_outputs(self, inputs: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """Every layer's output for one batch, computed in the converter process."""
        outputs: dict[str, np.ndarray] = self._run(LayerOutputsJob(self._model, tuple(inputs)))
        return outputs

    def requantize(
        self, calibrated: bytes, keep_float: Sequence[str] = (), *, numeric_verify: bool = False
    ) -> bytes:
        """``converter.requantize`` in the converter process (in this one for an in-memory
        model), kept with ``keep``."""
        keep = tuple(keep_float)
        job = RequantizeJob(calibrated, keep, numeric_verify)
        with stage("convert"):
            return self._make(
                f"requantize/{_digest(calibrated)}/{keep}/{numeric_verify}", job, job.start
            )

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
                return self._make(
                    f"quantize/{_digest(calibrated)}/{recipe.name}",
                    ConvertJob(self._model, recipe.name, calibrated=calibrated),
                    lambda: from_calibrated(calibrated, recipe),
                )
        with stage("calibrate" if recipe.needs_calibration else "convert"):
            return self._make(
                f"convert/{recipe.name}/{legacy!r}",
                ConvertJob(self._model, recipe.name, calibration, legacy),
                lambda: convert(source, recipe, calibration, legacy),
            )

    def calibrated(self, source: Source, recipe: Recipe, calibration: Calibration | None) -> bytes:
        """The calibrate-only model of ``source`` on ``calibration`` for ``recipe``'s
        activation type: made once per run (and, with ``keep``, once per cache)."""
        kept = self._calibrated.get(recipe.activations)
        if kept is not None and kept[0] is calibration:
            return kept[1]
        with stage("calibrate"):
            content = self._make(
                f"calibrated/{recipe.activations}",
                ConvertJob(self._model, recipe.name, calibration, calibrate_only=True),
                lambda: convert(source, recipe, calibration, calibrate_only=True),
            )
        self._calibrated[recipe.activations] = (calibration, content)
        return content

    def _run(self, job: Job) -> Any:
        """``job``'s answer from the converter process (restarted after a crash)."""
        if self._process is None:
            self._process = ConverterProcess("converter")
        try:
            content = self._process.start(job, job.doing).get()
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
