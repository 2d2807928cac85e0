"""Engines: where the models of an evaluation run. ``local`` (a worker process per model on
this machine, batches in shared memory) or ``ray`` (``runtime.ray_engine``: actors on a Ray
cluster, each model's batches spread over several actors, several conversions at once). The
evaluation loop and ``fix`` ask an engine for workers and for batches, the converter for
conversion workers; the numbers do not depend on which one runs them,
because every batch is the same and the statistics are folded in the caller, in order.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from liteparity.data.binding import Binding
from liteparity.runtime.jobs import BaseWorker
from liteparity.runtime.shared import SHARED_SLOTS, SharedSlots
from liteparity.runtime.worker import Worker
from liteparity.specs import EngineOptions


class Batches(Protocol):
    """Where an engine's batches wait for its workers (``put`` and ``put_rows`` answer what
    ``feed`` takes: ``SharedInputs`` or ``ray_engine.RayInputs``, both with ``select(order)``
    and ``head(rows)``)."""

    def put(self, inputs: Sequence[np.ndarray]) -> Any: ...

    def put_rows(self, rows: np.ndarray) -> Any | None:
        """The batch of these rows of the binding the store was made for, named rather than
        read: the workers read it themselves (``binding.take``, as the caller would). None:
        they cannot, the caller reads the rows and puts them."""
        ...

    def close(self) -> None: ...


class Engine(Protocol):
    name: str
    #: Batches (from ``batches``) a caller may send to a worker beyond the one it reads next.
    ahead: int
    #: Whether a reference that runs as a worker job (a ``.tflite``: ``Source.job``) runs on
    #: this engine's workers, beside the candidates, instead of in the caller's own worker.
    runs_reference: bool

    def worker(self, name: str) -> BaseWorker: ...

    def pool(self, name: str, jobs: int | None = None) -> list[BaseWorker]:
        """Workers for independent jobs run at once (the sensitivity variants: job k goes to
        worker k mod len(pool); ``fix``'s plain recipes), no more than ``jobs``; the
        engine's cores shared among them."""
        ...

    def converters(self) -> list[BaseWorker]:
        """Workers for the run's conversions, run at once (a job each at a time; a lost one
        is its conversion's ``ConversionError``). Empty: the engine converts in the calling
        machine's one converter process (``convert.process``), a recipe after another."""
        ...

    def batches(self, binding: Binding | None = None, held: int | None = None) -> Batches:
        """A store for batches; with ``binding``, one whose workers may read its rows where
        the data lives (``put_rows``). ``held``: batches the caller keeps in use at once
        (default ``ahead + 1``); ``put`` fills them in turn."""
        ...

    def describe(self, rows: int, batch_rows: int) -> dict[str, Any]:
        """What the JSON records about the run's engine: where it ran, whether the workers
        read the data themselves (``data``: ``actors``) or got it from the caller
        (``driver``), and what a fault made it run again (``retried``, a line each)."""
        ...


#: Processes of a local pool at most, however many cores the machine has.
POOL_MAX = 8


class LocalEngine:
    """A worker process per model on this machine; batch k+1 is sent while k is folded."""

    name = "local"
    ahead = SHARED_SLOTS - 1  # one block read while the next is written
    runs_reference = False  # a .tflite reference has its own worker process already

    def worker(self, name: str) -> BaseWorker:
        return Worker(name)

    def pool(self, name: str, jobs: int | None = None) -> list[BaseWorker]:
        """A process per core (at most ``POOL_MAX``, and ``jobs``)."""
        cores = max(1, min(os.cpu_count() or 1, POOL_MAX, jobs or POOL_MAX))
        return [Worker(f"{name} {i}") for i in range(cores)]

    def converters(self) -> list[BaseWorker]:
        """None: conversions run in the one local converter process (a TensorFlow process
        takes ~1.5 GB; two at once would only share the same cores)."""
        return []

    def batches(self, binding: Binding | None = None, held: int | None = None) -> Batches:
        """Shared memory on this machine: the caller reads the rows once, every worker maps
        them in place (cheaper than each worker reading the files)."""
        return SharedSlots(held or self.ahead + 1)

    def describe(self, rows: int, batch_rows: int) -> dict[str, Any]:
        return {
            "engine": self.name,
            "nodes": 1,
            "shards": 1,
            "shard_rows": rows,
            "data": "driver",
            "retried": [],
        }


def open_engine(options: EngineOptions, debug: bool = False) -> Engine:
    """The engine ``options`` ask for; Ray is imported (and joined) only here, only then."""
    if options.engine == "ray":
        from liteparity.runtime.ray_engine import RayEngine

        return RayEngine.connect(options.ray_address, options.shards, debug)
    return LocalEngine()
