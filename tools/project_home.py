#!/usr/bin/env python3
"""The project's home, one address: ``vggcifar.REPOSITORY``; every link and install follows it.

The notebooks' "Run in Google Colab" and "View source on GitHub" links, their install
cell (``PROJECT_HOME = ...``), the Colab links of the README and the teacher's guides,
``pyproject.toml``'s Homepage and ``CITATION.cff``'s repository-code all carry the
address of the GitHub repository. They are written from the one setting,
``REPOSITORY`` in ``vggcifar/__init__.py``:

    python tools/project_home.py                 # check: exit 1 and list what is out of step
    python tools/project_home.py --set https://github.com/you/vggcifar   # a fork: change it everywhere

Each notebook's links point at the notebook itself, on the ``main`` branch. The test
suite runs the check (``tests/test_notebook_habits.py``).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
SETTING = REPO / "vggcifar" / "__init__.py"
BRANCH = "main"
HOME = re.compile(r"https://github\.com/[\w.-]+/[\w.-]+")
REPOSITORY_LINE = re.compile(r'^REPOSITORY = "(.*)"$', re.M)
INSTALL_LINE = re.compile(r'^PROJECT_HOME = "[^"]*"', re.M)
LINK = re.compile(r'href="(https://(?:colab\.research\.google\.com/github|github\.com)/[^"]*)"')
README_LINK = re.compile(r"\((https://colab\.research\.google\.com/github/[^)]*)\)")


def current_home():
    """The one setting: ``REPOSITORY`` in ``vggcifar/__init__.py``."""
    return REPOSITORY_LINE.search(SETTING.read_text(encoding="utf-8")).group(1)


def colab_link(home, path):
    """Open ``path`` (relative to the repository) in Colab, from ``home``'s main branch."""
    return f"{home.replace('https://github.com/', 'https://colab.research.google.com/github/')}/blob/{BRANCH}/{path}"


def github_link(home, path):
    return f"{home}/blob/{BRANCH}/{path}"


def notebook_paths():
    return sorted(p for p in (REPO / "notebooks").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def _expected_notebook_links(home, relative):
    return {"colab": colab_link(home, relative), "github": github_link(home, relative)}


def rewrite_links(text, home, relative):
    expected = _expected_notebook_links(home, relative)
    return LINK.sub(lambda m: f'href="{expected["colab" if "colab." in m.group(1) else "github"]}"', text)


def linked_pages():
    """The pages with Colab links to the notebooks: the README and the teacher's guides."""
    return [REPO / "README.md", *sorted((REPO / "docs").glob("teaching*.md"))]


def _rewrite_readme_links(text, home):
    def fix(match):
        path = match.group(1).split(f"/blob/{BRANCH}/", 1)[-1]
        return f"({colab_link(home, path)})"

    return README_LINK.sub(fix, text)


def problems(home=None):
    """What is out of step with ``home`` (default: the setting), as readable lines; empty when all agree."""
    home = home or current_home()
    found = []
    for path in notebook_paths():
        relative = path.relative_to(REPO).as_posix()
        notebook = nbformat.read(path, as_version=4)
        links = [
            m.group(1) for c in notebook.cells if c.cell_type == "markdown" for m in LINK.finditer(c.source)
        ]
        expected = _expected_notebook_links(home, relative)
        if expected["colab"] not in links:
            found.append(f"{relative}: no 'Run in Google Colab' link to {expected['colab']}")
        found += [
            f"{relative}: link {link} does not point at this notebook in {home}"
            for link in links
            if link not in expected.values()
        ]
        for cell in notebook.cells:
            for line in INSTALL_LINE.findall(cell.source) if cell.cell_type == "code" else []:
                if line != f'PROJECT_HOME = "{home}"':
                    found.append(f"{relative}: install cell has {line}, expected {home}")
    for page in linked_pages():
        text = page.read_text(encoding="utf-8")
        if _rewrite_readme_links(text, home) != text:
            found.append(f"{page.relative_to(REPO).as_posix()}: Colab links do not point at {home}")
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    if f'Homepage = "{home}"' not in pyproject:
        found.append(f"pyproject.toml: Homepage is not {home}")
    if f'repository-code: "{home}"' not in (REPO / "CITATION.cff").read_text(encoding="utf-8"):
        found.append(f"CITATION.cff: repository-code is not {home}")
    return found


def set_home(home):
    """Write ``home`` into the setting and everywhere that carries the address."""
    if not HOME.fullmatch(home):
        raise SystemExit(f"the home must look like https://github.com/OWNER/NAME, got {home!r}")
    SETTING.write_text(
        REPOSITORY_LINE.sub(f'REPOSITORY = "{home}"', SETTING.read_text(encoding="utf-8")), encoding="utf-8"
    )
    for path in notebook_paths():
        relative = path.relative_to(REPO).as_posix()
        notebook = nbformat.read(path, as_version=4)
        for cell in notebook.cells:
            if cell.cell_type == "markdown":
                cell.source = rewrite_links(cell.source, home, relative)
            else:
                cell.source = INSTALL_LINE.sub(f'PROJECT_HOME = "{home}"', cell.source)
        nbformat.write(notebook, path)
    for page in linked_pages():
        page.write_text(_rewrite_readme_links(page.read_text(encoding="utf-8"), home), encoding="utf-8")
    pyproject = REPO / "pyproject.toml"
    pyproject.write_text(
        re.sub(
            r'^Homepage = ".*"$', f'Homepage = "{home}"', pyproject.read_text(encoding="utf-8"), flags=re.M
        ),
        encoding="utf-8",
    )
    citation = REPO / "CITATION.cff"
    citation.write_text(
        re.sub(
            r'^repository-code: ".*"$',
            f'repository-code: "{home}"',
            citation.read_text(encoding="utf-8"),
            flags=re.M,
        ),
        encoding="utf-8",
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", metavar="URL", help="a new home, e.g. https://github.com/you/vggcifar")
    args = parser.parse_args(argv)
    if args.set:
        set_home(args.set.rstrip("/"))
    found = problems()
    for line in found:
        print(line)
    print(
        f"{len(found)} link(s) out of step with {current_home()}"
        if found
        else f"every link and install points at {current_home()}"
    )
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
