"""Peak memory of ``liteparity check`` on 50,000 samples against 5,000: streaming means it
should barely move (target: within 1.2×).

Each size runs in its own fresh process (so each has its own peak); the data is MNIST-5k tiled
into a ``.npy`` file. Peak = the process's own high-water mark plus its worker processes'
(sampled from /proc while they run).

    python benchmarks/bench_memory.py [--small 5000] [--large 50000]
"""

from __future__ import annotations

import argparse
import json
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
model, data, cal = sys.argv[1:4]
result = liteparity.check(model, data=data, calibration_data=cal, recipes=["int8"])
time.sleep(0.2)
own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"own_kb": own, "workers_kb": sum(peaks.values()),
                  "samples": result.data["evaluation_samples"],
                  "agreement": result.candidates[0].agreement}))
"""


def measure(model: Path, data: Path, cal: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(model), str(data), str(cal)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=5000)
    parser.add_argument("--large", type=int, default=50000)
    args = parser.parse_args()

    from liteparity.demo import mnist_5k, prepare

    files = prepare()
    x, _ = mnist_5k()
    with tempfile.TemporaryDirectory() as tmp:
        runs = {}
        for n in (args.small, args.large):
            path = Path(tmp) / f"x_{n}.npy"
            np.save(path, np.resize(x, (n, *x.shape[1:])))
            runs[n] = measure(files.model, path, files.calibration_data)
    for n, r in runs.items():
        total = (r["own_kb"] + r["workers_kb"]) / 1024
        print(
            f"{r['samples']:>6} samples ({n * 784 * 4 / 2**20:6.1f} MB of data): peak "
            f"{r['own_kb'] / 1024:7.1f} MB main + {r['workers_kb'] / 1024:6.1f} MB workers "
            f"= {total:7.1f} MB"
        )
    small, large = (runs[n]["own_kb"] + runs[n]["workers_kb"] for n in (args.small, args.large))
    print(f"ratio, {args.large} vs {args.small} samples: {large / small:.3f}x (target <= 1.2x)")


if __name__ == "__main__":
    main()
