"""Preparing real float ``.tflite`` models for ai-edge-quantizer: the copy computes the very same
bits, has a signature, no DEQUANTIZE of float16 constants, and AEQ calibrates it."""

from __future__ import annotations

import time

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter

from liteparity.convert.tflite_prep import SIGNATURE_KEY, prepare_tflite
from liteparity.runtime.litemodel import LiteModel
from tests.shared_models import MODELS

MODEL_NAMES = list(MODELS)


def outputs_one_at_a_time(content: bytes, photos: np.ndarray) -> dict[str, np.ndarray]:
    """The oracle: a plain LiteRT interpreter (default delegate: the selfie model's custom op
    needs it), one photo per invocation, outputs by tensor name."""
    interpreter = Interpreter(model_content=content)
    interpreter.allocate_tensors()
    (source,) = interpreter.get_input_details()
    outputs: dict[str, list[np.ndarray]] = {}
    for photo in photos:
        interpreter.set_tensor(source["index"], photo[None])
        interpreter.invoke()
        for detail in interpreter.get_output_details():
            outputs.setdefault(detail["name"], []).append(interpreter.get_tensor(detail["index"]))
    return {name: np.concatenate(parts) for name, parts in outputs.items()}


def constant_dequantize_ops(content: bytes) -> int:
    """DEQUANTIZE ops whose input is a constant buffer, read with the schema directly."""
    model = schema.ModelT.InitFromPackedBuf(content, 0)
    count = 0
    for graph in model.subgraphs:
        for op in graph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            if (
                max(code.builtinCode, code.deprecatedBuiltinCode)
                != schema.BuiltinOperator.DEQUANTIZE
            ):
                continue
            data = model.buffers[graph.tensors[op.inputs[0]].buffer].data
            count += data is not None and len(data) > 0
    return count


def tensor_types(content: bytes) -> set[int]:
    model = schema.ModelT.InitFromPackedBuf(content, 0)
    return {t.type for g in model.subgraphs for t in g.tensors}


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_prepared_copy_computes_the_same_bits(name: str) -> None:
    model = MODELS[name]
    original = model.path.read_bytes()
    prepared = prepare_tflite(original)
    photos = model.photos(6)
    expected = outputs_one_at_a_time(original, photos)
    got = outputs_one_at_a_time(prepared.content, photos)
    assert got.keys() == expected.keys()
    for output, values in expected.items():
        assert got[output].dtype == np.float32
        assert np.array_equal(got[output], values), output  # bit for bit, not approximately
    assert prepared.folded > 0 and prepared.signed


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_prepared_copy_is_float32_signed_and_without_float16_dequantize(name: str) -> None:
    original = MODELS[name].path.read_bytes()
    prepared = prepare_tflite(original)
    assert constant_dequantize_ops(original) > 0  # every MediaPipe model has them
    assert constant_dequantize_ops(prepared.content) == 0
    assert schema.TensorType.FLOAT16 in tensor_types(original)
    assert schema.TensorType.FLOAT16 not in tensor_types(prepared.content)
    plain = Interpreter(model_content=original)
    assert plain.get_signature_list() == {}
    signed = Interpreter(model_content=prepared.content)
    inputs = [d["name"] for d in plain.get_input_details()]
    outputs = [d["name"] for d in plain.get_output_details()]
    assert signed.get_signature_list() == {
        SIGNATURE_KEY: {"inputs": sorted(inputs), "outputs": sorted(outputs)}
    }
    assert prepared.signature_key == SIGNATURE_KEY
    # the names liteparity already gives this model's inputs, in its order
    assert prepared.input_names == tuple(i.name for i in LiteModel(original).inputs)


@pytest.mark.filterwarnings("ignore:.*experimental_preserve_all_tensors")  # AEQ's own choice
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_ai_edge_quantizer_calibrates_the_prepared_copy_only(name: str) -> None:
    from ai_edge_quantizer import quantizer, recipe

    model = MODELS[name]
    original = model.path.read_bytes()
    prepared = prepare_tflite(original)
    photos = model.photos(2)
    (input_name,) = prepared.input_names
    data = {SIGNATURE_KEY: [{input_name: photo[None]} for photo in photos]}
    with pytest.raises(ValueError, match="signature"):
        quantizer.Quantizer(bytearray(original), recipe.static_wi8_ai8()).calibrate(data)
    ranges = quantizer.Quantizer(bytearray(prepared.content), recipe.static_wi8_ai8()).calibrate(
        data
    )
    assert input_name in ranges
    low, high = float(ranges[input_name]["min"].min()), float(ranges[input_name]["max"].max())
    assert photos.min() <= low < high <= photos.max()  # what the photos span, measured by AEQ


def test_preparation_is_cheap_and_idempotent() -> None:
    for model in MODELS.values():
        original = model.path.read_bytes()
        times = []
        for _ in range(3):
            start = time.perf_counter()
            prepared = prepare_tflite(original)
            times.append(time.perf_counter() - start)
        assert np.median(times) < 1.0, (model.file, times)  # ~0.1 s on an idle machine
        again = prepare_tflite(prepared.content)
        assert again.content == prepared.content  # nothing left to fold, sign or upgrade
        assert again.input_names == prepared.input_names
        assert (again.folded, again.signed) == (0, False)


def test_old_op_codes_are_written_where_current_readers_look() -> None:
    """The face detector keeps its op codes in ``deprecated_builtin_code`` alone; readers of
    ``builtin_code`` (AEQ) would take every op for an ADD."""
    original = MODELS["face_detection_short_range"].path.read_bytes()
    before = schema.ModelT.InitFromPackedBuf(original, 0).operatorCodes
    assert {c.builtinCode for c in before} == {schema.BuiltinOperator.ADD}
    after = schema.ModelT.InitFromPackedBuf(prepare_tflite(original).content, 0).operatorCodes
    assert [c.builtinCode for c in after] == [c.deprecatedBuiltinCode for c in before]
