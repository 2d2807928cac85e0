"""The HTML report (escaped, self-contained, rendered by a real browser) and the Model
Explorer overlay (checked against Model Explorer's own node-data schema)."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from liteparity.report.html import render, write_report
from liteparity.report.model_explorer import node_data, write_node_data
from liteparity.results.check import Finding, Severity
from tests.conftest import Digits


@pytest.fixture(scope="session")
def explained_small(cnn: Path, digits: Digits):
    from liteparity.diagnose.explain import explain

    return explain(
        cnn,
        data=(digits.x_eval, digits.y_eval),
        calibration_data=digits.x_cal,
        recipes=["float32", "int8", "legacy-uint8"],
        legacy=__import__("liteparity").LegacySettings(0.0, 255.0, (0.0, 6.0)),
    )


@pytest.fixture(scope="session")
def located_small(cnn: Path, digits: Digits):
    from liteparity.layerwise.locate import locate

    return locate(
        cnn, data=(digits.x_eval, digits.y_eval), calibration_data=digits.x_cal, max_samples=200
    )


def test_names_from_the_model_are_escaped(explained_small) -> None:
    evil = "<script>alert(1)</script>"
    row = explained_small.candidates[0]
    finding = Finding(
        "saturation",
        Severity.WARNING,
        "saturated tensors",
        f"tensor {evil}",
        {"tensor": evil, "covered_range": [0, 1], "needed_range": [0, 2]},
        evil,
    )
    bad = dataclasses.replace(row, name=evil, findings=(finding,))
    result = dataclasses.replace(explained_small, candidates=(bad,))
    html = render(result, f"liteparity explain {evil}")
    assert "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_report_is_self_contained_with_plots(explained_small, tmp_path: Path) -> None:
    path = write_report(tmp_path / "report.html", explained_small, "liteparity explain")
    html = path.read_text()
    assert html.count("<svg") >= 3  # Pareto view, error histograms, metric over batches
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)  # no requests
    assert "url(http" not in html and "@import" not in html
    assert "dummy-ranges" in html and "noise floor" in html
    assert "tensorflow" in html  # library versions in the provenance


def test_locate_report_renders(located_small) -> None:
    html = render(located_small, "liteparity locate")
    assert "conv_a" in html and "<svg" in html


def test_model_explorer_overlay_matches_its_schema(located_small, tmp_path: Path) -> None:
    dacite = pytest.importorskip("dacite")
    builder = pytest.importorskip("model_explorer.node_data_builder")
    paths = write_node_data(tmp_path / "overlay.json", located_small)
    assert paths[0] == tmp_path / "overlay.json" and len(paths) >= 3
    for path in paths:
        doc = json.loads(path.read_text())
        graph = dacite.from_dict(
            builder.GraphNodeData, doc["main"], config=dacite.Config(strict=True)
        )
        assert graph.results and graph.gradient[0].stop == 0 and graph.gradient[-1].stop == 1
        tensor_names = {r.tensor_name for r in located_small.layers}
        assert set(graph.results) <= tensor_names  # keyed by TFLite output tensor name
    # Worse is redder for every metric: low SQNR is red, high MSE is red.
    sqnr = node_data(located_small, "local_sqnr_db")["main"]["gradient"]
    mse = node_data(located_small, "local_mean_squared_error")["main"]["gradient"]
    assert sqnr[0]["bgColor"] == mse[-1]["bgColor"] != sqnr[-1]["bgColor"]


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (.ci/run installs it)")
def test_report_renders_in_a_real_browser(explained_small, tmp_path: Path) -> None:
    from PIL import Image

    path = write_report(tmp_path / "report.html", explained_small, "liteparity explain")
    flags = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--hide-scrollbars",
    ]
    shot = tmp_path / "shot.png"
    subprocess.run(
        [*flags, "--window-size=1200,2400", f"--screenshot={shot}", path.as_uri()],
        check=True,
        capture_output=True,
        timeout=120,
    )
    dom = subprocess.run(
        [*flags, "--dump-dom", path.as_uri()],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert "Verdict" in dom and "legacy-uint8" in dom
    sizes = re.findall(r'<svg[^>]*\swidth="([\d.]+)pt"[^>]*\sheight="([\d.]+)pt"', dom)
    assert len(sizes) >= 3 and all(float(w) > 0 and float(h) > 0 for w, h in sizes)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape == (2400, 1200)
    assert np.mean(pixels < 200) > 0.02  # text and plots drawn, not a blank page
