"""The specs a run is given: what they refuse, how they normalise, and how the keyword
convenience and the CLI's option groups build them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import liteparity
from liteparity.cli.options import data_options, model_options
from liteparity.errors import UsageError
from liteparity.specs import (
    CheckOptions,
    CompareQatOptions,
    DataSpec,
    FixOptions,
    LocateOptions,
    ModelSpec,
    from_keywords,
)

REFUSED = [
    (
        DataSpec,
        {"data": "d", "calibration_samples": -5},
        "--calibration-samples must be at least 1",
    ),
    (DataSpec, {"data": "d", "calibration_samples": 0}, "--calibration-samples must be at least 1"),
    (
        DataSpec,
        {"data": "d", "calibration_samples": 2.5},
        "--calibration-samples must be an integer",
    ),
    (DataSpec, {"data": "d", "max_samples": 0}, "--max-samples must be at least 1, got 0"),
    (DataSpec, {"data": "d", "seed": -1}, "--seed must be at least 0, got -1"),
    (DataSpec, {"data": "d", "seed": True}, "--seed must be an integer"),
    (DataSpec, {"data": "d", "image_size": (0, 5)}, "--image-size must be HEIGHTxWIDTH"),
    (DataSpec, {"data": "d", "image_size": (28,)}, "--image-size must be HEIGHTxWIDTH"),
    (DataSpec, {"data": "d", "scale": 0.0}, "--scale must be a positive number"),
    (DataSpec, {"data": "d", "scale": float("inf")}, "--scale must be a positive number"),
    (DataSpec, {"data": "d", "label_column": 1.0}, "--label-column must be an integer"),
    (DataSpec, {"data": None}, "no data given"),
    (ModelSpec, {"model": ""}, "no model given"),
    (ModelSpec, {"model": "m.pb", "inputs": [""]}, "--inputs: empty"),
    (ModelSpec, {"model": "m.pb", "input_shapes": [(1, 0)]}, "--input-shapes 1,0"),
    (ModelSpec, {"model": "m.pb", "input_shapes": [(-1, -1)]}, "--input-shapes -1,-1"),
    (ModelSpec, {"model": "m.pb", "input_shapes": [()]}, "--input-shapes : every dimension"),
    (CheckOptions, {"qat_epochs": 0}, "--qat-epochs must be at least 1, got 0"),
    (CheckOptions, {"max_samples_slow": 0}, "--max-samples-slow must be at least 1, got 0"),
    (CheckOptions, {"max_samples_slow": 2.5}, "--max-samples-slow must be an integer, got 2.5"),
    (CheckOptions, {"recipes": ["int8", " "]}, "--recipes: empty"),
    (CheckOptions, {"candidates": [""]}, "--candidate: empty path"),
    (LocateOptions, {"recipe": ""}, "--recipe must name a recipe"),
    (LocateOptions, {"workers": 0}, "--workers must be at least 1, got 0"),
    (FixOptions, {"prefer": "speed"}, "--prefer 'speed': expected size or latency"),
    (FixOptions, {"qat_epochs": -1}, "--qat-epochs must be at least 0, got -1"),
    (FixOptions, {"max_drop": float("nan")}, "--max-drop must be a number"),
    (FixOptions, {"min_agreement": "high"}, "--min-agreement must be a number"),
    (CompareQatOptions, {"epochs": 0}, "--epochs must be at least 1"),
    (CompareQatOptions, {"resamples": -1}, "--resamples must be at least 1"),
    (CompareQatOptions, {"resample_size": 0}, "--resample-size must be at least 1"),
]


@pytest.mark.parametrize(("spec", "values", "message"), REFUSED)
def test_nonsense_is_refused_naming_the_option(spec: type, values: dict, message: str) -> None:
    with pytest.raises(UsageError) as info:
        spec(**values)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_sensible_edges_are_accepted() -> None:
    DataSpec("d", calibration_samples=1, max_samples=1, seed=0, label_column=-1, scale=1 / 255)
    ModelSpec("m.pb", input_shapes=[(-1, 784)])  # any batch size
    FixOptions(max_drop=-100.0, min_agreement=1.01, qat_epochs=0)  # impossible, not nonsense
    LocateOptions(workers=1)


def test_specs_are_frozen_and_hold_tuples() -> None:
    model = ModelSpec("m.pb", inputs=["a", "b"], outputs="out", input_shapes=[[1, 784]])
    assert model.inputs == ("a", "b") and model.outputs == ("out",)
    assert model.input_shapes == ((1, 784),)
    options = CheckOptions(recipes=["int8"], candidates=Path("q.tflite"))
    assert options.recipes == ("int8",) and options.candidates == (Path("q.tflite"),)
    assert CheckOptions(recipes=[]).recipes == ()  # no recipes, not the default
    assert DataSpec("d", image_size=[28, 28]).image_size == (28, 28)
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.unsafe = True  # type: ignore[misc]


def test_keywords_go_to_the_spec_that_owns_them() -> None:
    model, data, options = from_keywords(
        "check",
        "m.keras",
        "eval.npz",
        None,
        CheckOptions,
        {"unsafe": True, "seed": 3, "recipes": ["int8"], "calibration_data": "cal.npz"},
    )
    assert model == ModelSpec("m.keras", unsafe=True)
    assert data == DataSpec("eval.npz", calibration_data="cal.npz", seed=3)
    assert options == CheckOptions(recipes=("int8",))


def test_given_specs_pass_through_unchanged() -> None:
    specs = (ModelSpec("m.keras"), DataSpec("d"), LocateOptions(recipe="int16x8"))
    assert from_keywords("locate", *specs, LocateOptions, {}) == specs


@pytest.mark.parametrize(
    ("args", "keywords", "message"),
    [
        ((ModelSpec("m"), "d", None), {"unsafe": True}, "give unsafe in the ModelSpec"),
        (("m", DataSpec("d"), None), {"seed": 1}, "give seed in the DataSpec"),
        (("m", "d", CheckOptions()), {"resume": True}, "give resume in the CheckOptions"),
        (("m", "d", None), {"recipe": "int8"}, "unexpected keyword argument(s) recipe"),
        (("m", "d", LocateOptions()), {}, "takes CheckOptions, not LocateOptions"),
    ],
)
def test_keyword_mistakes_are_type_errors(args: tuple, keywords: dict, message: str) -> None:
    with pytest.raises(TypeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        from_keywords("check", *args, CheckOptions, keywords)


def test_every_verb_takes_the_keywords_of_its_specs() -> None:
    """A misspelt keyword fails like a Python call does, naming the verb, before any work."""
    for verb in (liteparity.check, liteparity.explain, liteparity.locate, liteparity.fix):
        with pytest.raises(TypeError, match=rf"{verb.__name__}\(\) got unexpected .* recipies"):
            verb("m.keras", data="d.npz", recipies=["int8"])


def test_cli_groups_build_the_same_specs_as_the_keywords() -> None:
    model = model_options("g.pb", ["in_a,in_b"], ["out"], ["1,28,28,1", "1x10"], False)
    assert model == ModelSpec("g.pb", ["in_a", "in_b"], ["out"], [(1, 28, 28, 1), (1, 10)])
    data = data_options("imgs", None, 50, 10, 2, "28x32", 0.5, None)
    assert data == DataSpec(
        "imgs", calibration_samples=50, max_samples=10, seed=2, image_size=(28, 32), scale=0.5
    )


@pytest.mark.slow  # two conversions (~30 s): keeps the CI run under 25 minutes
def test_check_with_specs_equals_check_with_keywords(cnn: Path, eval_npz: Path) -> None:
    by_keywords = liteparity.check(cnn, data=eval_npz, recipes=["float32"], max_samples=64)
    by_specs = liteparity.check(
        ModelSpec(cnn), DataSpec(eval_npz, max_samples=64), CheckOptions(recipes=("float32",))
    )
    (a,), (b,) = by_specs.candidates, by_keywords.candidates
    same = ("name", "size_bytes", "metric", "agreement", "max_abs_error", "rmse", "sqnr_db")
    assert [getattr(a, k) for k in same] == [getattr(b, k) for k in same]
    assert by_specs.data == by_keywords.data and by_specs.data["evaluation_samples"] == 64
