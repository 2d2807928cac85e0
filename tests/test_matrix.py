"""The fast part of the real-model matrix (the full one is ``benchmarks/real_models.py``):
tiny versions of a Vision Transformer, a two-input two-output functional model, a regression
model and a SavedModel export, trained on scikit-learn's digits. Every candidate of
``check --recipes all`` either has, output by output, the ``max_abs_error`` of a plain
interpreter loop written here (one sample at a time, against the model's own outputs), or is
not applicable with a one-line reason."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import liteparity
from tests.conftest import Digits

Feeds = dict[str, np.ndarray]
EVAL = 48  # evaluation rows: few, so each cell stays seconds


def signature_loop(path: str, feeds: Feeds) -> dict[str, np.ndarray]:
    """Every output by signature key, one sample at a time on a plain interpreter; a lone
    array goes to the lone input whatever its key."""
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=path).get_signature_runner()
    details = runner.get_input_details()
    if len(feeds) == 1:
        feeds = {next(iter(details)): next(iter(feeds.values()))}
    outs: dict[str, list[np.ndarray]] = {}
    for i in range(len(next(iter(feeds.values())))):
        sample = {k: feeds[k][i : i + 1].astype(d["dtype"]) for k, d in details.items()}
        for name, value in runner(**sample).items():
            outs.setdefault(name, []).append(value.astype(np.float64))
    return {name: np.concatenate(v) for name, v in outs.items()}


def keras_truth(path: Path) -> Callable[[Feeds], dict[str, np.ndarray]]:
    """The Keras model's outputs, named ``output_0, output_1, …`` in its output order."""

    def outputs(feeds: Feeds) -> dict[str, np.ndarray]:
        import keras

        model = keras.saving.load_model(path)
        x = next(iter(feeds.values())) if len(feeds) == 1 else feeds
        out = model.predict(x, verbose=0, batch_size=len(next(iter(feeds.values()))))
        values = out if isinstance(out, list) else [out]
        return {f"output_{i}": np.asarray(v, np.float64) for i, v in enumerate(values)}

    return outputs


def saved_model_truth(path: Path) -> Callable[[Feeds], dict[str, np.ndarray]]:
    """The SavedModel's serving signature, outputs by signature key."""

    def outputs(feeds: Feeds) -> dict[str, np.ndarray]:
        import tensorflow as tf

        serve = tf.saved_model.load(str(path)).signatures["serving_default"]
        keys = list(serve.structured_input_signature[1])
        x = {keys[0]: next(iter(feeds.values()))} if len(feeds) == 1 else feeds
        got = serve(**{k: tf.constant(v) for k, v in x.items()})
        return {k: v.numpy().astype(np.float64) for k, v in got.items()}

    return outputs


def assert_cell(
    result: Any, feeds: Feeds, truth: dict[str, np.ndarray], float_io: tuple[str, ...]
) -> list[str]:
    """Every float-I/O candidate's errors equal the loop's, output by output; any other row
    is measured or not applicable in one line. Returns the measured candidates' names."""
    measured = []
    for row in result.candidates:
        if row.not_applicable:
            assert "\n" not in row.not_applicable and row.not_applicable.strip()
            continue
        assert row.error is None, row.error
        if row.name not in float_io:
            continue
        got = signature_loop(row.path, feeds)
        assert {o.name for o in row.outputs} == set(truth)
        for out in row.outputs:
            want = float(
                np.max(np.abs(got[out.matched].reshape(truth[out.name].shape) - truth[out.name]))
            )
            assert out.metrics["max_abs_error"] == pytest.approx(want, rel=1e-5, abs=1e-6)
        measured.append(row.name)
    return measured


FLOAT_IO = ("float32", "float16", "dynamic", "int8", "int16x8")
#: The fast cells run the calibrated recipes (where a wrong number would come from); the slow
#: ones run every recipe (``all``) and every command.
FAST = ["int8", "int16x8"]


def run_cell(
    model: Path, feeds: Feeds, labels: np.ndarray, cal: Feeds, tmp: Path, recipes: list[str]
) -> Any:
    data, cal_path = tmp / "eval.npz", tmp / "cal.npz"
    np.savez(data, **feeds, y=labels)
    np.savez(cal_path, **cal)
    return liteparity.check(
        model, data=data, calibration_data=cal_path, recipes=recipes, save_dir=tmp / "models"
    )


def one(x: np.ndarray) -> Feeds:
    return {"x": x}


# -- the tiny models ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_vit(digits: Digits, models_dir: Path) -> Path:
    """A Vision Transformer on 8×8 digits: 2×2 patches by a strided conv, a depthwise-conv
    position encoding, one pre-norm block (LayerNormalization, MultiHeadAttention, GELU MLP)."""
    import keras
    from keras import layers

    from liteparity._tf import import_tensorflow, quiet

    import_tensorflow()
    keras.utils.set_random_seed(0)
    image = keras.Input((8, 8, 1), name="image")
    grid = layers.Conv2D(16, 2, strides=2)(image)
    grid = grid + layers.DepthwiseConv2D(3, padding="same")(grid)
    h = layers.Reshape((16, 16))(grid)
    n = layers.LayerNormalization()(h)
    h = h + layers.MultiHeadAttention(2, 8)(n, n)
    n = layers.LayerNormalization()(h)
    h = h + layers.Dense(16)(layers.Dense(32, activation="gelu")(n))
    h = layers.GlobalAveragePooling1D()(layers.LayerNormalization()(h))
    model = keras.Model(image, layers.Dense(10, activation="softmax")(h))
    model.compile("adam", "sparse_categorical_crossentropy")
    with quiet():
        model.fit(digits.x_train, digits.y_train, epochs=4, batch_size=32, verbose=0)
    path = models_dir / "tiny_vit.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def tiny_regression(digits: Digits, models_dir: Path) -> Path:
    """An MLP regressing the digit's value as a float (float labels: the MSE metric)."""
    import keras

    from liteparity._tf import import_tensorflow, quiet

    import_tensorflow()
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1), name="image"),
            keras.layers.Flatten(),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(1),
        ]
    )
    model.compile("adam", "mse")
    with quiet():
        model.fit(digits.x_train, digits.y_train.astype(np.float32), epochs=20, verbose=0)
    path = models_dir / "tiny_regression.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def cnn_saved_model(cnn: Path, models_dir: Path) -> Path:
    """The session's CNN exported as a SavedModel directory (Keras 3 ``model.export``)."""
    import keras

    from liteparity._tf import import_tensorflow, quiet

    import_tensorflow()
    path = models_dir / "cnn_saved_model"
    with quiet():
        keras.saving.load_model(cnn).export(str(path), verbose=False)
    return path


# -- the cells ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    model: Path
    feeds: Feeds  # evaluation inputs by name (``x`` for a lone input)
    labels: np.ndarray
    cal: Feeds
    truth: dict[str, np.ndarray]  # the source model's own outputs on ``feeds``


def case(name: str, request: pytest.FixtureRequest, digits: Digits) -> Case:
    x, cal, labels = digits.x_eval[:EVAL], digits.x_cal, digits.y_eval[:EVAL]
    if name == "two_in_two_out":
        model = request.getfixturevalue("two_by_two")
        feeds = {"zeta": x, "alpha": x[::-1].copy()}
        return Case(
            model,
            feeds,
            labels,
            {"zeta": cal, "alpha": cal[::-1].copy()},
            keras_truth(model)(feeds),
        )
    model = request.getfixturevalue(name)
    if name == "tiny_regression":
        labels = labels.astype(np.float32)
    truth = saved_model_truth(model) if model.is_dir() else keras_truth(model)
    return Case(model, one(x), labels, one(cal), truth(one(x)))


def measure(c: Case, tmp: Path, recipes: list[str]) -> tuple[Any, list[str]]:
    result = run_cell(c.model, c.feeds, c.labels, c.cal, tmp, recipes)
    return result, assert_cell(result, c.feeds, c.truth, FLOAT_IO)


@pytest.mark.slow  # ~20 s: the ViT trains and converts; benchmarks/real_models.py runs it too
def test_vision_transformer_matches_its_loop(
    request: pytest.FixtureRequest, digits: Digits, tmp_path: Path
) -> None:
    _, measured = measure(case("tiny_vit", request, digits), tmp_path, ["int8"])
    assert measured == ["int8"]


def test_two_inputs_two_outputs_match_their_loop(
    request: pytest.FixtureRequest, digits: Digits, tmp_path: Path
) -> None:
    result, measured = measure(case("two_in_two_out", request, digits), tmp_path, FAST)
    assert measured == FAST
    for row in result.candidates:  # each output matched to its own name, never swapped
        assert sorted((o.name, o.matched) for o in row.outputs) == [
            ("output_0", "output_0"),
            ("output_1", "output_1"),
        ]


def test_regression_metric_is_the_loops_mse(
    request: pytest.FixtureRequest, digits: Digits, tmp_path: Path
) -> None:
    c = case("tiny_regression", request, digits)
    result, measured = measure(c, tmp_path, FAST)
    assert measured == FAST
    for row in result.candidates:
        got = next(iter(signature_loop(row.path, c.feeds).values()))[:, 0]
        assert row.metric.value == pytest.approx(float(np.mean((got - c.labels) ** 2)), 1e-5)


def test_saved_model_export_matches_its_loop(
    request: pytest.FixtureRequest, digits: Digits, tmp_path: Path
) -> None:
    _, measured = measure(case("cnn_saved_model", request, digits), tmp_path, FAST)
    assert measured == FAST


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["tiny_vit", "two_in_two_out", "tiny_regression", "cnn_saved_model"]
)
def test_every_recipe_and_command(
    name: str, request: pytest.FixtureRequest, digits: Digits, tmp_path: Path
) -> None:
    """``check --recipes all`` equals the loop on every float-I/O candidate; explain, locate
    and fix finish, every layer name locate prints is one of the model's own, and a fix that
    says it met the budget met it on held-out data too."""
    c = case(name, request, digits)
    _, measured = measure(c, tmp_path, ["all"])
    assert {"float32", "int8"} <= set(measured)
    data = tmp_path / "eval.npz"
    explained = liteparity.explain(c.model, data=data, recipes=["int8"])
    assert all(row.error is None for row in explained.candidates)
    located = liteparity.locate(c.model, data=data, recipe="int8")
    if not c.model.is_dir():
        import keras

        own = {layer.name for layer in keras.saving.load_model(c.model).layers}
        assert {r.keras_layer for r in located.layers if r.keras_layer} <= own
    fixed = liteparity.fix(c.model, data=data, max_drop=2.0)
    if fixed.met:  # the budget holds on the search rows and on the held-out ones
        assert fixed.winner.drop is not None and fixed.winner.drop <= 2.0
        assert fixed.held_out["drop"] is not None and fixed.held_out["drop"] <= 2.0
    else:  # no model holds it: fix says why, and still writes its best
        assert fixed.reason and fixed.winner is not None


@pytest.fixture(scope="module")
def token_model(models_dir: Path) -> Path:
    """int32 token ids → Embedding → average → Dense, with batch 1 fixed in its input (as
    Keras text models often are): untrained weights suffice, ids only select rows."""
    import keras

    from liteparity._tf import import_tensorflow

    import_tensorflow()
    keras.utils.set_random_seed(0)
    tokens = keras.Input((12,), batch_size=1, dtype="int32", name="tokens")
    h = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(300, 8)(tokens))
    model = keras.Model(tokens, keras.layers.Dense(3, activation="softmax")(h))
    path = models_dir / "tokens.keras"
    model.save(path)
    return path


def test_token_ids_stay_integers_and_fixed_batch_is_explained(
    token_model: Path, tmp_path: Path
) -> None:
    """The token ids reach every candidate as int32 without quantization parameters, the
    int8 numbers equal the loop's, and explain's float64 twin runs a graph whose input has
    batch 1 fixed (it fed 100 rows to it: a raw ValueError)."""
    from ai_edge_litert.interpreter import Interpreter

    tokens = np.random.default_rng(0).integers(1, 300, (40, 12)).astype(np.int32)
    feeds = {"tokens": tokens}
    result = run_cell(token_model, feeds, tokens[:, 0] % 3, feeds, tmp_path, ["int8", "int8-io"])
    assert assert_cell(result, feeds, keras_truth(token_model)(feeds), ("int8",)) == ["int8"]
    for row in result.candidates:
        (given,) = Interpreter(model_path=row.path).get_input_details()
        assert given["dtype"] == np.int32 and given["quantization"] == (0.0, 0)
    data = tmp_path / "eval.npz"
    explained = liteparity.explain(token_model, data=data, calibration_data=data, recipes=["int8"])
    assert explained.candidates[0].error is None
    assert explained.noise_floor is not None


def test_inputs_of_different_shapes_are_calibrated_each_with_its_own(
    digits: Digits, tmp_path: Path
) -> None:
    """Inputs ``zimage`` (8×8×1) and ``profile`` (16) in that order: the converter's signature
    sorts them, and calibration samples given as a list fed the profile to the convolution
    (every calibrated recipe failed to convert)."""
    import keras

    from liteparity._tf import import_tensorflow

    import_tensorflow()
    keras.utils.set_random_seed(0)
    image, profile = keras.Input((8, 8, 1), name="zimage"), keras.Input((16,), name="profile")
    h = keras.layers.Flatten()(keras.layers.Conv2D(4, 3, activation="relu")(image))
    joint = keras.layers.Concatenate()([h, keras.layers.Dense(8, activation="relu")(profile)])
    model = keras.Model(
        [image, profile], [keras.layers.Dense(10)(joint), keras.layers.Dense(1)(profile)]
    )
    path = tmp_path / "shapes.keras"
    model.save(path)

    def fed(x: np.ndarray) -> Feeds:
        return {"zimage": x, "profile": np.concatenate([x.mean(1)[..., 0], x.mean(2)[..., 0]], 1)}

    feeds = fed(digits.x_eval[:EVAL])
    result = run_cell(path, feeds, digits.y_eval[:EVAL], fed(digits.x_cal), tmp_path, ["int8"])
    assert assert_cell(result, feeds, keras_truth(path)(feeds), ("int8",)) == ["int8"]


@pytest.mark.slow  # ~2-4 min each: a Keras application trains briefly, converts, is explained
@pytest.mark.parametrize(
    ("arch", "low", "high", "keywords"),
    [
        ("MobileNetV2", -1.0, 1.0, {"alpha": 0.35}),  # ReLU6 and pools: [0, 6] by definition
        ("MobileNetV3Small", 0.0, 255.0, {}),  # Rescaling to [-1, 1], hard swish, SE blocks
    ],
)
def test_mobilenets_calibrated_on_their_data_get_no_false_finding(
    arch: str, low: float, high: float, keywords: dict[str, float], tmp_path: Path
) -> None:
    """The false findings the issue saw on MobileNets (``dummy-ranges`` on ReLU6 and pooled
    tensors, ``saturation`` at a function's own floor, ``outlier-scale`` on squeeze-excite
    pools) on int8 models calibrated on the very samples they are evaluated on: no range
    finding can be true there (every value is inside its calibrated range). A model whose
    outputs lost nothing material gets information only; one that lost (int8 of this briefly
    trained MobileNetV2 flips ~17% of its predictions) gets a verdict, never silence. The
    classes are which photo a crop comes from, so there are predictions to flip."""
    from liteparity._tf import import_tensorflow
    from tests.shared_models import photo_classes, photos, trained_application

    import_tensorflow()
    x, y = photos(96, 96, low, high), photo_classes(96, 4)
    model = trained_application(arch, x, y, **keywords)
    path = tmp_path / f"{arch}.keras"
    model.save(path)
    result = liteparity.explain(path, data=(x, y), calibration_data=x, recipes=["int8"])
    (row,) = result.candidates
    assert row.error is None and row.agreement is not None and row.drop is not None
    said = [(f.id, f.severity.value, f.summary) for f in row.findings]
    ranges = {"dummy-ranges", "saturation", "calibration-range", "input-range-mismatch"}
    assert not ranges & {f.id for f in row.findings}, said
    if 1 - row.agreement > 0.02 or row.drop >= 1.0:  # a material loss: it is explained
        assert any(severity != "info" for _, severity, _ in said), said
    else:
        assert all(severity == "info" for _, severity, _ in said), said
