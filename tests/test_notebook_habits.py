"""The habits every notebook keeps (``tools/check_notebooks.py``), and the pre-commit hook
that strips outputs without losing the cell ids or the ``parameters`` tag. No kernel runs."""

import copy
import importlib.util
import json
import shutil
import subprocess
import sys

import pytest
import yaml
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from conftest import REPO

spec = importlib.util.spec_from_file_location("check_notebooks", REPO / "tools" / "check_notebooks.py")
check_notebooks = sys.modules["check_notebooks"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_notebooks)
project_home = check_notebooks.project_home

BAD = "notebooks/bad.ipynb"


def test_the_repositorys_notebooks_keep_the_habits():
    found = check_notebooks.problems()
    assert not found, "\n".join(found)


def test_every_notebook_is_checked_subfolders_included():
    found = {p.relative_to(REPO).as_posix() for p in check_notebooks.notebook_paths()}
    assert found == {
        p.relative_to(REPO).as_posix()
        for p in (REPO / "notebooks").rglob("*.ipynb")
        if ".ipynb_checkpoints" not in p.parts
    }
    assert {
        "notebooks/source/01_data.ipynb",
        "notebooks/en/01_data.ipynb",
        "notebooks/ja/01_data.ipynb",
    } <= found


# --- each rule, on a small notebook in a repository made in tmp_path ----------------


def good_notebook(relative=BAD):
    """A notebook that keeps every habit: links to itself, GPU metadata, one literal parameters cell."""
    home = project_home.current_home()
    links = (
        f'<a href="{project_home.colab_link(home, relative)}">Run in Google Colab</a>\n'
        f'<a href="{project_home.github_link(home, relative)}">View source on GitHub</a>'
    )
    notebook = new_notebook(metadata={"accelerator": "GPU", "colab": {"gpuType": "T4"}})
    notebook.cells = [
        new_markdown_cell(f"# A test · テスト\n\n{links}\n<!-- ja -->\nテスト用のノートブック。", id="title"),
        new_code_cell(
            "# the article's settings\nepochs = 20\nrun_dir = 'runs/article'  # where\nsizes = (32, 32)",
            id="parameters",
            metadata={"tags": ["parameters"]},
        ),
        new_code_cell("print(epochs)", id="print"),
    ]
    return notebook


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """An empty repository in tmp_path that the check reads instead of this one."""
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "README.md").write_text("no Colab links here\n")
    (tmp_path / "pyproject.toml").write_text(f'Homepage = "{project_home.current_home()}"\n')
    (tmp_path / "CITATION.cff").write_text(f'repository-code: "{project_home.current_home()}"\n')
    monkeypatch.setattr(project_home, "REPO", tmp_path)
    return tmp_path


def problems_of(repo, notebook, relative=BAD):
    """Write ``notebook`` (a plain dict, as a file may hold it) at ``relative``; what the check reports."""
    path = repo / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(notebook, indent=1))
    return check_notebooks.problems()


def assert_one_problem(found, rule, words, relative=BAD):
    """Exactly one problem line, naming the notebook and the rule, and saying ``words``."""
    assert len(found) == 1, found
    assert found[0].startswith(f"{relative}: {rule}: ") and words in found[0], found[0]


def test_a_notebook_keeping_every_habit_has_no_problem(repo):
    assert problems_of(repo, good_notebook()) == []


def test_outputs_and_execution_counts_are_problems(repo):
    notebook = good_notebook()
    notebook.cells[2].outputs = [new_output("stream", text="20\n")]
    assert_one_problem(problems_of(repo, notebook), "outputs", "cell 'print' has committed outputs")
    notebook.cells[2].outputs, notebook.cells[2].execution_count = [], 3
    assert_one_problem(problems_of(repo, notebook), "outputs", "cell 'print' has an execution count")


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda cells: cells[1].metadata.pop("tags"), "0 cells are tagged 'parameters'"),
        (lambda cells: cells[2].metadata.update(tags=["parameters"]), "2 cells are tagged 'parameters'"),
        (lambda cells: setattr(cells[1], "source", "epochs = 10 * 2"), "line 1: only `name = literal`"),
        (
            lambda cells: setattr(cells[1], "source", "epochs = 20\nimport os"),
            "line 2: only `name = literal`",
        ),
        (lambda cells: setattr(cells[1], "source", "epochs = batch = 20"), "line 1: only `name = literal`"),
        (lambda cells: setattr(cells[1], "source", "epochs = ("), "not valid Python"),
    ],
    ids=["none", "two", "expression", "import", "two-names", "syntax"],
)
def test_exactly_one_parameters_cell_of_literal_assignments(repo, change, words):
    notebook = good_notebook()
    change(notebook.cells)
    assert_one_problem(problems_of(repo, notebook), "parameters", words)


@pytest.mark.filterwarnings("ignore")  # nbformat, reading for the links rule, warns about the ids too
def test_cells_without_ids_or_with_the_same_id_are_problems(repo):
    notebook = good_notebook()
    del notebook.cells[2]["id"]
    assert_one_problem(problems_of(repo, notebook), "ids", "cell 2 (code) has no id")
    notebook.cells[2]["id"] = "title"
    assert_one_problem(problems_of(repo, notebook), "ids", "2 cells share the id 'title'")


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda metadata: metadata.pop("accelerator"), '"accelerator": "GPU"'),
        (lambda metadata: metadata.update(accelerator="None"), '"accelerator": "GPU"'),
        (lambda metadata: metadata["colab"].pop("gpuType"), "gpuType"),
        (lambda metadata: metadata.pop("colab"), "gpuType"),
    ],
    ids=["no-accelerator", "cpu", "no-gpuType", "no-colab"],
)
def test_colab_opens_the_notebook_on_a_gpu(repo, change, words):
    notebook = good_notebook()
    change(notebook.metadata)
    assert_one_problem(problems_of(repo, notebook), "metadata", words)


def test_links_point_at_the_notebook_itself(repo):
    notebook = good_notebook(relative="notebooks/other.ipynb")  # a copy of another notebook's links
    found = problems_of(repo, notebook)
    assert found and all(line.startswith(f"{BAD}: links: ") for line in found), found
    assert any("no 'Run in Google Colab' link" in line for line in found)


@pytest.mark.parametrize(
    "text, words",
    [
        ("# A test · テスト\n\nEnglish only.", "has 0 '<!-- ja -->' lines"),
        ("English.\n<!-- ja -->\n英語。\n<!-- ja -->\n日本語。", "has 2 '<!-- ja -->' lines"),
        ("English. <!-- ja --> 日本語。", "has 0 '<!-- ja -->' lines"),  # the marker is a line of its own
        ("\n<!-- ja -->\nテスト用のノートブック。", "has no English before"),
        ("English.\n<!-- ja -->\nEnglish again.", "has no Japanese (kana or kanji) after"),
        ("English.\n<!-- ja -->\n", "has no Japanese (kana or kanji) after"),
    ],
    ids=["no-marker", "two-markers", "inline-marker", "no-english", "not-japanese", "empty-japanese"],
)
def test_every_markdown_cell_is_english_then_japanese(repo, text, words):
    notebook = good_notebook()
    notebook.cells.append(new_markdown_cell(text, id="prose"))
    assert_one_problem(problems_of(repo, notebook), "bilingual", f"markdown cell 'prose' {words}")


def test_notebooks_in_subfolders_are_checked_too(repo):
    relative = "notebooks/solutions/bad.ipynb"
    notebook = good_notebook(relative)
    notebook.cells[2].execution_count = 1
    assert_one_problem(problems_of(repo, notebook, relative), "outputs", "execution count", relative)


def test_the_command_prints_each_problem_and_exits_1(repo, capsys):
    problems_of(repo, good_notebook())
    assert check_notebooks.main([]) == 0
    assert "all 1 notebooks keep the habits" in capsys.readouterr().out
    notebook = good_notebook()
    notebook.metadata.pop("accelerator")
    notebook.cells[2].execution_count = 1
    problems_of(repo, notebook)
    assert check_notebooks.main([]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(": ")[:2] for line in lines[:-1]] == [[BAD, "outputs"], [BAD, "metadata"]]
    assert lines[-1] == "2 problem(s) in the notebooks' habits"


def test_stats_count_english_prose_in_japanese_notebooks_and_japanese_in_english_ones(repo, capsys):
    english, japanese = good_notebook("notebooks/en/x.ipynb"), good_notebook("notebooks/ja/x.ipynb")
    english.cells[0].source = "# A test\n\nOne line of English. 五文字です"
    japanese.cells[0].source = "# テスト\n\nこの文は日本語です。This sentence is not, `but this code is`."
    english.cells[1].source = "epochs = 20  # 二十"
    japanese.cells[1].source = "# the article's settings, in English\nepochs = 20  # 記事の設定"
    problems_of(repo, english, "notebooks/en/x.ipynb")
    problems_of(repo, japanese, "notebooks/ja/x.ipynb")
    assert check_notebooks.language_stats() == {
        "notebooks/en/x.ipynb": (len("One line of English"), 7),  # "A test": two words, a name
        "notebooks/ja/x.ipynb": (
            len("This sentence is not") + len("the article's settings, in English"),
            len("テストこの文は日本語です記事の設定"),
        ),
    }
    found = [line for line in check_notebooks.problems() if ": language: " in line]
    assert [line.split(": ")[0] for line in found] == ["notebooks/en/x.ipynb"] * 2  # a text and a code cell
    assert check_notebooks.main(["--stats"]) == 1
    assert "notebooks/ja/x.ipynb  English prose     54  Japanese     17" in capsys.readouterr().out


def test_stats_read_a_parameters_papermill_type_as_code(repo):
    japanese = good_notebook("notebooks/ja/x.ipynb")
    japanese.cells[0].source = "# テスト"
    japanese.cells[1].source = (
        "subset = None  # type: int|None  subset の枚数\n"
        "overwrite = False  # type: bool  True: run_dir を置き換えます\n"
        "epochs = 20  # type: int  passes over the pictures"
    )
    problems_of(repo, japanese, "notebooks/ja/x.ipynb")
    assert check_notebooks.language_stats()["notebooks/ja/x.ipynb"][0] == len("passes over the pictures")


# --- the glossary rule: variants docs/glossary.md rules out, in the source's Japanese --------

SOURCE_BAD = "notebooks/source/bad.ipynb"
#: The variants that the style of the Japanese text rules out (docs/glossary.md, issue 24).
RULED_OUT = [
    "レイヤー",
    "ピクセル値",
    "改善レシピ",
    "改善版",
    "正直な",
    "実行フォルダ",
    "実行(ラン)",
    "組み立て",
    "ましょう",
    "私たち",
    "あなた",
    "（",
    "）",
    "：",
    "一つ",
    "二つ",
    "三つ",
]


def test_the_glossary_keeps_the_table_of_variants_the_check_flags():
    table = check_notebooks.variants()
    assert list(table) == RULED_OUT
    assert table["レイヤー"] == "層" and table["実行フォルダ"] == "ランフォルダ" and table["一つ"] == "1 つ"


def with_prose(text, relative=SOURCE_BAD, code=None):
    notebook = good_notebook(relative)
    notebook.cells.append(new_markdown_cell(text, id="prose"))
    if code is not None:
        notebook.cells.append(new_code_cell(code, id="code"))
    return notebook


@pytest.mark.parametrize(
    "text, code, cell, variant, context",
    [
        (
            "Layers.\n<!-- ja -->\n畳み込みレイヤーを重ねます。",
            None,
            "prose",
            "レイヤー",
            "畳み込みレイヤーを重ねます。",
        ),
        (
            "Look.\n<!-- ja -->\n## 見る\n\n画像を見ましょう。",
            None,
            "prose",
            "ましょう",
            "## 見る 画像を見ましょう。",
        ),
        ("Sizes.\n<!-- ja -->\n大きさ：135 MB", None, "prose", "：", "大きさ：135 MB"),
        (
            "Code.\n<!-- ja -->\nコード。",
            "# the run folder\n#ja| # 実行フォルダ\nprint(1)",
            "code",
            "実行フォルダ",
            "# 実行フォルダ",
        ),
    ],
    ids=["markdown", "heading-and-paragraph", "full-width", "ja-line"],
)
def test_a_variant_in_the_japanese_text_of_a_source_notebook_is_a_problem(
    repo, text, code, cell, variant, context
):
    found = problems_of(repo, with_prose(text, code=code), SOURCE_BAD)
    assert_one_problem(found, "glossary", f"cell '{cell}': {variant!r} in '…{context}…'", SOURCE_BAD)
    assert found[0].endswith(f"(write: {check_notebooks.variants()[variant]})")


@pytest.mark.parametrize(
    "text, code",
    [
        ("Layers.\n<!-- ja -->\n畳み込み層を重ねてモデルを構築します。", None),
        ("Layers, but also レイヤー in English.\n<!-- ja -->\n層を重ねます。", None),
        ("Code.\n<!-- ja -->\n`keras.layers` の `レイヤー` と ``実行フォルダ`` はコードです。", None),
        ("Code.\n<!-- ja -->\nコードです。\n\n```python\n# 実行フォルダ\nprint('ましょう')\n```", None),
        ("Code.\n<!-- ja -->\nコード。", "# レイヤー in a comment of the English code\nprint(1)"),
    ],
    ids=["clean", "english-part", "code-spans", "code-block", "english-code"],
)
def test_the_glossary_rule_reads_only_the_japanese_text_outside_code(repo, text, code):
    assert problems_of(repo, with_prose(text, code=code), SOURCE_BAD) == []


def test_the_glossary_rule_reads_the_source_notebooks_only(repo):
    text = "Layers.\n<!-- ja -->\n畳み込みレイヤーを重ねましょう。"
    written = "notebooks/ja/bad.ipynb"  # made from the source, whose Japanese the rule reads
    assert problems_of(repo, with_prose(text, relative=written), written) == []
    found = problems_of(repo, with_prose(text), SOURCE_BAD)
    assert [line.split(": ")[1] for line in found] == ["glossary", "glossary"]


def test_stats_count_the_variants_and_the_command_fails_on_them(repo, capsys):
    notebook = with_prose(
        "Layers.\n<!-- ja -->\n畳み込みレイヤーを重ねましょう。", code="x = 1\n#ja| x = 1  # 一つ"
    )
    problems_of(repo, notebook, SOURCE_BAD)
    assert check_notebooks.glossary_stats() == {SOURCE_BAD: 3}
    assert check_notebooks.main(["--stats"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert f"{SOURCE_BAD}  glossary variants    3" in out
    assert (
        "3 use(s) of variants that docs/glossary.md rules out, in the Japanese text of 1 source notebooks"
        in out
    )
    assert out[-2].startswith("3 of them: variants that docs/glossary.md rules out")
    assert out[-1] == "3 problem(s) in the notebooks' habits"
    notebook.cells[-2].source = "Layers.\n<!-- ja -->\n畳み込み層を重ねてください。"
    notebook.cells[-1].source = "x = 1\n#ja| x = 1  # 1 つ"
    problems_of(repo, notebook, SOURCE_BAD)
    assert check_notebooks.glossary_stats() == {SOURCE_BAD: 0}
    assert check_notebooks.main(["--stats"]) == 0


# --- the pre-commit hook that strips outputs ------------------------------------------


def nbstripout_args():
    """The arguments that .pre-commit-config.yaml gives nbstripout."""
    config = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    hooks = [hook for repo in config["repos"] for hook in repo["hooks"] if hook["id"] == "nbstripout"]
    assert len(hooks) == 1, "one nbstripout hook"
    return hooks[0].get("args", [])


def test_nbstripout_as_configured_strips_outputs_but_keeps_ids_and_the_parameters_tag(tmp_path):
    original = json.loads((REPO / "notebooks" / "source" / "03_training.ipynb").read_text(encoding="utf-8"))
    executed = copy.deepcopy(original)
    for number, cell in enumerate(c for c in executed["cells"] if c["cell_type"] == "code"):
        cell["execution_count"] = number + 1
        cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["ran\n"]}]
        cell["metadata"].update(
            colab={"base_uri": "https://localhost:8080/"},
            outputId="abc-123",
            ExecuteTime={"end_time": "2026-11-30T03:00:00Z"},
        )
    path = tmp_path / "03_training.ipynb"
    path.write_text(json.dumps(executed, indent=1), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "nbstripout", *nbstripout_args(), str(path)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    stripped = json.loads(path.read_text(encoding="utf-8"))
    assert stripped == original  # outputs, counts and Colab's cell metadata gone; ids and tags kept
    relative = "notebooks/source/03_training.ipynb"
    for rule, check in check_notebooks.RULES.items():
        assert (check(stripped, relative) if rule in check_notebooks.PLACED else check(stripped)) == []


def test_nbstripout_leaves_a_committed_notebook_byte_for_byte(tmp_path):
    for name in ("source/01_data", "en/08_sweeps", "ja/03_training", "ja/solutions/05_saving_solutions"):
        source = REPO / "notebooks" / f"{name}.ipynb"
        path = tmp_path / source.name
        shutil.copyfile(source, path)
        subprocess.run([sys.executable, "-m", "nbstripout", *nbstripout_args(), str(path)], check=True)
        assert path.read_bytes() == source.read_bytes(), f"nbstripout would rewrite {source.name}"
