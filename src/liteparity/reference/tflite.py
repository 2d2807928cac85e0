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
        from liteparity.runtime.worker import Worker

        self.content = read_tflite(path)
        self.worker = Worker(Path(path).name, self.content)
        try:
            info = self.worker.info
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
        self.worker.submit(shared if shared is not None else inputs)
        return self.worker.receive()

    def warm_up(self, inputs: list[np.ndarray]) -> None:
        self.worker.tune_batch_size(inputs)

    def close(self) -> None:
        self.worker.close()
