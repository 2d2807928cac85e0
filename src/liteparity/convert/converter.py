"""Recipes: named converter settings, and the one ``convert`` that applies any of them.

A recipe is data. Its name is stable (CLI, JSON, docs): ``float32``, ``float16``, ``dynamic``
(weights int8, float compute: the old ``post_training_quantize``), ``int8`` (full integer,
float I/O), ``int8-io``, ``uint8-io``, ``int16x8`` and ``legacy-uint8`` (the TF1 converter with
``inference_type=uint8``, ``quantized_input_stats`` and optional ``default_ranges_stats``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from liteparity._tf import (
    converter_errors,
    import_tensorflow,
    quantize_as_converter,
    quantize_calibrated,
    quiet,
    stop_after_calibration,
)
from liteparity.convert.recipes import LegacySettings, Recipe
from liteparity.data.prepare import STATIC_SHAPE_HINT, Calibration
from liteparity.errors import (
    ConversionError,
    InternalError,
    NotApplicable,
    UsageError,
    first_line,
)
from liteparity.reference.base import Source

#: How the converter says an op has no kernel for a recipe's types ("Quantization to 16x8-bit
#: not yet supported for op: 'HARD_SWISH'").
_NO_KERNEL = re.compile(r"not (yet )?supported for op", re.IGNORECASE)


def convert(
    source: Source,
    recipe: Recipe,
    calibration: Calibration | None = None,
    legacy: LegacySettings | None = None,
    *,
    calibrate_only: bool = False,
) -> bytes:
    """Convert ``source`` with ``recipe``; ``calibration`` yields lists of one-sample arrays in
    the source's input order. ``calibrate_only`` stops after calibration: a float model that
    carries every tensor's measured range, for ``requantize``."""
    tf = import_tensorflow()
    if recipe.needs_training:
        raise UsageError(f"recipe {recipe.name} is trained, not converted: use check or fix")
    if recipe.needs_calibration and calibration is None:
        raise UsageError(f"recipe {recipe.name} needs calibration data")

    def attempt(batch_size: int | None) -> bytes:
        if recipe.legacy:
            converter = _legacy_converter(source, legacy)
        else:
            converter = source.converter(batch_size)
        if recipe.optimize:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if recipe.float16_weights:
            converter.target_spec.supported_types = [tf.float16]
        if recipe.activations == "int8":
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        elif recipe.activations == "int16":
            converter.target_spec.supported_ops = [
                tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
            ]
        if recipe.needs_calibration:
            converter.representative_dataset = _by_name(source, calibration)
        if recipe.io_type != "float32":
            converter.inference_input_type = getattr(tf, recipe.io_type)
            converter.inference_output_type = getattr(tf, recipe.io_type)
        if calibrate_only:  # calibrate once, quantize many times (``requantize``)
            stop_after_calibration(converter)
        with quiet():
            return bytes(converter.convert())

    refused = converter_errors()
    try:
        try:
            return attempt(None)
        except refused as exc:
            # Recurrent layers with a free batch size build TensorLists the converter cannot
            # lower ("element_shape to be static"): a fixed batch of 1 converts them. Not for
            # calibrated recipes: TF's calibrator segfaults on such models (TF 2.21).
            if recipe.legacy or recipe.needs_calibration or STATIC_SHAPE_HINT not in str(exc):
                raise
            return attempt(1)
    except refused as exc:
        message = converter_message(exc)
        if _NO_KERNEL.search(message):
            raise NotApplicable(f"recipe {recipe.name} does not apply: {message}") from exc
        raise ConversionError(f"recipe {recipe.name}: the converter failed: {message}") from exc


def _by_name(source: Source, calibration: Calibration | None) -> Any:
    """The calibration samples as the converter must take them. A list is fed in the order
    of the converter's signature (inputs sorted by name), not the model's: a Keras model with
    inputs ``zimage, profile`` got each one's values in the other (a shape error, or with
    same-shaped inputs, silently swapped ranges). By name, each reaches its own input."""
    names = source.io.input_names
    if calibration is None or len(names) < 2 or not source.calibrates_by_name:
        return calibration
    return lambda: (dict(zip(names, sample, strict=True)) for sample in calibration())


def converter_message(exc: BaseException) -> str:
    """The converter's reason without MLIR location noise, with a hint where one is known."""
    text = str(exc)
    # The op's own reason (behind its MLIR location) first; "failed while converting: 'main'"
    # only says that something did.
    stripped = (re.sub(r"^loc\(.*\):\s*", "", r) for r in re.findall(r"error: ([^\n]+)", text))
    generic = ("failed while converting", "loc(")
    reasons = [r for r in stripped if not r.startswith(generic)]
    if STATIC_SHAPE_HINT in text:
        line = next(ln for ln in text.splitlines() if STATIC_SHAPE_HINT in ln)
        found = re.search(r"'[\w.]+' op .*", line)  # "'tf.TensorListReserve' op requires ..."
        reason = found.group(0) if found else line.rsplit("error: ", 1)[-1]
        return (
            f"{reason.strip()} — a recurrent layer with a free batch size: give the model a "
            "fixed batch, e.g. keras.Input(shape, batch_size=1), to quantize it"
        )
    return next((r.strip() for r in reasons if r.strip()), first_line(exc))


def _legacy_converter(source: Source, legacy: LegacySettings | None) -> Any:
    tf = import_tensorflow()
    if legacy is None:  # recipes.resolve refuses legacy-uint8 without its settings
        raise InternalError("the legacy-uint8 recipe reached the converter without its settings")
    graph_def, inputs, outputs = source.frozen_graph()
    shapes = {
        name: [1, *shape[1:]] for name, shape in zip(inputs, source.io.input_shapes, strict=True)
    }
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    in_tensors = [graph.get_tensor_by_name(f"{n}:0") for n in inputs]
    for tensor, name in zip(in_tensors, inputs, strict=True):
        tensor.set_shape(shapes[name])
    out_tensors = [graph.get_tensor_by_name(f"{n}:0") for n in outputs]
    converter = tf.compat.v1.lite.TFLiteConverter(graph_def, in_tensors, out_tensors)
    converter.inference_type = tf.uint8
    converter.quantized_input_stats = {n: (legacy.mean, legacy.std_dev) for n in inputs}
    if legacy.default_ranges is not None:
        converter.default_ranges_stats = legacy.default_ranges
    return converter


def calibrates_once(recipe: Recipe) -> bool:
    """Whether ``recipe`` is made from the run's one calibrated model (``from_calibrated``)
    instead of its own conversion: the TF converter's full-integer int8 recipes (int8,
    int8-io, uint8-io), which differ only in their I/O types. Not int16x8: TF quantizes it with
    the old calibrator, which cannot start from a calibrated model."""
    return recipe.engine == "tf" and recipe.activations == "int8" and not recipe.legacy


def from_calibrated(calibrated: bytes, recipe: Recipe) -> bytes:
    """``recipe``'s model (``calibrates_once``) from the calibrated model: the converter's own
    quantization step alone, so the outputs equal ``convert(source, recipe, calibration)``'s."""
    if not calibrates_once(recipe):
        raise InternalError(f"recipe {recipe.name} is not made from a calibrated model")
    return quantize_as_converter(calibrated, recipe.io_type)


def requantize(
    calibrated: bytes,
    keep_float: Sequence[str] = (),
    *,
    numeric_verify: bool = False,
    per_channel: bool = True,
) -> bytes:
    """Full-integer int8 quantization (inputs and outputs included) of a ``calibrate_only``
    model, keeping the ops whose output tensors are named in ``keep_float`` in float. Takes
    ~10 ms, so many variants of one calibration are cheap (TF's private ``mlir_quantize``).
    ``numeric_verify`` builds the debug model of TF's QuantizationDebugger: each quantized
    op gets a float twin fed its dequantized inputs and a NumericVerify op whose output is
    ``dequantize(q) − float``. ``per_channel=False`` gives conv/dense weights one scale per
    tensor (what some accelerators require). ``ConversionError`` when TF refuses."""
    return quantize_calibrated(
        calibrated, keep_float, numeric_verify=numeric_verify, per_channel=per_channel
    )
