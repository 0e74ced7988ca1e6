"""``python -m legion``: the same as the ``legion`` command."""

from legion.cli.main import main

main()
