#!/usr/bin/env python3
"""Write ``notebooks/00_article.ipynb``: the article's five steps (01 to 05) in one notebook.

On Colab every notebook gets its own machine, so 04 and 05 train a run of their own when
03's run folder is not there. ``00_article`` holds the cells of ``01_data`` ...
``05_saving`` in order, after one shared setup (one install cell, one imports cell, one
``parameters`` cell, one check), and trains once.

    python tools/make_article_notebook.py           # write notebooks/00_article.ipynb from 01-05
    python tools/make_article_notebook.py --check   # exit 1, saying what differs, when out of step

The notebook is generated: edit 01 to 05 and run this script, never edit 00 by hand.
Each step's cells keep their ids with ``s<step>-`` in front (``s3-train``); the cells up
to a step's ``check-parameters`` cell are its setup and are left out, except what its
check cell does besides checking (02 seeds, 03 opens its run folder): those lines open
the step, so that each step starts as its own notebook does. The test suite runs the
check (``tests/test_article_notebook.py``).
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
NOTEBOOKS = REPO / "notebooks"
STEPS = ["01_data", "02_model", "03_training", "04_plots", "05_saving"]
TARGET = "00_article"
RELATIVE = f"notebooks/{TARGET}.ipynb"
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
REQUIRED_IDS = ["title", "install", "imports", "parameters", "check-parameters"]
#: Calls in a check cell that only check (or mount Google Drive): they run once, in 00's check cell.
CHECK_CALLS = {"check_params", "mount_drive_if_needed"}
#: The code 00 writes itself is laid out as `ruff format` does, with pyproject.toml's line length.
LINE_LENGTH = 110
TITLE = re.compile(r"step (\d+) of \d+\s*:\s*(.+)$", re.IGNORECASE)
FIRST_IMPORT = "vggcifar"  # `import vggcifar` comes first: it quiets TensorFlow's start-up messages
MARKER = "<!-- ja -->"
SETUP_TITLE = "# @title Setup"  # a step's one setup cell, folded in Colab
COLAB_LOGO = "https://www.tensorflow.org/images/colab_logo_32px.png"
GITHUB_LOGO = "https://www.tensorflow.org/images/GitHub-Mark-32px.png"


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
    """``[(node, text)]``: each top-level statement with its own lines, comments included."""
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        raise ArticleNotebookError(f"{where}: {error}") from error
    lines = source.splitlines()
    found, start = [], 0
    for node in tree.body:
        chunk = lines[start : node.end_lineno]  # comment lines above a statement belong to it
        while chunk and not chunk[0].strip():
            chunk.pop(0)
        found.append((node, "\n".join(chunk)))
        start = node.end_lineno
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


def merged_imports(steps, defined):
    """The union of the steps' imports cells, in isort's groups with ``import vggcifar`` first.

    A name that a step defines in its own cells (02's ``build_vgg16``) is not imported:
    in one notebook the step's definition, the same code as the package's, serves every
    later step. Returns ``(text, {name: step that defines it})``.
    """
    bound = {}  # bound name -> what it is bound to, to catch one name bound two ways
    comments = {}  # an alias imported on a line of its own -> that line's comment
    plain, froms, others, left_out = {}, {}, {}, {}
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
            comment = _trailing_comment(text)
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
                if comment and len(aliases) == 1:
                    comments.setdefault(alias, comment)
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
        text += "\n" + "\n".join(f"# {n}: {step} defines it, below" for n, step in sorted(left_out.items()))
    if others:
        text += "\n\n" + "\n".join(others.values())
    _same_names(text, set(bound) - set(left_out))
    return text, left_out


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
    """``(00's check cell, {step: the rest of its check cell})``."""
    keywords, checks, rest = {}, {}, {}
    for name, setup in steps.items():
        own = []
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
                own.append(text)
        if own:
            rest[name] = "\n".join(own)
    unknown = [k for k, v in keywords.items() if v not in parameters]
    if unknown:
        raise ArticleNotebookError(f"check_params is given {unknown}, which are not parameters")
    lines = []
    for key, text in checks.items():
        if key == "check_params":
            lines += _call("check_params(", [f"{k}={v}" for k, v in keywords.items()])
        else:
            lines.append(text)
    return "\n".join(lines), rest


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
    """``(number, English topic, Japanese topic or None)`` from a step's title line."""
    heading = title_cell.source.strip().splitlines()[0].lstrip("#").strip()
    english, _, japanese = heading.partition(" · ")
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


def bilingual(english, japanese):
    """A markdown cell's text: English, the marker line, Japanese.

    The Japanese is written here in short lines; each paragraph becomes one line, as in
    the step notebooks (a line break inside Japanese text would show as a space).
    """
    paragraphs = [_joined(p.splitlines()) for p in japanese.strip().split("\n\n")]
    return f"{english.strip()}\n\n{MARKER}\n\n" + "\n\n".join(paragraphs)


def heading_cell(name, number, english, japanese, has_setup, finds_run):
    english_notes = [f"The cells of `{name}.ipynb` after its setup, as they are there."]
    japanese_notes = [f"`{name}.ipynb` のセットアップより後のセルを、そのまま並べています。"]
    if has_setup:
        english_notes.append(
            "The first code cell is what its check cell does besides checking, "
            "so that the step starts as its own notebook does."
        )
        japanese_notes.append(
            "最初のコードセルは、そのノートブックのチェックセルがチェック以外に行う処理です。"
            "これでステップは単独のノートブックと同じ状態から始まります。"
        )
    if finds_run:
        english_notes.append(
            "It looks for a finished run in `run_dir`: here it finds the one step 3 trained, "
            "and trains none of its own."
        )
        japanese_notes.append(
            "このステップは `run_dir` に終了済みの実行(ラン)を探します。"
            "ここではステップ 3 で学習した実行が見つかるので、自分では学習しません。"
        )
    title = f"# Step {number}: {english} · ステップ {number}" + (f": {japanese}" if japanese else "")
    english_text = title + "\n\n" + textwrap.fill(" ".join(english_notes), 90)
    return nbformat.v4.new_markdown_cell(
        bilingual(english_text, "".join(japanese_notes)), id=f"step-{number}"
    )


def copied(cell, number):
    new = {
        "code": nbformat.v4.new_code_cell,
        "markdown": nbformat.v4.new_markdown_cell,
        "raw": nbformat.v4.new_raw_cell,
    }[cell.cell_type]
    return new(cell.source, metadata=copy.deepcopy(dict(cell.metadata)), id=f"s{number}-{cell.id}")


# --- 00's own cells -------------------------------------------------------------------------


def title_cell(home):
    colab, github = colab_link(home, RELATIVE), github_link(home, RELATIVE)
    english = f"""
# The whole article in one notebook · 記事全体を一つのノートブックで

<table align="left">
  <td><a target="_blank" href="{colab}"><img src="{COLAB_LOGO}" />Run in Google Colab</a></td>
  <td><a target="_blank" href="{github}"><img src="{GITHUB_LOGO}" />View source on GitHub</a></td>
</table>

Every step of the article, one after another on one machine, with the model trained once."""
    japanese = "記事のすべてのステップを一台のマシンで順に実行し、モデルの学習は一回だけ行います。"
    return nbformat.v4.new_markdown_cell(bilingual(english, japanese), id="title")


OVERVIEW_EN = """
The article's five steps (the data, the model, training, the plots, saving) in one
notebook, on one machine. On Colab every notebook gets a fresh machine of its own, so
notebooks 04 and 05 cannot see the run folder that 03 wrote (unless `run_dir` is on
Google Drive) and each trains the 20-epoch model again. Here it is trained once, in
step 3; steps 4 and 5 find that run and say "Using the finished run".

The cells are those of `01_data.ipynb` to `05_saving.ipynb`, in order, after one shared
setup: one install cell, one imports cell, one `parameters` cell and one check. The
parameters and their defaults (the article's settings) are those of the five notebooks,
so the same papermill command sets them. With a GPU like the article's (34 s an epoch)
training takes about 11 minutes; on a CPU it takes hours: there, try `subset = 500` and
`epochs = 2` first.

This notebook is generated from 01 to 05 by `tools/make_article_notebook.py`. Do not edit
it by hand: edit the step notebooks, then run `python tools/make_article_notebook.py`.
The tests fail when it is out of step with them."""

OVERVIEW_JA = """
記事の 5 つのステップ(データ、モデル、学習、グラフ、保存)を一つのノートブックにまとめ、
一台のマシンで実行します。Colab ではノートブックごとに新しいマシンが割り当てられるため、
ノートブック 04 と 05 からは 03 が書いた実行フォルダが見えず(`run_dir` が Google ドライブ上に
ある場合を除く)、それぞれが 20 エポックのモデルをもう一度学習します。
ここでは学習はステップ 3 の一回だけで、ステップ 4 と 5 はその実行(ラン)を見つけて
"Using the finished run" と表示します。

セルは `01_data.ipynb` から `05_saving.ipynb` までのものを順に並べ、その前に共通の準備を
一つだけ置いています。インストールのセル、import のセル、`parameters` セル、チェックのセルが
一つずつです。ノートブックのパラメータとその既定値(記事の設定)は 5 つのノートブックと同じなので、
同じ papermill コマンドで設定できます。記事と同程度の GPU(1 エポック 34 秒)なら学習は約 11 分、
CPU では数時間かかります。CPU では、まず `subset = 500` と `epochs = 2` を試してください。

このノートブックは `tools/make_article_notebook.py` が 01〜05 から生成したものです。手で編集せず、
ステップのノートブックを編集してから `python tools/make_article_notebook.py` を実行してください。
ずれているとテストが失敗します。"""

SETUP_EN = """
## Setup · 準備

One cell installs the project's small package where it is missing; the next imports what
all five steps use and checks the machine: versions, and whether a GPU is there.
TensorFlow may print a few start-up lines first (about oneDNN and, on a machine without
a GPU, "Could not find cuda drivers" or "failed call to cuInit"): they are notes, not errors."""

SETUP_JA = """
1 つ目のセルは、プロジェクトの小さなパッケージが入っていなければインストールします。
次のセルは、5 つのステップで使うものを読み込み、マシンを確認します(バージョンと、GPU があるかどうか)。
TensorFlow が最初に起動時のメッセージを数行表示することがあります(oneDNN について、
また GPU のないマシンでは "Could not find cuda drivers" や "failed call to cuInit")。
これらはお知らせであり、エラーではありません。"""

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
5 つのステップのノートブックは同じパラメータを使います。このセルはそのすべてを同じ既定値
(記事の設定)で持つので、`papermill -p epochs 5 -p subset 500 ...` はあちらと同じように
ここでも設定できます。`run_dir` は、ステップ 3 が実行(ラン)を書き込み、ステップ 4 と 5 が
読む場所です。Colab では、`/content/drive/MyDrive/` の下の `run_dir` にすると実行が
Google ドライブに残り、接続が切れて中断した実行も止まったところから続けられます。
`data_cache` をそこに置くと、ダウンロードした CIFAR-10 が残ります。
時間のかかる処理が始まる前に、次のセルがすべてのパラメータを確認します。"""


def build(home=None):
    """The 00_article notebook, made in memory from 01-05 (raises ArticleNotebookError)."""
    home = home or current_home()
    notebooks = {name: read_step(name) for name in STEPS}
    parts = {name: split_step(name, notebook) for name, notebook in notebooks.items()}
    setups = {name: setup for name, (setup, _) in parts.items()}
    parameter_lines, parameters = merged_parameters(setups)
    check, own_setup = merged_check(setups, parameters)
    imports, left_out = merged_imports(setups, defined_names(parts))
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
        nbformat.v4.new_code_cell(setups[STEPS[0]]["install"].source, id="install"),
        nbformat.v4.new_code_cell(imports, id="imports"),
        nbformat.v4.new_markdown_cell(bilingual(PARAMETERS_EN, PARAMETERS_JA), id="parameters-heading"),
        parameters_cell,
        nbformat.v4.new_code_cell(check, id="check-parameters"),
    ]
    numbers = set()
    for name in STEPS:
        number, english, japanese = step_title(name, setups[name]["title"])
        if number in numbers:
            raise ArticleNotebookError(f"{name}: another step is also step {number}")
        numbers.add(number)
        own = parts[name][1]
        code = "\n".join(c.source for c in own if c.cell_type == "code")
        finds_run = "ensure_finished_run(" in code
        cells.append(heading_cell(name, number, english, japanese, name in own_setup, finds_run))
        if name in own_setup:
            header = f"# From {name}'s check cell: what it does besides the checks, which ran above\n"
            cells.append(
                nbformat.v4.new_code_cell(header + own_setup[name], id=f"s{number}-check-parameters")
            )
        for cell in own:
            if cell.cell_type == "code":
                changed = _bound_at_top(ast.parse(cell.source)) & set(parameters)
                if changed:
                    raise ArticleNotebookError(
                        f"{name}: cell {cell.id!r} assigns the parameter(s) {sorted(changed)}; in "
                        f"{TARGET} every later step would see the new value"
                    )
            cells.append(copied(cell, number))
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
    if cell_id == "install":
        return [STEPS[0]]
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
