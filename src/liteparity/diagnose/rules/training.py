"""Rules about what training and the per-layer experiment show: ranges that are not the ones
learned in quantization-aware training (``qat-mismatch``), and one layer whose quantization
accounts for most of the output error (``sensitive-layer``)."""

from __future__ import annotations

from typing import Any

from liteparity.diagnose.evidence import Evidence
from liteparity.diagnose.registry import covered_range, percent, rule
from liteparity.reference.names import keras_layer
from liteparity.results.check import Finding, Severity
from liteparity.runtime.anatomy import Anatomy, TensorRecord, quantized_activations

#: Keeping one layer in float removes at least this share of the output error: it accounts
#: for most of it.
SENSITIVE_SHARE = 0.5
#: Accuracy points lost (or SQNR below this many dB without labels) that make a sensitive
#: layer a problem rather than a curiosity.
SENSITIVE_DROP, SENSITIVE_SQNR_DB = 1.0, 20.0
#: A range that moved by more than this share of the learned range's width is not the
#: learned one (the converter's zero-point nudge moves it by less than one step, 1/255).
QAT_RANGE_TOLERANCE = 0.05


@rule("qat-mismatch")
def qat_mismatch(ev: Evidence) -> list[Finding]:
    """Ranges in the candidate that are not the ones learned in quantization-aware training."""
    if not ev.learned_ranges:
        return []
    moved: dict[str, dict[str, Any]] = {}
    pairs: list[tuple[str | None, TensorRecord]]
    pairs = [("quantize_layer", t) for t in _input_codes(ev.anatomy)]
    pairs += [
        (keras_layer(t.name, ev.learned_ranges), t) for t in quantized_activations(ev.anatomy)
    ]
    for layer, t in pairs:
        if layer is None or layer not in ev.learned_ranges or layer in moved:
            continue
        lo, hi = ev.learned_ranges[layer]
        got = covered_range(t.quantization)  # type: ignore[arg-type]
        shift = _shift(got, (lo, hi))
        if shift > QAT_RANGE_TOLERANCE:
            moved[layer] = {"learned": [lo, hi], "candidate": got, "shift": shift}
    if not moved:
        return []
    first = next(iter(moved))
    return [
        Finding(
            "qat-mismatch",
            Severity.WARNING,
            "ranges differ from the ones learned in QAT",
            f"{len(moved)} of {len(ev.learned_ranges)} layer ranges differ from the ranges "
            f"learned in quantization-aware training (e.g. {first!r}: learned "
            f"[{moved[first]['learned'][0]:.4g}, {moved[first]['learned'][1]:.4g}], candidate "
            f"[{moved[first]['candidate'][0]:.4g}, {moved[first]['candidate'][1]:.4g}]): this "
            "model was calibrated again instead of keeping the trained quantization.",
            {"layers": moved, "learned_layers": len(ev.learned_ranges)},
            "Convert the quantization-aware model itself (converter.optimizations = [DEFAULT] on "
            "the QAT model, no representative dataset needed) instead of copying its weights into "
            "the float model and calibrating again.",
        )
    ]


def keeps_learned_range(ev: Evidence, t: TensorRecord) -> bool:
    """The tensor keeps the range learned in QAT: its clipping is trained behaviour that the
    reference model shares, not a calibration fault."""
    if not ev.learned_ranges or t.quantization is None:
        return False
    layer = keras_layer(t.name, ev.learned_ranges)
    if layer is None:
        return False
    shift = _shift(covered_range(t.quantization), ev.learned_ranges[layer])
    return shift <= QAT_RANGE_TOLERANCE


def _shift(got: list[float], learned: tuple[float, float]) -> float:
    """How far a range's ends moved from the learned ones, in widths of the learned range."""
    lo, hi = learned
    return max(abs(got[0] - lo), abs(got[1] - hi)) / max(hi - lo, 1e-12)


def _input_codes(anatomy: Anatomy) -> list[TensorRecord]:
    """The quantized form of each model input (its own codes or its QUANTIZE op's output)."""
    out = []
    for index in anatomy.inputs:
        tensor = anatomy.tensor(index)
        if tensor.quantized:
            out.append(tensor)
        out += [
            anatomy.tensor(op.outputs[0])
            for op in anatomy.consumers(index)
            if op.name == "QUANTIZE"
        ]
    return out


@rule("sensitive-layer")
def sensitive_layer(ev: Evidence) -> list[Finding]:
    """One layer whose quantization accounts for most of the output error."""
    if not ev.sensitivity:
        return []
    top = ev.sensitivity[0]
    if top.share_removed < SENSITIVE_SHARE:
        return []
    r = ev.result
    harmful = (
        r.drop is not None
        and r.metric is not None
        and r.metric.name == "accuracy"
        and r.drop >= SENSITIVE_DROP
    ) or (r.sqnr_db is not None and r.sqnr_db < SENSITIVE_SQNR_DB)
    return [
        Finding(
            "sensitive-layer",
            Severity.WARNING if harmful else Severity.INFO,
            "one layer dominates the quantization error"
            if harmful
            else "small quantization error, mostly from one layer",
            f"Keeping {top.layer!r} in float ({len(top.keep_float)} ops) removes "
            f"{percent(top.share_removed)} of the output error (MSE {top.mse_quantized:.3g} → "
            f"{top.mse_kept_float:.3g}); the next layer removes "
            + (
                f"{percent(ev.sensitivity[1].share_removed)}."
                if len(ev.sensitivity) > 1
                else "none."
            ),
            {
                "layer": top.layer,
                "keep_float": list(top.keep_float),
                "share_removed": top.share_removed,
                "mse_quantized": top.mse_quantized,
                "mse_kept_float": top.mse_kept_float,
                "ranking": [s.to_dict() for s in ev.sensitivity[:5]],
            },
            "Keep these ops in float (selective quantization): TF's QuantizationDebugger with "
            f"QuantizationDebugOptions(denylisted_nodes={list(top.keep_float)!r}) builds that "
            "model; or fix the range problem that makes the layer sensitive (see the other "
            "findings).",
        )
    ]
