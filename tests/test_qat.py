"""Quantization-aware models (seed 003): converted directly, or their weights copied into the
float model and calibrated again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import liteparity
from liteparity.diagnose.explain import explain
from tests.conftest import Digits

QAT_SCRIPT = """
import sys, numpy as np, tf_keras as k
import tensorflow_model_optimization as tfmot
from sklearn.datasets import load_digits
from liteparity.reference.graph_runner import learned_ranges
from liteparity.reference.loader import load
d = load_digits(); x = (d.images / 16.0).astype("float32")[..., None]; y = d.target
k.utils.set_random_seed(0)
def build():
    return k.Sequential([
        k.layers.Input((8, 8, 1), name="image"),
        k.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv_a"),
        k.layers.MaxPooling2D(name="pool_a"), k.layers.Flatten(name="flatten"),
        k.layers.Dense(10, activation="softmax", name="logits")])
model = build()
model.compile("adam", "sparse_categorical_crossentropy")
model.fit(x, y, epochs=8, verbose=0)
qat = tfmot.quantization.keras.quantize_model(model)
qat.compile("adam", "sparse_categorical_crossentropy")
qat.fit(x, y, epochs=3, verbose=0)
qat.save(sys.argv[1], save_format="tf")
copy = build()
for layer in copy.layers:
    if layer.weights:
        trained = {w.name.split("/")[-1]: w.numpy()
                   for w in qat.get_layer("quant_" + layer.name).weights}
        layer.set_weights([trained[w.name.split("/")[-1]] for w in layer.weights])
copy.save(sys.argv[2])
"""


@pytest.fixture(scope="session")
def qat_models(models_dir: Path) -> tuple[Path, Path]:
    """A QAT CNN (SavedModel) and the float CNN carrying its weights (Keras 2 .h5)."""
    qat, copy = models_dir / "qat_savedmodel", models_dir / "qat_weights_in_float.h5"
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    subprocess.run(
        [sys.executable, "-c", QAT_SCRIPT, str(qat), str(copy)],
        env=env,
        check=True,
        capture_output=True,
    )
    return qat, copy


def test_learned_ranges_are_read_from_the_fake_quant_nodes(qat_models) -> None:
    from liteparity.reference.graph_runner import learned_ranges
    from liteparity.reference.loader import load

    source = load(qat_models[0])
    ranges = learned_ranges(source.frozen_graph()[0])
    assert set(ranges) >= {"quantize_layer", "conv_a", "logits"}
    lo, hi = ranges["quantize_layer"]
    assert lo <= 0.0 and 0.9 < hi <= 1.1  # the input is in [0, 1]


def test_qat_converted_directly_keeps_its_learned_ranges(qat_models, digits: Digits) -> None:
    result = explain(qat_models[0], data=(digits.x_eval, digits.y_eval), recipes=["dynamic"])
    row = result.candidates[0]
    assert row.error is None and row.metric.value > 0.8
    # Ranges learned in training clip by design (the reference clips too): not a fault.
    assert {f.id for f in row.findings} <= {"sensitive-layer"}


@pytest.mark.slow  # ~45 s: keeps CI under 25 minutes (QAT stays in CI: the fake-quant tests)
def test_weights_copied_into_the_float_model_and_recalibrated_is_a_qat_mismatch(
    qat_models, digits: Digits, tmp_path: Path
) -> None:
    """Seed 003's purple bars: the QAT weights in the float model, post-training quantized."""
    qat, copy = qat_models
    liteparity.check(
        copy,
        data=(digits.x_eval, digits.y_eval),
        calibration_data=digits.x_cal,
        recipes=["int8"],
        save_dir=tmp_path,
    )
    result = explain(
        qat, candidates=[tmp_path / "int8.tflite"], data=(digits.x_eval, digits.y_eval)
    )
    row = result.candidates[0]
    f = next(f for f in row.findings if f.id == "qat-mismatch")
    assert "conv_a" in f.evidence["layers"] or "logits" in f.evidence["layers"]
    for moved in f.evidence["layers"].values():
        assert moved["shift"] > 0.05
