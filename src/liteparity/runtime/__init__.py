"""The LiteRT side: ``LiteModel`` (one interpreter, fed and read in real values), the anatomy of
a ``.tflite``, flatbuffer surgery, shared-memory batches and the worker processes that run
candidates in isolation.

May import: ``errors``, ``plain``, ``qparams``, ``_litert``, ``data.binding``. Never TensorFlow:
workers start fast.
"""
