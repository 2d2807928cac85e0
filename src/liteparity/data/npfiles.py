"""``.npy`` files and ``.npz`` members read by row, with their headers checked first.

A header is a claim, not a fact: before a single row is read, the size it declares
(rows × row bytes) must match what the file (or the zip member) really holds, and a zip
member may not claim to inflate beyond what DEFLATE can produce (about 1032:1), so a
header claiming 1e11 rows or a 4 GB member in a 4 MB archive is one ``DataError``, never a
``MemoryError``. Rows are read on demand: ``.npy`` with ``pread`` and ``.npz`` members as
a stream (stored members seek directly, compressed ones are inflated up to the rows asked
for), so memory follows the batch, not the file. Nothing is ever unpickled.
"""

from __future__ import annotations

import copy
import itertools
import os
import tokenize
import zipfile
import zlib
from pathlib import Path
from typing import IO, Any

import numpy as np

from liteparity.errors import DataError

#: DEFLATE cannot inflate by more than ~1032:1; a member claiming more lies about its size.
MAX_INFLATE_RATIO = 1100

#: Bytes inflated at a time while skipping rows of a compressed member.
SKIP_BYTES = 1 << 20

#: Labels are read whole (they are one value per sample): refuse more than this many bytes.
MAX_LABEL_BYTES = 1 << 28

#: What reading a damaged zip member raises (a bad CRC, a truncated or invalid stream).
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    OSError,
    EOFError,
    ValueError,
    NotImplementedError,  # a compression method zipfile does not know
)


def read_header(fh: IO[bytes], where: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """``(shape, dtype, header bytes)`` of the ``.npy`` stream at ``fh``, refusing what needs
    pickle, Fortran order or a shape that is not a list of non-negative sizes."""
    try:
        version = np.lib.format.read_magic(fh)
        reader = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, fortran, dtype = reader(fh)
        offset = fh.tell()
    except (SyntaxError, tokenize.TokenError, *_ZIP_ERRORS) as exc:  # numpy parses the dict
        raise DataError(f"{where}: not a numpy .npy array ({_short(exc)})") from exc
    if dtype.hasobject:
        raise DataError(f"{where}: holds Python objects, which need pickle: refused")
    if not shape or any(not isinstance(d, int) or d < 0 for d in shape):
        raise DataError(f"{where}: an array of shape {shape} is not a list of samples")
    if fortran and len(shape) > 1:
        raise DataError(
            f"{where}: Fortran-ordered arrays are not supported: save with "
            "np.save(path, np.ascontiguousarray(x))"
        )
    return tuple(shape), dtype, offset


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


def _check_size(where: str, shape: tuple[int, ...], dtype: np.dtype, holds: int) -> int:
    """Row bytes, once the declared size is checked against the ``holds`` bytes present."""
    row = int(np.prod(shape[1:], dtype=object)) * dtype.itemsize
    declared = shape[0] * row
    if declared > holds:
        raise DataError(
            f"{where}: the file is shorter than its header says ({shape[0]} samples of "
            f"{row} bytes declared, {holds} bytes present)"
        )
    return row


class NpyColumn:
    """A ``.npy`` file read row by row with ``pread``: unlike a memory map, the rows read do
    not stay in this process's resident memory, so memory does not grow with the file."""

    def __init__(self, path: Path) -> None:
        with open(path, "rb") as fh:
            shape, dtype, self._offset = read_header(fh, str(path))
        self.path, self.shape, self.dtype = path, shape, dtype
        self._row = _check_size(str(path), shape, dtype, path.stat().st_size - self._offset)

    def __len__(self) -> int:
        return self.shape[0]

    def anywhere(self) -> NpyColumn:
        """This column by its absolute path: the same rows from any working directory."""
        out = copy.copy(self)
        out.path = self.path.absolute()
        return out

    def __getitem__(self, rows: Any) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        out = np.empty((len(rows), *self.shape[1:]), dtype=self.dtype)
        if out.size == 0:
            return out
        flat = out.reshape(len(rows), -1).view(np.uint8)
        with open(self.path, "rb", buffering=0) as fh:
            for start, end in _runs(rows):  # one read per run of consecutive rows
                got = os.preadv(
                    fh.fileno(),
                    [memoryview(flat[start:end]).cast("B")],  # type: ignore[arg-type]
                    self._offset + int(rows[start]) * self._row,
                )
                if got != (end - start) * self._row:
                    raise DataError(f"{self.path}: the file is shorter than its header says")
        return out


class NpzColumn:
    """One array of an ``.npz`` archive, streamed from its zip member by row: ``np.load``
    would inflate the whole member to take a few rows."""

    def __init__(self, path: Path, member: str) -> None:
        self.path, self._member = path, member
        where = f"{path}[{member.removesuffix('.npy')}]"
        try:
            with zipfile.ZipFile(path) as archive:
                info = archive.getinfo(member)
                if info.file_size > max(info.compress_size, 1) * MAX_INFLATE_RATIO:
                    raise DataError(
                        f"{where}: claims to inflate {info.compress_size} bytes to "
                        f"{info.file_size}, more than compression can: a damaged or hostile "
                        "archive"
                    )
                with archive.open(info) as fh:
                    self.shape, self.dtype, self._offset = read_header(fh, where)
        except _ZIP_ERRORS as exc:
            raise DataError(f"{where}: damaged archive ({_short(exc)})") from exc
        self._where, self._stored = where, info.compress_type == zipfile.ZIP_STORED
        self._row = _check_size(where, self.shape, self.dtype, info.file_size - self._offset)
        self._fh: tuple[zipfile.ZipFile, IO[bytes]] | None = None

    def __len__(self) -> int:
        return self.shape[0]

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fh": None}  # an open member does not cross processes

    def anywhere(self) -> NpzColumn:
        """This column by its archive's absolute path, not yet opened: the same rows from any
        working directory (its messages still name the path as given)."""
        out = copy.copy(self)  # through __getstate__: no open member
        out.path = self.path.absolute()
        return out

    def _stream(self) -> IO[bytes]:
        if self._fh is None:
            archive = zipfile.ZipFile(self.path)
            self._fh = (archive, archive.open(self._member))
        return self._fh[1]

    def __getitem__(self, rows: Any) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        order = np.argsort(rows, kind="stable")  # one forward pass through the stream
        ordered = rows[order]
        out = np.empty((len(rows), *self.shape[1:]), dtype=self.dtype)
        if out.size == 0:
            return out
        flat = out.reshape(len(rows), -1).view(np.uint8)
        fh = self._stream()
        try:
            for start, end in _runs(ordered):
                self._seek(fh, self._offset + int(ordered[start]) * self._row)
                want = (end - start) * self._row
                data = fh.read(want)
                if len(data) != want:
                    raise DataError(f"{self._where}: the member is shorter than its header says")
                flat[order[start:end]] = np.frombuffer(data, np.uint8).reshape(end - start, -1)
        except _ZIP_ERRORS as exc:
            self.close()
            raise DataError(f"{self._where}: damaged archive ({_short(exc)})") from exc
        return out

    def _seek(self, fh: IO[bytes], position: int) -> None:
        """Move to ``position``: stored members and rewinds seek; a compressed member is
        inflated forward a block at a time (``seek`` would inflate up to 16 MB at once)."""
        ahead = position - fh.tell()
        if self._stored or ahead < 0:
            fh.seek(position)
            return
        while ahead > 0:
            skipped = len(fh.read(min(ahead, SKIP_BYTES)))
            if not skipped:
                raise DataError(f"{self._where}: the member is shorter than its header says")
            ahead -= skipped

    def read_all(self, limit: int) -> np.ndarray:
        """The whole array (labels), refused above ``limit`` bytes."""
        if len(self) * self._row > limit:
            raise DataError(f"{self._where}: {len(self) * self._row} bytes of labels: too many")
        values = self[np.arange(len(self))]
        self.close()
        return values

    def close(self) -> None:
        if self._fh is not None:
            for part in reversed(self._fh):
                part.close()
            self._fh = None


def _runs(rows: np.ndarray) -> list[tuple[int, int]]:
    """``(start, end)`` of each run of consecutive row numbers in ``rows``."""
    if len(rows) == 0:
        return []
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    edges = [0, *breaks.tolist(), len(rows)]
    return list(itertools.pairwise(edges))


def npz_columns(path: Path) -> dict[str, NpzColumn]:
    """Every array of an ``.npz``, by name, headers checked and nothing read yet."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = [n for n in archive.namelist() if n.endswith(".npy")]
    except _ZIP_ERRORS as exc:
        raise DataError(f"{path}: not a numpy .npz archive ({_short(exc)})") from exc
    return {m.removesuffix(".npy"): NpzColumn(path, m) for m in members}
