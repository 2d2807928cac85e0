"""The diagnosis rules, one per finding id (or pair of ids). Thresholds are named constants
with the reason for their value; evidence always carries the numbers that crossed them."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np

from liteparity import qparams
from liteparity.diagnose.evidence import Evidence
from liteparity.diagnose.registry import RULES, covered_range, percent, rule
from liteparity.errors import UsageError
from liteparity.layerwise.names import keras_layer
from liteparity.results.check import Finding, Severity
from liteparity.runtime.anatomy import (
    FLOAT16_MAX,
    RANGE_PRESERVING_OPS,
    Anatomy,
    TensorRecord,
    is_float_compute,
    quantized_activations,
)

#: A float32 candidate within this multiple of the fp32-vs-fp64 noise floor is float noise:
#: two float32 implementations each sit about one floor from the truth, and different
#: accumulation orders (Winograd, tiling) add a few more.
FLOAT_NOISE_FACTOR = 10.0
#: Without a floor, float32 noise relative to the output's RMS rarely exceeds this.
FLOAT_NOISE_RELATIVE = 1e-5
#: A float32 layer output within this SQNR of Keras's (1e-4 relative) is float noise; the
#: first layer below it is where the conversion changed the computation.
CONVERSION_LAYER_DB = 80.0
#: Input values clipped by the input's (scale, zero_point): a warning, then an error.
CLIPPED_WARNING, CLIPPED_ERROR = 0.005, 0.05
#: Share of the input's code range the data uses: below these, precision is wasted.
USED_WARNING, USED_ERROR = 0.25, 0.05
#: Share of a tensor's values pinned at its lowest or highest code: clipping, not chance.
SATURATION_WARNING, SATURATION_ERROR = 0.02, 0.10
#: Share of float values outside the calibrated range of the same tensor.
OUT_OF_RANGE_WARNING, OUT_OF_RANGE_ERROR = 0.01, 0.10
#: Tensors produced by range-setting ops that share one (scale, zero_point): uncalibrated.
DUMMY_MIN_TENSORS, DUMMY_MIN_SHARE = 2, 0.5
#: Keeping one layer in float removes at least this share of the output error: it accounts
#: for most of it.
SENSITIVE_SHARE = 0.5
#: Accuracy points lost (or SQNR below this many dB without labels) that make a sensitive
#: layer a problem rather than a curiosity.
SENSITIVE_DROP, SENSITIVE_SQNR_DB = 1.0, 20.0
#: A range that moved by more than this share of the learned range's width is not the
#: learned one (the converter's zero-point nudge moves it by less than one step, 1/255).
QAT_RANGE_TOLERANCE = 0.05
#: A channel whose range is this many times the median channel's sets the scale alone...
OUTLIER_CHANNEL_RATIO = 20.0
#: ...and leaves the median channel fewer codes than this.
OUTLIER_MEDIAN_CODES = 16.0


# -- rules ---------------------------------------------------------------------------------
@rule("float-noise", "conversion-error")
def float_deviation(ev: Evidence) -> list[Finding]:
    """A float32 candidate: within the float32 noise floor, or computing something else."""
    r = ev.result
    if not is_float_compute(ev.anatomy) or r.rmse is None:
        return []
    floor = ev.floor
    numbers = {"max_abs_error": r.max_abs_error, "rmse": r.rmse}
    if floor is not None and floor.rmse is not None:
        ratio = r.rmse / floor.rmse if floor.rmse > 0 else (0.0 if r.rmse == 0 else math.inf)
        numbers |= {
            "noise_floor_rmse": floor.rmse,
            "noise_floor_max_abs_error": floor.max_abs_error,
            "ratio_to_floor": ratio,
        }
        noise = ratio <= FLOAT_NOISE_FACTOR
        against = (
            f"{ratio:.1f}× the float32 noise floor (reference fp32 vs fp64: RMSE {floor.rmse:.2e})"
        )
    else:
        rms = floor.output_rms if floor is not None and floor.output_rms else None
        relative = r.rmse / rms if rms else None
        numbers["relative_rmse"] = relative
        noise = relative is not None and relative <= FLOAT_NOISE_RELATIVE
        against = (
            f"relative RMSE {relative:.1e}"
            if relative is not None
            else "no noise floor could be measured"
        )
    if noise:
        spacing = float(np.spacing(np.float32(max(abs(r.max_abs_error or 0), 1.0))))
        return [
            Finding(
                "float-noise",
                Severity.INFO,
                "normal float32 noise",
                f"The float32 model differs from the reference by at most {r.max_abs_error:.2e} "
                f"(RMSE {r.rmse:.2e}), {against}: this is float32 arithmetic done in another "
                "order, not an error.",
                {
                    **numbers,
                    "float32_step_near_1": spacing,
                    "float32_precision": {"1": 1.19e-07, "100": 7.63e-06, "10000": 0.000977},
                },
                "Nothing to fix. Compare outputs with a tolerance (e.g. 1e-5 relative), not for "
                "equality.",
            )
        ]
    first = next(((layer, db) for layer, db in ev.conversion if db < CONVERSION_LAYER_DB), None)
    where = ""
    if first is not None:
        numbers |= {
            "first_layer": first[0],
            "first_layer_sqnr_db": first[1],
            "layers": [{"layer": layer, "sqnr_db": db} for layer, db in ev.conversion],
        }
        where = (
            f" The first layer whose output leaves float noise is {first[0]!r} "
            f"(SQNR {first[1]:.1f} dB against Keras)."
        )
    return [
        Finding(
            "conversion-error",
            Severity.ERROR if floor and floor.rmse else Severity.WARNING,
            "conversion changed the computation",
            f"The float32 model differs from the reference by up to {r.max_abs_error:.3g} "
            f"(RMSE {r.rmse:.3g}), {against}: the converted graph computes something else." + where,
            numbers,
            "Look for layers the converter rewrites (custom or Lambda layers, resize/pad "
            "semantics, training-only behaviour such as dropout or batch statistics) and compare "
            "that layer's output in both models; if the model is unchanged, report a converter bug "
            "with this model.",
        )
    ]


@rule("weights-only")
def weights_only(ev: Evidence) -> list[Finding]:
    """Weights stored int8/float16 while inputs, outputs and activations stay float."""
    a = ev.anatomy
    io_float = all(not a.tensor(i).quantized for i in (*a.inputs, *a.outputs))
    activations_float = not any(t.quantized for t in a.activations())
    small = [t for t in a.weights() if t.dtype in ("int8", "float16")]
    small += [t for t in a.nested if t.dtype in ("int8", "float16")]  # recurrent bodies
    if not (io_float and activations_float and small):
        return []
    kinds = sorted({t.dtype for t in small})
    values = sum(t.weights.size for t in small if t.weights)
    total = sum(t.weights.size for t in a.weights() if t.weights and t.dtype != "int32")
    r = ev.result
    moved = f", outputs moved by RMSE {r.rmse:.2e} (SQNR {r.sqnr_db:.1f} dB)" if r.rmse else ""
    return [
        Finding(
            "weights-only",
            Severity.INFO,
            "weights-only quantization (expected)",
            f"Weights are stored as {' and '.join(kinds)} ({len(small)} tensors, "
            f"{percent(values / total if total else 0)} of weight values) while inputs, outputs "
            f"and activations stay float32{moved}: that is why the input details show "
            "'quantization': (0.0, 0) — the input is simply not quantized.",
            {
                "weight_types": kinds,
                "quantized_weight_tensors": [ev.label(t.name) for t in small],
                "share_of_weight_values": values / total if total else None,
            },
            "Nothing to fix: feed float inputs as to the original model. For integer-only hardware "
            "use full-integer quantization (recipe int8) with a representative dataset.",
        )
    ]


@rule("input-range-mismatch")
def input_range(ev: Evidence) -> list[Finding]:
    """The real range an input's (scale, zero_point) covers against the data's range."""
    findings = []
    for cov in ev.inputs:
        if not cov.count:
            continue
        q = cov.quantization
        clipped, used = cov.clipped, cov.used
        severity = None
        if clipped > CLIPPED_ERROR or used < USED_ERROR:
            severity = Severity.ERROR
        elif clipped > CLIPPED_WARNING or used < USED_WARNING:
            severity = Severity.WARNING
        if severity is None:
            continue
        try:
            want = qparams.from_min_max(cov.min, cov.max, q.dtype)
            suggested = [float(want.mean[0]), float(want.std_dev[0])]
            how = (
                f"Quantize the input for the range the data really has: (mean, std_dev) = "
                f"({suggested[0]:.4g}, {suggested[1]:.4g}) for TF1's quantized_input_stats; "
            )
        except UsageError:  # constant zero data: no range to suggest
            suggested, how = None, "The input data is constant: check the preprocessing; "
        covered = covered_range(q)
        findings.append(
            Finding(
                "input-range-mismatch",
                severity,
                "broken input quantization",
                f"Input {cov.name!r} is quantized to cover [{covered[0]:.4g}, {covered[1]:.4g}] "
                f"((scale, zero_point) = ({float(q.scale[0]):.6g}, {int(q.zero_point[0])}), i.e. "
                f"(mean, std_dev) = ({float(q.mean[0]):.4g}, {float(q.std_dev[0]):.4g})) but the "
                f"data spans [{cov.min:.4g}, {cov.max:.4g}]: {percent(clipped)} of input values "
                f"are clipped and the data uses {percent(used)} of the code range.",
                {
                    "input": cov.name,
                    "covered_range": covered,
                    "data_range": [cov.min, cov.max],
                    "clipped_share": clipped,
                    "used_share": used,
                    "scale": float(q.scale[0]),
                    "zero_point": int(q.zero_point[0]),
                    "suggested_mean_std_dev": suggested,
                },
                how + "for post-training quantization, calibrate on data preprocessed exactly "
                "like this data (same scaling, same normalization).",
            )
        )
    return findings


@rule("dummy-ranges")
def dummy_ranges(ev: Evidence) -> list[Finding]:
    """Range-setting tensors that all share one (scale, zero_point): never calibrated."""
    producers = {i: op.name for op in ev.anatomy.ops for i in op.outputs}
    setting = [
        t
        for t in quantized_activations(ev.anatomy)
        if producers[t.index] not in RANGE_PRESERVING_OPS
    ]
    if len(setting) < DUMMY_MIN_TENSORS:
        return []
    key = Counter(
        (float(t.quantization.scale[0]), int(t.quantization.zero_point[0])) for t in setting
    )  # type: ignore[union-attr]
    (scale, zero), count = key.most_common(1)[0]
    if count < DUMMY_MIN_TENSORS or count / len(setting) < DUMMY_MIN_SHARE:
        return []
    shared = [
        t
        for t in setting
        if (
            float(t.quantization.scale[0]),  # type: ignore[union-attr]
            int(t.quantization.zero_point[0]),
        )
        == (scale, zero)
    ]
    assumed = covered_range(shared[0].quantization)  # type: ignore[arg-type]
    measured = {}
    for t in shared:
        s = (ev.float_stats or {}).get(t.name) or (ev.stats or {}).get(t.name)
        if s is not None and s.count:
            measured[ev.label(t.name)] = [s.min, s.max]
    source = "float model" if ev.float_stats else "quantized model (clipped to the range)"
    return [
        Finding(
            "dummy-ranges",
            Severity.ERROR,
            "uncalibrated (dummy) ranges",
            f"{count} of {len(setting)} activation tensors share the identical range "
            f"[{assumed[0]:.4g}, {assumed[1]:.4g}] (scale {scale:.6g}, zero point {zero}): their "
            "ranges were assumed (default_ranges), not measured, while the real values span "
            + ", ".join(f"{k} [{v[0]:.3g}, {v[1]:.3g}]" for k, v in list(measured.items())[:3])
            + ".",
            {
                "assumed_range": assumed,
                "scale": scale,
                "zero_point": zero,
                "tensors": [ev.label(t.name) for t in shared],
                "measured_ranges": measured,
                "measured_on": source,
            },
            "Do not use default_ranges_stats: convert with post-training full-integer "
            "quantization and a representative dataset (recipe int8/uint8-io), or train with "
            "quantization-aware training so every tensor carries its learned range.",
        )
    ]


@rule("saturation")
def saturation(ev: Evidence) -> list[Finding]:
    """Quantized tensors whose values pile up on their lowest or highest code."""
    if not ev.stats:
        return []
    found = []
    for t in quantized_activations(ev.anatomy):
        s = ev.stats.get(t.name)
        if s is None or not s.count or _learned(ev, t):
            continue
        share = (s.at_qmin + s.at_qmax) / s.count
        if share <= SATURATION_WARNING:
            continue
        truth = (ev.float_stats or {}).get(t.name)
        needed = [truth.min, truth.max] if truth is not None and truth.count else None
        found.append((share, t, s, needed))
    findings = []
    for share, t, s, needed in sorted(found, key=lambda item: -item[0]):
        covered = covered_range(t.quantization)  # type: ignore[arg-type]
        need = (
            f"; the float model's values there span [{needed[0]:.4g}, {needed[1]:.4g}]"
            if needed
            else ""
        )
        findings.append(
            Finding(
                "saturation",
                Severity.ERROR if share > SATURATION_ERROR else Severity.WARNING,
                "saturated tensors",
                f"{percent(share)} of the values of {ev.label(t.name)!r} sit at the edge of its "
                f"range [{covered[0]:.4g}, {covered[1]:.4g}] ({s.at_qmin} at the lowest code, "
                f"{s.at_qmax} at the highest){need}.",
                {
                    "tensor": ev.label(t.name),
                    "tensor_name": t.name,
                    "share": share,
                    "at_qmin": s.at_qmin,
                    "at_qmax": s.at_qmax,
                    "covered_range": covered,
                    "needed_range": needed,
                },
                "Calibrate with data that covers what the model sees in use (more samples, the "
                "same preprocessing), or keep this layer in float.",
            )
        )
    return findings


@rule("calibration-range")
def calibration_range(ev: Evidence) -> list[Finding]:
    """Float values of the evaluation data outside the calibrated range of the same tensor."""
    if not ev.float_stats:
        return []
    findings = []
    for t in quantized_activations(ev.anatomy):
        truth = ev.float_stats.get(t.name)
        if truth is None or not truth.count or _learned(ev, t):
            continue
        share = (truth.below + truth.above) / truth.count
        if share <= OUT_OF_RANGE_WARNING:
            continue
        covered = covered_range(t.quantization)  # type: ignore[arg-type]
        findings.append(
            Finding(
                "calibration-range",
                Severity.ERROR if share > OUT_OF_RANGE_ERROR else Severity.WARNING,
                "evaluation data outside the calibrated range",
                f"{percent(share)} of the evaluation values of {ev.label(t.name)!r} fall outside "
                f"its calibrated range [{covered[0]:.4g}, {covered[1]:.4g}]; they reach "
                f"[{truth.min:.4g}, {truth.max:.4g}].",
                {
                    "tensor": ev.label(t.name),
                    "tensor_name": t.name,
                    "share": share,
                    "below": truth.below,
                    "above": truth.above,
                    "calibrated_range": covered,
                    "evaluation_range": [truth.min, truth.max],
                },
                "Calibrate on data drawn like the evaluation data (same source and preprocessing, "
                "a few hundred samples covering every class).",
            )
        )
    return findings


@rule("outlier-scale")
def outlier_scale(ev: Evidence) -> list[Finding]:
    """A per-tensor scale set by one channel, leaving the other channels few codes."""
    findings = []
    candidates: list[tuple[TensorRecord, np.ndarray]] = []
    for t in quantized_activations(ev.anatomy):
        s = (ev.float_stats or {}).get(t.name) or (ev.stats or {}).get(t.name)
        if s is not None and s.channel_absmax is not None and len(s.channel_absmax) > 1:
            candidates.append((t, s.channel_absmax))
    for t in ev.anatomy.weights():
        if (
            t.quantized
            and not t.quantization.per_channel  # type: ignore[union-attr]
            and t.weights
            and len(t.weights.channel_absmax) > 1
        ):
            candidates.append((t, np.asarray(t.weights.channel_absmax)))
    for t, absmax in candidates:
        median = float(np.median(absmax))
        top = int(np.argmax(absmax))
        ratio = float(absmax[top]) / median if median > 0 else math.inf
        codes = median / float(t.quantization.scale[0])  # type: ignore[union-attr]
        if ratio < OUTLIER_CHANNEL_RATIO or codes >= OUTLIER_MEDIAN_CODES:
            continue
        kind = "weights" if t.constant else "activations"
        findings.append(
            Finding(
                "outlier-scale",
                Severity.ERROR if codes < OUTLIER_MEDIAN_CODES / 4 else Severity.WARNING,
                "one outlier channel sets the scale",
                f"Channel {top} of {ev.label(t.name)!r} ({kind}) reaches {float(absmax[top]):.4g}, "
                f"{ratio:.0f}× the median channel ({median:.4g}); one scale serves all "
                f"channels, so a typical channel is left about {codes:.1f} codes.",
                {
                    "tensor": ev.label(t.name),
                    "tensor_name": t.name,
                    "kind": kind,
                    "channel": top,
                    "channel_absmax": float(absmax[top]),
                    "median_channel_absmax": median,
                    "ratio": ratio,
                    "codes_for_median_channel": codes,
                    "scale": float(t.quantization.scale[0]),
                },  # type: ignore[union-attr]
                "Keep the layers around this tensor in float (selective quantization), rebalance "
                "the channel (cross-layer equalization: scale the channel's weights down and the "
                "next layer's up), or use int16x8 activations.",
            )
        )
    return findings


@rule("float16-overflow")
def float16_overflow(ev: Evidence) -> list[Finding]:
    """Weights clipped to float16's ±65504, or activations float16 could not hold."""
    findings = []
    clipped = [t for t in ev.anatomy.weights() if t.weights and t.weights.at_float16_max]
    if clipped:
        n = sum(t.weights.at_float16_max for t in clipped)  # type: ignore[union-attr]
        findings.append(
            Finding(
                "float16-overflow",
                Severity.ERROR,
                "weights clipped by float16",
                f"{n} weight value(s) in "
                f"{', '.join(repr(ev.label(t.name)) for t in clipped[:3])} sit at float16's "
                f"largest value {FLOAT16_MAX:g}: they were larger and got clipped.",
                {
                    "tensors": [ev.label(t.name) for t in clipped],
                    "clipped_values": n,
                    "float16_max": FLOAT16_MAX,
                },
                "Keep these weights in float32 (do not use the float16 recipe), or fold the large "
                "factor into a following layer so weights stay below 65504.",
            )
        )
    if ev.float_stats and any(t.dtype == "float16" for t in ev.anatomy.tensors):
        big = {
            name: max(abs(s.min), abs(s.max))
            for name, s in ev.float_stats.items()
            if s.count and max(abs(s.min), abs(s.max)) > FLOAT16_MAX
        }
        if big:
            findings.append(
                Finding(
                    "float16-overflow",
                    Severity.WARNING,
                    "activations beyond float16",
                    f"{len(big)} activation tensor(s) exceed {FLOAT16_MAX:g} (up to "
                    f"{max(big.values()):.4g}): fine on CPU, which computes in float32, but they "
                    "overflow to inf on a GPU delegate computing in float16.",
                    {"tensors": {ev.label(k): v for k, v in big.items()}},
                    "Rescale inputs or add normalization so activations stay below 65504, or run "
                    "with float32 precision on the GPU delegate.",
                )
            )
    return findings


@rule("qat-mismatch")
def qat_mismatch(ev: Evidence) -> list[Finding]:
    """Ranges in the candidate that are not the ones learned in quantization-aware training."""
    if not ev.learned_ranges:
        return []
    moved: dict[str, dict[str, Any]] = {}
    pairs = [("quantize_layer", t) for t in _input_codes(ev.anatomy)]
    pairs += [
        (keras_layer(t.name, ev.learned_ranges), t) for t in quantized_activations(ev.anatomy)
    ]
    for layer, t in pairs:
        if layer is None or layer not in ev.learned_ranges or layer in moved:
            continue
        lo, hi = ev.learned_ranges[layer]
        got = covered_range(t.quantization)  # type: ignore[arg-type]
        shift = max(abs(got[0] - lo), abs(got[1] - hi)) / max(hi - lo, 1e-12)
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


def _learned(ev: Evidence, t: TensorRecord) -> bool:
    """The tensor keeps the range learned in QAT: its clipping is trained behaviour that the
    reference model shares, not a calibration fault."""
    if not ev.learned_ranges or t.quantization is None:
        return False
    layer = keras_layer(t.name, ev.learned_ranges)
    if layer is None:
        return False
    lo, hi = ev.learned_ranges[layer]
    got = covered_range(t.quantization)
    return max(abs(got[0] - lo), abs(got[1] - hi)) / max(hi - lo, 1e-12) <= QAT_RANGE_TOLERANCE


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


def diagnose(evidence: Evidence) -> tuple[Finding, ...]:
    """Every rule's findings, the most severe first. It lives beside the rules so that
    whoever diagnoses has imported (and so registered) every one of them."""
    findings = [f for fn in RULES.values() for f in fn(evidence)]
    return tuple(sorted(findings, key=lambda f: -f.severity.rank))
