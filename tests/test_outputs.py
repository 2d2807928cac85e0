"""Every output matched by name and measured by what it means, on the real MediaPipe models
and real photos, against independent one-sample-at-a-time loops written here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import liteparity
from liteparity.convert.aeq import quantize_tflite
from liteparity.convert.flatbuffer import ints, op_name, read_model, tensor_name, write_model
from liteparity.convert.tflite_prep import prepare_tflite
from tests.conftest import Digits, oracle_all_outputs, oracle_outputs
from tests.shared_models import MODELS

HAND, FACE, SELFIE = (
    MODELS["hand_landmark_lite"],
    MODELS["face_detection_short_range"],
    MODELS["selfie_segmentation"],
)


# -- planted candidates (flatbuffer edits) ---------------------------------------------------
def reordered(content: bytes) -> bytes:
    """The same signature-less model listing its outputs in reverse order."""
    model = read_model(content)
    graph = model.subgraphs[0]
    graph.outputs = list(reversed(ints(graph.outputs)))
    return write_model(model)


def renamed(content: bytes) -> bytes:
    """The same model with every output tensor renamed (names cannot match any more)."""
    model = read_model(content)
    graph = model.subgraphs[0]
    for k, index in enumerate(ints(graph.outputs)):
        graph.tensors[index].name = f"renamed_{k}".encode()
    return write_model(model)


def capped(content: bytes, output: str) -> bytes:
    """Plant: the int8 codes behind ``output`` (the input of its DEQUANTIZE) get the top code
    as zero point, through the range-sharing RESHAPE/CONCATENATION ops that feed it: the
    output can no longer exceed 0, whatever the data."""
    model = read_model(content)
    graph = model.subgraphs[0]
    producer = {o: op for op in graph.operators for o in ints(op.outputs)}

    def cap(index: int) -> None:
        graph.tensors[index].quantization.zeroPoint = [127]
        op = producer.get(index)
        if op is not None and op_name(model, op) in ("RESHAPE", "CONCATENATION"):
            for i in ints(op.inputs):
                if i in producer:  # activations only (a reshape's shape is a constant)
                    cap(i)

    for index in ints(graph.outputs):
        op = producer[index]
        source = ints(op.inputs)[0]
        if op_name(model, op) == "DEQUANTIZE" and tensor_name(graph.tensors[source]) == output:
            cap(source)
    return write_model(model)


def signature_loop(content: bytes, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every output of a signed model by signature key, one sample at a time."""
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_content=content).get_signature_runner()
    key = next(iter(runner.get_input_details()))
    outs: dict[str, list[np.ndarray]] = {}
    for i in range(len(x)):
        for name, value in runner(**{key: x[i : i + 1]}).items():
            outs.setdefault(name, []).append(value.copy())
    return {name: np.concatenate(v) for name, v in outs.items()}


@pytest.fixture(scope="module")
def quantized(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """AEQ int8 of the hand and face models, calibrated on photos not evaluated on."""
    out = tmp_path_factory.mktemp("int8")
    paths = {}
    for model in (HAND, FACE):
        content = quantize_tflite(model.path.read_bytes(), "int8", [[model.photos(16, 40)]])
        paths[model.file] = out / model.file
        paths[model.file].write_bytes(content)
    return paths


def by_name(result: liteparity.CheckResult, candidate: int = 0) -> dict:
    return {o.name: o for o in result.candidates[candidate].outputs}


# -- outputs matched by name -----------------------------------------------------------------
@pytest.mark.parametrize("model", [HAND, FACE, SELFIE], ids=lambda m: m.file)
def test_a_real_model_compared_with_itself_is_exact(model, tmp_path: Path) -> None:
    """Its signed copy lists outputs in name order, the original in tensor order (the face
    detector: classificators before regressors): matched by name, every error is 0."""
    signed = tmp_path / "signed.tflite"
    signed.write_bytes(prepare_tflite(model.path.read_bytes()).content)
    result = liteparity.check(model.path, data=model.photos(4), candidates=[model.path, signed])
    for c in result.candidates:
        assert c.error is None and not c.warnings
        assert [o.name for o in c.outputs] == result.reference.outputs
        for o in c.outputs:
            assert o.matched == o.name
            assert o.metrics["max_abs_error"] == 0.0 and o.metrics["sqnr_db"] == np.inf


def test_reordered_same_shaped_outputs_do_not_swap(tmp_path: Path) -> None:
    x = HAND.photos(4)
    reversed_ = tmp_path / "reversed.tflite"
    reversed_.write_bytes(reordered(HAND.path.read_bytes()))
    oracle = oracle_all_outputs(reversed_, x)
    assert next(iter(oracle)) == "Identity_3"  # the file lists its outputs in another order
    # Identity and Identity_3 are both [63]: matched by position they would swap, and the
    # error would be their difference.
    assert np.abs(oracle["Identity"] - oracle["Identity_3"]).max() > 1
    result = liteparity.check(HAND.path, data=x, candidates=[reversed_])
    outputs = by_name(result)
    reference = oracle_all_outputs(HAND.path, x)
    for name, o in outputs.items():
        assert o.matched == name
        assert o.metrics["max_abs_error"] == np.abs(oracle[name] - reference[name]).max() == 0


def test_outputs_whose_names_cannot_match_fall_back_to_position_with_a_warning(
    tmp_path: Path,
) -> None:
    other = tmp_path / "renamed.tflite"
    other.write_bytes(renamed(HAND.path.read_bytes()))
    result = liteparity.check(HAND.path, data=HAND.photos(2), candidates=[other])
    (c,) = result.candidates
    assert len(c.warnings) == 1 and "matched by position" in c.warnings[0]
    assert [(o.name, o.matched) for o in c.outputs] == [
        (f"Identity{s}", f"renamed_{k}") for k, s in enumerate(("", "_1", "_2", "_3"))
    ]
    assert c.max_abs_error == 0.0
    assert json.loads(result.to_json())["candidates"][0]["warnings"] == list(c.warnings)


def test_keras_outputs_get_the_names_the_converter_gives(tmp_path: Path) -> None:
    """A dict of outputs is named by its keys (in the converted model too, where they are
    sorted); a list by ``output_0, output_1``."""
    import keras

    from liteparity._tf import import_tensorflow

    import_tensorflow()
    keras.utils.set_random_seed(0)
    x_in = keras.Input((6,), name="features")
    zeta = keras.layers.Dense(3, name="zeta")(x_in)
    alpha = keras.layers.Dense(3, name="alpha")(x_in)
    path = tmp_path / "dict.keras"
    model = keras.Model(x_in, {"zz": zeta, "aa": alpha})
    model.save(path)
    x = np.random.default_rng(0).normal(size=(16, 6)).astype(np.float32)
    result = liteparity.check(path, data=x, recipes=["float32"], save_dir=tmp_path)
    assert result.reference.outputs == ["zz", "aa"]
    converted = signature_loop((tmp_path / "float32.tflite").read_bytes(), x)
    assert list(converted) == ["aa", "zz"]  # another order than the model's
    expected = model.predict_on_batch(x)
    for o in result.candidates[0].outputs:
        assert o.matched == o.name
        error = np.abs(converted[o.name] - expected[o.name]).max()
        assert o.metrics["max_abs_error"] == pytest.approx(error, abs=1e-7) and error < 1e-5


# -- the hand landmark model: every output on its own, a budget on presence -----------------
def test_hand_presence_and_world_landmarks_each_have_their_numbers(
    quantized, tmp_path: Path
) -> None:
    x = HAND.photos(12)
    int8 = quantized[HAND.file]
    broken = tmp_path / "presence_capped.tflite"
    broken.write_bytes(capped(int8.read_bytes(), "Identity_1"))
    result = liteparity.check(
        HAND.path, data=x, candidates=[int8, broken], output_metrics=["Identity=landmarks:dims=3"]
    )
    reference = oracle_all_outputs(HAND.path, x)
    candidate = signature_loop(int8.read_bytes(), x)
    outputs = by_name(result)
    assert [o.kind for o in outputs.values()] == ["landmarks", "flag", "flag", "regression"]
    world, presence = outputs["Identity_3"], outputs["Identity_1"]
    diff = candidate["Identity_3"].astype(np.float64) - reference["Identity_3"]
    assert world.metrics["max_abs_error"] == pytest.approx(np.abs(diff).max(), rel=1e-6)
    assert world.metrics["mae"] == pytest.approx(np.abs(diff).mean(), rel=1e-6)
    sqnr = 10 * np.log10(np.sum(reference["Identity_3"].astype(np.float64) ** 2) / np.sum(diff**2))
    assert world.sqnr_db == pytest.approx(sqnr, rel=1e-6)
    ref_on, cand_on = reference["Identity_1"] > 0.5, candidate["Identity_1"] > 0.5
    assert presence.metrics["reference_positives"] == int(ref_on.sum())
    assert presence.metrics["candidate_positives"] == int(cand_on.sum())
    assert presence.agreement == float(np.mean(ref_on == cand_on))
    points = np.linalg.norm(
        (candidate["Identity"].astype(np.float64) - reference["Identity"]).reshape(12, 21, 3),
        axis=2,
    )
    landmarks = outputs["Identity"].metrics
    assert landmarks["point_distance_mean"] == pytest.approx(points.mean(), rel=1e-6)
    assert landmarks["point_distance_p95"] == pytest.approx(np.percentile(points, 95), rel=1e-6)
    # The headline is the worst output, not the first one.
    worst = min(outputs.values(), key=lambda o: o.sqnr_db)
    assert result.candidates[0].sqnr_db == worst.sqnr_db
    row = json.loads(result.to_json())["candidates"][0]
    assert [o["name"] for o in row["outputs"]] == [
        "Identity",
        "Identity_1",
        "Identity_2",
        "Identity_3",
    ]
    # Presence can no longer be decided by the planted candidate: a budget on it fails,
    # naming the output; the clean int8 keeps its presence decisions.
    lost = {f.evidence["output"]: f for f in result.candidates[1].findings}
    assert lost["Identity_1"].id == "decision-lost"
    assert lost["Identity_1"].evidence["range"][1] <= 0.0
    assert not [
        f for f in result.candidates[0].findings if f.evidence.get("output") == "Identity_1"
    ]
    lines = result.violations(min_agreement=0.9, budget_outputs=["Identity_1"])
    assert lines == [
        f"{result.candidates[1].name}: output Identity_1 lost its decisions (decision-lost)"
    ]


# -- labels per output (y:<name>) and budgets per output --------------------------------------
def test_each_output_is_scored_against_its_own_labels_and_budgeted_on_its_own(
    quantized, tmp_path: Path
) -> None:
    """``y:Identity_1`` (presence class ids) and ``y:Identity_3`` (world-landmark targets)
    label those outputs; the landmarks have none (MSE against the reference). Each output's
    metric and drop equal numpy on an independent loop, and ``--max-drop`` names exactly the
    outputs whose own drop exceeds it."""
    x = HAND.photos(12)
    int8 = quantized[HAND.file]
    reference = oracle_all_outputs(HAND.path, x)
    candidate = signature_loop(int8.read_bytes(), x)
    presence = (reference["Identity_1"][:, 0] > 0.5).astype(np.int64)
    presence[:3] = 1 - presence[:3]  # labels the reference gets wrong on 3 samples
    world = reference["Identity_3"] + np.float32(0.01)
    data = tmp_path / "labelled.npz"
    np.savez(data, x=x, **{"y:Identity_1": presence, "y:Identity_3": world})
    result = liteparity.check(HAND.path, data=data, candidates=[int8])
    outputs = by_name(result)

    def accuracy(out: np.ndarray) -> float:
        return float(np.mean((out[:, 0] > 0.5) == presence))

    def mse(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.mean((a.astype(np.float64) - b) ** 2))

    ref_mse, cand_mse = mse(reference["Identity_3"], world), mse(candidate["Identity_3"], world)
    def vs_reference(name: str) -> float:  # the MSE as a percent of the reference's power
        power = float(np.mean(reference[name].astype(np.float64) ** 2))
        return 100 * mse(candidate[name], reference[name]) / power

    expected = {
        "Identity": ("mse_vs_reference", vs_reference("Identity")),
        "Identity_2": ("mse_vs_reference", vs_reference("Identity_2")),
        "Identity_1": (
            "accuracy",
            100 * (accuracy(reference["Identity_1"]) - accuracy(candidate["Identity_1"])),
        ),
        "Identity_3": ("mse", 100 * (cand_mse - ref_mse) / ref_mse),
    }
    for name, (metric, drop) in expected.items():
        assert outputs[name].metrics["task_metric"] == metric, name
        assert outputs[name].metrics["drop"] == pytest.approx(drop, rel=1e-5, abs=1e-9), name
    assert (
        outputs["Identity_1"].metrics["reference_task_value"]
        == accuracy(reference["Identity_1"])
        == 0.75
    )
    assert outputs["Identity_3"].metrics["task_value"] == pytest.approx(cand_mse, rel=1e-5)
    assert result.reference.metric.name == "mse_vs_reference"  # the first output: no labels
    # --max-drop reads each output's own drop and names the output that breaks it
    drops = {o.name: o.metrics["drop"] for o in outputs.values()}
    limit = float(np.median(list(drops.values())))
    broken = {n for n, d in drops.items() if d > limit}
    lines = result.violations(max_drop=limit)
    assert broken and len(lines) == len(broken)
    assert {line.split(" ")[2] for line in lines} == broken  # "<candidate>: output <name> ..."
    worst = max(drops, key=drops.get)
    others = [n for n in drops if n != worst]
    assert result.violations(max_drop=limit, budget_outputs=others) == [
        line for line in lines if f"output {worst} " not in line
    ]


def test_labels_naming_no_output_are_refused_in_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from liteparity.cli.app import app

    data = tmp_path / "mislabelled.npz"
    np.savez(data, x=HAND.photos(2), **{"y:Identity_9": np.zeros(2, np.int64)})
    with pytest.raises(liteparity.DataError, match=r"labels y:Identity_9 name no output"):
        liteparity.check(HAND.path, data=data, candidates=[HAND.path])
    said = CliRunner().invoke(app, ["check", str(HAND.path), "--data", str(data)])
    assert said.exit_code == 2
    assert "y:Identity_9 name no output" in said.output and "Traceback" not in said.output


def test_resume_keys_results_by_the_metrics_chosen_and_the_labels(
    tmp_path: Path, monkeypatch
) -> None:
    """A changed ``--metric`` or changed ``y:`` labels are measured again; the same run is
    served from the cache (nothing evaluated); a user's metric function is never served
    stale (its code is in no key)."""
    from liteparity.measure import check

    monkeypatch.setenv("LITEPARITY_CACHE", str(tmp_path / "cache"))
    x = HAND.photos(2)
    data = tmp_path / "hand.npz"
    np.savez(data, x=x, **{"y:Identity_1": np.array([1, 0])})

    def run(data: Path = data, **keywords) -> liteparity.CheckResult:
        return liteparity.check(
            HAND.path, data=data, candidates=[HAND.path], resume=True, **keywords
        )

    landmarks = run(output_metrics=["Identity=landmarks:dims=3"])
    assert by_name(landmarks)["Identity"].kind == "landmarks"
    plain = run()
    assert by_name(plain)["Identity"].kind == "regression"  # not the cached landmarks
    relabelled = tmp_path / "relabelled.npz"
    np.savez(relabelled, x=x, **{"y:Identity_1": np.array([0, 0])})
    accuracy = by_name(run(relabelled))["Identity_1"].metrics["task_value"]
    assert accuracy != by_name(plain)["Identity_1"].metrics["task_value"]

    def refuse(*args, **kwargs):
        raise AssertionError("should have come from the cache")

    with monkeypatch.context() as patched:
        patched.setattr(check, "_evaluate", refuse)
        again = run(output_metrics=["Identity=landmarks:dims=3"])
        assert [c.to_dict() for c in again.candidates] == [
            c.to_dict() for c in landmarks.candidates
        ]
    calls: list[int] = []

    def gap(reference, candidate, labels):
        calls.append(1)
        return {"gap": 0.0}

    run(metric=gap)
    run(metric=gap)
    assert len(calls) == 2  # measured both times


# -- the face detector: detection metrics, the decision-lost finding ------------------------
def detection_loop(reference: dict, candidate: dict) -> dict[str, float]:
    """Positives (score logit > 0) of both models, precision/recall of the candidate's
    against the reference's, and the IoU of the box at the reference's top anchor."""
    r = reference["classificators"][..., 0] > 0
    c = candidate["classificators"][..., 0] > 0
    ious = []
    for i in range(len(r)):
        if not r[i].any():
            continue
        top = int(np.argmax(reference["classificators"][i, :, 0]))
        a, b = reference["regressors"][i, top, :4], candidate["regressors"][i, top, :4]
        a_box = (a[0] - a[2] / 2, a[1] - a[3] / 2, a[0] + a[2] / 2, a[1] + a[3] / 2)
        b_box = (b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2)
        w = max(0.0, min(a_box[2], b_box[2]) - max(a_box[0], b_box[0]))
        h = max(0.0, min(a_box[3], b_box[3]) - max(a_box[1], b_box[1]))
        union = a[2] * a[3] + b[2] * b[3] - w * h
        ious.append(w * h / union)
    both = int(np.sum(r & c))
    return {
        "reference_positives": int(r.sum()),
        "candidate_positives": int(c.sum()),
        "precision": both / c.sum() if c.sum() else None,
        "recall": both / r.sum(),
        "top_box_iou": float(np.mean(ious)),
    }


def test_face_detection_metrics_equal_an_independent_loop(quantized, tmp_path: Path) -> None:
    x = FACE.photos(16)
    int8 = quantized[FACE.file]
    broken = tmp_path / "scores_capped.tflite"
    broken.write_bytes(capped(int8.read_bytes(), "classificators"))
    signed = tmp_path / "signed.tflite"
    signed.write_bytes(prepare_tflite(FACE.path.read_bytes()).content)
    result = liteparity.check(
        FACE.path,
        data=x,
        candidates=[int8, broken, signed],
        output_metrics=["classificators=scores:boxes=regressors"],
    )
    reference = oracle_all_outputs(FACE.path, x)
    assert reference["classificators"].max() > 0  # real photos with faces: positives exist
    for k, path in enumerate((int8, broken)):
        expected = detection_loop(reference, signature_loop(path.read_bytes(), x))
        scores = by_name(result, k)["classificators"].metrics
        for key, value in expected.items():
            assert scores[key] == pytest.approx(value, rel=1e-5), (path.name, key)
    int8_row, broken_row, clean_row = result.candidates
    lost = [f for f in broken_row.findings if f.id == "decision-lost"]
    assert len(lost) == 1 and lost[0].evidence["output"] == "classificators"
    assert lost[0].evidence["range"][1] <= 0 and lost[0].evidence["threshold"] == 0
    assert "cannot reach the threshold" in lost[0].summary
    assert broken_row.outputs[1].metrics["candidate_positives"] == 0
    assert not clean_row.findings
    # the planted fault hides in the error metrics: SQNR within 0.1 dB of the clean int8
    assert abs(broken_row.sqnr_db - int8_row.sqnr_db) < 0.1


# -- segmentation, classifiers, user metrics -------------------------------------------------
def test_selfie_segmentation_iou_equals_hand_computed(tmp_path: Path) -> None:
    x = SELFIE.photos(6)
    int8 = tmp_path / "selfie_int8.tflite"
    int8.write_bytes(quantize_tflite(SELFIE.path.read_bytes(), "int8", [[SELFIE.photos(4, 40)]]))
    result = liteparity.check(SELFIE.path, data=x, candidates=[int8])
    (mask,) = result.candidates[0].outputs
    assert mask.kind == "mask"
    reference = oracle_all_outputs(SELFIE.path, x)["activation_10"] > 0.5
    candidate = next(iter(signature_loop(int8.read_bytes(), x).values())) > 0.5
    ious = []
    for r, c in zip(reference, candidate, strict=True):
        union = np.sum(r | c)
        ious.append(np.sum(r & c) / union if union else 1.0)
    assert mask.metrics["iou_mean"] == pytest.approx(np.mean(ious))
    assert mask.metrics["iou_worst"] == pytest.approx(np.min(ious))


def test_top5_and_a_user_metric_on_a_keras_classifier(
    cnn: Path, digits: Digits, tmp_path: Path
) -> None:
    seen: list[int] = []

    def mean_gap(reference, candidate, labels):
        seen.append(len(labels))
        (name,) = reference
        return {"mean_gap": float(np.mean(np.abs(candidate[name] - reference[name])))}

    result = liteparity.check(
        cnn,
        data=(digits.x_eval, digits.y_eval),
        calibration_data=digits.x_cal,  # every evaluation row is evaluated
        recipes=["int8"],
        save_dir=tmp_path,
        metric=mean_gap,
    )
    (output,) = result.candidates[0].outputs
    candidate = oracle_outputs(tmp_path / "int8.tflite", digits.x_eval)
    top5 = np.argsort(-candidate, axis=1)[:, :5]
    assert output.kind == "classes"
    assert output.metrics["top5_accuracy"] == np.mean(np.any(top5 == digits.y_eval[:, None], 1))
    assert output.metrics["top1_accuracy"] == np.mean(candidate.argmax(1) == digits.y_eval)
    confusion = np.array(output.metrics["confusion"])
    assert confusion.sum() == len(digits.y_eval) and np.trace(confusion) == round(
        output.agreement * len(digits.y_eval)
    )
    import keras

    reference = keras.saving.load_model(cnn).predict_on_batch(digits.x_eval)
    gap = np.mean(np.abs(candidate - reference))  # batch means weighted by batch size
    assert sum(seen) == len(digits.y_eval) and len(seen) > 1
    assert result.candidates[0].user_metrics["mean_gap"] == pytest.approx(gap, rel=1e-4)


def test_cli_budget_output_csv_and_plugin(quantized, tmp_path: Path) -> None:
    """``--budget-output`` names the broken output in the exit message (exit 1), ``--csv``
    has one row per candidate and output, and ``--metric-plugin`` needs ``--unsafe``."""
    from typer.testing import CliRunner

    from liteparity.cli.app import app

    data = tmp_path / "faces.npy"
    np.save(data, FACE.photos(8))
    broken = tmp_path / "scores_capped.tflite"
    broken.write_bytes(capped(quantized[FACE.file].read_bytes(), "classificators"))
    args = [str(FACE.path), "--candidate", str(broken), "--data", str(data)]
    runner = CliRunner()
    refused = runner.invoke(app, ["check", *args, "--metric-plugin", "math:dist"])
    assert refused.exit_code == 2 and "--unsafe" in refused.output
    table = tmp_path / "outputs.csv"
    result = runner.invoke(
        app, ["check", *args, "--budget-output", "classificators", "--csv", str(table)]
    )
    assert result.exit_code == 1, result.output
    said = " ".join(result.output.split())  # the console wraps long lines
    assert "output classificators lost its decisions (decision-lost)" in said
    rows = table.read_text().splitlines()
    assert len(rows) == 3 and "output_name" in rows[0]
    assert [r.split(",")[rows[0].split(",").index("output_name")] for r in rows[1:]] == [
        "regressors",
        "classificators",
    ]
    free = runner.invoke(app, ["check", *args, "--budget-output", "regressors"])
    assert free.exit_code == 0, free.output
