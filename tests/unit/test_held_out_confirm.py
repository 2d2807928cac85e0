"""``fix``'s winner must hold the budget on held-out data (hand-made trials, no models)."""

from __future__ import annotations

from typing import Any

from liteparity.repair.search import _confirm
from liteparity.results.fix import Budget, Trial

BUDGET = Budget(max_drop=1.0)


def _trial(recipe: str, size: int, drop: float) -> Trial:
    return Trial(recipe, (), size, 1.0, 0.9, drop, 0.99, BUDGET.met(drop, 0.99))


TRIALS = [
    _trial("int8", 100, 0.2),
    _trial("int16x8", 150, 0.1),
    _trial("dynamic", 200, 0.5),
    _trial("float16", 400, 0.0),
    _trial("float32", 800, 0.0),
    _trial("broken", 50, 5.0),  # smallest, outside the budget on the search split
]


def _measuring(held_drops: dict[str, float]) -> tuple[list[str], Any]:
    asked: list[str] = []

    def measure(t: Trial) -> dict[str, Any]:
        asked.append(t.name)
        return {"metric": 0.9, "drop": held_drops[t.name], "agreement": 0.99}

    return asked, measure


def test_a_winner_that_holds_on_held_out_data_is_kept_after_one_measurement() -> None:
    asked, measure = _measuring({"int8": 0.4})
    winner, _, met, held, broke = _confirm(TRIALS, BUDGET, "size", measure)
    assert (winner.name, met, held["drop"], broke, asked) == ("int8", True, 0.4, {}, ["int8"])


def test_the_next_smallest_trial_that_holds_wins() -> None:
    asked, measure = _measuring({"int8": 3.0, "int16x8": 1.5, "dynamic": 0.7})
    winner, reason, met, held, broke = _confirm(TRIALS, BUDGET, "size", measure)
    assert winner.name == "dynamic" and met and held["drop"] == 0.7
    assert asked == ["int8", "int16x8", "dynamic"]  # in size order, stopping at the first
    assert set(broke) == {"int8", "int16x8"}
    assert "int8, int16x8 broke the budget on held-out data" in reason


def test_when_none_holds_the_result_is_not_met_and_says_why() -> None:
    asked, measure = _measuring({t.name: 2.0 for t in TRIALS})
    winner, reason, met, held, broke = _confirm(TRIALS, BUDGET, "size", measure)
    assert not met and winner.name == "int8" and held["drop"] == 2.0
    assert asked == ["int8", "int16x8", "dynamic", "float16", "float32"]  # never "broken"
    assert list(broke) == asked
    assert reason.startswith("no model holds the budget on held-out data")


def test_a_search_that_meets_nothing_measures_the_most_accurate_once() -> None:
    trials = [_trial("a", 10, 3.0), _trial("b", 20, 2.0)]
    asked, measure = _measuring({"a": 0.0, "b": 0.0})
    winner, _, met, _, broke = _confirm(trials, BUDGET, "size", measure)
    assert (winner.name, met, broke, asked) == ("b", False, {}, ["b"])
