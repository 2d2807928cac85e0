"""Child-process entry: load a Keras 2 ``.h5`` with ``tf_keras`` and save it as a SavedModel.

Run as ``python -m liteparity.keras2 MODEL.h5 OUT_DIR`` with ``TF_USE_LEGACY_KERAS=1`` set, so
that the parent process keeps whatever Keras the user has.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from liteparity.sources import LAYERS_FILE, keras_layer_names


def main(src: str, dst: str) -> None:
    import tensorflow as tf
    import tf_keras

    try:  # quantization-aware models need tfmot's custom layers to deserialize
        import tensorflow_model_optimization as tfmot

        scope = tfmot.quantization.keras.quantize_scope()
    except ImportError:
        import contextlib

        scope = contextlib.nullcontext()
    with scope:
        model = tf_keras.models.load_model(src, compile=False)
    specs = [tf.TensorSpec(t.shape, t.dtype, name=t.name.split(":")[0]) for t in model.inputs]

    @tf.function(input_signature=specs)
    def serve(*args):  # type: ignore[no-untyped-def]
        out = model(list(args) if len(args) > 1 else args[0], training=False)
        outs = out if isinstance(out, (list, tuple)) else [out]
        return {f"output_{i}": o for i, o in enumerate(outs)}

    tf.saved_model.save(model, dst, signatures={"serving_default": serve})
    names = keras_layer_names(model)
    (Path(dst) / LAYERS_FILE).write_text(json.dumps(names))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
