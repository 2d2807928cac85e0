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

On an engine with converter workers (Ray: ``Engine.converters``, an actor each), there is no
local process: ``ahead`` starts the conversions a run's recipes need at once, one per worker
(the rest wait for a free one), and each recipe's ``convert`` takes its own result, in the
order asked. The jobs are the same ``ConvertJob``s, so the models are the local ones, byte for
byte; a worker's crash is its conversion's ``ConversionError``, the others go on.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from liteparity import errors
from liteparity.convert.converter import calibrates_once, convert, from_calibrated, requantize
from liteparity.convert.recipes import RECIPES, LegacySettings, Recipe
from liteparity.data.prepare import Calibration
from liteparity.errors import InternalError, LiteparityError
from liteparity.reference.base import Source, SourceFacts
from liteparity.runtime.jobs import BaseWorker, Job, Reply
from liteparity.runtime.worker import Worker
from liteparity.specs import ModelSpec
from liteparity.timings import stage

if TYPE_CHECKING:
    from liteparity.runtime.engine import Engine

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

    @property
    def files(self) -> tuple[str, ...]:
        """The model file, unless the job quantizes a calibrated model it was given."""
        path = self.model.model
        if self.calibrated is not None or not isinstance(path, str | os.PathLike):
            return ()
        return (os.fspath(path),)

    def same(self, other: Job) -> bool:
        """Whether ``other`` makes the same model (its calibration the same object: arrays
        do not compare)."""
        if not isinstance(other, ConvertJob):
            return False
        unset = replace(self, calibration=None) == replace(other, calibration=None)
        return unset and self.calibration is other.calibration

    @property
    def kept_as(self) -> str:
        """The name of its model among a run's kept models (``Converter.keep``); the key's
        prefix says which model file, calibration set and settings."""
        if self.calibrate_only:
            return f"calibrated/{RECIPES[self.recipe].activations}"
        if self.calibrated is not None:
            return f"quantize/{_digest(self.calibrated)}/{self.recipe}"
        return f"convert/{self.recipe}/{self.legacy!r}"

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

    @property
    def kept_as(self) -> str:
        return f"requantize/{_digest(self.calibrated)}/{self.keep_float}/{self.numeric_verify}"

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


@dataclass(eq=False)
class _Ticket:
    """One conversion in a ``_Pool``: waiting for a worker until ``reply`` is set. Not
    frozen (it is started later) and compared by identity (its job's arrays do not compare)."""

    job: ConvertJob
    reply: Reply | None = None


class _Pool:
    """Conversions at once on an engine's converter workers, one job per worker at a time (a
    crash then costs that conversion alone), the rest started in the order submitted as
    workers free up; each result taken whenever asked for."""

    def __init__(self, workers: list[BaseWorker]) -> None:
        self._workers = workers
        self._free = list(workers)
        self._waiting: list[_Ticket] = []
        self._running: dict[_Ticket, BaseWorker] = {}  # in the order started

    def submit(self, job: ConvertJob) -> _Ticket:
        ticket = _Ticket(job)
        self._waiting.append(ticket)
        self._dispatch()
        return ticket

    def result(self, ticket: _Ticket) -> bytes:
        """``ticket``'s model, or its ``ConversionError``; while it waits for a worker, the
        conversions started before it are waited for in turn (their results kept)."""
        while ticket.reply is None:
            self._settle(next(iter(self._running)))
        if ticket in self._running:
            self._settle(ticket)
        content: bytes = ticket.reply.get()
        return content

    def _settle(self, ticket: _Ticket) -> None:
        """Wait for ``ticket``'s answer; its worker then starts the next waiting job."""
        if ticket.reply is None:
            raise InternalError("a conversion was waited for before it started")
        with contextlib.suppress(LiteparityError):  # kept in the reply, raised when asked for
            ticket.reply.get()
        self._free.append(self._running.pop(ticket))
        self._dispatch()

    def _dispatch(self) -> None:
        while self._waiting and self._free:
            ticket, worker = self._waiting.pop(0), self._free.pop(0)
            ticket.reply = worker.start(ticket.job, ticket.job.doing)
            self._running[ticket] = worker

    def close(self) -> None:
        """Close every worker: work in flight is dropped (Ray: its actors are killed)."""
        for worker in self._workers:
            worker.close()
        self._free, self._waiting, self._running = list(self._workers), [], {}


class Converter:
    """Converts recipes of one model in a converter process: started at construction (so its
    start overlaps the caller's work), reused for every recipe, restarted after a crash.
    Without ``start`` the process starts on the first conversion. Close it (or use it as a
    context manager) when the run ends. For a ``.tflite`` file it starts only when asked to
    convert. With an ``engine`` that has converter workers (Ray), conversions run on those
    instead, several at once (``ahead``), and no local process starts."""

    def __init__(
        self, model: ModelSpec, *, start: bool = True, engine: Engine | None = None
    ) -> None:
        self._model = model
        self._process: ConverterProcess | None = None
        self._separate = isinstance(model.model, str | os.PathLike)
        #: calibrated models by activation type, with the calibration each was made from
        self._calibrated: dict[str, tuple[Calibration | None, bytes]] = {}
        self._store: tuple[ModelStore, str] | None = None
        self._facts: SourceFacts | None = None
        workers = engine.converters() if engine is not None and self._separate else []
        self._pool = _Pool(workers) if workers else None
        self._ahead: list[_Ticket] = []  # started by ``ahead``, not yet asked for
        # A .tflite source is quantized by ai-edge-quantizer, never by TF's converter: no
        # process importing TensorFlow (seconds of a core) unless a conversion is asked for.
        tflite = self._separate and str(model.model).lower().endswith(".tflite")
        if start and self._separate and not tflite and self._pool is None:
            self._process = ConverterProcess("converter")

    def keep(self, store: ModelStore, key: str) -> None:
        """Keep every model this converter makes (calibrated, converted, re-quantized) in
        ``store`` under keys made from ``key`` (``resume.conversion_key``: model file,
        calibration set, settings, versions; ``--resume``), and take them from there when an
        earlier run, of any command, made them."""
        self._store = (store, key)

    def _stored(self, job: ConvertJob | RequantizeJob) -> tuple[str, bytes | None]:
        """The key ``job``'s model is kept under, and the model if an earlier run made it."""
        if self._store is None:
            return "", None
        key = _digest(f"{self._store[1]}\0{job.kept_as}".encode())
        return key, self._store[0].model(key)

    def _make(self, job: ConvertJob | RequantizeJob, here: Callable[[], bytes]) -> bytes:
        """``job``'s model from the converter workers or process (``here()``, in this
        process, for an in-memory model, which cannot travel), or what an earlier run kept
        (``keep``)."""
        key, content = self._stored(job)
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
        job = RequantizeJob(calibrated, tuple(keep_float), numeric_verify)
        with stage("convert"):
            return self._make(job, job.start)

    def ahead(
        self,
        recipes: Sequence[Recipe],
        calibration: Calibration | None = None,
        legacy: LegacySettings | None = None,
    ) -> None:
        """Start at once, on the engine's converter workers, what ``convert`` will be asked
        for ``recipes`` (with these settings): a calibration per activation type for the
        ``calibrates_once`` recipes (unless kept), a conversion for each other recipe. Without
        converter workers (the local engine, an in-memory model), nothing: each recipe
        converts when asked, one after another."""
        if self._pool is None:
            return
        calibrating: set[str] = set()
        for recipe in recipes:
            if calibrates_once(recipe) and calibration is not None:
                if recipe.activations in calibrating or self._made_here(recipe, calibration):
                    continue
                calibrating.add(recipe.activations)
                job = ConvertJob(self._model, recipe.name, calibration, calibrate_only=True)
            else:
                job = self._job(recipe, calibration, legacy)
            if self._stored(job)[1] is None:
                self._ahead.append(self._pool.submit(job))

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
                    ConvertJob(self._model, recipe.name, calibrated=calibrated),
                    lambda: from_calibrated(calibrated, recipe),
                )
        with stage("calibrate" if recipe.needs_calibration else "convert"):
            return self._make(
                self._job(recipe, calibration, legacy),
                lambda: convert(source, recipe, calibration, legacy),
            )

    def _job(
        self, recipe: Recipe, calibration: Calibration | None, legacy: LegacySettings | None
    ) -> ConvertJob:
        """``recipe``'s conversion with the settings it uses alone: the same conversion asked
        twice (a float32 recipe, AEQ's float model) is the same job."""
        return ConvertJob(
            self._model,
            recipe.name,
            calibration if recipe.needs_calibration else None,
            legacy if recipe.legacy else None,
        )

    def calibrated(self, source: Source, recipe: Recipe, calibration: Calibration | None) -> bytes:
        """The calibrate-only model of ``source`` on ``calibration`` for ``recipe``'s
        activation type: made once per run (and, with ``keep``, once per cache)."""
        made = self._made_here(recipe, calibration)
        if made is not None:
            return made
        with stage("calibrate"):
            content = self._make(
                ConvertJob(self._model, recipe.name, calibration, calibrate_only=True),
                lambda: convert(source, recipe, calibration, calibrate_only=True),
            )
        self._calibrated[recipe.activations] = (calibration, content)
        return content

    def _made_here(self, recipe: Recipe, calibration: Calibration | None) -> bytes | None:
        """The calibrated model for ``recipe``'s activation type made earlier in this run on
        ``calibration``; None: none yet."""
        made = self._calibrated.get(recipe.activations)
        return made[1] if made is not None and made[0] is calibration else None

    def _run(self, job: Job) -> Any:
        """``job``'s answer from the converter workers (the one started ``ahead``, if any),
        else from the converter process (restarted after a crash)."""
        if self._pool is not None and isinstance(job, ConvertJob):
            started = next((t for t in self._ahead if t.job.same(job)), None)
            if started is not None:
                self._ahead.remove(started)
            return self._pool.result(started or self._pool.submit(job))
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

    def rest(self) -> None:
        """The run's planned conversions are done: free the engine's converter workers (Ray:
        kill their actors, each holding TensorFlow and the model on a node the evaluation's
        actors now need); a later conversion starts new ones. The local converter process
        stays: it takes no cluster room, and a restart would import TensorFlow again."""
        if self._pool is not None:
            self._pool.close()
            self._ahead = []

    def close(self) -> None:
        if self._process is not None:
            self._process.close()
            self._process = None
        self.rest()

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
