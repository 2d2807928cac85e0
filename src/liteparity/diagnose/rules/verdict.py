"""The verdict on a material loss (``unexplained-loss``): a candidate that flips predictions
or loses metric points must get a cause, never "no issues found". When no other rule gives a
warning or an error for it, this one says that the loss is not explained yet, with the
numbers, and the layer the per-layer experiment blames most when there is one."""

from __future__ import annotations

from liteparity.diagnose.evidence import Evidence
from liteparity.diagnose.registry import RULES, percent, rule
from liteparity.results.check import ACCURACY, MSE, CandidateResult, Finding, Severity

#: Top-1 predictions flipped by the candidate: above this share the loss is material (a clean
#: int8 model flips well under 1%).
MATERIAL_DISAGREEMENT = 0.02
#: Accuracy points lost, or percent of MSE gained against float labels, that are material.
MATERIAL_DROP, MATERIAL_MSE_DROP = 1.0, 10.0
#: Without labels: outputs this far from the reference (SQNR, dB) lost material precision.
MATERIAL_SQNR_DB = 20.0


def material(ev: Evidence) -> list[str]:
    """Why the candidate's loss is material, in words (empty: it is not)."""
    r = ev.result
    why = []
    if r.agreement is not None and 1 - r.agreement > MATERIAL_DISAGREEMENT:
        why.append(f"it flips {percent(1 - r.agreement)} of top-1 predictions")
    kind = r.metric.name if r.metric is not None else None
    if r.drop is not None and (
        (kind == ACCURACY and r.drop >= MATERIAL_DROP)
        or (kind == MSE and r.drop >= MATERIAL_MSE_DROP)
    ):
        why.append(f"it loses {r.drop:.2f} {'points' if kind == ACCURACY else '% in MSE'}")
    if kind not in (ACCURACY, MSE) and r.sqnr_db is not None and r.sqnr_db < MATERIAL_SQNR_DB:
        why.append(f"its outputs are {r.sqnr_db:.1f} dB SQNR from the reference's")
    return why


def may_be_material(r: CandidateResult) -> bool:
    """Whether ``r``'s loss may be material before its drop is known (the reference's metric
    is folded last): an accuracy drop of d points flips at least d% of top-1 predictions, so
    with fewer flips than ``MATERIAL_DROP``% and outputs above ``MATERIAL_SQNR_DB`` it cannot
    be. Other metrics (and no agreement) always may."""
    if r.metric is None or r.metric.name != ACCURACY or r.agreement is None:
        return True
    flipped = 1 - r.agreement
    low_sqnr = r.sqnr_db is not None and r.sqnr_db < MATERIAL_SQNR_DB
    return flipped >= min(MATERIAL_DROP / 100, MATERIAL_DISAGREEMENT) or low_sqnr


@rule("unexplained-loss")
def unexplained_loss(ev: Evidence) -> list[Finding]:
    """A material loss that no other rule warns about: said, with the best lead there is."""
    why = material(ev)
    if not why:
        return []
    others = [fn for fn in RULES.values() if fn is not unexplained_loss]
    if any(f.severity is not Severity.INFO for fn in others for f in fn(ev)):
        return []
    lead = ""
    top = ev.sensitivity[0] if ev.sensitivity else None
    if top is not None:
        lead = (
            f" The most likely cause measured: keeping {top.layer!r} in float removes "
            f"{percent(top.share_removed)} of the output error."
        )
    r = ev.result
    return [
        Finding(
            "unexplained-loss",
            Severity.WARNING,
            "material loss not explained yet",
            f"The candidate's loss is material ({'; '.join(why)}) but no finding explains "
            f"it yet.{lead}",
            {
                "reasons": why,
                "agreement": r.agreement,
                "drop": r.drop,
                "sqnr_db": r.sqnr_db,
                "most_sensitive_layer": top.to_dict() if top is not None else None,
            },
            "Run `liteparity locate` on this candidate: the first layer where the propagated "
            "error jumps is where to look (ranges, an op without a good int8 kernel such as "
            "LayerNormalization or softmax over a long axis); keep that layer in float.",
        )
    ]
