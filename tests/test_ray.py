"""The Ray engine on a real two-node Ray cluster on this machine (one session-wide cluster):
the same numbers as the local engine whatever the shard count, an actor or a node lost mid-run
retried elsewhere with the same numbers, and closing a busy worker cancelling its work."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import liteparity
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
    """The digits CNN in int8, converted once (a candidate file for check and explain)."""
    path = models_dir / "ray_int8"
    if not (path / "int8.tflite").exists():
        liteparity.check(
            cnn, data=cal_npz, calibration_data=cal_npz, recipes=["int8"], save_dir=path
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
        }
        assert remote.reference == local.reference
        for a, b in zip(local.candidates, remote.candidates, strict=True):
            _same(a.to_dict(), b.to_dict())
    assert local.engine == {"engine": "local", "nodes": 1, "shards": 1, "shard_rows": rows}


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


def test_an_actor_lost_mid_run_has_its_batches_retried_on_a_new_one(
    cluster: Any, int8_model: Path, digits: Digits
) -> None:
    content = int8_model.read_bytes()
    batches = _batches(digits)
    expected = _local_outputs(content, batches)
    engine, worker = _ray_worker(2)
    try:
        worker.start(RunModel(content)).get()
        store = engine.batches()
        got = [worker.feed(store.put(batches[0])).get()]  # batch 0: shard 0
        ray.kill(worker._actors[1])  # shard 1 (batches 1, 3, 5, 7) dies before its first
        got += [reply.get() for reply in [worker.feed(store.put(b)) for b in batches[1:]]]
    finally:
        worker.close()
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


@pytest.mark.slow
def test_explain_on_ray_gives_the_local_findings(
    cluster: Any, outlier_cnn: Path, eval_npz: Path, cal_npz: Path
) -> None:
    """The planted outlier channel is found on Ray as here: the tensor statistics behind the
    findings ran on the candidate's Ray worker."""
    kwargs: dict[str, Any] = {"calibration_data": cal_npz, "recipes": ["int8"]}
    local = liteparity.explain(outlier_cnn, data=eval_npz, **kwargs)
    remote = liteparity.explain(outlier_cnn, data=eval_npz, **kwargs, **_engine(2))
    assert [f.id for f in local.candidates[0].findings]  # the planted fault is named
    _same(local.candidates[0].to_dict(), remote.candidates[0].to_dict())


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


@pytest.mark.slow
def test_a_node_lost_mid_check_is_retried_with_the_local_numbers(
    cluster: Any, cnn: Path, digits: Digits, int8_model: Path, tmp_path: Path
) -> None:
    """Last of the file: the cluster loses its worker node, then gets a new one."""
    data = tmp_path / "big.npz"  # ten batches: most still to run when the node goes
    np.savez(data, x=np.tile(digits.x_eval, (4, 1, 1, 1)), y=np.tile(digits.y_eval, 4))
    kwargs: dict[str, Any] = {"recipes": ["float16"], "candidates": [int8_model]}
    local = liteparity.check(cnn, data=data, **kwargs)
    worker_node = next(iter(cluster.worker_nodes))

    def lose_the_node(stage: str, done: int, total: int) -> None:
        if stage == "evaluating" and worker_node in cluster.worker_nodes:
            cluster.remove_node(worker_node)

    try:
        remote = liteparity.check(cnn, data=data, progress=lose_the_node, **kwargs, **_engine(2))
    finally:
        cluster.add_node(**NODE)
        cluster.wait_for_nodes()
    retried = [w for c in remote.candidates for w in c.warnings if "retried" in w]
    assert retried, "no batch ran again: the node took nothing with it"
    for a, b in zip(local.candidates, remote.candidates, strict=True):
        _same(a.to_dict(), b.to_dict(), retried=True)
