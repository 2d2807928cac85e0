"""The ``liteparity`` command: output, JSON, exit codes and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from liteparity.cli.app import app
from tests.cli.said import one_line
from tests.conftest import DEFAULT_RECIPES

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_help_and_light_modules_do_not_import_tensorflow() -> None:
    """Nor Ray: only ``--engine ray`` imports it."""
    code = (
        "import sys\n"
        "import liteparity, liteparity.runtime.litemodel, liteparity.runtime.worker\n"
        "import liteparity.runtime.engine\n"
        "import liteparity.qparams\n"
        "from typer.testing import CliRunner\n"
        "from liteparity.cli.app import app\n"
        "r = CliRunner().invoke(app, ['check', '--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "r = CliRunner().invoke(app, ['qparams', '--mean', '0', '--std', '255'])\n"
        "assert r.exit_code == 0, r.output\n"
        "heavy = ('tensorflow', 'keras', 'ray')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_check_writes_json_and_prints_the_table(
    cnn: Path, eval_npz: Path, cal_npz: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.json"
    result = invoke(
        "check",
        cnn,
        "--data",
        eval_npz,
        "--calibration-data",
        cal_npz,
        "--recipes",
        "float32,int8",
        "--json",
        out,
        "--max-drop",
        "50",
    )
    assert result.exit_code == 0, result.output
    assert "float32" in result.stdout and "int8" in result.stdout
    doc = json.loads(out.read_text())
    assert [c["name"] for c in doc["candidates"]] == ["float32", "int8"]
    assert doc["data"]["calibration"]["samples"] == 100
    assert not list(tmp_path.glob(".*.tmp"))  # written through a temporary file


def test_broken_budget_exits_1_and_names_the_candidate(cnn: Path, eval_npz: Path) -> None:
    result = invoke(
        "check", cnn, "--data", eval_npz, "--recipes", "float32", "--min-agreement", "1.01"
    )
    assert result.exit_code == 1
    assert "float32: agreement" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["check", "missing.keras", "--data", "x.npz"], "model file not found: missing.keras"),
        (["check", "{cnn}", "--data", "{eval}", "--recipes", "int4"], "unknown recipe 'int4'"),
        (["check", "{cnn}", "--data", "{bad}"], "reshape the data to (N, 8, 8, 1)"),
        (["check", "{cnn}", "--data", "{eval}", "--mean", "0"], "--mean and --std go together"),
        (["check", "{cnn}", "--data", "{eval}", "--recipes", "legacy-uint8"], "needs --mean"),
        (["qparams", "--mean", "0"], "needs both values"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    cnn: Path, eval_npz: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    import numpy as np

    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((4, 64), np.float32))
    args = [a.format(cnn=cnn, eval=eval_npz, bad=bad) for a in args]
    result = invoke(*args)
    one_line(result, message)


def test_qparams_json_has_every_view() -> None:
    result = invoke("qparams", "--mean", "128", "--std", "128", "--json", "-")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc == {
        "dtype": "uint8",
        "scale": 0.0078125,
        "zero_point": 128,
        "mean": 128.0,
        "std_dev": 128.0,
        "min": -1.0,
        "max": 0.9921875,
    }


def test_qparams_of_a_tflite_shows_the_real_input_range(check_all) -> None:
    result = invoke("qparams", check_all.candidate("legacy-uint8").path, "--json", "-")
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    (inp,) = [r for r in rows if r["tensor"].startswith("input")]
    assert inp["dtype"] == "uint8" and inp["min"] == 0.0 and inp["max"] == pytest.approx(1.0)


def test_demo_trains_once_and_checks_every_recipe(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LITEPARITY_CACHE", str(tmp_path))
    out = tmp_path / "demo.json"
    result = invoke("demo", "--json", out)
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    names = [c["name"] for c in doc["candidates"]]
    assert names == DEFAULT_RECIPES
    assert doc["reference"]["metric"]["value"] > 0.9  # a real CNN on real MNIST digits
    assert doc["data"]["evaluation_samples"] == 1000
    assert (tmp_path / "demo" / "mnist_cnn.keras").exists()


@pytest.mark.slow  # ~30 s: fix stays in CI through tests/test_fix*.py and the held-out CLI test
def test_fix_writes_the_model_and_exits_by_budget(
    cnn: Path, eval_npz: Path, cal_npz: Path, tmp_path: Path
) -> None:
    out, doc = tmp_path / "fixed.tflite", tmp_path / "fix.json"
    result = invoke(
        "fix",
        cnn,
        "--data",
        eval_npz,
        "--calibration-data",
        cal_npz,
        "--max-drop",
        "2",
        "--out",
        out,
        "--json",
        doc,
    )
    assert result.exit_code == 0, result.output
    assert out.exists() and "winner:" in result.stdout
    assert json.loads(doc.read_text())["met"] is True
    impossible = invoke(
        "fix",
        cnn,
        "--data",
        eval_npz,
        "--calibration-data",
        cal_npz,
        "--max-drop",
        "-100",
        "--out",
        out,
    )
    assert impossible.exit_code == 1 and out.exists()


def test_ctrl_c_stops_cleanly_without_partial_output(cnn: Path, digits, tmp_path: Path) -> None:
    """SIGINT while candidates run: exit 130, one line, no JSON, no worker left behind."""
    import os
    import signal
    import time

    import numpy as np

    data = tmp_path / "big.npy"
    np.save(data, np.resize(digits.x_eval, (40000, 8, 8, 1)))
    out = tmp_path / "out.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "liteparity",
            "check",
            str(cnn),
            "--data",
            str(data),
            "--recipes",
            "float32,int8",
            "--calibration-data",
            str(data),
            "--json",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # as from a terminal: a test run started in the background (`pytest &` from a
        # script) ignores SIGINT, and a child inherits that, rightly ignoring Ctrl-C too
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )

    def workers() -> list[int]:
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if f"PPid:\t{proc.pid}\n" in status and b"liteparity.runtime.worker" in cmdline:
                found.append(int(pid))
        return found

    deadline = time.time() + 120
    while not workers() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    assert proc.poll() is None, "finished before it could be interrupted"
    started = workers()
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted; no partial output was written" in stderr
    assert "Traceback" not in stderr
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))

    def alive(pid: int) -> bool:
        try:
            return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return False

    # none orphaned: each worker exits once its parent is gone (given time on a loaded machine)
    gone = time.time() + 15
    while any(alive(pid) for pid in started) and time.time() < gone:
        time.sleep(0.2)
    assert started and not any(alive(pid) for pid in started)


COMMANDS = ["check", "explain", "locate", "fix", "compare-qat", "qparams", "demo"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_examples_and_the_same_json_option(command: str) -> None:
    result = invoke(command, "--help")
    assert result.exit_code == 0, result.output
    assert "Examples:" in result.stdout
    assert "Write the result as JSON to PATH (-: stdout)." in " ".join(result.stdout.split())


def test_qparams_json_path_writes_a_file_like_every_command(tmp_path: Path) -> None:
    out = tmp_path / "q.json"
    result = invoke("qparams", "--min", "0", "--max", "1", "--json", out)
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["scale"] == pytest.approx(1 / 255) and doc["zero_point"] == 0  # uint8 over [0, 1]
    assert "0.003921" in result.stdout  # the table stays on stdout
    assert f"wrote {out}" in " ".join(result.stderr.split())


def test_json_dash_puts_the_json_alone_on_stdout(cnn: Path, eval_npz: Path, tmp_path: Path) -> None:
    out = tmp_path / "check.json"
    args = ["check", cnn, "--data", eval_npz, "--recipes", "float32", "--max-samples", "64"]
    to_file = invoke(*args, "--json", out)
    to_stdout = invoke(*args, "--json", "-")
    assert to_file.exit_code == to_stdout.exit_code == 0, to_stdout.output
    doc, saved = json.loads(to_stdout.stdout), json.loads(out.read_text())
    assert [c["name"] for c in doc["candidates"]] == ["float32"]
    assert doc["data"] == saved["data"] and doc["data"]["evaluation_samples"] == 64
    assert "float32" in to_stdout.stderr  # the table moved to stderr
