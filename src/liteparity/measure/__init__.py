"""Stage 3, measurement: streaming statistics (one implementation of every error statistic),
output and task metrics, the evaluation loop, and ``check`` (convert, evaluate, compare).

May import: ``errors``, ``specs``, ``progress``, ``timings``, ``files``, ``plain``, ``results``,
``data``, ``runtime``, ``reference``, ``convert``.
"""
