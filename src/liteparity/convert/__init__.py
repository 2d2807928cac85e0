"""Stage 2, conversion: recipes (data) and the one ``convert`` that applies any of them with the
TF converter; re-quantization of a calibrated model; quantization-aware training; the
candidates a run measures. Float ``.tflite`` sources are quantized with ai-edge-quantizer
instead (``aeq``), after ``tflite_prep`` makes them acceptable to it; ``runnable`` says in one
line why LiteRT refuses a quantized model; ``flatbuffer`` reads and writes ``.tflite`` objects;
``process`` runs conversions in a converter process (a converter crash costs one recipe).

May import: ``errors``, ``specs``, ``progress``, ``timings``, ``_tf``, ``files``, ``data``,
``runtime``, ``reference``.
"""
