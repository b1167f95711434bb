#!/usr/bin/env python3
"""Write ``notebooks/en/`` and ``notebooks/ja/`` from the bilingual source in ``notebooks/source/``.

    python tools/make_language_notebooks.py           # write both sets from the source
    python tools/make_language_notebooks.py --check   # exit 1, naming what is out of step

A student reads one language: an English notebook holds English only, a Japanese one
Japanese only, with the same code cells (the same cell ids, so papermill and the tests
treat both alike). Both come from one source, so they cannot drift apart; as for
``00_article`` (``tools/make_article_notebook.py``), the tests fail while a written set
is out of step with the source. Edit the source, never ``en/`` or ``ja/``.

The source's conventions:

* **Markdown cells**: the English text, a line ``<!-- ja -->``, the Japanese text. Each
  part carries its own headings. The title cell's "Run in Google Colab" / "View source on
  GitHub" badges are written once, in the English part; the Japanese notebook gets them
  under its title with Japanese labels. Every badge points at the notebook it is in.
* **Code cells**: the code with English comments. A line ``#ja| ...`` gives the Japanese
  notebook's version of the line above it: of the whole block of comment lines above, when
  the line above is a comment (Colab's ``# @title`` line is not one), otherwise of that
  one line (a code line with its comment, a string of a message). Several ``#ja|`` lines
  in a row replace that block or line together. The English notebook drops every ``#ja|`` line.

    # Install vggcifar where it is missing (Colab).
    #ja| # vggcifar が入っていなければインストールします(Colab)。
    LANGUAGE = "en"  # the language of vggcifar's messages
    #ja| LANGUAGE = "ja"  # vggcifar のメッセージの言語
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
import project_home  # noqa: E402  (the badges' links)

#: This repository: the generator writes and checks its own notebooks, wherever a caller
#: points project_home (tools/check_notebooks.py's tests check notebooks in a scratch folder).
REPO = Path(__file__).resolve().parents[1]
LANGUAGES = ("en", "ja")
MARKER = "<!-- ja -->"
JA_LINE = re.compile(r"^(\s*)#ja\| ?(.*)$")
COMMAND = "python tools/make_language_notebooks.py"
#: The badges' labels in the Japanese notebooks (as TensorFlow's Japanese tutorials word them).
BADGES_JA = {
    ">Run in Google Colab<": ">Google Colab で実行<",
    ">View source on GitHub<": ">GitHub でソースを表示<",
}
BADGES = re.compile(r"<table[^>]*>.*?</table>", re.S)


class SourceError(Exception):
    """A source cell the generator cannot split (the message names the notebook and cell)."""


def notebooks_folder():
    """The repository's ``notebooks/``."""
    return REPO / "notebooks"


def notebooks_in(folder):
    """The notebooks under ``folder``, subfolders included (not Jupyter's checkpoints)."""
    return sorted(p for p in folder.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def source_paths():
    """Every source notebook, solutions included."""
    return notebooks_in(notebooks_folder() / "source")


def target_path(source, language):
    return notebooks_folder() / language / source.relative_to(notebooks_folder() / "source")


def shown(path):
    """``path`` as the messages name it: relative to the repository."""
    return path.relative_to(REPO).as_posix()


def split_markdown(text, where):
    """``{"en": ..., "ja": ...}``: the two parts of a bilingual markdown cell."""
    if text.count(MARKER) != 1:
        raise SourceError(
            f"{where}: a markdown cell needs exactly one line {MARKER!r}, found {text.count(MARKER)}"
        )
    english, _, japanese = text.partition(MARKER)
    english, japanese = english.strip(), japanese.strip()
    badges = BADGES.search(english)
    if badges and not BADGES.search(japanese):
        block = badges.group(0)
        for label, japanese_label in BADGES_JA.items():
            block = block.replace(label, japanese_label)
        title, newline, rest = japanese.partition("\n")
        if title.startswith("#"):  # under the title, as in the English part
            japanese = f"{title}\n\n{block}\n\n{rest.strip()}".strip()
        else:
            japanese = f"{block}\n\n{japanese}"
    return {"en": english, "ja": japanese}


def is_comment(line):
    """A comment line that a ``#ja|`` block may replace (not Colab's ``# @title`` form line)."""
    stripped = line.lstrip()
    return stripped.startswith("#") and not re.match(r"#\s*@", stripped)


def split_code(text, where):
    """``{"en": ..., "ja": ...}``: a code cell without, and with, its ``#ja|`` lines applied."""
    english, japanese = [], []
    lines = text.split("\n")
    index = floor = 0  # a block never reaches back past the last replacement
    while index < len(lines):
        if not JA_LINE.match(lines[index]):
            english.append(lines[index])
            japanese.append(lines[index])
            index += 1
            continue
        replacement = []
        while index < len(lines) and JA_LINE.match(lines[index]):
            indent, line = JA_LINE.match(lines[index]).groups()
            replacement.append(indent + line)
            index += 1
        if len(japanese) == floor:
            raise SourceError(f"{where}: a '#ja|' line needs a line of the English code above it")
        count = 1
        if is_comment(japanese[-1]):
            while len(japanese) - count > floor and is_comment(japanese[-count - 1]):
                count += 1
        del japanese[-count:]
        japanese.extend(replacement)
        floor = len(japanese)
    return {"en": "\n".join(english), "ja": "\n".join(japanese)}


def language_notebooks(path, home=None):
    """``{"en": notebook, "ja": notebook}`` written from the source notebook at ``path``."""
    home = home or project_home.current_home()
    source = nbformat.read(path, as_version=4)
    written = {}
    for language in LANGUAGES:
        notebook = copy.deepcopy(source)
        relative = shown(target_path(path, language))
        for cell in notebook.cells:
            where = f"{shown(path)}, cell {cell.get('id')!r}"
            if cell.cell_type == "markdown":
                text = split_markdown(cell.source, where)[language]
                cell.source = project_home.rewrite_links(text, home, relative)
            elif cell.cell_type == "code":
                cell.source = split_code(cell.source, where)[language]
        notebook.metadata["vggcifar"] = {"language": language, "source": shown(path)}
        written[language] = notebook
    return written


def planned(home=None):
    """``[(source, target, text)]``: every language notebook and the text it must hold.

    Raises :class:`SourceError` for a source cell that cannot be split.
    """
    return [
        (path, target_path(path, language), nbformat.writes(notebook) + "\n")
        for path in source_paths()
        for language, notebook in language_notebooks(path, home).items()
    ]


def leftovers(expected):
    """Notebooks in ``en/`` or ``ja/`` that no source writes (its source was removed or renamed)."""
    return [
        target
        for language in LANGUAGES
        for target in notebooks_in(notebooks_folder() / language)
        if target not in expected
    ]


def problems(home=None):
    """The written notebooks that are missing, out of step or left over, as lines (empty: all in step)."""
    try:
        plan = planned(home)
    except SourceError as error:
        return [str(error)]
    found = []
    for path, target, text in plan:
        if not target.exists():
            found.append(f"{shown(target)} is missing")
        elif target.read_text(encoding="utf-8") != text:
            found.append(f"{shown(target)} is out of step with {shown(path)}")
    found += [
        f"{shown(target)} has no source in notebooks/source/" for target in leftovers({t for _, t, _ in plan})
    ]
    return found


def write(home=None):
    """Write every language notebook; remove those whose source is gone. Return the count written."""
    plan = planned(home)
    for _, target, text in plan:
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
    for target in leftovers({t for _, t, _ in plan}):
        target.unlink()  # generated here, from a source that no longer exists
    return len(plan)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when out of step")
    args = parser.parse_args(argv)
    if args.check:
        found = problems()
        for line in found:
            print(line)
        if found:
            print(f"{len(found)} problem(s); run: {COMMAND}")
            return 1
        count = len(source_paths())
        print(f"notebooks/en and notebooks/ja are in step with notebooks/source ({count} notebooks)")
        return 0
    try:
        count = write()
    except SourceError as error:
        print(error)
        return 1
    print(f"wrote {count} notebooks into notebooks/en and notebooks/ja from notebooks/source")
    return 0


if __name__ == "__main__":
    sys.exit(main())
