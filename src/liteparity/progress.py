"""How library code reports progress: a callback the CLI turns into a bar (library code never
prints)."""

from __future__ import annotations

from collections.abc import Callable

#: ``progress(stage, done, total)``: the CLI turns it into a progress bar.
Progress = Callable[[str, int, int], None]


def no_progress(stage: str, done: int, total: int) -> None:
    return None
