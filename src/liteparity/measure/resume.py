"""``--resume``: converted models and finished results, kept under the key of what produced
them (model bytes, recipe, calibration data, evaluation data, versions), so an interrupted or
repeated run redoes only what is missing. Beside a result, a hook keeps its own measurements
(``explain``'s evidence), so its findings too come back without running anything. Entries are
written atomically."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from liteparity import __version__
from liteparity.convert.candidates import Candidate
from liteparity.data.prepare import PreparedData
from liteparity.files import write_atomic
from liteparity.measure.outputs import Measures
from liteparity.reference.base import Source
from liteparity.results.check import CandidateResult, Metric, ReferenceResult
from liteparity.specs import ModelSpec

if TYPE_CHECKING:
    from liteparity.convert.process import Converter
    from liteparity.measure.evaluate import Hook


def versions() -> tuple[str, ...]:
    """The converter's and the interpreter's versions: an upgrade must not reuse results."""
    from importlib import metadata

    out = []
    for name in ("tensorflow", "ai-edge-litert"):
        try:
            out.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            out.append(f"{name}=?")
    return tuple(out)


def fingerprint(*parts: Any) -> str:
    """A sha256 over strings, bytes and arrays (arrays by dtype, shape and content)."""
    digest = hashlib.sha256()
    for part in parts:
        _update(digest, part)
    return digest.hexdigest()


def _update(digest: Any, part: Any) -> None:
    if isinstance(part, np.ndarray):
        digest.update(f"{part.dtype}{part.shape}".encode())
        digest.update(np.ascontiguousarray(part).data)
    elif isinstance(part, bytes):
        digest.update(part)
    else:
        digest.update(repr(part).encode())
    digest.update(b"\0")


#: Bytes of data hashed at a time: the key of a large evaluation set is built as it streams.
HASH_BLOCK_BYTES = 16 << 20


def rows_fingerprint(columns: Iterable[Any], rows: np.ndarray, labels: Any) -> str:
    """A sha256 over ``rows`` of each column (dtype, sample shape, bytes) and of the labels,
    read a block of rows at a time: memory does not grow with the data, and the digest does
    not depend on the block size."""
    digest = hashlib.sha256()
    for col in columns:
        row_bytes = max(1, int(np.prod(col.shape[1:])) * 8)
        block = max(1, HASH_BLOCK_BYTES // row_bytes)
        for start in range(0, len(rows), block):
            part = np.ascontiguousarray(col[rows[start : start + block]])
            if start == 0:
                digest.update(f"{part.dtype}{part.shape[1:]}{len(rows)}".encode())
            digest.update(part.data)
        digest.update(b"\0")
    _update(digest, labels[rows] if labels is not None else None)
    return digest.hexdigest()


def file_fingerprint(path: str | Path) -> str:
    """A file's (or a directory's files') bytes."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for f in files:
        digest.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def batches_fingerprint(batches: Iterable[list[np.ndarray]]) -> str:
    """A sha256 over every array of every batch, updated batch by batch."""
    digest = hashlib.sha256()
    for batch in batches:
        for x in batch:
            _update(digest, x)
    return digest.hexdigest()


class Cache:
    """A directory of ``<key>.tflite`` and ``<key>.json`` entries."""

    def __init__(self, root: Path) -> None:
        self.root = root / f"v{__version__}"
        self.root.mkdir(parents=True, exist_ok=True)

    def _write(self, path: Path, content: bytes) -> None:
        write_atomic(path, content)

    def model(self, key: str) -> bytes | None:
        path = self.root / f"{key}.tflite"
        return path.read_bytes() if path.exists() else None

    def put_model(self, key: str, content: bytes) -> None:
        self._write(self.root / f"{key}.tflite", content)

    def result(self, key: str) -> dict[str, Any] | None:
        path = self.root / f"{key}.json"
        try:
            return json.loads(path.read_text()) if path.exists() else None
        except json.JSONDecodeError:  # a damaged entry is recomputed
            return None

    def put_result(self, key: str, value: dict[str, Any]) -> None:
        self._write(self.root / f"{key}.json", json.dumps(value).encode())


@dataclass
class _Resume:
    """The cache of one run: keys for conversions and for finished results."""

    cache: Any
    conversion_key: str
    data_key: str
    #: whether finished results may be served (not with a user's metric function: its code
    #: is not part of any key, and a changed function must not get stale numbers)
    reuse_results: bool = True

    @classmethod
    def open(
        cls,
        source: Source,
        prepared: PreparedData,
        spec: ModelSpec,
        legacy: Any,
        measures: Measures,
    ) -> _Resume | None:
        """The cache for ``source`` (as ``spec`` loads it) and ``prepared``; ``legacy`` is
        the TF1 converter's settings; ``measures`` (the ``--metric`` kinds chosen per output)
        is part of a result's key."""
        if not Path(source.path).exists():
            return None  # an in-memory model has nothing stable to key on
        model = file_fingerprint(source.path)
        dataset, rows = prepared.binding.dataset, prepared.eval_rows
        data = rows_fingerprint(prepared.binding.columns, rows, dataset.labels)
        per_output = sorted(dataset.output_labels.items())
        labels = fingerprint(*(part for name, y in per_output for part in (name, y[rows])))
        kinds = sorted((name, repr(kind)) for name, kind in measures.kinds.items())
        return cls(
            runs_cache(),
            conversion_key(model, prepared, spec, legacy),
            fingerprint(model, data, labels, kinds, versions()),
            reuse_results=measures.user is None,
        )

    def model_key(self, recipe: str) -> str:
        return fingerprint(self.conversion_key, recipe)

    def _result_key(self, candidate: Candidate | None) -> str:
        content = b"reference" if candidate is None else candidate.content or b""
        return fingerprint(self.data_key, content, candidate.name if candidate else "")

    def _evidence_key(self, candidate: Candidate) -> str:
        """Beside the result's key, what else a hook's measurements depend on (the calibration
        data and the conversion settings: the calibrated model and the float twin)."""
        return fingerprint(self._result_key(candidate), self.conversion_key, "evidence")

    def results(
        self, candidates: list[Candidate], reference: Any, hook: Hook | None = None
    ) -> dict[str, Any]:
        """The results kept for ``candidates`` (and the reference's, under ""). With a hook, a
        candidate counts as finished only when the hook takes back what it kept."""
        out: dict[str, Any] = {}
        if not self.reuse_results:
            return out
        for c in candidates:
            if c.content is None or not (stored := self.cache.result(self._result_key(c))):
                continue
            if hook is not None:
                kept = self.cache.result(self._evidence_key(c))
                if kept is None or not hook.restore(c.name, kept):
                    continue
            now = {"path": c.path, "not_saved": c.not_saved}  # where this run saved it
            out[c.name] = CandidateResult.from_dict({**stored, **now})
        stored = self.cache.result(self._result_key(None))
        if stored is not None and reference is not None:
            out[""] = ReferenceResult(**{**stored, "metric": Metric.from_dict(stored["metric"])})
        return out

    def keep(
        self,
        candidates: list[Candidate],
        results: tuple[CandidateResult, ...],
        reference: ReferenceResult | None,
        hook: Hook | None = None,
    ) -> None:
        if not self.reuse_results:
            return
        for c, r in zip(candidates, results, strict=True):
            if c.content is None or r.error is not None or r.samples is not None:
                continue  # a capped result is not every row's: the next run measures it
            self.cache.put_result(self._result_key(c), r.to_dict())
            kept = hook.kept(r) if hook is not None else None
            if kept is not None:
                self.cache.put_result(self._evidence_key(c), kept)
        if reference is not None:
            self.cache.put_result(self._result_key(None), reference.to_dict())


def conversion_key(model: str, prepared: PreparedData, spec: ModelSpec, legacy: Any = None) -> str:
    """What a conversion depends on: the model file's fingerprint (``file_fingerprint``), how
    ``spec`` loads it (graph inputs, outputs and shapes), the calibration samples, the TF1
    converter's ``legacy`` settings and the versions. Every command keys its conversions so
    (``Converter.keep``): each reuses what another made."""
    calibration = batches_fingerprint(prepared.calibration()) if prepared.calibration else None
    settings = (legacy, spec.inputs, spec.outputs, spec.input_shapes)
    return fingerprint(model, calibration, settings, versions())


def keep_conversions(
    converter: Converter, spec: ModelSpec, prepared: PreparedData, file_key: str | None = None
) -> None:
    """Have ``converter`` keep its models in the cache (``--resume``) for the model file
    ``spec`` names (fingerprinted here unless ``file_key`` is given); nothing for a model
    with nothing stable to key on (an in-memory ``Source``)."""
    path = model_file(spec)
    if path is None:
        return
    key = conversion_key(file_key or file_fingerprint(path), prepared, spec)
    converter.keep(runs_cache(), key)


def model_file(spec: ModelSpec) -> Path | None:
    """The model file (or SavedModel directory) ``spec`` names; None for what has nothing
    stable to key a cache entry on (an in-memory ``Source``, a path that does not exist)."""
    path = spec.model
    if not isinstance(path, str | os.PathLike) or not Path(path).exists():
        return None
    return Path(path)


def runs_cache() -> Cache:
    """The cache every command's ``--resume`` reads and writes."""
    return Cache(cache_dir() / "runs")


def cache_dir() -> Path:
    """``$LITEPARITY_CACHE``, else ``$XDG_CACHE_HOME/liteparity``, else ``~/.cache/liteparity``."""
    if os.environ.get("LITEPARITY_CACHE"):
        return Path(os.environ["LITEPARITY_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "liteparity"
