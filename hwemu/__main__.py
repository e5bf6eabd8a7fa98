"""``python -m hwemu``: the ``hwemu`` command."""
import sys

from .cli import main

sys.exit(main())
