"""Streaming statistics against float64 numpy on the whole array, in milliseconds: any split
of the data into batches, merged in any order, gives the one-pass numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from liteparity.measure.stats import ErrorStats


def _split(values: np.ndarray, cuts: list[int]) -> list[np.ndarray]:
    return [part for part in np.split(values, cuts) if part.size]


@pytest.mark.parametrize(
    ("cuts", "offset"),
    [([], 0.0), ([1], 0.0), ([7, 8, 500], 0.0), ([3, 333], 1e3), ([250], -0.5)],
)
def test_error_stats_equal_numpy_whatever_the_batches(cuts: list[int], offset: float) -> None:
    rng = np.random.default_rng(len(cuts))
    diff = (rng.normal(0.0, 0.01, 1000) + offset).astype(np.float32)
    ref = rng.normal(0.0, 1.0, 1000).astype(np.float32)
    stats = ErrorStats()
    for d, r in zip(_split(diff, cuts), _split(ref, cuts), strict=True):
        stats.update(d.copy(), r)
    got = stats.to_dict()
    d64, r64 = diff.astype(np.float64), ref.astype(np.float64)
    assert got["num_elements"] == 1000
    assert got["mean_error"] == pytest.approx(d64.mean(), rel=1e-6, abs=1e-12)
    # the spread survives a large constant offset (no E[d²] − mean² cancellation)
    assert got["stddev"] == pytest.approx(d64.std(), rel=1e-4)
    assert got["mean_squared_error"] == pytest.approx(np.mean(d64 * d64), rel=1e-6)
    assert got["max_abs_error"] == pytest.approx(np.abs(d64).max())
    want_sqnr = 10 * math.log10(np.sum(r64 * r64) / np.sum(d64 * d64))
    assert got["sqnr_db"] == pytest.approx(want_sqnr, rel=1e-6)


def test_merging_parts_in_any_order_equals_one_pass() -> None:
    rng = np.random.default_rng(7)
    diff = rng.normal(0.3, 0.2, 600).astype(np.float32)
    parts = []
    for chunk in _split(diff, [100, 101, 450]):
        part = ErrorStats()
        part.update(chunk.copy())
        parts.append(part)
    forward = parts[0].merge(parts[1]).merge(parts[2]).merge(parts[3])
    backward = parts[3].merge(parts[2].merge(parts[1].merge(parts[0])))
    one = ErrorStats()
    one.update(diff.copy())
    for merged in (forward, backward):
        for key, value in one.to_dict().items():
            assert merged.to_dict()[key] == pytest.approx(value, rel=1e-6), key


def test_identical_and_silent_tensors_have_defined_sqnr() -> None:
    exact = ErrorStats()
    exact.update(np.zeros(4, np.float32), np.ones(4, np.float32))
    assert exact.to_dict()["sqnr_db"] == math.inf  # no error at all
    silent = ErrorStats()
    silent.update(np.ones(4, np.float32), np.zeros(4, np.float32))
    assert silent.to_dict()["sqnr_db"] == -math.inf  # error on a reference of zeros
