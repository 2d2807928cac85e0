"""Throughput of the Ray engine against the local one, on this machine, in one run.

The task: ``check`` of a MediaPipe face detector (the float ``.tflite`` prepared by
ai-edge-quantizer) against its AEQ int8, on ``--samples`` real photos. Timed: the local engine
(a worker process per model), then Ray (a local cluster started here, ``num_cpus`` = the
machine's cores) with 1, 2 and 4 actors per candidate, each engine after a warm-up run (on
Ray it starts the actors, which the cluster keeps). Also printed: each model's cost per
sample on one core, the figures the README's cluster estimate starts from.

On Ray the actors read the photos from the ``.npz`` themselves and the float ``.tflite``
reference runs on the cluster too (``runtime.ray_engine``). This machine has 2 cores: more
actors than cores only share them. The ratios show the engine's overhead, not a cluster's
speed-up.

    python benchmarks/bench_ray.py [--samples 512]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.shared_models


def per_sample_ms(content: bytes, photos: np.ndarray) -> float:
    """Median time of one sample through ``content`` on one core (batches of 16)."""
    from liteparity.runtime.litemodel import LiteModel

    model = LiteModel(content, num_threads=1)
    model.run([photos[:16]])
    times = []
    for start in range(0, len(photos) - 15, 16):
        clock = time.perf_counter()
        model.run([photos[start : start + 16]])
        times.append((time.perf_counter() - clock) / 16)
    return 1000 * float(np.median(times))


def main() -> None:
    import ray
    from tests.shared_models import MODELS

    import liteparity
    from liteparity.convert.aeq import TFLiteQuantizer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=512)
    args = parser.parse_args()
    shared = MODELS["face_detection_short_range"]
    photos = shared.photos(args.samples)
    engine = TFLiteQuantizer(shared.path.read_bytes(), [[shared.photos(32, offset=args.samples)]])
    float_model, quantized = engine.prepared.content, engine.quantize("int8")
    cores = os.cpu_count() or 1
    print(f"face_detection_short_range, {args.samples} photos, {cores} cores")
    print(
        f"per sample on one core: reference {per_sample_ms(float_model, photos):.2f} ms, "
        f"int8 candidate {per_sample_ms(quantized, photos):.2f} ms"
    )
    with tempfile.TemporaryDirectory() as tmp:
        reference, candidate = Path(tmp) / "float.tflite", Path(tmp) / "int8.tflite"
        reference.write_bytes(float_model)
        candidate.write_bytes(quantized)
        data = Path(tmp) / "photos.npz"
        np.savez(data, x=photos)

        def run(**engine: object) -> tuple[float, liteparity.CheckResult]:
            clock = time.perf_counter()
            result = liteparity.check(reference, candidates=[candidate], data=data, **engine)
            return time.perf_counter() - clock, result

        run()  # warm-up: the first run in a process pays for imports and first loads
        local_s, local = run()
        rows = [("local", local_s, local)]
        ray.init(
            num_cpus=cores,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
            object_store_memory=200 << 20,
        )
        try:
            run(engine="ray", shards=4)  # warm-up: starts the actors the runs below reuse
            for shards in (1, 2, 4):
                seconds, result = run(engine="ray", shards=shards)
                rows.append((f"ray, {shards} actor(s)", seconds, result))
        finally:
            ray.shutdown()
    expected = local.candidates[0].to_dict()
    print(f"{'engine':<18} {'seconds':>8} {'samples/s':>10} {'vs local':>9}  same numbers")
    for name, seconds, result in rows:
        got = result.candidates[0].to_dict()
        same = all(got[k] == expected[k] for k in ("metric", "agreement", "rmse", "sqnr_db"))
        print(
            f"{name:<18} {seconds:8.2f} {args.samples / seconds:10.1f} "
            f"{local_s / seconds:8.2f}x  {same}"
        )


if __name__ == "__main__":
    main()
