"""``python -m liteparity`` is the ``liteparity`` command."""

from liteparity.cli.app import main

main()
