#!/usr/bin/env python3
"""The five notebooks in order: kept for old instructions; the command is now

    python -m vggcifar run [-p NAME VALUE]... [--run-dir DIR]

(see ``python -m vggcifar run --help``).
"""

import sys

from vggcifar.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
