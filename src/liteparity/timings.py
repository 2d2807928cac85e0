"""Where a run's time goes: a recorder of named stages ("import", "convert", "calibrate",
"reference", "candidates", ...), so ``--json`` and ``--profile`` show it and benchmarks read it.

Any module adds a stage by wrapping its work in ``with stage("name"):``; outside a run that
records (``recording``), it costs nothing. Stages are exclusive: entering one inside another
pauses the outer one, so the stages' seconds add up to at most the run's wall time ("total")
and the TensorFlow import inside loading the model counts once, as "import".

Leaf module: it imports nothing from liteparity.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import ParamSpec, TypeVar

_P = ParamSpec("_P")
_R = TypeVar("_R")


class Timings:
    """Seconds per stage of one run, and the run's wall time once it ends."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._stack: list[tuple[str, float]] = []  # (stage, when its current slice began)
        self._began = time.perf_counter()
        self.total: float | None = None

    def _charge(self, now: float) -> None:
        """Add the time since the innermost stage's slice began to that stage."""
        if self._stack:
            name, since = self._stack[-1]
            self.seconds[name] = self.seconds.get(name, 0.0) + now - since

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        now = time.perf_counter()
        self._charge(now)
        self._stack.append((name, now))
        try:
            yield
        finally:
            now = time.perf_counter()
            self._charge(now)
            self._stack.pop()
            if self._stack:  # the outer stage resumes now
                self._stack[-1] = (self._stack[-1][0], now)

    def to_dict(self) -> dict[str, float]:
        """Seconds per stage in the order they first ran, then ``total`` (the wall time)."""
        total = self.total if self.total is not None else time.perf_counter() - self._began
        return {**{k: round(v, 3) for k, v in self.seconds.items()}, "total": round(total, 3)}


_current: ContextVar[Timings | None] = ContextVar("liteparity_timings", default=None)


@contextmanager
def recording() -> Iterator[Timings]:
    """Record the stages run inside this block. Inside another recording (a command that runs
    another's pipeline), it joins that one: one run, one breakdown."""
    outer = _current.get()
    if outer is not None:
        yield outer
        return
    timings = Timings()
    token = _current.set(timings)
    try:
        yield timings
    finally:
        timings.total = time.perf_counter() - timings._began
        _current.reset(token)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Count the block's time as ``name`` in the current recording (if any)."""
    timings = _current.get()
    if timings is None:
        yield
        return
    with timings.stage(name):
        yield


def staged(name: str) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """A function whose every call counts as stage ``name``, whoever calls it (the sensitivity
    experiment serves explain, locate and fix alike)."""

    def wrap(fn: Callable[_P, _R]) -> Callable[_P, _R]:
        @functools.wraps(fn)
        def timed(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            with stage(name):
                return fn(*args, **kwargs)

        return timed

    return wrap
