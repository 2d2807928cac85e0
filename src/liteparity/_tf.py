"""TensorFlow, imported once and lazily, hushed; and every private TensorFlow API liteparity
uses, in one fence (tested by ``tests/test_compat.py``)."""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import warnings
from typing import Any


def import_tensorflow() -> Any:
    """TensorFlow, imported on first use (it costs seconds) with its C++ chatter hushed."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


@contextlib.contextmanager
def quiet() -> Any:
    """Swallow what TensorFlow, Keras and the converter's C++ print ("Saved artifact at ...",
    "fully_quantize: 0, ...") and their warnings; errors still arrive as exceptions."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                yield
        finally:
            for fd, copy in zip((1, 2), saved, strict=True):
                os.dup2(copy, fd)
                os.close(copy)


def _freeze(function: Any) -> tuple[Any, list[str], list[str]]:
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    frozen = convert_variables_to_constants_v2(function)
    graph_def = frozen.graph.as_graph_def()
    names = [t.name.split(":")[0] for t in frozen.inputs if t.dtype.name != "resource"]
    outputs = [t.name.split(":")[0] for t in frozen.outputs]
    return graph_def, names, outputs
