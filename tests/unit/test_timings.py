"""The timings recorder: exclusive stages (an inner stage pauses the outer one), a recording
inside a recording joins it, and no recording costs nothing."""

from __future__ import annotations

import pytest

from liteparity import timings


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(timings.time, "perf_counter", fake)
    return fake


def test_nested_stages_count_once_and_add_up_to_the_wall_time(clock: Clock) -> None:
    with timings.recording() as run:
        clock.now += 1.0  # outside any stage: only in the total
        with timings.stage("load"):
            clock.now += 2.0
            with timings.stage("import"):  # inside load: counted as import, not load
                clock.now += 5.0
            clock.now += 0.5
        with timings.stage("convert"):
            clock.now += 3.0
        with timings.stage("load"):
            clock.now += 0.25
    assert run.to_dict() == {"load": 2.75, "import": 5.0, "convert": 3.0, "total": 11.75}


def test_a_recording_inside_a_recording_joins_it(clock: Clock) -> None:
    with timings.recording() as outer:
        with timings.stage("convert"):
            clock.now += 1.0
        with timings.recording() as inner, timings.stage("reference"):
            clock.now += 2.0
        assert inner is outer
    assert outer.to_dict() == {"convert": 1.0, "reference": 2.0, "total": 3.0}


def test_a_stage_outside_a_recording_records_nothing(clock: Clock) -> None:
    with timings.stage("convert"):
        clock.now += 1.0
    with timings.recording() as run:
        pass
    assert run.to_dict() == {"total": 0.0}


def test_a_staged_function_is_its_stage_inside_any_other(clock: Clock) -> None:
    @timings.staged("sensitivity")
    def experiment(seconds: float) -> str:
        clock.now += seconds
        return "ranked"

    with timings.recording() as run, timings.stage("diagnose"):
        clock.now += 1.0
        assert experiment(4.0) == "ranked"
        clock.now += 0.5
    assert run.to_dict() == {"diagnose": 1.5, "sensitivity": 4.0, "total": 5.5}
