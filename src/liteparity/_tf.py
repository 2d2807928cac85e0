"""TensorFlow, imported once and lazily, hushed; and every private TensorFlow (and Keras) API
liteparity uses, in one fence (tested by ``tests/test_compat.py``).

"Calibrate once, quantize many times" needs the converter's private calibrate-only switch and
``mlir_quantize``; the TF1 converter and the float64 twin need a frozen graph, which only a
private module builds from a concrete function; the converter's own exception type lives in
a private module; Keras names a model's output layers only through a private attribute. Any
release may change these, so each use is one small function here; when one changes, one
function and the compatibility test that names it fail.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import warnings
from collections.abc import Sequence
from typing import Any

from liteparity.errors import ConversionError, InternalError, first_line
from liteparity.timings import stage

#: Set (by ``--debug``) to let TensorFlow's start-up log through.
DEBUG_ENV = "LITEPARITY_DEBUG"


def debugging() -> bool:
    """Whether ``--debug`` asked for the logs of what liteparity runs (TensorFlow, Ray)."""
    return bool(os.environ.get(DEBUG_ENV))


def import_tensorflow() -> Any:
    """TensorFlow, imported on first use (it costs seconds) with its C++ chatter hushed: its
    absl start-up lines (oneDNN, CUDA, CPU features, and the device set-up's cuInit error on
    a machine without a GPU) go straight to file descriptor 2 before ``InitializeLog``, where
    ``TF_CPP_MIN_LOG_LEVEL`` cannot reach them, so the import and the device listing run with
    descriptor 2 silenced unless ``LITEPARITY_DEBUG`` is set. Import errors still raise."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules or debugging():
        import tensorflow as tf

        return tf
    with stage("import"), quiet():
        import tensorflow as tf

        tf.config.list_physical_devices()  # device set-up logs too ("failed call to cuInit")
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


def freeze(function: Any) -> tuple[Any, list[str], list[str]]:
    """``(graph_def, input op names, output op names)`` of a concrete function with its
    variables folded into constants (``tensorflow.python.framework.convert_to_constants``:
    the TF1 converter and the float64 twin need a frozen ``GraphDef``, and TF 2 has no public
    way to make one). Resource handles are not inputs."""
    import_tensorflow()
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    frozen = convert_variables_to_constants_v2(function)
    graph_def = frozen.graph.as_graph_def()
    names = [t.name.split(":")[0] for t in frozen.inputs if t.dtype.name != "resource"]
    outputs = [t.name.split(":")[0] for t in frozen.outputs]
    return graph_def, names, outputs


def converter_errors() -> tuple[type[Exception], ...]:
    """What ``TFLiteConverter.convert()`` raises when it refuses a model or a recipe: its own
    ``ConverterError`` (from the private ``tensorflow.lite.python.convert_phase``; MLIR
    failures), TensorFlow's ``OpError`` (tracing, freezing), ``ValueError`` (settings the
    model cannot take) and ``RuntimeError`` (the calibrator). Anything else is a bug."""
    tf = import_tensorflow()
    from tensorflow.lite.python.convert_phase import ConverterError

    return (ConverterError, tf.errors.OpError, ValueError, RuntimeError)


def stop_after_calibration(converter: Any) -> None:
    """Make ``converter.convert()`` return the calibrated float model: every tensor's measured
    range recorded, nothing quantized yet (the private ``_experimental_calibrate_only``), so
    ``quantize_calibrated`` can quantize it many ways without calibrating again.
    ``InternalError`` when this TensorFlow has no such switch: setting an unknown attribute
    would silently give a fully quantized model instead."""
    if not hasattr(converter, "_experimental_calibrate_only"):
        raise InternalError(
            f"{type(converter).__name__} has no _experimental_calibrate_only: this TensorFlow "
            "release changed the private API liteparity needs"
        )
    converter._experimental_calibrate_only = True


def quantize_calibrated(
    calibrated: bytes,
    keep_float: Sequence[str] = (),
    *,
    numeric_verify: bool = False,
    per_channel: bool = True,
) -> bytes:
    """A calibrated float model (``stop_after_calibration``) quantized to full integer int8,
    inputs and outputs included, by TensorFlow's private
    ``tensorflow.lite.python.convert.mlir_quantize``: the quantizer the converter runs after
    calibrating, callable alone so one calibration serves many variants (``requantize``).
    ``keep_float`` are its ``denylisted_nodes`` (output tensor names whose ops stay float),
    ``numeric_verify`` adds the NumericVerify ops of TF's QuantizationDebugger,
    ``per_channel=False`` gives conv and dense weights one scale per tensor.
    ``ConversionError`` with TensorFlow's one-line reason when it refuses."""
    import_tensorflow()
    from tensorflow.lite.python import convert as tf_convert

    try:
        with quiet():
            return bytes(
                tf_convert.mlir_quantize(
                    calibrated,
                    fully_quantize=True,
                    enable_numeric_verify=numeric_verify,
                    disable_per_channel=not per_channel,
                    disable_per_channel_for_dense_layers=not per_channel,
                    denylisted_nodes=list(keep_float) or None,
                )
            )
    except converter_errors() as exc:
        raise ConversionError(
            f"re-quantizing the calibrated model failed: {first_line(exc)}"
        ) from exc


def quantize_as_converter(calibrated: bytes, io_type: str) -> bytes:
    """A calibrated float model (``stop_after_calibration``) quantized exactly as
    ``TFLiteConverter`` quantizes it after calibrating for a full-integer int8 recipe with
    ``inference_input_type = inference_output_type = io_type`` (TF 2.21's
    ``_quantize``: ``mlir_quantize`` with per-channel weights, then
    ``deduplicate_readonly_buffers``). Identical outputs to the converter's own run (tested),
    at a fraction of its cost: one calibration serves int8, int8-io and uint8-io.
    ``ConversionError`` with TensorFlow's one-line reason when it refuses."""
    tf = import_tensorflow()
    from tensorflow.lite.python import convert as tf_convert

    dtype = getattr(tf, io_type)
    try:
        with quiet():
            quantized = tf_convert.mlir_quantize(
                calibrated, False, input_data_type=dtype, output_data_type=dtype
            )
            return bytes(tf_convert.deduplicate_readonly_buffers(quantized))
    except converter_errors() as exc:
        raise ConversionError(
            f"quantizing the calibrated model ({io_type} I/O) failed: {first_line(exc)}"
        ) from exc


def output_layer_names(model: Any) -> list[str]:
    """The name of the Keras layer that produces each output of a functional or sequential
    Keras 3 model, in output order (the private ``KerasTensor._keras_history``: Sequential
    models have no public ``output_names``)."""
    return [tensor._keras_history[0].name for tensor in model.outputs]
