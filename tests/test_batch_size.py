"""The same command gives the same numbers on every run, whatever the batching: on the real
face detector (batch 1 baked into its reshapes) and hand landmark model (batches correctly),
each against an ai-edge-quantizer int8 candidate, with sample counts that divide and do not
divide by 8, a forced ``--batch-size`` and a ``--memory-limit`` that leaves room for one row.
Oracle: a plain interpreter loop, one sample at a time, written here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter
from typer.testing import CliRunner

import liteparity
from liteparity.cli.app import app
from liteparity.convert.aeq import quantize_tflite
from liteparity.data.binding import Binding
from tests.shared_models import MODELS

FACE, HAND = MODELS["face_detection_short_range"], MODELS["hand_landmark_lite"]


def loop(path: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every output in real values, one photo per invocation: by signature key where the
    model has a signature, else by tensor name."""
    it = Interpreter(model_path=str(path))
    signed = bool(it.get_signature_list())
    if signed:
        runner = it.get_signature_runner()
        (name, inp), details = *runner.get_input_details().items(), runner.get_output_details()
    else:
        it.allocate_tensors()
        (inp,), details = it.get_input_details(), {d["name"]: d for d in it.get_output_details()}
    out: dict[str, list[np.ndarray]] = {}
    for photo in x:
        q = photo[None]
        if inp["dtype"] != np.float32:
            scale, zero = inp["quantization"]
            q = np.clip(np.round(q / scale) + zero, -128, 127).astype(inp["dtype"])
        if signed:
            got = runner(**{name: q})
        else:
            it.set_tensor(inp["index"], q)
            it.invoke()
            got = {key: it.get_tensor(d["index"]) for key, d in details.items()}
        for key, value in got.items():
            real = value.astype(np.float32)
            if value.dtype != np.float32:
                scale, zero = details[key]["quantization"]
                real = (real - zero) * scale
            out.setdefault(key, []).append(real)
    return {key: np.concatenate(v) for key, v in out.items()}


@pytest.fixture(scope="module")
def int8(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """AEQ int8 candidates, calibrated on photos that are not evaluated."""
    out = tmp_path_factory.mktemp("int8")
    paths = {}
    for model in (FACE, HAND):
        paths[model.file] = out / model.file
        content = quantize_tflite(model.path.read_bytes(), "int8", [[model.photos(8, 40)]])
        paths[model.file].write_bytes(content)
    return paths


def numbers(result: liteparity.CheckResult) -> list[dict]:
    """Every number of every output, without timings."""
    return [{o.name: o.metrics for o in c.outputs} for c in result.candidates]


def assert_loop_numbers(row: object, reference: dict, quantized: dict) -> None:
    """Each output's errors equal the loops' outputs' (float64 here)."""
    for o in row.outputs:  # type: ignore[attr-defined]
        ref = reference[o.name].astype(np.float64)
        diff = ref - quantized[o.name]
        assert o.metrics["max_abs_error"] == pytest.approx(np.abs(diff).max(), rel=1e-6)
        assert o.metrics["rmse"] == pytest.approx(np.sqrt(np.mean(diff**2)), rel=1e-6)
        sqnr = 10 * np.log10(np.sum(ref**2) / np.sum(diff**2))
        assert o.metrics["sqnr_db"] == pytest.approx(sqnr, rel=1e-6)


@pytest.mark.slow  # six runs of check, 23 s on 2 cores (test_batching.py covers the model)
@pytest.mark.parametrize("count", [16, 13])
def test_the_face_detector_pair_gives_the_loops_numbers_on_every_run(int8, count) -> None:
    x = FACE.photos(count)
    candidate = int8[FACE.file]
    runs = [liteparity.check(FACE.path, data=x, candidates=[candidate]) for _ in range(3)]
    assert numbers(runs[0]) == numbers(runs[1]) == numbers(runs[2])
    reference, quantized = loop(FACE.path, x), loop(candidate, x)
    (row,) = runs[0].candidates
    assert row.error is None and row.batch_size == 1  # batching refused: baked batch 1
    assert runs[0].data["evaluation_samples"] == count
    assert_loop_numbers(row, reference, quantized)


def test_a_forced_batch_the_face_detector_cannot_take_is_refused_naming_the_option(
    int8, tmp_path: Path
) -> None:
    data = tmp_path / "faces.npy"
    np.save(data, FACE.photos(9))
    argv = ["check", str(FACE.path), "--candidate", str(int8[FACE.file]), "--data", str(data)]
    result = CliRunner().invoke(app, [*argv, "--batch-size", "8"])
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split())  # the console wraps long lines
    assert "--batch-size 8 changes the model's outputs" in said
    assert "use --batch-size 1" in said and "Traceback" not in said
    refused = CliRunner().invoke(app, [*argv, "--batch-size", "0"])
    assert refused.exit_code == 2 and "--batch-size must be at least 1, got 0" in refused.output


def test_forced_batches_and_a_tiny_memory_limit_keep_the_numbers(int8, monkeypatch) -> None:
    """The hand model batches correctly: a forced batch of 4 is used, a limit that leaves
    room for one row streams one row at a time, and every number stays the loop's."""
    x = HAND.photos(10)
    candidate = int8[HAND.file]
    blocks: list[int] = []
    batches = Binding.labelled_blocks

    def recording(self: Binding, rows: np.ndarray, batch_rows: int, outputs):  # type: ignore[no-untyped-def]
        blocks.append(batch_rows)
        return batches(self, rows, batch_rows, outputs)

    monkeypatch.setattr(Binding, "labelled_blocks", recording)
    default = liteparity.check(HAND.path, data=x, candidates=[candidate])
    forced = liteparity.check(HAND.path, data=x, candidates=[candidate], batch_size=4)
    tiny = liteparity.check(HAND.path, data=x, candidates=[candidate], memory_limit="1MB")
    assert blocks[-3:] == [256, 256, 1]
    assert forced.candidates[0].batch_size == 4 and tiny.candidates[0].batch_size == 1
    reference, quantized = loop(HAND.path, x), loop(candidate, x)
    for result in (default, forced, tiny):
        assert_loop_numbers(result.candidates[0], reference, quantized)
    first, *others = (numbers(r) for r in (default, forced, tiny))
    for other in others:  # the same up to the order a sum is accumulated in
        for a, b in zip(first[0].values(), other[0].values(), strict=True):
            assert a.keys() == b.keys()
            for key in a:
                assert a[key] == pytest.approx(b[key], rel=1e-9, nan_ok=True), key
