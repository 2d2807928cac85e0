"""Per-layer error: liteparity.locate against TensorFlow's QuantizationDebugger.

Same model, same 200 calibration samples, same 1000 evaluation samples (real MNIST), in one
process and one run. Each side runs ``--repeat`` times, alternating; the ratio printed is the
median of the repeats' ratios (a 2-core VM is noisy). Checks that the local errors agree
(mean squared error and mean error per layer, relative difference).

- debugger: ``QuantizationDebugger(converter=..., debug_dataset=...)`` (calibrates, builds
  the debug model and its interpreter) then ``run()`` (one invoke per sample, metrics in
  numpy per layer).
- liteparity: ``locate(...)`` (calibrates, builds the debug model, loads it and the float model
  into worker processes, and measures local error, propagated error against the float model,
  Keras→TFLite error per layer and Keras names). ``seconds["layers"]`` is its pass over the
  samples, the counterpart of ``run()``; ``seconds["load"]`` (interpreters built in the
  workers) is the counterpart of the debugger building its interpreter in its constructor.

    python benchmarks/bench_locate.py [--samples 1000] [--repeat 3] [--model demo|deep]

``--model deep`` is an 11-convolution depthwise-separable CNN (MobileNet-style, trained here for
two epochs on the demo's training rows of MNIST-5k): more layers and larger
activations, more per-layer work for both tools.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def deep_model(x: np.ndarray, y: np.ndarray, folder: Path) -> Path:
    """A MobileNet-style CNN for 28×28 digits: conv, then depthwise + pointwise blocks."""
    import keras

    keras.utils.set_random_seed(0)
    layers = [keras.Input((28, 28, 1)), keras.layers.Conv2D(16, 3, activation="relu")]
    for i, (filters, stride) in enumerate([(32, 2), (32, 1), (64, 2), (64, 1), (96, 1)]):
        layers += [
            keras.layers.DepthwiseConv2D(3, strides=stride, padding="same", name=f"dw{i}"),
            keras.layers.ReLU(6.0, name=f"dw{i}_relu"),
            keras.layers.Conv2D(filters, 1, name=f"pw{i}"),
            keras.layers.ReLU(6.0, name=f"pw{i}_relu"),
        ]
    layers += [keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)]
    model = keras.Sequential(layers, name="deep_cnn")
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=2, batch_size=64, verbose=0)
    path = folder / "deep_cnn.keras"
    model.save(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--model", choices=("demo", "deep"), default="demo")
    args = parser.parse_args()

    from liteparity._tf import import_tensorflow, quiet
    from liteparity.demo import mnist_5k, prepare, split
    from liteparity.layerwise.locate import locate
    from liteparity.reference.keras import KerasSource

    tf = import_tensorflow()
    files = prepare()
    x_cal = np.load(files.calibration_data)["x"]
    with np.load(files.eval_data) as d:
        x, y = d["x"][: args.samples], d["y"][: args.samples]
    folder = Path(tempfile.mkdtemp())
    if args.model == "demo":
        path = files.model
    else:
        x_all, y_all = mnist_5k()
        train, _ = split(len(x_all))
        path = deep_model(x_all[train], y_all[train], folder)
    source = KerasSource(str(path))  # loaded once, outside both timings

    def debugger() -> tuple[float, float, dict]:
        start = time.perf_counter()
        converter = source.converter()
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.representative_dataset = lambda: ([x_cal[i : i + 1]] for i in range(len(x_cal)))
        with quiet():
            debug = tf.lite.experimental.QuantizationDebugger(
                converter=converter,
                debug_dataset=lambda: ([x[i : i + 1]] for i in range(len(x))),
                debug_options=tf.lite.experimental.QuantizationDebugOptions(fully_quantize=True),
            )
        setup = time.perf_counter() - start
        start = time.perf_counter()
        debug.run()
        return setup, time.perf_counter() - start, debug.layer_statistics

    def ours() -> tuple[float, dict[str, float], object]:
        # sensitivity off: the debugger has no such experiment
        start = time.perf_counter()
        result = locate(source, data=(x, y), calibration_data=x_cal, with_sensitivity=False)
        return time.perf_counter() - start, result.seconds, result

    times: dict[str, list[float]] = {"setup": [], "run": [], "total": [], "load": [], "pass": []}
    for _ in range(args.repeat):
        setup, run, theirs = debugger()
        total, seconds, result = ours()
        times["setup"].append(setup)
        times["run"].append(run)
        times["total"].append(total)
        times["load"].append(seconds["load"])
        times["pass"].append(seconds["layers"])
    m = {k: statistics.median(v) for k, v in times.items()}
    # Each repeat's two sides ran seconds apart, under the same machine load: their ratio is
    # steadier than a ratio of medians.
    pass_ratio = statistics.median(r / p for r, p in zip(times["run"], times["pass"], strict=True))
    total_ratio = statistics.median(
        (s + r) / t for s, r, t in zip(times["setup"], times["run"], times["total"], strict=True)
    )

    local = [r.local for r in result.layers if r.local]
    worst = 0.0
    for metric in ("mean_squared_error", "mean_error"):
        a = np.array([row[metric] for row in local])
        b = np.array([float(s[metric]) for s in theirs.values()])
        worst = max(worst, float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-30))))
    print(
        f"{source.path}: int8, {len(x)} MNIST samples, {len(x_cal)} calibration samples, "
        f"median of {args.repeat}"
    )
    print(
        f"  equal numbers: {len(local)} layers, largest relative difference "
        f"(MSE and mean error) {worst:.1e}"
    )
    print(
        f"QuantizationDebugger: setup {m['setup']:.3f} s + run() {m['run']:.3f} s "
        f"= {m['setup'] + m['run']:.3f} s"
    )
    print(
        f"liteparity.locate:    total {m['total']:.3f} s, of which loading the workers "
        f"{m['load']:.3f} s and the pass over the samples {m['pass']:.3f} s"
    )
    print(f"ratio, pass over the samples (debugger run() / locate's pass): {pass_ratio:.1f}x")
    print(f"ratio, end to end (debugger setup+run / locate total):        {total_ratio:.2f}x")


if __name__ == "__main__":
    main()
