"""Findings on correctly built real models: a lone quantized model without labels gets the
findings that need no reference, and a correctly calibrated model whose ranges are shared by
requirement (ReLU6's [0, 6], pooling) or whose channels are padded with zeros gets no
warning or error (issue 16, items 3, 5 and 11)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import liteparity
from liteparity.diagnose.explain import explain
from tests.conftest import Digits

#: conv_b's filters kept after training; the others are zeroed: constant padding channels.
KEPT_FILTERS = 4


def ids(row) -> set[str]:
    return {f.id for f in row.findings}


def loud(row) -> list[str]:
    return [f"{f.id}: {f.message}" for f in row.findings if f.severity.value != "info"]


@pytest.fixture(scope="session")
def relu6_cnn(digits: Digits, models_dir: Path) -> Path:
    """Digits at their raw 0..16 scale → Conv+ReLU6 → AVERAGE_POOL_2D → Conv+ReLU6 (12 of
    its 16 filters zeroed after training: all-zero padding channels) → MAX_POOL_2D → Dense.
    The ReLU6 outputs reach 6 on real data, so calibration gives them [0, 6]."""
    import keras

    from liteparity._tf import import_tensorflow, quiet

    tf = import_tensorflow()
    tf.keras.utils.set_random_seed(0)
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1), name="image"),
            layers.Conv2D(8, 3, padding="same", name="conv_a"),
            layers.ReLU(6.0, name="relu6_a"),
            layers.AveragePooling2D(pool_size=2, name="avg_a"),
            layers.Conv2D(16, 3, padding="same", name="conv_b"),
            layers.ReLU(6.0, name="relu6_b"),
            layers.MaxPooling2D(name="pool_b"),
            layers.Flatten(name="flatten"),
            layers.Dense(10, name="logits"),
        ]
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with quiet():
        model.fit(16 * digits.x_train, digits.y_train, epochs=15, batch_size=32, verbose=0)
    kernel, bias = model.get_layer("conv_b").get_weights()
    kernel[..., KEPT_FILTERS:] = 0.0
    bias[KEPT_FILTERS:] = 0.0
    model.get_layer("conv_b").set_weights([kernel, bias])
    path = models_dir / "relu6_cnn.keras"
    model.save(path)
    return path


def _shared_0_6(path: Path) -> int:
    """Activation tensors quantized to [0, 6] (scale 6/255, zero point -128), read with the
    plain interpreter: the test really has ranges shared by definition."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    count = 0
    for d in interpreter.get_tensor_details():
        scales, zeros = (
            d["quantization_parameters"]["scales"],
            d["quantization_parameters"]["zero_points"],
        )
        if d["dtype"] == np.int8 and len(scales) == 1 and zeros[0] == -128:
            count += abs(scales[0] - 6 / 255) < 1e-7
    return count


def test_correctly_calibrated_relu6_cnn_with_padding_channels_gets_no_warning(
    relu6_cnn: Path, digits: Digits, tmp_path: Path
) -> None:
    result = explain(
        relu6_cnn,
        data=(16 * digits.x_eval, digits.y_eval),
        calibration_data=16 * digits.x_cal,
        recipes=["int8", "int8-io"],
        save_dir=tmp_path,
    )
    assert _shared_0_6(tmp_path / "int8.tflite") >= 2  # the case: [0, 6] shared by ReLU6s
    for row in result.candidates:
        assert row.error is None
        assert loud(row) == [], row.name


def test_lone_quantized_model_without_labels_gets_the_findings_that_need_no_reference(
    cnn: Path, digits: Digits, tmp_path: Path
) -> None:
    """Issue 16 item 3: no reference, no labels, no task metric; the findings that need
    neither (an assumed range, a wrong input quantization) are still named."""
    liteparity.check(
        cnn,
        data=(digits.x_eval, digits.y_eval),
        recipes=["legacy-uint8"],
        legacy=liteparity.LegacySettings(0.0, 1.0, (0.0, 6.0)),
        save_dir=tmp_path,
    )
    result = explain(tmp_path / "legacy-uint8.tflite", data=digits.x_eval)
    assert result.reference is None
    (row,) = result.candidates
    assert row.error is None
    assert row.metric.name == "none" and row.metric.value is None and row.rmse is None
    assert {"dummy-ranges", "input-range-mismatch"} <= ids(row)
