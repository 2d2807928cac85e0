"""Hostile input through the command line, table-driven: each case exits 2 with one line and
no traceback, leaves no file behind (no temporary file, no shared-memory batch) and never
runs code from a model file; SIGTERM cleans up like Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from liteparity.cli.app import app
from tests import hostile_files as hf
from tests.cli.said import one_line
from tests.conftest import Digits

runner = CliRunner()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory, digits: Digits) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("hostile")
    marker = d / "MARKER"
    evil = hf.evil_h5(d / "evil.h5", marker)
    hf.relabel_layer(evil, d / "custom.h5", "Lambda", "MyLayer")
    hf.config_bomb(d / "bomb.keras", 80 << 20)
    liar = hf.config_bomb(d / "liar.keras", 1 << 20)
    hf.lie_about_size(liar, "config.json", 2 << 30)
    np.savez_compressed(d / "liar.npz", x=digits.x_eval[:50], y=digits.y_eval[:50])
    hf.lie_about_size(d / "liar.npz", "x.npy", (4 << 30) - 1)
    hf.lying_npy(d / "liar.npy", 10**11)
    hf.pickled_npz(d / "pickled.npz")
    hf.image_folder(d / "text_png", bad="3.png")
    (d / "a_directory.json").mkdir()
    np.savez(d / "good.npz", x=digits.x_eval[:50], y=digits.y_eval[:50])
    hf.zero_rows_saved_model(d / "zero_rows")
    return {"dir": d, "marker": marker}


GOOD = ["{cnn}", "--data", "{dir}/good.npz", "--recipes", "float32"]
CASES = [
    ("h5 Lambda, check", ["check", "{dir}/evil.h5", "--data", "{dir}/good.npz"], "Lambda layer"),
    ("h5 Lambda, locate", ["locate", "{dir}/evil.h5", "--data", "{dir}/good.npz"], "Lambda layer"),
    ("h5 Lambda, fix", ["fix", "{dir}/evil.h5", "--data", "{dir}/good.npz"], "Lambda layer"),
    (
        "h5 Lambda, explain",
        ["explain", "{dir}/evil.h5", "--data", "{dir}/good.npz"],
        "pass --unsafe",
    ),
    (
        "h5 custom layer",
        ["check", "{dir}/custom.h5", "--data", "{dir}/good.npz"],
        "custom layer 'MyLayer'",
    ),
    (
        ".keras config bomb",
        ["check", "{dir}/bomb.keras", "--data", "{dir}/good.npz"],
        "config.json is 83886080 bytes",
    ),
    (
        ".keras lying header",
        ["check", "{dir}/liar.keras", "--data", "{dir}/good.npz"],
        "more than compression can",
    ),
    (
        ".npz lying header",
        ["check", "{cnn}", "--data", "{dir}/liar.npz", "--max-samples", "10"],
        "more than compression can",
    ),
    (
        ".npy claiming 1e11 rows",
        ["check", "{cnn}", "--data", "{dir}/liar.npy"],
        "shorter than its header says",
    ),
    ("pickled .npz", ["check", "{cnn}", "--data", "{dir}/pickled.npz"], "need pickle: refused"),
    (
        "text file named .png",
        ["check", "{cnn}", "--data", "{dir}/text_png", "--recipes", "float32"],
        "3.png: not a readable image",
    ),
    (
        "--json is a directory",
        ["check", *GOOD, "--json", "{dir}/a_directory.json"],
        "a_directory.json: is a directory",
    ),
    (
        "--json under a file",
        ["check", *GOOD, "--json", "{dir}/good.npz/out.json"],
        "cannot write",
    ),
    ("--seed -1", ["check", *GOOD, "--seed", "-1"], "--seed must be at least 0, got -1"),
    (
        "--save-models under a file",
        ["check", *GOOD, "--save-models", "{dir}/good.npz/models"],
        "cannot write {dir}/good.npz/models/float32.tflite: Not a directory",
    ),
    (
        "a reference that returns zero rows",
        ["check", "{dir}/zero_rows", "--data", "{dir}/good.npz", "--recipes", "float32"],
        "the reference returned 0 rows for 50 samples (output 'scores')",
    ),
]


@pytest.fixture
def shm(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The shared-memory files this process creates (other runs on the machine make theirs)."""
    from liteparity.runtime.shared import SharedSlots

    made: list[str] = []
    init = SharedSlots.__init__

    def recording(self: SharedSlots, count: int = 2) -> None:
        init(self, count)
        made.extend(f.name for f in self._files)

    monkeypatch.setattr(SharedSlots, "__init__", recording)
    return made


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


#: Cases over ~30 s (a conversion before the data fails): run with the slow tests.
SLOW = {"text file named .png"}


@pytest.mark.parametrize(
    ("case", "args", "message"),
    [pytest.param(*c, id=c[0], marks=[pytest.mark.slow] if c[0] in SLOW else []) for c in CASES],
)
def test_hostile_input_is_one_line_exit_2_nothing_left_no_code_run(
    hostile: dict[str, Path],
    cnn: Path,
    shm: list[str],
    case: str,
    args: list[str],
    message: str,
) -> None:
    values = {"dir": hostile["dir"], "cnn": cnn}
    argv = [a.format(**values) for a in args]
    before = _files(hostile["dir"])
    result = runner.invoke(app, argv, catch_exceptions=False)
    one_line(result, message.format(**values))
    assert _files(hostile["dir"]) == before  # no temporary or partial file
    assert not [p for p in shm if os.path.exists(p)]
    assert not hostile["marker"].exists()


def test_the_table_and_json_survive_an_unwritable_report_and_saved_model(
    hostile: dict[str, Path], cnn: Path, tmp_path: Path
) -> None:
    values = {"dir": hostile["dir"], "cnn": cnn}
    out = tmp_path / "r.json"
    argv = [a.format(**values) for a in ["check", *GOOD]]
    argv += ["--json", str(out), "--report", str(hostile["dir"] / "a_directory.json")]
    argv += ["--save-models", str(hostile["dir"] / "good.npz" / "models")]
    result = runner.invoke(app, argv, catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert "float32" in result.stdout  # the table
    assert out.exists() and '"float32"' in out.read_text()  # the JSON
    line = result.stderr.strip().splitlines()[-1]  # after "wrote r.json"
    assert "a_directory.json: is a directory" in line
    assert "good.npz/models/float32.tflite: Not a directory" in line  # each write said
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
    assert json.loads(out.read_text())["candidates"][0]["not_saved"].endswith("Not a directory")


def test_sigterm_cleans_up_like_ctrl_c(digits: Digits, cnn: Path, tmp_path: Path) -> None:
    """A run killed by SIGTERM while its workers hold shared-memory batches exits 143 and
    removes them (and writes no partial output)."""
    rng = np.random.default_rng(0)
    rows = rng.integers(0, len(digits.x_eval), 40_000)
    np.savez(tmp_path / "big.npz", x=digits.x_eval[rows], y=digits.y_eval[rows])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    argv = [sys.executable, "-m", "liteparity", "check", str(cnn), "--data"]
    argv += [str(tmp_path / "big.npz"), "--json", str(tmp_path / "out.json")]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    held: set[str] = set()
    deadline = time.monotonic() + 240
    while not held and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            links = [
                os.readlink(f"/proc/{proc.pid}/fd/{fd}")
                for fd in os.listdir(f"/proc/{proc.pid}/fd")
            ]
        except OSError:
            continue
        held = {p for p in links if p.startswith("/dev/shm/liteparity-")}
    if not held:
        proc.kill()
        pytest.fail("the run ended before it held shared memory: make the data larger")
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert b"Traceback" not in stderr
    assert not [p for p in held if os.path.exists(p)]
    assert not (tmp_path / "out.json").exists()


def test_the_terminal_shows_liteparity_output_only(cnn: Path, eval_npz: Path) -> None:
    """TensorFlow's absl start-up lines (oneDNN, CUDA, cuInit) reach fd 2 before
    ``InitializeLog``: a fresh process must not show them. Without a terminal (here: pipes,
    as in CI logs) standard error gets liteparity's progress lines, one per stage, and
    ``--profile`` its one timing line."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    env.pop("LITEPARITY_DEBUG", None)  # the log switch of a developer's own shell
    argv = [sys.executable, "-m", "liteparity", "check", str(cnn), "--data", str(eval_npz)]
    proc = subprocess.run(
        [*argv, "--recipes", "float32", "--max-samples", "50", "--profile"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    *lines, profile = proc.stderr.splitlines()
    assert all(line.startswith("liteparity [") for line in lines), proc.stderr
    assert profile.startswith("time: load ") and " · convert " in profile, profile
    assert profile.split(" · ")[-1].startswith("total ")
    stages = [line.split("] ", 1)[1] for line in lines]
    assert stages[0].startswith("converting float32") and "converted 1/1" in stages
    assert any(s.startswith("evaluating") for s in stages)
    assert "float32" in proc.stdout
