"""The converter's failure as one line: the op's own reason, not its MLIR location or the
generic "failed while converting: 'main'" that follows every failure."""

from __future__ import annotations

from liteparity.convert.converter import converter_message

# Shaped as TF 2.21's ConverterError texts (a Keras 3 argmax needs a Flex op).
FLEX = (
    "Could not translate MLIR to FlatBuffer.<unknown>:0: error: loc(callsite(fused["
    '"BitwiseAnd:", "model/arg_max/BitwiseAnd@__inference_call_42"] at fused['
    '"StatefulPartitionedCall:", "StatefulPartitionedCall_1"])): '
    "'tf.BitwiseAnd' op is neither a custom op nor a flex op\n"
    "<unknown>:0: error: failed while converting: 'main': \n"
    "Some ops are not supported by the native TFLite runtime\nTF Select ops: BitwiseAnd"
)


def test_the_ops_reason_not_its_location_nor_the_generic_line() -> None:
    assert converter_message(RuntimeError(FLEX)) == (
        "'tf.BitwiseAnd' op is neither a custom op nor a flex op"
    )
    located = "loc(\"x\"): error: 'tf.Foo' op requires bar\nerror: failed while converting: 'main'"
    assert converter_message(RuntimeError(located)) == "'tf.Foo' op requires bar"


def test_a_plain_reason_and_a_text_without_one() -> None:
    hard_swish = (
        "<unknown>:0: error: Quantization to 16x8-bit not yet supported for op: 'HARD_SWISH'."
    )
    assert converter_message(RuntimeError(hard_swish)) == (
        "Quantization to 16x8-bit not yet supported for op: 'HARD_SWISH'."
    )
    assert converter_message(RuntimeError("plain failure\nmore")) == "plain failure"
