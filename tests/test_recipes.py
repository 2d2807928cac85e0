"""Recipes, and the private converter APIs behind "calibrate once, quantize many times"."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from liteparity.convert.converter import convert, requantize
from liteparity.convert.recipes import RECIPES, LegacySettings, get
from liteparity.data.prepare import calibration_from
from liteparity.errors import UsageError
from liteparity.reference.keras import KerasSource
from liteparity.runtime.litemodel import LiteModel
from tests.conftest import Digits


def test_recipe_names_are_the_stable_ones() -> None:
    assert list(RECIPES) == [
        "float32",
        "float16",
        "dynamic",
        "int8",
        "int8-io",
        "uint8-io",
        "int16x8",
        "qat",
        "legacy-uint8",
    ]
    with pytest.raises(UsageError, match="float32, float16"):
        get("int4")


def test_legacy_settings_are_validated() -> None:
    with pytest.raises(UsageError):
        LegacySettings(0.0, 0.0)
    with pytest.raises(UsageError):
        LegacySettings(0.0, 1.0, (6.0, 0.0))


def test_calibrate_once_then_requantize_matches_the_int8_recipe(cnn: Path, digits: Digits) -> None:
    source = KerasSource(str(cnn))
    calibration = calibration_from([[digits.x_cal]])
    direct = convert(source, RECIPES["int8"], calibration)
    calibrated = convert(source, RECIPES["int8"], calibration, calibrate_only=True)
    again = requantize(calibrated)
    x = digits.x_eval[:200]
    a, b = LiteModel(direct).run([x])[0], LiteModel(again).run([x])[0]
    assert np.mean(a.argmax(1) == b.argmax(1)) > 0.99
    assert np.abs(a - b).max() < 0.05  # same ranges, same codes up to rounding

    model = LiteModel(again)
    anatomy = model.anatomy()
    conv = next(op for op in anatomy.ops if op.name == "CONV_2D")
    name = anatomy.tensor(conv.outputs[0]).name
    kept = LiteModel(requantize(calibrated, [name])).anatomy()
    kept_conv = next(op for op in kept.ops if op.name == "CONV_2D")
    assert kept.tensor(kept_conv.outputs[0]).dtype == "float32"
    assert anatomy.tensor(conv.outputs[0]).dtype == "int8"


def test_per_tensor_requantization_gives_one_weight_scale(cnn: Path, digits: Digits) -> None:
    source = KerasSource(str(cnn))
    calibrated = convert(
        source,
        RECIPES["int8"],
        calibration_from([[digits.x_cal]]),
        calibrate_only=True,
    )
    for per_channel in (True, False):
        model = LiteModel(requantize(calibrated, per_channel=per_channel))
        weights = [t for t in model.anatomy().weights() if t.dtype == "int8" and t.quantized]
        # conv kernels get one scale per output channel unless per_channel is off
        assert weights
        assert any(t.quantization.per_channel for t in weights) == per_channel


def test_calibrating_once_gives_every_int8_recipe_the_outputs_of_its_own_conversion(
    cnn: Path, digits: Digits
) -> None:
    """int8, int8-io and uint8-io come from one calibrate-only model re-quantized per recipe:
    bit-identical outputs to converting each recipe on its own, on real samples. int16x8
    (quantized by TF's old calibrator) keeps its own conversion."""
    from liteparity.convert.converter import calibrates_once
    from liteparity.convert.process import Converter
    from liteparity.specs import ModelSpec

    assert [n for n, r in RECIPES.items() if calibrates_once(r)] == ["int8", "int8-io", "uint8-io"]
    source = KerasSource(str(cnn))
    calibration = calibration_from([[digits.x_cal]])
    x = digits.x_eval[:300]
    with Converter(ModelSpec(str(cnn))) as converter:
        for name in ("int8", "int8-io", "uint8-io"):
            once = LiteModel(converter.convert(source, RECIPES[name], calibration))
            own = LiteModel(convert(source, RECIPES[name], calibration))
            io = {"int8": "float32", "int8-io": "int8", "uint8-io": "uint8"}[name]
            assert once.inputs[0].dtype == own.inputs[0].dtype == io
            for a, b in zip(once.run([x]), own.run([x]), strict=True):
                np.testing.assert_array_equal(a, b, err_msg=name)
        first = converter.calibrated(source, RECIPES["int8"], calibration)
        assert converter.calibrated(source, RECIPES["int8-io"], calibration) is first
