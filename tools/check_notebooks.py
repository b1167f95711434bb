#!/usr/bin/env python3
"""The habits every notebook under ``notebooks/`` keeps, checked in one go.

    python tools/check_notebooks.py           # one line per problem; exit 1 when there is any
    python tools/check_notebooks.py --stats   # also: characters of English and Japanese, per notebook,
                                              # and the variants the glossary rules out, counted

Each problem line names the notebook and the rule it breaks:

* ``outputs``: code cells are committed unexecuted (no outputs, no execution count);
* ``parameters``: exactly one cell is tagged ``parameters``, and it holds only
  ``name = literal`` assignments (comments are fine), so papermill can set them;
* ``ids``: every cell has an id, and no two share one;
* ``metadata``: Colab opens the notebook on a GPU (``"accelerator": "GPU"`` and
  ``colab.gpuType``);
* ``links``: the Colab and GitHub links point at the notebook itself
  (``problems()`` of ``tools/project_home.py``, which also checks the README);
* ``bilingual`` (the source, ``notebooks/source/``): every markdown cell holds English,
  then a line that is exactly ``<!-- ja -->``, then the same in Japanese;
* ``language`` (``notebooks/en/`` and ``notebooks/ja/``): an English notebook holds no
  Japanese character, in its text or its code; every markdown cell of a Japanese one
  holds Japanese;
* ``glossary`` (the source): its Japanese text (the part of each markdown cell after
  ``<!-- ja -->``, and the ``#ja|`` lines of the code cells) uses none of the variants that
  ``docs/glossary.md`` rules out (its table "Variants the check flags"), outside code spans
  and code blocks. One line per use, with the cell and a few characters around it;
  ``--stats`` counts them;
* ``in step``: ``notebooks/en/`` and ``notebooks/ja/`` are what
  ``tools/make_language_notebooks.py`` writes from the source.

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
import make_language_notebooks  # noqa: E402  (the in-step rule is its check)
import project_home  # noqa: E402  (the links rule is its check)

MARKER = "<!-- ja -->"
JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]")  # kana and kanji
#: The glossary whose table "Variants the check flags" lists what the Japanese text avoids
#: (this repository's, also when a test points ``project_home.REPO`` elsewhere).
GLOSSARY = Path(__file__).resolve().parents[1] / "docs" / "glossary.md"
VARIANTS_HEADING = "## Variants the check flags"
JA_LINE = re.compile(r"^\s*#ja\| ?(.*)$")  # a Japanese line of a code cell (tools/make_language_notebooks.py)
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,}).*?^ {0,3}\1[^\n]*$", re.M | re.S)  # a fenced code block
CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)", re.S)  # `code`, ``code with a ` in it``
CONTEXT = 12  # characters either side of a variant in its problem line


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


def language_of(relative):
    """``"source"``, ``"en"`` or ``"ja"``: the folder under ``notebooks/`` that ``relative`` is in."""
    parts = Path(relative).parts
    return parts[1] if len(parts) > 2 and parts[1] in ("en", "ja") else "source"


def bilingual_problems(notebook, relative):
    """Source markdown cells not written as English, ``<!-- ja -->``, Japanese."""
    if language_of(relative) != "source":
        return []
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


def language_problems(notebook, relative):
    """Japanese in an English notebook; a markdown cell of a Japanese notebook without Japanese."""
    language, found = language_of(relative), []
    for number, cell in enumerate(notebook["cells"]):
        text = source(cell)
        if language == "en" and JAPANESE.search(text):
            found.append(f"{name(cell, number)} of an English notebook holds Japanese: {_around(text)!r}")
        if language == "ja" and cell["cell_type"] == "markdown" and not JAPANESE.search(text):
            found.append(f"markdown {name(cell, number)} of a Japanese notebook holds no Japanese")
    return found


def _around(text):
    """A few characters around the first Japanese character of ``text``."""
    where = JAPANESE.search(text).start()
    return text[max(0, where - 20) : where + 20]


def variants(path=None):
    """``{variant: what to write instead}`` from the glossary's table "Variants the check flags".

    A row is ``| `variant` | instead |``; the backticks around the variant are optional.
    """
    lines = Path(path or GLOSSARY).read_text(encoding="utf-8").splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(VARIANTS_HEADING)]
    if not starts:
        raise ValueError(f"{path or GLOSSARY} has no section {VARIANTS_HEADING!r}")
    table = {}
    for line in lines[starts[0] + 1 :]:
        if line.startswith("#"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 2 or set(cells[0]) <= set("-: "):
            continue
        variant = cells[0][1:-1] if cells[0][:1] == cells[0][-1:] == "`" else cells[0]
        if variant and not variant.startswith("variant"):  # not the header row
            table[variant] = cells[1]
    if not table:
        raise ValueError(f"{path or GLOSSARY}: the section {VARIANTS_HEADING!r} has no table rows")
    return table


def without_code(text):
    """``text`` with its fenced code blocks and code spans blanked out (same length, same places)."""

    def blank(match):
        return re.sub(r"[^\n]", " ", match.group(0))

    return CODE_SPAN.sub(blank, FENCE.sub(blank, text))


def japanese_texts(notebook):
    """``[(cell name, Japanese text)]``: each markdown cell's part after the marker, and each
    code cell's ``#ja|`` lines (their text after the ``#ja|``)."""
    found = []
    for number, cell in enumerate(notebook["cells"]):
        text = source(cell)
        if cell["cell_type"] == "markdown":
            lines = text.splitlines()
            marks = [i for i, line in enumerate(lines) if line.strip() == MARKER]
            japanese = "\n".join(lines[marks[0] + 1 :]) if marks else ""
        elif cell["cell_type"] == "code":
            japanese = "\n".join(m.group(1) for m in map(JA_LINE.match, text.splitlines()) if m)
        else:
            continue
        if japanese.strip():
            found.append((name(cell, number), japanese))
    return found


def glossary_problems(notebook, relative, table=None):
    """Each use, in a source notebook's Japanese text, of a variant that the glossary rules out."""
    if language_of(relative) != "source":
        return []  # notebooks/ja is written from the source: checked there
    table = variants() if table is None else table
    found = []
    for where, text in japanese_texts(notebook):
        prose = without_code(text)  # the same length: a place in it is the same place in text
        for variant, instead in table.items():
            for match in re.finditer(re.escape(variant), prose):
                before = text[max(0, match.start() - CONTEXT) : match.start()]
                after = text[match.end() : match.end() + CONTEXT]
                context = " ".join(f"{before}{variant}{after}".split())
                found.append(f"{where}: {variant!r} in '…{context}…' (write: {instead})")
    return found


#: The rules checked in each notebook file, by the name a problem line gives them.
RULES = {
    "outputs": output_problems,
    "parameters": parameters_problems,
    "ids": id_problems,
    "metadata": metadata_problems,
    "bilingual": bilingual_problems,
    "language": language_problems,
    "glossary": glossary_problems,
}
#: The rules that also need the notebook's place (its language folder).
PLACED = {"bilingual", "language", "glossary"}


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
        for rule, check in RULES.items():
            lines = check(notebook, relative) if rule in PLACED else check(notebook)
            found += [f"{relative}: {rule}: {line}" for line in lines]
    in_step = [
        f"{line} (run: {make_language_notebooks.COMMAND})" for line in make_language_notebooks.problems()
    ]
    return found + [f"in step: {line}" for line in in_step] + link_problems()


#: What is not prose: code blocks and spans, HTML tags, link targets, addresses, quoted messages.
NOT_PROSE = re.compile(
    r"```.*?```|`[^`\n]*`|<[^>\n]+>|\]\([^)\s]*\)|^\[[^\]]+\]:.*$|https?://\S+|\"[^\"\n]*\"", re.S | re.M
)
#: English prose: three or more Latin words in a row (a name such as "Google Colab" is not).
ENGLISH_RUN = re.compile(r"[A-Za-z][A-Za-z'’-]*(?:[ ,.;:!?()]+[A-Za-z][A-Za-z'’-]*){2,}")
#: A parameter's papermill type at the start of its comment (``# type: int|None  ...``): code, not prose.
TYPE_COMMENT = re.compile(r"^\s*type:\s*\S+")


def readable_text(cell):
    """What a reader reads of a cell as prose: a markdown cell's text, a code cell's comments."""
    text = source(cell)
    if cell["cell_type"] == "code":
        text = "\n".join(
            TYPE_COMMENT.sub(" ", line.split("#", 1)[1])
            for line in text.splitlines()
            if "#" in line and "# @" not in line
        )
    return NOT_PROSE.sub(" ", text)


def language_stats():
    """``{notebook: (characters of English prose, characters of Japanese)}`` for en/ and ja/.

    English prose is counted as runs of three or more Latin words outside code, links and
    quoted messages, in text cells and code comments (so names like "Google Colab" or
    "VGG16" in Japanese text do not count); Japanese as kana and kanji anywhere.
    """
    stats = {}
    for path in notebook_paths():
        relative = path.relative_to(project_home.REPO).as_posix()
        if language_of(relative) == "source":
            continue
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        english = sum(len(m.group()) for c in cells for m in ENGLISH_RUN.finditer(readable_text(c)))
        japanese = sum(len(JAPANESE.findall(source(c))) for c in cells)
        stats[relative] = (english, japanese)
    return stats


def glossary_stats():
    """``{source notebook: how many uses of variants that the glossary rules out its Japanese holds}``."""
    table = variants()
    stats = {}
    for path in notebook_paths():
        relative = path.relative_to(project_home.REPO).as_posix()
        if language_of(relative) == "source":
            notebook = json.loads(path.read_text(encoding="utf-8"))
            stats[relative] = len(glossary_problems(notebook, relative, table))
    return stats


def print_glossary_stats(stats):
    """The variants the glossary rules out, per source notebook that uses any, and in all."""
    width = max((len(n) for n in stats), default=0)
    for notebook, count in stats.items():
        if count:
            print(f"{notebook:{width}s}  glossary variants {count:4d}")
    print(
        f"{sum(stats.values())} use(s) of variants that docs/glossary.md rules out, in the Japanese "
        f"text of {len(stats)} source notebooks"
    )


def print_stats(stats):
    """One line per notebook: characters of English prose and of Japanese."""
    width = max((len(n) for n in stats), default=0)
    for notebook, (english, japanese) in stats.items():
        print(f"{notebook:{width}s}  English prose {english:6,d}  Japanese {japanese:6,d}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--stats",
        action="store_true",
        help="print, per notebook, the characters of English and of Japanese prose, and the uses of "
        "variants that docs/glossary.md rules out",
    )
    args = parser.parse_args(argv)
    if args.stats:
        print_stats(language_stats())
        print_glossary_stats(glossary_stats())
    found = problems()
    for line in found:
        print(line)
    count = len(notebook_paths())
    glossary = sum(": glossary: " in line for line in found)
    if glossary:
        print(
            f"{glossary} of them: variants that docs/glossary.md rules out "
            f"(its table {VARIANTS_HEADING.lstrip('# ')!r})"
        )
    print(
        f"{len(found)} problem(s) in the notebooks' habits"
        if found
        else f"all {count} notebooks keep the habits"
    )
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
