"""Worker jobs: the one protocol between the stages and whatever runs their models.

A **job** is a small picklable object, a frozen dataclass whose fields are its whole spec
(model bytes, thread count, options), with three methods that the process running it calls
in this order::

    info = job.start()        # load what the job needs; what it found (inputs, outputs, ...)
    value = job.feed(batch)   # once per batch, a list of numpy arrays; may return a value
    result = job.result()     # what the batches added up to; this ends the job

Each stage defines the jobs it owns, next to the code they run: running a model
(``runtime.model_jobs``), tensor statistics (``measure.stats``), the layer probe
(``layerwise.probe``), sensitivity variants (``layerwise.sensitivity``). A worker never
imports a stage above ``runtime``: the job arrives pickled from the parent (trusted), and
unpickling imports its class. Classes from outside the ``liteparity`` package are refused.

**Engines.** What carries jobs is a worker's business, behind one interface (``start``,
``feed``, ``result``, each returning a ``Reply`` at once): ``runtime.worker.Worker`` runs them
in a child process of its own (a crash becomes one ``InterpreterError`` line),
``InProcessWorker`` in the calling process (tests, debugging), and a distributed engine (Ray)
can run the same job objects on another machine, because:

- a spec holds no file descriptor and no path local to the parent; a batch may be
  ``SharedInputs`` (a batch in this machine's shared memory), which the worker turns into
  arrays before ``feed``: another engine sends the arrays instead;
- info, feed values and results are plain picklable data (dataclasses, arrays, numbers);
- what ``start`` builds (a loaded interpreter) lives in the job's ``state()`` fields, in the
  process that runs it, and never pickles.

A worker runs one job at a time; ``start`` drops the job that was running. Replies arrive in
the order asked: a caller may start several workers before reading any answer, or send
batch k+1 before reading batch k's. (Only do that with ``SharedInputs`` or small replies: two
large messages crossing in a process worker's socket wait for each other forever.) An error
raised by a job comes back as its ``LiteparityError`` (any other exception as one
``InterpreterError`` line) from the ``get()`` of the call that raised it or, if nobody reads
that reply, from the ``get()`` of a later one.
"""

from __future__ import annotations

import dataclasses
import pickle
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import numpy as np

from liteparity.errors import (
    InternalError,
    InterpreterError,
    LiteparityError,
    UsageError,
    first_line,
)
from liteparity.runtime.shared import SharedInputs, _SharedReader

#: The package a job's class must come from: unpickling a job imports its module.
PACKAGE = "liteparity."

_W = TypeVar("_W", bound="BaseWorker")


class Job:
    """Base of the worker jobs; subclasses are frozen dataclasses whose fields are the spec."""

    #: What the job does, for the line a crash becomes ("... while comparing layers").
    doing = "running a job"

    #: Each feed's value depends on its batch alone and ``result`` on the first batch fed: an
    #: engine may spread the feeds over several copies of the job (``RunModel``) and ask the
    #: copy that got the first batch for the result.
    independent_feeds = False

    @property
    def files(self) -> tuple[str, ...]:
        """Files the job reads where it runs (a model it loads by path): an engine that runs
        it on another machine checks there that it can read them."""
        return ()

    def start(self) -> Any:
        raise NotImplementedError

    def feed(self, batch: list[np.ndarray]) -> Any:
        return None

    def result(self) -> Any:
        return None

    def keep(self, **values: Any) -> None:
        """Set ``state()`` fields of this (frozen) job: what ``start`` built."""
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __getstate__(self) -> dict[str, Any]:
        """The spec alone: ``state()`` fields never pickle."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}  # type: ignore[arg-type]


def state() -> Any:
    """A job field that ``start`` fills (``Job.keep``): not part of the spec, so neither
    given, compared, shown nor pickled."""
    return dataclasses.field(default=None, init=False, repr=False, compare=False)


def check_job(job: object) -> None:
    """Refuse a job whose class a worker would import from outside liteparity."""
    cls = type(job)
    if not cls.__module__.startswith(PACKAGE) or not isinstance(job, Job):
        raise UsageError(
            f"refusing to run {cls.__module__}.{cls.__qualname__} in a worker: jobs must be "
            f"liteparity.runtime.jobs.Job subclasses defined in the liteparity package"
        )


class JobHost:
    """Runs the jobs a worker receives, one at a time, in the process that hosts them."""

    def __init__(self) -> None:
        self._job: Job | None = None
        self._shared = _SharedReader()

    def handle(self, message: tuple[str, Any]) -> tuple[Any, LiteparityError | None]:
        """``(value, None)``, or ``(None, error)``; ``message`` is ``("start", job)``,
        ``("feed", batch)`` or ``("result", None)``."""
        verb, payload = message
        try:
            if verb == "start":
                self._job = None  # the previous job is dropped even if this one fails
                value = payload.start()
                self._job = payload
                return value, None
            job = self._job
            if job is None:
                raise UsageError(f"{verb} before start: no job is running")
            if verb == "feed":
                if isinstance(payload, SharedInputs):
                    payload = self._shared.arrays(payload)
                return job.feed(payload), None
            self._job = None  # the result ends the job, whatever it raises
            return job.result(), None
        except LiteparityError as exc:
            return None, exc
        except InternalError:
            raise  # a bug in liteparity: it keeps its traceback
        except Exception as exc:  # a LiteRT failure that is not ours: still one clear line
            error = InterpreterError(f"{type(exc).__name__}: {first_line(exc)}")
            error.__cause__ = exc
            return None, error


class Reply:
    """The answer to one call, on its way: ``get()`` waits for it and returns it (or raises
    the error the call met)."""

    def __init__(self, worker: BaseWorker, doing: str) -> None:
        self._worker, self.doing = worker, doing
        self.done = False
        self._value: Any = None
        self.error: LiteparityError | None = None

    def settle(self, value: Any, error: LiteparityError | None) -> None:
        self._value, self.error, self.done = value, error, True

    def get(self) -> Any:
        if not self.done:
            self._worker._settle(self)
        if self.error is not None:
            raise self.error
        return self._value


class BaseWorker:
    """What every worker offers: ``start``/``feed``/``result`` and conveniences built on them.
    Subclasses carry the messages (``_send``, ``_receive``)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._waiting: deque[Reply] = deque()
        self._doing = "running a job"
        self._fed = 0
        #: What an engine ran again after a fault (a lost node): one line each, for the result.
        self.retried: list[str] = []

    def start(self, job: Job, doing: str | None = None) -> Reply:
        """Start ``job`` (without waiting): the reply is its ``start()``'s info. ``doing``
        names the start in a crash's line (default: the job's ``doing``, loading)."""
        check_job(job)
        self._doing, self._fed = job.doing, 0
        return self._ask(("start", job), doing or f"{job.doing} (loading)")

    def feed(self, batch: Any) -> Reply:
        """Send one batch to the running job: arrays, or where an engine keeps them
        (``SharedInputs``, ``ray_engine.RayInputs``), which is sent as it is."""
        self._fed += 1
        payload = list(batch) if isinstance(batch, (list, tuple)) else batch
        return self._ask(("feed", payload), f"{self._doing} (batch {self._fed})")

    def result(self) -> Reply:
        """Ask for the running job's result, which ends it."""
        return self._ask(("result", None), f"{self._doing} (finishing)")

    @property
    def width(self) -> int:
        """Feeds the worker runs at once (a process: one; a Ray worker: its actors): what a
        caller keeps in flight to keep it busy."""
        return 1

    def answered(self) -> bool:
        """Whether the next answer is here: reading it would not wait (an answer that is an
        error, a crash, counts)."""
        return True

    def renewed(self) -> BaseWorker:
        """A new worker like this one, in its place once its job failed (a crashed process
        cannot run the next job); this one is closed."""
        self.close()
        return type(self)(self.name)

    def run(
        self, job: Job, batches: Iterable[Sequence[np.ndarray] | SharedInputs] = ()
    ) -> tuple[Any, list[Any], Any]:
        """Run ``job`` to the end: ``(info, the value of each batch, result)``. Waits for each
        batch's value before sending the next, so the values may be large."""
        info = self.start(job).get()
        values = [self.feed(batch).get() for batch in batches]
        return info, values, self.result().get()

    def _ask(self, message: tuple[str, Any], doing: str) -> Reply:
        reply = Reply(self, doing)
        try:
            self._send(message, doing)
        except LiteparityError as exc:  # never sent: no answer will come
            reply.settle(None, exc)
            return reply
        self._waiting.append(reply)
        return reply

    def _settle(self, reply: Reply) -> None:
        """Take answers in order until ``reply`` has its own; an earlier call's error that
        nobody read is raised here rather than lost."""
        while not reply.done:
            if not self._waiting:
                raise InterpreterError(f"worker {self.name!r} was closed before answering")
            head = self._waiting.popleft()
            head.settle(*self._receive(head.doing))
            if head is not reply and head.error is not None:
                raise head.error

    def _send(self, message: tuple[str, Any], doing: str) -> None:
        raise NotImplementedError

    def _receive(self, doing: str) -> tuple[Any, LiteparityError | None]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the worker; the running job is dropped."""

    def __enter__(self: _W) -> _W:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InProcessWorker(BaseWorker):
    """A worker that runs its jobs in the calling process: for fast tests on small models and
    for debugging (a job's own exception stays as the ``__cause__`` of the error raised).
    Messages and replies go through pickle as between processes, so a job that runs here runs
    in a process worker too; calls run when their reply (or a later one) is read."""

    def __init__(self, name: str = "in-process") -> None:
        super().__init__(name)
        self._host = JobHost()
        self._inbox: deque[tuple[str, Any]] = deque()

    def _send(self, message: tuple[str, Any], doing: str) -> None:
        self._inbox.append(_through_pickle(message))

    def _receive(self, doing: str) -> tuple[Any, LiteparityError | None]:
        value, error = self._host.handle(self._inbox.popleft())
        return _through_pickle(value), error

    def close(self) -> None:
        self._host, self._inbox = JobHost(), deque()
        self._waiting.clear()


def _through_pickle(value: Any) -> Any:
    return pickle.loads(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
