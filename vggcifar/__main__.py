"""``python -m vggcifar``: see :mod:`vggcifar.cli`."""

import sys

from .cli import main

sys.exit(main())
