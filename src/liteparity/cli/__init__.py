"""The ``liteparity`` command: a thin shell over the Python API.

``app`` is the typer app (errors, ``--debug``, the entry point); one module per command
(``check`` for check and explain, ``locate``, ``fix``, ``compare_qat``, ``qparams``, ``demo``);
``options`` declares the option groups several commands share, once, and builds their specs;
``groups`` splices a group's options into a command; ``output`` is where results go
(terminal, ``--json PATH`` with ``-`` for stdout, ``--report``).

May import anything, lazily: ``liteparity --help`` must stay fast.
"""
