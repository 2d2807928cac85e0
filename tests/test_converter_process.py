"""Conversion in a converter process: a converter crash costs one recipe, not the run."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from liteparity.convert.process import Converter
from liteparity.convert.recipes import RECIPES
from liteparity.data.prepare import calibration_from
from liteparity.errors import ConversionError
from liteparity.reference.loader import load
from liteparity.specs import ModelSpec
from tests.conftest import Digits, oracle_outputs


def test_a_real_converter_segfault_is_one_error_row_and_the_json_survives(
    lstm: tuple[Path, Path], tmp_path: Path
) -> None:
    from liteparity.cli.app import app

    model, data = lstm
    out = tmp_path / "check.json"
    saved = tmp_path / "models"
    result = CliRunner().invoke(
        app,
        [
            *("check", str(model), "--data", str(data), "--calibration-data", str(data)),
            *("--recipes", "int8,float32", "--json", str(out), "--save-models", str(saved)),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 2, result.output  # a recipe named explicitly failed
    rows = {c["name"]: c for c in json.loads(out.read_text())["candidates"]}
    assert rows["int8"]["error"].startswith(
        "converter crashed (signal 11, SIGSEGV) while calibrating int8"
    )
    # The recipe after the crash was converted by a fresh process, and measured right: its
    # agreement is what a plain one-sample loop over the saved model gives.
    float32 = rows["float32"]
    assert float32["error"] is None
    import keras

    tokens = np.load(data)["x"]
    rows_evaluated = json.loads(out.read_text())["data"]["evaluation_samples"]
    assert rows_evaluated == len(tokens)
    reference = keras.saving.load_model(model).predict(tokens, batch_size=1, verbose=0)
    candidate = oracle_outputs(saved / "float32.tflite", tokens)
    agreement = np.mean(reference.argmax(1) == candidate.argmax(1))
    assert float32["agreement"] == pytest.approx(agreement)
    assert "Traceback" not in result.output


def _converter_children() -> list[int]:
    """Pids of this process's converter children (read from /proc, not from the product)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == os.getpid() and b"liteparity.convert.process" in cmdline:
            pids.append(int(entry.name))
    return pids


@pytest.mark.slow  # ~24 s: crashes stay in CI through the real segfault test
def test_a_planted_converter_crash_mid_calibration_is_named_and_the_process_restarts(
    cnn: Path, digits: Digits
) -> None:
    # 20,000 calibration samples: seconds of work, so a kill half a second in lands mid-way
    many = np.concatenate([digits.x_cal] * 200)
    with Converter(ModelSpec(cnn)) as converter:
        source = load(cnn)
        warm = converter.convert(source, RECIPES["float32"])  # TF imported, model loaded
        [first] = _converter_children()

        def kill_when_busy() -> None:
            threading.Event().wait(0.5)
            os.kill(first, signal.SIGSEGV)

        killer = threading.Thread(target=kill_when_busy)
        killer.start()
        with pytest.raises(ConversionError) as caught:
            converter.convert(source, RECIPES["int8"], calibration_from([[many]]))
        killer.join()
        assert str(caught.value).startswith(
            "converter crashed (signal 11, SIGSEGV) while calibrating int8"
        )
        again = converter.convert(source, RECIPES["float32"])
        assert _converter_children() != [first]
        source.close()
    assert again == warm  # the restarted process converts exactly as the first did
    path = cnn.parent / "restarted.tflite"
    path.write_bytes(again)
    import keras

    expected = keras.saving.load_model(cnn).predict(digits.x_eval[:20], verbose=0)
    np.testing.assert_allclose(oracle_outputs(path, digits.x_eval[:20]), expected, atol=1e-5)
