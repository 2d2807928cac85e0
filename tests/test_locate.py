"""``locate`` against TensorFlow's own QuantizationDebugger, and on planted faults."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from liteparity.errors import UsageError
from liteparity.layerwise.locate import locate
from liteparity.results.locate import DEBUGGER_COLUMNS
from tests.conftest import Digits


@pytest.fixture(scope="session")
def located(cnn: Path, digits: Digits):
    return locate(cnn, data=(digits.x_eval, digits.y_eval), calibration_data=digits.x_cal)


def test_local_error_equals_quantization_debugger(cnn: Path, digits: Digits, located) -> None:
    """Same model, calibration and samples: mean_squared_error and mean_error agree to 0.1%
    (on ops whose error is float rounding only, max pooling: ~1e-15, to 1e-12: equal to the
    bit on x86, where liteparity dequantizes as NumericVerify does)."""
    from liteparity._tf import import_tensorflow, quiet
    from liteparity.reference.keras import KerasSource

    tf = import_tensorflow()
    converter = KerasSource(str(cnn)).converter()
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    x_cal, x_eval = digits.x_cal, digits.x_eval
    converter.representative_dataset = lambda: ([x_cal[i : i + 1]] for i in range(len(x_cal)))
    with quiet():
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter,
            debug_dataset=lambda: ([x_eval[i : i + 1]] for i in range(len(x_eval))),
            debug_options=tf.lite.experimental.QuantizationDebugOptions(fully_quantize=True),
        )
        debugger.run()
    theirs = list(debugger.layer_statistics.values())
    ours = [r.local for r in located.layers if r.local is not None]
    assert len(ours) == len(theirs) >= 5
    for mine, tf_stats in zip(ours, theirs, strict=True):
        for key in ("mean_squared_error", "mean_error"):
            assert mine[key] == pytest.approx(float(tf_stats[key]), rel=1e-3, abs=1e-12), key
        assert mine["num_elements"] == tf_stats["num_elements"] * len(x_eval)


def test_every_tensor_maps_to_a_keras_layer_in_a_sequential_model(located) -> None:
    layers = {r.keras_layer for r in located.layers}
    assert {"conv_a", "pool_a", "conv_b", "pool_b", "flatten", "logits"} <= layers
    assert located.unmatched == ()
    assert all(r.propagated is not None for r in located.layers)


def test_keras_to_tflite_float_conversion_is_near_exact_per_layer(located) -> None:
    conversions = [r.conversion["sqnr_db"] for r in located.layers if r.conversion]
    assert len(conversions) >= 5
    assert min(conversions) > 100  # float32 vs float32: only rounding differs


def test_functional_model_names(two_by_two: Path, digits: Digits, tmp_path: Path) -> None:
    data = tmp_path / "multi.npz"
    np.savez(data, alpha=digits.x_eval[::-1], zeta=digits.x_eval, y=digits.y_eval)
    result = locate(two_by_two, data=data, recipe="int8", max_samples=200)
    names = {r.keras_layer for r in result.layers}
    assert {"zz_head", "aa_head"} <= names


def test_outlier_channel_is_where_the_error_lives(outlier_cnn: Path, digits: Digits) -> None:
    result = locate(outlier_cnn, data=(digits.x_eval, digits.y_eval), calibration_data=digits.x_cal)
    top = result.by_impact()[0]
    assert top.keras_layer in {"conv_a", "pool_a", "conv_b"}
    assert top.sensitivity > 0.5
    conv_a = next(r for r in result.layers if r.keras_layer == "conv_a")
    assert conv_a.rmse_over_scale < 1  # conv_a itself is fine: its *scale* is the problem
    assert result.first_jump is not None


@pytest.mark.parametrize("recipe", ["dynamic", "float16", "int16x8"])
def test_beyond_int8_the_propagated_error_is_measured(
    cnn: Path, digits: Digits, recipe: str
) -> None:
    result = locate(
        cnn,
        data=(digits.x_eval, digits.y_eval),
        calibration_data=digits.x_cal,
        recipe=recipe,
        max_samples=200,
    )
    assert result.layers
    assert all(r.local is None for r in result.layers)
    errors = [r.propagated["mean_squared_error"] for r in result.layers if r.propagated]
    assert errors and max(errors) > 0


def test_a_users_candidate_gets_the_propagated_comparison(
    check_all, cnn: Path, digits: Digits
) -> None:
    result = locate(
        cnn,
        candidate=check_all.candidate("int8").path,
        data=(digits.x_eval, digits.y_eval),
        max_samples=200,
    )
    assert result.candidate == "tflite:int8.tflite"
    assert any(r.propagated for r in result.layers)


def test_csv_keeps_the_debugger_columns_first(located) -> None:
    header = located.to_csv().splitlines()[0].split(",")
    assert tuple(header[: len(DEBUGGER_COLUMNS)]) == DEBUGGER_COLUMNS
    assert "keras_layer" in header and "propagated_sqnr_db" in header


def test_error_statistics_keep_a_small_spread_under_a_large_offset() -> None:
    """A quantization error that is mostly a constant offset (a zero point off by one) over
    large tensors: mean, spread and MSE against float64 numpy, batch by batch and merged."""
    from liteparity.measure.stats import ErrorStats

    rng = np.random.default_rng(0)
    batches = [(50 + 0.01 * rng.standard_normal(300_000)).astype(np.float32) for _ in range(6)]
    exact = np.concatenate(batches).astype(np.float64)
    one, two = ErrorStats(), ErrorStats()
    for k, b in enumerate(batches):
        (one if k < 4 else two).update(b.copy())
    for stats in (one.merge(two), _folded(batches)):
        got = stats.to_dict()
        assert got["num_elements"] == exact.size
        assert got["mean_error"] == pytest.approx(exact.mean(), rel=1e-6)
        assert got["stddev"] == pytest.approx(exact.std(), rel=1e-3)
        assert got["mean_squared_error"] == pytest.approx(np.mean(exact**2), rel=1e-6)
        assert got["max_abs_error"] == pytest.approx(np.abs(exact).max())


def _folded(batches: list[np.ndarray]):
    from liteparity.measure.stats import ErrorStats

    stats = ErrorStats()
    for b in batches:
        stats.update(b.copy())
    return stats


def test_auto_named_layers_are_named_by_the_values_they_compute(tmp_path: Path) -> None:
    """Keras 3 scopes layer ``dense`` as ``dense_1`` and ``dense_1`` as ``dense_1_2``: every name
    locate prints is proven by value — the tensor it names must be closest (cosine, read from a
    plain interpreter) to that layer's own Keras output among all layers of the same shape."""
    import keras
    from ai_edge_litert.interpreter import Interpreter

    from liteparity._tf import import_tensorflow

    tf = import_tensorflow()
    keras.utils.set_random_seed(3)
    # The names Keras gives a fresh session's layers, spelled out (the counters are global).
    inp = keras.Input((12,))
    x = keras.layers.Dense(16, name="dense")(inp)
    x = keras.layers.Activation("tanh", name="activation")(x)
    x = keras.layers.Dense(16, name="dense_1")(x)
    x = keras.layers.Activation("tanh", name="activation_1")(x)
    out = keras.layers.Dense(4, name="dense_2")(x)
    model = keras.Model(inp, out)
    path = tmp_path / "auto.keras"
    model.save(path)
    data = np.random.default_rng(0).normal(size=(64, 12)).astype(np.float32)
    result = locate(path, data=data, recipe="int8", with_sensitivity=False)
    named = {r.tensor_name: r.keras_layer for r in result.layers if r.keras_layer}
    assert set(named.values()) >= {"dense", "activation", "dense_1", "activation_1", "dense_2"}

    probe = keras.Model(inp, [la.output for la in model.layers[1:]])
    layer_names = [la.name for la in model.layers[1:]]
    keras_out = dict(zip(layer_names, probe.predict(data, verbose=0), strict=True))
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.representative_dataset = lambda: ([data[i : i + 1]] for i in range(len(data)))
    interpreter = Interpreter(
        model_content=converter.convert(), experimental_preserve_all_tensors=True
    )
    details = {d["name"]: d for d in interpreter.get_tensor_details()}
    values: dict[str, list[np.ndarray]] = {name: [] for name in named}
    for row in data:
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], row[None])
        interpreter.invoke()
        for name in named:
            d = details[name]
            scale, zero = d["quantization"]
            raw = interpreter.get_tensor(d["index"]).astype(np.float64)
            values[name].append((raw - zero) * scale if scale else raw)

    def cosine(a: np.ndarray, b: np.ndarray) -> float:
        a, b = a.ravel(), b.ravel()
        return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))

    for name, layer in named.items():
        value = np.concatenate(values[name])
        same_shape = {k: v for k, v in keras_out.items() if v.shape == value.shape}
        best = max(same_shape, key=lambda k: cosine(same_shape[k], value))
        assert best == layer, (name, layer, best)


def test_layers_ranked_by_their_effect_on_one_named_output(
    two_by_two: Path, digits: Digits, tmp_path: Path
) -> None:
    """``aa_head`` (output_1) reads only ``zeta``'s pixels: keeping the other branch (alpha's
    flatten, the hidden layer, ``zz_head``) in float cannot change it, exactly; keeping its own
    path in float removes error."""
    data = tmp_path / "multi.npz"
    np.savez(data, alpha=digits.x_eval[::-1], zeta=digits.x_eval, y=digits.y_eval)
    result = locate(two_by_two, data=data, recipe="int8", max_samples=200, rank_output="output_1")
    share = {s["layer"]: s for s in result.sensitivity}
    import keras

    layers = keras.saving.load_model(two_by_two).layers  # auto names: counters are global
    flatten_alpha = next(
        la.name
        for la in layers
        if la.name.startswith("flatten") and la.input.name.startswith("alpha")
    )
    hidden = next(la.name for la in layers if la.name.startswith("dense"))
    other = [share[name] for name in (flatten_alpha, hidden, "zz_head")]
    assert all(s["mse_kept_float"] == s["mse_quantized"] for s in other), list(share)
    assert max(s["share_removed"] for s in share.values()) > 0
    with pytest.raises(UsageError, match="--rank-output nope"):
        locate(two_by_two, data=data, recipe="int8", max_samples=20, rank_output="nope")


def test_parallel_variants_equal_serial_and_the_float_tflite_reference_equals_keras(
    outlier_cnn: Path, digits: Digits
) -> None:
    """The experiment on the outlier CNN: on two process workers reading shared memory,
    every variant's error equals, to the bit, one in-process worker's (a plain serial loop);
    against the float32 .tflite instead of Keras every share moves by < 1e-4."""
    from liteparity.convert.converter import convert
    from liteparity.convert.recipes import RECIPES
    from liteparity.data.prepare import calibration_from
    from liteparity.layerwise.sensitivity import layer_sensitivity
    from liteparity.reference.keras import KerasSource
    from liteparity.runtime.jobs import InProcessWorker

    source = KerasSource(str(outlier_cnn))
    x = digits.x_eval[:200]
    calibrated = convert(
        source, RECIPES["int8"], calibration_from([[digits.x_cal]]), calibrate_only=True
    )
    parallel = layer_sensitivity(calibrated, [[x]], stop=False)
    serial = layer_sensitivity(calibrated, [[x]], stop=False, pool=[InProcessWorker()])
    assert parallel.ranking == serial.ranking and len(parallel.ranking) >= 4
    keras = layer_sensitivity(calibrated, [[x]], [source.predict([x])], stop=False)
    shares = {s.layer: s.share_removed for s in keras.ranking}
    assert shares.keys() == {s.layer for s in parallel.ranking}
    for s in parallel.ranking:
        assert s.share_removed == pytest.approx(shares[s.layer], abs=1e-4), s.layer
    assert parallel.ranking[0].share_removed > 0.5


def _measured(result) -> dict:
    """A locate result without its clock readings (seconds: this run's, not the model's)."""
    out = result.to_dict()
    out.pop("seconds")
    out["sensitivity_run"].pop("seconds")
    return out


def test_resume_locates_again_without_any_conversion(
    cnn: Path, digits: Digits, located, tmp_path: Path, monkeypatch
) -> None:
    """The Keras model is loaded in the converter process only (never in the caller's: it
    needs no TensorFlow of its own), and with ``resume`` a second run on the same model and
    data starts no converter process at all (nothing imports TensorFlow) yet gives every
    number of a run without the cache."""
    from liteparity.convert.process import ConverterProcess
    from liteparity.reference.keras import KerasSource

    def refuse(*args, **kwargs):
        raise AssertionError("not in this run")

    monkeypatch.setenv("LITEPARITY_CACHE", str(tmp_path))
    monkeypatch.setattr(KerasSource, "__init__", refuse)
    data = (digits.x_eval, digits.y_eval)
    first = locate(cnn, data=data, calibration_data=digits.x_cal, resume=True)
    monkeypatch.setattr(ConverterProcess, "__init__", refuse)
    again = locate(cnn, data=data, calibration_data=digits.x_cal, resume=True)
    assert _measured(again) == _measured(first) == _measured(located)
    assert any(r.conversion for r in again.layers) and again.sensitivity
