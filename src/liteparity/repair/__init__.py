"""Stage 6, repair: ``fix`` (the smallest or fastest model within the budget, found by a ranked
search and checked on held-out data) and ``compare-qat``.

May import: ``diagnose`` and lower.
"""
