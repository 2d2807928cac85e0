"""A model loaded in another process, seen from this one by its ``SourceFacts``.

``locate`` needs TensorFlow only to convert, to quantize and to run the Keras model's layers;
its converter process imports TensorFlow for the first two anyway. Loading the model there
too (``DescribeJob``, ``LayerOutputsJob`` in ``convert.process``) spares this process its own
TensorFlow import (seconds of a core, on a machine whose other core is converting), and with
``--resume`` the facts come from the cache: a repeated run imports TensorFlow nowhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from liteparity.errors import InternalError
from liteparity.reference.base import Source, SourceFacts


class DescribedSource(Source):
    """A source whose facts were read where it is loaded; ``layer_outputs`` asks there."""

    def __init__(
        self,
        facts: SourceFacts,
        layer_outputs: Callable[[list[np.ndarray]], dict[str, np.ndarray]],
    ) -> None:
        super().__init__(facts.path)
        self.facts = facts
        self.io = facts.io
        self.format = facts.format
        self.convertible = facts.convertible
        self.compares_layers = facts.compares_layers
        self._layer_outputs = layer_outputs

    def layer_names(self) -> frozenset[str]:
        return self.facts.layer_names

    def output_layers(self) -> list[str]:
        return list(self.facts.output_layers)

    def layer_outputs(self, inputs: list[np.ndarray]) -> dict[str, np.ndarray]:
        return self._layer_outputs(inputs)

    def predict(self, inputs: list[np.ndarray], shared: Any = None) -> list[np.ndarray]:
        raise InternalError(f"{self.path} is loaded in the converter process, not here")
