"""The selective search: bisection over the sensitivity ranking, pruning, the Pareto front."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import numpy as np

from liteparity.results.fix import Budget, Trial


def _selective_search(
    groups: list[tuple[str, tuple[str, ...]]],
    make: Callable[[list[str]], bytes],
    trial: Callable[..., Trial],
    budget: Budget,
) -> Trial | None:
    """Fewest float groups that meet the budget: bisect over the sensitivity-ranked prefix,
    then try dropping each kept group. ``make`` builds the int8 model with the named tensors'
    ops kept in float (a re-quantization of the calibrated model, or ai-edge-quantizer's
    recipe with those ops excluded). Returns the best trial (None if even all fail)."""

    def build(chosen: list[int]) -> Trial:
        keep = [groups[i][0] for i in chosen]
        names = [n for i in chosen for n in groups[i][1]]
        return trial("int8", make(names), keep)

    lo, hi = 1, len(groups)
    if not groups:
        return None
    best = build(list(range(hi)))
    if not best.within_budget:
        return None
    while lo < hi:  # invariant: the prefix of length hi meets the budget
        mid = (lo + hi) // 2
        t = build(list(range(mid)))
        if t.within_budget:
            hi, best = mid, t
        else:
            lo = mid + 1
    kept = list(range(hi))
    for i in list(kept):  # pruning: a kept group the budget does not need goes
        if len(kept) == 1:
            break
        t = build([k for k in kept if k != i])
        if t.within_budget:
            kept.remove(i)
            best = t
    return best


def _ranked(trials: list[Trial], prefer: str) -> list[Trial]:
    """The trials within the budget on the search split, best first (cheapest, then least
    drop)."""
    cost = _cost(prefer)
    within = [t for t in trials if t.within_budget]
    return sorted(within, key=lambda t: (cost(t), t.drop if t.drop is not None else 0))


def _choose(
    trials: list[Trial], budget: Budget, prefer: str, skip: Collection[str] = ()
) -> tuple[Trial, str, bool]:
    """The best trial within the budget (leaving out the names in ``skip``: they broke it on
    held-out data), why, and whether it meets the budget; else the most accurate one."""
    cost = _cost(prefer)
    within = [t for t in _ranked(trials, prefer) if t.name not in skip]
    unit = "bytes" if prefer == "size" else "ms"
    if within:
        best = within[0]
        return (
            best,
            (
                f"the {'smallest' if prefer == 'size' else 'fastest'} of "
                f"{len(within)} model(s) within the budget ({cost(best):.4g} {unit}, "
                f"drop {best.drop:.2f})"
            ),
            True,
        )
    best = min(trials, key=lambda t: (t.drop if t.drop is not None else np.inf, cost(t)))
    return best, "no model meets the budget: this is the most accurate one found", False


def _confirm(
    trials: list[Trial], budget: Budget, prefer: str, measure: Callable[[Trial], dict[str, Any]]
) -> tuple[Trial, str, bool, dict[str, Any], dict[str, dict[str, Any]]]:
    """The winner, measured on the held-out rows: a search-split winner that breaks the budget
    there is not a pass (one lucky split must not choose the model), so the next trial within
    the budget is measured, until one holds on held-out data. Returns the winner, why, whether
    it meets the budget on both splits, its held-out numbers and those of the trials that
    broke the budget on held-out data. When none holds: the search-split choice, not met."""
    first, reason, met = _choose(trials, budget, prefer)
    held = measure(first)
    broke: dict[str, dict[str, Any]] = {}
    winner = first
    while met and not budget.met(held["drop"], held["agreement"], held.get("lost") or ()):
        broke[winner.name] = held
        winner, reason, met = _choose(trials, budget, prefer, skip=broke)
        if not met:  # every trial within the budget broke it on held-out data
            names = ", ".join(broke)
            return (
                first,
                f"no model holds the budget on held-out data: {names} met it on the search "
                f"split only; {first.name}, the search split's choice, was written",
                False,
                broke[first.name],
                broke,
            )
        held = measure(winner)
    if broke:
        reason += f"; {', '.join(broke)} broke the budget on held-out data"
    return winner, reason, met, held, broke


def _mark_pareto(trials: list[Trial], prefer: str) -> list[Trial]:
    """Trials no other trial beats on both cost and drop."""
    import dataclasses

    cost = _cost(prefer)

    def drop(t: Trial) -> float:
        return t.drop if t.drop is not None else np.inf

    out = []
    for t in trials:
        dominated = any(
            cost(o) <= cost(t) and drop(o) <= drop(t) and (cost(o) < cost(t) or drop(o) < drop(t))
            for o in trials
        )
        out.append(dataclasses.replace(t, pareto=not dominated))
    return out


def _cost(prefer: str) -> Callable[[Trial], float]:
    """What ``prefer`` minimises: a trial's size in bytes, or its latency."""

    def size(t: Trial) -> float:
        return float(t.size_bytes)

    def latency(t: Trial) -> float:
        return t.latency_ms

    return size if prefer == "size" else latency
