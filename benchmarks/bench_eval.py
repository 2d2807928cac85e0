"""Evaluation speed: liteparity against the naive per-sample loop of the seeds.

The task: compare a quantized model with its float twin on real MNIST (the demo CNN, the
5000 MNIST-5k samples tiled ``--repeat`` times) — accuracy of both and top-1 agreement. The
baseline is the seeds' script: one invoke per sample per model, quantization by hand. Both
run in the same process and run; the ratio is what matters, not the absolute numbers.

    python benchmarks/bench_eval.py [--recipe int8-io] [--repeat 10]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def naive_compare(float_path: str, quant_path: str, x: np.ndarray, y: np.ndarray):
    """The seeds' style, for both models: one invoke per sample, (scale, zero_point) by hand."""
    from ai_edge_litert.interpreter import Interpreter

    def open_model(path: str):
        it = Interpreter(model_path=path)
        it.allocate_tensors()
        return it, it.get_input_details()[0], it.get_output_details()[0]

    def predict(model, sample: np.ndarray) -> np.ndarray:
        it, inp, out = model
        scale, zero_point = inp["quantization"]
        if scale:
            info = np.iinfo(inp["dtype"])
            sample = np.clip(np.round(sample / scale) + zero_point, info.min, info.max)
        it.set_tensor(inp["index"], sample.astype(inp["dtype"]))
        it.invoke()
        out_values = it.get_tensor(out["index"]).astype(np.float32)
        scale, zero_point = out["quantization"]
        return (out_values - zero_point) * scale if scale else out_values

    reference, candidate = open_model(float_path), open_model(quant_path)
    correct = agree = 0
    for i in range(len(x)):
        r = predict(reference, x[i : i + 1]).argmax()
        c = predict(candidate, x[i : i + 1]).argmax()
        correct += int(c == y[i])
        agree += int(c == r)
    return correct / len(x), agree / len(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="int8-io")
    parser.add_argument("--repeat", type=int, default=10, help="tile MNIST-5k this many times")
    args = parser.parse_args()

    import liteparity
    from liteparity.demo import mnist_5k, prepare
    from liteparity.runtime.litemodel import LiteModel

    files = prepare()
    x, y = mnist_5k()
    x, y = np.tile(x, (args.repeat, 1, 1, 1)), np.tile(y, args.repeat)
    with tempfile.TemporaryDirectory() as tmp:
        liteparity.check(
            files.model,
            data=files.eval_data,
            calibration_data=files.calibration_data,
            recipes=["float32", args.recipe],
            save_dir=tmp,
            max_samples=10,
        )
        float_path, quant_path = (str(Path(tmp) / f"{r}.tflite") for r in ("float32", args.recipe))
        start = time.perf_counter()
        naive_accuracy, naive_agreement = naive_compare(float_path, quant_path, x, y)
        t_naive = time.perf_counter() - start

        start = time.perf_counter()
        result = liteparity.check(float_path, candidates=[quant_path], data=(x, y))
        t_check = time.perf_counter() - start

        model = LiteModel(Path(quant_path).read_bytes())
        start = time.perf_counter()
        batch = model.tune_batch_size([x[:256]])
        model.run([x])
        t_engine = time.perf_counter() - start

    row, n = result.candidates[0], len(x)
    print(f"demo CNN, float32 vs {args.recipe}, {n} MNIST samples (MNIST-5k x{args.repeat})")
    print(
        f"  same numbers: accuracy {row.metric.value:.4f} vs naive {naive_accuracy:.4f}, "
        f"agreement {row.agreement:.4f} vs naive {naive_agreement:.4f}"
    )
    print(f"naive per-sample loop (both models)   {n / t_naive:9.0f} samples/s  {t_naive:.2f} s")
    print(
        f"liteparity.check (end to end)         {n / t_check:9.0f} samples/s  {t_check:.2f} s"
        f"  ratio {t_naive / t_check:.2f}x"
    )
    print(
        "  (check also measures RMSE, SQNR, cosine, max error and latency, and starts "
        "two worker processes)"
    )
    print(
        f"LiteModel.run, one model (batch {batch:>3})  {n / t_engine:9.0f} samples/s  "
        f"{t_engine:.2f} s  ratio per model {t_naive / 2 / t_engine:.2f}x"
    )


if __name__ == "__main__":
    main()
