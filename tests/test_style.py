"""The code is linted and formatted by ruff (settings in pyproject.toml): package, tests, tools,
bench and the notebooks' code cells.

To fix what these tests report: ``ruff check --fix .`` then ``ruff format .``; a notebook's
``# @save`` definitions then go to the package with ``python tools/saved_code.py --update``.
"""

import subprocess
import sys

import pytest

from conftest import REPO


def ruff(*args):
    """Run ruff from this Python's environment in the repository; its exit code and output."""
    done = subprocess.run([sys.executable, "-m", "ruff", *args], cwd=REPO, capture_output=True, text=True)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize(
    "command",
    [("check", "--output-format", "concise", "."), ("format", "--check", "--output-format", "concise", ".")],
    ids=["lint", "format"],
)
def test_ruff_finds_nothing(command):
    code, output = ruff(*command)
    assert code == 0, f"ruff {' '.join(command)} found:\n{output}"
