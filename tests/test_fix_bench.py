"""``fix``'s bench: the plain recipes measured together (each on the next free worker of the
engine's pool) give each model's numbers as an independent plain loop computes them, the same
as one model measured at a time, and every latency is timed alone, after every model's
batches are done."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from liteparity.data.binding import IOSpec
from liteparity.data.prepare import BATCH_ROWS
from liteparity.errors import InterpreterError
from liteparity.repair.fix import _Bench
from liteparity.results.fix import Budget
from liteparity.runtime.engine import LocalEngine
from liteparity.runtime.jobs import BaseWorker
from liteparity.runtime.litemodel import LiteModel
from liteparity.runtime.worker import Worker
from tests.conftest import Digits, oracle_outputs

#: Every message sent to a worker and every answer read, in order: (worker, verb).
Events = list[tuple[str, str]]


class _Logged(Worker):
    def __init__(self, name: str, events: Events) -> None:
        super().__init__(name)
        self._events = events

    def _send(self, message: tuple[str, Any], doing: str) -> None:
        self._events.append((self.name, message[0]))
        super()._send(message, doing)

    def _receive(self, doing: str) -> tuple[Any, Any]:
        answer = super()._receive(doing)
        self._events.append((self.name, "answer"))
        return answer

    def renewed(self) -> BaseWorker:
        self.close()
        return _Logged(self.name, self._events)


class _LoggedEngine(LocalEngine):
    """The local engine, with a pool of two processes whose messages are logged."""

    def __init__(self) -> None:
        self.events: Events = []

    def worker(self, name: str) -> BaseWorker:
        return _Logged(name, self.events)

    def pool(self, name: str, jobs: int | None = None) -> list[BaseWorker]:
        return [_Logged(f"{name} {i}", self.events) for i in range(2)]


def _accuracy(outputs: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(outputs.argmax(1) == y))


NAMES = ["int8", "float16", "dynamic"]  # more models than the pool has workers


def _bench(engine: LocalEngine, saved: Path, digits: Digits) -> _Bench:
    """A bench over the digits' evaluation rows against the float32 model's outputs (a plain
    loop's), on ``engine``."""
    x, y = digits.x_eval, digits.y_eval
    reference = oracle_outputs(saved / "float32.tflite", x)
    output = LiteModel((saved / "int8.tflite").read_bytes()).outputs[0].name
    cuts = range(0, len(x), BATCH_ROWS)
    return _Bench(
        engine,
        engine.worker("fix"),
        [[x[i : i + BATCH_ROWS]] for i in cuts],
        [{output: y[i : i + BATCH_ROWS]} for i in cuts],
        [[reference[i : i + BATCH_ROWS]] for i in cuts],
        IOSpec(("x",), ((-1, *x.shape[1:]),), ("float32",), (output,)),
        [0],
        Budget(max_drop=1.0),
    )


def test_models_measured_together_get_the_plain_loops_numbers_and_are_timed_alone(
    check_all: Any, digits: Digits, models_dir: Path
) -> None:
    saved = models_dir / "recipes"
    names = NAMES
    contents = [(saved / f"{n}.tflite").read_bytes() for n in names]
    x, y = digits.x_eval, digits.y_eval
    reference = oracle_outputs(saved / "float32.tflite", x)
    cuts = range(0, len(x), BATCH_ROWS)
    engine = _LoggedEngine()
    bench = _bench(engine, saved, digits)
    try:
        together = bench.measure_all(contents)
        events = list(engine.events)
        alone = [bench.measure(c) for c in contents]
    finally:
        bench.worker.close()

    for name, content, m in zip(names, contents, together, strict=True):
        assert isinstance(m, dict), m
        outputs = oracle_outputs(saved / f"{name}.tflite", x)
        assert m["metric"] == pytest.approx(_accuracy(outputs, y))
        drop = 100 * (_accuracy(reference, y) - _accuracy(outputs, y))  # in points
        assert m["drop"] == pytest.approx(drop)
        assert m["agreement"] == pytest.approx(np.mean(outputs.argmax(1) == reference.argmax(1)))
        assert m["size_bytes"] == len(content) and m["latency_ms"] > 0
    unlatched = [{**m, "latency_ms": None} for m in together if isinstance(m, dict)]
    assert unlatched == [{**m, "latency_ms": None} for m in alone]

    # every model run by the pool first, then each timed on the bench's worker, one after
    # another, nothing else in flight: start and feed (its first sample), answered, result
    pool = [i for i, (w, _) in enumerate(events) if w != "fix"]
    timing = [e for e in events if e[0] == "fix"]
    assert {w for w, _ in events} == {"fix 0", "fix 1", "fix"}
    assert pool[-1] < events.index(timing[0])
    one = ["start", "feed", "answer", "answer", "result", "answer"]
    assert timing == [("fix", verb) for _ in names for verb in one]
    fed = [w for w, verb in events if verb == "feed" and w != "fix"]
    assert len(fed) == len(names) * len(cuts)


class _Doomed(_Logged):
    """A worker whose process is killed on its first feed (a model that crashes LiteRT)."""

    def feed(self, batch: Any) -> Any:
        os.kill(self.pid, signal.SIGKILL)
        return super().feed(batch)


def test_a_model_that_crashes_its_worker_costs_that_model_alone(
    check_all: Any, digits: Digits, models_dir: Path
) -> None:
    """The first model's worker dies: that model is its one crash line, the worker is
    replaced (and its replacement measures a model), and the other models get the numbers
    they get measured one at a time."""

    class Engine(_LoggedEngine):
        def pool(self, name: str, jobs: int | None = None) -> list[BaseWorker]:
            return [_Doomed(f"{name} 0", self.events), _Logged(f"{name} 1", self.events)]

    saved = models_dir / "recipes"
    contents = [(saved / f"{n}.tflite").read_bytes() for n in NAMES]
    engine = Engine()
    bench = _bench(engine, saved, digits)
    try:
        crashed, *rest = bench.measure_all(contents)
        alone = [bench.measure(c) for c in contents[1:]]
    finally:
        bench.worker.close()
    assert isinstance(crashed, InterpreterError)
    assert ("fix 0", "start") in engine.events[engine.events.index(("fix 0", "feed")) + 1 :]
    assert str(crashed).startswith("interpreter crashed (signal 9, SIGKILL)")
    assert [{**m, "latency_ms": None} for m in rest if isinstance(m, dict)] == [
        {**m, "latency_ms": None} for m in alone
    ]


def test_a_free_worker_shares_the_model_still_running_with_the_same_numbers(
    check_all: Any, digits: Digits, models_dir: Path
) -> None:
    """One model, two workers: the second joins the first (no model waits), the batches are
    dealt to both and folded in batch order, giving the numbers of one worker alone."""
    saved = models_dir / "recipes"
    content = (saved / "int8.tflite").read_bytes()
    engine = _LoggedEngine()
    bench = _bench(engine, saved, digits)
    workers = engine.pool("fix")
    try:
        [shared] = bench._run([content], workers, timed=False)
        alone = bench.measure(content)
    finally:
        for worker in [*workers, bench.worker]:
            worker.close()
    fed = {w for w, verb in engine.events if verb == "feed" and w != "fix"}
    assert fed == {"fix 0", "fix 1"}
    assert isinstance(shared, dict)
    assert {**shared, "latency_ms": None} == {**alone, "latency_ms": None}
