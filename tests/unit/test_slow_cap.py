"""Slow candidates and the confidence interval of a metric measured on fewer samples."""

from __future__ import annotations

import numpy as np
from scipy import stats

from liteparity.measure.evaluate import slow
from liteparity.measure.metrics import TaskAccumulator
from liteparity.results.check import ACCURACY, MSE, Metric


def test_slow_means_ten_times_the_fastest_candidate() -> None:
    assert slow([23.0, 2100.0, 30.0, None, 229.0, 230.0]) == [
        False, True, False, False, False, True
    ]  # fmt: skip
    assert slow([None, None]) == [False, False]
    assert slow([5.0]) == [False]


def test_accuracy_interval_is_wilsons() -> None:
    acc = TaskAccumulator(ACCURACY)
    labels = np.arange(100) % 10
    scores = np.eye(10)[labels]
    scores[:13] = np.roll(scores[:13], 1, axis=1)  # 13 of 100 wrong
    acc.update(scores, labels, scores)
    ci = stats.binomtest(87, 100).proportion_ci(0.95, method="wilson")
    assert acc.value == 0.87
    np.testing.assert_allclose(acc.interval(), (ci.low, ci.high), rtol=1e-5)


def test_mse_interval_is_the_normal_one_over_per_sample_errors() -> None:
    rng = np.random.default_rng(0)
    target, output = rng.normal(size=(50, 4)), rng.normal(size=(50, 4))
    acc = TaskAccumulator(MSE)
    acc.update(output[:20], target[:20], output[:20])
    acc.update(output[20:], target[20:], output[20:])
    per_sample = np.mean((output - target) ** 2, axis=1)
    half = stats.norm.ppf(0.975) * per_sample.std(ddof=1) / np.sqrt(50)
    np.testing.assert_allclose(
        acc.interval(), (per_sample.mean() - half, per_sample.mean() + half), rtol=1e-5
    )


def test_the_interval_goes_to_json_and_back_only_when_there_is_one() -> None:
    plain = Metric(ACCURACY, 0.5)
    assert "interval" not in plain.to_dict()
    capped = Metric(ACCURACY, 0.5, (0.4, 0.6))
    assert capped.to_dict()["interval"] == [0.4, 0.6]
    assert Metric.from_dict(capped.to_dict()) == capped
