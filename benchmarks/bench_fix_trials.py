"""``fix``'s plain recipes measured one after another (the baseline: each model's batches on
the bench's worker, as before) against measured together (``_Bench.measure_all``: a model per
worker of the engine's pool, every latency timed alone afterwards), on the local engine and on
a Ray cluster started here, in one run.

The models: a MediaPipe face detector (the float ``.tflite``) and ai-edge-quantizer's plain
recipes of it, the ones ``fix`` tries for a float ``.tflite`` source, on ``--samples`` real
photos against the float model's outputs. This machine has 2 cores: the local pool has two
processes and the Ray cluster two CPUs, so "together" can at most halve the time here.

    python benchmarks/bench_fix_trials.py [--samples 256]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.shared_models


def main() -> None:
    import ray
    from tests.shared_models import MODELS

    from liteparity.convert.aeq import TFLiteQuantizer
    from liteparity.data.binding import IOSpec
    from liteparity.data.prepare import BATCH_ROWS
    from liteparity.repair.fix import _Bench
    from liteparity.repair.variants import PLAIN
    from liteparity.results.fix import Budget
    from liteparity.runtime.engine import Engine, LocalEngine, open_engine
    from liteparity.runtime.litemodel import LiteModel
    from liteparity.specs import FixOptions

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=256)
    args = parser.parse_args()
    shared = MODELS["face_detection_short_range"]
    photos = shared.photos(args.samples)
    quantizer = TFLiteQuantizer(shared.path.read_bytes(), [[shared.photos(32, offset=256)]])
    reference = LiteModel(quantizer.prepared.content)
    contents = [
        quantizer.prepared.content if name == "float32" else quantizer.quantize(name)
        for name in PLAIN
    ]
    batches = [[photos[i : i + BATCH_ROWS]] for i in range(0, len(photos), BATCH_ROWS)]
    io = IOSpec(
        tuple(i.name for i in reference.inputs),
        tuple(i.shape for i in reference.inputs),
        tuple(str(i.dtype) for i in reference.inputs),
        tuple(o.name for o in reference.outputs),
    )
    references = [reference.run(b) for b in batches]
    print(
        f"face_detection_short_range: {len(contents)} plain recipes, {args.samples} photos, "
        f"{os.cpu_count()} cores"
    )

    def bench(engine: Engine) -> Any:
        labels: list[dict[str, Any]] = [{} for _ in batches]
        worker = engine.worker("fix")
        return _Bench(engine, worker, batches, labels, references, io, [0], Budget(1.0))

    def timed(run: Callable[[], Any]) -> tuple[float, Any]:
        clock = time.perf_counter()
        measured = run()
        return time.perf_counter() - clock, measured

    each: dict[str, float] = {}  # each recipe alone on the local engine: where the time goes

    def arms(engine: Engine, where: str) -> list[tuple[str, float, list[Any]]]:
        b = bench(engine)
        try:
            b.measure_all(contents[:2])  # warm-up: imports, first loads (Ray: the actors)
            alone = [timed(lambda c=c: b.measure(c)) for c in contents]
            together = timed(lambda: b.measure_all(contents))
        finally:
            b.worker.close()
        if not each:
            each.update((name, seconds) for name, (seconds, _) in zip(PLAIN, alone, strict=True))
        one_by_one = (sum(s for s, _ in alone), [m for _, m in alone])
        return [(f"{where}, one after another", *one_by_one), (f"{where}, together", *together)]

    rows = arms(LocalEngine(), "local")
    ray.init(
        num_cpus=os.cpu_count() or 1,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.ERROR,
        object_store_memory=200 << 20,
    )
    try:
        rows += arms(open_engine(FixOptions(engine="ray")), "ray")
    finally:
        ray.shutdown()

    def numbers(measured: list[Any]) -> list[Any]:
        return [{k: v for k, v in m.items() if k != "latency_ms"} for m in measured]

    baseline_s, baseline = rows[0][1], numbers(rows[0][2])
    print(f"{'how':<28} {'seconds':>8} {'vs baseline':>12}  same numbers")
    for name, seconds, measured in rows:
        same = numbers(measured) == baseline
        print(f"{name:<28} {seconds:8.2f} {baseline_s / seconds:11.2f}x  {same}")
    print("local, each recipe alone: " + ", ".join(f"{n} {s:.2f} s" for n, s in each.items()))


if __name__ == "__main__":
    main()
