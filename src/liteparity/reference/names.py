"""Map TFLite tensor names back to the Keras layers that produced them.

The converter names a tensor after the TF ops it came from, fused with ``;``
(``demo_cnn_1/conv_a_1/Relu;demo_cnn_1/conv_a_1/BiasAdd;...``). The first fused part names the
op whose output the tensor is, so its layer is the tensor's layer.

How a layer's name appears in that path depends on who traced the model:
- **Keras 3** puts every layer (and the model) under a uniquified scope: exactly one ``_<k>`` is
  appended, always (``dense`` → ``dense_1``, ``dense_1`` → ``dense_1_2``). The segment must lose
  that suffix *before* it is matched: matched as it is, ``dense_1`` (the first Dense layer's
  scope) would be taken for the second layer, ``dense_1``.
- **tf_keras** (Keras 2) uses the layer name as it is; tfmot wraps layers as ``quant_<name>``.
  A layer called a second time gets ``<name>_<k>``, so a suffix is stripped only when the name
  as it is is no layer.
``LayerNames`` carries the names and which of the two conventions applies.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from typing import Any

_SUFFIX = re.compile(r"_\d+$")


class LayerNames(frozenset[str]):
    """The reference's Keras layer names, and whether its tensors' scopes carry Keras 3's
    uniquifying suffix (``suffixed``). A plain frozenset of names means tf_keras's rule."""

    suffixed: bool

    def __new__(cls, names: Iterable[str] = (), *, suffixed: bool = False) -> LayerNames:
        self = super().__new__(cls, names)
        self.suffixed = suffixed
        return self

    def __reduce__(self) -> Any:  # keep ``suffixed`` across pickling (worker processes)
        return (_layer_names, (sorted(self), self.suffixed))

    def to_dict(self) -> dict[str, Any]:
        return {"names": sorted(self), "suffixed": self.suffixed}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LayerNames:
        return cls(d["names"], suffixed=bool(d["suffixed"]))


def _layer_names(names: list[str], suffixed: bool) -> LayerNames:
    return LayerNames(names, suffixed=suffixed)


def _candidates(segment: str, suffixed: bool) -> list[str]:
    """The layer names a scope segment may stand for, in the order to try them."""
    stripped = _SUFFIX.sub("", segment)
    if suffixed:
        return [stripped] if stripped != segment else []
    return [segment, stripped]


def keras_layer(tensor_name: str, layers: Collection[str]) -> str | None:
    """The Keras layer (one of ``layers``) that produced ``tensor_name``, or None."""
    if not layers:
        return None
    suffixed = isinstance(layers, LayerNames) and layers.suffixed
    first = tensor_name.split(";")[0]
    for segment in first.split("/"):
        for unwrapped in dict.fromkeys((segment, segment.removeprefix("quant_"))):
            for candidate in _candidates(unwrapped, suffixed):
                if candidate in layers:
                    return candidate
    return None


def label(tensor_name: str, layers: Collection[str]) -> str:
    """What to call a tensor in a report: its Keras layer, else its first fused name."""
    return keras_layer(tensor_name, layers) or tensor_name.split(";")[0]
