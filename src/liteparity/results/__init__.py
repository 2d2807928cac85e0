"""What the stages return, as frozen dataclasses with ``to_dict``: data only, no rendering and
no computation (the JSON output is these dicts).

May import: ``errors`` and ``plain`` only.
"""
