"""Map TFLite tensor names back to the Keras layers that produced them.

The converter names a tensor after the TF ops it came from, fused with ``;``
(``demo_cnn_1/conv_a_1/Relu;demo_cnn_1/conv_a_1/BiasAdd;...``): Keras 3 adds ``_1`` to model
and layer scopes, tfmot wraps layers as ``quant_<name>``. The first fused part names the op
whose output the tensor is, so its layer is the tensor's layer.
"""

from __future__ import annotations

import re
from collections.abc import Collection

_SUFFIX = re.compile(r"_\d+$")


def keras_layer(tensor_name: str, layers: Collection[str]) -> str | None:
    """The Keras layer (one of ``layers``) that produced ``tensor_name``, or None."""
    if not layers:
        return None
    first = tensor_name.split(";")[0]
    for segment in first.split("/"):
        for candidate in (segment, segment.removeprefix("quant_")):
            if candidate in layers:
                return candidate
            stripped = _SUFFIX.sub("", candidate)
            if stripped in layers:
                return stripped
    return None


def label(tensor_name: str, layers: Collection[str]) -> str:
    """What to call a tensor in a report: its Keras layer, else its first fused name."""
    return keras_layer(tensor_name, layers) or tensor_name.split(";")[0]
