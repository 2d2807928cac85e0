"""The fix search's choices on hand-built trials, in milliseconds: within the budget the
cheapest wins; with nothing within it the most accurate is returned and the result says so;
the Pareto front is exactly the trials nobody beats on both cost and drop."""

from __future__ import annotations

from liteparity.repair.search import _choose, _mark_pareto
from liteparity.results.fix import Budget, Trial


def _trial(recipe: str, size: int, latency: float, drop: float | None, ok: bool) -> Trial:
    return Trial(recipe, (), size, latency, None, drop, None, ok)


TRIALS = [
    _trial("float32", 4000, 1.0, 0.0, True),
    _trial("float16", 2000, 1.2, 0.0, True),
    _trial("dynamic", 1100, 2.5, 0.4, True),
    _trial("int8", 1000, 0.6, 3.0, False),
    _trial("int16x8", 1300, 9.0, 0.2, True),
]


def test_the_smallest_within_budget_wins_and_the_fastest_when_asked() -> None:
    best, reason, met = _choose(TRIALS, Budget(max_drop=1.0), "size")
    assert (best.recipe, met) == ("dynamic", True) and "smallest of 4 model(s)" in reason
    best, _, met = _choose(TRIALS, Budget(max_drop=1.0), "latency")
    assert (best.recipe, met) == ("float32", True)  # int8 is faster but over the budget


def test_nothing_within_budget_returns_the_most_accurate_and_says_so() -> None:
    over = [_trial(t.recipe, t.size_bytes, t.latency_ms, t.drop, False) for t in TRIALS]
    best, reason, met = _choose(over, Budget(max_drop=0.01), "size")
    assert not met and best.recipe == "float16" and "no model meets the budget" in reason


def test_pareto_front_by_size_and_drop() -> None:
    front = {t.recipe for t in _mark_pareto(TRIALS, "size") if t.pareto}
    # float32 is beaten by float16 (smaller, same drop); the rest trade size against drop
    assert front == {"float16", "dynamic", "int8", "int16x8"}
