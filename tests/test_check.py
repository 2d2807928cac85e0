"""``check`` on real trained models, against independent plain-interpreter loops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import liteparity
from liteparity.measure.metrics import classes
from tests.conftest import DEFAULT_RECIPES, Digits, oracle_outputs


def test_all_expands_to_every_recipe_without_training(check_all) -> None:
    assert [c.name for c in check_all.candidates] == DEFAULT_RECIPES
    assert all(c.error is None for c in check_all.candidates), [
        c.error for c in check_all.candidates
    ]


@pytest.mark.parametrize("recipe", DEFAULT_RECIPES)
def test_accuracy_equals_an_independent_interpreter_loop(
    check_all, digits: Digits, recipe: str
) -> None:
    row = check_all.candidate(recipe)
    outputs = oracle_outputs(row.path, digits.x_eval)
    oracle = float(np.mean(classes(outputs) == digits.y_eval))
    # Batched float kernels may round differently from batch-1 ones: allow one sample.
    assert row.metric.value == pytest.approx(oracle, abs=1.0 / len(digits.y_eval))


def test_reference_accuracy_is_keras_own(check_all, cnn: Path, digits: Digits) -> None:
    import keras

    model = keras.saving.load_model(cnn)
    expected = float(np.mean(model.predict(digits.x_eval, verbose=0).argmax(1) == digits.y_eval))
    assert check_all.reference.metric.value == pytest.approx(expected)


def test_float32_is_within_float_noise_and_int8_keeps_accuracy(check_all) -> None:
    f32 = check_all.candidate("float32")
    assert f32.max_abs_error < 1e-4  # seed 000: differences after the 4th decimal are normal
    assert f32.agreement == 1.0
    assert f32.sqnr_db > 100
    int8 = check_all.candidate("int8")
    assert int8.drop < 3.0
    assert 20 < int8.sqnr_db < f32.sqnr_db
    # Smaller weights, smaller files (this model is tiny: the flatbuffer overhead dominates).
    assert int8.size_bytes < check_all.candidate("float16").size_bytes < f32.size_bytes


def test_metric_delta_and_drop_are_consistent(check_all) -> None:
    ref = check_all.reference.metric.value
    for c in check_all.candidates:
        assert c.metric_delta == pytest.approx(c.metric.value - ref)
        assert c.drop == pytest.approx(-100 * c.metric_delta)


def test_json_has_the_documented_shape(check_all) -> None:
    import json

    doc = json.loads(check_all.to_json())
    assert set(doc) >= {"reference", "data", "candidates"}
    assert set(doc["reference"]) >= {"path", "format", "metric"}
    keys = {
        "name",
        "recipe",
        "path",
        "size_bytes",
        "latency_ms",
        "metric",
        "metric_delta",
        "agreement",
        "max_abs_error",
        "rmse",
        "sqnr_db",
        "cosine",
        "non_finite_share",
        "special",
        "findings",
        "error",
    }
    for c in doc["candidates"]:
        assert keys <= set(c)
        assert set(c["metric"]) == {"name", "value", "special"}
        assert c["non_finite_share"] == 0.0 and not c["special"]  # all finite here
        assert c["latency_ms"] > 0
    rows = check_all.rows()
    assert rows[0]["name"] == "float32" and rows[0]["metric_name"] == "accuracy"


def test_rich_and_html_renderings_show_every_candidate(check_all) -> None:
    from rich.console import Console

    from liteparity.report.html import render as render_html
    from liteparity.report.terminal import render

    console = Console(record=True, width=200)
    console.print(render(check_all))
    text = console.export_text()
    html = render_html(check_all, "liteparity check")
    for name in DEFAULT_RECIPES:
        assert name in text and name in html


def test_budgets_name_the_candidates_that_break_them(check_all) -> None:
    assert check_all.violations(max_drop=100.0, min_agreement=0.0) == []
    worst = max(check_all.candidates, key=lambda c: c.drop)
    lines = check_all.violations(max_drop=worst.drop - 0.01)
    assert any(line.startswith(worst.name + ":") for line in lines)
    assert check_all.violations(min_agreement=1.01)  # nobody agrees more than always


def test_frozen_graph_every_recipe(
    frozen_graph: Path, digits: Digits, tmp_path: Path, check_all
) -> None:
    output = (frozen_graph.parent / "cnn.pb.outputs").read_text()
    result = liteparity.check(
        frozen_graph,
        data=(digits.x_eval, digits.y_eval),
        calibration_data=digits.x_cal,
        inputs=["image"],
        outputs=[output],
        recipes=["all", "legacy-uint8"],
        legacy=liteparity.LegacySettings(0.0, 255.0, (0.0, 6.0)),
        save_dir=tmp_path,
    )
    assert result.reference.format == "frozen_graph"
    assert result.reference.metric.value == pytest.approx(check_all.reference.metric.value)
    for row in result.candidates:
        assert row.error is None, row.error
        oracle = oracle_outputs(row.path, digits.x_eval)
        accuracy = float(np.mean(classes(oracle) == digits.y_eval))
        assert row.metric.value == pytest.approx(accuracy, abs=1.0 / len(digits.y_eval))
    legacy = result.candidate("legacy-uint8")
    from ai_edge_litert.interpreter import Interpreter

    inp = Interpreter(model_path=legacy.path).get_input_details()[0]
    assert inp["dtype"] == np.uint8
    assert inp["quantization"] == pytest.approx((1 / 255, 0))  # (mean, std) = (0, 255)


def test_tflite_pair_with_int8_io_matches_the_seed_formulas(check_all, digits: Digits) -> None:
    float_path = check_all.candidate("float32").path
    int8_path = check_all.candidate("int8-io").path
    result = liteparity.check(
        float_path, candidates=[int8_path], data=(digits.x_eval, digits.y_eval)
    )
    assert result.reference.format == "tflite"
    (row,) = result.candidates
    assert row.name == "tflite:int8-io.tflite"
    expected = float(np.mean(classes(oracle_outputs(int8_path, digits.x_eval)) == digits.y_eval))
    assert row.metric.value == pytest.approx(expected, abs=1.0 / len(digits.y_eval))
    ref = float(np.mean(classes(oracle_outputs(float_path, digits.x_eval)) == digits.y_eval))
    assert result.reference.metric.value == pytest.approx(ref, abs=1.0 / len(digits.y_eval))


def test_without_labels_the_metric_is_mse_against_the_reference(
    check_all, cnn: Path, digits: Digits
) -> None:
    result = liteparity.check(
        cnn, data=digits.x_eval[:200], recipes=["float32", "int8"], calibration_samples=50
    )
    assert result.reference.metric.name == "mse_vs_reference"
    assert result.reference.metric.value == 0.0
    f32, int8 = result.candidates
    assert f32.metric.value < 1e-10
    assert int8.metric.value == pytest.approx(int8.rmse**2, rel=1e-6)  # one output: same thing
    assert int8.drop > f32.drop


def test_a_crashing_interpreter_is_that_candidates_error(
    check_all, digits: Digits, monkeypatch
) -> None:
    """Kill one worker with SIGSEGV mid-run: its row says so, the other rows still arrive."""
    import os
    import signal

    from liteparity.runtime import worker as workers

    real_feed = workers.Worker.feed

    def feed(self, batch):
        if self.name == "tflite:int8.tflite":
            os.kill(self._process.pid, signal.SIGSEGV)
            self._process.wait()
        return real_feed(self, batch)

    monkeypatch.setattr(workers.Worker, "feed", feed)
    result = liteparity.check(
        check_all.candidate("float32").path,
        candidates=[check_all.candidate("int8").path, check_all.candidate("float16").path],
        data=(digits.x_eval, digits.y_eval),
    )
    crashed, fine = result.candidates
    assert crashed.error.startswith("interpreter crashed (signal 11, SIGSEGV)")
    assert fine.error is None and fine.metric.value > 0.8


def test_resume_reuses_conversions_and_results(
    cnn: Path, digits: Digits, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("LITEPARITY_CACHE", str(tmp_path))
    data = tmp_path / "eval.npz"
    np.savez(data, x=digits.x_eval[:200], y=digits.y_eval[:200])
    first = liteparity.check(
        cnn, data=data, calibration_data=digits.x_cal, recipes=["float32", "int8"], resume=True
    )

    from liteparity.convert.process import Converter
    from liteparity.convert.produce import Producer
    from liteparity.runtime import worker as workers

    def refuse(*args, **kwargs):
        raise AssertionError("should have come from the cache")

    monkeypatch.setattr(Converter, "convert", refuse)
    monkeypatch.setattr(Producer, "make", refuse)  # every recipe is made there
    monkeypatch.setattr(workers.Worker, "__init__", refuse)
    again = liteparity.check(
        cnn, data=data, calibration_data=digits.x_cal, recipes=["float32", "int8"], resume=True
    )
    assert [c.to_dict() for c in again.candidates] == [
        {**c.to_dict(), "findings": []} for c in first.candidates
    ]
    assert again.reference == first.reference


def test_cosine_of_a_silent_candidate_is_zero() -> None:
    from liteparity.measure.metrics import ErrorAccumulator

    acc = ErrorAccumulator(classify=False)
    acc.update([np.ones((4, 3))], [np.zeros((4, 3))])
    assert acc.metrics()["cosine"] == 0.0
    both = ErrorAccumulator(classify=False)
    both.update([np.zeros((4, 3))], [np.zeros((4, 3))])
    assert both.metrics()["cosine"] == 1.0


def test_timings_name_the_stages_and_add_up_to_at_most_the_wall_time(check_all) -> None:
    import json

    timings = json.loads(check_all.to_json())["timings"]
    assert {"load", "data", "convert", "calibrate", "reference", "candidates"} <= set(timings)
    stages = sum(v for k, v in timings.items() if k != "total")
    assert all(v >= 0 for v in timings.values())
    assert timings["convert"] > 0 and timings["calibrate"] > 0  # int8 and int16x8 calibrate
    # exclusive stages: never more than the wall time, and they cover most of it
    assert 0.5 * timings["total"] <= stages <= timings["total"] + 0.01


def test_a_slow_candidate_capped_is_measured_on_its_first_rows_with_an_interval(
    cnn: Path, digits: Digits, tmp_path: Path, monkeypatch
) -> None:
    """With every candidate counted as slow, each is measured on its first 70 rows (a cap
    inside the first batch), against the reference on those rows: its accuracy, the
    reference's and the delta equal independent loops over those rows, the interval is
    Wilson's, the JSON and the table say it, and --resume does not keep it."""
    import json

    from scipy import stats

    from liteparity.measure import evaluate
    from liteparity.report.terminal import render

    monkeypatch.setattr(evaluate, "SLOW_FACTOR", 1.0)  # every candidate ≥ 1× the fastest
    monkeypatch.setenv("LITEPARITY_CACHE", str(tmp_path / "cache"))
    x, y = digits.x_eval[:300], digits.y_eval[:300]
    data = tmp_path / "eval.npz"
    np.savez(data, x=x, y=y)
    result = liteparity.check(
        cnn,
        data=data,
        calibration_data=digits.x_cal,
        recipes=["float32", "int8"],
        max_samples_slow=70,
        save_dir=tmp_path,
        resume=True,
    )
    reference = np.mean(classes(liteparity_keras(cnn, x[:70])) == y[:70])
    for c in result.candidates:
        assert c.samples == 70
        ours = oracle_outputs(tmp_path / f"{c.name}.tflite", x[:70])
        correct = int(np.sum(classes(ours) == y[:70]))
        assert c.metric.value == pytest.approx(correct / 70)
        assert c.metric_delta == pytest.approx(correct / 70 - reference)
        ci = stats.binomtest(correct, 70).proportion_ci(0.95, method="wilson")
        assert c.metric.interval == pytest.approx((ci.low, ci.high), rel=1e-5)
    doc = json.loads(result.to_json())
    assert [c["samples"] for c in doc["candidates"]] == [70, 70]
    assert all(len(c["metric"]["interval"]) == 2 for c in doc["candidates"])
    assert result.reference.metric.value == pytest.approx(
        np.mean(classes(liteparity_keras(cnn, x)) == y)
    )  # the reference row stays every row's
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(render(result))
    text = console.export_text()
    assert "int8*" in text and "first 70 of 300 samples" in text
    again = liteparity.check(
        cnn, data=data, calibration_data=digits.x_cal, recipes=["int8"], resume=True
    )
    assert again.candidates[0].samples is None  # measured again, on every row


def liteparity_keras(path: Path, x: np.ndarray) -> np.ndarray:
    import keras

    return keras.saving.load_model(path).predict(x, verbose=0)
