"""Recipes: named converter settings (data). Names are stable: they appear in the CLI, JSON
and docs. A recipe is made by the TF converter (``engine="tf"``) for a TensorFlow source, or by
ai-edge-quantizer (``engine="aeq"``): the stable names for a float ``.tflite`` source, and AEQ's
own ``aeq:<name>`` recipes for every source."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, Literal

from liteparity.convert.aeq import AEQ_PREFIX, STABLE_RECIPES, aeq_activations
from liteparity.errors import UsageError
from liteparity.reference.base import Source


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
    engine: Literal["tf", "aeq"] = "tf"  # who makes it: the TF converter or ai-edge-quantizer

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
    (``legacy-uint8`` only when its ``mean/std_dev`` are given). For a ``.tflite`` source the
    stable names are made by ai-edge-quantizer (``aeq_stable``); ``aeq:<name>`` works for
    every source."""
    chosen: list[Recipe] = []
    for name in names:
        if name == "all":
            chosen += (
                [r for r in RECIPES.values() if not r.needs_training and (not r.legacy or legacy)]
                if source.convertible
                else [aeq_stable(n) for n in STABLE_RECIPES]
            )
        elif name.startswith(AEQ_PREFIX):
            chosen.append(aeq_named(name))
        elif source.convertible:
            chosen.append(get(name))
        else:
            chosen.append(aeq_stable(name))
    unique = list(dict.fromkeys(chosen))
    if any(r.legacy for r in unique) and legacy is None:
        raise UsageError("the legacy-uint8 recipe needs --mean and --std (quantized_input_stats)")
    return unique


def aeq_stable(name: str) -> Recipe:
    """The stable recipe ``name`` as ai-edge-quantizer makes it for a float ``.tflite``."""
    recipe = get(name)
    if name not in STABLE_RECIPES:
        raise UsageError(
            f"recipe {name} does not apply to a .tflite source: ai-edge-quantizer makes "
            f"{', '.join(STABLE_RECIPES)} and aeq:<name>"
        )
    return replace(recipe, engine="aeq")


def aeq_named(name: str) -> Recipe:
    """AEQ's own recipe ``aeq:<name>``, as AEQ ships it (``UsageError`` for an unknown name)."""
    activations = aeq_activations(name)
    return Recipe(
        name,
        f"ai-edge-quantizer's {name[len(AEQ_PREFIX) :]}",
        True,
        engine="aeq",
        activations=activations,
    )
