"""What a command said on stderr, without its progress: the lines a one-line error is judged on.

Without a terminal (CliRunner, CI logs) a run writes a progress line per stage
(``liteparity [   13s] converting int8 0/1``) to stderr; those are not the error."""

from __future__ import annotations

import re

_PROGRESS = re.compile(r"^liteparity \[\s*\d+s\] ")


def said(stderr: str) -> list[str]:
    """The lines of ``stderr`` that are not progress lines."""
    return [line for line in stderr.strip().splitlines() if not _PROGRESS.match(line)]


def one_line(result: object, message: str) -> None:
    """A refusal: exit 2, ``message`` in one line (the console wraps long ones), no traceback."""
    stderr: str = result.stderr  # type: ignore[attr-defined]
    output: str = result.output  # type: ignore[attr-defined]
    assert result.exit_code == 2, output  # type: ignore[attr-defined]
    assert message in " ".join(stderr.split()), stderr
    assert "Traceback" not in output
    assert len(said(stderr)) == 1, stderr
