"""Stage 5, diagnosis: the evidence a run gathers (plain, serializable data), a rule registry,
the rules by family (``rules/``: pure functions of the evidence), and ``explain`` (run
``check`` gathering evidence, then diagnose from the evidence alone).

May import: ``layerwise`` and lower.
"""
