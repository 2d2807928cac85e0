"""Files written atomically: a unique temporary file beside the target, then a rename.

The temporary name is unique (two processes writing one cache key never share it), it lives
in the target's directory (the rename stays on one file system), and it is removed on every
failure path, including a full disk and Ctrl-C or SIGTERM during the write. A failed write is
an ``OutputError`` naming the file and the reason.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from liteparity.errors import OutputError


def write_atomic(path: Path, content: bytes) -> Path:
    """Write to a temporary file beside ``path`` and rename it: never a half-written file."""
    path = Path(path)
    tmp = None
    try:
        if path.is_dir():
            raise IsADirectoryError(21, "is a directory")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return path
