"""Rows that were not measured: a short status in the table, the reason under it, and a
``status`` field in the JSON (hand-made results, no models)."""

from __future__ import annotations

import io

from rich.console import Console

from liteparity.report.table import check_table
from liteparity.results.check import CandidateResult, CheckResult, Metric

LONG = "recipe int16x8 does not apply: Quantization to 16x8-bit not yet supported for op: " + (
    "'HARD_SWISH'."
)
CRASH = "converter crashed (signal 11, SIGSEGV) while calibrating int8"


def _result() -> CheckResult:
    return CheckResult(
        None,
        {"evaluation_samples": 10},
        (
            CandidateResult("float32", "float32", metric=Metric("accuracy", 0.9), drop=0.0),
            CandidateResult("int16x8", "int16x8", not_applicable=LONG),
            CandidateResult("int8", "int8", error=CRASH),
        ),
    )


def test_reasons_go_under_the_table_and_rows_say_their_status() -> None:
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(check_table(_result()))
    lines = out.getvalue().splitlines()
    row = {
        name: next(ln for ln in lines if ln.startswith(f"│ {name}")) for name in ("int16x8", "int8")
    }
    assert "not applicable (see below)" in row["int16x8"] and "HARD_SWISH" not in row["int16x8"]
    assert "error (see below)" in row["int8"] and "SIGSEGV" not in row["int8"]
    assert lines[-2:] == [f"int16x8: not applicable: {LONG}", f"int8: error: {CRASH}"]


def test_json_status_and_budget() -> None:
    rows = {c["name"]: c for c in _result().to_dict()["candidates"]}
    assert [rows[n]["status"] for n in ("float32", "int16x8", "int8")] == [
        "measured",
        "not-applicable",
        "error",
    ]
    assert rows["int16x8"]["error"] is None and rows["int16x8"]["not_applicable"] == LONG
    back = CandidateResult.from_dict(rows["int16x8"])
    assert back.status == "not-applicable" and back.not_applicable == LONG
    assert _result().violations(max_drop=-1.0) == [
        "float32: drop 0.00 accuracy points > --max-drop -1.0"
    ]
