"""The private TensorFlow, Keras and LiteRT APIs liteparity relies on, each exercised through
its one fence function (``liteparity._tf``, ``liteparity._litert``) on tiny real models.

When a TensorFlow, Keras or LiteRT release changes one of them, a test here fails and its
name says which API; no other module of liteparity touches them.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from liteparity import _litert, _tf
from liteparity.errors import ConversionError, InternalError, ModelError
from tests.conftest import Digits, oracle_outputs

NUMERIC_VERIFY = "NumericVerify"  # TF's custom op code (the debug model's)


@pytest.fixture(scope="module")
def model(cnn: Path) -> Any:
    """The session's CNN (conv_a, pool_a, conv_b, pool_b, flatten, logits) as a Keras model."""
    import keras

    _tf.import_tensorflow()
    return keras.saving.load_model(cnn)


def _converter(model: Any, digits: Digits, *, int8: bool) -> Any:
    """A public TFLiteConverter for the model, set up as the int8 recipe when ``int8``."""
    tf = _tf.import_tensorflow()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([x[None]] for x in digits.x_cal)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter


def _convert(converter: Any) -> bytes:
    with _tf.quiet():
        return bytes(converter.convert())


@pytest.fixture(scope="module")
def float_model(model: Any, digits: Digits) -> bytes:
    return _convert(_converter(model, digits, int8=False))


@pytest.fixture(scope="module")
def calibrated(model: Any, digits: Digits) -> bytes:
    converter = _converter(model, digits, int8=True)
    _tf.stop_after_calibration(converter)
    return _convert(converter)


def _interpreter(content: bytes, x: np.ndarray, *, undelegated: bool = True) -> Any:
    """An interpreter that has run on ``x`` (float inputs)."""
    it = _litert.new_interpreter(content, 1, undelegated=undelegated)
    index = it.get_input_details()[0]["index"]
    it.resize_tensor_input(index, list(x.shape))
    it.allocate_tensors()
    it.set_tensor(index, x)
    it.invoke()
    return it


def _scales(content: bytes) -> dict[str, tuple[float, ...]]:
    """Every quantized tensor's scales, by tensor name (public interpreter details)."""
    it = _litert.new_interpreter(content, 1, undelegated=True)
    details = it.get_tensor_details()
    return {
        d["name"]: tuple(d["quantization_parameters"]["scales"])
        for d in details
        if len(d["quantization_parameters"]["scales"])
    }


def _dtypes(content: bytes) -> dict[str, str]:
    it = _litert.new_interpreter(content, 1, undelegated=True)
    return {d["name"]: np.dtype(d["dtype"]).name for d in it.get_tensor_details()}


# -- TensorFlow and Keras (liteparity._tf) --------------------------------------------------
def test_tf_convert_variables_to_constants_v2_freezes_a_runnable_graph(
    model: Any, digits: Digits
) -> None:
    tf = _tf.import_tensorflow()
    spec = tf.TensorSpec([None, 8, 8, 1], tf.float32, name="image")
    function = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    graph_def, inputs, outputs = _tf.freeze(function)
    assert inputs == ["image"]
    assert len(outputs) == 1
    ops = {node.op for node in graph_def.node}
    assert not ops & {"VarHandleOp", "ReadVariableOp", "VariableV2"}  # weights are constants
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    x = digits.x_eval[:16]
    with tf.compat.v1.Session(graph=graph) as session:
        frozen = session.run(f"{outputs[0]}:0", {f"{inputs[0]}:0": x})
    np.testing.assert_allclose(frozen, model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_tf_experimental_calibrate_only_then_mlir_quantize_match_the_int8_conversion(
    model: Any, calibrated: bytes, digits: Digits, tmp_path: Path
) -> None:
    """The calibrated model is still float; quantized alone, it gets the very scales (so the
    ranges) of the converter's own int8 run and gives the same outputs."""
    assert set(_dtypes(calibrated).values()) <= {"float32", "int32"}
    again = _tf.quantize_calibrated(calibrated)
    direct = _convert(_converter(model, digits, int8=True))
    ours, theirs = _scales(again), _scales(direct)
    shared = set(ours) & set(theirs)
    assert len(shared) >= 8  # every weight and activation but the I/O ones
    for name in shared:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-6, err_msg=name)
    assert "int8" in _dtypes(again).values()
    x = digits.x_eval[:200]
    (tmp_path / "again.tflite").write_bytes(again)
    (tmp_path / "direct.tflite").write_bytes(direct)
    a = oracle_outputs(tmp_path / "again.tflite", x)
    b = oracle_outputs(tmp_path / "direct.tflite", x)
    assert np.mean(a.argmax(1) == b.argmax(1)) > 0.99
    assert np.abs(a - b).max() < 0.05  # same ranges, same codes up to I/O rounding


def test_tf_mlir_quantize_denylist_numeric_verify_and_per_channel_flags(
    calibrated: bytes,
) -> None:
    quantized = _tf.quantize_calibrated(calibrated)
    it = _litert.new_interpreter(quantized, 1, undelegated=True)
    names = {d["index"]: d["name"] for d in it.get_tensor_details()}
    conv = next(op for op in _litert.op_details(it) if op.name == "CONV_2D")
    kept = names[conv.outputs[0]]
    assert _dtypes(quantized)[kept] == "int8"
    assert _dtypes(_tf.quantize_calibrated(calibrated, [kept]))[kept] == "float32"

    debug = _tf.quantize_calibrated(calibrated, numeric_verify=True)
    codes = [op.custom_code for op in _litert.read_graph(debug).ops]
    assert codes.count(NUMERIC_VERIFY) >= 3  # at least both convs and the dense layer

    for per_channel in (True, False):
        content = _tf.quantize_calibrated(calibrated, per_channel=per_channel)
        it = _litert.new_interpreter(content, 1, undelegated=True)
        produced = {i for op in _litert.op_details(it) for i in op.outputs}
        weights = [
            d
            for d in it.get_tensor_details()
            if d["index"] not in produced and np.dtype(d["dtype"]) == np.int8
        ]
        assert weights
        counts = {len(d["quantization_parameters"]["scales"]) for d in weights}
        assert (max(counts) > 1) == per_channel  # conv kernels: one scale per output channel

    with pytest.raises(ConversionError, match="re-quantizing the calibrated model failed"):
        _tf.quantize_calibrated(b"not a model")


def test_tf_experimental_calibrate_only_is_checked_before_it_is_set() -> None:
    """Setting a switch an object does not have would silently change nothing."""
    with pytest.raises(InternalError, match="_experimental_calibrate_only"):
        _tf.stop_after_calibration(object())


def test_tf_convert_phase_converter_error_is_among_the_converter_errors() -> None:
    tf = _tf.import_tensorflow()

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
    def cumprod(x: Any) -> Any:
        return tf.math.cumprod(x, axis=1)  # no builtin kernel, and select-TF ops are off

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [cumprod.get_concrete_function()], cumprod
    )
    with pytest.raises(_tf.converter_errors()) as refused:
        _convert(converter)
    assert type(refused.value).__name__ == "ConverterError"
    assert "Cumprod" in str(refused.value)


def test_keras_history_names_the_output_layers(model: Any, two_by_two: Path) -> None:
    import keras

    assert _tf.output_layer_names(model) == ["logits"]  # a Sequential model
    heads = keras.saving.load_model(two_by_two)
    assert _tf.output_layer_names(heads) == ["zz_head", "aa_head"]  # model order, not sorted


# -- LiteRT (liteparity._litert) -------------------------------------------------------------
def test_litert_get_ops_details_lists_the_ops_in_execution_order(
    float_model: bytes, digits: Digits
) -> None:
    it = _interpreter(float_model, digits.x_eval[:1])
    ops = _litert.op_details(it)
    names = [op.name for op in ops]
    assert [n for n in names if n in ("CONV_2D", "MAX_POOL_2D", "FULLY_CONNECTED")] == [
        "CONV_2D",
        "MAX_POOL_2D",
        "CONV_2D",
        "MAX_POOL_2D",
        "FULLY_CONNECTED",
    ]
    assert names[-1] == "SOFTMAX"
    assert [op.index for op in ops] == list(range(len(ops)))
    available = {int(d["index"]) for d in it.get_input_details()}
    produced = {i for op in ops for i in op.outputs}
    constants = {int(d["index"]) for d in it.get_tensor_details()} - produced - available
    for op in ops:  # each op reads model inputs, constants or what an earlier op computed
        assert all(i in available or i in constants for i in op.inputs if i >= 0), op
        available |= set(op.outputs)
    assert ops[-1].outputs == tuple(int(d["index"]) for d in it.get_output_details())
    delegated = _litert.op_details(_interpreter(float_model, digits.x_eval[:1], undelegated=False))
    assert "DELEGATE" in {op.name for op in delegated}  # XNNPack took partitions over


def test_litert_preserve_all_tensors_keeps_intermediates_readable(
    model: Any, float_model: bytes, digits: Digits
) -> None:
    import keras

    """The arena reuses an intermediate's memory once it is consumed; preserved, every one
    still holds this batch's values after the run: each Keras layer's output."""
    x = digits.x_eval[:4]
    it = _interpreter(float_model, x)
    ops = [op for op in _litert.op_details(it) if op.name in ("CONV_2D", "MAX_POOL_2D")]
    layers = ["conv_a", "pool_a", "conv_b", "pool_b"]  # fused ReLUs: conv outputs are after it
    assert len(ops) == len(layers)
    probe = keras.Model(model.inputs, [model.get_layer(name).output for name in layers])
    for op, expected in zip(ops, probe.predict(x, verbose=0), strict=True):
        np.testing.assert_allclose(it.get_tensor(op.outputs[0]), expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(ModelError, match=r"not a valid \.tflite model"):
        _litert.new_interpreter(b"\x00\x00\x00\x00TFL3" + b"\xff" * 200, 1)


def test_litert_errors_are_the_ones_liteparity_catches(float_model: bytes) -> None:
    it = _litert.new_interpreter(float_model, 1)
    index = it.get_input_details()[0]["index"]
    it.allocate_tensors()
    with pytest.raises(_litert.LITERT_ERRORS):  # a dtype it does not take
        it.set_tensor(index, np.zeros((1, 8, 8, 1), np.int8))
    it.resize_tensor_input(index, [1, 8])
    with pytest.raises(_litert.LITERT_ERRORS):  # a shape the convolutions cannot take
        it.allocate_tensors()


def test_litert_schema_py_generated_reads_the_main_graph_and_its_field_slots(
    float_model: bytes, calibrated: bytes, digits: Digits
) -> None:
    graph = _litert.read_graph(float_model)
    it = _interpreter(float_model, digits.x_eval[:1])
    assert graph.subgraphs == 1
    assert graph.inputs == tuple(int(d["index"]) for d in it.get_input_details())
    assert graph.outputs == tuple(int(d["index"]) for d in it.get_output_details())
    ops = _litert.op_details(it)
    assert [(op.inputs, op.outputs) for op in graph.ops] == [(o.inputs, o.outputs) for o in ops]
    assert {op.custom_code for op in graph.ops} == {""}  # builtin ops only

    def vector(field: int | None) -> tuple[int, int]:
        """Where the vector a uoffset field points to starts, and its length."""
        assert field is not None
        start = field + struct.unpack_from("<I", float_model, field)[0]
        return start + 4, struct.unpack_from("<I", float_model, start)[0]

    start, length = vector(graph.outputs_field)  # the slot of the subgraph's outputs
    assert struct.unpack_from(f"<{length}i", float_model, start) == graph.outputs
    assert vector(graph.operators_field)[1] == len(graph.ops)  # the slot of its operators

    debug = _litert.read_graph(_tf.quantize_calibrated(calibrated, numeric_verify=True))
    assert NUMERIC_VERIFY in {op.custom_code for op in debug.ops}
    with pytest.raises(ModelError):
        _litert.read_graph(b"not a model")


def test_litert_preload_imports_the_interpreter_and_the_schema() -> None:
    _litert.preload()
    assert {"ai_edge_litert.interpreter", "ai_edge_litert.schema_py_generated"} <= set(sys.modules)
