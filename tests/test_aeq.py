"""ai-edge-quantizer as the engine for float ``.tflite`` sources, on three real MediaPipe models
and real photos; every output is measured by a plain LiteRT loop written here."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter

from liteparity.convert.aeq import TFLiteQuantizer, aeq_recipe_names, quantize_tflite
from liteparity.convert.tflite_prep import prepare_tflite
from liteparity.errors import DataError, UsageError
from tests.shared_models import MODELS

#: Calibration and evaluation photos: small, the point is the pipeline, not AEQ's accuracy.
CALIBRATION, EVALUATION = 8, 8

#: Quantization noise leaves each output correlated with the float model's at r = 0.75-1.0 on
#: these photos (hand_landmark_lite's world landmarks are the lowest); a pipeline fault (photos
#: scaled wrong, an input or output bound to the wrong name, calibration not applied) leaves
#: r near 0, as AEQ's own int4 weight-only recipe does to the hand model's handedness (0.24).
MIN_CORRELATION = 0.6


def run(content: bytes, photos: np.ndarray) -> dict[str, np.ndarray]:
    """The oracle: a plain interpreter, one photo per invocation, real-valued outputs by name
    (signature names where the model has a signature, tensor names otherwise)."""
    interpreter = Interpreter(model_content=content)
    interpreter.allocate_tensors()
    signatures = interpreter.get_signature_list()
    outputs: dict[str, list[np.ndarray]] = {}
    for photo in photos:
        if signatures:
            runner = interpreter.get_signature_runner()
            ((name, detail),) = runner.get_input_details().items()
            values = runner(**{name: _quantized(photo[None], detail)})
            details = runner.get_output_details()
            got = {k: _real(v, details[k]) for k, v in values.items()}
        else:
            (detail,) = interpreter.get_input_details()
            interpreter.set_tensor(detail["index"], photo[None])
            interpreter.invoke()
            got = {
                d["name"]: interpreter.get_tensor(d["index"])
                for d in interpreter.get_output_details()
            }
        for name, value in got.items():
            outputs.setdefault(name, []).append(value)
    return {name: np.concatenate(parts) for name, parts in outputs.items()}


def _quantized(x: np.ndarray, detail: dict) -> np.ndarray:
    if detail["dtype"] == np.float32:
        return x
    scale, zero_point = detail["quantization"]
    info = np.iinfo(detail["dtype"])
    q = np.round(x / scale) + zero_point
    return np.clip(q, info.min, info.max).astype(detail["dtype"])


def _real(values: np.ndarray, detail: dict) -> np.ndarray:
    if values.dtype == np.float32:
        return values
    scale, zero_point = detail["quantization"]
    return (values.astype(np.float32) - zero_point) * scale


def activation_types(content: bytes) -> set[str]:
    """Types of the tensors ops compute at run time (not constants), read from the schema."""
    model = schema.ModelT.InitFromPackedBuf(content, 0)
    names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    graph = model.subgraphs[0]
    computed = {int(i) for op in graph.operators for i in op.outputs}
    return {names[graph.tensors[i].type] for i in computed}


def calibration_batches(name: str, sizes: tuple[int, ...] = (CALIBRATION,)) -> list[list]:
    photos = MODELS[name].photos(sum(sizes))
    edges = np.cumsum((0, *sizes))
    return [[photos[a:b]] for a, b in itertools.pairwise(edges)]


def assert_close_to_float(name: str, quantized: bytes) -> None:
    model = MODELS[name]
    photos = model.photos(EVALUATION, offset=CALIBRATION)
    expected = run(model.path.read_bytes(), photos)
    got = run(quantized, photos)
    assert got.keys() == expected.keys()
    for output, values in expected.items():
        assert got[output].shape == values.shape
        assert np.isfinite(got[output]).all()
        r = np.corrcoef(values.ravel(), got[output].ravel())[0, 1]
        assert r >= MIN_CORRELATION, (name, output, r)


_FAST = {("face_detection_short_range", "dynamic"), ("face_detection_short_range", "int8")}
CASES = [
    pytest.param(m, r, marks=() if (m, r) in _FAST else pytest.mark.slow)
    for m in MODELS
    for r in ("dynamic", "int8", "int16x8")
]


@pytest.mark.parametrize(("name", "recipe"), CASES)
def test_stable_recipes_run_and_stay_close_to_the_float_model(name: str, recipe: str) -> None:
    original = MODELS[name].path.read_bytes()
    quantized = quantize_tflite(original, recipe, calibration_batches(name))
    assert_close_to_float(name, quantized)
    computed = activation_types(quantized)
    if recipe == "dynamic":  # int8 weights: a quarter of the float32 weights' bytes
        assert len(quantized) < 0.5 * len(prepare_tflite(original).content)
        assert computed == {"FLOAT32"}
    else:
        assert {"int8": "INT8", "int16x8": "INT16"}[recipe] in computed
        details = Interpreter(model_content=quantized)
        assert all(d["dtype"] == np.float32 for d in details.get_input_details())
        assert all(d["dtype"] == np.float32 for d in details.get_output_details())


@pytest.mark.parametrize("name", list(MODELS))
def test_float16_gives_back_the_float16_original_bit_for_bit(name: str) -> None:
    """These models ship float16 weights: float16 → float32 (preparation) → float16 (the
    recipe) is exact, and the outputs are the original's, bit for bit."""
    model = MODELS[name]
    original = model.path.read_bytes()
    quantized = quantize_tflite(original, "float16")
    photos = model.photos(3)
    expected, got = run(original, photos), run(quantized, photos)
    assert got.keys() == expected.keys()
    for output, values in expected.items():
        assert np.array_equal(got[output], values), output


def test_aeq_recipe_by_name_and_int8_input_calibrated_on_the_photos() -> None:
    """``aeq:static_wi8_ai8`` as AEQ ships it: int8 input and outputs; the input's quantized
    range is what the calibration photos span, [-1, 1] for the face detector."""
    name = "face_detection_short_range"
    quantized = quantize_tflite(
        MODELS[name].path.read_bytes(), "aeq:static_wi8_ai8", calibration_batches(name)
    )
    (detail,) = Interpreter(model_content=quantized).get_input_details()
    assert detail["dtype"] == np.int8
    scale, zero_point = detail["quantization"]
    low, high = (-128 - zero_point) * scale, (127 - zero_point) * scale
    assert abs(low - (-1.0)) < 0.1 and abs(high - 1.0) < 0.1, (low, high)
    assert_close_to_float(name, quantized)


def test_aeq_weight_only_recipe_by_name() -> None:
    name = "hand_landmark_lite"
    original = MODELS[name].path.read_bytes()
    quantized = quantize_tflite(original, "aeq:weight_only_wi8_afp32")
    assert activation_types(quantized) == {"FLOAT32"}  # weights dequantized, float compute
    assert len(quantized) < 0.5 * len(prepare_tflite(original).content)
    assert_close_to_float(name, quantized)


def test_calibration_in_batches_equals_one_batch_and_reports_progress() -> None:
    name = "face_detection_short_range"
    original = MODELS[name].path.read_bytes()
    events: list[tuple[str, int, int]] = []
    split = quantize_tflite(
        original, "int8", calibration_batches(name, (3, 5)), lambda *e: events.append(e)
    )
    whole = quantize_tflite(original, "int8", calibration_batches(name))
    assert split == whole  # AEQ's statistics carry from one batch to the next
    assert [e for e in events if e[0] == "calibrating"] == [
        ("calibrating", 0, 8),
        ("calibrating", 3, 8),
        ("calibrating", 8, 8),
    ]
    assert events[-1] == ("quantizing (int8)", 1, 1)


def test_one_calibration_serves_every_recipe() -> None:
    name = "face_detection_short_range"
    events: list[tuple[str, int, int]] = []
    quantizer = TFLiteQuantizer(
        MODELS[name].path.read_bytes(), calibration_batches(name), lambda *e: events.append(e)
    )
    first = quantizer.quantize("int8")
    quantizer.quantize("int16x8")
    assert sum(e == ("calibrating", 0, CALIBRATION) for e in events) == 1
    assert quantizer.quantize("int8") == first


def test_unknown_names_list_the_valid_ones() -> None:
    content = MODELS["face_detection_short_range"].path.read_bytes()
    with pytest.raises(UsageError) as unknown:
        quantize_tflite(content, "aeq:no_such_recipe")
    text = str(unknown.value)
    assert "\n" not in text and "'aeq:no_such_recipe'" in text
    names = aeq_recipe_names()
    assert {
        "aeq:weight_only_wi4_afp32",
        "aeq:dynamic_wi4_afp32",
        "aeq:dynamic_wi4b32_afp32",
    } <= set(names)
    assert all(n in text for n in names)
    assert not any("gemma" in n for n in names)  # LiteRT-LM recipes map other signatures
    with pytest.raises(UsageError) as stable:
        quantize_tflite(content, "legacy-uint8")
    text = str(stable.value)
    assert "\n" not in text
    assert all(n in text for n in ("dynamic", "float16", "int8", "int16x8", "aeq:<name>"))


def test_calibration_data_must_be_given_and_fit() -> None:
    name = "face_detection_short_range"
    content = MODELS[name].path.read_bytes()
    with pytest.raises(UsageError, match="needs calibration data"):
        quantize_tflite(content, "int8")
    photos = MODELS[name].photos(2)
    with pytest.raises(DataError, match=r"1 input\(s\) \(input\) but the calibration data gives 2"):
        quantize_tflite(content, "int8", [[photos, photos]])


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )


def test_ai_edge_quantizer_is_imported_only_when_used() -> None:
    done = _python(
        "import sys, liteparity.cli.app, liteparity.convert.aeq\n"
        "assert 'ai_edge_quantizer' not in sys.modules, 'imported'\n"
    )
    assert done.returncode == 0, done.stderr


def test_missing_ai_edge_quantizer_gives_the_install_line() -> None:
    done = _python(
        "import sys\n"
        "sys.modules['ai_edge_quantizer'] = None  # as if not installed\n"
        "from liteparity.convert.aeq import quantize_tflite\n"
        "from liteparity.errors import ConversionError\n"
        "try:\n"
        "    quantize_tflite(b'', 'dynamic')\n"
        "except ConversionError as exc:\n"
        "    print(exc)\n"
    )
    assert done.stdout.strip() == (
        "quantizing a .tflite needs ai-edge-quantizer: pip install 'ai-edge-quantizer==0.10.*'"
    )


def test_locating_a_tflite_sources_int8_imports_no_tensorflow(tmp_path) -> None:
    """ai-edge-quantizer makes a .tflite's int8: neither this process nor a converter
    process imports TensorFlow (seconds of a core on a run that may take less)."""
    from tests.unit import tiny

    model = tmp_path / "tiny.tflite"
    model.write_bytes(tiny.float_model())
    data = tmp_path / "x.npy"
    np.save(data, tiny.grid_inputs(64))
    done = _python(
        "import json, sys\n"
        "from liteparity.convert import process\n"
        "started = []\n"
        "process.ConverterProcess.__init__ = lambda self, name: started.append(name)\n"
        "from liteparity import locate\n"
        f"result = locate({str(model)!r}, data={str(data)!r}, recipe='int8')\n"
        "assert result.layers, result\n"
        "tf = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
        "print(json.dumps([started, tf]))\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[[], []]"
