"""Worker jobs on tiny hand-built models, checked against values worked out by hand
(``tests/unit/tiny.py``): each job type in-process (milliseconds), the protocol's errors and
order, and a process worker giving what the in-process one gives."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from liteparity.errors import DataError, InterpreterError, ModelError, UsageError
from liteparity.layerwise.probe import ProbeLayers
from liteparity.layerwise.sensitivity import MeasureVariant
from liteparity.measure.stats import CollectTensorStats
from liteparity.runtime.jobs import InProcessWorker, Job
from liteparity.runtime.model_jobs import ReadTensors, RunModel
from liteparity.runtime.shared import SharedSlots
from liteparity.runtime.worker import Worker
from tests.unit import tiny

FLOAT, INT8 = tiny.float_model(), tiny.int8_model()
X = tiny.grid_inputs(48)
H, Y = tiny.float_outputs(X)
CODES, Y_INT8 = tiny.int8_codes(X)
H_SCALE, H_ZERO = tiny.H_Q


@pytest.fixture
def worker():
    with InProcessWorker() as w:
        yield w


# -- each job ---------------------------------------------------------------------------


def test_run_model_computes_the_network(worker: InProcessWorker) -> None:
    job = RunModel(FLOAT, tune=True, latency=True, anatomy=True)
    info, outputs, summary = worker.run(job, [[X[:40]], [X[40:]]])
    assert [i.name for i in info.inputs] == ["x"] and [o.name for o in info.outputs] == ["y"]
    assert [op.name for op in info.anatomy.ops] == ["FULLY_CONNECTED", "RELU"]
    assert np.array_equal(np.concatenate([o[0] for o in outputs]), Y.astype(np.float32))
    assert summary.batch_size in (1, 8, 32)  # tried on the first batch, 40 samples
    assert summary.latency_ms > 0
    assert worker.run(RunModel(FLOAT), [[X]])[2].latency_ms is None


def test_run_model_int8_follows_the_quantization_arithmetic(worker: InProcessWorker) -> None:
    _, (outputs,), _ = worker.run(RunModel(INT8), [[X]])
    assert np.array_equal(outputs[0], Y_INT8.astype(np.float32))


def test_read_tensors_gives_the_hidden_layer(worker: InProcessWorker) -> None:
    info = worker.start(RunModel(FLOAT, anatomy=True)).get()
    h = next(t.index for t in info.anatomy.activations() if t.name == "h")
    _, (values,), _ = worker.run(ReadTensors(FLOAT, (h,)), [[X[:5]]])
    assert list(values) == [h]
    assert np.array_equal(values[h], H[:5].astype(np.float32))


def test_probe_layers_measures_each_layer_against_the_float_model(
    worker: InProcessWorker,
) -> None:
    (targets, inputs), _, stats = worker.run(ProbeLayers(INT8, FLOAT), [[X[:20]], [X[20:]]])
    assert [t.name for t in targets] == ["x_q", "h", "y_q"]  # DEQUANTIZE is glue
    assert [t.twin is not None for t in targets] == [False, True, False]
    assert [i.name for i in inputs] == ["x"]
    h = stats["h"]
    diff = (CODES - H_ZERO) * H_SCALE - H
    got = h.propagated.to_dict()
    assert got["num_elements"] == diff.size
    assert got["mean_error"] == pytest.approx(diff.mean(), rel=1e-6)
    assert got["max_abs_error"] == pytest.approx(np.abs(diff).max(), rel=1e-6)
    assert got["mean_squared_error"] == pytest.approx(np.mean(diff**2), rel=1e-6)
    want_sqnr = 10 * math.log10(np.sum(H**2) / np.sum(diff**2))
    assert got["sqnr_db"] == pytest.approx(want_sqnr, rel=1e-6)
    assert h.count == CODES.size
    saturated = np.sum(CODES == -128) + np.sum(CODES == 127)
    assert h.saturated == saturated and saturated > 0
    assert stats["x_q"].propagated.num_elements == 0  # no such tensor in the float model


def test_tensor_stats_count_saturation_and_bounds(worker: InProcessWorker) -> None:
    job = CollectTensorStats(INT8, batch_size=8, bounds={"h": (0.0, 1.0)})
    inputs, _, stats = worker.run(job, [[X[:30]], [X[30:]]])
    assert [i.name for i in inputs] == ["x"]
    real = (CODES - H_ZERO) * H_SCALE
    h = stats["h"]
    assert (h.count, h.min, h.max) == (real.size, real.min(), real.max())
    assert (h.at_qmin, h.at_qmax) == (np.sum(CODES == -128), np.sum(CODES == 127))
    assert (h.below, h.above) == (np.sum(real < 0.0), np.sum(real > 1.0))
    assert np.array_equal(h.channel_absmax, np.abs(real).max(axis=0))
    assert (stats["y_q"].min, stats["y_q"].at_qmin) == (0.0, 0)  # after RELU


def test_measure_variant_is_the_output_mse_against_the_reference(
    worker: InProcessWorker,
) -> None:
    reference = Y.astype(np.float32)
    batches = [[X[:16], reference[:16]], [X[16:], reference[16:]]]
    _, _, mse = worker.run(MeasureVariant(INT8), batches)
    assert mse == pytest.approx(np.mean((Y_INT8 - Y) ** 2), rel=1e-12)
    assert mse > 0


# -- the protocol -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Foreign(Job):
    """A job from outside the package: a worker would have to import this test module."""

    def start(self) -> None:
        return None


def test_a_job_from_outside_liteparity_is_refused(worker: InProcessWorker) -> None:
    with pytest.raises(UsageError, match=r"tests\.unit\.test_jobs\.Foreign .*liteparity package"):
        worker.start(Foreign())


def test_errors_come_back_from_the_call_that_raised_them(worker: InProcessWorker) -> None:
    with pytest.raises(UsageError, match="feed before start"):
        worker.feed([X]).get()
    with pytest.raises(ModelError, match=r"not a valid \.tflite model"):
        worker.start(RunModel(b"not a model")).get()
    worker.start(RunModel(FLOAT))
    bad = worker.feed([X[:, :3]])  # 3 values per sample instead of 4
    good = worker.feed([X])
    with pytest.raises(DataError):
        bad.get()
    assert np.array_equal(good.get()[0], Y.astype(np.float32))
    worker.feed([X[:3, :3]])
    with pytest.raises(DataError):  # nobody read that feed's error: the next get raises it
        worker.feed([X]).get()
    with pytest.raises(InterpreterError, match=r"^AttributeError: .*shape") as caught:
        worker.feed([None]).get()
    assert isinstance(caught.value.__cause__, AttributeError)  # in-process: kept for debugging


def test_replies_arrive_in_the_order_asked(worker: InProcessWorker) -> None:
    start = worker.start(RunModel(FLOAT))
    first, second = worker.feed([X[:4]]), worker.feed([X[4:9]])
    summary = worker.result()
    assert summary.get().batch_size == 1
    assert np.array_equal(second.get()[0], Y[4:9].astype(np.float32))
    assert np.array_equal(first.get()[0], Y[:4].astype(np.float32))
    assert [o.name for o in start.get().outputs] == ["y"]
    with pytest.raises(UsageError, match="result before start"):  # the result ended the job
        worker.result().get()


def test_start_drops_the_running_job(worker: InProcessWorker) -> None:
    worker.start(RunModel(FLOAT))
    worker.feed([X])
    _, (outputs,), _ = worker.run(RunModel(INT8), [[X]])
    assert np.array_equal(outputs[0], Y_INT8.astype(np.float32))


def test_the_callers_job_keeps_only_its_spec(worker: InProcessWorker) -> None:
    job = RunModel(FLOAT)
    worker.run(job, [[X]])
    assert job._model is None  # the worker ran its own (unpickled) copy
    assert job == RunModel(FLOAT) and "_model" not in repr(job)


def test_shared_memory_batches_are_read_in_place(worker: InProcessWorker) -> None:
    slots = SharedSlots()
    try:
        _, (outputs,), _ = worker.run(RunModel(FLOAT), [slots.put([X])])
    finally:
        slots.close()
    assert np.array_equal(outputs[0], Y.astype(np.float32))


# -- processes --------------------------------------------------------------------------


def _same(a: Any, b: Any) -> bool:
    """Equal, looking into dataclasses, containers and arrays."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(a, b)
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        return type(a) is type(b) and _same(vars(a), vars(b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def test_a_process_worker_gives_what_the_in_process_one_gives() -> None:
    h_index = 3  # "h" in the float model (x, w, b, h, y)
    cases = [
        (RunModel(INT8, anatomy=True), [[X[:20]], [X[20:]]]),
        (ReadTensors(FLOAT, (h_index,)), [[X[:6]]]),
        (ProbeLayers(INT8, FLOAT), [[X[:20]], [X[20:]]]),
        (CollectTensorStats(INT8, bounds={"h": (0.0, 1.0)}), [[X]]),
        (MeasureVariant(INT8), [[X, Y.astype(np.float32)]]),
    ]
    slots = SharedSlots()
    with Worker("parity") as process, InProcessWorker() as local:
        for job, batches in cases:
            shared = [slots.put(batch, 0) for batch in batches[:1]] + batches[1:]
            there = process.run(job, shared)  # the first batch through shared memory
            here = local.run(job, batches)
            assert _same(there, here), type(job).__name__
    slots.close()


def test_a_crash_is_one_line_naming_what_the_worker_was_doing() -> None:
    with Worker("doomed") as worker:
        worker.start(RunModel(FLOAT)).get()
        os.kill(worker._process.pid, signal.SIGSEGV)
        worker._process.wait()
        with pytest.raises(InterpreterError) as caught:
            worker.feed([X]).get()
    message = str(caught.value)
    assert message.startswith("interpreter crashed (signal 11, SIGSEGV) while running the model")
    assert "(batch 1)" in message and "\n" not in message


def test_the_worker_imports_no_stage_above_runtime() -> None:
    code = (
        "import json, sys, liteparity.runtime.worker\n"
        "print(json.dumps([m.split('.')[1] for m in sys.modules if m.startswith('liteparity.')]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    stages = set(json.loads(out.stdout))
    assert stages <= {"errors", "qparams", "_litert", "data", "runtime"}, stages
