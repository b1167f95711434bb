#!/usr/bin/env python3
"""The habits every notebook under ``notebooks/`` keeps, checked in one go.

    python tools/check_notebooks.py           # one line per problem; exit 1 when there is any
    python tools/check_notebooks.py --stats   # also: characters of English and Japanese prose

Each problem line names the notebook and the rule it breaks:

* ``outputs``: code cells are committed unexecuted (no outputs, no execution count);
* ``parameters``: exactly one cell is tagged ``parameters``, and it holds only
  ``name = literal`` assignments (comments are fine), so papermill can set them;
* ``ids``: every cell has an id, and no two share one;
* ``metadata``: Colab opens the notebook on a GPU (``"accelerator": "GPU"`` and
  ``colab.gpuType``);
* ``links``: the Colab and GitHub links point at the notebook itself
  (``problems()`` of ``tools/project_home.py``, which also checks the README);
* ``bilingual``: every markdown cell holds English, then a line that is exactly
  ``<!-- ja -->``, then the same in Japanese.

The test suite runs the check (``tests/test_notebook_habits.py``); the pre-commit hook
too (``.pre-commit-config.yaml``).
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import project_home  # noqa: E402  (the links rule is its check)

MARKER = "<!-- ja -->"
JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]")  # kana and kanji


def notebook_paths():
    """Every notebook under ``notebooks/``, subfolders included (not Jupyter's checkpoints)."""
    folder = project_home.REPO / "notebooks"
    return sorted(p for p in folder.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def source(cell):
    """A cell's text: the file keeps it as one string or as a list of lines."""
    return cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])


def name(cell, number):
    """How a problem line names a cell: by its id, or by its place when it has none."""
    return f"cell '{cell['id']}'" if cell.get("id") else f"cell {number}"


def output_problems(notebook):
    """Code cells committed with outputs or an execution count."""
    found = []
    for number, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "code":
            continue
        if cell.get("outputs"):
            found.append(f"{name(cell, number)} has committed outputs")
        if cell.get("execution_count") is not None:
            found.append(f"{name(cell, number)} has an execution count")
    return found


def parameters_problems(notebook):
    """Not exactly one ``parameters`` cell, or one with more than ``name = literal`` lines."""
    tagged = [
        (number, cell)
        for number, cell in enumerate(notebook["cells"])
        if "parameters" in cell.get("metadata", {}).get("tags", [])
    ]
    if len(tagged) != 1:
        return [f"{len(tagged)} cells are tagged 'parameters', expected exactly one"]
    number, cell = tagged[0]
    if cell["cell_type"] != "code":
        return [f"the 'parameters' {name(cell, number)} is {cell['cell_type']}, not code"]
    try:
        statements = ast.parse(source(cell)).body
    except SyntaxError as error:
        return [f"the 'parameters' cell is not valid Python ({error.msg}, line {error.lineno})"]
    return [
        f"the 'parameters' cell, line {s.lineno}: only `name = literal` assignments belong there"
        for s in statements
        if not _literal_assignment(s)
    ]


def _literal_assignment(statement):
    """``name = literal``: one plain name, and a value ``ast.literal_eval`` accepts."""
    if not (
        isinstance(statement, ast.Assign)
        and len(statement.targets) == 1
        and isinstance(statement.targets[0], ast.Name)
    ):
        return False
    try:
        ast.literal_eval(statement.value)
    except (ValueError, TypeError, SyntaxError, RecursionError):
        return False
    return True


def id_problems(notebook):
    """Cells without an id, and ids that several cells share."""
    found = [
        f"{name(cell, number)} ({cell['cell_type']}) has no id"
        for number, cell in enumerate(notebook["cells"])
        if not cell.get("id")
    ]
    counts = Counter(cell["id"] for cell in notebook["cells"] if cell.get("id"))
    found += [f"{count} cells share the id '{cell_id}'" for cell_id, count in counts.items() if count > 1]
    return found


def metadata_problems(notebook):
    """Notebook metadata that would not open the notebook on Colab's GPU."""
    metadata = notebook.get("metadata", {})
    found = []
    if metadata.get("accelerator") != "GPU":
        found.append('metadata lacks "accelerator": "GPU" (Colab would open it on a CPU)')
    if not metadata.get("colab", {}).get("gpuType"):
        found.append('metadata lacks "colab": {"gpuType": ...} (Colab\'s choice of GPU, e.g. "T4")')
    return found


def split_prose(text):
    """``(english, japanese)`` of a markdown cell, split at the marker line and stripped.

    A cell without the marker is all English; with several, the text after the first.
    """
    lines = text.splitlines()
    marks = [i for i, line in enumerate(lines) if line.strip() == MARKER]
    if not marks:
        return text.strip(), ""
    return "\n".join(lines[: marks[0]]).strip(), "\n".join(lines[marks[0] + 1 :]).strip()


def bilingual_problems(notebook):
    """Markdown cells not written as English, ``<!-- ja -->``, Japanese."""
    found = []
    for number, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        text = source(cell)
        marks = sum(line.strip() == MARKER for line in text.splitlines())
        if marks != 1:
            found.append(f"markdown {name(cell, number)} has {marks} '{MARKER}' lines, expected exactly one")
            continue
        english, japanese = split_prose(text)
        if not english:
            found.append(f"markdown {name(cell, number)} has no English before '{MARKER}'")
        if not JAPANESE.search(japanese):
            found.append(f"markdown {name(cell, number)} has no Japanese (kana or kanji) after '{MARKER}'")
    return found


#: The rules checked in each notebook file, by the name a problem line gives them.
RULES = {
    "outputs": output_problems,
    "parameters": parameters_problems,
    "ids": id_problems,
    "metadata": metadata_problems,
    "bilingual": bilingual_problems,
}


def link_problems():
    """``tools/project_home.py``'s check, as ``path: links: problem`` lines."""
    return [
        f"{where}: links: {what}" for where, what in (line.split(": ", 1) for line in project_home.problems())
    ]


def problems():
    """Every problem of every notebook (and of the links), one readable line each."""
    found = []
    for path in notebook_paths():
        relative = path.relative_to(project_home.REPO).as_posix()
        notebook = json.loads(path.read_text(encoding="utf-8"))
        found += [f"{relative}: {rule}: {line}" for rule, check in RULES.items() for line in check(notebook)]
    return found + link_problems()


def prose_stats():
    """``{notebook: (english characters, japanese characters)}`` over its markdown cells."""
    stats = {}
    for path in notebook_paths():
        notebook = json.loads(path.read_text(encoding="utf-8"))
        parts = [split_prose(source(c)) for c in notebook["cells"] if c["cell_type"] == "markdown"]
        stats[path.relative_to(project_home.REPO).as_posix()] = (
            sum(len(e) for e, _ in parts),
            sum(len(j) for _, j in parts),
        )
    return stats


def print_stats(stats):
    """One line per notebook: characters of English and of Japanese, and their ratio."""
    width = max((len(n) for n in stats), default=0)
    for notebook, (english, japanese) in stats.items():
        ratio = f"{japanese / english:.2f}" if english else "-"
        print(f"{notebook:{width}s}  English {english:6,d}  Japanese {japanese:6,d}  (ja/en {ratio})")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--stats",
        action="store_true",
        help="print, per notebook, the characters of English and of Japanese prose",
    )
    args = parser.parse_args(argv)
    if args.stats:
        print_stats(prose_stats())
    found = problems()
    for line in found:
        print(line)
    count = len(notebook_paths())
    print(
        f"{len(found)} problem(s) in the notebooks' habits"
        if found
        else f"all {count} notebooks keep the habits"
    )
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
