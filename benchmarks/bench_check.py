"""``check --recipes all`` on MobileNetV2 (α 0.35, 96×96) against its floor and a plain script.

* floor: in one fresh process, the conversions liteparity needs, done once each (float32,
  float16, dynamic, int16x8, and the int8 recipes from one calibration), then the raw inference
  of the reference (Keras, batch 64) and of every candidate at its best batch size.
* plain: what a user writes: each recipe converted on its own with ``TFLiteConverter``, then
  the reference and every candidate run one sample at a time.
* liteparity: ``python -m liteparity check MODEL --recipes all --json`` (its ``timings``).

* explain: ``python -m liteparity explain`` with the same arguments, against liteparity's
  check (the issue's target: within 1.5× of it).

Each side runs in a fresh Python process, starting from the model path; the four alternate,
and the ratios are medians over the rounds. The model (``weights=None``) is trained for three
epochs to tell which photo a crop comes from, so its int8 model loses what a real one does
(with random weights a near-uniform softmax flips under any quantization, and explain would
time a loss no real model has); the data are 96×96 crops of five bundled photos.

    nice -n 5 python benchmarks/bench_check.py [--rounds 3] [--samples 200]
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.shared_models
from tests.shared_models import trained_application

RECIPES = ["float32", "float16", "dynamic", "int8", "int8-io", "uint8-io", "int16x8"]

_COMMON = """
import os, sys, time, json
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
model = tf.keras.models.load_model(sys.argv[1])
ev, cal = np.load(sys.argv[2])["x"], np.load(sys.argv[3])["x"]
def rep():
    for x in cal:
        yield [x[None]]
def converter(name):
    c = tf.lite.TFLiteConverter.from_keras_model(model)
    if name != "float32":
        c.optimizations = [tf.lite.Optimize.DEFAULT]
    if name == "float16":
        c.target_spec.supported_types = [tf.float16]
    if name.startswith("int8") or name == "uint8-io":
        c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if name == "int16x8":
        c.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    if name in ("int8", "int8-io", "uint8-io", "int16x8"):
        c.representative_dataset = rep
    if name in ("int8-io", "uint8-io"):
        c.inference_input_type = c.inference_output_type = getattr(tf, name[:-3])
    return c
def run(content, batch, data=None):
    # the candidate on the data; False when LiteRT refuses it (liteparity's row: an error)
    data = ev if data is None else data
    it = Interpreter(model_content=content, num_threads=2)
    try:
        it.allocate_tensors()
    except RuntimeError:
        return False
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    scale, zero = inp["quantization"]
    for start in range(0, len(data), batch):
        x = data[start:start + batch]
        if inp["dtype"] != np.float32:
            x = np.clip(np.round(x / scale + zero), *{np.int8: (-128, 127),
                        np.uint8: (0, 255)}[inp["dtype"]]).astype(inp["dtype"])
        it.resize_tensor_input(inp["index"], x.shape)
        it.allocate_tensors()
        it.set_tensor(inp["index"], x)
        it.invoke()
        it.get_tensor(out["index"])
    return True
"""

_FLOOR = (
    _COMMON
    + """
from tensorflow.lite.python import convert as tfc
times, models = {}, {}
for name in ["float32", "float16", "dynamic", "int16x8"]:
    t = time.perf_counter(); models[name] = converter(name).convert()
    times[name] = time.perf_counter() - t
t = time.perf_counter()
c = converter("int8"); c._experimental_calibrate_only = True; calibrated = c.convert()
times["calibrate"] = time.perf_counter() - t
for name, io in (("int8", tf.float32), ("int8-io", tf.int8), ("uint8-io", tf.uint8)):
    t = time.perf_counter()
    models[name] = tfc.deduplicate_readonly_buffers(tfc.mlir_quantize(
        calibrated, False, input_data_type=io, output_data_type=io))
    times[name] = time.perf_counter() - t
t = time.perf_counter(); model.predict(ev, batch_size=64, verbose=0)
times["reference"] = time.perf_counter() - t
for name, content in models.items():
    t0 = time.perf_counter(); costs = {}
    for batch in (1, 16, 64):  # the best batch size, timed on a part of the data (not counted)
        t = time.perf_counter()
        if not run(content, batch, ev[:64]):
            break
        costs[batch] = time.perf_counter() - t
    key = "tuning (not in the floor)"
    times[key] = times.get(key, 0) + time.perf_counter() - t0
    if not costs:
        times["run " + name] = "refused by LiteRT"
        continue
    t = time.perf_counter(); run(content, min(costs, key=costs.get))
    times["run " + name] = time.perf_counter() - t
print("RESULT " + json.dumps(times))
"""
)

_PLAIN = (
    _COMMON
    + """
times, models = {}, {}
for name in sys.argv[4].split(","):
    t = time.perf_counter(); models[name] = converter(name).convert()
    times[name] = time.perf_counter() - t
t = time.perf_counter(); model.predict(ev, batch_size=64, verbose=0)
times["reference"] = time.perf_counter() - t
for name, content in models.items():
    t = time.perf_counter(); run(content, 1)
    times["run " + name] = time.perf_counter() - t
print("RESULT " + json.dumps(times))
"""
)


def _timed(cmd: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    # liteparity exits 2 when a candidate could not be measured (int16x8, refused by LiteRT on
    # some weights): its table and JSON are still written
    if done.returncode not in (0, 1, 2):
        sys.exit(f"{cmd[:3]} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds, done.stdout


def _liteparity(command: str, paths: list[str], work: Path) -> tuple[float, dict[str, Any]]:
    """``liteparity COMMAND`` on every recipe: its wall time and its JSON's ``timings``."""
    out = work / f"{command}.json"
    seconds, _ = _timed(
        [
            sys.executable, "-m", "liteparity", command, paths[0],
            "--data", paths[1], "--calibration-data", paths[2],
            "--recipes", ",".join(RECIPES), "--json", str(out),
        ]
    )  # fmt: skip
    timings: dict[str, Any] = json.loads(out.read_text())["timings"]
    return seconds, timings


def _result(stdout: str) -> dict[str, Any]:
    """The times a side printed (TensorFlow's C++ may print on standard output too)."""
    line = next(ln for ln in reversed(stdout.splitlines()) if ln.startswith("RESULT "))
    times: dict[str, Any] = json.loads(line[len("RESULT ") :])
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from skimage import data as photos
    from sklearn.datasets import load_sample_images

    work = Path(tempfile.mkdtemp(prefix="bench_check-"))
    images = [*load_sample_images().images, photos.astronaut(), photos.coffee(), photos.chelsea()]
    rng = np.random.default_rng(0)
    crops, which = [], []
    for _ in range(args.samples + 100):
        k = int(rng.integers(len(images)))
        img = images[k]
        y, x = rng.integers(img.shape[0] - 96), rng.integers(img.shape[1] - 96)
        crops.append(img[y : y + 96, x : x + 96, :3].astype(np.float32) / 127.5 - 1)
        which.append(k)
    x = np.stack(crops)
    labels = np.array(which[args.samples :])
    model = trained_application("MobileNetV2", x[args.samples :], labels, alpha=0.35)
    model.save(work / "mnv2.keras")
    np.savez(work / "eval.npz", x=x[: args.samples])
    np.savez(work / "cal.npz", x=x[args.samples :])
    paths = [str(work / "mnv2.keras"), str(work / "eval.npz"), str(work / "cal.npz")]
    (work / "floor.py").write_text(_FLOOR)
    (work / "plain.py").write_text(_PLAIN)

    rows: list[dict[str, float]] = []
    details: dict[str, dict[str, Any]] = {}
    for _ in range(args.rounds):
        floor, out = _timed([sys.executable, str(work / "floor.py"), *paths])
        details["floor"] = _result(out)
        floor -= details["floor"]["tuning (not in the floor)"]
        print(f"  floor {floor:.1f}s: {details['floor']}", flush=True)
        plain, out = _timed([sys.executable, str(work / "plain.py"), *paths, ",".join(RECIPES)])
        details["plain"] = _result(out)
        print(f"  plain {plain:.1f}s: {details['plain']}", flush=True)
        ours, details["liteparity"] = _liteparity("check", paths, work)
        explained, details["explain"] = _liteparity("explain", paths, work)
        rows.append({"floor": floor, "plain": plain, "liteparity": ours, "explain": explained})
        print(
            f"round: floor {floor:.1f}s  plain {plain:.1f}s  liteparity {ours:.1f}s  "
            f"explain {explained:.1f}s",
            flush=True,
        )

    def median(key: str) -> float:
        return statistics.median(r[key] for r in rows)

    print(f"\nMobileNetV2 α0.35 96×96 (briefly trained), {args.samples} samples, {RECIPES}")
    print(f"floor        {median('floor'):6.1f} s")
    print(f"plain script {median('plain'):6.1f} s")
    print(f"liteparity   {median('liteparity'):6.1f} s")
    over_floor = statistics.median(r["liteparity"] / r["floor"] for r in rows)
    over_plain = statistics.median(r["liteparity"] / r["plain"] for r in rows)
    over_check = statistics.median(r["explain"] / r["liteparity"] for r in rows)
    print(f"liteparity / floor: {over_floor:.2f}×   liteparity / plain: {over_plain:.2f}×")
    print(f"explain      {median('explain'):6.1f} s   explain / check: {over_check:.2f}×")
    for side, times in details.items():
        shown = (f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in times.items())
        print(f"{side:<11} (last round): " + ", ".join(shown))


if __name__ == "__main__":
    main()
