"""Planted faults: each finding id must be named on a real trained model with its fault, and
a clean model must not get it (no false alarms)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import liteparity
from liteparity.diagnose.explain import explain
from tests.conftest import Digits


def ids(row) -> set[str]:
    return {f.id for f in row.findings}


def finding(row, id_: str):
    return next(f for f in row.findings if f.id == id_)


@pytest.fixture(scope="session")
def explained(cnn: Path, eval_npz: Path, cal_npz: Path):
    """The clean CNN under every recipe: the no-false-alarm baseline."""
    return explain(cnn, data=eval_npz, calibration_data=cal_npz, recipes=["all"])


def load(path: Path):
    import keras

    from liteparity._tf import import_tensorflow

    import_tensorflow()
    return keras.saving.load_model(path)


def save(model, path: Path) -> Path:
    model.save(path)
    return path


def test_clean_int8_model_gets_no_warnings(explained) -> None:
    for name in ("int8", "int8-io", "uint8-io", "int16x8"):
        row = explained.candidate(name)
        assert all(f.severity.value == "info" for f in row.findings), (name, row.findings)


def test_float32_is_float_noise_against_the_measured_floor(explained) -> None:
    floor = explained.noise_floor
    assert floor["rmse"] is not None and 0 < floor["rmse"] < 1e-5
    row = explained.candidate("float32")
    assert ids(row) == {"float-noise"}
    f = finding(row, "float-noise")
    assert f.severity.value == "info"
    assert f.evidence["ratio_to_floor"] < 10
    assert f.evidence["noise_floor_rmse"] == pytest.approx(floor["rmse"])


def test_perturbed_float_model_is_a_conversion_error(
    cnn: Path, digits: Digits, tmp_path: Path, explained
) -> None:
    """Planted: a float .tflite of the same model with one bias shifted by 0.05."""
    from liteparity.convert.converter import convert
    from liteparity.convert.recipes import RECIPES
    from liteparity.reference.keras import KerasSource

    model = load(cnn)
    kernel, bias = model.get_layer("conv_b").get_weights()
    model.get_layer("conv_b").set_weights([kernel, bias + 0.05])
    bad = tmp_path / "drifted.tflite"
    bad.write_bytes(convert(KerasSource("drifted", model=model), RECIPES["float32"]))
    result = explain(cnn, candidates=[bad], data=(digits.x_eval, digits.y_eval))
    (row,) = result.candidates
    assert "conversion-error" in ids(row) and "float-noise" not in ids(row)
    f = finding(row, "conversion-error")
    assert f.evidence["ratio_to_floor"] > 100
    # Located layer by layer against Keras: conv_a is untouched, conv_b is where it starts.
    assert f.evidence["first_layer"] == "conv_b"
    assert f.evidence["layers"][0]["layer"] == "conv_a"
    assert f.evidence["layers"][0]["sqnr_db"] > 100


def test_weights_only_is_measured_from_the_model(explained) -> None:
    for name in ("dynamic", "float16"):
        row = explained.candidate(name)
        assert "weights-only" in ids(row)
        assert finding(row, "weights-only").severity.value == "info"
    assert "weights-only" not in ids(explained.candidate("int8"))
    assert "weights-only" not in ids(explained.candidate("float32"))


def test_tf1_std_dev_that_does_not_match_the_data_is_an_input_range_mismatch(
    cnn: Path, digits: Digits
) -> None:
    """Planted: quantized_input_stats (mean, std_dev) = (0, 1), i.e. inputs in [0, 255], for
    data in [0, 1] (seed 002)."""
    result = explain(
        cnn,
        data=(digits.x_eval, digits.y_eval),
        recipes=["legacy-uint8"],
        legacy=liteparity.LegacySettings(0.0, 1.0, (0.0, 6.0)),
    )
    f = finding(result.candidates[0], "input-range-mismatch")
    assert f.severity.value == "error"
    assert f.evidence["covered_range"] == [0.0, 255.0]
    assert f.evidence["used_share"] < 0.01
    assert f.evidence["suggested_mean_std_dev"] == pytest.approx([0.0, 255.0])


def test_calibration_preprocessed_differently_is_an_input_range_mismatch(
    cnn: Path, digits: Digits
) -> None:
    """Planted: calibration data in [0, 255] (raw pixels), evaluation data in [0, 1]."""
    result = explain(
        cnn,
        data=(digits.x_eval, digits.y_eval),
        calibration_data=digits.x_cal * 255.0,
        recipes=["int8-io"],
    )
    f = finding(result.candidates[0], "input-range-mismatch")
    assert f.severity.value == "error"
    assert f.evidence["covered_range"][1] > 200
    assert f.evidence["data_range"] == pytest.approx([0.0, 1.0])


def test_default_ranges_are_dummy_ranges(cnn: Path, digits: Digits, explained) -> None:
    """Planted: the seeds' legacy uint8 conversion with default_ranges_stats (0, 6)."""
    result = explain(
        cnn,
        data=(digits.x_eval, digits.y_eval),
        recipes=["legacy-uint8"],
        legacy=liteparity.LegacySettings(0.0, 255.0, (0.0, 6.0)),
    )
    row = result.candidates[0]
    f = finding(row, "dummy-ranges")
    assert f.severity.value == "error"
    assert f.evidence["assumed_range"] == pytest.approx([0.0, 6.0], abs=1e-4)
    assert len(f.evidence["tensors"]) >= 2
    assert "input-range-mismatch" not in ids(row)  # (0, 255) is right for [0, 1] data
    assert all("dummy-ranges" not in ids(c) for c in explained.candidates)


def test_calibration_on_dim_images_clips_the_input_and_leaves_the_range(
    cnn: Path, digits: Digits
) -> None:
    """Planted: calibration images at a fifth of their brightness."""
    result = explain(
        cnn,
        data=(digits.x_eval, digits.y_eval),
        calibration_data=digits.x_cal * 0.2,
        recipes=["int8"],
    )
    row = result.candidates[0]
    f = finding(row, "input-range-mismatch")
    assert f.evidence["covered_range"][1] == pytest.approx(0.2, abs=0.01)
    assert f.evidence["clipped_share"] > 0.05
    cal = finding(row, "calibration-range")
    assert cal.evidence["evaluation_range"][1] > 2 * cal.evidence["calibrated_range"][1]


def test_calibration_on_one_class_saturates(cnn: Path, digits: Digits) -> None:
    """Planted: calibration on images of the digit 1 only: the input range is complete (so
    no input finding), but other digits drive the logits past their calibrated range."""
    ones = digits.x_train[digits.y_train == 1]
    result = explain(
        cnn, data=(digits.x_eval, digits.y_eval), calibration_data=ones, recipes=["int8"]
    )
    row = result.candidates[0]
    assert "input-range-mismatch" not in ids(row)
    sat = finding(row, "saturation")
    assert sat.evidence["share"] > 0.02
    assert sat.evidence["needed_range"][1] > sat.evidence["covered_range"][1]
    assert "calibration-range" in ids(row)


def test_outlier_channel_is_named(outlier_cnn: Path, digits: Digits, explained) -> None:
    result = explain(
        outlier_cnn,
        data=(digits.x_eval, digits.y_eval),
        calibration_data=digits.x_cal,
        recipes=["float32", "int8"],
    )
    f32, int8 = result.candidates
    assert "float-noise" in ids(f32)  # the float function is unchanged
    f = finding(int8, "outlier-scale")
    assert f.evidence["channel"] == 0
    assert "conv_a" in f.evidence["tensor"]
    assert f.evidence["ratio"] > 20
    assert all("outlier-scale" not in ids(c) for c in explained.candidates)
    # The same fault, seen by re-quantizing with one layer group in float at a time.
    sens = finding(int8, "sensitive-layer")
    assert "conv_a" in sens.evidence["layer"] and sens.evidence["share_removed"] > 0.5
    assert int8.drop > 1.0 and sens.severity.value == "warning"
    assert result.timings is not None and result.timings["sensitivity"] > 0  # its own stage


def test_a_clean_model_is_spared_the_sensitivity_experiment(explained) -> None:
    """No int8 candidate of the clean CNN flips 1% of its predictions (an accuracy drop of d
    points needs d% flipped), so none can have a material loss to explain: the per-layer
    experiment does not run (its stage is absent from the timings) and no candidate gets a
    ``sensitive-layer`` finding. The outlier CNN's int8 does run it (``test_outlier_…``)."""
    for name in ("int8", "int8-io", "uint8-io"):
        row = explained.candidate(name)
        assert row.agreement is not None and 1 - row.agreement < 0.01
        assert "sensitive-layer" not in ids(row)
    assert explained.timings is not None and "sensitivity" not in explained.timings


@pytest.fixture(scope="session")
def huge_weights(digits: Digits, models_dir: Path) -> Path:
    """Planted: a trained MLP whose hidden layer is scaled ×1e6 and scaled back by a
    Rescaling layer: same float function, weights beyond float16's 65504."""
    import keras

    from liteparity._tf import import_tensorflow, quiet

    import_tensorflow()
    keras.utils.set_random_seed(4)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1), name="image"),
            keras.layers.Flatten(),
            keras.layers.Dense(32, activation="relu", name="hidden"),
            keras.layers.Rescaling(1.0, name="rescale"),
            keras.layers.Dense(10, activation="softmax", name="out"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    with quiet():
        model.fit(digits.x_train, digits.y_train, epochs=15, verbose=0)
    kernel, bias = model.get_layer("hidden").get_weights()
    model.get_layer("hidden").set_weights([kernel * 1e6, bias * 1e6])
    scaled = keras.Sequential(
        [
            keras.Input((8, 8, 1), name="image"),
            keras.layers.Flatten(),
            keras.layers.Dense(32, activation="relu", name="hidden"),
            keras.layers.Rescaling(1e-6, name="rescale"),
            keras.layers.Dense(10, activation="softmax", name="out"),
        ]
    )
    scaled.set_weights(model.get_weights())
    return save(scaled, models_dir / "huge.keras")


def test_float16_clipping_is_named(huge_weights: Path, digits: Digits, explained) -> None:
    result = explain(
        huge_weights, data=(digits.x_eval, digits.y_eval), recipes=["float32", "float16"]
    )
    f32, f16 = result.candidates
    assert "float16-overflow" not in ids(f32)
    f = finding(f16, "float16-overflow")
    assert f.severity.value == "error" and f.evidence["clipped_values"] > 0
    assert any("hidden" in t for t in f.evidence["tensors"])
    assert f16.agreement < f32.agreement
    assert all("float16-overflow" not in ids(c) for c in explained.candidates)


def test_lone_quantized_tflite_gets_the_findings_that_need_no_reference(
    cnn: Path, digits: Digits, tmp_path: Path
) -> None:
    liteparity.check(
        cnn,
        data=(digits.x_eval, digits.y_eval),
        recipes=["legacy-uint8"],
        legacy=liteparity.LegacySettings(0.0, 1.0, (0.0, 6.0)),
        save_dir=tmp_path,
    )
    result = explain(tmp_path / "legacy-uint8.tflite", data=(digits.x_eval, digits.y_eval))
    assert result.reference is None
    (row,) = result.candidates
    assert row.metric.name == "accuracy" and row.rmse is None
    assert {"dummy-ranges", "input-range-mismatch"} <= ids(row)
    assert result.noise_floor["unavailable"] == "no reference model"


def test_json_carries_findings_and_noise_floor(explained) -> None:
    import json

    doc = json.loads(explained.to_json())
    assert set(doc["noise_floor"]) >= {"rmse", "max_abs_error", "samples"}
    for c in doc["candidates"]:
        for f in c["findings"]:
            assert set(f) >= {"id", "severity", "summary", "evidence", "fix"}
            assert f["severity"] in ("info", "warning", "error")
    json.dumps(doc)  # evidence is plain JSON


def test_multi_input_model_is_explained_with_inputs_in_each_models_order(
    two_by_two: Path, digits: Digits, tmp_path: Path
) -> None:
    data = tmp_path / "multi.npz"
    np.savez(data, zeta=digits.x_eval, alpha=digits.x_eval[::-1], y=digits.y_eval)
    result = explain(two_by_two, data=data, calibration_data=data, recipes=["float32", "int8"])
    f32, int8 = result.candidates
    assert f32.error is None and int8.error is None
    assert "float-noise" in ids(f32)
    assert not [f for f in int8.findings if f.id == "calibration-range"]


def refuse_to_convert_or_run(monkeypatch) -> None:
    from liteparity.convert.process import Converter
    from liteparity.convert.produce import Producer
    from liteparity.reference import graph
    from liteparity.runtime import worker as workers

    def refuse(*args, **kwargs):
        raise AssertionError("should have come from the saved evidence")

    monkeypatch.setattr(Converter, "convert", refuse)  # check's and explain's conversions
    monkeypatch.setattr(Producer, "make", refuse)  # every recipe is made there
    monkeypatch.setattr(workers.Worker, "__init__", refuse)
    monkeypatch.setattr(graph.GraphRunner, "__init__", refuse)


def test_resume_diagnoses_again_from_the_saved_evidence(
    cnn: Path, digits: Digits, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("LITEPARITY_CACHE", str(tmp_path))
    data = tmp_path / "eval.npz"
    np.savez(data, x=digits.x_eval[:200], y=digits.y_eval[:200])
    recipes = ["float32", "dynamic", "int8"]
    options = dict(data=data, calibration_data=digits.x_cal, recipes=recipes)
    # check keeps results but no evidence: explain measures again rather than finding nothing.
    liteparity.check(cnn, resume=True, **options)
    first = explain(cnn, resume=True, **options)
    assert ids(first.candidate("float32")) == {"float-noise"}
    assert ids(first.candidate("dynamic")) == {"weights-only"}

    refuse_to_convert_or_run(monkeypatch)
    again = explain(cnn, resume=True, **options)
    assert [c.to_dict() for c in again.candidates] == [c.to_dict() for c in first.candidates]
    assert again.noise_floor == first.noise_floor
    assert again.noise_floor["samples"] == 200


def test_resume_of_a_lone_tflite_runs_nothing(
    cnn: Path, digits: Digits, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("LITEPARITY_CACHE", str(tmp_path / "cache"))
    liteparity.check(
        cnn,
        data=(digits.x_eval, digits.y_eval),
        recipes=["legacy-uint8"],
        legacy=liteparity.LegacySettings(0.0, 1.0, (0.0, 6.0)),
        save_dir=tmp_path,
    )
    lone = tmp_path / "legacy-uint8.tflite"
    first = explain(lone, data=(digits.x_eval, digits.y_eval), resume=True)
    assert {"dummy-ranges", "input-range-mismatch"} <= ids(first.candidates[0])
    # Loading a .tflite source starts its own worker: refuse the evaluation instead.
    from liteparity.measure import check as check_module

    def refuse(*args, **kwargs):
        raise AssertionError("should have come from the saved evidence")

    monkeypatch.setattr(check_module, "_evaluate", refuse)
    again = explain(lone, data=(digits.x_eval, digits.y_eval), resume=True)
    untimed = {"timings": None}  # how long each run took is the one thing that differs
    assert {**again.to_dict(), **untimed} == {**first.to_dict(), **untimed}
    assert again.noise_floor["unavailable"] == "no reference model"
