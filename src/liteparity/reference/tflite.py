"""A float ``.tflite`` as the reference: it runs in a worker process like any candidate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from liteparity.data.binding import IOSpec
from liteparity.reference.base import Source, read_tflite


class TFLiteSource(Source):
    """A float ``.tflite`` used as the reference; it runs in a worker process like any
    candidate, so a crashing file cannot take liteparity down."""

    format = "tflite"
    convertible = False

    def __init__(self, path: str) -> None:
        super().__init__(path)
        from liteparity.runtime.model_jobs import RunModel
        from liteparity.runtime.worker import Worker

        self.content = read_tflite(path)
        self.worker = Worker(Path(path).name)
        try:
            info = self.worker.start(RunModel(self.content, tune=True)).get()
        except BaseException:
            self.worker.close()
            raise
        self.io = IOSpec(
            input_names=tuple(i.name for i in info.inputs),
            input_shapes=tuple(i.shape for i in info.inputs),
            input_dtypes=tuple(
                "float32" if i.quantization is not None else i.dtype for i in info.inputs
            ),
            output_names=tuple(o.name for o in info.outputs),
        )

    def predict(self, inputs: list[np.ndarray], shared: Any = None) -> list[np.ndarray]:
        outputs: list[np.ndarray] = self.worker.feed(shared if shared is not None else inputs).get()
        return outputs

    def warm_up(self, inputs: list[np.ndarray]) -> None:
        self.predict(inputs)  # the first batch fed also picks the batch size (``tune``)

    def close(self) -> None:
        self.worker.close()
