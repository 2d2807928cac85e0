"""``fix`` never passes a winner that breaks the budget on held-out data.

Planted case: the held-out rows are shifted above the calibrated input range [0, 1]
(x + 1.5), where int8 and int16x8 clip every input value to 1 and float models do not; the
labels are the reference's own predictions, so a drop is the share of predictions a
candidate changes. The budget lies between int8's drops on the two splits, both computed
here with the test's own int8 conversion and a plain interpreter loop: int8 meets it on the
search split and breaks it on held-out data.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from liteparity.repair.fix import fix
from tests.cli.said import said
from tests.conftest import Digits, oracle_outputs


@pytest.fixture(scope="module")
def planted(cnn: Path, digits: Digits, tmp_path_factory: pytest.TempPathFactory) -> dict:
    import keras

    from liteparity._tf import import_tensorflow, quiet

    tf = import_tensorflow()
    n = len(digits.x_eval)
    # fix's documented split: a permutation seeded with seed + 1 (seed 0), first half searched
    cut = np.random.default_rng(1).permutation(n)
    search, held = np.sort(cut[: n // 2]), np.sort(cut[n // 2 :])
    x = digits.x_eval.copy()
    x[held] += 1.5
    model = keras.saving.load_model(cnn)
    y = model.predict(x, verbose=0).argmax(1)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.representative_dataset = lambda: ([digits.x_cal[i : i + 1]] for i in range(100))
    folder = tmp_path_factory.mktemp("held_out")
    with quiet():
        (folder / "int8.tflite").write_bytes(converter.convert())
    int8 = oracle_outputs(folder / "int8.tflite", x).argmax(1)
    drops = [100 * np.mean(int8[rows] != y[rows]) for rows in (search, held)]
    assert drops[1] - drops[0] > 20, drops  # the planted gap is real
    np.savez(folder / "planted.npz", x=x, y=y)
    return {
        "x": x,
        "y": y,
        "held": held,
        "search": search,
        "budget": float(np.mean(drops)),
        "folder": folder,
    }


def test_a_winner_that_breaks_the_budget_on_held_out_data_is_replaced(
    planted: dict, cnn: Path, digits: Digits
) -> None:
    budget, held = planted["budget"], planted["held"]
    out = planted["folder"] / "fixed.tflite"
    result = fix(
        cnn,
        data=(planted["x"], planted["y"]),
        calibration_data=digits.x_cal,
        max_drop=budget,
        out=out,
    )
    assert result.search_samples == len(planted["search"])
    within = [t for t in result.trials if t.within_budget]
    naive = min(within, key=lambda t: (t.size_bytes, t.drop))  # the search split's choice
    assert naive.recipe in ("int8", "int8-per-tensor", "int16x8")  # integer inputs: clipped
    assert result.held_out_broken[naive.name]["drop"] > budget
    assert all(d["drop"] > budget for d in result.held_out_broken.values())
    assert result.met and result.winner.name not in result.held_out_broken
    # The written model holds the budget on the held-out rows, by a plain one-sample loop.
    predicted = oracle_outputs(out, planted["x"][held]).argmax(1)
    drop = 100 * np.mean(predicted != planted["y"][held])
    assert drop <= budget
    assert result.held_out["drop"] == pytest.approx(drop)
    assert json.loads(result.to_json())["held_out_broken"].keys() == result.held_out_broken.keys()


def test_when_no_model_holds_on_held_out_data_fix_exits_1_and_says_so(
    planted: dict, cnn: Path, cal_npz: Path
) -> None:
    from liteparity.cli.app import app

    folder = planted["folder"]
    result = CliRunner().invoke(
        app,
        [
            *("fix", str(cnn), "--data", str(folder / "planted.npz"), "--calibration-data"),
            *(str(cal_npz), "--max-drop", str(planted["budget"]), "--integer-only"),
            *("--json", str(folder / "fix.json"), "--out", str(folder / "best.tflite")),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 1, result.output
    first, *broken = [ln for ln in said(result.stderr) if not ln.startswith("wrote ")]
    assert first.startswith("budget: no model holds the budget on held-out data")
    # then what the written model breaks on the held-out rows, a line each
    assert broken and all(ln.startswith("budget: ") and "held-out" not in ln for ln in broken)
    doc = json.loads((folder / "fix.json").read_text())
    assert not doc["met"] and not doc["held_out_met"]
    integer = [t["name"] for t in doc["trials"] if t["within_budget"]]
    assert integer and set(doc["held_out_broken"]) == set(integer)
    assert (folder / "best.tflite").exists()
