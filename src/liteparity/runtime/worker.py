"""Run jobs (``runtime.jobs``) in a child process, one process per worker.

A LiteRT interpreter can abort or segfault on a bad model; in a worker that becomes a clear
``InterpreterError`` for that one model ("interpreter crashed (signal 11, SIGSEGV) while
running the model (batch 1)") while the others go on. This module imports numpy,
``ai_edge_litert`` and ``liteparity.runtime`` only, so workers start fast and never load
TensorFlow; a job's own module is imported when the job arrives. Several workers run at once,
one core each.

Children are started as ``python -m liteparity.runtime.worker FD`` (not with multiprocessing's
spawn, which re-imports the user's ``__main__`` script) and talk over a socket pair. A subclass
may run another module that serves the same way (``convert.process``: the converter process,
which imports TensorFlow; its crash is a ``ConversionError``).
"""

from __future__ import annotations

import os
import pickle
import re
import signal
import socket
import subprocess
import sys
import tempfile
import traceback
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from liteparity import errors
from liteparity.errors import first_line
from liteparity.runtime.jobs import BaseWorker, JobHost

#: An absl/TF C++ log line below FATAL ("I0000 00:00:17.. 3074 cudart_stub.cc:31] ..."):
#: chatter, not a crash's last words.
_LOG = re.compile(r"[IWE]\d{4} \d\d:\d\d:\d\d")

#: How long a worker may stay silent while alive; generous, LiteRT can be slow on big models.
_POLL_S = 0.05


def _serve(conn: Connection) -> None:
    """Worker loop: hand each message to the job host and send back what it answers."""
    host = JobHost()
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, KeyboardInterrupt):
            return
        try:
            message = pickle.loads(data)
        except Exception as exc:  # a job whose class cannot be imported here
            conn.send(("error", "InterpreterError", f"{type(exc).__name__}: {first_line(exc)}"))
            continue
        if message is None:
            return
        try:
            value, error = host.handle(message)
        except errors.InternalError:  # a bug: its traceback travels to the parent
            conn.send(("error", "InternalError", traceback.format_exc()))
            continue
        if error is None:
            conn.send(("ok", value))
        else:
            conn.send(("error", type(error).__name__, str(error)))


class Worker(BaseWorker):
    """Jobs in one child process; calls go one at a time, in order."""

    #: The module the child runs (``python -m MODULE FD``), what a crash is called, the error
    #: it becomes, and the C++ log level of the child (TF_CPP_MIN_LOG_LEVEL).
    module = "liteparity.runtime.worker"
    kind = "interpreter"
    crash_error: type[errors.LiteparityError] = errors.InterpreterError
    log_level = "2"

    def __init__(self, name: str) -> None:
        """Start the process; it boots in the background while the caller prepares a job."""
        super().__init__(name)
        parent, child = socket.socketpair()
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        self._process = subprocess.Popen(
            [sys.executable, "-m", self.module, str(child.fileno())],
            pass_fds=(child.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL=self.log_level),
        )
        child.close()
        self._conn = Connection(parent.detach())

    @property
    def alive(self) -> bool:
        """Whether the child process is still running (not crashed, not closed)."""
        return self._process.poll() is None

    @property
    def pid(self) -> int:
        return self._process.pid

    def _send(self, message: tuple[str, Any], doing: str) -> None:
        try:
            self._conn.send(message)
        except (BrokenPipeError, OSError):
            raise self._crash(doing) from None

    def answered(self) -> bool:
        return self._conn.closed or self._conn.poll(0) or not self.alive

    def _receive(self, doing: str) -> tuple[Any, errors.LiteparityError | None]:
        """The next answer, or the error it carries, or the crash."""
        while not self._conn.poll(_POLL_S):
            if self._process.poll() is not None:
                return None, self._crash(doing)
        try:
            message = self._conn.recv()
        except (EOFError, OSError):
            return None, self._crash(doing)
        if message[0] == "ok":
            return message[1], None
        _, kind, text = message
        cls = getattr(errors, kind, errors.InterpreterError)
        return None, cls(text)

    def _crash(self, doing: str) -> errors.LiteparityError:
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
            if ln.strip()
            and not ln.startswith(("INFO:", "WARNING: All log"))
            and not _LOG.match(ln)
        ]
        last = f": {said[-1].strip()}" if said else ""
        return self.crash_error(f"{self.kind} crashed ({how}) while {doing}{last}")

    def close(self) -> None:
        """Ask the worker to stop and hang up; it exits on its own (no waiting for it). A
        worker with answers nobody will read is killed instead of finishing their work."""
        if self._process.poll() is None:
            try:
                if self._waiting:
                    self._process.kill()
                else:
                    self._conn.send(None)
            except (BrokenPipeError, OSError):
                self._process.kill()
        self._waiting.clear()
        self._conn.close()
        self._stderr.close()


def _preload() -> None:
    """Import and initialise what jobs need while the parent is still busy converting, so
    the first job does not pay for it."""
    from liteparity import _litert

    _litert.preload()

    np.dot(np.ones(8, np.float32), np.ones(8, np.float32))  # BLAS sets up its threads
    # glibc serves blocks over 128 KB with a fresh mmap (page faults on every batch's
    # temporaries) until one such block is freed; freeing a 16 MB one raises that limit.
    np.empty(16 << 20, np.uint8)  # (freed at once)


if __name__ == "__main__":
    # This file runs as ``__main__``: serve from the package's own module, so its code and
    # types exist once in the process.
    from liteparity.runtime import worker

    worker._preload()
    worker._serve(Connection(int(sys.argv[1])))
