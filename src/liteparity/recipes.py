"""Recipes: named converter settings, and the one ``convert`` that applies any of them.

A recipe is data. Its name is stable (CLI, JSON, docs): ``float32``, ``float16``, ``dynamic``
(weights int8, float compute: the old ``post_training_quantize``), ``int8`` (full integer,
float I/O), ``int8-io``, ``uint8-io``, ``int16x8`` and ``legacy-uint8`` (the TF1 converter with
``inference_type=uint8``, ``quantized_input_stats`` and optional ``default_ranges_stats``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .errors import ConversionError, UsageError
from .litemodel import first_line
from .sources import Source, import_tensorflow, quiet


@dataclass(frozen=True)
class Recipe:
    """One way of converting a model to TFLite."""

    name: str
    summary: str
    optimize: bool = False  # converter.optimizations = [DEFAULT]
    float16_weights: bool = False
    activations: Literal["float", "int8", "int16"] = "float"
    io_type: Literal["float32", "int8", "uint8"] = "float32"
    legacy: bool = False  # TF1 converter, QUANTIZED_UINT8
    needs_training: bool = False  # built by fine-tuning on labelled data (``qat``)

    @property
    def needs_calibration(self) -> bool:
        return self.activations != "float"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "summary": self.summary}


@dataclass(frozen=True)
class LegacySettings:
    """TF1 ``QUANTIZED_UINT8`` settings: ``real = (q − mean) / std_dev`` on the input."""

    mean: float
    std_dev: float
    default_ranges: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.std_dev <= 0:
            raise UsageError(f"--std must be positive, got {self.std_dev}")
        if self.default_ranges and not self.default_ranges[0] < self.default_ranges[1]:
            raise UsageError(f"--default-ranges MIN MAX needs MIN < MAX, got {self.default_ranges}")


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe("float32", "plain float32 conversion"),
        Recipe(
            "float16",
            "weights stored as float16, computed in float32 on CPU",
            optimize=True,
            float16_weights=True,
        ),
        Recipe(
            "dynamic", "weights int8, activations float (dynamic-range quantization)", optimize=True
        ),
        Recipe(
            "int8",
            "full integer: int8 weights and activations, float input/output",
            optimize=True,
            activations="int8",
        ),
        Recipe(
            "int8-io",
            "full integer with int8 input and output",
            optimize=True,
            activations="int8",
            io_type="int8",
        ),
        Recipe(
            "uint8-io",
            "full integer with uint8 input and output",
            optimize=True,
            activations="int8",
            io_type="uint8",
        ),
        Recipe(
            "int16x8",
            "int16 activations, int8 weights, float input/output",
            optimize=True,
            activations="int16",
        ),
        Recipe(
            "qat",
            "quantization-aware fine-tuning (tfmot, Keras 2 .h5 models), then int8",
            needs_training=True,
        ),
        Recipe(
            "legacy-uint8",
            "TF1 converter, QUANTIZED_UINT8 with mean/std_dev (and default_ranges)",
            legacy=True,
        ),
    )
}


def get(name: str) -> Recipe:
    """The recipe called ``name``; the error lists the valid names."""
    try:
        return RECIPES[name]
    except KeyError:
        raise UsageError(
            f"unknown recipe {name!r}: expected one of {', '.join(RECIPES)} or 'all'"
        ) from None


def resolve(names: Iterable[str], source: Source, legacy: LegacySettings | None) -> list[Recipe]:
    """Recipe objects for ``names``; ``all`` means every recipe that applies to the source
    (``legacy-uint8`` only when its ``mean/std_dev`` are given)."""
    chosen: list[Recipe] = []
    for name in names:
        if name == "all":
            chosen += [
                r
                for r in RECIPES.values()
                if not r.needs_training and (not r.legacy or legacy is not None)
            ]
        else:
            chosen.append(get(name))
    unique = list(dict.fromkeys(chosen))
    if unique and not source.convertible:
        raise UsageError(
            f"recipes need a TensorFlow source, and {source.path} is a .tflite file: compare "
            "it with --candidate FILE.tflite instead"
        )
    if any(r.legacy for r in unique) and legacy is None:
        raise UsageError("the legacy-uint8 recipe needs --mean and --std (quantized_input_stats)")
    return unique


Calibration = Callable[[], Iterable[list[np.ndarray]]]

#: The converter's complaint about shapes it needs fixed (LSTM/GRU TensorLists).
STATIC_SHAPE_HINT = "to be static"


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
            converter.representative_dataset = calibration
        if recipe.io_type != "float32":
            converter.inference_input_type = getattr(tf, recipe.io_type)
            converter.inference_output_type = getattr(tf, recipe.io_type)
        # Private, tested in tests/test_recipes.py: calibrate once, quantize many times.
        converter._experimental_calibrate_only = calibrate_only
        with quiet():
            return bytes(converter.convert())

    try:
        try:
            return attempt(None)
        except Exception as exc:
            # Recurrent layers with a free batch size build TensorLists the converter cannot
            # lower ("element_shape to be static"): a fixed batch of 1 converts them. Not for
            # calibrated recipes: TF's calibrator segfaults on such models (TF 2.21).
            if recipe.legacy or recipe.needs_calibration or STATIC_SHAPE_HINT not in str(exc):
                raise
            return attempt(1)
    except (UsageError, ConversionError):
        raise
    except Exception as exc:
        raise ConversionError(
            f"recipe {recipe.name}: the converter failed: {converter_message(exc)}"
        ) from exc


def converter_message(exc: BaseException) -> str:
    """The converter's reason without MLIR location noise, with a hint where one is known."""
    text = str(exc)
    reasons = [r for r in re.findall(r"error: ([^\n]+)", text) if not r.startswith("loc(")]
    reasons += [
        r.split("): error: ")[-1] for r in re.findall(r"loc\([^\n]*\): error: [^\n]+", text)
    ]
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
    assert legacy is not None
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


def calibration_from(batches: Sequence[list[np.ndarray]]) -> Calibration:
    """A representative-dataset function over already-read batches, one sample per yield."""

    def generate() -> Iterable[list[np.ndarray]]:
        for batch in batches:
            for i in range(len(batch[0])):
                yield [x[i : i + 1] for x in batch]

    return generate


def requantize(
    calibrated: bytes,
    keep_float: Sequence[str] = (),
    *,
    numeric_verify: bool = False,
    per_channel: bool = True,
) -> bytes:
    """Full-integer int8 quantization (float input/output) of a ``calibrate_only`` model,
    keeping the ops whose output tensors are named in ``keep_float`` in float. Takes ~10 ms,
    so many variants of one calibration are cheap (TF's private ``mlir_quantize``).
    ``numeric_verify`` builds the debug model of TF's QuantizationDebugger: each quantized
    op gets a float twin fed its dequantized inputs and a NumericVerify op whose output is
    ``dequantize(q) − float``. ``per_channel=False`` gives conv/dense weights one scale per
    tensor (what some accelerators require)."""
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
    except Exception as exc:
        raise ConversionError(
            f"re-quantizing the calibrated model failed: {first_line(exc)}"
        ) from exc
