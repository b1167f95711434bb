#!/usr/bin/env python3
"""Write ``notebooks/source/00_article.ipynb``: the article's five steps (01 to 05) in one notebook.

On Colab every notebook gets its own machine, so 04 and 05 train a run of their own when
03's run folder is not there. ``00_article`` holds the cells of ``01_data`` ...
``05_saving`` in order, after one shared setup (one folded setup cell, one ``parameters``
cell, one check), and trains once.

    python tools/make_article_notebook.py           # write notebooks/source/00_article.ipynb from 01-05
    python tools/make_article_notebook.py --check   # exit 1, saying what differs, when out of step

The notebook is generated: edit 01 to 05 and run this script, never edit 00 by hand.
Then ``tools/make_language_notebooks.py`` splits it, as every source notebook, into
``notebooks/en/`` and ``notebooks/ja/``.
Each step's cells keep their ids with ``s<step>-`` in front (``s3-train``); the cells up
to a step's ``check-parameters`` cell are its setup and are left out. The test suite runs
the check (``tests/test_article_notebook.py``).

00 reads as one lesson, not as five notebooks side by side:

* One setup, one ``parameters`` cell, one check cell: every step's check cell, each line
  once (``use_parameters`` applies the seed, precision and strategy; 03 opens its run
  folder), so that step 2's model is built under the precision and strategy. Imports
  that only the cells 00 leaves out or replaces used are left out.
* Data loaded once, model built once. A step notebook runs on its own, so 03 and 05 load
  the data again, 03 builds the model again and 04 and 05 find (or train) a run. In 00,
  top-level statements ``dataset = load_data(...)`` and ``print(dataset.describe())`` after
  step 1 are dropped, and the table ``OMIT`` names the step cells 00 leaves out and
  ``REPLACED`` those it replaces, each with the reason: step 3 trains step 2's ``model``,
  step 4 plots 03's ``history``, step 5 saves the trained model read back from the run
  folder's ``model.keras``, as 05 does (so 05's file sizes hold in 00). A name in the tables
  that no step has any more stops the script.
* No references to the other notebooks: ``REWRITES`` turns "notebook 0N", "ノートブック 0N"
  and ``0N_name`` (N = 1 to 5) into "step N" / "ステップ N"; "Next:" and "次は" paragraphs
  are dropped. Notebooks 06 to 08 lie past the article and keep their names
  (``ALLOWED_REFERENCES``, which the test reads too).
* One closing cell gathers the steps' exercises, each under its step, and the pointer past
  the article (05's last paragraph), with the credits of the article's sources.
"""

from __future__ import annotations

import argparse
import ast
import copy
import io
import re
import sys
import textwrap
import tokenize
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from project_home import colab_link, current_home, github_link

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks" / "source"  # the bilingual source (tools/make_language_notebooks.py)
STEPS = ["01_data", "02_model", "03_training", "04_plots", "05_saving"]
TARGET = "00_article"
RELATIVE = f"notebooks/source/{TARGET}.ipynb"
COMMAND = "python tools/make_article_notebook.py"
#: A step's setup cells, in this order; the step's own cells follow its check cell.
SETUP_IDS = [
    "title",
    "overview",
    "setup-heading",
    "install",
    "imports",
    "parameters-heading",
    "parameters",
    "check-parameters",
]
#: 00's own setup cells: the install part and every step's imports in one folded cell.
ARTICLE_SETUP_IDS = [
    "title",
    "overview",
    "setup-heading",
    "install",
    "parameters-heading",
    "parameters",
    "check-parameters",
]
REQUIRED_IDS = ["title", "install", "imports", "parameters", "check-parameters"]
#: Calls in a check cell that only check (or mount Google Drive): they run once, in 00's check cell.
CHECK_CALLS = {"check_params", "mount_drive_if_needed"}
#: The code 00 writes itself is laid out as `ruff format` does, with pyproject.toml's line length.
LINE_LENGTH = 110
TITLE = re.compile(r"step (\d+) of \d+\s*:\s*(.+)$", re.IGNORECASE)
FIRST_IMPORT = "vggcifar"  # `import vggcifar` comes first: it quiets TensorFlow's start-up messages
MARKER = "<!-- ja -->"
#: A code line's Japanese version, right below it (tools/make_language_notebooks.py): it goes
#: where that line goes.
JA_LINE = re.compile(r"^\s*#ja\|")
SETUP_TITLE = "# @title Setup"  # a step's one setup cell, folded in Colab
COLAB_LOGO = "https://www.tensorflow.org/images/colab_logo_32px.png"
GITHUB_LOGO = "https://www.tensorflow.org/images/GitHub-Mark-32px.png"


#: Step cells that 00 leaves out, and why.
OMIT = {
    "s3-build": "step 3 trains step 2's `model`: 00 builds the model once",
}
#: Step cells that 00 replaces (markdown: (English, Japanese); code: source), and why.
REPLACED = {
    "s3-build-heading": (
        "## The model · モデル\n\nThe model is step 2's `model`, the article's listing, built "
        "after the setup cell set the seed, the precision and the strategy. It is trained here.",
        "モデルはステップ 2 の `model`(記事の層を 1 層ずつ書いたリスト)です。準備のセルがシード、計算精度、"
        "分散戦略を設定した後で構築されています。ここではこのモデルを学習させます。",
    ),
    "s3-load-heading": (
        "## Prepare the data · データを準備する\n\nThe data of step 1, `dataset`, prepared as "
        "the article does it: pixels become 32-bit floats divided by 255, labels become one-hot "
        "vectors.\n\n`split_validation` decides which pictures the model is checked on after "
        'every epoch (`x_val`, `y_val`). With the article\'s `validation = "test"` they are simply '
        "the test pictures, as in the article's `validation_data=(x_test, y_test)`; the section "
        '*A word on validation* below says why that is questionable, and what `"holdout"` does '
        "instead.",
        "ステップ 1 のデータ `dataset` を、記事と同じように準備します。"
        "画素値は 32 ビットの浮動小数点数にして 255 で割り、ラベルはワンホット表現のベクトルにします。"
        "\n\n`split_validation` は、各エポックの後にモデルを確かめる画像(`x_val`、`y_val`)を決めます。"
        '記事と同じ `validation = "test"` では、記事の `validation_data=(x_test, y_test)` と同じく、'
        "テストデータの画像そのものを使います。これがなぜ問題になりうるのか、"
        'また `"holdout"` では代わりに何をするのかは、後の「検証についてひとこと」の節で説明します。',
    ),
    "s4-run-heading": (
        "## The history · 履歴\n\n`history`, what step 3's `model.fit` returned, holds one list "
        "per metric (`loss`, `accuracy`, `val_loss`, `val_accuracy`) in `history.history`, one "
        "number per epoch. The red curves are the validation pictures that `validation` chose.",
        "`history` はステップ 3 の `model.fit` が返したもので、`history.history` に評価指標(`loss`、"
        "`accuracy`、`val_loss`、`val_accuracy`)ごとに、エポックごとの値を 1 つずつ並べたリストを持ちます。"
        "赤い曲線は、`validation` が選んだ検証用の画像のものです。",
    ),
    "s4-run": (
        'red_line = validation_label(validation)  # "test", as in the article\n'
        '#ja| red_line = validation_label(validation)  # 記事と同じく "test"\n'
        'print(f"{len(history.epoch)} epochs in history; the red curves are {red_line!r}")\n'
    ),
    "s5-run-heading": (
        "## The trained model · 学習済みモデル\n\nThe run folder that step 3 wrote ends with the "
        "trained model, `model.keras`; `keras.models.load_model` reads it back. It holds the "
        "layers and the weights, not Adam's state: the model saved below is the trained one, "
        "without the optimizer that `fit` left in memory.",
        "ステップ 3 が書き出したランフォルダには、最後に学習済みモデル `model.keras` が保存されます。"
        "これを `keras.models.load_model` で読み込みます。このファイルは層と重みを持ち、Adam の状態は"
        "持ちません。下で保存するのは学習済みのモデルで、`fit` がメモリに残した最適化手法は含みません。",
    ),
    "s5-run": (
        "model = keras.models.load_model(Path(run_dir) / runs.MODEL) "
        " # the trained model, without Adam's state\n"
        "#ja| model = keras.models.load_model(Path(run_dir) / runs.MODEL) "
        " # 学習済みモデル(Adam の状態なし)\n"
        'print("loaded", model.name, f"with {model.count_params():,} parameters from {run_dir!r}")\n'
    ),
}
#: Text rewrites in 00's markdown: the other notebooks of the article become its steps.
REWRITES = [
    (r"\*\*0([1-5])_[a-z]+\*\*", r"**step \1**"),
    (r"`0([1-5])_[a-z]+(?:\.ipynb)?`", r"step \1"),
    (r"\b0([1-5])_[a-z]+\b", r"step \1"),
    (r"\bnotebooks 04\s+to 08\b", "the later steps and notebooks 06 to 08"),
    (r"ノートブック 04 から 08", "後のステップとノートブック 06 から 08"),
    (r"\bnotebook 0([1-5])\b", r"step \1"),
    (r"\bNotebook 0([1-5])\b", r"Step \1"),
    (r"ノートブック 0([1-5])", r"ステップ \1"),
]
#: Exercises worded for a step notebook, reworded for 00 (which has no build cell in step 3:
#: its model is step 2's). Each text must still be in the step's exercises.
EXERCISE_REWRITES = [
    (
        "in the build cell, use\n   `build_vgg16(dataset.input_shape, "
        "dataset.num_classes, batch_norm=False)` instead",
        "in a new cell after step 2's listing, write\n"
        "   `model = build_vgg16(input_shape, num_classes, batch_norm=False)`",
    ),
    (
        "モデルを構築するセルで、代わりに `build_vgg16(dataset.input_shape, "
        "dataset.num_classes, batch_norm=False)` を使い",
        "ステップ 2 の 1 層ずつ書いたリストの後に新しいセルを置いて "
        "`model = build_vgg16(input_shape, num_classes, batch_norm=False)` と書き",
    ),
]
#: What 00 may still name: the notebooks past the article.
ALLOWED_REFERENCES = r"[Nn]otebooks? 0[6-8]|ノートブック 0[6-8]|notebooks 06 to 08"
#: A closing paragraph of a step's summary that points past the article.
GOING_FURTHER = ("This is the end", "これで記事の")
EXERCISES_EN, EXERCISES_JA = "## Exercises", "## 演習"


class ArticleNotebookError(Exception):
    """The step notebooks cannot be joined as they are (the message says why and where)."""


# --- reading the steps ----------------------------------------------------------------------


def read_step(name):
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


def _split_setup_cell(notebook):
    """A step whose one setup cell (id ``install``, ``# @title Setup``) also imports: its
    install part and its imports part as two cells, as 00 joins them (``import vggcifar``
    starts the imports)."""
    ids = [cell.get("id") for cell in notebook.cells]
    if "imports" in ids or "install" not in ids:
        return notebook
    notebook = copy.deepcopy(notebook)
    at = ids.index("install")
    install = notebook.cells[at]
    head, marker, tail = install.source.partition(f"\nimport {FIRST_IMPORT}")
    if not marker:
        return notebook
    install.source = head.removeprefix(SETUP_TITLE + "\n").rstrip() + "\n"
    install.metadata = {}
    notebook.cells.insert(at + 1, nbformat.v4.new_code_cell(marker.lstrip("\n") + tail, id="imports"))
    return notebook


def split_step(name, notebook):
    """``({setup id: cell}, [the step's own cells])`` of one step notebook."""
    notebook = _split_setup_cell(notebook)
    ids = [cell.get("id") for cell in notebook.cells]
    missing = [i for i in REQUIRED_IDS if i not in ids]
    if missing:
        raise ArticleNotebookError(
            f"{name} has no cell with id {missing}; {TARGET} is made from the cells "
            f"{REQUIRED_IDS} of every step"
        )
    end = ids.index("check-parameters")
    unknown = [i for i in ids[:end] if i not in SETUP_IDS]
    if unknown:
        raise ArticleNotebookError(
            f"{name}: cell(s) {unknown} come before its check cell but are not setup cells "
            f"{SETUP_IDS}; move them below 'check-parameters' or teach {COMMAND.split()[1]} "
            "where they go"
        )
    late = [i for i in ids[end + 1 :] if i in SETUP_IDS]
    if late:
        raise ArticleNotebookError(f"{name}: setup cell(s) {late} come after its check cell")
    return {cell.id: cell for cell in notebook.cells[: end + 1]}, notebook.cells[end + 1 :]


def _statements(source, where):
    """``[(node, text)]``: each top-level statement with its own lines, comments included
    (and the ``#ja|`` lines right below it, its Japanese version)."""
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        raise ArticleNotebookError(f"{where}: {error}") from error
    lines = source.splitlines()
    found, start = [], 0
    for node in tree.body:
        end = node.end_lineno
        while end < len(lines) and JA_LINE.match(lines[end]):  # the statement's '#ja|' lines
            end += 1
        chunk = lines[start:end]  # comment lines above a statement belong to it
        while chunk and not chunk[0].strip():
            chunk.pop(0)
        found.append((node, "\n".join(chunk)))
        start = end
    if found and "".join(lines[start:]).strip():  # comment lines after the last statement
        found[-1] = (found[-1][0], "\n".join([found[-1][1], *lines[start:]]).rstrip())
    return found


def _trailing_comment(text):
    """The comment at the end of a one-line statement's text, or ''."""
    tokens = tokenize.generate_tokens(io.StringIO(text).readline)
    comments = [token.string for token in tokens if token.type == tokenize.COMMENT]
    return comments[-1] if comments and "\n" not in text.strip() else ""


# --- code laid out as `ruff format` lays it out ---------------------------------------------


def _call(head, arguments, tail=")"):
    """``head + arguments + tail`` on one line, or split the way ruff format splits a call."""
    joined = ", ".join(arguments)
    if len(head + joined + tail) <= LINE_LENGTH:
        return [head + joined + tail]
    if len("    " + joined) <= LINE_LENGTH:
        return [head, "    " + joined, tail]
    return [head, *(f"    {argument}," for argument in arguments), tail]


def _from_import(module, names):
    """``from module import names`` on one line, or one name a line as ruff format splits it."""
    line = f"from {module} import {', '.join(names)}"
    if len(line) <= LINE_LENGTH:
        return [line]
    return [f"from {module} import (", *(f"    {name}," for name in names), ")"]


def _imported_names(source):
    """The names an imports cell binds, each with what it imports."""
    found = {}
    for node in _parsed(source).body:
        if isinstance(node, ast.Import):
            found |= {a.asname or a.name.split(".")[0]: (None, a.name, a.asname) for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            found |= {a.asname or a.name: (node.module, a.name, a.asname) for a in node.names}
    return found


def _parsed(source):
    try:
        return ast.parse(source)
    except SyntaxError:
        return ast.parse("")


def defined_names(parts):
    """``{name: step}``: the functions and classes the steps' own cells define."""
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    found = {}
    for name, (_, own) in parts.items():
        for cell in own:
            if cell.cell_type == "code":
                for node in _parsed(cell.source).body:
                    if isinstance(node, kinds):
                        found.setdefault(node.name, name)
    return found


# --- the shared parameters ------------------------------------------------------------------


def merged_parameters(steps):
    """The union of the steps' ``parameters`` cells: one line per name, the same defaults."""
    lines, values, origin = {}, {}, {}
    for name, setup in steps.items():
        for node, text in _statements(setup["parameters"].source, f"{name} parameters cell"):
            if not (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
            ):
                raise ArticleNotebookError(
                    f"{name}: its parameters cell holds {text!r}; only `name = literal` lines can be shared"
                )
            key = node.targets[0].id
            try:
                value = ast.literal_eval(node.value)
            except ValueError as error:
                raise ArticleNotebookError(f"{name}: parameter {key} is not a literal") from error
            if key in values and (values[key] != value or type(values[key]) is not type(value)):
                raise ArticleNotebookError(
                    f"the steps share their parameters, but {key} is {values[key]!r} in "
                    f"{origin[key]} and {value!r} in {name}; give it the same default everywhere"
                )
            if key not in values:
                lines[key], values[key], origin[key] = text, value, name
    return lines, values


# --- the shared imports ---------------------------------------------------------------------


def _import_key(alias_name):
    """isort's order inside ``from x import ...``: CONSTANTS, Classes, functions."""
    kind = 0 if alias_name.isupper() else 1 if alias_name[:1].isupper() else 2
    return kind, alias_name.lower()


def _group(module):
    top = module.split(".")[0]
    if top == FIRST_IMPORT:
        return 2
    return 0 if top in sys.stdlib_module_names else 1


def merged_imports(steps, defined, unused=frozenset()):
    """The union of the steps' imports cells, in isort's groups with ``import vggcifar`` first.

    A name that a step defines in its own cells (02's ``build_vgg16``) is not imported:
    in one notebook the step's definition, the same code as the package's, serves every
    later step. Returns ``(text, {name: step that defines it})``.
    """
    bound = {}  # bound name -> what it is bound to, to catch one name bound two ways
    comments = {}  # an alias imported on a line of its own -> that line's comment
    japanese = {}  # such an alias -> the '#ja|' lines that give the line's Japanese comment
    plain, froms, others, left_out = {}, {}, {}, {}
    kept_unused = set()  # imported for an exercise: kept although no cell uses it
    for name, setup in steps.items():
        for node, text in _statements(setup["imports"].source, f"{name} imports cell"):
            if isinstance(node, ast.Import):
                aliases = [("import", a.name, None, a.asname) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    raise ArticleNotebookError(f"{name}: relative import {text!r}")
                aliases = [("from", node.module, a.name, a.asname) for a in node.names]
            else:
                others.setdefault(ast.dump(node), text)
                continue
            ja_lines = [line for line in text.splitlines() if JA_LINE.match(line)]
            comment = _trailing_comment("\n".join(x for x in text.splitlines() if not JA_LINE.match(x)))
            for alias in aliases:
                kind, module, imported, asname = alias
                if kind == "import":
                    as_bound = asname or module.split(".")[0]
                    target = ("module", module if asname else module.split(".")[0])
                else:
                    as_bound, target = asname or imported, ("attribute", module, imported)
                if bound.setdefault(as_bound, target) != target:
                    raise ArticleNotebookError(
                        f"{name} binds {as_bound} to {target}, another step to "
                        f"{bound[as_bound]}; in one notebook they would clash"
                    )
                if as_bound in defined:
                    left_out[as_bound] = defined[as_bound]
                    continue
                if as_bound in unused and as_bound != FIRST_IMPORT and "noqa: F401" not in comment:
                    continue  # only cells that 00 leaves out or replaces use it (not an exercise's)
                if as_bound in unused:
                    kept_unused.add(as_bound)
                if comment and len(aliases) == 1 and alias not in comments:
                    comments[alias], japanese[alias] = comment, ja_lines
                if kind == "import":
                    plain.setdefault(alias, None)
                else:
                    froms.setdefault(module, {}).setdefault(alias, None)
    first = ("import", FIRST_IMPORT, None, None)
    if first not in plain:
        raise ArticleNotebookError(f"no step imports {FIRST_IMPORT} in its imports cell")

    def commented(lines, aliases):
        if len(aliases) == 1 and aliases[0] in comments:
            lines[-1] += "  " + comments[aliases[0]]
            lines += japanese[aliases[0]]
        return lines

    groups = [[], [], []]
    for alias in sorted(plain, key=lambda a: (a[1].lower(), a[3] or "")):
        if alias != first:
            statement = f"import {alias[1]}" + (f" as {alias[3]}" if alias[3] else "")
            groups[_group(alias[1])] += commented([statement], [alias])
    for module in sorted(froms, key=str.lower):
        simple = sorted((a for a in froms[module] if not a[3]), key=lambda a: _import_key(a[2]))
        entries = [  # `x as y` on a line of its own, as isort and ruff keep them
            (_import_key(a[2]), commented([f"from {module} import {a[2]} as {a[3]}"], [a]))
            for a in froms[module]
            if a[3]
        ]
        if simple:
            names = [a[2] for a in simple]
            entries.append((_import_key(names[0]), commented(_from_import(module, names), simple)))
        for _, lines in sorted(entries):
            groups[_group(module)] += lines
    blocks = [group for group in groups if group]
    blocks[0] = commented([f"import {FIRST_IMPORT}"], [first]) + blocks[0]
    text = "\n\n".join("\n".join(block) for block in blocks)
    if left_out:
        text += "\n" + "\n".join(
            f"# {n}: step {STEPS.index(step) + 1} defines it, below\n"
            f"#ja| # {n}: 下のステップ {STEPS.index(step) + 1} で定義します"
            for n, step in sorted(left_out.items())
        )
    if others:
        text += "\n\n" + "\n".join(others.values())
    _same_names(text, set(bound) - set(left_out) - (set(unused) - {FIRST_IMPORT} - kept_unused))
    return text, left_out


def _loaded_names(sources):
    """The names that the code of ``sources`` reads (``np`` of ``np.array``, not ``array``)."""
    return {
        node.id
        for source in sources
        for node in ast.walk(_parsed(source))
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)
    }


def _same_names(text, expected):
    """The regenerated imports bind exactly the names the steps' imports bound."""
    names = set(_imported_names(text))
    assert names == expected, names ^ expected


# --- the shared check -----------------------------------------------------------------------


def _check_call(node):
    if (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Name)
        and node.value.func.id in CHECK_CALLS
    ):
        return node.value.func.id
    return None


def merged_check(steps, parameters):
    """``(00's check cell, {step: the rest of its check cell})``.

    A statement that several steps' check cells share (``params = use_parameters(globals())``)
    runs once; its text, comment included, is that of the step with the most parameters,
    whose comment says the most of what it applies.
    """
    keywords, checks, rest, shared = {}, {}, {}, {}
    for index, (name, setup) in enumerate(steps.items()):
        own = []
        weight = (len(_setup_content("parameters", setup["parameters"].source)), -index)
        for node, text in _statements(setup["check-parameters"].source, f"{name} check cell"):
            called = _check_call(node)
            if called == "check_params":
                if node.value.args:
                    raise ArticleNotebookError(f"{name}: check_params takes keywords only here")
                for keyword in node.value.keywords:
                    value = ast.unparse(keyword.value)
                    if keywords.setdefault(keyword.arg, value) != value:
                        raise ArticleNotebookError(
                            f"{name} checks {keyword.arg}={value}, another step "
                            f"{keyword.arg}={keywords[keyword.arg]}"
                        )
                checks.setdefault("check_params", None)
            elif called:
                checks.setdefault(ast.dump(node), text)
            else:
                key = ast.dump(node)
                if key not in shared or weight > shared[key][0]:
                    shared[key] = (weight, text)
                own.append(key)
        if own:
            rest[name] = own
    unknown = [k for k, v in keywords.items() if v not in parameters]
    if unknown:
        raise ArticleNotebookError(f"check_params is given {unknown}, which are not parameters")
    lines = []
    for key, text in checks.items():
        if key == "check_params":
            lines += _call("check_params(", [f"{k}={v}" for k, v in keywords.items()])
        else:
            lines.append(text)
    return "\n".join(lines), {name: [shared[key][1] for key in keys] for name, keys in rest.items()}


# --- the steps' cells -----------------------------------------------------------------------


def _bound_at_top(tree):
    """Names a cell binds at module level (not inside functions, classes or comprehensions)."""
    names = set()

    class Visitor(ast.NodeVisitor):
        def visit_Name(self, node):
            if isinstance(node.ctx, ast.Store):
                names.add(node.id)

        def visit_FunctionDef(self, node):
            names.add(node.name)

        visit_AsyncFunctionDef = visit_ClassDef = visit_FunctionDef

        def skip(self, node):
            pass

        visit_Lambda = visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = skip

    Visitor().visit(tree)
    return names


def step_title(name, title_cell):
    """``(number, English topic, Japanese topic or None)`` from a step's title lines.

    The English title is the first line of the English part, the Japanese one the first
    heading of the Japanese part (each part carries its own headings).
    """
    english_part, _, japanese_part = title_cell.source.partition(MARKER)
    heading = english_part.strip().splitlines()[0].lstrip("#").strip()
    english = heading
    japanese = next(
        (line.lstrip("#").strip() for line in japanese_part.splitlines() if line.startswith("#")), ""
    )
    match = TITLE.search(english)
    if not match:
        raise ArticleNotebookError(f"{name}: its title {heading!r} does not read 'step N of 5: topic'")
    japanese = re.split(r"[:：]", japanese)[-1].strip() if japanese.strip() else None
    return int(match.group(1)), match.group(2).strip(), japanese


def _joined(lines):
    """Lines of one Japanese paragraph as one line: a space only beside a Latin word or code,
    and none after Japanese punctuation."""
    text = ""
    for line in (line.strip() for line in lines):
        before, after = text[-1:], line[:1]
        latin = (before.isascii() and before not in "()") or (
            after.isascii() and after not in "()" and before not in "、。」"
        )
        text += (" " if text and latin else "") + line
    return text


HEADING = re.compile(r"^(#+) (.+?) · (.+)$")


def bilingual(english, japanese):
    """A markdown cell's text: English, the marker line, Japanese.

    The Japanese is written here in short lines; each paragraph becomes one line, as in
    the step notebooks (a line break inside Japanese text would show as a space). A first
    line ``## English · 日本語`` (written so here, to keep the two side by side) becomes
    ``## English`` at the top of the English part and ``## 日本語`` at the top of the
    Japanese part: each part carries its own headings, in its own language.
    """
    english = english.strip()
    paragraphs = [_joined(p.splitlines()) for p in japanese.strip().split("\n\n") if p.strip()]
    first, _, rest = english.partition("\n")
    heading = HEADING.match(first)
    if heading:
        level, english_heading, japanese_heading = heading.groups()
        english = f"{level} {english_heading}\n{rest}".strip()
        paragraphs.insert(0, f"{level} {japanese_heading}")
    return f"{english}\n\n{MARKER}\n\n" + "\n\n".join(paragraphs)


STEP_NOTES = {
    1: (
        "The pictures and their labels, loaded once for the whole lesson.",
        "画像とそのラベルです。レッスン全体を通して、ここで 1 回だけ読み込みます。",
    ),
    2: (
        "The network, built once: the model that step 3 trains.",
        "ネットワークをここで 1 回だけ構築します。ステップ 3 で学習させるモデルです。",
    ),
    3: (
        "Step 2's model trained on step 1's data.",
        "ステップ 2 のモデルをステップ 1 のデータで学習させます。",
    ),
    4: ("The curves of step 3's `history`.", "ステップ 3 の `history` の曲線を描きます。"),
    5: ("The trained model saved as the article saves it.", "学習済みモデルを記事と同じように保存します。"),
}


def heading_cell(number, english, japanese):
    english_note, japanese_note = STEP_NOTES.get(number, ("", ""))
    title = f"# Step {number}: {english} · ステップ {number}" + (f": {japanese}" if japanese else "")
    english_text = title + "\n\n" + textwrap.fill(english_note, 90)
    return nbformat.v4.new_markdown_cell(bilingual(english_text, japanese_note), id=f"step-{number}")


def copied(cell, number, source=None):
    new = {
        "code": nbformat.v4.new_code_cell,
        "markdown": nbformat.v4.new_markdown_cell,
        "raw": nbformat.v4.new_raw_cell,
    }[cell.cell_type]
    source = cell.source if source is None else source
    if cell.cell_type == "code":
        source = source.rstrip("\n")  # as ruff format leaves a notebook's cell
    return new(source, metadata=copy.deepcopy(dict(cell.metadata)), id=f"s{number}-{cell.id}")


def lesson_cell(cell, number, first):
    """The cell as 00 holds it (None: left out), with what this and the next calls give back."""
    cell_id = f"s{number}-{cell.id}"
    if cell_id in OMIT:
        return None
    if cell_id in REPLACED:
        replacement = REPLACED[cell_id]
        if cell.cell_type == "markdown":
            return copied(cell, number, bilingual(*replacement))
        return copied(cell, number, replacement)
    if cell.cell_type == "markdown":
        return copied(cell, number, one_lesson(cell.source))
    if cell.cell_type == "code" and not first:
        source = without_reloads(cell.source, cell_id)
        return copied(cell, number, source) if source.strip() else None
    return copied(cell, number)


# --- one lesson -----------------------------------------------------------------------------


def one_lesson(text):
    """A markdown text of a step with the other notebooks' names made steps, "Next:" dropped."""
    for pattern, replacement in REWRITES:
        text = re.sub(pattern, replacement, text)
    paragraphs = text.split("\n\n")
    kept = [p for p in paragraphs if not p.lstrip().startswith(("Next:", "次は"))]
    return "\n\n".join(kept)


def _reloads(node):
    """A statement that loads the data again, or describes it again (00 loaded it in step 1)."""
    if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
        func = node.value.func
        return isinstance(func, ast.Name) and func.id == "load_data"
    return isinstance(node, ast.Expr) and ast.unparse(node) == "print(dataset.describe())"


def without_reloads(source, where):
    """The source without its top-level statements that load the data again."""
    found = _statements(source, where)
    kept = [text for node, text in found if not _reloads(node)]
    if len(kept) == len(found):
        return source
    return "\n".join(kept).strip() + "\n" if kept else ""


def split_exercises(source):
    """``(summary, exercises (English, Japanese), going further paragraphs (English, Japanese))``."""
    english, marker, japanese = source.partition(MARKER)
    if not marker or EXERCISES_EN not in english or EXERCISES_JA not in japanese:
        return source, None, None
    summary_en, _, exercises_en = english.partition(EXERCISES_EN)
    summary_ja, _, exercises_ja = japanese.partition(EXERCISES_JA)

    def parts(text):
        paragraphs = [p.strip() for p in text.strip().split("\n\n") if p.strip()]
        further = [p for p in paragraphs if p.startswith(GOING_FURTHER)]
        return "\n\n".join(p for p in paragraphs if p not in further), "\n\n".join(further)

    (ex_en, further_en), (ex_ja, further_ja) = parts(exercises_en), parts(exercises_ja)
    summary = f"{summary_en.strip()}\n\n{MARKER}\n\n{summary_ja.strip()}"
    further = (further_en, further_ja) if further_en or further_ja else None
    return summary, (ex_en, ex_ja), further


CREDITS_EN = """
### Credits

The article rebuilt here (2020, in Japanese) trains VGG16 with BatchNormalization on
CIFAR-10. VGG16: Simonyan & Zisserman, [*Very Deep Convolutional Networks for Large-Scale
Image Recognition*][vgg], 2014. BatchNormalization: Ioffe & Szegedy, [*Batch Normalization:
Accelerating Deep Network Training by Reducing Internal Covariate Shift*][bn], 2015.
CIFAR-10: Alex Krizhevsky, [*Learning Multiple Layers of Features from Tiny Images*][cifar], 2009.

[vgg]: https://arxiv.org/abs/1409.1556
[bn]: https://arxiv.org/abs/1502.03167
[cifar]: https://www.cs.toronto.edu/~kriz/cifar.html"""

CREDITS_JA = """
### 出典

ここで再現した記事(2020 年、日本語)は、CIFAR-10 でバッチ正規化(BatchNormalization)付きの VGG16 を学習させています。

VGG16: Simonyan & Zisserman、[*Very Deep Convolutional Networks for Large-Scale Image Recognition*][vgg]、2014 年。

BatchNormalization: Ioffe & Szegedy、[*Batch Normalization: Accelerating Deep Network Training by Reducing Internal Covariate Shift*][bn]、2015 年。

CIFAR-10: Alex Krizhevsky、[*Learning Multiple Layers of Features from Tiny Images*][cifar]、2009 年。

[vgg]: https://arxiv.org/abs/1409.1556
[bn]: https://arxiv.org/abs/1502.03167
[cifar]: https://www.cs.toronto.edu/~kriz/cifar.html"""  # noqa: E501


def closing_cell(exercises, further):
    """00's last cell: every step's exercises under its step, the way past the article, credits."""
    english, japanese = [EXERCISES_EN], [EXERCISES_JA]
    for (number, topic_en, topic_ja), (ex_en, ex_ja) in exercises:
        english.append(f"### Step {number}: {topic_en}\n\n{ex_en}")
        japanese.append(f"### ステップ {number}" + (f": {topic_ja}" if topic_ja else "") + f"\n\n{ex_ja}")
    english.append("## Going further")
    japanese.append("## さらに進んで")
    for further_en, further_ja in further:
        english.append(further_en)
        japanese.append(further_ja)
    english.append(CREDITS_EN.strip())
    japanese.append(CREDITS_JA.strip())
    text = "\n\n".join(english) + f"\n\n{MARKER}\n\n" + "\n\n".join(japanese)
    for before, after in EXERCISE_REWRITES:
        if before not in text:
            raise ArticleNotebookError(
                f"the exercises no longer say {before[:60]!r}...; "
                f"update EXERCISE_REWRITES in {COMMAND.split()[1]}"
            )
        text = text.replace(before, after)
    return nbformat.v4.new_markdown_cell(one_lesson(text), id="exercises")


# --- 00's own cells -------------------------------------------------------------------------


def title_cell(home):
    colab, github = colab_link(home, RELATIVE), github_link(home, RELATIVE)
    english = f"""
# The whole article in one notebook · 記事全体を 1 つのノートブックで

<table align="left">
  <td><a target="_blank" href="{colab}"><img src="{COLAB_LOGO}" />Run in Google Colab</a></td>
  <td><a target="_blank" href="{github}"><img src="{GITHUB_LOGO}" />View source on GitHub</a></td>
</table>

Every step of the article, one after another on one machine, with the model trained once."""
    japanese = "記事のすべてのステップを 1 台のマシンで順に実行し、モデルの学習は 1 回だけ行います。"
    return nbformat.v4.new_markdown_cell(bilingual(english, japanese), id="title")


OVERVIEW_EN = """
The article's five steps (the data, the model, training, the plots, saving) as one lesson,
on one machine: the data is loaded once, in step 1; the model is built once, in step 2;
step 3 trains it, step 4 draws the curves of that training and step 5 saves the trained
model. The exercises of every step are gathered at the end.

Three cells come first: the setup (folded in Colab), the `parameters` cell, and one cell
that checks and applies the parameters and opens the run folder.
The parameters and their defaults are the article's settings, so one papermill
command sets them. With a GPU like the article's (34 s an epoch) training takes about 11
minutes; on a CPU it takes hours: there, try `subset = 500` and `epochs = 2` first.

This notebook is generated by `tools/make_article_notebook.py` from the step notebooks of
the article, which run on their own. Do not edit it by hand: edit the step notebooks, then
run `python tools/make_article_notebook.py`. The tests fail when it is out of step with them."""

OVERVIEW_JA = """
記事の 5 つのステップ(データ、モデル、学習、グラフ、保存)を、1 台のマシンで 1 つのレッスンとしてたどります。
データはステップ 1 で 1 回だけ読み込み、モデルはステップ 2 で 1 回だけ構築します。
ステップ 3 でそのモデルを学習させ、ステップ 4 で学習の曲線を描き、ステップ 5 で学習済みモデルを保存します。
各ステップの演習は最後にまとめてあります。

最初に 3 つのセルがあります。準備のセル(Colab では折りたたまれています)、`parameters` セル、
そしてパラメータを確認して適用し、ランフォルダを開くセルです。
パラメータとその既定値は記事の設定と同じなので、1 つの papermill コマンドで設定できます。
記事と同程度の GPU(1 エポック 34 秒)なら学習は約 11 分で終わりますが、CPU では何時間もかかります。
CPU では、まず `subset = 500` と `epochs = 2` を試してください。

このノートブックは、単独で動く記事のステップのノートブックから
`tools/make_article_notebook.py` で生成したものです。手で編集しないでください。
ステップのノートブックを編集してから `python tools/make_article_notebook.py` を実行してください。
このノートブックがステップのノートブックとずれていると、テストが失敗します。"""

SETUP_EN = """
## Setup · 準備

One cell, folded in Colab (double-click it to see its code): it installs the project's
small package where it is missing, imports what all five steps use, and prints the
versions and whether a GPU is there. TensorFlow may print a few start-up lines first
(about oneDNN and, on a machine without a GPU, "Could not find cuda drivers" or "failed
call to cuInit"): they are notes, not errors."""

SETUP_JA = """
Colab では折りたたまれている 1 つのセルです(ダブルクリックするとコードが表示されます)。
このプロジェクトの小さなパッケージが入っていなければインストールし、5 つのステップで使うものを読み込んでから、
各ライブラリのバージョンと GPU の有無を表示します。
その前に TensorFlow が起動時のメッセージを数行表示することがあります
(oneDNN についてのものや、GPU のないマシンでは "Could not find cuda drivers"、"failed call to cuInit")。
これらは状況を知らせるだけのメッセージで、エラーではありません。"""

PARAMETERS_EN = """
## Parameters · ノートブックのパラメータ

The five step notebooks share their parameters; this cell holds all of them, with the
same defaults (the article's settings), so `papermill -p epochs 5 -p subset 500 ...` sets
them here as it does there. `run_dir` is where step 3 writes its run and where steps 4
and 5 read it. On Colab, a `run_dir` under `/content/drive/MyDrive/` keeps the run on
Google Drive, so a run cut off by a disconnect continues where it stopped; `data_cache`
there keeps the downloaded CIFAR-10. The next cell checks every parameter before any long
work starts."""

PARAMETERS_JA = """
5 つのステップのノートブックは同じパラメータを使います。このセルはそのすべてを同じ既定値(記事の設定)で
持っているので、`papermill -p epochs 5 -p subset 500 ...` で、ステップのノートブックと同じようにここでも
値を設定できます。`run_dir` は、ステップ 3 がランを書き込み、ステップ 4 と 5 がそれを読む場所です。
Colab で `run_dir` を `/content/drive/MyDrive/` の下にすると、ランが Google ドライブに残るので、
接続が切れて中断したランも止まったところから続けられます。
`data_cache` もそこに置くと、ダウンロードした CIFAR-10 が残ります。
時間のかかる処理が始まる前に、次のセルがすべてのパラメータを確認します。"""


def setup_cell(install, imports):
    """00's one setup cell, folded in Colab as the steps' are: the install part, then the imports."""
    source = f"{SETUP_TITLE}\n{install.rstrip()}\n\n{imports}"
    return nbformat.v4.new_code_cell(source, metadata={"cellView": "form"}, id="install")


def split_setup(source):
    """``(install part, imports part)`` of 00's setup cell (see :func:`setup_cell`)."""
    head, marker, tail = source.partition(f"\nimport {FIRST_IMPORT}")
    return head.removeprefix(SETUP_TITLE + "\n").rstrip() + "\n", (
        marker.lstrip("\n") + tail
    ) if marker else ""


def build(home=None):
    """The 00_article notebook, made in memory from 01-05 (raises ArticleNotebookError)."""
    home = home or current_home()
    notebooks = {name: read_step(name) for name in STEPS}
    parts = {name: split_step(name, notebook) for name, notebook in notebooks.items()}
    setups = {name: setup for name, (setup, _) in parts.items()}
    parameter_lines, parameters = merged_parameters(setups)
    check, own_setup = merged_check(setups, parameters)
    defined = defined_names(parts)
    imports, left_out = merged_imports(setups, defined)
    for imported, step in left_out.items():
        users = [n for n in STEPS if imported in _imported_names(setups[n]["imports"].source)]
        if STEPS.index(users[0]) < STEPS.index(step):
            raise ArticleNotebookError(
                f"{users[0]} imports {imported}, which {step} defines later; {TARGET} cannot leave "
                "the import out"
            )

    article = nbformat.v4.new_notebook()
    article.metadata = copy.deepcopy(notebooks[STEPS[0]].metadata)
    article.nbformat_minor = max(notebooks[STEPS[0]].nbformat_minor, 5)
    parameters_cell = nbformat.v4.new_code_cell("\n".join(parameter_lines.values()), id="parameters")
    parameters_cell.metadata["tags"] = ["parameters"]
    cells = [
        title_cell(home),
        nbformat.v4.new_markdown_cell(bilingual(OVERVIEW_EN, OVERVIEW_JA), id="overview"),
        nbformat.v4.new_markdown_cell(bilingual(SETUP_EN, SETUP_JA), id="setup-heading"),
        setup := setup_cell(setups[STEPS[0]]["install"].source, imports),
        nbformat.v4.new_markdown_cell(bilingual(PARAMETERS_EN, PARAMETERS_JA), id="parameters-heading"),
        parameters_cell,
        nbformat.v4.new_code_cell(
            "\n".join(dict.fromkeys(line for line in [check, *sum(own_setup.values(), [])] if line)),
            id="check-parameters",
        ),
    ]
    numbers, exercises, further, seen = set(), [], [], set()
    for name in STEPS:
        number, english, japanese = step_title(name, setups[name]["title"])
        if number in numbers:
            raise ArticleNotebookError(f"{name}: another step is also step {number}")
        numbers.add(number)
        own = parts[name][1]
        cells.append(heading_cell(number, english, japanese))
        for cell in own:
            if cell.cell_type == "code":
                changed = _bound_at_top(ast.parse(cell.source)) & set(parameters)
                if changed:
                    raise ArticleNotebookError(
                        f"{name}: cell {cell.id!r} assigns the parameter(s) {sorted(changed)}; in "
                        f"{TARGET} every later step would see the new value"
                    )
            seen.add(f"s{number}-{cell.id}")
            lesson = lesson_cell(cell, number, name == STEPS[0])
            if lesson is None:
                continue
            if lesson.cell_type == "markdown":
                summary, found, beyond = split_exercises(lesson.source)
                lesson.source = summary
                if found:
                    exercises.append(((number, english, japanese), found))
                if beyond:
                    further.append(beyond)
            cells.append(lesson)
    stale = sorted((set(OMIT) | set(REPLACED)) - seen)
    if stale:
        raise ArticleNotebookError(f"{COMMAND.split()[1]} names cells {stale} that no step has any more")
    cells.append(closing_cell(exercises, further))
    used = _loaded_names([imports, *(c.source for c in cells if c.cell_type == "code")])
    imports, _ = merged_imports(setups, defined, unused=set(_imported_names(imports)) - used)
    cells[cells.index(setup)] = setup_cell(setups[STEPS[0]]["install"].source, imports)
    article.cells = cells
    ids = [cell.id for cell in cells]
    assert len(ids) == len(set(ids)), "cell ids repeat"
    nbformat.validate(article)
    return article


# --- in step or not -------------------------------------------------------------------------


def _setup_content(cell_id, source):
    """What a setup cell gives 00's merged cell: parameters and values, imports, checks."""
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return {("unreadable", source)}
    if cell_id == "parameters":
        return {(ast.unparse(n.targets[0]), ast.unparse(n.value)) for n in body if isinstance(n, ast.Assign)}
    if cell_id == "imports":
        return {
            (type(n).__name__, getattr(n, "module", None), a.name, a.asname)
            for n in body
            if isinstance(n, (ast.Import, ast.ImportFrom))
            for a in n.names
        }
    found = set()
    for node in body:
        called = _check_call(node)
        if called == "check_params":
            found |= {("checks", k.arg) for k in node.value.keywords}
        elif called:
            found.add(ast.dump(node))
    return found


def _origins(cell_id, committed, steps):
    """The step notebooks a differing cell of 00 comes from, for the message."""
    match = re.fullmatch(r"(?:s|step-)(\d+)(?:-.*)?", cell_id)
    if match and 1 <= int(match.group(1)) <= len(STEPS):
        return [STEPS[int(match.group(1)) - 1]]
    if cell_id == "install":  # the install part is 01's; the imports part is every step's
        cell_id, committed = "imports", _imports_part(committed)
    if cell_id in ("imports", "parameters", "check-parameters"):
        have = _setup_content(cell_id, committed.source) if committed is not None else set()
        if cell_id == "imports":  # what a step defines is left out of the imports on purpose
            defined = defined_names({name: split_step(name, step) for name, step in steps.items()})
            have |= {
                item
                for step in steps.values()
                for item in _setup_content(cell_id, _cell(step, cell_id).source)
                if (item[3] or item[2]) in defined
            }
        behind = [
            name for name in STEPS if not _setup_content(cell_id, _cell(steps[name], cell_id).source) <= have
        ]
        return behind or STEPS
    return ["tools/make_article_notebook.py"]


def _imports_part(cell):
    """00's setup cell as an imports cell (None stays None)."""
    return None if cell is None else nbformat.v4.new_code_cell(split_setup(cell.source)[1])


def _cell(notebook, cell_id):
    notebook = _split_setup_cell(notebook)
    return next(cell for cell in notebook.cells if cell.get("id") == cell_id)


def _comparable(cell):
    keys = ("cell_type", "source", "metadata", "outputs", "execution_count", "attachments")
    return {key: cell.get(key) for key in keys}


def problems(path=None, home=None):
    """What differs between the committed 00_article and one made now, as readable lines."""
    path = Path(path or NOTEBOOKS / f"{TARGET}.ipynb")
    try:
        expected = build(home)
    except ArticleNotebookError as error:
        return [f"{TARGET} cannot be made from the step notebooks: {error}"]
    if not path.exists():
        return [f"{path.name} is missing: run {COMMAND}"]
    committed = nbformat.read(path, as_version=4)
    if nbformat.writes(committed) == nbformat.writes(expected):
        return []
    steps = {name: read_step(name) for name in STEPS}
    old = {cell.get("id"): cell for cell in committed.cells}
    new = {cell.id: cell for cell in expected.cells}
    details, sources = [], []
    for cell_id, cell in new.items():
        if cell_id not in old:
            details.append(f"cell {cell_id} is missing")
        elif _comparable(old[cell_id]) != _comparable(cell):
            what = [k for k in ("source", "cell_type", "metadata") if old[cell_id].get(k) != cell.get(k)]
            verb = "differs" if len(what) == 1 else "differ"
            details.append(f"cell {cell_id}: its {' and '.join(what or ['outputs'])} {verb}")
        else:
            continue
        sources += _origins(cell_id, old.get(cell_id), steps)
    for cell_id in old:
        if cell_id not in new:
            details.append(f"cell {cell_id} is not in the step notebooks any more")
            sources += _origins(str(cell_id), None, steps)
    if not details and [c.get("id") for c in committed.cells] != list(new):
        details.append("the cells are in another order")
        sources += STEPS
    if committed.metadata != expected.metadata:
        details.append("the notebook's metadata differ")
        sources.append(STEPS[0])
    if not details:
        details.append("the file's format differs (nbformat version or layout)")
        sources.append("tools/make_article_notebook.py")
    names = ", ".join(sorted(set(sources), key=lambda n: (n not in STEPS, n)))
    return [f"{TARGET} is out of step with {names}: run {COMMAND}"] + [f"  {d}" for d in details]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="do not write; exit 1 and say what differs when out of step"
    )
    args = parser.parse_args(argv)
    if args.check:
        found = problems()
        print("\n".join(found) if found else f"{TARGET} is in step with {', '.join(STEPS)}")
        return 1 if found else 0
    try:
        article = build()
    except ArticleNotebookError as error:
        print(f"{TARGET} cannot be made: {error}", file=sys.stderr)
        return 1
    path = NOTEBOOKS / f"{TARGET}.ipynb"
    nbformat.write(article, path)
    print(f"wrote {path.relative_to(REPO)}: {len(article.cells)} cells from {', '.join(STEPS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
