#!/usr/bin/env python3
"""Keep the code that the notebooks show and the code the package keeps in step (d2l's ``# @save``).

A line ``# @save vggcifar.model`` in a notebook's code cell marks the definition right
below it (a ``def``, a ``class`` or an assignment) as kept, letter for letter, in that
module of the package. The notebook is where a student reads it; the package is where
the other notebooks, the scripts and the tests import it from.

    python tools/saved_code.py            # check: lists every marked definition, exit 1 on a difference
    python tools/saved_code.py --update   # copy the notebooks' definitions into the package

The test suite runs the check (``tests/test_saved_code.py``).
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MARK = re.compile(r"^# @save (vggcifar(?:\.\w+)+)\s*$")


@dataclass
class Definition:
    notebook: str  # notebook file name
    module: str  # dotted module name, e.g. vggcifar.model
    name: str  # the defined name
    source: str  # the definition's text in the notebook


def _top_level(tree, name=None, line=None):
    """The top-level def/class/assignment of ``name`` (or starting at ``line``)."""
    for node in tree.body:
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        names = _names(node)
        if (line is not None and start == line) or (name is not None and name in names):
            return node, start, names
    return None, None, []


def _names(node):
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [node.target.id]
    return []


def _segment(lines, start, node):
    return "\n".join(lines[start - 1 : node.end_lineno]).rstrip()


def marked_definitions(notebook_path):
    """Every definition marked ``# @save <module>`` in a notebook's code cells."""
    notebook = json.loads(Path(notebook_path).read_text(encoding="utf-8"))
    found = []
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        text = "".join(cell["source"])
        lines = text.splitlines()
        tree = ast.parse(text)
        for number, line in enumerate(lines, start=1):
            match = MARK.match(line)
            if not match:
                continue
            node, start, names = _top_level(tree, line=number + 1)
            if node is None or len(names) != 1:
                raise ValueError(
                    f"{Path(notebook_path).name}: '# @save' on line {number} of a "
                    "cell must stand right above one def, class or assignment"
                )
            found.append(
                Definition(Path(notebook_path).name, match.group(1), names[0], _segment(lines, start, node))
            )
    return found


def module_path(module):
    return REPO.joinpath(*module.split(".")).with_suffix(".py")


def package_source(module, name):
    """The text of ``name``'s top-level definition in the package module, or None."""
    text = module_path(module).read_text(encoding="utf-8")
    lines = text.splitlines()
    node, start, _ = _top_level(ast.parse(text), name=name)
    return None if node is None else _segment(lines, start, node)


def all_definitions(notebooks=None):
    notebooks = notebooks or sorted((REPO / "notebooks" / "en").glob("*.ipynb"))  # ja: the same code
    return [d for path in notebooks for d in marked_definitions(path)]


def differences(definitions=None):
    """``[(definition, package_text_or_None)]`` for every marked definition the package lacks
    or writes otherwise."""
    definitions = all_definitions() if definitions is None else definitions
    return [(d, kept) for d in definitions if (kept := package_source(d.module, d.name)) != d.source]


def update(definitions):
    """Write each notebook definition over the package's (or append it when missing)."""
    for d in definitions:
        path = module_path(d.module)
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        node, start, _ = _top_level(ast.parse(text), name=d.name)
        if node is None:
            text = text.rstrip("\n") + "\n\n\n" + d.source + "\n"
        else:
            text = "\n".join(lines[: start - 1] + d.source.splitlines() + lines[node.end_lineno :]) + "\n"
        path.write_text(text, encoding="utf-8")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--update", action="store_true", help="copy the notebooks' marked definitions into the package"
    )
    args = parser.parse_args(argv)
    definitions = all_definitions()
    for d in definitions:
        print(f"{d.notebook:24s} {d.name:22s} -> {d.module}")
    different = differences(definitions)
    if args.update and different:
        update([d for d, _ in different])
        print(f"updated {len(different)} definition(s) in the package")
        return 0
    for d, kept in different:
        diff = difflib.unified_diff(
            (kept or "").splitlines(),
            d.source.splitlines(),
            f"{d.module} (package)",
            f"{d.notebook} (notebook)",
            lineterm="",
        )
        print("\n".join(diff) if kept is not None else f"{d.module} has no {d.name}")
    if different:
        print(
            f"{len(different)} definition(s) differ between the notebooks and the package; "
            "edit one to match the other, or run with --update to copy the notebooks'"
        )
        return 1
    print(f"all {len(definitions)} marked definitions are the same in the package")
    return 0


if __name__ == "__main__":
    sys.exit(main())
