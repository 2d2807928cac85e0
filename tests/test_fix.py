"""``fix`` on a model whose int8 conversion is broken by one bad layer (an outlier channel)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import liteparity
from liteparity.measure.metrics import classes
from liteparity.repair.fix import fix
from liteparity.results.fix import Budget
from tests.conftest import Digits, oracle_outputs


@pytest.fixture(scope="session")
def fixed(outlier_cnn: Path, digits: Digits, models_dir: Path):
    return fix(
        outlier_cnn,
        data=(digits.x_eval, digits.y_eval),
        calibration_data=digits.x_cal,
        max_drop=1.0,
        integer_only=True,
        out=models_dir / "fixed.tflite",
    )


def test_plain_int8_breaks_the_budget_and_the_search_keeps_only_the_bad_group_float(
    fixed,
) -> None:
    plain = fixed.trials[0]
    assert plain.name == "int8" and not plain.within_budget and plain.drop > 1.0
    assert "int8-per-tensor" in {t.name for t in fixed.trials}
    selective = [t for t in fixed.trials if t.recipe == "int8" and t.keep_float]
    assert selective and fixed.search_trials == len(selective)
    smallest = min((t for t in selective if t.within_budget), key=lambda t: len(t.keep_float))
    assert smallest.keep_float == ("conv_a",)  # pruning dropped every group but the bad one
    # Bisection and pruning, not one trial per subset: at most full + log2 + prune steps.
    assert fixed.search_trials <= 1 + 2 + 3
    assert fixed.met and fixed.winner.recipe in ("int8", "int16x8")  # integer compute


def test_the_written_model_meets_the_budget_in_an_independent_loop(
    fixed, outlier_cnn: Path, digits: Digits
) -> None:
    import keras

    reference = keras.saving.load_model(outlier_cnn).predict(digits.x_eval, verbose=0)
    ref_accuracy = np.mean(reference.argmax(1) == digits.y_eval)
    outputs = oracle_outputs(fixed.out, digits.x_eval)
    accuracy = np.mean(classes(outputs) == digits.y_eval)
    assert 100 * (ref_accuracy - accuracy) <= 1.0 + 0.5  # budget, plus split noise
    anatomy = liteparity.LiteModel(Path(fixed.out).read_bytes()).anatomy()
    assert any(t.quantized for t in anatomy.activations())  # still integer compute
    assert fixed.held_out["samples"] + fixed.search_samples == len(digits.x_eval)


def test_explain_before_and_after_names_the_fault_and_its_cure(fixed) -> None:
    before = {f.id for f in fixed.before}
    after = {f.id: f.severity.value for f in fixed.after}
    assert "outlier-scale" in before  # plain int8: the planted fault, named
    assert "outlier-scale" not in after or fixed.winner.recipe == "int16x8"


def test_pareto_front_and_json(fixed) -> None:
    import json

    doc = json.loads(fixed.to_json())
    assert doc["winner"]["name"] == fixed.winner.name
    assert any(t["pareto"] for t in doc["trials"])
    assert doc["held_out"]["samples"] > 0


def test_nothing_meets_an_impossible_budget_but_the_best_is_still_written(
    outlier_cnn: Path, digits: Digits, tmp_path: Path
) -> None:
    result = fix(
        outlier_cnn,
        data=(digits.x_eval, digits.y_eval),
        calibration_data=digits.x_cal,
        max_drop=None,
        min_agreement=1.01,
        integer_only=True,
        out=tmp_path / "best.tflite",
    )
    assert not result.met
    assert (tmp_path / "best.tflite").exists()


def test_a_budget_is_required() -> None:
    with pytest.raises(liteparity.UsageError):
        Budget(None, None)


def test_fix_report_renders(fixed) -> None:
    from liteparity.report.html import render

    html = render(fixed, "liteparity fix")
    assert fixed.winner.name in html and "<svg" in html


@pytest.mark.slow  # QAT training in a tf_keras child (~40 s); compare-qat keeps QAT in CI
def test_quantization_aware_route_on_a_keras2_model(digits: Digits, keras2_h5) -> None:
    """tfmot fine-tuning in a tf_keras child process; the result joins the same table."""
    path, _ = keras2_h5
    x = digits.x_eval.reshape(len(digits.x_eval), -1)
    result = fix(path, data=(x, digits.y_eval), max_drop=5.0, qat_epochs=1)
    qat = next(t for t in result.trials if t.recipe == "qat")
    assert "qat" not in result.skipped
    assert qat.metric > 0.8 and qat.drop < 5.0


def test_quantization_aware_route_refuses_keras3(cnn: Path, digits: Digits) -> None:
    with pytest.raises(liteparity.UsageError, match="Keras 2"):
        fix(cnn, data=(digits.x_eval, digits.y_eval), qat_epochs=1)


@pytest.mark.slow  # ~45 s (trains QAT): the CI run stays under 25 minutes
def test_compare_qat_gives_both_distributions(digits: Digits, keras2_h5, models_dir: Path) -> None:
    """Seed 003's comparison on a real tf_keras model, through the CLI."""
    import json

    from typer.testing import CliRunner

    from liteparity.cli.app import app

    path, _ = keras2_h5
    data = models_dir / "compare.npz"
    np.savez(data, x=digits.x_eval.reshape(len(digits.x_eval), -1), y=digits.y_eval)
    out = models_dir / "compare.json"
    result = CliRunner().invoke(
        app,
        [
            "compare-qat",
            str(path),
            "--data",
            str(data),
            "--resamples",
            "12",
            "--resample-size",
            "50",
            "--json",
            str(out),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert set(doc["accuracies"]) == {"reference", "qat", "copied"}
    for values in doc["accuracies"].values():
        assert len(values) == 12 and all(0.0 <= v <= 1.0 for v in values)
    assert doc["summary"]["qat"]["mean"] > 0.7 and doc["summary"]["copied"]["mean"] > 0.7
    assert doc["train_samples"] + doc["eval_samples"] == len(digits.x_eval)
    assert doc["resample_size"] == 50


@pytest.mark.slow  # QAT training in a tf_keras child (~40 s); compare-qat keeps QAT in CI
def test_check_recipe_qat_fine_tunes_on_the_labelled_calibration_rows(
    digits: Digits, keras2_h5
) -> None:
    path, _ = keras2_h5
    x = digits.x_eval.reshape(len(digits.x_eval), -1)
    result = liteparity.check(path, data=(x, digits.y_eval), recipes=["qat", "int8"], qat_epochs=1)
    qat, _ = result.candidates
    assert qat.error is None, qat.error
    assert qat.metric.value > 0.8 and qat.agreement > 0.9
    assert result.data["calibration"]["samples"] == 200  # trained on the split, not evaluated


@pytest.mark.slow  # two fix runs (~100 s on 2 cores)
def test_the_budget_reads_each_output_on_its_own_labels(
    two_by_two: Path, digits: Digits, tmp_path: Path
) -> None:
    """Two heads, each with its labels (``y`` for the first, ``y:output_1`` float targets for
    the second): the winner's held-out drop is the worse of the two heads' own drops, computed
    here on a plain interpreter loop; budgeting one head reads that head alone."""
    import keras

    from liteparity.repair.fix import _split

    x, y = digits.x_eval[:300], digits.y_eval[:300]
    targets = np.eye(10, dtype=np.float32)[y] * 0.9 + 0.01  # smoothed: not one-hot class ids
    data = {"zeta": x, "alpha": x[::-1], "y": y, "y:output_1": targets}
    cal = {"zeta": digits.x_cal, "alpha": digits.x_cal[::-1]}
    _, held = _split(np.arange(len(x)), 0)
    reference = keras.saving.load_model(two_by_two).predict([x[held], x[::-1][held]], verbose=0)

    def drops(path: Path) -> dict[str, float]:
        from ai_edge_litert.interpreter import Interpreter

        runner = Interpreter(model_path=str(path)).get_signature_runner()
        ins, outs_ = runner.get_input_details(), runner.get_output_details()

        def real(name: str, value: np.ndarray) -> np.ndarray:  # dequantized by hand
            scale, zero_point = outs_[name]["quantization"]
            value = value.astype(np.float64)
            return (value - zero_point) * scale if scale else value

        def fed(name: str, value: np.ndarray) -> np.ndarray:  # quantized by hand
            scale, zero_point = ins[name]["quantization"]
            dtype = ins[name]["dtype"]
            if scale:
                info = np.iinfo(dtype)
                value = np.clip(np.round(value / scale) + zero_point, info.min, info.max)
            return value.astype(dtype)

        outs: dict[str, list[np.ndarray]] = {"output_0": [], "output_1": []}
        for i in held:
            sample = {"zeta": x[i : i + 1], "alpha": x[::-1][i : i + 1]}
            answer = runner(**{k: fed(k, v) for k, v in sample.items()})
            for name, value in answer.items():
                outs[name].append(real(name, value))
        cand = {k: np.concatenate(v) for k, v in outs.items()}
        accuracy = [np.mean(out.argmax(1) == y[held]) for out in (reference[0], cand["output_0"])]
        mse = [np.mean((out - targets[held]) ** 2) for out in (reference[1], cand["output_1"])]
        return {
            "output_0": 100 * (accuracy[0] - accuracy[1]),
            "output_1": 100 * (mse[1] - mse[0]) / mse[0],
        }

    for budgeted in (None, ("output_0",)):
        out = tmp_path / f"fixed-{budgeted}.tflite"
        result = fix(
            two_by_two,
            data=data,
            calibration_data=cal,
            max_drop=1.0,
            integer_only=True,
            out=out,
            budget_outputs=budgeted,
        )
        own = drops(out)
        expected = max(own[n] for n in budgeted or own)
        assert result.held_out["drop"] == pytest.approx(expected, rel=1e-4, abs=1e-6), budgeted
        assert result.to_dict()["budget"]["outputs"] == (list(budgeted) if budgeted else None)
