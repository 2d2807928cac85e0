"""Evidence built by hand: tiny anatomies and measurements whose numbers are known, for the
rules' unit tests (no TensorFlow, no interpreter, no worker)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from liteparity.diagnose.evidence import Evidence, NoiseFloor
from liteparity.qparams import QParams, from_min_max
from liteparity.results.check import CandidateResult, Metric
from liteparity.runtime.anatomy import Anatomy, OpRecord, TensorRecord, WeightSummary

#: The reference's Keras layers.
LAYERS = frozenset({"conv_a", "conv_b", "dense"})

#: Tensor names as the converter writes them (fused op names, Keras scopes with ``_1``).
CONV_A = "model_1/conv_a_1/Relu;model_1/conv_a_1/BiasAdd"
CONV_B = "model_1/conv_b_1/BiasAdd"


def weights(size: int, absmax: float = 0.5, **counts: Any) -> WeightSummary:
    """A weight tensor's summary: ``size`` values over 4 output channels."""
    return WeightSummary(
        absmax=absmax,
        size=size,
        at_float16_max=counts.get("at_float16_max", 0),
        beyond_float16=counts.get("beyond_float16", 0),
        tiny_for_float16=0,
        channel_absmax=counts.get("channel_absmax", (absmax, absmax / 2, absmax / 3, absmax / 4)),
    )


def _tensor(
    index: int,
    name: str,
    dtype: str = "float32",
    q: QParams | None = None,
    producer: str | None = None,
    summary: WeightSummary | None = None,
) -> TensorRecord:
    return TensorRecord(index, name, (1, 8, 8, 4), dtype, q, summary is not None, producer, summary)


def _per_channel(scale: float, dtype: str = "int8") -> QParams:
    return QParams(np.full(4, scale), np.zeros(4, np.int64), dtype, axis=0)


def int8_model(
    conv_a: QParams | None = None,
    conv_b: QParams | None = None,
    input_q: QParams | None = None,
) -> Anatomy:
    """Full-integer with float I/O: input → QUANTIZE → conv_a → conv_b → DEQUANTIZE → output.
    By default conv_a covers [0, 6] and conv_b [-4, 4] (calibrated: different ranges)."""
    tensors = (
        _tensor(0, "serving_default_image:0"),
        _tensor(1, "tfl.quantize", "int8", input_q or from_min_max(0.0, 1.0, "int8"), "QUANTIZE"),
        _tensor(2, "model_1/conv_a_1/Conv2D", "int8", _per_channel(0.004), None, weights(36)),
        _tensor(3, "model_1/conv_a_1/bias", "int32", _per_channel(1e-5, "int32"), None, weights(4)),
        _tensor(4, CONV_A, "int8", conv_a or from_min_max(0.0, 6.0, "int8"), "CONV_2D"),
        _tensor(5, "model_1/conv_b_1/Conv2D", "int8", _per_channel(0.004), None, weights(144)),
        _tensor(6, "model_1/conv_b_1/bias", "int32", _per_channel(1e-5, "int32"), None, weights(4)),
        _tensor(7, CONV_B, "int8", conv_b or from_min_max(-4.0, 4.0, "int8"), "CONV_2D"),
        _tensor(8, "StatefulPartitionedCall_1:0", "float32", None, "DEQUANTIZE"),
    )
    ops = (
        OpRecord(0, "QUANTIZE", (0,), (1,)),
        OpRecord(1, "CONV_2D", (1, 2, 3), (4,)),
        OpRecord(2, "CONV_2D", (4, 5, 6), (7,)),
        OpRecord(3, "DEQUANTIZE", (7,), (8,)),
    )
    return Anatomy(tensors, ops, (0,), (8,))


def float_model(weight_dtype: str = "float32", summary: WeightSummary | None = None) -> Anatomy:
    """input → conv_a → output, the kernel stored as ``weight_dtype`` (float16 behind a
    DEQUANTIZE done once at load, int8 per channel for weights-only int8)."""
    q = _per_channel(0.004) if weight_dtype == "int8" else None
    kernel = _tensor(1, "model_1/conv_a_1/Conv2D", weight_dtype, q, None, summary or weights(36))
    tensors = [
        _tensor(0, "serving_default_image:0"),
        kernel,
        _tensor(2, "model_1/conv_a_1/bias", summary=weights(4)),
        _tensor(3, CONV_A, producer="CONV_2D"),
    ]
    ops = [OpRecord(0, "CONV_2D", (0, 1, 2), (3,))]
    if weight_dtype == "float16":
        tensors.append(_tensor(4, "model_1/conv_a_1/Conv2D_dequantized", producer="DEQUANTIZE"))
        ops = [OpRecord(0, "DEQUANTIZE", (1,), (4,)), OpRecord(1, "CONV_2D", (0, 4, 2), (3,))]
    return Anatomy(tuple(tensors), tuple(ops), (0,), (3,))


def result(**numbers: Any) -> CandidateResult:
    """A candidate that lost little: accuracy 0.95, 0.2 points below the reference."""
    defaults: dict[str, Any] = {
        "metric": Metric("accuracy", 0.95),
        "drop": 0.2,
        "rmse": 0.01,
        "max_abs_error": 0.05,
        "sqnr_db": 35.0,
    }
    return CandidateResult("int8", "int8", **{**defaults, **numbers})


#: A float32 reference 1e-7 (RMSE) from its float64 twin, outputs of RMS 1.
FLOOR = NoiseFloor(rmse=1e-7, max_abs_error=5e-7, output_rms=1.0, samples=200)


def int8_evidence(**fields: Any) -> Evidence:
    """A clean, calibrated int8 candidate: no finding but the harmless ones."""
    base = Evidence(
        result=result(),
        anatomy=int8_model(),
        floor=FLOOR,
        layers=LAYERS,
        learned_ranges={},
    )
    return replace(base, **fields)


def float_evidence(anatomy: Anatomy | None = None, **fields: Any) -> Evidence:
    """A float32 candidate 2× the noise floor from the reference."""
    base = Evidence(
        result=result(rmse=2e-7, max_abs_error=1e-6, sqnr_db=130.0, drop=0.0),
        anatomy=anatomy or float_model(),
        floor=FLOOR,
        layers=LAYERS,
    )
    return replace(base, **fields)
