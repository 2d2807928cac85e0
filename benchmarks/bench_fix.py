"""Selective-quantization search: liteparity's bisection + pruning against a greedy
one-layer-at-a-time loop, on the same model, budget and data, in one run.

The model is the demo CNN (real MNIST) with a planted outlier channel in ``conv_a`` (×100,
compensated in ``conv_b``: the float function is unchanged, int8 loses accuracy). Both searches
look for the fewest layer groups to keep in float so that the drop is within the budget.

    python benchmarks/bench_fix.py [--max-drop 0.5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from liteparity.convert.converter import convert, requantize
from liteparity.convert.recipes import RECIPES
from liteparity.data.prepare import calibration_from


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-drop", type=float, default=0.5)
    args = parser.parse_args()

    from liteparity._tf import import_tensorflow
    from liteparity.demo import prepare
    from liteparity.layerwise import sensitivity
    from liteparity.reference.keras import KerasSource
    from liteparity.repair.search import _selective_search
    from liteparity.results.fix import Budget, Trial
    from liteparity.runtime.litemodel import LiteModel

    import_tensorflow()
    import keras

    files = prepare()
    model = keras.saving.load_model(files.model)
    kernel, bias = model.get_layer("conv_a").get_weights()
    kernel[..., 0] *= 1000.0
    bias[0] *= 1000.0
    model.get_layer("conv_a").set_weights([kernel, bias])
    kernel_b, bias_b = model.get_layer("conv_b").get_weights()
    kernel_b[:, :, 0, :] /= 1000.0
    model.get_layer("conv_b").set_weights([kernel_b, bias_b])
    with np.load(files.eval_data) as d:
        x, y = d["x"], d["y"]
    cal = np.load(files.calibration_data)["x"]
    reference = model.predict(x, verbose=0)
    ref_accuracy = float(np.mean(reference.argmax(1) == y))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "outlier.keras"
        model.save(path)
        source = KerasSource(str(path))
        calibrated = convert(
            source, RECIPES["int8"], calibration_from([[cal]]), calibrate_only=True
        )
    ranking = sensitivity.layer_sensitivity(
        calibrated, [[x]], [[reference]], source.layer_names(), stop=False
    ).ranking
    groups = [(s.layer, s.keep_float) for s in ranking]
    budget = Budget(args.max_drop)
    count = {"n": 0}

    def trial(recipe: str, content: bytes, keep=()) -> Trial:
        count["n"] += 1
        accuracy = float(np.mean(LiteModel(content).run([x])[0].argmax(1) == y))
        drop = 100 * (ref_accuracy - accuracy)
        return Trial(
            recipe, tuple(keep), len(content), 0.0, accuracy, drop, None, budget.met(drop, None)
        )

    def build(keep: list[int]) -> Trial:
        names = [n for i in keep for n in groups[i][1]]
        return trial("int8", requantize(calibrated, names), [groups[i][0] for i in keep])

    plain = build([])
    count["n"] = 0
    start = time.perf_counter()
    ours = _selective_search(groups, calibrated, trial, budget)
    ours_s, ours_n = time.perf_counter() - start, count["n"]

    count["n"] = 0
    start = time.perf_counter()
    kept: list[int] = []
    greedy = build(kept)
    while not greedy.within_budget and len(kept) < len(groups):
        options = [(build([*kept, i]), i) for i in range(len(groups)) if i not in kept]
        greedy, best = min(options, key=lambda o: o[0].drop)
        kept.append(best)
    greedy_s, greedy_n = time.perf_counter() - start, count["n"]

    print(
        f"demo CNN with an outlier channel, {len(x)} MNIST samples, {len(groups)} layer "
        f"groups; reference accuracy {ref_accuracy:.4f}, plain int8 drop {plain.drop:.2f}"
    )
    for label, t, n, s in (
        ("liteparity (bisection + pruning)", ours, ours_n, ours_s),
        ("greedy one layer at a time", greedy, greedy_n, greedy_s),
    ):
        found = f"float {', '.join(t.keep_float)}, drop {t.drop:.2f}" if t else "nothing"
        print(f"{label:34s} {n:3d} trials {s:6.2f} s  -> {found}")
    print(
        f"ratio: {greedy_n / max(ours_n, 1):.2f}x fewer trials, "
        f"{greedy_s / max(ours_s, 1e-9):.2f}x less time"
    )


if __name__ == "__main__":
    main()
