"""Progress without a terminal (CI logs): a line per stage, and one at least every minute."""

from __future__ import annotations

import pytest

from liteparity.cli import output


def test_a_line_per_stage_and_one_a_minute_within_a_stage(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    monkeypatch.setattr(output.time, "monotonic", lambda: now[0])
    lines: list[str] = []
    progress = output.ProgressLines(lines.append)
    progress("converting int8", 3, 7)
    now[0] = 1.0
    progress("converted", 7, 7)
    for done in range(0, 1000, 100):  # 20 s apart: a line when a minute has passed
        now[0] += 20.0
        progress("evaluating (~3m20s)", done, 1000)
    assert lines == [
        "liteparity [     0s] converting int8 3/7",
        "liteparity [     1s] converted 7/7",
        "liteparity [    21s] evaluating (~3m20s) 0/1000",
        "liteparity [    81s] evaluating (~3m20s) 300/1000",
        "liteparity [   141s] evaluating (~3m20s) 600/1000",
        "liteparity [   201s] evaluating (~3m20s) 900/1000",
    ]
    del lines[:]
    now[0] += 59.0  # a slow batch: no progress call for minutes, the timer's ticks write
    progress.tick()
    now[0] += 1.0
    progress.tick()
    progress.tick()
    now[0] += 60.0
    progress.tick()
    assert lines == [
        "liteparity [   261s] evaluating (~3m20s) 900/1000",
        "liteparity [   321s] evaluating (~3m20s) 900/1000",
    ]
