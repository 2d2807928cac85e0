"""``fix``'s bench: the plain recipes measured together (a model per worker of the engine's
pool) give each model's numbers as an independent plain loop computes them, the same as one
model measured at a time, and every latency is timed alone, after every batch is done."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from liteparity.data.binding import IOSpec
from liteparity.data.prepare import BATCH_ROWS
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


class _LoggedEngine(LocalEngine):
    """The local engine, with a pool of two processes whose messages are logged."""

    def __init__(self) -> None:
        self.events: Events = []

    def worker(self, name: str) -> BaseWorker:
        return _Logged(name, self.events)

    def pool(self, name: str) -> list[BaseWorker]:
        return [_Logged(f"{name} {i}", self.events) for i in range(2)]


def _accuracy(outputs: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(outputs.argmax(1) == y))


def test_models_measured_together_get_the_plain_loops_numbers_and_are_timed_alone(
    check_all: Any, digits: Digits, models_dir: Path
) -> None:
    saved = models_dir / "recipes"
    names = ["int8", "float16", "dynamic"]  # on a pool of two: a wave of two, then one
    contents = [(saved / f"{n}.tflite").read_bytes() for n in names]
    x, y = digits.x_eval, digits.y_eval
    reference = oracle_outputs(saved / "float32.tflite", x)
    output = LiteModel(contents[0]).outputs[0].name
    cuts = range(0, len(x), BATCH_ROWS)
    io = IOSpec(("x",), ((-1, *x.shape[1:]),), ("float32",), (output,))
    engine = _LoggedEngine()
    bench = _Bench(
        engine,
        engine.worker("fix"),
        [[x[i : i + BATCH_ROWS]] for i in cuts],
        [{output: y[i : i + BATCH_ROWS]} for i in cuts],
        [[reference[i : i + BATCH_ROWS]] for i in cuts],
        io,
        [0],
        Budget(max_drop=1.0),
    )
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

    # the first wave: both models fed every batch before either is timed, then each timed
    # while the other waits (its result asked for only once the first one's is back)
    # (each worker: a start, a feed per batch and a result, each answered)
    first = events[: 2 * 2 * (2 + len(cuts))]
    verbs = [verb for _, verb in first]
    assert verbs.count("feed") == 2 * len(cuts) and {w for w, _ in first} == {"fix 0", "fix 1"}
    assert first[-4:] == [
        ("fix 0", "result"),
        ("fix 0", "answer"),
        ("fix 1", "result"),
        ("fix 1", "answer"),
    ]
