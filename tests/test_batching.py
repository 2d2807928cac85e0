"""A batch size is used only once it is proven to give the one-at-a-time outputs (issue:
"Batch-size tuning returns wrong numbers"). Oracles: a plain interpreter loop, one sample at a
time (tests/conftest.py), on real production models and on a planted model that mixes
samples across the batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from liteparity.errors import InterpreterError
from liteparity.runtime.litemodel import LiteModel
from tests.conftest import oracle_all_outputs
from tests.shared_models import MODELS


@pytest.fixture(scope="module")
def face() -> tuple[Path, np.ndarray]:
    face = MODELS["face_detection_short_range"]
    return face.path, face.photos(16)


@pytest.mark.parametrize("count", [16, 13])
def test_batch_one_baked_into_reshapes_is_refused_and_numbers_stay_exact(face, count) -> None:
    path, x = face
    x = x[:count]
    oracle = oracle_all_outputs(path, x)
    for _ in range(2):  # the same numbers on every run, whatever the timing
        model = LiteModel(path.read_bytes())
        assert model.tune_batch_size([x]) == 1
        assert "has shape [1, 7168, 16], not [8, 896, 16]" in model.batch_refusal
        got = dict(zip([o.name for o in model.outputs], model.run([x]), strict=True))
        assert all(np.array_equal(got[name], oracle[name]) for name in oracle)


def test_a_batch_size_set_without_tuning_is_proven_on_the_first_real_batch(face) -> None:
    path, x = face
    model = LiteModel(path.read_bytes())
    model.warm_up(8)  # what the per-layer probe does: unproven until real samples arrive
    got = model.run([x])
    assert model.batch_size == 1
    oracle = oracle_all_outputs(path, x)
    assert all(np.array_equal(g, oracle[o.name]) for g, o in zip(got, model.outputs, strict=True))


def test_a_forced_batch_size_the_model_cannot_take_is_one_clear_error(face) -> None:
    path, x = face
    with pytest.raises(InterpreterError, match=r"--batch-size 8 changes the model's outputs"):
        LiteModel(path.read_bytes()).tune_batch_size([x], forced=8)


def test_a_model_that_batches_correctly_keeps_its_batch_and_its_numbers() -> None:
    hand = MODELS["hand_landmark_lite"]
    path, x = hand.path, hand.photos(20)
    model = LiteModel(path.read_bytes())
    assert model.tune_batch_size([x], forced=8) == 8
    got = model.run([x])  # 8 + 8 + a proven tail of 4
    oracle = oracle_all_outputs(path, x)
    assert all(np.array_equal(g, oracle[o.name]) for g, o in zip(got, model.outputs, strict=True))


def test_a_model_that_mixes_samples_across_the_batch_is_refused(tmp_path: Path) -> None:
    """Right shapes, wrong values: each output depends on the whole batch (x − mean over
    the batch). Only comparing values shows it."""
    import keras

    from liteparity._tf import import_tensorflow, quiet

    tf = import_tensorflow()
    inp = keras.Input((6,))
    out = keras.layers.Lambda(lambda v: v - keras.ops.mean(v, axis=0, keepdims=True))(inp)
    model = keras.Model(inp, keras.layers.Dense(3)(out))
    with quiet():
        content = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    path = tmp_path / "mixes.tflite"
    path.write_bytes(content)
    x = np.random.default_rng(0).normal(size=(12, 6)).astype(np.float32)
    lite = LiteModel(content)
    assert lite.tune_batch_size([x]) == 1
    assert "differs from a run of that sample alone" in lite.batch_refusal
    oracle = oracle_all_outputs(path, x)
    assert np.array_equal(lite.run([x])[0], next(iter(oracle.values())))
