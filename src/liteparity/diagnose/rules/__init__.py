"""The rules, one module per family, and ``diagnose``: the one wiring point that imports every
family (each registers its rules with ``registry.rule``) and runs them.

    floating   float-noise, conversion-error, weights-only, float16-overflow
    ranges     input-range-mismatch, dummy-ranges, saturation, calibration-range, outlier-scale
    training   qat-mismatch, sensitive-layer
    unread     not-measured
    verdict    unexplained-loss (a material loss no other rule warns about)

Rules are pure functions of ``Evidence``: none reads a file or runs a model, so findings can be
computed again from saved evidence. Thresholds are named constants with the reason for their
value; a finding's evidence always carries the numbers that crossed them.
"""

from __future__ import annotations

from liteparity.diagnose.evidence import Evidence
from liteparity.diagnose.registry import FINDING_IDS, RULES, Rule
from liteparity.diagnose.rules import floating, ranges, training, unread, verdict
from liteparity.results.check import Finding

#: Every family of rules; importing them registered their rules.
FAMILIES = (floating, ranges, training, unread, verdict)


def rules() -> list[Rule]:
    """Every rule, in the order of the finding ids they produce (DESIGN's table)."""
    return [fn for _, fn in sorted(RULES.items(), key=lambda item: FINDING_IDS.index(item[0][0]))]


def diagnose(evidence: Evidence) -> tuple[Finding, ...]:
    """Every rule's findings, the most severe first."""
    findings = [f for fn in rules() for f in fn(evidence)]
    return tuple(sorted(findings, key=lambda f: -f.severity.rank))
