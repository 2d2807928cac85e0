"""The ``liteparity`` command: a thin shell over the Python API.

May import anything, lazily: ``liteparity --help`` must stay fast.
"""
