"""Stage 4, per layer: ``locate`` (local, propagated and conversion error per layer), tensor ↔
Keras layer names, and the sensitivity experiment (one layer group kept in float at a time).

May import: everything below it (``measure`` and lower).
"""
