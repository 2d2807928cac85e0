"""ai-edge-quantizer (AEQ) as the quantization engine for float ``.tflite`` sources.

A float ``.tflite`` (from litert-torch, onnx2tf, MediaPipe, a model zoo) never meets the TF
converter; Google's way to quantize it is AEQ. The stable recipe names mean the same thing as
for a Keras source, each made with one AEQ recipe (``recipe_mapping()`` returns this table):

===========  ==============================================  =================================
liteparity   AEQ recipe                                      what the model gets
===========  ==============================================  =================================
``dynamic``  ``dynamic_wi8_afp32``                           int8 weights (per channel,
                                                             symmetric), float activations
                                                             quantized on the fly
``float16``  weight-only ``float_casting`` to 16 bits (AEQ   float16 weights behind
             names no recipe for it)                         DEQUANTIZE, float32 compute
``int8``     ``static_wi8_ai8``, model inputs and outputs    int8 weights and activations,
             left float (INPUT/OUTPUT ``no_quantize``)       float32 input/output
``int8-io``  ``static_wi8_ai8`` as AEQ ships it              the same, int8 input/output
``int16x8``  ``static_wi8_ai16``, inputs and outputs left    int16 activations, int8 weights,
             float                                           float32 input/output
===========  ==============================================  =================================

``aeq:<name>`` is any of AEQ's own named recipes exactly as AEQ ships it
(``aeq:weight_only_wi4_afp32``, ``aeq:dynamic_wi4_afp32``, blockwise
``aeq:dynamic_wi4b32_afp32``, Hadamard-rotated ``aeq:dynamic_wi8c_hr_afp32``, ...).

The source is prepared once (``tflite_prep``: float16 weights folded, a signature added, old op
codes upgraded) and calibrated once: every recipe AEQ 0.10 calibrates needs only each tensor's
min/max, which LiteRT's profiler measures for all tensors at once whatever the recipe. Every
result is loaded in LiteRT before it is returned, so a model LiteRT refuses is a one-line
``ConversionError`` (``runnable``). AEQ is imported here only, lazily: ``liteparity --help``
and Keras-only runs never load it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Literal

import numpy as np

from liteparity._tf import quiet
from liteparity.convert.runnable import check_runnable
from liteparity.convert.tflite_prep import PreparedTFLite, prepare_tflite
from liteparity.errors import ConversionError, DataError, UsageError, first_line
from liteparity.progress import Progress, no_progress

#: Prefix of AEQ's own recipe names.
AEQ_PREFIX = "aeq:"
_INSTALL_HINT = "pip install 'ai-edge-quantizer==0.10.*'"
#: AEQ's algorithm for ops left in float.
NO_Q = "no_quantize"
#: Recipe entries that keep the model's inputs and outputs in float (AEQ's IO pseudo-ops).
_FLOAT_IO = ({"regex": ".*", "operation": "INPUT"}, {"regex": ".*", "operation": "OUTPUT"})

Batches = Sequence[Sequence[np.ndarray]]


@dataclass(frozen=True)
class StableRecipe:
    """How one stable recipe name is made with AEQ."""

    aeq: str  # the AEQ recipe it starts from
    float_io: bool  # model inputs and outputs kept float32
    summary: str


STABLE_RECIPES: dict[str, StableRecipe] = {
    "dynamic": StableRecipe(
        "dynamic_wi8_afp32", False, "int8 weights, float activations quantized on the fly"
    ),
    "float16": StableRecipe(
        "weight-only float_casting to 16 bits", False, "float16 weights, float32 compute"
    ),
    "int8": StableRecipe("static_wi8_ai8", True, "int8 weights and activations"),
    "int8-io": StableRecipe("static_wi8_ai8", False, "int8 weights, activations, input, output"),
    "int16x8": StableRecipe("static_wi8_ai16", True, "int16 activations, int8 weights"),
}


def recipe_mapping() -> dict[str, str]:
    """Each stable recipe name, the AEQ recipe that makes it and what it gives."""
    return {
        name: f"{r.aeq}{' with float32 input/output' if r.float_io else ''}: {r.summary}"
        for name, r in STABLE_RECIPES.items()
    }


def quantize_tflite(
    content: bytes,
    recipe_name: str,
    calibration_batches: Batches | None = None,
    progress: Progress = no_progress,
) -> bytes:
    """Quantize the float ``.tflite`` ``content`` under one recipe (see ``TFLiteQuantizer``)."""
    return TFLiteQuantizer(content, calibration_batches, progress).quantize(recipe_name)


class TFLiteQuantizer:
    """One float ``.tflite``, prepared once, calibrated at most once, quantized with AEQ under
    any number of recipes (stable names or ``aeq:<name>``).

    ``calibration_batches`` are lists of input arrays (a leading sample axis, real values) in
    the source's input order, as liteparity reads its data; every sample is run, one at a time
    (real models bake batch 1 into their reshapes), one batch per AEQ call, with ``progress``.
    ``check`` refuses a result LiteRT cannot run (a pipeline passes ``runnable.
    check_runnable_in``, which loads it in a worker process: a crash there is one line).
    """

    def __init__(
        self,
        content: bytes,
        calibration_batches: Batches | None = None,
        progress: Progress = no_progress,
        check: Callable[[bytes, str], None] = check_runnable,
    ) -> None:
        _import_aeq()  # first: without AEQ nothing here can work, say so before anything
        self.prepared: PreparedTFLite = prepare_tflite(content)
        self._batches = calibration_batches
        self._progress = progress
        self._ranges: dict[str, Any] | None = None
        self._check = check

    def quantize(self, recipe_name: str, float_ops: Sequence[str] = ()) -> bytes:
        """The quantized model, the ops writing the tensors named in ``float_ops`` left in
        float (selective quantization). ``UsageError`` for an unknown name or missing
        calibration data; ``ConversionError`` when AEQ fails or LiteRT refuses the result."""
        recipe = _recipe(recipe_name) + [
            # AEQ matches an op by its scope, its output tensor names joined by ";"
            {"regex": f"(^|;){re.escape(name)}($|;)", "operation": "*", "algorithm_key": NO_Q}
            for name in float_ops
        ]
        with _engine(recipe_name):
            quantizer = _import_aeq().quantizer.Quantizer(bytearray(self.prepared.content), recipe)
        ranges = self._calibrate(quantizer, recipe_name) if quantizer.need_calibration else None
        stage = f"quantizing ({recipe_name})"
        self._progress(stage, 0, 1)
        with _engine(recipe_name):
            result = quantizer.quantize(ranges, enable_progress_report=False)
        quantized = bytes(result.quantized_model)
        self._progress(stage, 1, 1)
        self._check(quantized, f"recipe {recipe_name}")
        return quantized

    def _calibrate(self, quantizer: Any, recipe_name: str) -> dict[str, Any]:
        """Every tensor's min/max over the calibration samples, measured on first use by
        LiteRT's profiler rather than AEQ's default, which keeps every tensor and walks the ops
        in Python: the same ranges (to float32 rounding), 4-7x faster (selfie segmentation: 16
        instead of 75 ms per sample)."""
        if self._ranges is not None:
            return self._ranges
        if not self._batches:
            raise UsageError(f"recipe {recipe_name} needs calibration data")
        names, key = self.prepared.input_names, self.prepared.signature_key
        mode = _import_aeq().calibrator.CalibrationMode.CALIBRATION_PROFILER_BASED
        total = sum(len(batch[0]) for batch in self._batches)
        self._progress("calibrating", 0, total)
        ranges, done = None, 0
        for batch in self._batches:
            if len(batch) != len(names):
                raise DataError(
                    f"the model has {len(names)} input(s) ({', '.join(names)}) but the "
                    f"calibration data gives {len(batch)}"
                )
            samples = [
                {name: _sample(x, i) for name, x in zip(names, batch, strict=True)}
                for i in range(len(batch[0]))
            ]
            with _engine(recipe_name):
                ranges = quantizer.calibrate(
                    {key: samples},
                    previous_calibration_result=ranges,
                    num_threads=os.cpu_count() or 1,
                    mode=mode,
                )
            done += len(samples)
            self._progress("calibrating", done, total)
        self._ranges = ranges or {}
        return self._ranges


def aeq_recipe_names() -> list[str]:
    """Every ``aeq:<name>`` recipe: AEQ's named recipes for a single-signature model."""
    return [AEQ_PREFIX + name for name in _named_recipes()]


def aeq_activations(name: str) -> Literal["float", "int8", "int16"]:
    """What the activations of recipe ``name``'s models are: ``float`` unless the recipe
    quantizes them (then it needs calibration)."""
    configs = [entry.get("op_config") or {} for entry in _recipe(name)]
    bits = {
        config["activation_tensor_config"]["num_bits"]
        for config in configs
        if config.get("activation_tensor_config")
    }
    return "int16" if 16 in bits else "int8" if bits else "float"


def _recipe(name: str) -> list[dict[str, Any]]:
    """The AEQ recipe (a list of op configs) behind ``name``, built afresh."""
    aeq, named = _import_aeq(), _named_recipes()
    if name.startswith(AEQ_PREFIX):
        if name[len(AEQ_PREFIX) :] not in named:
            raise UsageError(f"unknown AEQ recipe {name!r}: expected one of {_listed(named)}")
        return named[name[len(AEQ_PREFIX) :]]()
    if name not in STABLE_RECIPES:
        raise UsageError(
            f"recipe {name!r} cannot be made with ai-edge-quantizer: expected one of "
            f"{', '.join(STABLE_RECIPES)} or aeq:<name> ({_listed(named)})"
        )
    stable = STABLE_RECIPES[name]
    if name == "float16":
        manager = aeq.recipe_manager.RecipeManager()
        manager.add_weight_only_config(
            regex=".*",
            operation_name=aeq.qtyping.TFLOperationName.ALL_SUPPORTED,
            num_bits=16,
            algorithm_key=aeq.algorithm_manager.AlgorithmName.FLOAT_CASTING,
        )
        recipe = manager.get_quantization_recipe()
    else:
        recipe = named[stable.aeq]()
    if stable.float_io:  # the last matching entry wins: inputs and outputs stay float
        recipe += [{**entry, "algorithm_key": NO_Q} for entry in _FLOAT_IO]
    return list(recipe)


def _listed(named: dict[str, Any]) -> str:
    return ", ".join(AEQ_PREFIX + n for n in named)


@functools.cache
def _named_recipes() -> dict[str, Callable[[], list[dict[str, Any]]]]:
    """AEQ's named recipes (the public functions of ``ai_edge_quantizer.recipe``) that apply
    to a whole single-signature model, by name; the LiteRT-LM ones map the signatures of a
    language model (``tf_lite_prefill_decode``, ...) and are left out."""
    named = {}
    for name, make in sorted(vars(_import_aeq().recipe).items()):
        if name.startswith("_") or not name.islower() or not callable(make):
            continue
        try:
            recipe = make()
        except TypeError:  # a helper that needs arguments, not a recipe
            continue
        if isinstance(recipe, list):
            named[name] = make
    return named


@contextlib.contextmanager
def _engine(recipe_name: str) -> Iterator[None]:
    """Run AEQ hushed (it draws tqdm bars and warns), its failures (bare ``ValueError``s and
    ``RuntimeError``s) turned into one ``ConversionError`` line."""
    try:
        with quiet():
            yield
    except Exception as exc:
        raise ConversionError(
            f"recipe {recipe_name}: ai-edge-quantizer failed: {first_line(exc)}"
        ) from exc


def _sample(x: np.ndarray, i: int) -> np.ndarray:
    one = np.asarray(x[i : i + 1])
    return one.astype(np.float32) if one.dtype.kind == "f" else one


@functools.cache
def _import_aeq() -> SimpleNamespace:
    """The AEQ modules liteparity uses, imported on first use (1-3 s)."""
    try:
        from ai_edge_quantizer import (
            algorithm_manager,
            calibrator,
            qtyping,
            quantizer,
            recipe,
            recipe_manager,
        )
    except ImportError as exc:
        raise ConversionError(
            f"quantizing a .tflite needs ai-edge-quantizer: {_INSTALL_HINT}"
        ) from exc
    return SimpleNamespace(
        algorithm_manager=algorithm_manager,
        calibrator=calibrator,
        qtyping=qtyping,
        quantizer=quantizer,
        recipe=recipe,
        recipe_manager=recipe_manager,
    )
