"""Rules about quantized ranges: an input's ``(scale, zero_point)`` against the data
(``input-range-mismatch``), ranges never calibrated (``dummy-ranges``), values piled on a range's
edge (``saturation``), evaluation data beyond the calibrated range (``calibration-range``), and a
scale set by one outlier channel (``outlier-scale``)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from liteparity import qparams
from liteparity.diagnose.evidence import Evidence
from liteparity.diagnose.registry import covered_range, percent, rule
from liteparity.diagnose.rules.training import keeps_learned_range
from liteparity.diagnose.rules.verdict import material
from liteparity.errors import InternalError, UsageError
from liteparity.measure.stats import TensorStats
from liteparity.results.check import Finding, Severity
from liteparity.runtime.anatomy import (
    RANGE_PRESERVING_OPS,
    OpRecord,
    TensorRecord,
    quantized_activations,
)

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
#: A channel whose range is this many times the median channel's sets the scale alone...
OUTLIER_CHANNEL_RATIO = 20.0
#: ...and leaves the median channel fewer codes than this.
OUTLIER_MEDIAN_CODES = 16.0


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
    """Range-setting tensors that all share one (scale, zero_point): assumed, never
    calibrated (calibration gives each tensor its own data's [min, max]). Tensors that share a
    range by requirement are not counted: outputs of range-preserving ops (pooling, reshapes:
    the kernels require their input's range) and outputs that cover exactly the range their
    activation has by definition (ReLU6's [0, 6]: 33 of 64 MobileNetV2 tensors)."""
    producers = {i: op for op in ev.anatomy.ops for i in op.outputs}
    setting = [
        t
        for t in quantized_activations(ev.anatomy)
        if producers[t.index].name not in RANGE_PRESERVING_OPS
        and not _natural(producers[t.index], t)
    ]
    if len(setting) < DUMMY_MIN_TENSORS:
        return []
    key = Counter(_scale_and_zero(t) for t in setting)
    (scale, zero), count = key.most_common(1)[0]
    if count < DUMMY_MIN_TENSORS or count / len(setting) < DUMMY_MIN_SHARE:
        return []
    shared = [t for t in setting if _scale_and_zero(t) == (scale, zero)]
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
            "ranges were assumed (default_ranges), not measured"
            + "".join(
                f"; {k} spans [{v[0]:.3g}, {v[1]:.3g}]" for k, v in list(measured.items())[:3]
            )
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
    """Quantized tensors whose values pile up on a code the float values go beyond. Values at
    a floor or ceiling the function itself has (ReLU6's 6, a Rescaling's -1, swish's and
    GELU's minimum) are not clipped: with the float model's values an edge counts only when
    they pass it; without them the lowest code counts unless it is a known floor."""
    if not ev.stats:
        return []
    found = []
    for t in quantized_activations(ev.anatomy):
        s = ev.stats.get(t.name)
        if s is None or not s.count or keeps_learned_range(ev, t):
            continue
        truth = (ev.float_stats or {}).get(t.name)
        truth = truth if truth is not None and truth.count else None
        low, high = _beyond_edges(t, truth)
        share = (s.at_qmin * low + s.at_qmax * high) / s.count
        if share <= SATURATION_WARNING:
            continue
        needed = [truth.min, truth.max] if truth is not None else None
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
        if truth is None or not truth.count or keeps_learned_range(ev, t):
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
    """A per-tensor scale set by one channel, leaving the other channels few codes. Constant
    zero channels (padding) are left out of the median. Few codes cost accuracy only when the
    starved channels carry signal: the finding is a warning (or an error) when the candidate's
    loss is material, and information when its outputs show no such loss (an untrained or
    near-dead channel group starved of codes, as MobileNetV3's squeeze-excite pools have)."""
    costly = bool(material(ev))
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
    for t, all_channels in candidates:
        # Constant all-zero channels (padding) carry nothing and would pull the median down.
        absmax = all_channels[all_channels > 0]
        if len(absmax) < 2:
            continue
        median = float(np.median(absmax))
        top = int(np.argmax(all_channels))
        ratio = float(all_channels[top]) / median
        codes = median / float(t.quantization.scale[0])  # type: ignore[union-attr]
        if ratio < OUTLIER_CHANNEL_RATIO or codes >= OUTLIER_MEDIAN_CODES:
            continue
        kind = "weights" if t.constant else "activations"
        if not costly:
            severity = Severity.INFO
        elif codes < OUTLIER_MEDIAN_CODES / 4:
            severity = Severity.ERROR
        else:
            severity = Severity.WARNING
        findings.append(
            Finding(
                "outlier-scale",
                severity,
                "one outlier channel sets the scale",
                f"Channel {top} of {ev.label(t.name)!r} ({kind}) reaches "
                f"{float(all_channels[top]):.4g}, "
                f"{ratio:.0f}× the median channel ({median:.4g}); one scale serves all "
                f"channels, so a typical channel is left about {codes:.1f} codes."
                + ("" if costly else " The outputs show no material loss from it here."),
                {
                    "tensor": ev.label(t.name),
                    "tensor_name": t.name,
                    "kind": kind,
                    "channel": top,
                    "channel_absmax": float(all_channels[top]),
                    "median_channel_absmax": median,
                    "ratio": ratio,
                    "codes_for_median_channel": codes,
                    "scale": _scale_and_zero(t)[0],
                },
                "Keep the layers around this tensor in float (selective quantization), rebalance "
                "the channel (cross-layer equalization: scale the channel's weights down and the "
                "next layer's up), or use int16x8 activations.",
            )
        )
    return findings


#: The output range a clipping activation has by definition, fused or as an op of its own.
NATURAL_RANGES = {"RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0)}


def _natural(op: OpRecord, t: TensorRecord) -> bool:
    """``t`` covers exactly the range its producer's activation has by definition (ReLU6's
    [0, 6]): calibration on any data that reaches the clip gives it, so sharing it is no sign
    of an assumed range."""
    natural = NATURAL_RANGES.get(op.activation) or NATURAL_RANGES.get(op.name)
    if natural is None:
        return False
    q = t.quantization
    step = float(q.scale[0])  # type: ignore[union-attr]
    low, high = float(q.min[0]), float(q.max[0])  # type: ignore[union-attr]
    return abs(low - natural[0]) <= step and abs(high - natural[1]) <= step


#: Minima that activation functions have by definition: a Rescaling to [-1, 1], swish/SiLU
#: (-0.2785 at x = -1.278), GELU (-0.1700 at x = -0.752), hard swish (-0.375 at x = -1.5).
NATURAL_FLOORS = (-1.0, -0.2785, -0.1700, -0.375)


def _beyond_edges(t: TensorRecord, truth: TensorStats | None) -> tuple[bool, bool]:
    """Whether values on the lowest and on the highest code of ``t`` stand for float values
    beyond them: the float model's values pass the edge by more than half a step; without
    them, the highest code always and the lowest unless it is a natural floor."""
    q = t.quantization
    low, high, half = float(q.min[0]), float(q.max[0]), float(q.scale[0]) / 2  # type: ignore[union-attr]
    if truth is not None:
        return truth.min < low - half, truth.max > high + half
    natural = any(abs(low - floor) <= 2 * half for floor in NATURAL_FLOORS)
    return not natural, True


def _scale_and_zero(t: TensorRecord) -> tuple[float, int]:
    """A per-tensor quantized tensor's ``(scale, zero_point)``."""
    if t.quantization is None:
        raise InternalError(f"{t.name} is not quantized")
    return float(t.quantization.scale[0]), int(t.quantization.zero_point[0])
