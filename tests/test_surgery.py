"""Every tensor readable with the delegate on, by listing it among the model's outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from liteparity import _litert, qparams
from liteparity.convert.converter import convert, requantize
from liteparity.convert.recipes import RECIPES
from liteparity.data.prepare import calibration_from
from liteparity.layerwise.probe import NUMERIC_VERIFY
from liteparity.reference.keras import KerasSource
from liteparity.runtime import surgery
from liteparity.runtime.litemodel import LiteModel
from tests.conftest import Digits


@pytest.fixture(scope="session")
def calibrated(cnn: Path, digits: Digits) -> bytes:
    calibration = calibration_from([[digits.x_cal]])
    return convert(KerasSource(str(cnn)), RECIPES["int8"], calibration, calibrate_only=True)


def _undelegated(content: bytes, x: np.ndarray):
    it = _litert.new_interpreter(content, 1, undelegated=True)
    index = it.get_input_details()[0]["index"]
    it.resize_tensor_input(index, list(x.shape))
    it.allocate_tensors()
    it.set_tensor(index, x)
    it.invoke()
    return it


@pytest.mark.parametrize("kind", ["float", "float16", "int8"])
def test_exposed_tensors_equal_the_undelegated_interpreter(
    calibrated: bytes, cnn: Path, digits: Digits, kind: str
) -> None:
    """float16 weights are dequantized once at load, into XNNPack's own buffers: those
    tensors are not activations, and every activation read is real."""
    content = {
        "float": lambda: calibrated,
        "float16": lambda: convert(KerasSource(str(cnn)), RECIPES["float16"]),
        "int8": lambda: requantize(calibrated),
    }[kind]()
    exposed = surgery.expose_tensors(content)
    assert exposed is not None
    x = digits.x_eval[:16]
    plain, inspected = LiteModel(content), LiteModel(content, inspect=True)
    # the model's own outputs keep their places and values
    assert [o.name for o in inspected.outputs] == [o.name for o in plain.outputs]
    np.testing.assert_array_equal(inspected.run([x])[0], plain.run([x])[0])
    anatomy = plain.anatomy()
    info = inspected.inputs[0]
    fed = qparams.quantize(x, info.quantization) if info.quantization else x
    reference = _undelegated(content, fed)
    interp = next(inspected.invocations([x], step=16))
    assert any(op.name == "DELEGATE" for op in _litert.op_details(interp))
    compared = 0
    for t in anatomy.activations():
        if t.dtype not in ("float32", "int8"):
            continue
        ours, theirs = interp.get_tensor(t.index), reference.get_tensor(t.index)
        assert ours.shape == theirs.shape, t.name
        if kind != "int8":  # XNNPack and the builtin kernels differ by rounding only
            scale = max(float(np.abs(theirs).max()), 1e-6)
            assert np.abs(ours - theirs).max() <= 1e-5 * scale, t.name
        else:  # integer kernels may round a value to the neighbouring code
            assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1, t.name
        compared += 1
    assert compared >= 6
    folded = [op for op in anatomy.ops if op.name == "DEQUANTIZE"]
    assert bool(folded) == (kind == "float16")
    assert not {i for op in folded for i in op.outputs} & {t.index for t in anatomy.activations()}


def test_dropped_ops_are_gone_and_indices_stay(calibrated: bytes) -> None:
    debug = requantize(calibrated, numeric_verify=True)
    exposed = surgery.expose_tensors(debug, {NUMERIC_VERIFY})
    assert exposed is not None
    before, after = LiteModel(debug).anatomy(), LiteModel(exposed).anatomy()
    verifies = [op for op in before.ops if op.name == NUMERIC_VERIFY]
    assert len(verifies) >= 5
    assert not [op for op in after.ops if op.name == NUMERIC_VERIFY]
    assert len(after.ops) == len(before.ops) - len(verifies)
    # the model's own tensors keep their indices (unnamed ones are the kernels' scratch)
    named = [(t.index, t.name) for t in before.tensors if t.name]
    assert [(t.index, t.name) for t in after.tensors if t.name] == named
    kept_outputs = {i for op in after.ops for i in op.outputs}
    assert set(after.outputs) == kept_outputs  # every computed tensor, nothing dropped


def test_control_flow_falls_back_to_the_undelegated_interpreter(digits: Digits) -> None:
    """A recurrent layer converts to WHILE with body subgraphs: no rewrite, and inspection
    still reads every tensor (undelegated)."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((8, 8), batch_size=1), keras.layers.SimpleRNN(4), keras.layers.Dense(3)]
    )
    content = convert(KerasSource("rnn", model=model), RECIPES["float32"])
    assert surgery.expose_tensors(content) is None
    assert surgery.expose_tensors(b"not a model") is None
    inspected = LiteModel(content, inspect=True)
    x = digits.x_eval[:1, ..., 0]
    interp = next(inspected.invocations([x]))
    values = [interp.get_tensor(t.index) for t in inspected.anatomy().activations()]
    np.testing.assert_allclose(values[-1], model.predict(x, verbose=0), rtol=1e-4, atol=1e-5)


def test_inspected_batches_fit_the_memory_budget(
    calibrated: bytes, digits: Digits, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every intermediate tensor of a batch is kept: the batch shrinks to fit the budget."""
    from liteparity.runtime import litemodel

    x = digits.x_eval[:1]
    it = _undelegated(calibrated, x)
    per_sample = sum(
        it.get_tensor(i).nbytes for op in _litert.op_details(it) for i in op.outputs if i >= 0
    )
    model = LiteModel(calibrated, inspect=True)
    monkeypatch.setattr(litemodel, "INSPECT_BUDGET_BYTES", 3 * per_sample + 1)
    assert model.inspect_batch(32) == 3
    assert model.inspect_batch(2) == 2
    monkeypatch.setattr(litemodel, "INSPECT_BUDGET_BYTES", per_sample // 2)
    assert model.inspect_batch(32) == 1


def test_warm_up_keeps_a_model_with_free_dimensions_batchable() -> None:
    """Zeros of an invented height and width would not fit a VALID 3x3 convolution; the
    warm-up must not take that for a batch size baked into the graph."""
    import keras

    model = keras.Sequential(
        [keras.Input((None, None, 1)), keras.layers.Conv2D(2, 3), keras.layers.ReLU()]
    )
    content = convert(KerasSource("free", model=model), RECIPES["float32"])
    lite = LiteModel(content)
    lite.warm_up(8)
    assert lite.batchable
    x = np.random.default_rng(0).random((4, 6, 5, 1), dtype=np.float32)
    np.testing.assert_allclose(lite.run([x])[0], model.predict(x, verbose=0), atol=1e-5)
