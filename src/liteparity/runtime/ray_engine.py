"""The Ray engine, and the one module that imports ``ray`` (lazily: ``--engine ray`` only).

An actor hosts a ``JobHost``, so the same jobs run there as in a local worker process.
``RayWorker`` is one model's worker: a job whose feeds are independent (``RunModel``) starts
on ``shards`` actors and batch k goes to actor k mod shards (shard s: every batch k with
k mod shards = s), so the actors of one model run at once while the caller still gets the
values in order and folds them itself: the numbers are a local run's, digit for digit,
whatever the shard count. Batches go to the object store once (``ray.put``) and every model's
actors read them from there; the reference's outputs never leave the caller.

Faults: when an actor dies (its node lost, its process killed) its batches in flight go to a
new actor, scheduled wherever the cluster has room, which starts the same job first; the
worker's ``retried`` says so. A crash that follows a model everywhere stops after
``RETRIES``, as one ``InterpreterError`` line. Closing a worker with work in flight kills its
actors: Ctrl-C cancels the cluster's work too.
"""

from __future__ import annotations

import logging
import warnings
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from liteparity import errors
from liteparity.errors import (
    InternalError,
    InterpreterError,
    LiteparityError,
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
    """A batch in the object store, and the order a model takes its inputs in."""

    ref: Any  # ray.ObjectRef of a list of arrays
    order: tuple[int, ...]
    rows: int  # samples in the batch
    head_rows: int | None = None  # only the first rows (a capped candidate's last batch)

    def select(self, order: Sequence[int]) -> RayInputs:
        return RayInputs(self.ref, tuple(self.order[i] for i in order), self.rows, self.head_rows)

    def head(self, rows: int) -> RayInputs:
        return RayInputs(self.ref, self.order, self.rows, rows)


class _Batches:
    def __init__(self, ray: Any) -> None:
        self._ray = ray

    def put(self, inputs: Sequence[np.ndarray]) -> RayInputs:
        rows = len(inputs[0])
        return RayInputs(self._ray.put(list(inputs)), tuple(range(len(inputs))), rows)

    def close(self) -> None:
        """The batches leave the object store when nothing refers to them."""


class JobActor:
    """What a Ray actor runs: a ``JobHost``; a job's error travels as (class name, line)."""

    def __init__(self) -> None:
        self._host = JobHost()

    def call(self, verb: str, payload: Any) -> tuple[str, Any]:
        if isinstance(payload, RayInputs):
            arrays, rows = _ray().get(payload.ref), payload.head_rows
            payload = [arrays[i][:rows] for i in payload.order]
        value, error = self._host.handle((verb, payload))
        if error is None:
            return "ok", value
        return type(error).__name__, str(error)


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

    def __init__(self, ray: Any, shards: int, nodes: int) -> None:
        self.ray, self.shards, self.nodes = ray, shards, nodes
        self.ahead = shards
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

    def batches(self) -> _Batches:
        return _Batches(self.ray)

    def stream(self, worker: BaseWorker, batches: Iterable[Sequence[np.ndarray]]) -> Iterator[Any]:
        """Every actor busy: ``ahead`` batches in flight beyond the one read next."""
        if not isinstance(worker, RayWorker):
            raise InternalError(f"the Ray engine cannot stream to {type(worker).__name__}")
        store = self.batches()
        replies: deque[Any] = deque()
        for batch in batches:
            replies.append(worker.feed(store.put(batch)))
            if len(replies) > self.ahead:
                yield replies.popleft().get()
        while replies:
            yield replies.popleft().get()

    def describe(self, rows: int, batch_rows: int) -> dict[str, Any]:
        batches = -(-rows // batch_rows)
        shard0 = -(-batches // self.shards)  # shard 0 gets the most batches
        return {
            "engine": self.name,
            "nodes": self.nodes,
            "shards": self.shards,
            "shard_rows": min(rows, shard0 * batch_rows),
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
    (batches round robin), any other job on one."""

    kind = "interpreter"

    def __init__(self, name: str, engine: RayEngine) -> None:
        super().__init__(name)
        self._engine, self._ray = engine, engine.ray
        self._actors: list[Any] = []
        self._sent: deque[_Sent] = deque()
        self._job: Job | None = None
        self._job_ref: Any = None
        self._spread = False
        self._turn = 0

    def start(self, job: Job, doing: str | None = None) -> Any:
        check_job(job)  # before the job goes to the object store
        self._job, self._job_ref = job, self._ray.put(job)
        self._spread = job.independent_feeds
        wanted = self._engine.shards if self._spread else 1
        while len(self._actors) < wanted:
            self._actors.append(self._engine.actor())
        self._turn = 0
        return super().start(job, doing)

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
        """Actor ``sent.actors[i]``'s answer, its batch run again on a new actor if it died."""
        while True:
            try:
                answer: tuple[str, Any] = self._ray.get(sent.refs[i])
                return answer
            except self._lost as exc:
                k = sent.actors[i]
                self._fault(exc, f"shard {k} of {self.name}: actor lost while {doing}")
                self._replace(k, doing)
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
        self.retried.append(f"{what}, retried")

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
        self._waiting.clear()
