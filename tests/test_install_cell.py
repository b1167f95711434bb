"""The notebooks' install cell: where it installs from, and what it says when that fails."""

import importlib.util
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def install_cell(name):
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    return next(cell.source for cell in notebook.cells if cell.get("id") == "install")


@pytest.mark.parametrize("name", ["01_data", "08_sweeps"])
def test_a_failed_install_says_what_failed_and_what_to_do(name, tmp_path, monkeypatch):
    unreachable = (tmp_path / "no-such-repository").as_uri()
    source = install_cell(name).replace(
        'PROJECT_HOME = "https://github.com/vggcifar/vggcifar"', f'PROJECT_HOME = "{unreachable}"'
    )
    assert unreachable in source  # the cell takes the address from its one PROJECT_HOME line
    elsewhere = tmp_path / "colab" / "content"  # no clone of the repository above it
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "vggcifar" else real_find_spec(name, *a)
    )
    with pytest.raises(RuntimeError) as failure:
        exec(compile(source, "install", "exec"), {})
    message = str(failure.value)
    assert "This failed:" in message and unreachable in message
    assert "open this notebook from a clone" in message and "set PROJECT_HOME" in message
