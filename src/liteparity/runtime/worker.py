"""Run each ``.tflite`` in its own child process.

A LiteRT interpreter can abort or segfault on a bad model; in a worker that becomes a clear
``InterpreterError`` for that one model ("interpreter crashed (signal 11, SIGSEGV) ...") while
the others go on. Workers import numpy, ``ai_edge_litert`` and ``liteparity.runtime``
only: they start fast and never load TensorFlow. Several workers run at once, one core each.

Children are started as ``python -m liteparity.runtime.worker FD`` (not with multiprocessing's
spawn, which re-imports the user's ``__main__`` script) and talk over a socket pair.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from liteparity import errors
from liteparity.layerwise.probe import LayerProbe, LayerStats
from liteparity.measure.stats import TensorStats
from liteparity.runtime.anatomy import Anatomy
from liteparity.runtime.litemodel import LiteModel, TensorInfo, first_line
from liteparity.runtime.shared import SharedInputs, _SharedReader

#: How long a worker may stay silent while alive; generous, LiteRT can be slow on big models.
_POLL_S = 0.05


@dataclass(frozen=True)
class ModelInfo:
    """What a worker reports after loading its model."""

    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    op_names: frozenset[str]
    resource_variables: bool


def _serve(conn: Any) -> None:
    """Worker loop: load one model, then answer ``run``/``tune``/``latency`` requests."""
    model: LiteModel | None = None
    inspector: LiteModel | None = None  # the same model, every tensor readable
    stats: dict[str, TensorStats] = {}
    probe: LayerProbe | None = None
    shared = _SharedReader()

    def inspector_of() -> LiteModel:
        """The loaded model again, with every tensor readable (built on first use)."""
        nonlocal inspector
        if inspector is None:
            inspector = LiteModel(content, num_threads=threads, inspect=True)
            wanted = model.batch_size  # type: ignore[union-attr]
            inspector.batch_size = inspector.inspect_batch(wanted)
        return inspector

    while True:
        try:
            request, payload = conn.recv()
        except (EOFError, KeyboardInterrupt):
            return
        try:
            if request == "load":
                content, threads = payload
                model = LiteModel(content, num_threads=threads)
                inspector, stats = None, {}
                reply: Any = ModelInfo(
                    tuple(model.inputs),
                    tuple(model.outputs),
                    model.op_names,
                    model.resource_variables,
                )
            elif request == "run":
                if isinstance(payload, SharedInputs):
                    payload = shared.arrays(payload)
                reply = model.run(payload)  # type: ignore[union-attr]
            elif request == "anatomy":
                reply = inspector_of().anatomy()
            elif request == "stats":
                batch, bounds = payload
                if isinstance(batch, SharedInputs):
                    batch = shared.arrays(batch)
                inspector_of().tensor_stats(batch, stats, bounds)
                reply = None
            elif request == "tensors":
                batch, indices = payload
                parts: dict[int, list[np.ndarray]] = {i: [] for i in indices}
                for interp in inspector_of().invocations(batch):
                    for i in indices:
                        parts[i].append(interp.get_tensor(i))
                reply = {i: np.concatenate(p) for i, p in parts.items() if p}
            elif request == "stats_result":
                reply, stats = stats, {}
            elif request == "probe_start":
                quant, twin, threads = payload
                probe = LayerProbe(quant, twin, threads)
                reply = probe.targets, probe.model.inputs
            elif request == "probe":
                probe.update(
                    shared.arrays(payload) if isinstance(payload, SharedInputs) else payload
                )
                reply = None
            elif request == "probe_result":
                reply = probe.stats
            elif request == "tune":
                reply = model.tune_batch_size(payload)  # type: ignore[union-attr]
            elif request == "latency":
                reply = model.latency_ms(payload)  # type: ignore[union-attr]
            else:
                return
            conn.send(("ok", reply))
        except errors.LiteparityError as exc:
            conn.send(("error", type(exc).__name__, str(exc)))
        except errors.InternalError:  # a bug: its traceback travels with it
            conn.send(("error", "InternalError", traceback.format_exc()))
        except Exception as exc:  # a LiteRT failure that is not ours: still one clear line
            conn.send(("error", "InterpreterError", f"{type(exc).__name__}: {first_line(exc)}"))


class Worker:
    """One model in one child process; requests go one at a time, in order."""

    def __init__(self, name: str, content: bytes | None = None, threads: int = 1) -> None:
        """Start the process and load ``content`` without waiting (``info`` waits); with no
        content the process boots in the background until ``load``."""
        self.name = name
        parent, child = socket.socketpair()
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        self._process = subprocess.Popen(
            [sys.executable, "-m", "liteparity.runtime.worker", str(child.fileno())],
            pass_fds=(child.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        )
        child.close()
        self._conn = Connection(parent.detach())
        self._threads = threads
        self._info: ModelInfo | None = None
        self._loading = False
        if content is not None:
            self._start_load(content)

    def _start_load(self, content: bytes) -> None:
        # Not waiting for the answer lets several workers start at once; ``info`` collects it.
        self._doing = "loading the model"
        self._send("load", (content, self._threads))
        self._loading = True

    @property
    def info(self) -> ModelInfo:
        """The loaded model's inputs and outputs (waits for the load to finish)."""
        if self._loading:
            self._loading = False
            self._doing = "loading the model"
            self._info = self.receive()
        if self._info is None:
            raise errors.InternalError(f"worker {self.name!r} has no model loaded")
        return self._info

    def load(self, content: bytes) -> ModelInfo:
        """Load a(nother) model into this worker's process."""
        if self._loading:
            self.info  # noqa: B018 - collect the answer to the previous load first
        self._start_load(content)
        return self.info

    def _send(self, request: str, payload: Any) -> None:
        if self._loading and request != "load":
            self.info  # noqa: B018 - answers arrive in order: collect the load's first
        try:
            self._conn.send((request, payload))
        except (BrokenPipeError, OSError):
            raise self._crash() from None

    def submit(self, inputs: Sequence[np.ndarray] | SharedInputs) -> None:
        """Start running a batch; collect the outputs with ``receive``."""
        self._doing = "running a batch"
        self._send("run", inputs if isinstance(inputs, SharedInputs) else list(inputs))

    def receive(self) -> Any:
        """The answer to the last request, or the error it raised, or the crash."""
        while not self._conn.poll(_POLL_S):
            if self._process.poll() is not None:
                raise self._crash()
        try:
            message = self._conn.recv()
        except (EOFError, OSError):
            raise self._crash() from None
        if message[0] == "ok":
            return message[1]
        _, kind, text = message
        cls = getattr(errors, kind, errors.InterpreterError)
        raise cls(text)

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        self.submit(inputs)
        return self.receive()

    def tune_batch_size(self, inputs: Sequence[np.ndarray]) -> int:
        self._doing = "measuring batch sizes"
        self._send("tune", list(inputs))
        return self.receive()

    def anatomy(self) -> Anatomy:
        self._doing = "reading the model's tensors"
        self._send("anatomy", None)
        return self.receive()

    def tensor_stats(
        self, batches: Any, bounds: dict[str, tuple[float, float]] | None = None
    ) -> dict[str, TensorStats]:
        """Statistics of every intermediate tensor over ``batches`` (lists of input arrays or
        ``SharedInputs``); ``bounds`` counts values outside a range per tensor name."""
        self._doing = "reading intermediate tensors"
        for batch in batches:
            self._send("stats", (batch, bounds or {}))
            self.receive()
        self._send("stats_result", None)
        return self.receive()

    def tensors(self, inputs: Sequence[np.ndarray], indices: list[int]) -> dict[int, Any]:
        """The values of the given tensors for ``inputs``, by tensor index."""
        self._doing = "reading tensors"
        self._send("tensors", (list(inputs), indices))
        return self.receive()

    def probe_start(self, quant: bytes, twin: bytes | None) -> None:
        """Load a quantized model and its float twin for ``LayerProbe``; ``receive``
        answers with its targets and its inputs (so several workers start at once)."""
        self._doing = "preparing the per-layer comparison"
        self._send("probe_start", (quant, twin, self._threads))

    def probe(self, inputs: Sequence[np.ndarray] | SharedInputs) -> None:
        """Fold one batch into the per-layer statistics (answer with ``receive``)."""
        self._doing = "comparing layers"
        self._send("probe", inputs if isinstance(inputs, SharedInputs) else list(inputs))

    def probe_result(self) -> dict[str, LayerStats]:
        self._send("probe_result", None)
        return self.receive()

    def latency_ms(self, inputs: Sequence[np.ndarray]) -> float:
        self._doing = "measuring latency"
        self._send("latency", [x[:1] for x in inputs])
        return self.receive()

    def _crash(self) -> errors.InterpreterError:
        try:
            code = self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            code = self._process.wait()
        if code < 0:
            try:
                how = f"signal {-code}, {signal.Signals(-code).name}"
            except ValueError:
                how = f"signal {-code}"
        else:
            how = f"exit code {code}"
        self._stderr.seek(0)
        said = [
            ln
            for ln in self._stderr.read().decode(errors="replace").splitlines()
            if ln.strip() and not ln.startswith("INFO:")
        ]
        last = f": {said[-1].strip()}" if said else ""
        return errors.InterpreterError(f"interpreter crashed ({how}) while {self._doing}{last}")

    def close(self) -> None:
        """Ask the worker to stop and hang up; it exits on its own (no waiting for it)."""
        if self._process.poll() is None:
            try:
                self._conn.send(("stop", None))
            except (BrokenPipeError, OSError):
                self._process.kill()
        self._conn.close()
        self._stderr.close()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _preload() -> None:
    """Import and initialise what requests need while the parent is still busy converting,
    so the first request does not pay for it."""
    from liteparity import _litert

    _litert.preload()

    np.dot(np.ones(8, np.float32), np.ones(8, np.float32))  # BLAS sets up its threads
    # glibc serves blocks over 128 KB with a fresh mmap (page faults on every batch's
    # temporaries) until one such block is freed; freeing a 16 MB one raises that limit.
    np.empty(16 << 20, np.uint8)  # (freed at once)


if __name__ == "__main__":
    # Serve from the package's own module, so replies unpickle as liteparity.runtime.worker
    # types (this file runs as ``__main__``).
    from liteparity.runtime import worker

    worker._preload()
    worker._serve(Connection(int(sys.argv[1])))
