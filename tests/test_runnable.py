"""Quantized models LiteRT refuses: one line naming the op, the tensor and what the kernel
requires, found in the model's tensors. Two are real AEQ outputs, two are planted."""

from __future__ import annotations

import flatbuffers
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter

from liteparity.convert.aeq import quantize_tflite
from liteparity.convert.runnable import check_runnable
from liteparity.convert.tflite_prep import prepare_tflite
from liteparity.errors import ConversionError
from tests.shared_models import MODELS

FACE = "face_detection_short_range"


def pack(model: object) -> bytes:
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")  # type: ignore[attr-defined]
    return bytes(builder.Output())


def refusal(content: bytes) -> str:
    with pytest.raises(ConversionError) as refused:
        check_runnable(content, "recipe x")
    text = str(refused.value)
    assert "\n" not in text and text.startswith("recipe x: LiteRT refuses the model: ")
    return text.removeprefix("recipe x: LiteRT refuses the model: ")


def aeq_static_int8(content: bytes, signature: str, input_name: str) -> bytes:
    """AEQ's static int8 recipe on ``content``, called directly (no liteparity in between)."""
    from ai_edge_quantizer import quantizer, recipe

    photos = MODELS[FACE].photos(4)
    engine = quantizer.Quantizer(bytearray(content), recipe.static_wi8_ai8())
    ranges = engine.calibrate({signature: [{input_name: p[None]} for p in photos]})
    return bytes(engine.quantize(ranges, enable_progress_report=False).quantized_model)


def first_op(content: bytes, op: int) -> tuple[object, object, object]:
    model = schema.ModelT.InitFromPackedBuf(content, 0)
    graph = model.subgraphs[0]
    for candidate in graph.operators:
        code = model.operatorCodes[candidate.opcodeIndex]
        if max(code.builtinCode, code.deprecatedBuiltinCode) == op:
            return model, graph, candidate
    raise AssertionError("no such op")


@pytest.mark.filterwarnings("ignore:.*experimental_preserve_all_tensors")  # AEQ's own choice
def test_aeq_int8_of_a_model_with_old_op_codes_is_refused_for_its_weights_zero_point() -> None:
    """What AEQ does to MediaPipe models whose op codes sit in the old field only (the issue's
    "3 of 6"): it takes every op for an ADD and quantizes convolution weights like
    activations, with a zero point LiteRT's int8 convolution refuses. Preparation upgrades the
    codes, so liteparity's own ``int8`` of the same model runs."""
    prepared = prepare_tflite(MODELS[FACE].path.read_bytes())
    model = schema.ModelT.InitFromPackedBuf(prepared.content, 0)
    for code in model.operatorCodes:
        code.builtinCode = schema.BuiltinOperator.ADD  # as the file ships (deprecated field)
    old_codes = pack(model)
    quantized = aeq_static_int8(old_codes, prepared.signature_key, prepared.input_names[0])
    _, graph, conv = first_op(quantized, schema.BuiltinOperator.CONV_2D)
    weights = graph.tensors[conv.inputs[1]]
    zero_point = int(np.asarray(weights.quantization.zeroPoint)[0])
    assert weights.type == schema.TensorType.INT8 and zero_point != 0
    output = graph.tensors[conv.outputs[0]].name.decode()
    assert refusal(quantized) == (
        f"CONV_2D '{output}': int8 weights with zero point {zero_point}; LiteRT requires 0 for "
        "int8 convolution weights"
    )
    runs = quantize_tflite(MODELS[FACE].path.read_bytes(), "int8", [[MODELS[FACE].photos(4)]])
    Interpreter(model_content=runs).allocate_tensors()


@pytest.mark.filterwarnings("ignore:divide by zero", "ignore:invalid value")  # AEQ's zero scale
def test_aeq_blockwise_int4_with_a_zero_scale_is_refused_with_its_tensor() -> None:
    """AEQ's ``dynamic_wi4b32_afp32`` gives a hand-landmark weight block whose float16 scale is
    0; XNNPack refuses it. The tensor is found here by reading the model the same recipe makes
    when AEQ is called directly."""
    from ai_edge_quantizer import quantizer, recipe

    original = MODELS["hand_landmark_lite"].path.read_bytes()
    direct = quantizer.Quantizer(
        bytearray(prepare_tflite(original).content), recipe.dynamic_wi4b32_afp32()
    )
    content = bytes(direct.quantize(enable_progress_report=False).quantized_model)
    model = schema.ModelT.InitFromPackedBuf(content, 0)
    graph = model.subgraphs[0]
    zero_scaled = []
    for tensor in graph.tensors:
        details = tensor.quantization.details if tensor.quantization else None
        if tensor.type == schema.TensorType.INT4 and details is not None:
            buffer = model.buffers[graph.tensors[details.scales].buffer]
            data = content[buffer.offset : buffer.offset + buffer.size]  # AEQ writes them after
            scales = np.frombuffer(data, "<f2")
            if (scales == 0).any():
                zero_scaled.append((tensor.name.decode(), int(np.flatnonzero(scales == 0)[0])))
    assert zero_scaled
    name, block = zero_scaled[0]
    with pytest.raises(ConversionError) as refused:
        quantize_tflite(original, "aeq:dynamic_wi4b32_afp32")
    text = str(refused.value)
    assert "\n" not in text
    assert text.startswith("recipe aeq:dynamic_wi4b32_afp32: LiteRT refuses the model: ")
    assert text.endswith(
        f": int4 weights '{name}' with scale 0 in block {block}; LiteRT requires positive scales"
    )
    assert "FULLY_CONNECTED '" in text


@pytest.fixture(scope="module")
def face_int8() -> bytes:
    return quantize_tflite(MODELS[FACE].path.read_bytes(), "int8", [[MODELS[FACE].photos(4)]])


def test_planted_weight_zero_point(face_int8: bytes) -> None:
    model, graph, conv = first_op(face_int8, schema.BuiltinOperator.CONV_2D)
    weights = graph.tensors[conv.inputs[1]]
    weights.quantization.zeroPoint = np.full_like(weights.quantization.zeroPoint, 3)
    output = graph.tensors[conv.outputs[0]].name.decode()
    assert refusal(pack(model)) == (
        f"CONV_2D '{output}': int8 weights with zero point 3; LiteRT requires 0 for int8 "
        "convolution weights"
    )


def test_planted_int16_activation_zero_point() -> None:
    face = MODELS[FACE]
    content = quantize_tflite(face.path.read_bytes(), "int16x8", [[face.photos(4)]])
    model, graph, relu = first_op(content, schema.BuiltinOperator.RELU)
    tensor = graph.tensors[relu.outputs[0]]
    assert tensor.type == schema.TensorType.INT16
    tensor.quantization.zeroPoint = np.array([5], np.int64)
    name = tensor.name.decode()
    assert refusal(pack(model)) == (
        f"RELU '{name}': int16 tensor '{name}' with zero point 5; LiteRT requires 0 for int16 "
        "activations"
    )
