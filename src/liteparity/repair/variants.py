"""``fix``'s variants for a float ``.tflite`` source, made with ai-edge-quantizer.

The same search as for a TensorFlow source, other variants: the plain ones are AEQ recipes
(int8, int16 activations, weight-only and dynamic int8/int4 weights, float16, the float model
itself); the selective ones are AEQ's int8 with op groups kept in float, an op group being
one weighted op (convolution, fully connected), named by its output tensor. Groups are ranked
by re-quantizing with each one kept in float and measuring the result on the search rows: the
sensitivity of each group, for AEQ's own quantization.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from liteparity.convert.flatbuffer import ints, op_name, read_model, tensor_name
from liteparity.convert.produce import Producer
from liteparity.convert.recipes import aeq_stable, resolve
from liteparity.data.prepare import PreparedData
from liteparity.errors import ConversionError, InterpreterError
from liteparity.layerwise.sensitivity import REUSED
from liteparity.progress import Progress
from liteparity.reference.base import Source

#: Tried as they are, smallest first.
PLAIN = (
    "int8",
    "int16x8",
    "aeq:weight_only_wi4_afp32",
    "aeq:dynamic_wi4_afp32",
    "dynamic",
    "aeq:weight_only_wi8_afp32",
    "float16",
    "float32",
)
#: The ones that compute in integers.
INTEGER = ("int8", "int16x8")
#: Ops whose weights make a group worth keeping in float.
WEIGHTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")


class AEQVariants:
    """The variants of one float ``.tflite``, prepared and calibrated once."""

    def __init__(self, source: Source, prepared: PreparedData, progress: Progress) -> None:
        self.producer = Producer(
            source, prepared.calibration, prepared.calibration_batches, progress=progress
        )
        self._progress = progress
        #: the int8 variants of the groups ``ranking`` found least harmful in float, which
        #: the search asks for again (AEQ takes seconds per variant)
        self._kept: dict[tuple[str, ...], bytes] = {}

    def names(self, integer_only: bool) -> tuple[str, ...]:
        return INTEGER if integer_only else PLAIN

    def float_model(self) -> bytes:
        return self.producer.float_twin()

    def plain(self, name: str) -> bytes:
        """The variant ``name`` (``ConversionError`` when AEQ or LiteRT refuses it)."""
        if name == "float32":
            return self.float_model()
        return self.producer.make(resolve([name], self.producer.source, None)[0])

    def int8(self, float_ops: list[str]) -> bytes:
        """AEQ's int8 with the ops writing ``float_ops`` kept in float."""
        kept = self._kept.get(tuple(float_ops))
        return kept if kept is not None else self.producer.make(aeq_stable("int8"), float_ops)

    def ranking(
        self, measure: Callable[[bytes], dict[str, Any]], int8_drop: float
    ) -> list[tuple[str, tuple[str, ...]]]:
        """The groups whose float version drops less than plain int8, least drop first;
        a group whose variant AEQ or LiteRT refuses is left out."""
        groups = self._groups()
        drops: list[tuple[float, str]] = []
        for done, name in enumerate(groups):
            self._progress("sensitivity per op group", done, len(groups))
            try:
                content = self.int8([name])
                result = measure(content)
            except (ConversionError, InterpreterError):
                continue
            if result["drop"] is not None and result["drop"] < int8_drop:
                drops.append((result["drop"], name))
                best = sorted(drops)[:REUSED]
                if (result["drop"], name) in best:
                    self._kept[(name,)] = content
                self._kept = {(n,): self._kept[(n,)] for _, n in best if (n,) in self._kept}
        self._progress("sensitivity per op group", len(groups), len(groups))
        return [(name, (name,)) for _, name in sorted(drops)]

    def _groups(self) -> list[str]:
        """The output tensor of each weighted op of the prepared model, in graph order."""
        model = read_model(self.producer.quantizer().prepared.content)
        graph = model.subgraphs[0]
        return [
            tensor_name(graph.tensors[ints(op.outputs)[0]])
            for op in graph.operators or []
            if op_name(model, op) in WEIGHTED and ints(op.outputs)
        ]
