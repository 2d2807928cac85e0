"""The rule registry: the finding ids (DESIGN's table), the ``rule`` decorator every rule
registers with, and the formatting helpers rules share. ``diagnose.rules`` imports every family
of rules and runs them."""

from __future__ import annotations

from collections.abc import Callable

from liteparity import qparams
from liteparity.diagnose.evidence import Evidence
from liteparity.errors import InternalError
from liteparity.results.check import Finding

Rule = Callable[[Evidence], list[Finding]]

#: Every rule, by the finding ids it can produce.
RULES: dict[tuple[str, ...], Rule] = {}

FINDING_IDS = (
    "float-noise",
    "conversion-error",
    "weights-only",
    "input-range-mismatch",
    "dummy-ranges",
    "saturation",
    "calibration-range",
    "outlier-scale",
    "float16-overflow",
    "qat-mismatch",
    "sensitive-layer",
    "not-measured",
    "unexplained-loss",
)


def rule(*ids: str) -> Callable[[Rule], Rule]:
    """Register a rule under the finding ids it produces (a typo in an id fails at import)."""

    def register(fn: Rule) -> Rule:
        unknown = set(ids) - set(FINDING_IDS)
        if unknown:
            raise InternalError(f"a rule registered for unknown finding ids {sorted(unknown)}")
        RULES[ids] = fn
        return fn

    return register


# -- helpers -------------------------------------------------------------------------------
def covered_range(q: qparams.QParams) -> list[float]:
    """The real [min, max] a per-tensor quantization covers, rounded for reports."""
    return [round(float(q.min[0]), 6), round(float(q.max[0]), 6)]


def percent(x: float) -> str:
    """A share as a percentage, with two decimals below 10%."""
    return f"{100 * x:.2f}%" if x < 0.1 else f"{100 * x:.1f}%"
