"""Stage 1, the reference: load the user's model per format (``.keras``, Keras 2 ``.h5``,
SavedModel, TF1 ``.pb``, float ``.tflite``) and run it.

May import: ``errors``, ``specs``, ``_tf``, ``data``, ``runtime``. TensorFlow only through
``_tf``, lazily.
"""
