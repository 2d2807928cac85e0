"""Where a command's output goes: the terminal view, ``--json PATH`` (``-``: standard output),
``--report PATH``, files the command writes, and the progress bar. Renderers load only when
there is something to render."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
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

    @property
    def console(self) -> Console:
        """Where the human-readable view goes."""
        return err if self.json is not None and str(self.json) == STDOUT else console

    def show(self, result: Any) -> None:
        """Print a result's terminal view."""
        from liteparity.report.terminal import render

        self.console.print(render(result))

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


@contextmanager
def progress_bar() -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress bar fed by the library's ``progress(stage, done, total)`` callback."""
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
