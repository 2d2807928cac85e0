"""Session-wide fixtures: tiny real models trained once on real data (scikit-learn digits)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@dataclass(frozen=True)
class Digits:
    x_train: np.ndarray
    y_train: np.ndarray
    x_cal: np.ndarray
    x_eval: np.ndarray
    y_eval: np.ndarray


#: The stable recipe names check runs by default, in their order (pinned here, not imported).
DEFAULT_RECIPES = [
    "float32",
    "float16",
    "dynamic",
    "int8",
    "int8-io",
    "uint8-io",
    "int16x8",
    "legacy-uint8",
]


@pytest.fixture(scope="session")
def digits() -> Digits:
    """scikit-learn's 8×8 digits in [0, 1], split into train / calibration / evaluation."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[..., None]
    y = d.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    train, evaluation = order[:1200], order[1200:]
    return Digits(x[train], y[train], x[train[:100]], x[evaluation], y[evaluation])


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def cnn(digits: Digits, models_dir: Path) -> Path:
    """The demo's CNN architecture trained on digits, saved as Keras 3 ``.keras``."""
    from liteparity._tf import import_tensorflow, quiet
    from liteparity.demo import build_cnn

    tf = import_tensorflow()
    tf.keras.utils.set_random_seed(0)
    model = build_cnn((8, 8, 1))
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    with quiet():
        model.fit(digits.x_train, digits.y_train, epochs=25, batch_size=32, verbose=0)
    path = models_dir / "cnn.keras"
    model.save(path)
    return path


@pytest.fixture(scope="session")
def eval_npz(digits: Digits, models_dir: Path) -> Path:
    path = models_dir / "eval.npz"
    np.savez(path, x=digits.x_eval, y=digits.y_eval)
    return path


@pytest.fixture(scope="session")
def cal_npz(digits: Digits, models_dir: Path) -> Path:
    path = models_dir / "cal.npz"
    np.savez(path, x=digits.x_cal)
    return path


@pytest.fixture(scope="session")
def frozen_graph(cnn: Path, models_dir: Path) -> Path:
    """The same CNN frozen into a TF1 GraphDef (what the seeds' users had)."""
    from liteparity._tf import import_tensorflow
    from liteparity.reference.keras import KerasSource

    tf = import_tensorflow()
    graph_def, inputs, outputs = KerasSource(str(cnn)).frozen_graph()
    assert inputs == ["image"]
    path = models_dir / "cnn.pb"
    path.write_bytes(graph_def.SerializeToString())
    (models_dir / "cnn.pb.outputs").write_text(outputs[0])
    del tf
    return path


@pytest.fixture(scope="session")
def check_all(cnn: Path, eval_npz: Path, cal_npz: Path, models_dir: Path):
    """``check --recipes all`` (plus legacy-uint8) on the CNN, models saved for oracles."""
    import liteparity

    return liteparity.check(
        cnn,
        data=eval_npz,
        calibration_data=cal_npz,
        recipes=["all", "legacy-uint8"],
        legacy=liteparity.LegacySettings(0.0, 255.0, (0.0, 6.0)),
        save_dir=models_dir / "recipes",
    )


@pytest.fixture(scope="session")
def hard_swish(models_dir: Path) -> Path:
    """A conv with MobileNetV3's hard swish (x · relu6(x + 3) / 6, which the converter fuses
    into HARD_SWISH): an op without an int16x8 kernel."""
    import keras

    keras.utils.set_random_seed(0)
    image = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(4, 3)(image)
    x = keras.layers.Multiply()([x, keras.layers.ReLU(6.0)(x + 3.0) * (1.0 / 6.0)])
    model = keras.Model(image, keras.layers.Dense(10)(keras.layers.Flatten()(x)))
    path = models_dir / "hard_swish.keras"
    model.save(path)
    return path


@pytest.fixture(scope="session")
def two_by_two(digits: Digits, models_dir: Path) -> Path:
    """Inputs named so that alphabetical order is not model order; two same-shape heads."""
    import keras

    from liteparity._tf import import_tensorflow, quiet

    import_tensorflow()
    keras.utils.set_random_seed(1)
    zeta = keras.Input((8, 8, 1), name="zeta")
    alpha = keras.Input((8, 8, 1), name="alpha")
    z = keras.layers.Flatten()(zeta)
    a = keras.layers.Flatten()(alpha)
    hidden = keras.layers.Dense(32, activation="relu")(keras.layers.Concatenate()([z, 2 * a]))
    first = keras.layers.Dense(10, activation="softmax", name="zz_head")(hidden)
    second = keras.layers.Dense(10, name="aa_head")(z)
    model = keras.Model([zeta, alpha], [first, second])
    model.compile("adam", ["sparse_categorical_crossentropy", "mse"])
    with quiet():
        model.fit(
            [digits.x_train, digits.x_train[::-1]],
            [digits.y_train, np.eye(10)[digits.y_train]],
            epochs=3,
            verbose=0,
        )
    path = models_dir / "two_by_two.keras"
    model.save(path)
    return path


@pytest.fixture(scope="session")
def outlier_cnn(cnn: Path, models_dir: Path) -> Path:
    """Planted: channel 0 of conv_a scaled ×100 and conv_b's weights from it ÷100. ReLU is
    positively homogeneous, so the float model computes the same function."""
    import keras

    from liteparity._tf import import_tensorflow

    import_tensorflow()
    model = keras.saving.load_model(cnn)
    kernel, bias = model.get_layer("conv_a").get_weights()
    kernel[..., 0] *= 100.0
    bias[0] *= 100.0
    model.get_layer("conv_a").set_weights([kernel, bias])
    kernel_b, bias_b = model.get_layer("conv_b").get_weights()
    kernel_b[:, :, 0, :] /= 100.0
    model.get_layer("conv_b").set_weights([kernel_b, bias_b])
    path = models_dir / "outlier.keras"
    model.save(path)
    return path


KERAS2_SCRIPT = """
import sys, numpy as np, tf_keras as k
from sklearn.datasets import load_digits
d = load_digits(); x = (d.data / 16.0).astype("float32"); y = d.target
k.utils.set_random_seed(0)
m = k.Sequential([k.layers.Input((64,), name="pixels"), k.layers.Dense(32, activation="relu"),
                  k.layers.Dense(10, activation="softmax")])
m.compile("adam", "sparse_categorical_crossentropy")
m.fit(x, y, epochs=10, verbose=0)
m.save(sys.argv[1])
np.save(sys.argv[2], m.predict(x[:50], verbose=0))
"""


@pytest.fixture(scope="session")
def keras2_h5(models_dir: Path) -> tuple[Path, np.ndarray]:
    """A Keras 2 model trained and saved as .h5 by tf_keras, in its own process."""
    path, expected = models_dir / "mlp.h5", models_dir / "mlp_expected.npy"
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1")
    subprocess.run(
        [sys.executable, "-c", KERAS2_SCRIPT, str(path), str(expected)],
        env=env,
        check=True,
        capture_output=True,
    )
    return path, np.load(expected)


@pytest.fixture(scope="session")
def lstm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A Keras 3 text classifier with a fixed batch of 1: int32 tokens → Embedding → LSTM →
    Dense. TF 2.21's calibrator segfaults on it."""
    import keras

    keras.utils.set_random_seed(0)
    tokens = keras.Input((12,), batch_size=1, dtype="int32")
    x = keras.layers.Embedding(50, 8)(tokens)
    x = keras.layers.LSTM(8)(x)
    model = keras.Model(tokens, keras.layers.Dense(3, activation="softmax")(x))
    folder = tmp_path_factory.mktemp("lstm")
    model.save(folder / "lstm.keras")
    rng = np.random.default_rng(0)
    x_data = rng.integers(0, 50, (40, 12)).astype(np.int32)
    np.savez(folder / "tokens.npz", x=x_data, y=rng.integers(0, 3, 40))
    return folder / "lstm.keras", folder / "tokens.npz"


def oracle_outputs(path: Path | str, x: np.ndarray) -> np.ndarray:
    """An independent plain loop in the seeds' style: one sample at a time, the input
    quantized and the output dequantized by hand with the tensor's (scale, zero_point)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    results = []
    for i in range(len(x)):
        sample = x[i : i + 1]
        scale, zero_point = inp["quantization"]
        if scale:
            info = np.iinfo(inp["dtype"])
            sample = np.clip(np.round(sample / scale) + zero_point, info.min, info.max)
        it.set_tensor(inp["index"], sample.astype(inp["dtype"]))
        it.invoke()
        y = it.get_tensor(out["index"]).astype(np.float32)
        scale, zero_point = out["quantization"]
        if scale:
            y = (y - zero_point) * scale
        results.append(y[0])
    return np.stack(results)


def oracle_all_outputs(path: Path | str, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every output of a float-input model by tensor name, one sample at a time on a plain
    interpreter (the seeds' loop): what any batching must reproduce."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    outputs: dict[str, list[np.ndarray]] = {d["name"]: [] for d in it.get_output_details()}
    for i in range(len(x)):
        it.set_tensor(inp["index"], x[i : i + 1])
        it.invoke()
        for d in it.get_output_details():
            outputs[d["name"]].append(it.get_tensor(d["index"]).copy())
    return {name: np.concatenate(v) for name, v in outputs.items()}
