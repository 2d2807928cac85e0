"""Per-layer error: liteparity.locate against TensorFlow's QuantizationDebugger.

Same model (the demo CNN on real MNIST), same 200 calibration samples, same 1000 evaluation
samples, in one process and one run. Prints the time of each and the ratios, and checks that
the local errors agree (mean squared error per layer, relative difference).

    python benchmarks/bench_locate.py [--samples 1000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    args = parser.parse_args()

    from liteparity.demo import prepare
    from liteparity.per_layer import locate
    from liteparity.sources import KerasSource, import_tensorflow, quiet

    tf = import_tensorflow()
    files = prepare()
    x_cal = np.load(files.calibration_data)["x"]
    with np.load(files.eval_data) as d:
        x, y = d["x"][: args.samples], d["y"][: args.samples]
    source = KerasSource(str(files.model))  # loaded once, outside both timings

    # TensorFlow's debugger: calibrate, build the debug model, then one invoke per sample.
    start = time.perf_counter()
    converter = source.converter()
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.representative_dataset = lambda: ([x_cal[i : i + 1]] for i in range(len(x_cal)))
    with quiet():
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter,
            debug_dataset=lambda: ([x[i : i + 1]] for i in range(len(x))),
            debug_options=tf.lite.experimental.QuantizationDebugOptions(fully_quantize=True),
        )
    setup = time.perf_counter() - start
    start = time.perf_counter()
    debugger.run()
    run = time.perf_counter() - start

    # liteparity: the same local error, plus propagated error, Keras names and the
    # Keras→TFLite split (sensitivity off: the debugger has no such experiment).
    start = time.perf_counter()
    result = locate(source, data=(x, y), calibration_data=x_cal, with_sensitivity=False)
    total = time.perf_counter() - start
    layers = result.seconds["layers"]

    theirs = [float(s["mean_squared_error"]) for s in debugger.layer_statistics.values()]
    ours = [r.local["mean_squared_error"] for r in result.layers if r.local]
    worst = max(abs(a - b) / max(abs(b), 1e-30) for a, b in zip(ours, theirs, strict=True))
    print(f"demo CNN, int8, {len(x)} MNIST samples, {len(x_cal)} calibration samples")
    print(f"  equal numbers: {len(ours)} layers, largest relative MSE difference {worst:.2e}")
    print(f"QuantizationDebugger: setup {setup:.3f} s + run() {run:.3f} s = {setup + run:.3f} s")
    print(f"liteparity.locate:    total {total:.3f} s, of which the layer pass {layers:.3f} s")
    print(f"ratio, layer statistics (debugger run() / locate's pass): {run / layers:.1f}x")
    print(f"ratio, end to end (debugger setup+run / locate total):     "
          f"{(setup + run) / total:.2f}x")


if __name__ == "__main__":
    main()
