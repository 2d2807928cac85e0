"""The LiteRT side: ``LiteModel`` (one interpreter, fed and read in real values), the anatomy of
a ``.tflite``, flatbuffer surgery, shared-memory batches, and the worker jobs protocol
(``jobs``) with the workers that run jobs: a child process each, in isolation (``worker``), or
the calling process (``jobs.InProcessWorker``), or actors on a Ray cluster (``ray_engine``, the
one module that imports ``ray``, lazily); ``engine`` picks between local and Ray.

May import: ``errors``, ``plain``, ``qparams``, ``_litert``, ``data.binding``. Never TensorFlow:
workers start fast.
"""
