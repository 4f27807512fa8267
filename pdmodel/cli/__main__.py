"""``python -m pdmodel.cli``: the same as the ``pdmodel`` command."""

from . import main

main()
