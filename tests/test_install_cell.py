"""The notebooks' install cell: where it installs from, and what it says when that fails."""

import importlib.machinery
import importlib.util
import os
import subprocess
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks" / "en"
JAPANESE = NOTEBOOKS.parent / "ja"


def install_cell(name, folder=NOTEBOOKS):
    """The install part of a notebook's setup: a one-cell setup imports after it."""
    notebook = nbformat.read(folder / f"{name}.ipynb", as_version=4)
    source = next(cell.source for cell in notebook.cells if cell.get("id") == "install")
    return source.partition("\nimport vggcifar")[0]


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
    monkeypatch.setenv("VGGCIFAR_LANGUAGE", "en")  # the cell sets it: restored after the test
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "vggcifar" else real_find_spec(name, *a)
    )
    with pytest.raises(RuntimeError) as failure:
        exec(compile(source, "install", "exec"), {})
    message = str(failure.value)
    assert "This failed:" in message and unreachable in message
    assert "open this notebook from a clone" in message and "set PROJECT_HOME" in message


def every_install_cell():
    """(relative path, source) of the install cell of every notebook, solutions included."""
    for path in sorted(NOTEBOOKS.rglob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        for cell in notebook.cells:
            if cell.get("id") == "install":
                yield path.relative_to(NOTEBOOKS).as_posix(), cell.source


def test_no_install_cell_clones_into_the_working_folder():
    """A clone named vggcifar in Colab's working folder shadowed the package in later kernels."""
    cells = dict(every_install_cell())
    assert len(cells) == 17  # 00-08 and the eight solutions
    for name, source in cells.items():
        assert '"clone"' not in source and "-e" not in source.split(), name


def run_cell(name, monkeypatch, tmp_path, spec):
    """Execute ``name``'s install cell from a folder outside any clone, with ``find_spec('vggcifar')``
    answering ``spec``; returns the commands it ran (each succeeding)."""
    ran = []
    elsewhere = tmp_path / "content"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("VGGCIFAR_LANGUAGE", "en")  # the cell sets it: restored after the test
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda module, *a: spec if module == "vggcifar" else real_find_spec(module, *a),
    )
    monkeypatch.setattr(
        subprocess,
        "run",
        lambda command, **kw: ran.append(list(command)) or subprocess.CompletedProcess(command, 0),
    )
    exec(compile(install_cell(name), "install", "exec"), {})
    return [command for command in ran if "vggcifar" in " ".join(command)]


@pytest.mark.parametrize("name", ["01_data", "05_saving", "08_sweeps"])
def test_a_folder_named_vggcifar_is_not_taken_for_the_package(name, monkeypatch, tmp_path):
    """A leftover folder imports as an empty namespace package (origin None): install anyway."""
    leftover = importlib.machinery.ModuleSpec("vggcifar", None, is_package=True)
    assert leftover.origin is None
    [command] = run_cell(name, monkeypatch, tmp_path, leftover)
    assert command[-1] == "git+https://github.com/vggcifar/vggcifar" and "--no-deps" in command


def installed_spec(site, with_notebooks):
    package = site / "vggcifar"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    if with_notebooks:  # as shipped since the notebooks come in two languages
        (package / "notebooks" / "en").mkdir(parents=True)
        (package / "notebooks" / "en" / "03_training.ipynb").write_text("{}")
    return importlib.util.spec_from_file_location("vggcifar", package / "__init__.py")


def test_08_uses_an_installed_vggcifar_that_ships_its_notebooks(monkeypatch, tmp_path):
    spec = installed_spec(tmp_path / "site", with_notebooks=True)
    assert run_cell("08_sweeps", monkeypatch, tmp_path, spec) == []


def test_08_replaces_an_installed_vggcifar_without_notebooks(monkeypatch, tmp_path):
    """Installed by 00-07 before the package shipped its notebooks: 08's sweep would not find 03."""
    spec = installed_spec(tmp_path / "site", with_notebooks=False)
    [command] = run_cell("08_sweeps", monkeypatch, tmp_path, spec)
    assert "--force-reinstall" in command and "--no-deps" in command
    assert command[-1] == "git+https://github.com/vggcifar/vggcifar"


def test_the_japanese_setup_sets_the_language_and_fails_in_japanese(tmp_path, monkeypatch):
    """The ja notebooks' install part is the en one with its comments and messages in Japanese."""
    english, japanese = install_cell("01_data"), install_cell("01_data", JAPANESE)
    code = [line for line in english.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert 'os.environ["VGGCIFAR_LANGUAGE"] = "ja"' in japanese
    assert 'os.environ["VGGCIFAR_LANGUAGE"] = "en"' in english
    unreachable = (tmp_path / "no-such-repository").as_uri()
    source = japanese.replace(
        'PROJECT_HOME = "https://github.com/vggcifar/vggcifar"', f'PROJECT_HOME = "{unreachable}"'
    )
    elsewhere = tmp_path / "content"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("VGGCIFAR_LANGUAGE", "en")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "vggcifar" else real_find_spec(name, *a)
    )
    with pytest.raises(RuntimeError) as failure:
        exec(compile(source, "install", "exec"), {})
    assert "失敗しました" in str(failure.value) and "PROJECT_HOME" in str(failure.value)
    assert os.environ["VGGCIFAR_LANGUAGE"] == "ja"
    # the same statements, apart from the language and the messages' words
    assert len(code) == len(
        [line for line in japanese.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    )
