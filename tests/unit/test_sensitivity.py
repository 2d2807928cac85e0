"""The sensitivity experiment's order, stopping rule and time cap, on the tiny hand-built
models (no TensorFlow): variants are the int8 model (error) or the float one (none)."""

from __future__ import annotations

import numpy as np
import pytest

from liteparity.layerwise import sensitivity
from liteparity.layerwise.sensitivity import (
    MIN_MEASURED,
    decided,
    layer_sensitivity,
    ranked_groups,
)
from liteparity.runtime.jobs import InProcessWorker
from tests.unit import tiny

FLOAT, INT8 = tiny.float_model(), tiny.int8_model()
X = tiny.grid_inputs(48)
_, Y = tiny.float_outputs(X)
_, Y_INT8 = tiny.int8_codes(X)


def test_groups_go_by_their_summed_prior_then_in_execution_order() -> None:
    found = [("a", ["a1"]), ("b", ["b1", "b2"]), ("c", ["c1"]), ("d", ["d1"])]
    prior = {"a1": 0.1, "b1": 0.2, "b2": 0.2, "c1": 0.3}
    assert [n for n, _ in ranked_groups(found, prior)] == ["b", "c", "a", "d"]
    assert ranked_groups(found, None) == found


def test_decided_when_the_rest_cannot_pass_the_second_share() -> None:
    many = MIN_MEASURED + 10
    # measured shares sum to 0.9: the rest (0.1) cannot pass the second (0.3)
    assert decided([0.5, 0.3, 0.1] + [0.0] * (MIN_MEASURED - 3), many)
    # sum 0.5: a group not measured could still remove 0.5 > 0.2
    assert not decided([0.3, 0.2] + [0.0] * (MIN_MEASURED - 2), many)
    # too few measured, however clear
    assert not decided([0.9, 0.1], many)
    # everything measured
    assert decided([0.0, 0.0], 2)


def _pool() -> list[InProcessWorker]:
    return [InProcessWorker("a"), InProcessWorker("b")]


def _fake_groups(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    names = [(f"g{k}", [f"t{k}"]) for k in range(count)]
    monkeypatch.setattr(sensitivity, "groups", lambda anatomy, layers: names)


def test_each_variant_against_the_float_models_outputs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Base: the int8 model against the float one's outputs (the reference, computed by the
    pool); keeping g1 in float (the float model) removes all the error, g0 none."""
    _fake_groups(monkeypatch, 2)
    run = layer_sensitivity(
        FLOAT,
        [[X[:20]], [X[20:]]],
        make=lambda keep: FLOAT if keep == ["t1"] else INT8,
        pool=_pool(),
    )
    assert run.stopped == "complete" and run.skipped == () and run.groups == 2
    expected = float(np.mean((Y_INT8.astype(np.float64) - Y) ** 2))
    top, other = run.ranking
    assert (top.layer, top.mse_kept_float, top.share_removed) == ("g1", 0.0, 1.0)
    assert other.layer == "g0" and other.share_removed == 0.0
    assert top.mse_quantized == pytest.approx(expected, rel=1e-12) and expected > 0


def test_stops_once_decided_and_names_what_it_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    """g3 removes everything: once MIN_MEASURED groups are in, the rest (0) cannot pass the
    second share (0), so no more variants are sent; the prior put g3 first."""
    count = MIN_MEASURED + 6
    _fake_groups(monkeypatch, count)
    built: list[list[str]] = []

    def make(keep: list[str]) -> bytes:
        built.append(keep)
        return FLOAT if keep == ["t3"] else INT8

    prior = {f"t{k}": float(count - k) for k in range(count)} | {"t3": 100.0}
    run = layer_sensitivity(FLOAT, [[X]], make=make, pool=_pool(), prior=prior)
    assert run.stopped == "decided"
    assert run.ranking[0].layer == "g3" and run.ranking[0].share_removed == 1.0
    measured = {s.layer for s in run.ranking}
    assert MIN_MEASURED <= len(measured) < count
    assert len(built) == len(measured) + 1  # no variant built that was not measured
    assert set(run.skipped) == {f"g{k}" for k in range(count)} - measured
    assert run.skipped == tuple(sorted(run.skipped, key=lambda g: -prior["t" + g[1:]]))
    assert "left out" in (run.note() or "")
    kept = dict(run.variants)  # the two most sensitive groups' models, for fix to reuse
    assert len(kept) == 2 and kept[("t3",)] == FLOAT
    assert all(c == INT8 for k, c in kept.items() if k != ("t3",))
    full = layer_sensitivity(FLOAT, [[X]], make=make, pool=_pool(), prior=prior, stop=False)
    assert full.stopped == "complete" and len(full.ranking) == count
    assert full.ranking[:2] == run.ranking[:2]


def test_the_time_cap_ends_the_experiment(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_groups(monkeypatch, MIN_MEASURED + 6)
    run = layer_sensitivity(FLOAT, [[X]], make=lambda keep: INT8, pool=_pool(), seconds=0.0)
    assert run.stopped == "time" and run.skipped
    assert len(run.ranking) + len(run.skipped) == run.groups
    assert "cap was reached" in (run.note() or "")
