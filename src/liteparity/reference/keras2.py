"""Child-process entries for Keras 2 models (``tf_keras``), run with ``TF_USE_LEGACY_KERAS=1``
so that the parent process keeps whatever Keras the user has:

    python -m liteparity.reference.keras2 MODEL.h5 OUT_DIR                 # export as a SavedModel
    python -m liteparity.reference.keras2 qat MODEL.h5 DATA.npz OUT.tflite EPOCHS
                                                                  # quantization-aware training
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from liteparity.reference.base import LAYERS_FILE, keras_layer_names


def _load(src: str):  # type: ignore[no-untyped-def]
    import tf_keras

    try:  # quantization-aware models need tfmot's custom layers to deserialize
        import tensorflow_model_optimization as tfmot

        scope = tfmot.quantization.keras.quantize_scope()
    except ImportError:
        import contextlib

        scope = contextlib.nullcontext()
    with scope:
        return tf_keras.models.load_model(src, compile=False)


def main(src: str, dst: str) -> None:
    import tensorflow as tf

    model = _load(src)
    specs = [tf.TensorSpec(t.shape, t.dtype, name=t.name.split(":")[0]) for t in model.inputs]

    @tf.function(input_signature=specs)
    def serve(*args):  # type: ignore[no-untyped-def]
        out = model(list(args) if len(args) > 1 else args[0], training=False)
        outs = out if isinstance(out, (list, tuple)) else [out]
        return {f"output_{i}": o for i, o in enumerate(outs)}

    tf.saved_model.save(model, dst, signatures={"serving_default": serve})
    names = keras_layer_names(model)
    (Path(dst) / LAYERS_FILE).write_text(json.dumps(names))


def qat(src: str, data: str, dst: str, epochs: int, copy_dst: str | None = None) -> None:
    """Fine-tune with fake quantization (tfmot), then convert with the learned ranges. With
    ``copy_dst``, also seed 003's workaround: the trained weights copied into the float model,
    then post-training quantized on the same data (``x`` as the representative dataset)."""
    import numpy as np
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot

    model = _load(src)
    with np.load(data, allow_pickle=False) as d:
        x, y = d["x"], d["y"]
    tf.keras.utils.set_random_seed(0)
    quantized = tfmot.quantization.keras.quantize_model(model)
    width = int(np.prod(quantized.outputs[0].shape[1:]))
    if np.issubdtype(y.dtype, np.integer):
        loss = "sparse_categorical_crossentropy" if width > 1 else "binary_crossentropy"
    else:
        loss = "mse"
    quantized.compile(tf.keras.optimizers.Adam(1e-4), loss)
    quantized.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    converter = tf.lite.TFLiteConverter.from_keras_model(quantized)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    Path(dst).write_bytes(converter.convert())
    if copy_dst is None:
        return
    for layer in model.layers:  # the QAT wrappers hold the trained kernels and biases
        if layer.weights:
            trained = {
                w.name.split("/")[-1]: w.numpy()
                for w in quantized.get_layer("quant_" + layer.name).weights
            }
            layer.set_weights([trained[w.name.split("/")[-1]] for w in layer.weights])
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x[i : i + 1]] for i in range(min(len(x), 200)))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    Path(copy_dst).write_bytes(converter.convert())


if __name__ == "__main__":
    if sys.argv[1] == "qat":
        qat(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), *sys.argv[6:7])
    else:
        main(sys.argv[1], sys.argv[2])
