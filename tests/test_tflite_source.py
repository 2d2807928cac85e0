"""A float ``.tflite`` as a first-class source: recipes made by ai-edge-quantizer in check,
explain and locate, and AEQ's own ``aeq:<name>`` recipes next to the TF converter's for a Keras
model. Every number is compared with an independent loop written here: a plain interpreter,
one sample at a time, the metrics computed by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

import liteparity
from liteparity.errors import UsageError
from tests.conftest import Digits
from tests.shared_models import MODELS

FACE = MODELS["face_detection_short_range"]
#: What AEQ makes for a float .tflite under ``--recipes all`` (recipe_mapping's names).
APPLICABLE = ("dynamic", "float16", "int8", "int8-io", "int16x8")

pytestmark = pytest.mark.slow


def plain_outputs(content: bytes, x: np.ndarray) -> list[np.ndarray]:
    """Each output (in the model's tensor order), one sample per invocation, dequantized by
    hand where the model's input or outputs are integers."""
    it = Interpreter(model_content=content)
    it.allocate_tensors()
    (inp,) = it.get_input_details()
    outs: list[list[np.ndarray]] = [[] for _ in it.get_output_details()]
    for sample in x:
        value = sample[None]
        scale, zero = inp["quantization"]
        if inp["dtype"] != np.float32:
            value = np.clip(np.round(value / scale + zero), -128, 127).astype(inp["dtype"])
        it.set_tensor(inp["index"], value)
        it.invoke()
        for k, d in enumerate(it.get_output_details()):
            got = it.get_tensor(d["index"]).astype(np.float64)
            scale, zero = d["quantization"]
            outs[k].append((got - zero) * scale if d["dtype"] != np.float32 else got)
    return [np.concatenate(o) for o in outs]


def by_hand(reference: list[np.ndarray], candidate: list[np.ndarray]) -> dict[str, float]:
    """max|err|, RMSE and SQNR over every value of the given outputs."""
    err = np.concatenate([(c - r).ravel() for r, c in zip(reference, candidate, strict=True)])
    ref = np.concatenate([r.ravel() for r in reference])
    sqnr = 10 * np.log10(np.sum(ref**2) / np.sum(err**2)) if np.any(err) else np.inf
    return {
        "max_abs_error": float(np.max(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "sqnr_db": float(sqnr),
    }


@pytest.fixture(scope="module")
def face_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, np.ndarray]:
    folder = tmp_path_factory.mktemp("face")
    x_eval, x_cal = FACE.photos(12), FACE.photos(8, offset=12)
    np.savez(folder / "eval.npz", x=x_eval)
    np.savez(folder / "cal.npz", x=x_cal)
    return folder / "eval.npz", folder / "cal.npz", x_eval


@pytest.fixture(scope="module")
def face_all(face_data, tmp_path_factory: pytest.TempPathFactory):
    eval_npz, cal_npz, _ = face_data
    saved = tmp_path_factory.mktemp("face_models")
    result = liteparity.check(
        FACE.path, data=eval_npz, calibration_data=cal_npz, recipes=["all"], save_dir=saved
    )
    return result


def test_check_all_on_a_float_tflite_makes_every_applicable_recipe(face_all) -> None:
    assert tuple(c.name for c in face_all.candidates) == APPLICABLE
    assert all(c.error is None for c in face_all.candidates), [c.error for c in face_all]


def test_check_numbers_equal_an_independent_loop(face_all, face_data) -> None:
    _, _, x_eval = face_data
    reference = plain_outputs(FACE.path.read_bytes(), x_eval)
    names = [d["name"] for d in Interpreter(model_path=str(FACE.path)).get_output_details()]
    for candidate in face_all.candidates:
        content = Path(candidate.path).read_bytes()
        outputs = plain_outputs(content, x_eval)
        assert [o.matched for o in candidate.outputs] == [o.name for o in candidate.outputs]
        assert not candidate.warnings  # matched by name, not by position
        for result in candidate.outputs:  # every output on its own, by name
            k = names.index(result.name)
            for key, value in by_hand([reference[k]], [outputs[k]]).items():
                assert result.metrics[key] == pytest.approx(value, rel=1e-4, abs=1e-6), (
                    candidate.name,
                    result.name,
                    key,
                )
    float16 = next(c for c in face_all.candidates if c.name == "float16")
    assert float16.max_abs_error == 0  # the source's weights are float16 already


def test_quantized_candidates_are_quantized_and_smaller(face_all) -> None:
    by_name = {c.name: c for c in face_all.candidates}
    for name in ("dynamic", "int8", "int8-io"):
        assert by_name[name].size_bytes < FACE.path.stat().st_size
        regressors = next(o for o in by_name[name].outputs if o.name == "regressors")
        assert 10 < regressors.metrics["sqnr_db"] < 60  # quantized, not broken, not float
    model = Interpreter(model_path=by_name["int8-io"].path)
    assert model.get_input_details()[0]["dtype"] == np.int8


def test_recipes_that_do_not_apply_to_a_tflite_are_refused_in_one_line(face_data) -> None:
    eval_npz, _, _ = face_data
    for name in ("legacy-uint8", "qat", "uint8-io"):
        with pytest.raises(UsageError) as refused:
            liteparity.check(FACE.path, data=eval_npz, recipes=[name])
        assert "does not apply to a .tflite" in str(refused.value)
        assert "\n" not in str(refused.value)


def test_a_candidate_litert_refuses_is_one_row_error_and_the_others_run(tmp_path: Path) -> None:
    """AEQ's blockwise int4 gives hand_landmark_lite a weight block with scale 0, which
    LiteRT refuses (see tests/test_runnable.py); the dynamic recipe still arrives."""
    hand = MODELS["hand_landmark_lite"]
    np.savez(tmp_path / "eval.npz", x=hand.photos(4))
    result = liteparity.check(
        hand.path, data=tmp_path / "eval.npz", recipes=["dynamic", "aeq:dynamic_wi4b32_afp32"]
    )
    dynamic, blockwise = result.candidates
    assert dynamic.error is None and dynamic.sqnr_db is not None
    assert blockwise.error is not None and "LiteRT refuses the model" in blockwise.error
    assert "\n" not in blockwise.error


def test_explain_on_a_float_tflite_gives_findings(face_data) -> None:
    eval_npz, cal_npz, _ = face_data
    result = liteparity.explain(
        FACE.path, data=eval_npz, calibration_data=cal_npz, recipes=["int8", "float16"]
    )
    int8, float16 = result.candidates
    assert int8.findings, "an int8 face detector 16 dB from its float model has findings"
    assert not [f for f in float16.findings if f.severity.value == "error"]


def test_locate_on_a_float_tflite_matches_an_independent_probe(face_data, tmp_path) -> None:
    """The propagated error of the output tensors equals the outputs' SQNR by hand."""
    eval_npz, cal_npz, x_eval = face_data
    located = liteparity.locate(FACE.path, data=eval_npz, calibration_data=cal_npz, recipe="int8")
    assert located.layers
    by_name = {layer.tensor_name: layer for layer in located.layers}
    checked = liteparity.check(
        FACE.path,
        data=eval_npz,
        calibration_data=cal_npz,
        recipes=["int8"],
        save_dir=tmp_path,
    )
    reference = plain_outputs(FACE.path.read_bytes(), x_eval)
    candidate = plain_outputs((tmp_path / "int8.tflite").read_bytes(), x_eval)
    names = [d["name"] for d in Interpreter(model_path=str(FACE.path)).get_output_details()]
    for name, r, c in zip(names, reference, candidate, strict=True):
        assert name in by_name
        expected = by_hand([r], [c])["sqnr_db"]
        propagated = by_name[name].propagated
        assert propagated is not None
        assert propagated["sqnr_db"] == pytest.approx(expected, abs=0.05), name
    assert checked.candidates[0].error is None


def test_keras_int8_and_aeq_int8_side_by_side(
    cnn: Path, eval_npz: Path, cal_npz: Path, digits: Digits, tmp_path: Path
) -> None:
    from liteparity.report.table import check_table

    result = liteparity.check(
        cnn,
        data=eval_npz,
        calibration_data=cal_npz,
        recipes=["int8", "aeq:static_wi8_ai8"],
        save_dir=tmp_path,
    )
    tf_int8, aeq_int8 = result.candidates
    assert (tf_int8.name, aeq_int8.name) == ("int8", "aeq:static_wi8_ai8")
    assert tf_int8.error is None and aeq_int8.error is None
    import keras

    x = digits.x_eval.astype(np.float32)
    reference = [np.asarray(keras.models.load_model(cnn).predict(x, verbose=0), np.float64)]
    for c in (tf_int8, aeq_int8):
        expected = by_hand(reference, plain_outputs(Path(c.path).read_bytes(), x))
        assert c.rmse == pytest.approx(expected["rmse"], rel=1e-3)
        assert c.sqnr_db == pytest.approx(expected["sqnr_db"], abs=0.01)
    assert (tmp_path / "aeq-static_wi8_ai8.tflite").exists()
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(check_table(result))
    text = console.export_text()
    assert "int8" in text and "aeq:static_wi8_ai8" in text


def test_fix_on_a_float_tflite_searches_aeq_variants(face_data, tmp_path: Path) -> None:
    """AEQ's plain int8 is over a 1% budget: the ranked search keeps op groups in float; the
    smallest model within the budget is written, and its error on every evaluation photo, by
    hand, lies between its search and held-out drops (the two halves' Σerr²/Σref²)."""
    eval_npz, cal_npz, x_eval = face_data
    out = tmp_path / "fixed.tflite"
    result = liteparity.fix(
        FACE.path, data=eval_npz, calibration_data=cal_npz, max_drop=1.0, out=out
    )
    by_name = {t.name: t for t in result.trials}
    assert not by_name["int8"].within_budget and result.search_trials > 0
    assert {t.recipe for t in result.trials} <= {
        "int8",
        "int16x8",
        "dynamic",
        "float16",
        "float32",
    } | {
        "aeq:weight_only_wi4_afp32",
        "aeq:dynamic_wi4_afp32",
        "aeq:weight_only_wi8_afp32",
    }
    within = [t for t in result.trials if t.within_budget]
    assert result.met and result.winner.size_bytes == min(t.size_bytes for t in within)
    assert out.read_bytes() == result.content
    reference = plain_outputs(FACE.path.read_bytes(), x_eval)
    fixed = plain_outputs(out.read_bytes(), x_eval)
    err = sum(np.sum((f - r) ** 2) for r, f in zip(reference, fixed, strict=True))
    power = sum(np.sum(r**2) for r in reference)
    by_hand_drop = 100 * err / power
    low, high = sorted((result.winner.drop, result.held_out["drop"]))
    assert low - 1e-3 <= by_hand_drop <= high + 1e-3


def test_sensitivity_of_aeq_int8_by_re_quantization(face_all, face_data) -> None:
    """explain's sensitive-layer evidence for a .tflite source: AEQ's int8 re-quantized with
    one op group kept in float. With nothing kept in float the error is, by hand, the error of
    check's own int8 (calibrated on the same photos)."""
    from liteparity.data.prepare import calibration_from
    from liteparity.diagnose.explain import aeq_int8_variants
    from liteparity.layerwise.sensitivity import layer_sensitivity
    from liteparity.reference.tflite import TFLiteSource

    _, _, x_eval = face_data
    source = TFLiteSource(str(FACE.path))
    try:
        twin, make = aeq_int8_variants(source, calibration_from([[FACE.photos(8, offset=12)]]))
        references = [source.predict([x_eval])]
        ranking = layer_sensitivity(twin, [[x_eval]], references, make=make).ranking
    finally:
        source.close()
    int8 = next(c for c in face_all.candidates if c.name == "int8")
    reference = plain_outputs(FACE.path.read_bytes(), x_eval)
    quantized = plain_outputs(Path(int8.path).read_bytes(), x_eval)
    err = np.concatenate([(q - r).ravel() for r, q in zip(reference, quantized, strict=True)])
    assert ranking[0].mse_quantized == pytest.approx(float(np.mean(err**2)), rel=1e-4)
    shares = [s.share_removed for s in ranking]
    assert shares == sorted(shares, reverse=True) and 0 < shares[0] <= 1
