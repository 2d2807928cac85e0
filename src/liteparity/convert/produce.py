"""Making a run's recipes: each by its engine, the TF converter or ai-edge-quantizer.

One ``Producer`` serves one run: AEQ recipes share one ``TFLiteQuantizer``, so the float model
is prepared once and calibrated once (from the run's calibration batches) whatever the number
of recipes, and every AEQ result is loaded in a worker process before it is kept (a model
LiteRT refuses, or crashes on, is one ``ConversionError`` line). The float model AEQ starts
from is the ``.tflite`` source itself, or a TensorFlow source's float32 conversion; a result
keeps the source's interface (a signature added for AEQ is removed again). ``ahead`` starts
every TF conversion the run's recipes need at once where the engine can (Ray).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from liteparity.convert.aeq import TFLiteQuantizer
from liteparity.convert.converter import convert
from liteparity.convert.process import Converter
from liteparity.convert.recipes import RECIPES, LegacySettings, Recipe
from liteparity.convert.runnable import check_runnable_in_worker
from liteparity.convert.tflite_prep import without_signature
from liteparity.data.prepare import Calibration
from liteparity.progress import Progress, no_progress
from liteparity.reference.base import Source
from liteparity.reference.tflite import TFLiteSource


class Producer:
    """The models of one source under any recipes, with the run's calibration data."""

    def __init__(
        self,
        source: Source,
        calibration: Calibration | None = None,
        batches: Sequence[list[np.ndarray]] = (),
        legacy: LegacySettings | None = None,
        progress: Progress = no_progress,
        check: Callable[[bytes, str], None] = check_runnable_in_worker,
        converter: Converter | None = None,
    ) -> None:
        self.source = source
        self._converter = converter
        self._calibration, self._batches, self._legacy = calibration, batches, legacy
        self._progress, self._check = progress, check
        self._quantizer: TFLiteQuantizer | None = None

    def ahead(self, recipes: Sequence[Recipe]) -> None:
        """Start the TF converter's work for ``recipes`` (AEQ's float model too, for a
        TensorFlow source) on the run's converter workers at once, where the engine has them
        (``Converter.ahead``); ``make`` then takes each result."""
        if self._converter is None:
            return
        converted = [r for r in recipes if r.engine == "tf" and not r.needs_training]
        if any(r.engine == "aeq" for r in recipes) and not isinstance(self.source, TFLiteSource):
            converted.append(RECIPES["float32"])
        self._converter.ahead(converted, self._calibration, self._legacy)

    def make(self, recipe: Recipe, float_ops: Sequence[str] = ()) -> bytes:
        """``recipe``'s model; ``ConversionError`` (one line) when it cannot be made or run.
        ``float_ops`` (AEQ recipes only) names the tensors whose ops stay in float."""
        if recipe.engine == "tf":
            return self._convert(recipe, self._calibration, self._legacy)
        quantizer = self.quantizer()
        content = quantizer.quantize(recipe.name, float_ops)
        return without_signature(content) if quantizer.prepared.signed else content

    def quantizer(self) -> TFLiteQuantizer:
        """The AEQ quantizer of the source's float model, made on first use."""
        if self._quantizer is None:
            self._quantizer = TFLiteQuantizer(
                self.float_model(),
                list(self._batches) or None,
                self._progress,
                check=self._check,
            )
        return self._quantizer

    def float_twin(self) -> bytes:
        """The float model the AEQ recipes' results compute in float, tensor for tensor, with
        the same interface as ``make``'s results: what they are compared with layer by layer."""
        prepared = self.quantizer().prepared
        return without_signature(prepared.content) if prepared.signed else prepared.content

    def float_model(self) -> bytes:
        """The float ``.tflite`` the AEQ recipes start from."""
        if isinstance(self.source, TFLiteSource):
            return self.source.content
        return self._convert(RECIPES["float32"])

    def _convert(
        self,
        recipe: Recipe,
        calibration: Calibration | None = None,
        legacy: LegacySettings | None = None,
    ) -> bytes:
        """The TF converter's model: in the run's converter process when there is one (a
        converter crash is then one recipe's error), else in this process."""
        if self._converter is not None:
            return self._converter.convert(self.source, recipe, calibration, legacy)
        return convert(self.source, recipe, calibration, legacy)
