"""The Ray engine on a real two-node Ray cluster on this machine (one session-wide cluster):
the same numbers as the local engine whatever the shard count, data files read by the actors
(never put in the object store by the caller) and a .tflite reference run on the cluster, an
actor or a node lost mid-run retried elsewhere with the same numbers, closing a busy worker
cancelling its work, the sensitivity variants measured on actors with the local errors
and stopping point (a lost actor's variant measured again, its answered batches fed again),
and conversions run on actors several at once with the local bytes, a lost converter actor
retried once, a converter crash costing its recipe alone."""

from __future__ import annotations

import contextlib
import logging
import math
import pickle
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import liteparity
from liteparity.errors import DataError
from liteparity.runtime.engine import LocalEngine
from liteparity.runtime.model_jobs import RunModel
from tests.conftest import Digits

ray = pytest.importorskip("ray")

#: Per node: small, the machine has two cores and other work to do.
NODE = {"num_cpus": 1, "object_store_memory": 100 << 20}


@pytest.fixture(scope="session")
def cluster() -> Iterator[Any]:
    """Two Ray nodes on this machine (a head and a worker), joined by this process."""
    from ray.cluster_utils import Cluster

    # A lost node is noticed in a second or two, not the default half minute.
    quick = {"health_check_period_ms": 500, "health_check_failure_threshold": 3}
    head = {**NODE, "include_dashboard": False, "_system_config": quick}
    c = Cluster(initialize_head=True, head_node_args=head)
    c.add_node(**NODE)
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False, logging_level=logging.ERROR)
    yield c
    ray.shutdown()
    c.shutdown()


@pytest.fixture(scope="session")
def int8_model(cnn: Path, cal_npz: Path, models_dir: Path) -> Path:
    """The digits CNN in int8 (and float32 beside it), converted once: candidate files for
    check and explain, and a .tflite reference."""
    path = models_dir / "ray_int8"
    if not (path / "int8.tflite").exists():
        recipes = ["int8", "float32"]
        liteparity.check(
            cnn, data=cal_npz, calibration_data=cal_npz, recipes=recipes, save_dir=path
        )
    return path / "int8.tflite"


def _same(local: dict[str, Any], remote: dict[str, Any], retried: bool = False) -> None:
    """Every number and warning of a candidate alike but how fast it ran (and the batch size
    it chose); after a fault, the warnings besides the retries."""
    for row in (local, remote):
        for key in ("latency_ms", "batch_size"):
            row.pop(key)
        if retried:
            row["warnings"] = [w for w in row["warnings"] if "retried" not in w]
    assert remote == local


def _engine(shards: int) -> dict[str, Any]:
    return {"engine": "ray", "shards": shards}


def test_check_on_ray_gives_the_local_numbers(
    cluster: Any, cnn: Path, eval_npz: Path, int8_model: Path
) -> None:
    local = liteparity.check(cnn, data=eval_npz, recipes=[], candidates=[int8_model])
    for shards in (1, 3):
        remote = liteparity.check(
            cnn, data=eval_npz, recipes=[], candidates=[int8_model], **_engine(shards)
        )
        assert remote.engine is not None
        rows = remote.data["evaluation_samples"]
        assert remote.engine == {
            "engine": "ray",
            "nodes": 2,
            "shards": shards,
            "shard_rows": min(rows, math.ceil(math.ceil(rows / 256) / shards) * 256),
            "data": "actors",  # an .npz: the actors read it
            "retried": [],
        }
        assert remote.reference == local.reference
        for a, b in zip(local.candidates, remote.candidates, strict=True):
            _same(a.to_dict(), b.to_dict())
    assert local.engine == {
        "engine": "local",
        "nodes": 1,
        "shards": 1,
        "shard_rows": rows,
        "data": "driver",
        "retried": [],
    }


def _row_bytes(x: np.ndarray) -> list[bytes]:
    """Each sample's bytes as the model takes it (float32): what a batch put by the caller
    would carry."""
    return [row.tobytes() for row in x.astype(np.float32)]


def test_data_files_are_read_by_the_actors_and_a_tflite_reference_runs_there(
    cluster: Any, int8_model: Path, digits: Digits, tmp_path: Path, monkeypatch: Any
) -> None:
    """597 rows (3 blocks of 256, 256 and 85 on 2 shards), in an .npz and an .npy: the local
    numbers to the last digit, while nothing put in the object store by this process holds a
    row of the data (the actors read the file) and the .tflite reference never predicts here
    (its outputs come from the cluster)."""
    from liteparity.reference.tflite import TFLiteSource

    reference = int8_model.parent / "float32.tflite"
    npz, npy = tmp_path / "eval.npz", tmp_path / "eval.npy"
    np.savez(npz, x=digits.x_eval, y=digits.y_eval)
    np.save(npy, digits.x_eval)
    kwargs: dict[str, Any] = {"recipes": [], "candidates": [int8_model]}
    local = {d: liteparity.check(reference, data=d, **kwargs) for d in (npz, npy)}

    put: list[bytes] = []
    real_put, real_predict = ray.put, TFLiteSource.predict
    predicted: list[int] = []

    def spy_put(value: Any, **options: Any) -> Any:
        put.append(pickle.dumps(value))
        return real_put(value, **options)

    def spy_predict(self: Any, inputs: list[np.ndarray], shared: Any = None) -> Any:
        predicted.append(len(inputs[0]))
        return real_predict(self, inputs, shared)

    monkeypatch.setattr(ray, "put", spy_put)
    monkeypatch.setattr(TFLiteSource, "predict", spy_predict)
    for data, expected in local.items():
        remote = liteparity.check(reference, data=data, **kwargs, **_engine(2))
        assert remote.engine is not None and remote.engine["data"] == "actors"
        assert remote.reference == expected.reference
        assert remote.reference is not None and remote.reference.metric.value is not None
        for a, b in zip(expected.candidates, remote.candidates, strict=True):
            _same(a.to_dict(), b.to_dict())
    assert put, "nothing went to the object store: the spy saw nothing"
    rows = _row_bytes(digits.x_eval)
    shipped = [i for i, row in enumerate(rows) if any(row in blob for blob in put)]
    assert shipped == [], f"rows {shipped[:5]} went through this process"
    assert predicted == [], "the reference predicted in this process"


def test_a_nan_read_by_the_actors_ends_the_run_as_it_does_locally(
    cluster: Any, int8_model: Path, digits: Digits, tmp_path: Path
) -> None:
    """A NaN in the second block (read only by the actors: the caller reads the first) is the
    local run's one line, not a failed candidate."""
    x = digits.x_eval.copy()
    x[300, 2, 3, 0] = np.nan
    data = tmp_path / "nan.npz"
    np.savez(data, x=x, y=digits.y_eval)
    lines = []
    for engine in ({}, _engine(2)):
        with pytest.raises(DataError) as caught:
            liteparity.check(int8_model, data=data, **engine)  # the lone model, no reference
        lines.append(str(caught.value))
    assert lines[0] == lines[1] == f"{data}: NaN or Inf in sample(s) 300: clean or drop those rows"


def test_a_data_file_a_node_cannot_see_is_one_line(
    cluster: Any, digits: Digits, tmp_path: Path
) -> None:
    """An actor whose node does not see the file: the line says where files must be."""
    from liteparity.data.binding import bind
    from liteparity.data.datasets import load
    from liteparity.runtime.ray_engine import JobActor, RayInputs

    np.save(tmp_path / "x.npy", digits.x_eval[:8])
    binding = bind(load(tmp_path / "x.npy"), ["x"], [(8, 8, 1)], ["float32"])
    ref = ray.put(binding.portable())
    (tmp_path / "x.npy").unlink()  # as on a node that does not see it
    status, line = JobActor().call("feed", RayInputs(ref, (0,), 3, read=np.arange(3)))
    assert status == "UnreadableData"
    assert line.startswith("cannot read the data on node ")
    assert line.endswith(
        "--engine ray reads data files on the actors, so they must be on storage every node "
        "sees, at the same path"
    )


def _ray_worker(shards: int) -> Any:
    from liteparity.runtime.engine import open_engine
    from liteparity.specs import CheckOptions

    engine = open_engine(CheckOptions(engine="ray", shards=shards))
    return engine, engine.worker("model")


def _batches(digits: Digits) -> list[list[np.ndarray]]:
    return [[digits.x_eval[i : i + 64]] for i in range(0, 576, 64)]


def _local_outputs(content: bytes, batches: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
    with LocalEngine().worker("local") as worker:
        worker.start(RunModel(content)).get()
        return [worker.feed(b).get() for b in batches]


@pytest.mark.parametrize("read_by", ["driver", "actors"])
def test_an_actor_lost_mid_run_has_its_batches_retried_on_a_new_one(
    cluster: Any, int8_model: Path, digits: Digits, tmp_path: Path, read_by: str
) -> None:
    """Batches put by the caller, or rows of an .npy the actors read (the new actor reads
    the lost one's rows again)."""
    from liteparity.data.binding import bind
    from liteparity.data.datasets import load

    content = int8_model.read_bytes()
    batches = _batches(digits)
    expected = _local_outputs(content, batches)
    np.save(tmp_path / "x.npy", digits.x_eval)
    binding = bind(load(tmp_path / "x.npy"), ["x"], [(8, 8, 1)], ["float32"])
    engine, worker = _ray_worker(2)
    try:
        worker.start(RunModel(content)).get()
        store = engine.batches(binding if read_by == "actors" else None)

        def batch(k: int) -> Any:
            rows = np.arange(64 * k, 64 * (k + 1))
            return store.put(batches[k]) if read_by == "driver" else store.put_rows(rows)

        got = [worker.feed(batch(0)).get()]  # batch 0: shard 0
        ray.kill(worker._actors[1])  # shard 1 (batches 1, 3, 5, 7) dies before its first
        got += [reply.get() for reply in [worker.feed(batch(k)) for k in range(1, len(batches))]]
    finally:
        worker.close()
    assert engine.describe(576, 64)["data"] == read_by
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a[0], b[0])
    assert worker.retried == [
        "shard 1 of model: actor lost while running the model (batch 2), retried"
    ]


def test_closing_a_busy_worker_kills_its_actors(
    cluster: Any, int8_model: Path, digits: Digits
) -> None:
    engine, worker = _ray_worker(2)
    worker.start(RunModel(int8_model.read_bytes())).get()
    store = engine.batches()
    for b in _batches(digits):
        worker.feed(store.put(b))
    actors = list(worker._actors)
    worker.close()  # what Ctrl-C does on its way out (evaluate's finally)
    for actor in actors:
        with pytest.raises(ray.exceptions.RayActorError):
            ray.get(actor.call.remote("result", None), timeout=60)


def _kill(actor: Any) -> None:
    """Kill an actor and wait until it is dead (a call may still reach it for a moment): no
    call sent after this can reach it."""
    ray.kill(actor, no_restart=True)
    for _ in range(600):
        try:
            ray.get(actor.__ray_ready__.remote(), timeout=60)
        except ray.exceptions.RayActorError:
            return
        time.sleep(0.1)
    raise AssertionError("the killed actor still answers after a minute")


def test_a_job_that_adds_its_batches_up_is_fed_them_again_on_a_new_actor(cluster: Any) -> None:
    """A sensitivity variant sums its error on its one actor: when that actor dies after it
    answered batch 1, the new one is fed batch 1 again before the rest, so the error is the
    one over every sample (the tiny int8 model's, computed by hand)."""
    from liteparity.layerwise.sensitivity import MeasureVariant
    from tests.unit import tiny

    x = tiny.grid_inputs(48)
    _, y = tiny.float_outputs(x)
    _, y_int8 = tiny.int8_codes(x)
    batches = [[x[k : k + 16], y[k : k + 16]] for k in range(0, 48, 16)]
    engine, worker = _ray_worker(2)
    store = engine.batches()
    try:
        worker.start(MeasureVariant(tiny.int8_model())).get()
        worker.feed(store.put(batches[0])).get()
        _kill(worker._actors[0])
        for batch in batches[1:]:
            worker.feed(store.put(batch))
        got = worker.result().get()
    finally:
        worker.close()
    assert got == pytest.approx(float(np.mean((y_int8.astype(np.float64) - y) ** 2)), rel=1e-12)
    assert worker.retried == [
        "shard 0 of model: actor lost while measuring a variant with layers kept in float "
        "(batch 2), retried"
    ]


def test_sensitivity_variants_on_the_actors_stop_where_local_processes_do(
    cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The experiment on two Ray workers of one actor each, batches in the object store, and
    on two local processes reading shared memory: the same variants measured with the same
    errors, stopped at the same group by the stopping rule, though an actor is killed while
    it holds a variant (measured again on a new actor)."""
    from liteparity.layerwise import sensitivity
    from liteparity.layerwise.sensitivity import MIN_MEASURED, layer_sensitivity
    from liteparity.runtime.engine import open_engine
    from liteparity.runtime.worker import Worker
    from liteparity.specs import CheckOptions
    from tests.unit import tiny

    count = MIN_MEASURED + 6
    names = [(f"g{k}", [f"t{k}"]) for k in range(count)]
    monkeypatch.setattr(sensitivity, "groups", lambda anatomy, layers: names)
    float_model, int8_model = tiny.float_model(), tiny.int8_model()
    x = tiny.grid_inputs(48)
    batches = [[x[:20]], [x[20:]]]
    prior = {f"t{k}": float(count - k) for k in range(count)}

    def make(keep: list[str]) -> bytes:  # g3 and g5 in float remove all the error
        return float_model if keep in (["t3"], ["t5"]) else int8_model

    kwargs: dict[str, Any] = {"make": make, "prior": prior}
    local = layer_sensitivity(float_model, batches, pool=[Worker("a"), Worker("b")], **kwargs)
    engine = open_engine(CheckOptions(engine="ray", shards=2))
    pool = engine.pool("sensitivity")

    def lose_an_actor(stage: str, k: int, total: int) -> None:
        if k == 5:  # worker 1 holds variant 3 and gets variant 5 next
            _kill(pool[1]._actors[0])  # type: ignore[attr-defined]

    try:
        remote = layer_sensitivity(
            float_model, batches, pool=pool, engine=engine, progress=lose_an_actor, **kwargs
        )
    finally:
        for worker in pool:
            worker.close()
    assert local.stopped == "decided" and local.skipped  # the rule stopped the local run
    assert (remote.ranking, remote.skipped, remote.stopped) == (
        local.ranking,
        local.skipped,
        local.stopped,
    )
    assert [s.layer for s in remote.ranking[:2]] == ["g3", "g5"]
    assert [line.split(": ")[0] for line in pool[1].retried] == ["shard 0 of sensitivity 1"]


def test_a_pool_shares_the_actors_among_its_jobs(cluster: Any) -> None:
    """As many workers as jobs, up to one per shard, the shards dealt among them: 7 actors
    give 3 models 3, 2 and 2 actors each, 9 models one each on 7 workers."""
    from liteparity.runtime.engine import open_engine
    from liteparity.specs import FixOptions

    engine = open_engine(FixOptions(engine="ray", shards=7))
    assert [w._shards for w in engine.pool("fix", 3)] == [3, 2, 2]  # type: ignore[attr-defined]
    assert [w._shards for w in engine.pool("fix", 9)] == [1] * 7  # type: ignore[attr-defined]
    assert [w.name for w in engine.pool("sensitivity")] == [f"sensitivity {i}" for i in range(7)]


@pytest.mark.slow
def test_explain_on_ray_gives_the_local_findings_and_sensitivity(
    cluster: Any, outlier_cnn: Path, eval_npz: Path, cal_npz: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The planted outlier channel is found on Ray as here: the tensor statistics behind the
    findings ran on the candidate's Ray worker. explain's per-layer experiment: every
    variant's error and the ranking are the local run's; each variant (and the base) started
    on a Ray worker of the experiment's pool, on more than one actor, and no local worker
    process was started for it (the same spy sees the local run's)."""
    from liteparity.diagnose import explain as explain_module
    from liteparity.layerwise.sensitivity import MeasureVariant
    from liteparity.runtime.ray_engine import RayWorker
    from liteparity.runtime.worker import Worker

    runs: list[Any] = []
    real_sensitivity = explain_module.layer_sensitivity

    def spy_sensitivity(*args: Any, **kwargs: Any) -> Any:
        runs.append(real_sensitivity(*args, **kwargs))
        return runs[-1]

    processes: list[str] = []
    real_init = Worker.__init__

    def spy_init(self: Any, name: str) -> None:
        processes.append(name)
        real_init(self, name)

    on_ray: list[tuple[str, str]] = []  # (worker, actor) of each variant started
    real_start = RayWorker.start

    def spy_start(self: RayWorker, job: Any, doing: str | None = None) -> Any:
        reply = real_start(self, job, doing)
        if isinstance(job, MeasureVariant):
            on_ray.append((self.name, self._actors[0]._actor_id.hex()))
        return reply

    monkeypatch.setattr(explain_module, "layer_sensitivity", spy_sensitivity)
    monkeypatch.setattr(Worker, "__init__", spy_init)
    monkeypatch.setattr(RayWorker, "start", spy_start)
    kwargs: dict[str, Any] = {"calibration_data": cal_npz, "recipes": ["int8"]}
    local = liteparity.explain(outlier_cnn, data=eval_npz, **kwargs)
    local_processes = [p for p in processes if p.startswith("sensitivity")]
    processes.clear()
    remote = liteparity.explain(outlier_cnn, data=eval_npz, **kwargs, **_engine(2))
    assert [f.id for f in local.candidates[0].findings]  # the planted fault is named
    assert len(runs) == 2 and len(runs[0].ranking) >= 3  # the loss was material: it ran
    assert runs[1].ranking == runs[0].ranking  # every mse_quantized and mse_kept_float
    assert runs[1].stopped == runs[0].stopped == "complete"
    assert local_processes and not [p for p in processes if p.startswith("sensitivity")]
    assert len(on_ray) == len(runs[1].ranking) + 1  # the base and each variant
    assert {w for w, _ in on_ray} == {"sensitivity 0", "sensitivity 1"}
    assert len({a for _, a in on_ray}) >= 2
    _same(local.candidates[0].to_dict(), remote.candidates[0].to_dict())


@pytest.mark.slow
def test_locate_on_ray_gives_the_local_layers_and_ranking(
    cluster: Any, outlier_cnn: Path, eval_npz: Path, cal_npz: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """locate's probes, sensitivity variants and conversions on the cluster: every layer's
    numbers, the ranking and where it stopped are those of a local run with as many probe
    processes as shards. No local process runs a model; the local converter process does the
    TensorFlow work that is not a conversion (the model's facts, its Keras layer outputs,
    the variants' re-quantizations)."""
    from liteparity.runtime.worker import Worker

    def plain(result: Any) -> dict[str, Any]:
        d = result.to_dict()
        for key in ("seconds", "engine"):
            d.pop(key)
        d["sensitivity_run"].pop("seconds")
        return dict(d)

    kwargs: dict[str, Any] = {"calibration_data": cal_npz}
    local = liteparity.locate(outlier_cnn, data=eval_npz, workers=2, **kwargs)
    started: list[str] = []
    real_init = Worker.__init__

    def spy(self: Any, name: str) -> None:
        started.append(name)
        real_init(self, name)

    monkeypatch.setattr(Worker, "__init__", spy)
    remote = liteparity.locate(outlier_cnn, data=eval_npz, **kwargs, **_engine(2))
    assert local.sensitivity and local.first_jump is not None  # the planted fault is found
    assert plain(remote) == plain(local)
    assert started == ["converter"]
    assert remote.engine is not None and remote.engine["engine"] == "ray"
    assert remote.engine["nodes"] == 2 and remote.engine["shards"] == 2


@pytest.mark.slow
def test_fix_on_ray_tries_the_same_models_with_the_same_numbers(
    cluster: Any, cnn: Path, eval_npz: Path, cal_npz: Path
) -> None:
    def numbers(result: Any) -> list[dict[str, Any]]:
        return [{**t.to_dict(), "latency_ms": None, "pareto": None} for t in result.trials]

    options = {"calibration_data": cal_npz, "max_drop": 0.0, "prefer": "size"}
    local = liteparity.fix(cnn, data=eval_npz, **options)
    remote = liteparity.fix(cnn, data=eval_npz, **options, **_engine(2))
    assert numbers(remote) == numbers(local)
    assert remote.held_out == local.held_out
    assert [f.id for f in remote.after] == [f.id for f in local.after]
    assert remote.engine is not None and remote.engine["nodes"] == 2


def test_a_model_file_a_node_cannot_read_is_one_line(cluster: Any, tmp_path: Path) -> None:
    """A conversion on an actor whose node does not see the model: the line says where
    model files must be, before any TensorFlow work."""
    from liteparity.convert.process import ConvertJob
    from liteparity.runtime.ray_engine import JobActor
    from liteparity.specs import ModelSpec

    gone = tmp_path / "model.keras"  # as on a node that does not see it
    status, line = JobActor().call("start", ConvertJob(ModelSpec(gone), "float32"))
    assert status == "ModelError"
    assert line.startswith(f"cannot read the model {gone} on node ")
    assert line.endswith(
        "--engine ray converts on the actors, so the model file must be on storage every node "
        "sees, at the same path"
    )


def _ray_converter(model: Path, shards: int) -> Any:
    from liteparity.convert.process import Converter
    from liteparity.runtime.engine import open_engine
    from liteparity.specs import CheckOptions, ModelSpec

    return Converter(
        ModelSpec(model), engine=open_engine(CheckOptions(engine="ray", shards=shards))
    )


def _no_local_converter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if a local converter process is started."""
    from liteparity.convert.process import ConverterProcess

    def refuse(self: Any, name: str) -> None:
        raise AssertionError("a local converter process was started")

    monkeypatch.setattr(ConverterProcess, "__init__", refuse)


def test_closing_the_converter_kills_its_actors_with_conversions_in_flight(
    cluster: Any, cnn: Path, digits: Digits, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three conversions ahead on 2 shards: two start at once on their own actors, the third
    waits; closing (what Ctrl-C does on its way out) kills both actors mid-work."""
    from liteparity.convert.recipes import RECIPES
    from liteparity.data.prepare import calibration_from

    _no_local_converter(monkeypatch)
    converter = _ray_converter(cnn, 2)
    recipes = [RECIPES[n] for n in ("int8", "float32", "float16")]
    converter.ahead(recipes, calibration_from([[digits.x_cal]]))
    running = list(converter._pool._running.items())
    assert [t.job.recipe for t, _ in running] == ["int8", "float32"]
    assert running[0][0].job.calibrate_only
    assert [t.job.recipe for t in converter._pool._waiting] == ["float16"]
    actors = [a for _, worker in running for a in worker._actors]
    assert len({a._actor_id.hex() for a in actors}) == 2
    converter.close()
    for actor in actors:
        with pytest.raises(ray.exceptions.RayActorError):
            ray.get(actor.__ray_ready__.remote(), timeout=60)


@pytest.fixture(scope="session")
def local_recipes(check_all: Any, models_dir: Path) -> dict[str, bytes]:
    """Every recipe of the CNN converted by the local engine (``check_all``'s saved models)."""
    return {
        c.name: (models_dir / "recipes" / f"{c.name}.tflite").read_bytes()
        for c in check_all.candidates
    }


@pytest.mark.slow
def test_a_converter_actor_killed_mid_calibration_is_retried_with_the_local_bytes(
    cluster: Any,
    cnn: Path,
    digits: Digits,
    local_recipes: dict[str, bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The calibration's actor killed while it calibrates (the 100 calibration samples 200
    times: the same ranges, 20,000 samples long): int8 is calibrated again on a new actor,
    the local engine's bytes, and the retry is said; float32 (converted at once beside it)
    and float16 (started after) are the local engine's bytes too."""
    from liteparity.convert.recipes import RECIPES
    from liteparity.data.prepare import calibration_from
    from liteparity.reference.loader import load

    _no_local_converter(monkeypatch)
    many = np.concatenate([digits.x_cal] * 200)
    converter = _ray_converter(cnn, 2)
    source = load(cnn)
    calibration = calibration_from([[many]])
    try:
        converter.ahead([RECIPES["int8"], RECIPES["float32"]], calibration)
        [calibrating, _] = converter._pool._running.values()
        doomed = calibrating._actors[0]
        _kill(doomed)
        assert converter.convert(source, RECIPES["int8"], calibration) == local_recipes["int8"]
        assert calibrating.retried == ["converter 0: actor lost while calibrating int8, retried"]
        assert converter.convert(source, RECIPES["float32"]) == local_recipes["float32"]
        assert converter.convert(source, RECIPES["float16"]) == local_recipes["float16"]
        assert doomed._actor_id.hex() not in {a._actor_id.hex() for a in calibrating._actors}
    finally:
        converter.close()
        source.close()


@pytest.mark.slow
def test_check_on_ray_converts_every_recipe_on_the_cluster_with_the_local_bytes(
    cluster: Any,
    cnn: Path,
    eval_npz: Path,
    cal_npz: Path,
    check_all: Any,
    local_recipes: dict[str, bytes],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``check_all`` (every recipe and legacy-uint8) on Ray: every model byte for byte the
    local engine's, in the same order with the same numbers; every conversion ran on an
    actor, two at once, the int8 recipes from one calibration; no local converter; the
    converter actors gone before the evaluation starts."""
    from liteparity.convert.process import _Pool
    from liteparity.runtime.ray_engine import RayConverter

    _no_local_converter(monkeypatch)
    started: list[str] = []
    real_start = RayConverter.start

    actors: dict[str, Any] = {}

    def spy_start(self: RayConverter, job: Any, doing: str | None = None) -> Any:
        started.append(f"{job.doing}{' (calibrate only)' if job.calibrate_only else ''}")
        reply = real_start(self, job, doing)
        actors.update((a._actor_id.hex(), a) for a in self._actors)
        return reply

    alive: list[str] = []  # converter actors that answer once the evaluation started

    def when_evaluating(stage: str, done: int, total: int) -> None:
        if stage.startswith("evaluating") and done == 0:
            for key, actor in actors.items():
                with contextlib.suppress(ray.exceptions.RayActorError):
                    ray.get(actor.__ray_ready__.remote(), timeout=60)
                    alive.append(key)

    in_flight: list[int] = []
    real_dispatch = _Pool._dispatch

    def spy_dispatch(self: _Pool) -> None:
        real_dispatch(self)
        in_flight.append(len(self._running))

    monkeypatch.setattr(RayConverter, "start", spy_start)
    monkeypatch.setattr(_Pool, "_dispatch", spy_dispatch)
    remote = liteparity.check(
        cnn,
        data=eval_npz,
        calibration_data=cal_npz,
        recipes=["all", "legacy-uint8"],
        legacy=liteparity.LegacySettings(0.0, 255.0, (0.0, 6.0)),
        save_dir=tmp_path,
        progress=when_evaluating,
        **_engine(2),
    )
    assert len(actors) == 2 and alive == []
    assert [c.name for c in remote.candidates] == list(local_recipes)
    for name, content in local_recipes.items():
        assert (tmp_path / f"{name}.tflite").read_bytes() == content, name
    assert remote.reference == check_all.reference
    for a, b in zip(check_all.candidates, remote.candidates, strict=True):
        _same({**a.to_dict(), "path": None}, {**b.to_dict(), "path": None})  # saved apart
    assert sorted(started) == sorted(
        [
            "converting float32",
            "converting float16",
            "converting dynamic",
            "calibrating int8 (calibrate only)",
            "calibrating int16x8",
            "converting legacy-uint8",
            "quantizing int8",
            "quantizing int8-io",
            "quantizing uint8-io",
        ]
    )
    assert max(in_flight) == 2


@pytest.mark.slow
def test_a_real_converter_segfault_on_an_actor_costs_that_recipe_alone(
    cluster: Any, lstm: tuple[Path, Path], tmp_path: Path
) -> None:
    """TF 2.21's calibrator segfaults on the LSTM (its actor dies, and the new one too): int8
    is one crash line and the retry is said; float32, converted on the other actor
    meanwhile, is the local engine's model, measured alike."""
    model, data = lstm
    kwargs: dict[str, Any] = {"data": data, "calibration_data": data}
    local = liteparity.check(model, recipes=["float32"], save_dir=tmp_path / "local", **kwargs)
    remote = liteparity.check(
        model, recipes=["int8", "float32"], save_dir=tmp_path / "ray", **kwargs, **_engine(2)
    )
    int8, float32 = remote.candidates
    assert int8.error == (
        "converter crashed twice (its Ray actor died each time) while calibrating int8"
    )
    assert remote.engine is not None
    assert remote.engine["retried"] == ["converter 0: actor lost while calibrating int8, retried"]
    assert float32.error is None
    saved = [(tmp_path / where / "float32.tflite").read_bytes() for where in ("local", "ray")]
    assert saved[0] == saved[1]
    _same({**local.candidates[0].to_dict(), "path": None}, {**float32.to_dict(), "path": None})


def _no_idle_actors() -> None:
    """Kill the actors the engine keeps between runs: the next run starts its own."""
    from liteparity.runtime.ray_engine import _IDLE

    for actors in _IDLE.values():
        for actor in actors:
            ray.kill(actor, no_restart=True)
        actors.clear()


@pytest.mark.slow
@pytest.mark.parametrize("reference", ["keras", "tflite"])
def test_a_node_lost_mid_check_is_retried_with_the_local_numbers(
    cluster: Any, cnn: Path, digits: Digits, int8_model: Path, tmp_path: Path, reference: str
) -> None:
    """Last of the file: the cluster loses its worker node, then gets a new one. The data is
    an .npz the actors read; the reference runs in this process (Keras) or on the cluster
    (.tflite), where its lost batches are retried too."""
    data = tmp_path / "big.npz"  # ten batches: most still to run when the node goes
    np.savez(data, x=np.tile(digits.x_eval, (4, 1, 1, 1)), y=np.tile(digits.y_eval, 4))
    model, kwargs = (
        (cnn, {"recipes": ["float16"], "candidates": [int8_model]})
        if reference == "keras"
        else (int8_model.parent / "float32.tflite", {"recipes": [], "candidates": [int8_model]})
    )
    local = liteparity.check(model, data=data, **kwargs)
    worker_node = next(iter(cluster.worker_nodes))
    _no_idle_actors()  # new ones, spread over both nodes (a lost node's were replaced on one)

    def lose_the_node(stage: str, done: int, total: int) -> None:
        if stage.startswith("evaluating") and worker_node in cluster.worker_nodes:
            cluster.remove_node(worker_node)

    try:
        remote = liteparity.check(model, data=data, progress=lose_the_node, **kwargs, **_engine(2))
    finally:
        cluster.add_node(**NODE)
        cluster.wait_for_nodes()
    assert remote.engine is not None and remote.engine["data"] == "actors"
    retried = [w for c in remote.candidates for w in c.warnings if "retried" in w]
    assert retried, "no batch ran again: the node took nothing with it"
    assert set(retried) <= set(remote.engine["retried"])
    if reference == "tflite":  # on the cluster: its actor on the lost node was replaced too
        assert any(" (reference): actor lost" in line for line in remote.engine["retried"])
    assert remote.reference == local.reference
    for a, b in zip(local.candidates, remote.candidates, strict=True):
        _same(a.to_dict(), b.to_dict(), retried=True)
