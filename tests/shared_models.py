"""The real MediaPipe models in ``../shared/models`` and real photos to feed them, offline.

Photos come from the scikit-image and scikit-learn wheels (astronaut, coffee, chelsea, ...):
each is cropped (centre, left, right), optionally mirrored, resized to the model's input and
scaled to the range its README gives.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

MODELS_DIR = Path(__file__).resolve().parents[2] / "shared" / "models"


@dataclass(frozen=True)
class SharedModel:
    file: str
    size: int  # square RGB input
    low: float  # the input's real range
    high: float

    @property
    def path(self) -> Path:
        path = MODELS_DIR / self.file
        if not path.exists():
            pytest.skip(f"{path} is not available")
        return path

    def photos(self, count: int, offset: int = 0) -> np.ndarray:
        """``count`` real photos as a float32 batch the model takes; ``offset`` skips the
        first ones (disjoint calibration and evaluation samples)."""
        return photos(count, self.size, self.low, self.high, offset)


MODELS = {
    "face_detection_short_range": SharedModel("face_detection_short_range.tflite", 128, -1, 1),
    "hand_landmark_lite": SharedModel("hand_landmark_lite.tflite", 224, 0, 1),
    "selfie_segmentation": SharedModel("selfie_segmentation.tflite", 256, 0, 1),
}

_SKIMAGE = ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "immunohistochemistry")
_CROPS = ("centre", "left", "right")


def _base_images() -> list[np.ndarray]:
    import skimage.data
    from sklearn.datasets import load_sample_images

    images = [getattr(skimage.data, name)() for name in _SKIMAGE]
    images += list(load_sample_images().images)
    return [np.repeat(im[..., None], 3, axis=2) if im.ndim == 2 else im[..., :3] for im in images]


def trained_application(arch: str, x: np.ndarray, y: np.ndarray, **keywords: float) -> Any:
    """A Keras application (``weights=None``) trained briefly on ``x, y``. Its batch norms
    follow the training batches with momentum 0.5 instead of 0.99, so a few dozen steps leave
    moving statistics the model predicts well with (at 0.99 its eval-mode softmax stays nearly
    uniform: a degenerate model, whose near-ties any quantization flips)."""
    import keras

    keras.utils.set_random_seed(0)
    model = getattr(keras.applications, arch)(
        input_shape=x.shape[1:], weights=None, classes=int(y.max()) + 1, **keywords
    )
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.5
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    return model


def photo_classes(count: int, classes: int) -> np.ndarray:
    """Labels for ``photos(count, ...)``: which photo sample k was cropped from, modulo
    ``classes`` (something a model can learn, so a quantized one can flip it)."""
    return (np.arange(count) % len(_base_images()) % classes).astype(np.int64)


def photos(count: int, size: int, low: float, high: float, offset: int = 0) -> np.ndarray:
    """Sample ``k`` is photo ``k % n``, cropped square by the ``k // n``-th variant (centre,
    left, right; then the same mirrored), resized to ``size`` and scaled to [low, high]."""
    from PIL import Image

    images = _base_images()
    out = np.empty((count, size, size, 3), np.float32)
    for j in range(count):
        k = j + offset
        image = images[k % len(images)]
        variant = (k // len(images)) % (2 * len(_CROPS))
        h, w = image.shape[:2]
        side = min(h, w)
        left = {"centre": (w - side) // 2, "left": 0, "right": w - side}[_CROPS[variant % 3]]
        top = (h - side) // 2
        crop = image[top : top + side, left : left + side]
        if variant >= len(_CROPS):
            crop = crop[:, ::-1]
        resized = Image.fromarray(np.ascontiguousarray(crop)).resize((size, size), Image.BILINEAR)
        out[j] = low + (high - low) * (np.asarray(resized, np.float32) / 255.0)
    return out
