"""Engine options: checked when built, with one line naming the option; Ray imported only
for ``--engine ray``, and its absence one line with the install command."""

from __future__ import annotations

import sys

import pytest

from liteparity.errors import UsageError
from liteparity.runtime.engine import LocalEngine, open_engine
from liteparity.specs import CheckOptions, FixOptions


@pytest.mark.parametrize(
    ("keywords", "line"),
    [
        ({"engine": "spark"}, "--engine 'spark': expected local or ray"),
        ({"ray_address": "auto"}, "--ray-address and --shards need --engine ray"),
        ({"shards": 2}, "--ray-address and --shards need --engine ray"),
        ({"engine": "ray", "shards": 0}, "--shards must be at least 1, got 0"),
        ({"engine": "ray", "ray_address": " "}, "--ray-address must name a cluster, got ' '"),
    ],
)
def test_bad_engine_options_are_one_line(keywords: dict[str, object], line: str) -> None:
    for options in (CheckOptions, FixOptions):
        with pytest.raises(UsageError) as caught:
            options(**keywords)  # type: ignore[arg-type]
        assert str(caught.value) == line


def test_the_local_engine_is_the_default_and_never_imports_ray(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # any import of ray would fail
    engine = open_engine(CheckOptions())
    assert isinstance(engine, LocalEngine)
    assert engine.describe(600, 256) == {
        "engine": "local",
        "nodes": 1,
        "shards": 1,
        "shard_rows": 600,
        "data": "driver",
        "retried": [],
    }


def test_ray_missing_is_one_line_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    with pytest.raises(UsageError) as caught:
        open_engine(FixOptions(engine="ray"))
    assert str(caught.value) == (
        "--engine ray needs Ray, which is not installed: pip install 'liteparity[ray]'"
    )


def test_engine_retries_are_told_once() -> None:
    """A retry a candidate's warnings already carry is not said again under the table; the
    others (the reference's batches, a conversion) are, a line each; none without Ray."""
    from liteparity.report.table import engine_retries

    engine = {"retried": ["shard 1 of int8: lost, retried", "converter 0: lost, retried"]}
    told = {"shard 1 of int8: lost, retried"}
    assert engine_retries(engine, told) == ["engine: converter 0: lost, retried"]
    assert engine_retries(engine) == [f"engine: {line}" for line in engine["retried"]]
    assert engine_retries(None) == []
