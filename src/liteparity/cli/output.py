"""Where a command's output goes: the terminal view, ``--json PATH`` (``-``: standard output),
``--report PATH``, files the command writes, and the progress bar. Renderers load only when
there is something to render."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)

#: ``--json -``: the JSON goes to standard output.
STDOUT = "-"


@dataclass(frozen=True)
class Output:
    """A command's ``--json`` and ``--report`` paths. With ``--json -`` the JSON alone goes to
    standard output, so it stays parseable, and the tables go to standard error."""

    json: Path | None = None
    report: Path | None = None
    profile: bool = False  # ``--profile``: one line of where the time went

    @property
    def console(self) -> Console:
        """Where the human-readable view goes."""
        return err if self.json is not None and str(self.json) == STDOUT else console

    def show(self, result: Any) -> None:
        """Print a result's terminal view."""
        from liteparity.report.terminal import render

        self.console.print(render(result))

    def show_profile(self, timings: Mapping[str, float] | None) -> None:
        """With ``--profile``, the run's seconds per stage in one line on standard error."""
        if self.profile and timings:
            line = "time: " + " · ".join(f"{k} {v:.1f}s" for k, v in timings.items())
            err.print(line, soft_wrap=True, highlight=False)

    def save_json(self, text: Callable[[], str]) -> None:
        """Write ``text()`` where ``--json`` says, if it was given."""
        if self.json is not None and str(self.json) == STDOUT:
            typer.echo(text())
        else:
            save(self.json, text)

    def save_report(self, result: Any) -> None:
        """Write the HTML report, if ``--report`` was given."""
        if self.report is not None:
            from liteparity.report.html import write_report

            write_report(self.report, result, "liteparity " + " ".join(sys.argv[1:]))
            wrote(self.report)


def save(path: Path | None, text: Callable[[], str]) -> None:
    """Write ``text()`` to ``path`` when one was asked for (atomically), and say so."""
    if path is not None:
        from liteparity.files import write_atomic

        wrote(write_atomic(path, text().encode()))


def wrote(path: str | Path) -> None:
    err.print(f"wrote {path}")


#: Without a terminal, a progress line at least this often (seconds) while a stage runs.
LINE_EVERY_S = 60.0


class ProgressLines:
    """Progress for logs (CI): without a terminal a bar shows nothing, and a long run looked
    dead. One line per stage on standard error, and, while a stage runs, one at least every
    ``LINE_EVERY_S`` seconds (``tick``, called by a timer thread: a batch of a slow candidate
    can take minutes between two progress calls), each with the time since the start."""

    def __init__(self, write: Callable[[str], None], every_s: float = LINE_EVERY_S) -> None:
        self._write, self._every = write, every_s
        self._began = self._last = time.monotonic()
        self._state: tuple[str, int, int] | None = None
        self._lock = threading.Lock()

    def __call__(self, stage: str, done: int, total: int) -> None:
        with self._lock:
            same = self._state is not None and self._state[0] == stage
            self._state = (stage, done, total)
            if not same or time.monotonic() - self._last >= self._every:
                self._line()

    def tick(self) -> None:
        """A line for the current stage if none was written for ``LINE_EVERY_S``."""
        with self._lock:
            if self._state is not None and time.monotonic() - self._last >= self._every:
                self._line()

    def _line(self) -> None:
        assert self._state is not None
        stage, done, total = self._state
        self._last = now = time.monotonic()
        count = f" {done}/{total}" if total else ""
        self._write(f"liteparity [{now - self._began:6.0f}s] {stage}{count}")


@contextmanager
def progress_bar() -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress bar fed by the library's ``progress(stage, done, total)`` callback;
    ``ProgressLines`` when standard error is not a terminal."""
    if not err.is_terminal:
        lines = ProgressLines(lambda line: print(line, file=sys.stderr, flush=True))
        stop = threading.Event()

        def ticking() -> None:
            while not stop.wait(1.0):
                lines.tick()

        timer = threading.Thread(target=ticking, name="liteparity-progress", daemon=True)
        timer.start()
        try:
            yield lines
        finally:
            stop.set()
            timer.join()
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("{task.description:<24}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )
    task = bar.add_task("loading model", total=None)

    def update(stage: str, done: int, total: int) -> None:
        bar.update(task, description=stage, completed=done, total=total or None)

    with bar:
        yield update
