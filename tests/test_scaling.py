"""Mis-scaled data gets a warning (issue: uint8 0-255 images fed to a model calibrated on
[0, 1] ran silently); a clean run gets none."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from typer.testing import CliRunner

from liteparity.cli.app import app
from tests.conftest import Digits


def test_a_clean_run_gets_no_scaling_warning(check_all) -> None:
    """Every recipe, calibration data apart, int8-io and uint8-io inputs included."""
    assert check_all.data["warnings"] == []
    assert not [w for c in check_all.candidates for w in c.warnings]


def test_pixels_0_255_against_a_0_1_calibration_and_input_are_warned(
    check_all, digits: Digits, cal_npz: Path, cnn: Path, models_dir: Path, tmp_path: Path
) -> None:
    raw = tmp_path / "eval_0_255.npz"
    np.savez(raw, x=digits.x_eval[:64] * 255, y=digits.y_eval[:64])
    int8_io = models_dir / "recipes" / "int8-io.tflite"
    out = tmp_path / "r.json"
    args = ["check", str(cnn), "--data", str(raw), "--calibration-data", str(cal_npz)]
    result = CliRunner().invoke(app, [*args, "--candidate", str(int8_io), "--json", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    (data_warning,) = doc["data"]["warnings"]
    assert "the evaluation data spans [0, 255] but the calibration data [0, 1]" in data_warning
    (candidate,) = doc["candidates"]
    (input_warning,) = candidate["warnings"]
    # the range the candidate's own input quantization covers, read here
    (detail,) = Interpreter(model_path=str(int8_io)).get_input_details()
    scale, zero = detail["quantization"]
    low, high = (-128 - zero) * scale, (127 - zero) * scale
    assert f"quantization covers [{low:.4g}, {high:.4g}]" in input_warning
    said = " ".join(result.stdout.split())
    assert "data: input 'image': the evaluation data spans [0, 255]" in said
    assert "tflite:int8-io.tflite: input 'image': the data spans [0, 255]" in said
    clean = CliRunner().invoke(
        app, [*args[:3], str(models_dir / "eval.npz"), *args[4:], "--candidate", str(int8_io)]
    )
    assert clean.exit_code == 0 and "probably scaled" not in clean.output
