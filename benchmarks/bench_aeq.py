"""Per-tensor error of AEQ's int8: ``liteparity locate`` against AEQ's own validation.

The same pair (a MediaPipe model's float32 prepared copy and its AEQ ``int8``, made once by
liteparity's engine) and the same real photos go through both: ``liteparity.locate`` with the
pair as ``--candidate`` (every tensor, propagated error), and ``Quantizer.validate`` of all
tensors (AEQ's ``model_validator.compare_model``: one sample at a time, every tensor kept).
Printed: the largest relative difference between the two MSEs over the tensors both report,
and the wall time of each.

    python benchmarks/bench_aeq.py [--model face_detection_short_range] [--samples 64]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.shared_models


def main() -> None:
    from ai_edge_quantizer import quantizer, recipe
    from tests.shared_models import MODELS

    import liteparity
    from liteparity.convert.aeq import TFLiteQuantizer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="face_detection_short_range", choices=sorted(MODELS))
    parser.add_argument("--samples", type=int, default=64)
    args = parser.parse_args()
    shared = MODELS[args.model]
    photos = shared.photos(args.samples)
    calibration = shared.photos(32, offset=args.samples)

    engine = TFLiteQuantizer(shared.path.read_bytes(), [[calibration]])
    float_model, quantized = engine.prepared.content, engine.quantize("int8")
    with tempfile.TemporaryDirectory() as tmp:
        float_path, quant_path = Path(tmp) / "float.tflite", Path(tmp) / "int8.tflite"
        float_path.write_bytes(float_model)
        quant_path.write_bytes(quantized)
        np.savez(Path(tmp) / "photos.npz", x=photos)

        clock = time.perf_counter()
        located = liteparity.locate(
            float_path, data=Path(tmp) / "photos.npz", candidate=quant_path, workers=2
        )
        ours_s = time.perf_counter() - clock

    clock = time.perf_counter()
    (name,) = engine.prepared.input_names
    theirs = quantizer.Quantizer(
        bytearray(float_model), recipe.static_wi8_ai8(), previous_quantized_model=quantized
    ).validate(
        test_data={engine.prepared.signature_key: [{name: p[None]} for p in photos]},
        num_threads=2,
    )
    theirs_s = time.perf_counter() - clock

    aeq = {k: v["mse"] for k, v in theirs.get_all_tensor_results().items()}
    ours = {
        r.tensor_name: r.propagated["mean_squared_error"]
        for r in located.layers
        if r.propagated is not None
    }
    common = sorted(set(ours) & set(aeq))
    differences = [
        abs(ours[k] - aeq[k]) / max(abs(aeq[k]), 1e-12) for k in common if aeq[k] > 1e-12
    ]
    worst = max(zip(differences, common, strict=True)) if differences else (0.0, "-")
    print(f"{args.model}: {args.samples} photos, {len(common)} tensors in both")
    print(f"largest relative MSE difference: {worst[0]:.2e} (tensor {worst[1]!r})")
    print(f"liteparity locate: {ours_s:.1f} s; AEQ validate: {theirs_s:.1f} s; ", end="")
    print(f"ratio {theirs_s / ours_s:.1f}x")


if __name__ == "__main__":
    main()
