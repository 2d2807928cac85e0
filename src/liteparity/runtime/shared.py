"""Batches in shared memory: written once by the main process, read in place by workers."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SharedInputs:
    """A batch that lives in a memory-mapped file: workers read it in place instead of
    receiving a pickled copy each (the copies cost more than the inference on small models)."""

    path: str
    arrays: tuple[tuple[int, tuple[int, ...], str], ...]  # (offset, shape, dtype) per input

    @property
    def rows(self) -> int:
        """Samples in the batch."""
        return self.arrays[0][1][0]

    def select(self, order: Sequence[int]) -> SharedInputs:
        """The same batch with its inputs in another model's order."""
        return SharedInputs(self.path, tuple(self.arrays[i] for i in order))

    def head(self, rows: int) -> SharedInputs:
        """The batch's first ``rows`` rows (rows are contiguous: same offsets, shorter)."""
        return SharedInputs(
            self.path, tuple((at, (rows, *shape[1:]), dt) for at, shape, dt in self.arrays)
        )


#: Input batches in flight at once: the one workers read, and the next, being written.
SHARED_SLOTS = 2


class SharedSlots:
    """Memory-mapped files that take turns holding input batches: batch k+1 is written while
    workers may still read batch k (a caller keeps at most ``count`` batches in flight)."""

    def __init__(self, count: int = SHARED_SLOTS) -> None:
        base = "/dev/shm" if os.path.isdir("/dev/shm") else None
        self._files = [
            tempfile.NamedTemporaryFile(prefix="liteparity-", dir=base)  # noqa: SIM115
            for _ in range(count)
        ]  # closed (and so deleted) by close()
        self._maps: list[np.memmap | None] = [None] * count
        self._turn = 0

    def put(self, inputs: Sequence[np.ndarray], slot: int | None = None) -> SharedInputs:
        """Write ``inputs`` into ``slot`` (default: the next one in turn)."""
        if slot is None:
            slot, self._turn = self._turn, (self._turn + 1) % len(self._files)
        layout, size = [], 0
        for x in inputs:
            layout.append((size, tuple(x.shape), x.dtype.str))
            size += -(-x.nbytes // 64) * 64  # 64-byte aligned
        mm = self._maps[slot]
        if mm is None or mm.size < size:
            self._files[slot].truncate(max(size, 1))
            mm = self._maps[slot] = np.memmap(
                self._files[slot], np.uint8, "r+", shape=(max(size, 1),)
            )
        for (offset, _, _), x in zip(layout, inputs, strict=True):
            mm[offset : offset + x.nbytes] = np.ascontiguousarray(x).view(np.uint8).ravel()
        return SharedInputs(self._files[slot].name, tuple(layout))

    def put_rows(self, rows: np.ndarray) -> None:
        """Workers here read the batches the caller puts, never the files of the data."""
        return None

    def close(self) -> None:
        self._maps = [None] * len(self._files)
        for f in self._files:
            f.close()


class _SharedReader:
    """Worker side of ``SharedSlots``: maps each file once, remaps when it grows."""

    def __init__(self) -> None:
        self._maps: dict[str, np.memmap] = {}

    def arrays(self, shared: SharedInputs) -> list[np.ndarray]:
        need = max(
            off + int(np.prod(shape)) * np.dtype(dt).itemsize for off, shape, dt in shared.arrays
        )
        mm = self._maps.get(shared.path)
        if mm is None or mm.size < need:
            mm = self._maps[shared.path] = np.memmap(shared.path, np.uint8, "r")
        return [
            np.ndarray(shape, np.dtype(dt), buffer=mm, offset=off)
            for off, shape, dt in shared.arrays
        ]
