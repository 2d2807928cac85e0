"""A tiny real detector ending in LiteRT's ``TFLite_Detection_PostProcess`` op, built here:
no such model ships offline. A conv net predicts box encodings and class scores for 64
anchors; the post-process is declared the way the TF Object Detection API exports it (a
``tf.function`` whose ``experimental_implements`` signature the converter turns into the
custom op), so LiteRT runs its real kernel: decoding, non-max suppression, top detections.
Weights are seeded, not trained: the boxes and classes are arbitrary but real outputs of
the op, which is what matching reference and candidate detections needs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.shared_models import photos

SIZE, ANCHORS, CLASSES = 32, 64, 3

#: the op's attributes (those of an SSD MobileNet export, scaled down)
_IMPLEMENTS = " ".join(
    [
        'name: "TFLite_Detection_PostProcess"',
        'attr { key: "max_detections" value { i: 10 } }',
        'attr { key: "max_classes_per_detection" value { i: 1 } }',
        'attr { key: "detections_per_class" value { i: 100 } }',
        'attr { key: "use_regular_nms" value { b: false } }',
        'attr { key: "nms_score_threshold" value { f: 0.3 } }',
        'attr { key: "nms_iou_threshold" value { f: 0.5 } }',
        'attr { key: "y_scale" value { f: 10.0 } }',
        'attr { key: "x_scale" value { f: 10.0 } }',
        'attr { key: "h_scale" value { f: 5.0 } }',
        'attr { key: "w_scale" value { f: 5.0 } }',
        f'attr {{ key: "num_classes" value {{ i: {CLASSES} }} }}',
    ]
)


def images(count: int, offset: int = 0) -> np.ndarray:
    """Real photos at the detector's input size, in [0, 1]."""
    return photos(count, SIZE, 0.0, 1.0, offset)


def build(folder: Path) -> tuple[Path, Path]:
    """The float detector and its int8 conversion (calibrated on photos not evaluated)."""
    from liteparity._tf import import_tensorflow, quiet

    tf = import_tensorflow()
    rng = np.random.default_rng(0)
    grid = (np.arange(8) + 0.5) / 8
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    quarter = np.full(ANCHORS, 0.25)
    anchors = np.stack([yy.ravel(), xx.ravel(), quarter, quarter], 1).astype(np.float32)
    k1 = tf.constant(rng.normal(size=(3, 3, 3, 8)).astype(np.float32) * 0.5)
    kb = tf.constant(rng.normal(size=(1, 1, 8, 4)).astype(np.float32) * 0.5)
    weights = rng.normal(size=(1, 1, 8, CLASSES + 1))
    # each class's weights sum to 0: its score follows the image, not a constant bias
    kc = tf.constant((weights - weights.mean(axis=2, keepdims=True)).astype(np.float32))

    @tf.function(experimental_implements=_IMPLEMENTS)
    def post_process(box_encodings, class_predictions, anchors):  # type: ignore[no-untyped-def]
        # the converter replaces this body by the op; TensorFlow itself never runs it
        zero = tf.constant(0.0, dtype=tf.float32)
        return zero, zero, zero, zero

    @tf.function(input_signature=[tf.TensorSpec([1, SIZE, SIZE, 3], tf.float32, name="image")])
    def detect(image):  # type: ignore[no-untyped-def]
        h = tf.nn.relu(tf.nn.conv2d(image - 0.5, k1, 4, "SAME"))
        box = tf.reshape(tf.nn.conv2d(h, kb, 1, "SAME"), [1, ANCHORS, 4])
        logits = tf.reshape(tf.nn.conv2d(h, kc, 1, "SAME") - 1.0, [1, ANCHORS, CLASSES + 1])
        return post_process(box, tf.sigmoid(logits), tf.constant(anchors))

    module = tf.Module()
    module.detect = detect
    saved = folder / "detector_savedmodel"
    with quiet():
        tf.saved_model.save(
            module, str(saved), signatures={"serving_default": detect.get_concrete_function()}
        )
    calibration = images(16, 40)

    def convert(int8: bool) -> bytes:
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
        converter.allow_custom_ops = True
        if int8:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ([calibration[i : i + 1]] for i in range(16))
        with quiet():
            content: bytes = converter.convert()
        return content

    paths = folder / "detector_float.tflite", folder / "detector_int8.tflite"
    for path, int8 in zip(paths, (False, True), strict=True):
        path.write_bytes(convert(int8))
    return paths
