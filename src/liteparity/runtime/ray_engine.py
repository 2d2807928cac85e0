"""The Ray engine, and the one module that imports ``ray`` (lazily: ``--engine ray`` only).

An actor hosts a ``JobHost``, so the same jobs run there as in a local worker process.
``RayWorker`` is one model's worker: a job whose feeds are independent (``RunModel``) starts
on ``shards`` actors and batch k goes to actor k mod shards (shard s: every batch k with
k mod shards = s), so the actors of one model run at once while the caller still gets the
values in order and folds them itself: the numbers are a local run's, digit for digit,
whatever the shard count.

Where the data is read: when every input column is a file read by row (``.npy``, ``.npz``
members, image folders: ``Binding.portable``), the binding itself (absolute paths, no labels)
goes to the object store once and a batch names its row numbers (``RayInputs.read``); each
actor reads its rows with the binding's own ``take`` (the same dtype casts, reshapes and NaN
check), then applies the batch's ``select(order)`` and ``head(rows)``, so the arrays are the
caller's, bit for bit. The files must be on storage every node sees at the same path. The
caller still reads the first block (the data's ranges, for the scaling warnings) and any
block something in this process needs (a Keras or SavedModel reference, explain's evidence).
In-memory arrays and CSV tables, and ``fix``'s batches (read once, kept for every trial),
are read by the caller and put in the object store once (``ray.put``); every model's actors
read them from there. ``describe`` says which (``data``: ``actors`` or ``driver``).

The reference: a ``.tflite`` reference (``Source.job``) runs on the cluster like a candidate,
on ``shards`` actors fed the same batches, so its outputs are computed once per shard there
and come back to the caller, which folds them with the candidates' in order. A Keras,
SavedModel or frozen-graph reference runs in the calling process (TensorFlow is there
already; the actors only need LiteRT).

Conversions: ``converters`` gives workers for the run's TF conversions (``RayConverter``, one
actor each, which imports TensorFlow itself), so that ``convert.process.Converter`` runs
several recipes' conversions at once. A model file is read by the actor, from the same path:
a node that cannot read it says so (``JobActor``). A lost converter actor has its conversion
started again on a new actor, once; lost twice, it is its recipe's ``ConversionError`` (Ray
cannot tell a kill from a segfault, and the converter that segfaults on a model does so on
every node). Converter actors are killed once the run's conversions are done (each holds
TensorFlow and the model).

Faults: when an actor dies (its node lost, its process killed) its batches in flight go to a
new actor, scheduled wherever the cluster has room, which starts the same job first (a job
that adds its batches up on one actor, a sensitivity variant or tensor statistics, is fed
again the batches the lost one had answered); the worker's ``retried`` says so. A crash
that follows a model everywhere stops after ``RETRIES``, as one ``InterpreterError`` line.
Closing a worker with work in flight kills its actors: Ctrl-C cancels the cluster's work
too. Rows an actor cannot use (a NaN, a file its node does not see) end the run as
``UnreadableData``, as the same rows read by the caller would. Every retry is also kept by
the engine (``describe``'s ``retried``): the reference's have no candidate to carry them.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from liteparity import errors
from liteparity.data.binding import Binding
from liteparity.errors import (
    ConversionError,
    InterpreterError,
    LiteparityError,
    ModelError,
    UnreadableData,
    UsageError,
    first_line,
)
from liteparity.runtime.jobs import BaseWorker, Job, JobHost, check_job

#: The line an absent Ray becomes.
INSTALL = "--engine ray needs Ray, which is not installed: pip install 'liteparity[ray]'"

#: Times one worker replaces a dead actor before it gives up on its model.
RETRIES = 5


#: Idle actors by the Ray job (this process's connection) they belong to.
_IDLE: dict[str, list[Any]] = {}


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError(INSTALL) from None
    return ray


@dataclass(frozen=True)
class RayInputs:
    """A batch on the cluster, and the order a model takes its inputs in: its arrays in the
    object store (``ref``), or (``read``) the row numbers an actor reads itself from the
    data at ``ref`` (a ``Binding.portable()``, put once per run)."""

    ref: Any  # ray.ObjectRef of a list of arrays, or of a portable Binding
    order: tuple[int, ...]
    rows: int  # samples in the batch
    head_rows: int | None = None  # only the first rows (a capped candidate's last batch)
    read: np.ndarray | None = None  # the rows to read from the data at ``ref``

    def select(self, order: Sequence[int]) -> RayInputs:
        return replace(self, order=tuple(self.order[i] for i in order))

    def head(self, rows: int) -> RayInputs:
        return replace(self, head_rows=rows)


class _Batches:
    """A run's batches: arrays put by the caller, or (``data``: a portable binding's ref)
    rows named for the actors to read."""

    def __init__(self, ray: Any, data: Any = None, inputs: int = 0) -> None:
        self._ray, self._data, self._inputs = ray, data, inputs

    def put(self, inputs: Sequence[np.ndarray]) -> RayInputs:
        rows = len(inputs[0])
        return RayInputs(self._ray.put(list(inputs)), tuple(range(len(inputs))), rows)

    def put_rows(self, rows: np.ndarray) -> RayInputs | None:
        if self._data is None:
            return None
        return RayInputs(self._data, tuple(range(self._inputs)), len(rows), read=rows)

    def close(self) -> None:
        """The batches leave the object store when nothing refers to them."""


class JobActor:
    """What a Ray actor runs: a ``JobHost``; a job's error travels as (class name, line).
    Rows named by a batch are read here with the binding's own ``take`` (the dtype casts,
    reshapes and NaN check the caller would apply), then put in the model's input order
    and cut to ``head_rows``, as ``SharedInputs.select``/``head`` do for a local worker. A
    job that reads files (``Job.files``: a model to convert) starts only if they are readable
    on this node."""

    def __init__(self) -> None:
        self._host = JobHost()
        # the portable binding of the run (its ref's hex), unpickled once: an .npz member
        # stream stays open between this actor's batches, which come in row order
        self._data: tuple[str, Binding] | None = None

    def call(self, verb: str, payload: Any) -> tuple[str, Any]:
        if verb == "start":
            unreadable = [path for path in payload.files if not os.access(path, os.R_OK)]
            if unreadable:
                return ModelError.__name__, self._unreadable_model(unreadable[0])
        if isinstance(payload, RayInputs):
            try:
                payload = self._arrays(payload)
            except (LiteparityError, OSError) as exc:
                return UnreadableData.__name__, self._unreadable(exc)
        value, error = self._host.handle((verb, payload))
        if error is None:
            return "ok", value
        return type(error).__name__, str(error)

    def _arrays(self, batch: RayInputs) -> list[np.ndarray]:
        ray = _ray()
        if batch.read is None:
            arrays = ray.get(batch.ref)
        else:
            if self._data is None or self._data[0] != batch.ref.hex():
                self._data = (batch.ref.hex(), ray.get(batch.ref))
            arrays = self._data[1].take(batch.read)[0]
        return [arrays[i][: batch.head_rows] for i in batch.order]

    @staticmethod
    def _unreadable(exc: Exception) -> str:
        if isinstance(exc, LiteparityError):
            return str(exc)  # what the caller would have said reading the same rows
        node = _ray().util.get_node_ip_address()
        return (
            f"cannot read the data on node {node} ({first_line(exc)}): --engine ray reads "
            "data files on the actors, so they must be on storage every node sees, at the "
            "same path"
        )

    @staticmethod
    def _unreadable_model(path: str) -> str:
        node = _ray().util.get_node_ip_address()
        return (
            f"cannot read the model {path} on node {node}: --engine ray converts on the "
            "actors, so the model file must be on storage every node sees, at the same path"
        )


@dataclass
class _Sent:
    """One call on its way: the actors asked (the first one's answer is the reply's), the
    message and the answers' refs."""

    actors: list[int]
    message: tuple[str, Any]
    refs: list[Any]


class RayEngine:
    """Actors on a Ray cluster; idle actors are kept for the next worker (they start slowly)."""

    name = "ray"
    runs_reference = True  # once per shard on the cluster, not in the calling process

    def __init__(self, ray: Any, shards: int, nodes: int) -> None:
        self.ray, self.shards, self.nodes = ray, shards, nodes
        self.ahead = shards
        #: where the run's rows were read: "actors" once a store named rows for them
        self.data = "driver"
        #: every retry of the run's workers, a line each (the reference's have no other home)
        self.retried: list[str] = []
        self._actor = ray.remote(JobActor).options(scheduling_strategy="SPREAD", max_restarts=0)
        # kept between runs of this process on this cluster (a new connection: new actors)
        self._idle = _IDLE.setdefault(ray.get_runtime_context().get_job_id(), [])

    @classmethod
    def connect(cls, address: str | None, shards: int | None, debug: bool) -> RayEngine:
        """Join the cluster at ``address`` (None: the one this process joined, else a new one
        on this machine), quietly unless ``debug``: the terminal shows liteparity's output."""
        ray = _ray()
        if not ray.is_initialized():
            try:
                with warnings.catch_warnings():  # Ray's own (a bad address) only under --debug
                    if not debug:
                        warnings.simplefilter("ignore")
                    ray.init(
                        address=address,
                        log_to_driver=debug,
                        logging_level=logging.INFO if debug else logging.ERROR,
                        include_dashboard=False,
                        configure_logging=True,
                    )
            except (ConnectionError, ValueError, RuntimeError) as exc:
                where = address or "a new local cluster"
                raise UsageError(f"--engine ray: cannot join {where}: {first_line(exc)}") from None
        nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
        cpus = int(ray.cluster_resources().get("CPU", 1))
        return cls(ray, shards or max(1, cpus), nodes)

    def worker(self, name: str) -> RayWorker:
        return RayWorker(name, self)

    def pool(self, name: str, jobs: int | None = None) -> list[BaseWorker]:
        """The ``shards`` actors shared among min(``jobs``, ``shards``) workers: a job with
        independent feeds (``RunModel``) spreads its batches over its worker's actors, so
        8 models on 32 actors run at once on 4 actors each, and 8 on 2 actors two at a
        time on one each (a job spread over every shard would take shards² actors)."""
        n = max(1, min(jobs or self.shards, self.shards))
        return [
            RayWorker(f"{name} {i}", self, shards=self.shards // n + (i < self.shards % n))
            for i in range(n)
        ]

    def converters(self) -> list[BaseWorker]:
        """``shards`` conversion workers: as many conversions at once as the cluster has CPUs
        (or ``--shards``), each on its own actor, created when it starts a job."""
        return [RayConverter(f"converter {i}", self) for i in range(self.shards)]

    def batches(self, binding: Binding | None = None, held: int | None = None) -> _Batches:
        """With a binding whose columns are files (``Binding.portable``), the actors read
        the rows themselves; else the caller puts the arrays in the object store, which
        keeps every batch still referred to (``held`` is for the local engine's slots)."""
        portable = binding.portable() if binding is not None else None
        if portable is None:
            return _Batches(self.ray)
        self.data = "actors"
        return _Batches(self.ray, self.ray.put(portable), len(portable.columns))

    def describe(self, rows: int, batch_rows: int) -> dict[str, Any]:
        batches = -(-rows // batch_rows)
        shard0 = -(-batches // self.shards)  # shard 0 gets the most batches
        return {
            "engine": self.name,
            "nodes": self.nodes,
            "shards": self.shards,
            "shard_rows": min(rows, shard0 * batch_rows),
            "data": self.data,
            "retried": list(self.retried),
        }

    def actor(self) -> Any:
        return self._idle.pop() if self._idle else self._actor.remote()

    def release(self, actor: Any, idle: bool) -> None:
        """Keep an idle actor for the next worker; kill one with work in flight."""
        if idle:
            self._idle.append(actor)
        else:
            self.ray.kill(actor, no_restart=True)


class RayWorker(BaseWorker):
    """One model's worker on the cluster: a job with independent feeds on ``shards`` actors
    (default: the engine's; batches round robin), any other job on one."""

    kind = "interpreter"

    def __init__(self, name: str, engine: RayEngine, shards: int | None = None) -> None:
        super().__init__(name)
        self._engine, self._ray = engine, engine.ray
        self._shards = shards or engine.shards
        self._actors: list[Any] = []
        self._sent: deque[_Sent] = deque()
        # the feeds of a job on one actor, since its start: what a new actor must be fed
        # again before the lost one's calls (the job's state, an accumulator, was there);
        # the messages alone, not their answers' refs (which would keep the answers)
        self._feeds: list[tuple[str, Any]] = []
        self._job: Job | None = None
        self._job_ref: Any = None
        self._spread = False
        self._turn = 0

    def start(self, job: Job, doing: str | None = None) -> Any:
        check_job(job)  # before the job goes to the object store
        self._job, self._job_ref = job, self._ray.put(job)
        self._spread = job.independent_feeds
        wanted = self._shards if self._spread else 1
        while len(self._actors) < wanted:
            self._actors.append(self._engine.actor())
        self._turn, self._feeds = 0, []
        return super().start(job, doing)

    @property
    def width(self) -> int:
        return self._shards

    def answered(self) -> bool:
        if not self._sent:
            return True
        refs = self._sent[0].refs
        ready, _ = self._ray.wait(refs, num_returns=len(refs), timeout=0)
        return len(ready) == len(refs)

    def renewed(self) -> BaseWorker:
        self.close()
        return RayWorker(self.name, self._engine, self._shards)

    def _send(self, message: tuple[str, Any], doing: str) -> None:
        verb = message[0]
        if verb == "feed":
            targets = [self._turn % len(self._actors) if self._spread else 0]
            self._turn += 1
        elif verb == "start":  # every actor of the job; actor 0 answers
            targets = list(range(len(self._actors) if self._spread else 1))
        else:  # the result: actor 0's, which got the first batch (the others' are dropped)
            targets = [0]
        sent = _Sent(targets, message, [])
        sent.refs = [self._call(k, message) for k in targets]
        self._sent.append(sent)
        if verb == "feed" and not self._spread:
            self._feeds.append(message)

    def _call(self, k: int, message: tuple[str, Any]) -> Any:
        verb, payload = message
        return self._actors[k].call.remote(verb, self._job_ref if verb == "start" else payload)

    def _receive(self, doing: str) -> tuple[Any, LiteparityError | None]:
        sent = self._sent.popleft()
        answers = [self._answer(sent, i, doing) for i in range(len(sent.refs))]
        for status, value in answers:
            if status != "ok":
                return None, getattr(errors, status, InterpreterError)(value)
        return answers[0][1], None

    def _answer(self, sent: _Sent, i: int, doing: str) -> tuple[str, Any]:
        """Actor ``sent.actors[i]``'s answer, its batch run again on a new actor if it died
        (after the batches it had answered, for a job that adds them up on its one actor:
        the new actor's result is then the lost one's)."""
        while True:
            try:
                answer: tuple[str, Any] = self._ray.get(sent.refs[i])
                return answer
            except self._lost as exc:
                k = sent.actors[i]
                self._fault(exc, f"shard {k} of {self.name}: actor lost while {doing}")
                self._replace(k, doing)
                # the feeds answered already (all but those waiting, answered in order):
                # fed again, their answers dropped
                waiting = sum(later.message[0] == "feed" for later in (sent, *self._sent))
                for message in self._feeds[: max(0, len(self._feeds) - waiting)]:
                    self._call(k, message)
                sent.refs[i] = self._call(k, sent.message)
                # this actor's later calls were sent to the dead one: send them again
                for later in self._sent:
                    for j, other in enumerate(later.actors):
                        if other == k:
                            later.refs[j] = self._call(k, later.message)

    @property
    def _lost(self) -> tuple[type[Exception], ...]:
        exceptions = self._ray.exceptions
        return (
            exceptions.RayActorError,  # its process or node died
            exceptions.ActorUnavailableError,  # its node is going: the call may never answer
            exceptions.ObjectLostError,
        )

    def _fault(self, exc: Exception, what: str) -> None:
        """Note a lost actor, or give up on the model after ``RETRIES``."""
        if len(self.retried) >= RETRIES:
            raise InterpreterError(
                f"{self.kind} lost on Ray {RETRIES + 1} times, last {what}: "
                f"{errors.first_line(exc)}"
            ) from None
        self._note(what)

    def _note(self, what: str) -> None:
        """Keep a retry's line, here and in the engine's (the JSON's ``retried``)."""
        self.retried.append(f"{what}, retried")
        self._engine.retried.append(self.retried[-1])

    def _replace(self, k: int, doing: str) -> None:
        """A new actor for shard ``k``, running the current job (its start is waited for: a
        job that cannot start says so here, a new actor on a dying node is replaced too)."""
        while True:
            self._engine.release(self._actors[k], idle=False)
            self._actors[k] = self._engine.actor()
            if self._job is None:
                return
            try:
                status, value = self._ray.get(self._actors[k].call.remote("start", self._job_ref))
            except self._lost as exc:
                self._fault(exc, f"shard {k} of {self.name}: new actor lost while {doing}")
                continue
            if status != "ok":
                raise getattr(errors, status, InterpreterError)(value)
            return

    def close(self) -> None:
        busy = bool(self._sent)
        for actor in self._actors:
            self._engine.release(actor, idle=not busy)
        self._actors, self._sent, self._job, self._job_ref = [], deque(), None, None
        self._feeds = []
        self._waiting.clear()


class RayConverter(RayWorker):
    """A worker for conversions (``convert.process.ConvertJob``) on one actor, which imports
    TensorFlow and loads the model itself. A lost actor (its node gone, its process killed)
    has its conversion started again on a new one, once; lost again, it is the conversion's
    crash, as a crash of the local converter process is: that recipe's one
    ``ConversionError`` line (Ray cannot tell a segfault from a kill, and a converter that
    segfaults on a model does so on every node). The next job gets a new actor. Its actors
    are killed when it closes, never kept idle: each holds TensorFlow and the model
    (~1.5 GB), which no interpreter job needs."""

    kind = "converter"

    def __init__(self, name: str, engine: RayEngine) -> None:
        super().__init__(name, engine, shards=1)

    def _answer(self, sent: _Sent, i: int, doing: str) -> tuple[str, Any]:
        for attempt in (1, 2):
            try:
                answer: tuple[str, Any] = self._ray.get(sent.refs[i])
                return answer
            except self._lost:
                self._engine.release(self._actors.pop(), idle=False)
                if attempt == 2:
                    break
                self._note(f"{self.name}: actor lost while {doing}")
                self._actors.append(self._engine.actor())
                sent.refs[i] = self._call(0, sent.message)
        line = f"{self.kind} crashed twice (its Ray actor died each time) while {doing}"
        return ConversionError.__name__, line

    def close(self) -> None:
        for actor in self._actors:
            self._engine.release(actor, idle=False)
        self._actors = []
        super().close()
