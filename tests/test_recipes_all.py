"""``--recipes all`` on a model that cannot take every recipe: int16x8 has no HARD_SWISH
kernel, so with ``all`` it is reported as not applicable, and the run does not fail; named
explicitly, it is a failure (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import liteparity
from liteparity.cli.app import app
from tests.cli.said import said
from tests.conftest import Digits


def _ops(path: Path) -> set[str]:
    """The op names of a .tflite, read by a plain interpreter (not by liteparity)."""
    from ai_edge_litert.interpreter import Interpreter

    return {op["op_name"] for op in Interpreter(model_path=str(path))._get_ops_details()}


@pytest.fixture(scope="module")
def checked(hard_swish: Path, eval_npz: Path, cal_npz: Path, tmp_path_factory) -> tuple:
    out = tmp_path_factory.mktemp("all")
    result = CliRunner().invoke(
        app,
        [
            *("check", str(hard_swish), "--data", str(eval_npz), "--calibration-data"),
            *(str(cal_npz), "--recipes", "all", "--json", str(out / "check.json")),
            *("--save-models", str(out / "models")),
        ],
        catch_exceptions=False,
    )
    return result, json.loads((out / "check.json").read_text()), out / "models"


def test_a_recipe_the_model_cannot_take_is_not_applicable_and_the_run_passes(checked) -> None:
    result, doc, models = checked
    assert result.exit_code == 0, result.output
    assert "HARD_SWISH" in _ops(models / "float32.tflite")  # the planted op is really there
    rows = {c["name"]: c for c in doc["candidates"]}
    int16x8 = rows.pop("int16x8")
    assert int16x8["status"] == "not-applicable" and int16x8["error"] is None
    assert "'HARD_SWISH'" in int16x8["not_applicable"]
    assert all(r["status"] == "measured" and r["error"] is None for r in rows.values())
    assert {"int8", "float32"} <= set(rows)


def test_the_reason_is_under_the_table_not_in_a_cell(checked) -> None:
    result, doc, _ = checked
    reason = next(c for c in doc["candidates"] if c["name"] == "int16x8")["not_applicable"]
    row = next(ln for ln in result.stdout.splitlines() if ln.startswith("│ int16x8"))
    assert "not applicable (see below)" in row and "HARD_SWISH" not in row
    assert f"int16x8: not applicable: {reason}" in " ".join(result.stdout.split())


def test_named_explicitly_it_fails_with_one_line_and_exit_2(
    hard_swish: Path, eval_npz: Path, cal_npz: Path, tmp_path: Path
) -> None:
    out = tmp_path / "check.json"
    result = CliRunner().invoke(
        app,
        [
            *("check", str(hard_swish), "--data", str(eval_npz), "--calibration-data"),
            *(str(cal_npz), "--recipes", "int16x8,float32", "--json", str(out)),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 2, result.output
    lines = [ln for ln in said(result.stderr) if not ln.startswith("wrote ")]
    assert lines == ["liteparity: 1 candidate(s) could not be measured: int16x8"]
    rows = {c["name"]: c for c in json.loads(out.read_text())["candidates"]}
    assert rows["int16x8"]["status"] == "error" and "HARD_SWISH" in rows["int16x8"]["error"]
    assert rows["float32"]["status"] == "measured"  # the other candidate's numbers are kept


def test_the_api_reports_the_same(hard_swish: Path, digits: Digits) -> None:
    result = liteparity.check(
        hard_swish, data=(digits.x_eval[:40], digits.y_eval[:40]), recipes=["all"]
    )
    statuses = {c.name: c.status for c in result.candidates}
    assert statuses.pop("int16x8") == "not-applicable"
    assert set(statuses.values()) == {"measured"}
    assert result.violations(max_drop=-1.0)  # measured rows still face the budget
    assert not any(line.startswith("int16x8") for line in result.violations(max_drop=-1.0))
