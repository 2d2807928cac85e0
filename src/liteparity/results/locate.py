"""What ``locate`` returns: one record per layer, local and propagated error."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from typing import Any

from liteparity.plain import json_number, strict_json

#: The debugger's CSV columns, in its order, so existing notebooks keep working.
DEBUGGER_COLUMNS = (
    "op_name",
    "tensor_idx",
    "num_elements",
    "stddev",
    "mean_error",
    "max_abs_error",
    "mean_squared_error",
    "scale",
    "zero_point",
    "tensor_name",
)


@dataclass(frozen=True)
class LayerRecord:
    """One tensor of the quantized model and its errors."""

    tensor_name: str
    op: str
    tensor_index: int
    keras_layer: str | None
    local: dict[str, Any] | None
    propagated: dict[str, Any] | None
    conversion: dict[str, Any] | None
    scale: float | None
    zero_point: int | None
    rmse_over_scale: float | None
    saturation: float | None
    sensitivity: float | None = None  # share of the output error removed with it in float
    jump: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            k: (_plain(v) if isinstance(v, dict) else json_number(v))
            for k, v in self.__dict__.items()
        }


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    return {k: json_number(v) for k, v in d.items()}


@dataclass(frozen=True)
class LocateResult:
    """What ``liteparity.locate`` returns."""

    model: str
    candidate: str
    samples: int
    layers: tuple[LayerRecord, ...]
    unmatched: tuple[str, ...] = ()
    sensitivity: tuple[dict[str, Any], ...] = ()
    seconds: dict[str, float] = field(default_factory=dict)
    #: what the sensitivity experiment measured and left out, its stopping reason and cost
    #: (``SensitivityRun.to_dict``); None when it did not run
    sensitivity_run: dict[str, Any] | None = None
    #: where the probes and variants ran: engine, nodes, shards, shard_rows, data, and what
    #: a fault retried (``Engine.describe``)
    engine: dict[str, Any] | None = None

    @property
    def first_jump(self) -> LayerRecord | None:
        return next((r for r in self.layers if r.jump), None)

    def by_impact(self) -> list[LayerRecord]:
        """Most harmful first: sensitivity, then the lowest SQNR."""

        def key(r: LayerRecord) -> tuple[float, float]:
            metric = r.local or r.propagated or {}
            sqnr = metric.get("sqnr_db")
            return (-(r.sensitivity or 0.0), sqnr if isinstance(sqnr, float) else math.inf)

        return sorted(self.layers, key=key)

    def to_dict(self) -> dict[str, Any]:
        jump = self.first_jump
        return {
            "model": self.model,
            "candidate": self.candidate,
            "samples": self.samples,
            "first_jump": jump.tensor_name if jump else None,
            "layers": [r.to_dict() for r in self.layers],
            "unmatched_tensors": list(self.unmatched),
            "sensitivity": list(self.sensitivity),
            "seconds": self.seconds,
            "sensitivity_run": self.sensitivity_run,
            "engine": self.engine,
        }

    def to_json(self, indent: int | None = 2) -> str:
        return strict_json(self.to_dict(), indent)

    def to_csv(self) -> str:
        """QuantizationDebugger's columns (local error), then liteparity's."""
        ours = (
            "keras_layer",
            "local_sqnr_db",
            "propagated_mean_squared_error",
            "propagated_max_abs_error",
            "propagated_sqnr_db",
            "conversion_sqnr_db",
            "rmse_over_scale",
            "saturation",
            "sensitivity",
            "jump",
        )
        out = io.StringIO()
        writer = csv.DictWriter(out, [*DEBUGGER_COLUMNS, *ours])
        writer.writeheader()
        for r in self.layers:
            local, prop, conv = r.local or {}, r.propagated or {}, r.conversion or {}
            writer.writerow(
                {
                    "op_name": r.op,
                    "tensor_idx": r.tensor_index,
                    **{
                        k: local.get(k)
                        for k in (
                            "num_elements",
                            "stddev",
                            "mean_error",
                            "max_abs_error",
                            "mean_squared_error",
                        )
                    },
                    "scale": r.scale,
                    "zero_point": r.zero_point,
                    "tensor_name": r.tensor_name,
                    "keras_layer": r.keras_layer,
                    "local_sqnr_db": local.get("sqnr_db"),
                    "propagated_mean_squared_error": prop.get("mean_squared_error"),
                    "propagated_max_abs_error": prop.get("max_abs_error"),
                    "propagated_sqnr_db": prop.get("sqnr_db"),
                    "conversion_sqnr_db": conv.get("sqnr_db"),
                    "rmse_over_scale": r.rmse_over_scale,
                    "saturation": r.saturation,
                    "sensitivity": r.sensitivity,
                    "jump": r.jump,
                }
            )
        return out.getvalue()
