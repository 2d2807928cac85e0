"""Stage 5, diagnosis: the evidence a run gathers, a rule registry, the rules (one per finding
id), and ``explain`` (check + evidence + findings).

May import: ``layerwise`` and lower.
"""
