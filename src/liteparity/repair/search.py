"""The selective search: bisection over the sensitivity ranking, pruning, the Pareto front."""

from __future__ import annotations

from collections.abc import Callable

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


def _choose(trials: list[Trial], budget: Budget, prefer: str) -> tuple[Trial, str, bool]:
    cost = (lambda t: t.size_bytes) if prefer == "size" else (lambda t: t.latency_ms)
    within = [t for t in trials if t.within_budget]
    unit = "bytes" if prefer == "size" else "ms"
    if within:
        best = min(within, key=lambda t: (cost(t), t.drop if t.drop is not None else 0))
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


def _mark_pareto(trials: list[Trial], prefer: str) -> list[Trial]:
    """Trials no other trial beats on both cost and drop."""
    import dataclasses

    cost = (lambda t: t.size_bytes) if prefer == "size" else (lambda t: t.latency_ms)

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
