"""A float ``.tflite`` as the reference: it runs in a worker process like any candidate."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from liteparity._litert import unset_variables
from liteparity.data.binding import IOSpec
from liteparity.errors import ModelError
from liteparity.reference.base import Source, read_tflite

if TYPE_CHECKING:
    from liteparity.runtime.model_jobs import RunModel


class TFLiteSource(Source):
    """A float ``.tflite`` used as the reference; it runs in a worker process like any
    candidate, so a crashing file cannot take liteparity down."""

    format = "tflite"
    convertible = False

    def __init__(self, path: str) -> None:
        super().__init__(path)
        from liteparity.runtime.worker import Worker

        self.content = read_tflite(path)
        self.worker = Worker(Path(path).name)
        try:
            info = self.worker.start(self.job()).get()
        except BaseException:
            self.worker.close()
            raise
        unset = unset_variables(self.content)  # read once LiteRT has loaded it
        if unset:  # the reference itself would be garbage: nothing to compare against
            more = ", ..." if len(unset) > 3 else ""
            self.worker.close()
            raise ModelError(
                f"{Path(path).name} reads {len(unset)} resource variable(s) that no op assigns "
                f"({', '.join(unset[:3])}{more}): its outputs are undefined; convert the source "
                "again with its variables frozen (from the loaded signature, or model.export())"
            )
        self.io = IOSpec(
            input_names=tuple(i.name for i in info.inputs),
            input_shapes=tuple(i.shape for i in info.inputs),
            input_dtypes=tuple(
                "float32" if i.quantization is not None else i.dtype for i in info.inputs
            ),
            output_names=tuple(o.name for o in info.outputs),
        )
        self._bytes_per_sample: int = info.bytes_per_sample

    def predict(self, inputs: list[np.ndarray], shared: Any = None) -> list[np.ndarray]:
        outputs: list[np.ndarray] = self.worker.feed(shared if shared is not None else inputs).get()
        return outputs

    def bytes_per_sample(self) -> int:
        return self._bytes_per_sample

    def job(self) -> RunModel:
        from liteparity.runtime.model_jobs import RunModel

        return RunModel(self.content, tune=True)

    def warm_up(self, inputs: list[np.ndarray]) -> None:
        self.predict(inputs)  # the first batch fed also picks the batch size (``tune``)

    def float64_twin(self) -> KernelTwin:
        """A .tflite has no float64 graph: its noise floor is the same float32 graph run by
        a second implementation, LiteRT's builtin kernels instead of XNNPack (different
        accumulation orders and, for convolutions, algorithms). Two sound float32 runs of
        one graph differ by about what float32 arithmetic itself costs; ``ModelError`` when
        the builtin kernels cannot run the model (a custom op only a delegate resolves)."""
        return KernelTwin(self.content, Path(self.path).name)

    def close(self) -> None:
        self.worker.close()


class KernelTwin:
    """The reference ``.tflite`` run with LiteRT's builtin kernels, in its own worker."""

    method = "kernels"

    def __init__(self, content: bytes, name: str) -> None:
        from liteparity.errors import LiteparityError, ModelError, first_line
        from liteparity.runtime.model_jobs import RunModel
        from liteparity.runtime.worker import Worker

        self._worker = Worker(f"{name} (builtin kernels)")
        try:
            info = self._worker.start(RunModel(content, builtin_kernels=True)).get()
            # kernels are resolved when tensors are allocated: on the first batch
            self.predict(
                [np.zeros((1, *(max(d, 1) for d in i.sample_shape)), i.dtype) for i in info.inputs]
            )
        except LiteparityError as exc:
            self._worker.close()
            raise ModelError(
                f"the builtin kernels cannot run the model: {first_line(exc)}"
            ) from exc

    def predict(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        outputs: list[np.ndarray] = self._worker.feed(inputs).get()
        return outputs

    def close(self) -> None:
        self._worker.close()
