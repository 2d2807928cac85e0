"""The real-model matrix: every command on real production models and standard architectures,
each cell checked against an independent computation or refused in one line.

    python benchmarks/real_models.py            # the whole matrix (tens of minutes)
    python benchmarks/real_models.py --quick    # the MediaPipe models and two small Keras ones
    python benchmarks/real_models.py --only face,lstm

One line per cell: the command, its exit code, its wall time and peak memory (largest process,
from ``/usr/bin/time``), and a verdict:
- ``ok (max|Δ| vs loop 0)``: every candidate's ``max_abs_error`` and ``rmse`` equal a plain
  interpreter loop's (one sample at a time, written here, sharing no code with liteparity), or
  for commands without such numbers, the command finished with a result;
- ``refused: <the one line>``: exit 2 with one line and no traceback;
- ``FAIL: ...``: a traceback, exit 1 without a budget, more than one line, or wrong numbers.

Models: the three MediaPipe ``.tflite`` files in ``../shared/models`` with candidates
quantized here by ai-edge-quantizer (through ``liteparity.convert.aeq``), and Keras models
built with ``weights=None``, trained for one short epoch on real photos or digits.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.shared_models: the photos and the model table

from tests.shared_models import MODELS  # noqa: E402


@dataclass(frozen=True)
class Cell:
    name: str
    args: list[str]
    pairs: list[tuple[str, str]]  # (candidate name in the JSON, .tflite path) to verify
    reference: Callable[[np.ndarray], dict[str, np.ndarray]] | None  # outputs by name
    data: str


def loop(path: str, x: np.ndarray) -> list[np.ndarray]:
    """Every output, one sample at a time, on a plain interpreter; float I/O expected."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=path)
    it.allocate_tensors()
    detail = it.get_input_details()[0]
    outs: list[list[np.ndarray]] = [[] for _ in it.get_output_details()]
    for i in range(len(x)):
        it.set_tensor(detail["index"], x[i : i + 1].astype(detail["dtype"]))
        it.invoke()
        for k, d in enumerate(it.get_output_details()):
            outs[k].append(it.get_tensor(d["index"]).astype(np.float64))
    return [np.concatenate(o) for o in outs]


def named(path: str) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """The loop's outputs by name: the signature's output names when the model has one (the
    names LiteRT's signature runner gives), else the tensors' own names (``:0`` dropped)."""

    def outputs(x: np.ndarray) -> dict[str, np.ndarray]:
        from ai_edge_litert.interpreter import Interpreter

        it = Interpreter(model_path=path)
        by_index = {d["index"]: d["name"].split(":")[0] for d in it.get_output_details()}
        signatures = it.get_signature_list()
        if len(signatures) == 1:
            runner = it.get_signature_runner(next(iter(signatures)))
            for key, d in runner.get_output_details().items():
                by_index[d["index"]] = key
        names = [by_index[d["index"]] for d in it.get_output_details()]
        return dict(zip(names, loop(path, x), strict=True))

    return outputs


def keras_outputs(path: Path) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    def outputs(x: np.ndarray) -> dict[str, np.ndarray]:
        import keras

        out = keras.saving.load_model(path).predict(x, verbose=0, batch_size=1)
        values = out if isinstance(out, list) else [out]
        return {f"output_{i}": np.asarray(o, np.float64) for i, o in enumerate(values)}

    return outputs


def run(cell: Cell, out: Path) -> str:
    json_path = out / f"{cell.name}.json"
    command = [sys.executable, "-m", "liteparity", *cell.args, "--json", str(json_path)]
    timed = ["/usr/bin/time", "-f", "%e %M", *command]
    proc = subprocess.run(timed, capture_output=True, text=True, check=False)
    *said, last = proc.stderr.strip().splitlines() or ["0 0"]
    seconds, kb = last.split()
    head = (
        f"{cell.name:<28} exit {proc.returncode}  {float(seconds):7.1f} s  {int(kb) / 1024:7.0f} MB"
    )
    said = [ln for ln in said if ln.strip() and not ln.startswith("wrote ")]
    if "Traceback" in proc.stderr:
        return f"{head}  FAIL: traceback: {said[-1] if said else ''}"
    if proc.returncode == 2:
        one = [ln for ln in said if "liteparity:" in ln]
        return f"{head}  refused: {one[-1] if one else said[-1:]}"
    if proc.returncode not in (0, 1):
        return f"{head}  FAIL: exit {proc.returncode}: {said[-1:]}"
    return f"{head}  {verify(cell, json_path)}"


def verify(cell: Cell, json_path: Path) -> str:
    if not cell.pairs or not json_path.exists():
        return "ok (finished)"
    doc = json.loads(json_path.read_text())
    rows = {c["name"]: c for c in doc.get("candidates", [])}
    data = np.load(cell.data)
    x = data["x"] if isinstance(data, np.lib.npyio.NpzFile) else data
    ref = cell.reference(x) if cell.reference else None
    worst = 0.0
    for name, path in cell.pairs:
        row = rows.get(name)
        if ref is None or row is None or row.get("error") or not Path(path).exists():
            continue
        cand = named(path)(x)
        for out in row.get("outputs") or []:
            want, got = ref.get(out["name"]), cand.get(out["matched"])
            if want is None or got is None:
                return f"FAIL: {name}: no output {out['name']!r}/{out['matched']!r} in the loop"
            loop_max = float(np.max(np.abs(got.reshape(want.shape) - want)))
            theirs = out.get("max_abs_error")
            if not isinstance(theirs, (int, float)):
                return f"FAIL: {name} {out['name']}: max_abs_error {theirs!r}"
            gap = abs(float(theirs) - loop_max)
            if gap > 1e-5 * max(1.0, loop_max):
                return f"FAIL: {name} {out['name']}: max_abs_error {theirs} vs loop {loop_max}"
            worst = max(worst, gap)
        if not row.get("outputs"):
            return f"FAIL: {name}: no per-output results"
    return f"ok (max|Δ| vs loop {worst:.1e})"


def mediapipe_cells(work: Path, samples: int) -> list[Cell]:
    from liteparity.convert.aeq import quantize_tflite

    cells = []
    for key, model in MODELS.items():
        short = key.split("_")[0]
        x = model.photos(samples)
        data = work / f"{short}.npy"
        np.save(data, x)
        pairs = []
        for recipe in ("dynamic", "int8"):
            path = work / f"{short}_{recipe}.tflite"
            try:
                path.write_bytes(quantize_tflite(model.path.read_bytes(), recipe, [[x[:16]]]))
            except Exception as exc:
                print(f"{short}: {recipe} not built: {exc}")
                continue
            pairs.append((f"tflite:{path.name}", str(path)))
        ref = str(model.path)
        cand = [a for _, p in pairs for a in ("--candidate", p)]
        truth = named(ref)
        cells += [
            Cell(
                f"{short} check",
                ["check", ref, *cand, "--data", str(data)],
                pairs,
                truth,
                str(data),
            ),
            Cell(
                f"{short} explain",
                ["explain", ref, *cand, "--data", str(data)],
                [],
                None,
                str(data),
            ),
        ]
        if pairs:
            last = pairs[-1][1]
            cells.append(
                Cell(
                    f"{short} locate",
                    ["locate", ref, "--candidate", last, "--data", str(data)],
                    [],
                    None,
                    str(data),
                )
            )
    return cells


def keras_cells(work: Path, quick: bool) -> list[Cell]:
    """Keras architectures trained briefly on real data, every recipe and command."""
    builders: dict[str, Callable[[Path], tuple[Path, Path]]] = {
        "mobilenet_v2": lambda w: _application(w, "MobileNetV2", 96, alpha=0.35),
        "lstm_text": _lstm,
    }
    if not quick:
        builders.update(
            {
                "mobilenet_v3_small": lambda w: _application(w, "MobileNetV3Small", 96),
                "efficientnet_b0": lambda w: _application(w, "EfficientNetB0", 96),
                "resnet_small": lambda w: _application(w, "ResNet50", 64),
            }
        )
    cells = []
    for name, build in builders.items():
        model, data = build(work)
        saved = work / f"{name}_models"
        base = [str(model), "--data", str(data)]
        recipes = ("float32", "float16", "dynamic", "int8", "int16x8")
        pairs = [(r, str(saved / f"{r}.tflite")) for r in recipes]
        cells += [
            Cell(
                f"{name} check all",
                ["check", *base, "--recipes", "all", "--save-models", str(saved)],
                pairs,
                keras_outputs(model),
                str(data),
            ),
            Cell(f"{name} explain", ["explain", *base, "--recipes", "int8"], [], None, str(data)),
            Cell(f"{name} locate", ["locate", *base], [], None, str(data)),
            Cell(f"{name} fix", ["fix", *base, "--max-drop", "2"], [], None, str(data)),
        ]
    return cells


def _photos_npz(work: Path, size: int, classes: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    x = MODELS["hand_landmark_lite"].photos(count)
    from PIL import Image

    x = np.stack(
        [
            np.asarray(Image.fromarray((i * 255).astype(np.uint8)).resize((size, size)), np.float32)
            / 255.0
            for i in x
        ]
    )
    y = (np.arange(count) % classes).astype(np.int64)
    return x, y


def _application(work: Path, arch: str, size: int, **kwargs: float) -> tuple[Path, Path]:
    import keras

    x, y = _photos_npz(work, size, 4, 96)
    model = getattr(keras.applications, arch)(
        input_shape=(size, size, 3), weights=None, classes=4, **kwargs
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    path, data = work / f"{arch}.keras", work / f"{arch}.npz"
    model.save(path)
    np.savez(data, x=x, y=y)
    return path, data


def _lstm(work: Path) -> tuple[Path, Path]:
    """int32 token ids → Embedding → LSTM → Dense, fixed batch 1 (the converter-crash case)."""
    import keras

    rng = np.random.default_rng(0)
    x = rng.integers(1, 500, (200, 24)).astype(np.int32)
    y = (x[:, 0] % 2).astype(np.int64)
    inp = keras.Input((24,), batch_size=1, dtype="int32")
    h = keras.layers.LSTM(16)(keras.layers.Embedding(500, 8)(inp))
    model = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(h))
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=1, verbose=0)
    path, data = work / "lstm.keras", work / "lstm.npz"
    model.save(path)
    np.savez(data, x=x, y=y)
    return path, data


MEDIAPIPE = ("face", "hand", "selfie")
KERAS = ("mobilenet_v2", "lstm_text", "mobilenet_v3_small", "efficientnet_b0", "resnet_small")


def _any(wanted: list[str], names: tuple[str, ...]) -> bool:
    """Whether a cell of ``names`` is wanted (no ``--only``: all are)."""
    return not wanted or any(n.startswith(w) or w.startswith(n) for w in wanted for n in names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="", help="comma-separated name prefixes")
    parser.add_argument("--samples", type=int, default=24)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="liteparity-matrix-") as tmp:
        work = Path(tmp)
        wanted = [p for p in args.only.split(",") if p]
        cells = mediapipe_cells(work, args.samples) if _any(wanted, MEDIAPIPE) else []
        if _any(wanted, KERAS):
            cells += keras_cells(work, args.quick)
        for cell in cells:
            if wanted and not any(cell.name.startswith(p) for p in wanted):
                continue
            print(run(cell, work), flush=True)


if __name__ == "__main__":
    main()
