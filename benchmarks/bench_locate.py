"""Per-layer error: liteparity.locate end to end against TensorFlow's QuantizationDebugger.

Each side runs as a fresh process that starts from the model's path, as a user runs it:
importing TensorFlow, loading the model and converting are part of each side's time. Same
model file, calibration samples and evaluation samples; the debugger in full-integer mode, as
locate's int8 recipe quantizes. The sides alternate, ``--repeat`` rounds; the ratio printed is
the median of the rounds' ratios (a 2-core VM is noisy: two runs seconds apart share its load).
Checks that the local errors agree (mean squared error and mean error per layer).

- debugger: ``python -c`` importing TensorFlow, loading the Keras model,
  ``QuantizationDebugger(converter=..., debug_dataset=...)`` (calibrates, builds the debug
  model and its interpreter), then ``run()`` (one invoke per sample, metrics per layer).
- liteparity: ``python -m liteparity locate MODEL --json``, everything it reports: local
  error, propagated error against the float model, Keras→TFLite error per layer, Keras names
  and the sensitivity experiment (which the debugger does not have). Its JSON's ``seconds``
  is the breakdown; "start" is the rest of the wall time (imports, process start).
- liteparity, repeated: the same command with ``--resume`` after one run that filled the
  cache (a cache of this benchmark's own): what a user waits for the second time they
  locate on the same model and calibration data (conversions, the model's facts and the
  Keras→TFLite comparison reused; the quantized model's layers and the sensitivity
  experiment measured again; no TensorFlow import).

    python benchmarks/bench_locate.py [--model demo|mobilenet] [--samples N] [--repeat 3]

``--model demo``: the demo CNN, 1000 MNIST samples, 200 calibration samples.
``--model mobilenet``: MobileNetV2 (α 0.35, 96×96, 4 classes, trained one epoch here on real
photos), 500 photos, 100 calibration photos.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # real_models
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.shared_models


def _model(name: str, samples: int | None) -> tuple[Path, np.ndarray, Any, np.ndarray]:
    """The model file, the evaluation inputs (and labels or None) and calibration inputs."""
    if name == "demo":
        from liteparity.demo import prepare

        files = prepare()
        x_cal = np.load(files.calibration_data)["x"]
        with np.load(files.eval_data) as d:
            n = samples or 1000
            return files.model, d["x"][:n], d["y"][:n], x_cal
    from tests.shared_models import photos

    from real_models import _application

    folder = Path(tempfile.mkdtemp())
    path, _ = _application(folder, "MobileNetV2", 96, alpha=0.35)
    n = samples or 500
    return path, photos(n, 96, 0.0, 1.0, offset=7), None, photos(100, 96, 0.0, 1.0)


DEBUGGER = """
import json, sys, numpy as np
from liteparity._tf import import_tensorflow, quiet
tf = import_tensorflow()
import keras
model_path, data, cal, out = sys.argv[1:]
x, x_cal = np.load(data)["x"], np.load(cal)["x"]
with quiet():
    model = keras.saving.load_model(model_path)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
converter.optimizations = [tf.lite.Optimize.DEFAULT]
converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
converter.representative_dataset = lambda: ([x_cal[i : i + 1]] for i in range(len(x_cal)))
with quiet():
    debug = tf.lite.experimental.QuantizationDebugger(
        converter=converter,
        debug_dataset=lambda: ([x[i : i + 1]] for i in range(len(x))),
        debug_options=tf.lite.experimental.QuantizationDebugOptions(fully_quantize=True),
    )
    debug.run()
stats = [{k: float(v) for k, v in s.items()} for s in debug.layer_statistics.values()]
json.dump(stats, open(out, "w"))
"""


def _timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("demo", "mobilenet"), default="demo")
    parser.add_argument("--samples", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    path, x, y, x_cal = _model(args.model, args.samples)
    folder = Path(tempfile.mkdtemp())
    data, cal = folder / "eval.npz", folder / "cal.npz"
    np.savez(data, **({"x": x, "y": y} if y is not None else {"x": x}))
    np.savez(cal, x=x_cal)
    theirs_json, ours_json = folder / "debugger.json", folder / "locate.json"
    debugger = [sys.executable, "-c", DEBUGGER, str(path), str(data), str(cal), str(theirs_json)]
    ours = [
        *(sys.executable, "-m", "liteparity", "locate", str(path), "--data", str(data)),
        *("--calibration-data", str(cal), "--max-samples", str(len(x))),
        *("--json", str(ours_json)),
    ]

    again_json = folder / "again.json"
    again = [*ours[:-1], str(again_json), "--resume"]
    env = dict(os.environ, LITEPARITY_CACHE=str(folder / "cache"))
    _timed(again, env)  # fills the cache

    theirs_s: list[float] = []
    ours_s: list[float] = []
    again_s: list[float] = []
    parts: dict[str, list[float]] = {}
    again_parts: dict[str, list[float]] = {}
    for _ in range(args.repeat):
        theirs_s.append(_timed(debugger, env))
        ours_s.append(_timed(ours, env))
        again_s.append(_timed(again, env))
        result = json.loads(ours_json.read_text())
        _add(parts, result["seconds"], ours_s[-1])
        repeated = json.loads(again_json.read_text())
        _add(again_parts, repeated["seconds"], again_s[-1])
        print(
            f"  round {len(ours_s)}: debugger {theirs_s[-1]:.2f} s, locate {ours_s[-1]:.2f} s, "
            f"locate repeated {again_s[-1]:.2f} s",
            flush=True,
        )
    ratio = statistics.median(t / o for t, o in zip(theirs_s, ours_s, strict=True))
    ratio_again = statistics.median(t / o for t, o in zip(theirs_s, again_s, strict=True))
    same = [r["local"] for r in repeated["layers"]] == [r["local"] for r in result["layers"]]

    theirs = json.loads(theirs_json.read_text())
    local = [r["local"] for r in result["layers"] if r["local"]]
    worst = 0.0
    for metric in ("mean_squared_error", "mean_error"):
        a = np.array([row[metric] for row in local])
        b = np.array([s[metric] for s in theirs])
        worst = max(worst, float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-30))))
    run = result.get("sensitivity_run") or {}
    print(
        f"{path.name}: int8, {len(x)} evaluation samples, {len(x_cal)} calibration samples, "
        f"median of {args.repeat} alternating rounds, each run a fresh process"
    )
    print(
        f"  equal numbers: {len(local)} layers (debugger: {len(theirs)}), largest relative "
        f"difference (MSE and mean error) {worst:.1e}"
    )
    theirs_m, ours_m = statistics.median(theirs_s), statistics.median(ours_s)
    print(f"QuantizationDebugger script (import, load, convert, run): {theirs_m:.2f} s")
    print(f"liteparity locate, sensitivity included:                  {ours_m:.2f} s")
    print("  of which " + _breakdown(parts))
    if run:
        print(
            f"  sensitivity: {run['measured']} of {run['groups']} layer groups measured "
            f"({run['stopped']})"
        )
    print(
        f"liteparity locate --resume, repeated:                     "
        f"{statistics.median(again_s):.2f} s"
    )
    print("  of which " + _breakdown(again_parts))
    print(f"  same local errors as the run without cache: {same}")
    print(f"ratio (debugger time / locate time, median of rounds): {ratio:.2f}x")
    print(f"ratio (debugger time / repeated locate time, median of rounds): {ratio_again:.2f}x")


def _add(parts: dict[str, list[float]], seconds: dict[str, float], wall: float) -> None:
    """One run's breakdown; "start" is the wall time its JSON does not account for."""
    for key, value in {"start": wall - sum(seconds.values()), **seconds}.items():
        parts.setdefault(key, []).append(value)


def _breakdown(parts: dict[str, list[float]]) -> str:
    return ", ".join(f"{k} {statistics.median(v):.2f} s" for k, v in parts.items() if v)


if __name__ == "__main__":
    main()
