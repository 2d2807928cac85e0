"""Stage 2, conversion: recipes (data) and the one ``convert`` that applies any of them with the
TF converter; re-quantization of a calibrated model; quantization-aware training; the
candidates a run measures.

May import: ``errors``, ``_tf``, ``files``, ``data``, ``runtime``, ``reference``.
"""
