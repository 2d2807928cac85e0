"""``python -m liteparity`` is the ``liteparity`` command."""

from .cli import main

main()
