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
    return [f"{f.id}: {f.summary}" for f in row.findings if f.severity.value != "info"]


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


@pytest.fixture(scope="session")
def layernorm_block(digits: Digits, models_dir: Path) -> Path:
    """A small ViT-like block: a positional conv, a patch embedding (16 tokens of 8 features),
    a LayerNormalization, attention-free mixing and a classifier. Planted after training: +50
    on every embedding bias. LayerNormalization subtracts each token's mean over its features,
    so the float function is unchanged, but int8 gives the embedding a scale of about 0.3
    while its signal spans about one unit: the signal collapses at the LayerNormalization."""
    import keras

    from liteparity._tf import import_tensorflow, quiet

    tf = import_tensorflow()
    tf.keras.utils.set_random_seed(0)
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1), name="image"),
            layers.Conv2D(8, 3, padding="same", activation="relu", name="pos_conv"),
            layers.Conv2D(8, 2, strides=2, name="embed"),
            layers.Reshape((16, 8), name="tokens"),
            layers.LayerNormalization(name="norm"),
            layers.Dense(16, activation="relu", name="mix"),
            layers.GlobalAveragePooling1D(name="pool"),
            layers.Dense(10, name="head"),
        ]
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with quiet():
        model.fit(digits.x_train, digits.y_train, epochs=10, batch_size=32, verbose=0)
    kernel, bias = model.get_layer("embed").get_weights()
    model.get_layer("embed").set_weights([kernel, bias + 50.0])
    path = models_dir / "layernorm_block.keras"
    model.save(path)
    return path


def test_first_jump_is_the_layer_normalization_where_the_signal_collapses(
    layernorm_block: Path, digits: Digits
) -> None:
    """Issue 16 item 12: the marker points where the propagated error jumps, not at the
    first layer that costs a few dB (the positional conv)."""
    from liteparity.layerwise.locate import locate

    result = locate(
        layernorm_block,
        data=(digits.x_eval, digits.y_eval),
        calibration_data=digits.x_cal,
        recipe="int8",
        max_samples=200,
        with_sensitivity=False,
    )
    jump = result.first_jump
    assert jump is not None and jump.keras_layer == "norm", [
        (r.keras_layer, r.op, (r.propagated or {}).get("sqnr_db")) for r in result.layers
    ]
    sqnr = {
        r.tensor_name: (r.propagated or {}).get("sqnr_db") for r in result.layers if r.propagated
    }
    before = [v for name, v in sqnr.items() if "norm" not in name and "pos_conv" in name]
    assert before and min(before) - sqnr[jump.tensor_name] > 15  # a collapse, not a few dB


def _kernel_floor(path: Path, x: np.ndarray) -> float:
    """RMSE between the model under the default delegate (XNNPack) and under the builtin
    kernels, one sample at a time, with the plain interpreter."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    runs = []
    for resolver in (OpResolverType.AUTO, OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES):
        it = Interpreter(model_path=str(path), experimental_op_resolver_type=resolver)
        it.allocate_tensors()
        (inp,), (out,) = it.get_input_details(), it.get_output_details()
        rows = []
        for sample in x:
            it.set_tensor(inp["index"], sample[None].astype(np.float32))
            it.invoke()
            rows.append(it.get_tensor(out["index"]).astype(np.float64))
        runs.append(np.concatenate(rows))
    return float(np.sqrt(np.mean((runs[0] - runs[1]) ** 2)))


def test_a_float_tflite_reference_has_a_noise_floor_and_a_float_twin(
    cnn: Path, digits: Digits, tmp_path: Path
) -> None:
    """Issue 16 item 4: a candidate bit-identical to a float .tflite reference is float
    noise, never a conversion error; the floor is the reference under two kernel sets; the
    reference's own tensors serve as the float twin, so calibration-range runs."""
    liteparity.check(
        cnn,
        data=(digits.x_eval, digits.y_eval),
        calibration_data=digits.x_cal * 0.2,  # planted: dim calibration images
        recipes=["float32", "int8"],
        save_dir=tmp_path,
    )
    reference = tmp_path / "float32.tflite"
    copy = tmp_path / "copy.tflite"
    copy.write_bytes(reference.read_bytes())
    x, y = digits.x_eval[:120], digits.y_eval[:120]
    result = explain(reference, data=(x, y), candidates=[copy, tmp_path / "int8.tflite"])
    floor = result.noise_floor
    assert floor["method"] == "kernels" and floor["unavailable"] is None
    assert floor["samples"] == len(x)
    assert floor["rmse"] == pytest.approx(_kernel_floor(reference, x), rel=0.25, abs=1e-9)
    same, int8 = result.candidates
    assert same.rmse == 0 and same.max_abs_error == 0
    assert "float-noise" in ids(same) and "conversion-error" not in ids(same)
    assert "calibration-range" in ids(int8)  # the float twin's values pass the dim range
    f = next(f for f in int8.findings if f.id == "calibration-range")
    assert f.evidence["evaluation_range"][1] > 2 * f.evidence["calibrated_range"][1]


def test_a_custom_op_keeps_the_check_and_says_what_was_not_read(tmp_path: Path) -> None:
    """Issue 16 item 6: selfie_segmentation's Convolution2DTransposeBias is resolved only by
    the default delegate. explain keeps the check's numbers (the same file: error exactly 0),
    reads what it can, and says in one line what it could not; locate runs."""
    from liteparity.layerwise.locate import locate
    from tests.shared_models import MODELS

    model = MODELS["selfie_segmentation"]
    x = model.photos(3)
    copy = tmp_path / "candidate.tflite"
    copy.write_bytes(model.path.read_bytes())
    result = explain(model.path, data=x, candidates=[copy])
    (row,) = result.candidates
    assert row.error is None and row.rmse == 0
    (note,) = [f for f in row.findings if f.id == "not-measured"]
    assert "Convolution2DTransposeBias" in note.summary and "\n" not in note.summary
    layers = locate(model.path, data=x, candidate=copy, with_sensitivity=False)
    assert len(layers.layers) > 10
