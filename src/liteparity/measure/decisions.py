"""The ``decision-lost`` finding: an output whose decisions the candidate can no longer make.

Measured where the numbers are (the per-output results of ``check``), so it reaches check,
explain and fix alike. It fires when a decision output (a flag, detection scores) either
cannot reach its threshold at all (the codes of a quantized output stop below it: score
logits capped at 0 give sigmoid ≤ 0.5, no detection ever), or flips on a meaningful share
of samples (``LOST_SHARE``, at least ``MIN_FLIPS``), or keeps less than half of the
reference's positives.
"""

from __future__ import annotations

from collections.abc import Sequence

from liteparity.measure.kinds import DETECTIONS, FLAG, SCORES
from liteparity.results.check import Finding, OutputResult, Severity

#: Share of samples whose decision (a flag, or whether anything is detected) may change
#: before it is a finding: 1 in 20, and at least ``MIN_FLIPS`` samples (one flip on a small
#: evaluation set is not yet a pattern).
LOST_SHARE = 0.05
MIN_FLIPS = 2

#: Below this share of the reference's positives kept, a detector has lost its detections.
MIN_RECALL = 0.5

_FIX = (
    "keep the output head in float or int16 (e.g. int16x8, or leave the last layers "
    "unquantized), and recalibrate with samples where the decision is positive"
)


def decision_findings(outputs: Sequence[OutputResult]) -> tuple[Finding, ...]:
    """One ``decision-lost`` finding per decision output the candidate lost."""
    return tuple(f for o in outputs if o.kind in (FLAG, SCORES, DETECTIONS) for f in _lost(o))


def _lost(output: OutputResult) -> list[Finding]:
    m = output.metrics
    threshold = m.get("threshold")
    if threshold is None:
        return []
    low, high = m.get("reachable_min"), m.get("reachable_max")
    unreachable = (high is not None and high <= threshold) or (low is not None and low > threshold)
    share = m.get("decisions_lost") if output.kind == FLAG else m.get("presence_changed")
    recall = m.get("recall")
    flipped = round((share or 0.0) * (m.get("samples") or 0))
    flips = share is not None and share >= LOST_SHARE and flipped >= MIN_FLIPS
    missed = recall is not None and recall < MIN_RECALL
    if not (unreachable or flips or missed):
        return []
    where = f"[{low:.4g}, {high:.4g}]" if low is not None and high is not None else "float"
    reason = (
        f"its quantized range {where} cannot reach the threshold {threshold:g}"
        if unreachable
        else f"its decisions at {threshold:g} change on {100 * (share or 0):.1f}% of samples"
    )
    found = f"{m.get('candidate_positives')} positive(s) where the reference finds " + str(
        m.get("reference_positives")
    )
    return [
        Finding(
            id="decision-lost",
            severity=Severity.ERROR,
            verdict=f"output {output.name} lost its decisions",
            summary=f"output {output.name}: {reason}; {found}.",
            evidence={
                "output": output.name,
                "range": [low, high],
                "threshold": threshold,
                "decisions_lost": share,
                "recall": recall,
                "reference_positives": m.get("reference_positives"),
                "candidate_positives": m.get("candidate_positives"),
            },
            fix=_FIX,
        )
    ]
