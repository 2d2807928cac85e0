"""Rules about float computation: a float32 candidate within float32 noise or computing
something else (``float-noise``, ``conversion-error``), weights stored small while everything
else stays float (``weights-only``), and values float16 cannot hold (``float16-overflow``)."""

from __future__ import annotations

from typing import Any, cast

import numpy as np

from liteparity.diagnose.evidence import Evidence, NoiseFloor
from liteparity.diagnose.registry import percent, rule
from liteparity.results.check import CandidateResult, Finding, Severity
from liteparity.runtime.anatomy import FLOAT16_MAX, is_float_compute

#: A float32 candidate within this multiple of the fp32-vs-fp64 noise floor is float noise:
#: two float32 implementations each sit about one floor from the truth, and different
#: accumulation orders (Winograd, tiling) add a few more.
FLOAT_NOISE_FACTOR = 10.0
#: Without a floor, float32 noise relative to the output's RMS rarely exceeds this.
FLOAT_NOISE_RELATIVE = 1e-5
#: A float32 layer output within this SQNR of Keras's (1e-4 relative) is float noise; the
#: first layer below it is where the conversion changed the computation.
CONVERSION_LAYER_DB = 80.0


@rule("float-noise", "conversion-error")
def float_deviation(ev: Evidence) -> list[Finding]:
    """A float32 candidate: within the float32 noise floor, or computing something else."""
    r = ev.result
    if not is_float_compute(ev.anatomy) or r.rmse is None:
        return []
    numbers, noise, against = _against_floor(r, ev.floor)
    if noise:
        return [_float_noise(r, numbers, against)]
    return [_conversion_error(ev, numbers, against)]


def _against_floor(
    r: CandidateResult, floor: NoiseFloor | None
) -> tuple[dict[str, Any], bool, str]:
    """The deviation's numbers, whether it is float noise, and the words that say against what
    (the measured floor, else the output's RMS)."""
    rmse = cast(float, r.rmse)
    numbers: dict[str, Any] = {"max_abs_error": r.max_abs_error, "rmse": rmse}
    if rmse == 0:  # bit-identical: never an error, whatever the floor
        return numbers, True, "bit-identical to the reference"
    if floor is not None and floor.rmse:  # a floor of 0 says nothing of the noise: see below
        ratio = rmse / floor.rmse
        numbers |= {
            "noise_floor_rmse": floor.rmse,
            "noise_floor_max_abs_error": floor.max_abs_error,
            "ratio_to_floor": ratio,
        }
        against = f"{ratio:.1f}× the float32 noise floor ({floor.against}: RMSE {floor.rmse:.2e})"
        return numbers, ratio <= FLOAT_NOISE_FACTOR, against
    rms = floor.output_rms if floor is not None and floor.output_rms else None
    relative = rmse / rms if rms else None
    numbers["relative_rmse"] = relative
    noise = relative is not None and relative <= FLOAT_NOISE_RELATIVE
    against = (
        f"relative RMSE {relative:.1e}"
        if relative is not None
        else "no noise floor could be measured"
    )
    return numbers, noise, against


def _float_noise(r: CandidateResult, numbers: dict[str, Any], against: str) -> Finding:
    spacing = float(np.spacing(np.float32(max(abs(r.max_abs_error or 0), 1.0))))
    return Finding(
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
        "Nothing to fix. Compare outputs with a tolerance (e.g. 1e-5 relative), not for equality.",
    )


def _conversion_error(ev: Evidence, numbers: dict[str, Any], against: str) -> Finding:
    r, floor = ev.result, ev.floor
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
    return Finding(
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


@rule("float16-overflow")
def float16_overflow(ev: Evidence) -> list[Finding]:
    """Weights clipped to float16's ±65504, or activations float16 could not hold."""
    findings = []
    clipped = [t for t in ev.anatomy.weights() if t.weights and t.weights.at_float16_max]
    if clipped:
        n = sum(int(t.weights.at_float16_max) for t in clipped if t.weights)
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
