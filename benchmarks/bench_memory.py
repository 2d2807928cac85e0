"""Peak memory of ``liteparity check`` on 50,000 samples against 5,000, for a ``.npy`` and an
``.npz`` (compressed: its members are streamed, not inflated), with and without ``--resume``
(the data key is hashed as the rows stream): streaming means it should barely move (target:
within 1.2×).

Each run is its own fresh process (so each has its own peak), with its own empty cache; the
data is MNIST-5k tiled. Peak = the process's own high-water mark plus its worker processes'
(sampled from /proc while they run).

    python benchmarks/bench_memory.py [--small 5000] [--large 50000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CHILD = r"""
import json, os, resource, sys, threading, time
peaks = {}
def watch():
    me = str(os.getpid())
    while True:
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                status = open(f"/proc/{pid}/status").read()
            except OSError:
                continue
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            if fields.get("PPid", "").strip() == me and "VmHWM" in fields:
                kb = int(fields["VmHWM"].split()[0])
                peaks[pid] = max(peaks.get(pid, 0), kb)
        time.sleep(0.05)
threading.Thread(target=watch, daemon=True).start()
import liteparity
model, data, cal, resume = sys.argv[1:5]
result = liteparity.check(
    model, data=data, calibration_data=cal, recipes=["int8"], resume=resume == "resume"
)
time.sleep(0.2)
own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"own_kb": own, "workers_kb": sum(peaks.values()),
                  "samples": result.data["evaluation_samples"],
                  "agreement": result.candidates[0].agreement}))
"""


def measure(model: Path, data: Path, cal: Path, resume: bool) -> dict:
    with tempfile.TemporaryDirectory() as cache:
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                CHILD,
                str(model),
                str(data),
                str(cal),
                ("no", "resume")[resume],
            ],
            capture_output=True,
            text=True,
            check=True,
            env=dict(os.environ, LITEPARITY_CACHE=cache),
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def write(path: Path, x: np.ndarray) -> Path:
    if path.suffix == ".npy":
        np.save(path, x)
    else:
        np.savez_compressed(path, x=x)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=5000)
    parser.add_argument("--large", type=int, default=50000)
    args = parser.parse_args()

    from liteparity.demo import mnist_5k, prepare

    files = prepare()
    x, _ = mnist_5k()
    for suffix in (".npy", ".npz"):
        for resume in (False, True):
            with tempfile.TemporaryDirectory() as tmp:
                runs = {}
                for n in (args.small, args.large):
                    path = write(Path(tmp) / f"x_{n}{suffix}", np.resize(x, (n, *x.shape[1:])))
                    runs[n] = measure(files.model, path, files.calibration_data, resume)
            report(f"{suffix}{' --resume' if resume else ''}", runs, args.small, args.large)


def report(label: str, runs: dict[int, dict], small_n: int, large_n: int) -> None:
    for n, r in runs.items():
        total = (r["own_kb"] + r["workers_kb"]) / 1024
        print(
            f"{label:>14} {r['samples']:>6} samples ({n * 784 * 4 / 2**20:6.1f} MB of data): "
            f"peak {r['own_kb'] / 1024:7.1f} MB main + {r['workers_kb'] / 1024:6.1f} MB "
            f"workers = {total:7.1f} MB"
        )
    small, large = (runs[n]["own_kb"] + runs[n]["workers_kb"] for n in (small_n, large_n))
    print(f"{label:>14} ratio, {large_n} vs {small_n}: {large / small:.3f}x (target <= 1.2x)")


if __name__ == "__main__":
    main()
