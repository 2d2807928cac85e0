"""Files written atomically: a unique temporary file beside the target, then a rename."""

from __future__ import annotations

from pathlib import Path


def write_atomic(path: Path, content: bytes) -> Path:
    """Write to a temporary file beside ``path`` and rename it: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(content)
    tmp.replace(path)
    return path
