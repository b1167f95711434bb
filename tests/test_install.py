"""Installs that work away from a clone: the wheel ships the notebooks, the command line finds them.

A wheel is built from a copy of the project's files (never from ``build/`` leftovers),
installed with ``pip install --no-deps --target`` (what ``pip install --no-deps git+...``
leaves on Colab, without touching the outer environment), and used from a folder outside
the clone, with this environment's Python and ``PYTHONPATH`` pointing at the install.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from vggcifar.locate import notebooks_folder

REPO = Path(__file__).resolve().parents[1]
STEP_NOTEBOOKS = sorted(p.name for p in (REPO / "notebooks" / "en").glob("*.ipynb"))  # ja/ the same names
PROJECT_FILES = ("pyproject.toml", "README.md", "LICENSE")
LEFTOVERS = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints", "runs")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """A wheel of the working tree, built offline (``--no-build-isolation``) from a clean copy."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    source.mkdir()
    for name in PROJECT_FILES:
        shutil.copy2(REPO / name, source / name)
    for folder in ("vggcifar", "notebooks"):
        shutil.copytree(REPO / folder, source / folder, ignore=LEFTOVERS)
    command = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run([*command, "-w", str(tmp / "dist"), str(source)], check=True, capture_output=True)
    [built] = (tmp / "dist").glob("vggcifar-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """The wheel installed into a folder of its own; returns (that folder, a cwd outside the clone)."""
    tmp = tmp_path_factory.mktemp("installed")
    target, elsewhere = tmp / "site", tmp / "elsewhere"
    elsewhere.mkdir()
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    return target, elsewhere


def python(code, target, cwd):
    """Run ``code`` with the installed copy first on the path, from ``cwd``."""
    env = {**os.environ, "PYTHONPATH": str(target), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env, capture_output=True, text=True
    )


def test_the_wheel_ships_the_step_notebooks_and_not_the_solutions(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(
        n.removeprefix("vggcifar/notebooks/") for n in names if n.startswith("vggcifar/notebooks/")
    )
    assert shipped == sorted(f"{language}/{n}" for language in ("en", "ja") for n in STEP_NOTEBOOKS)
    assert len(shipped) == 18
    assert "vggcifar/resources/article_history.json" in names
    assert not [n for n in names if "solutions" in n or "notebooks/source" in n or n.startswith("notebooks/")]


def test_the_wheel_declares_what_the_command_line_runs_with(wheel):
    """`vggcifar run` / `sweep` need papermill, a kernel and PyYAML: dependencies, not an extra."""
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read(next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA")))
    required = [
        line.split(":", 1)[1].strip()
        for line in metadata.decode().splitlines()
        if line.startswith("Requires-Dist:") and "extra ==" not in line
    ]
    names = {r.split(">")[0].split("=")[0].split(";")[0].strip().lower() for r in required}
    assert {"papermill", "ipykernel", "pyyaml", "tensorflow", "keras"} <= names


def test_an_installed_package_finds_its_notebooks_without_keras(installed):
    target, elsewhere = installed
    done = python(
        """
        import json, sys
        import vggcifar
        from vggcifar.locate import notebooks_folder
        folder = notebooks_folder()
        print(json.dumps({
            "package": vggcifar.__file__, "folder": str(folder),
            "notebooks": sorted(p.name for p in folder.glob("*.ipynb")),
            "heavy": sorted(m for m in ("keras", "tensorflow") if m in sys.modules),
        }))
        """,
        target,
        elsewhere,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert Path(found["package"]).is_relative_to(target)  # the install, not the clone
    assert Path(found["folder"]) == target / "vggcifar" / "notebooks" / "en"
    assert found["notebooks"] == STEP_NOTEBOOKS
    assert found["heavy"] == []


def test_the_installed_command_line_plans_a_sweep_of_03(installed):
    target, elsewhere = installed
    done = python(
        """
        import json
        from vggcifar.sweeps import plan
        notebooks, runs = plan([{"epochs": 1}], ("03_training", "04_plots"))
        print(json.dumps([str(n) for n in notebooks]))
        """,
        target,
        elsewhere,
    )
    assert done.returncode == 0, done.stderr
    planned = [Path(p) for p in json.loads(done.stdout)]
    assert planned == [
        target / "vggcifar" / "notebooks" / "en" / f"{n}.ipynb" for n in ("03_training", "04_plots")
    ]
    helped = subprocess.run(
        [sys.executable, "-m", "vggcifar", "sweep", "--help"],
        cwd=elsewhere,
        env={**os.environ, "PYTHONPATH": str(target), "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        text=True,
    )
    assert helped.returncode == 0 and "--notebooks" in helped.stdout, helped.stderr


def test_the_installed_package_loads_the_sample_offline(wheel, installed):
    """The CIFAR-10 sample travels as package data: data="sample" works from an install."""
    assert "vggcifar/resources/cifar10-sample.tar.gz" in zipfile.ZipFile(wheel).namelist()
    target, elsewhere = installed
    done = python(
        """
        import vggcifar
        from vggcifar.data import load_data
        d = load_data("sample")
        print(vggcifar.__file__)
        print(d.x_train.shape, d.x_test.shape, d.class_names[0])
        """,
        target,
        elsewhere,
    )
    assert done.returncode == 0, done.stderr
    where, shapes = done.stdout.strip().splitlines()[-2:]
    assert where.startswith(str(target)) and str(REPO) not in where  # the installed copy, not the clone
    assert shapes == "(4000, 32, 32, 3) (1000, 32, 32, 3) airplane"


def test_a_package_without_notebooks_says_how_to_reinstall_in_one_line(installed, tmp_path):
    """A vggcifar installed before the notebooks were shipped: one line, not a traceback."""
    target, elsewhere = installed
    old = tmp_path / "old-site"
    shutil.copytree(target / "vggcifar", old / "vggcifar", ignore=shutil.ignore_patterns("notebooks"))
    done = subprocess.run(
        [sys.executable, "-m", "vggcifar", "sweep", "--param", "epochs=1", "--out", str(tmp_path / "out")],
        cwd=elsewhere,
        env={**os.environ, "PYTHONPATH": str(old), "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2, done.stderr
    error = done.stderr.strip().splitlines()[-1]
    assert "has no notebooks" in error and "pip install --no-deps --force-reinstall git+https://" in error
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_in_a_clone_the_notebooks_are_the_repositorys(monkeypatch):
    """An editable install and a clone find the repository's notebooks/en or /ja (not a copy)."""
    monkeypatch.delenv("VGGCIFAR_LANGUAGE", raising=False)
    assert notebooks_folder() == REPO / "notebooks" / "en"
    assert notebooks_folder("ja") == REPO / "notebooks" / "ja"
    monkeypatch.setenv("VGGCIFAR_LANGUAGE", "ja")  # as a Japanese notebook's setup cell sets it
    assert notebooks_folder() == REPO / "notebooks" / "ja"
    monkeypatch.setenv("VGGCIFAR_LANGUAGE", "fr")
    with pytest.raises(ValueError, match=r"VGGCIFAR_LANGUAGE='fr' is not a language"):
        notebooks_folder()


def test_one_version_everywhere(wheel):
    """pyproject.toml's version (resolved), the wheel's and CITATION.cff's are vggcifar.__version__."""
    import yaml
    from setuptools.config.pyprojecttoml import read_configuration

    import vggcifar

    resolved = read_configuration(REPO / "pyproject.toml")["project"]["version"]
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text(encoding="utf-8"))
    assert resolved == citation["version"] == vggcifar.__version__
    assert f"vggcifar-{vggcifar.__version__}-" in wheel.name
    assert f"## [{vggcifar.__version__}]" in (REPO / "CHANGELOG.md").read_text(encoding="utf-8")


def test_the_citation_names_the_project_its_home_and_cifar10():
    import yaml

    import vggcifar

    citation = yaml.safe_load((REPO / "CITATION.cff").read_text(encoding="utf-8"))
    assert citation["cff-version"] == "1.2.0" and citation["license"] == "MIT"
    assert citation["repository-code"] == vggcifar.REPOSITORY
    assert citation["authors"] == [{"name": "The vggcifar contributors"}]
    [cifar] = citation["references"]
    assert cifar["title"] == "Learning Multiple Layers of Features from Tiny Images" and cifar["year"] == 2009
    assert cifar["authors"][0]["family-names"] == "Krizhevsky"


def test_the_classifiers_name_the_supported_pythons_and_environment_yml_caps_the_same():
    from setuptools.config.pyprojecttoml import read_configuration

    project = read_configuration(REPO / "pyproject.toml")["project"]
    versions = [
        c.rsplit(" :: ", 1)[1] for c in project["classifiers"] if c.startswith("Programming Language")
    ]
    assert versions == ["3", "3.10", "3.11", "3.12", "3.13"]
    assert project["requires-python"] == ">=3.10"
    assert "python>=3.10,<3.14" in (REPO / "environment.yml").read_text(encoding="utf-8")


def test_environment_yml_opens_the_notebooks_and_the_readme_shows_how():
    import yaml

    environment = yaml.safe_load((REPO / "environment.yml").read_text(encoding="utf-8"))
    conda = [d.split(">")[0].split("=")[0] for d in environment["dependencies"] if isinstance(d, str)]
    assert {"jupyterlab", "ipykernel", "pip"} <= set(conda)
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    install = readme.split("## Install", 1)[1].split("\n## ", 1)[0]
    assert readme.index("## Install") < readme.index("## The notebooks")
    assert "conda env create -f environment.yml && conda activate vggcifar" in install
    assert "3.10 to 3.13" in install
