"""Every bad input a user can bring: one line saying what was wrong and what was expected,
exit code 2, no traceback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from liteparity.cli.app import app
from tests.cli.said import one_line
from tests.conftest import Digits

runner = CliRunner()


@pytest.fixture(scope="session")
def bad_files(tmp_path_factory: pytest.TempPathFactory, check_all, digits: Digits) -> dict:
    d = tmp_path_factory.mktemp("bad")
    x, y = digits.x_eval[:50], digits.y_eval[:50]
    files = {
        "text.keras": b"not a model",
        "truncated.tflite": Path(check_all.candidate("float32").path).read_bytes()[:600],
        "garbage.tflite": b"\x00\x00\x00\x00TFL3" + b"\xff" * 200,
    }
    for name, content in files.items():
        (d / name).write_bytes(content)
    np.savez(d / "flat.npz", x=x.reshape(50, 64), y=y)
    nan = x.copy()
    nan[7, 0, 0, 0] = np.nan
    np.savez(d / "nan.npz", x=nan, y=y)
    np.savez(d / "few_labels.npz", x=x, y=y[:40])
    np.savez(d / "big_labels.npz", x=x, y=y + 10)
    np.savez(d / "empty.npz", x=x[:0], y=y[:0])
    np.savez(d / "unnamed.npz", a=x, b=x, y=y)
    np.savez(d / "good.npz", x=x, y=y)
    return {"dir": d, "float": check_all.candidate("float32").path}


@pytest.fixture(scope="session")
def lambda_model(models_dir: Path) -> Path:
    import keras

    from liteparity._tf import import_tensorflow

    import_tensorflow()
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Lambda(lambda t: t * 2.0),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ]
    )
    path = models_dir / "lambda.keras"
    model.save(path)
    return path


@pytest.fixture(scope="session")
def flex_model(models_dir: Path) -> Path:
    """A real select-TF model: cumprod has no builtin kernel, so it becomes FlexCumprod."""
    from liteparity._tf import import_tensorflow, quiet

    tf = import_tensorflow()
    fn = tf.function(
        lambda x: tf.math.cumprod(x, axis=1), input_signature=[tf.TensorSpec([None, 4], tf.float32)]
    )
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS,
        tf.lite.OpsSet.SELECT_TF_OPS,
    ]
    with quiet():
        content = converter.convert()
    path = models_dir / "flex.tflite"
    path.write_bytes(content)
    return path


CASES = [
    (
        "missing file",
        ["check", "nope.keras", "--data", "{dir}/good.npz"],
        "model file not found: nope.keras",
    ),
    (
        "not a model",
        ["check", "{dir}/text.keras", "--data", "{dir}/good.npz"],
        "not a Keras 3 .keras file (it is not a zip archive)",
    ),
    (
        "truncated .tflite",
        ["check", "{dir}/truncated.tflite", "--data", "{dir}/good.npz"],
        "not a valid .tflite model",
    ),
    ("corrupt flatbuffer", ["qparams", "{dir}/garbage.tflite"], "not a valid .tflite model"),
    (
        "unknown recipe",
        ["check", "{cnn}", "--data", "{dir}/good.npz", "--recipes", "int4"],
        "expected one of float32, float16, dynamic, int8",
    ),
    (
        "data shape",
        ["check", "{cnn}", "--data", "{dir}/flat.npz", "--recipes", "float32"],
        "expects samples of shape (8, 8, 1) but the data has (64,): reshape the data to "
        "(N, 8, 8, 1)",
    ),
    (
        "NaN",
        ["check", "{cnn}", "--data", "{dir}/nan.npz", "--recipes", "float32"],
        "NaN or Inf in sample(s) 7",
    ),
    (
        "label count",
        ["check", "{cnn}", "--data", "{dir}/few_labels.npz"],
        "40 labels for 50 samples",
    ),
    (
        "labels out of range",
        ["check", "{cnn}", "--data", "{dir}/big_labels.npz", "--recipes", "float32"],
        "expected class ids 0..9",
    ),
    ("empty dataset", ["check", "{cnn}", "--data", "{dir}/empty.npz"], "the dataset is empty"),
    (
        "unnamed inputs",
        ["check", "{two}", "--data", "{dir}/unnamed.npz", "--recipes", "float32"],
        "name one array per input",
    ),
    ("Lambda in safe mode", ["check", "{lambda}", "--data", "{dir}/good.npz"], "pass --unsafe"),
    ("Flex ops", ["qparams", "{flex}"], "uses select-TF (Flex) ops FlexCumprod"),
    (
        "a named recipe the model cannot take",
        ["check", "{hard_swish}", "--data", "{dir}/good.npz", "--recipes", "int16x8"],
        "1 candidate(s) could not be measured: int16x8",
    ),
    (
        "bad option pair",
        ["check", "{cnn}", "--data", "{dir}/good.npz", "--std", "1"],
        "--mean and --std go together",
    ),
]

#: Values the specs refuse before anything loads: (command and option, message).
GOOD = ["{cnn}", "--data", "{eval}"]
REFUSED = [
    (["check", *GOOD, "--calibration-samples", "-5"], "--calibration-samples must be at least 1"),
    (["explain", *GOOD, "--calibration-samples", "0"], "--calibration-samples must be at least 1"),
    (["check", *GOOD, "--max-samples", "0"], "--max-samples must be at least 1, got 0"),
    (["locate", *GOOD, "--seed", "-1"], "--seed must be at least 0, got -1"),
    (["check", *GOOD, "--image-size", "0x5"], "--image-size must be HEIGHTxWIDTH, both at least 1"),
    (["check", *GOOD, "--image-size", "big"], "--image-size 'big': expected HEIGHTxWIDTH"),
    (["check", *GOOD, "--scale", "0"], "--scale must be a positive number, got 0.0"),
    (["check", *GOOD, "--input-shapes", "1,0"], "--input-shapes 1,0: every dimension"),
    (["check", *GOOD, "--qat-epochs", "0"], "--qat-epochs must be at least 1, got 0"),
    (["check", *GOOD, "--std", "0", "--mean", "0"], "--std must be positive, got 0.0"),
    (["fix", *GOOD, "--qat-epochs", "-1"], "--qat-epochs must be at least 0, got -1"),
    (["fix", *GOOD, "--prefer", "speed"], "--prefer 'speed': expected size or latency"),
    (["fix", *GOOD, "--max-drop", "nan"], "--max-drop must be a number, got nan"),
    (["fix", *GOOD, "--calibration-samples", "-5"], "--calibration-samples must be at least 1"),
    (["locate", *GOOD, "--recipe", " "], "--recipe must name a recipe"),
    (["check", *GOOD, "--engine", "spark"], "--engine 'spark': expected local or ray"),
    (["explain", *GOOD, "--shards", "2"], "--ray-address and --shards need --engine ray"),
    (["fix", *GOOD, "--engine", "ray", "--shards", "0"], "--shards must be at least 1, got 0"),
    (["compare-qat", *GOOD, "--epochs", "0"], "--epochs must be at least 1, got 0"),
    (["compare-qat", *GOOD, "--resamples", "0"], "--resamples must be at least 1, got 0"),
    (["compare-qat", *GOOD, "--resample-size", "-3"], "--resample-size must be at least 1, got -3"),
    (["compare-qat", *GOOD, "--max-samples", "0"], "--max-samples must be at least 1, got 0"),
]


@pytest.mark.parametrize(
    ("args", "message"), REFUSED, ids=[" ".join([a[0], *a[4:]]) for a, _ in REFUSED]
)
def test_nonsense_values_are_refused_in_one_line(
    cnn: Path, eval_npz: Path, args: list[str], message: str
) -> None:
    values = {"cnn": cnn, "eval": eval_npz}
    result = runner.invoke(app, [a.format(**values) for a in args], catch_exceptions=False)
    one_line(result, message)


@pytest.mark.parametrize(("case", "args", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_one_clear_line(
    bad_files,
    cnn: Path,
    two_by_two: Path,
    lambda_model: Path,
    flex_model: Path,
    hard_swish: Path,
    case: str,
    args: list[str],
    message: str,
) -> None:
    values = {
        "dir": bad_files["dir"],
        "cnn": cnn,
        "two": two_by_two,
        "lambda": lambda_model,
        "flex": flex_model,
        "hard_swish": hard_swish,
    }
    result = runner.invoke(app, [a.format(**values) for a in args], catch_exceptions=False)
    one_line(result, message)


def test_debug_shows_the_traceback(bad_files) -> None:
    result = runner.invoke(app, ["check", "nope.keras", "--data", "x.npz", "--debug"])
    assert result.exit_code != 0
    assert result.exception is not None  # re-raised for the traceback


def test_a_bug_shows_its_traceback_and_exits_3(monkeypatch: pytest.MonkeyPatch) -> None:
    """An ``InternalError`` is not a user's mistake: no one-line message alone, the traceback
    for the report, and its own exit code."""
    from liteparity import qparams
    from liteparity.errors import InternalError

    def broken(*args: object, **kwargs: object) -> None:
        raise InternalError("planted invariant")

    monkeypatch.setattr(qparams, "from_min_max", broken)
    result = runner.invoke(app, ["qparams", "--min", "0", "--max", "1"], catch_exceptions=False)
    assert result.exit_code == 3, result.output
    assert "Traceback" in result.stderr
    assert 'raise InternalError("planted invariant")' in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "liteparity: internal error (a bug in liteparity, please report it): planted invariant"
    )
