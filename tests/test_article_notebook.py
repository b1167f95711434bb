"""00_article: the five step notebooks in one, generated from them, and trained once when run."""

import ast
import importlib.util
import json
import sys

import nbformat
import papermill
import pytest

from conftest import NOTEBOOKS, REPO, SMALL, SOURCE

spec = importlib.util.spec_from_file_location(
    "make_article_notebook", REPO / "tools" / "make_article_notebook.py"
)
make = sys.modules["make_article_notebook"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make)

ARTICLE = SOURCE / "00_article.ipynb"  # generated in the source, then split by language
RUN = NOTEBOOKS / "00_article.ipynb"  # what a student runs
STEPS = ["01_data", "02_model", "03_training", "04_plots", "05_saving"]


def read(name):
    return nbformat.read(SOURCE / f"{name}.ipynb", as_version=4)


def literal_parameters(cell):
    return {s.targets[0].id: ast.literal_eval(s.value) for s in ast.parse(cell.source).body}


def own_cells(name):
    """A step's cells after its check cell: what 00 copies."""
    cells = read(name).cells
    return cells[[c.id for c in cells].index("check-parameters") + 1 :]


# (a) in step with 01-05 ------------------------------------------------------------------------


def test_the_article_notebook_is_in_step_with_the_five_steps():
    assert make.STEPS == STEPS
    found = make.problems()
    assert not found, "\n".join(found)


def test_a_changed_step_is_named_with_the_command_to_run(monkeypatch):
    def changed(name):
        notebook = nbformat.read(SOURCE / f"{name}.ipynb", as_version=4)
        if name == "03_training":
            next(c for c in notebook.cells if c.id == "result").source += "\nprint('one more line')"
        return notebook

    monkeypatch.setattr(make, "read_step", changed)
    found = make.problems()
    assert found[0] == (
        "00_article is out of step with 03_training: run python tools/make_article_notebook.py"
    )
    assert "  cell s3-result: its source differs" in found


def test_steps_that_disagree_on_a_default_are_refused(monkeypatch):
    def disagreeing(name):
        notebook = nbformat.read(SOURCE / f"{name}.ipynb", as_version=4)
        if name == "04_plots":
            cell = next(c for c in notebook.cells if c.id == "parameters")
            cell.source = cell.source.replace("epochs = 20", "epochs = 5")
        return notebook

    monkeypatch.setattr(make, "read_step", disagreeing)
    with pytest.raises(make.ArticleNotebookError, match="epochs is 20 in 01_data and 5 in 04_plots"):
        make.build()
    assert "cannot be made" in make.problems()[0]


# (b) one setup, then every step's cells in order ----------------------------------------------


def test_one_setup_cell_one_parameters_cell_and_one_check_cell():
    cells = nbformat.read(ARTICLE, as_version=4).cells
    code = [c for c in cells if c.cell_type == "code"]
    assert [c.id for c in cells[:7]] == make.ARTICLE_SETUP_IDS
    assert len([c for c in cells if "parameters" in c.metadata.get("tags", [])]) == 1
    assert len([c for c in code if 'find_spec("vggcifar")' in c.source]) == 1
    # one setup cell, folded in Colab: 01's install part, then every step's imports
    setup = next(c for c in cells if c.id == "install")
    assert setup.source.startswith("# @title Setup\n") and setup.metadata == {"cellView": "form"}
    install, imports = make.split_setup(setup.source)
    assert install == make._cell(read("01_data"), "install").source
    assert len([c for c in code if "environment_report()" in c.source]) == 1
    # one check: every step checks and applies its parameters with the same line, run once here
    check = next(c for c in cells if c.id == "check-parameters").source
    assert len([c for c in code if "use_parameters(globals())" in c.source]) == 1
    assert check.startswith("params = use_parameters(globals())") and "RunFolder(" in check
    # `import vggcifar` first; what a step's own cells define (02's build_vgg16) is left out:
    # that definition serves the later steps; what only the cells 00 leaves out or replaces
    # used is left out too (04's and 05's ensure_finished_run)
    assert imports.startswith("import vggcifar  #")
    defined = make.defined_names({name: make.split_step(name, read(name)) for name in STEPS})
    assert "build_vgg16" in defined

    def bound(source):
        return {
            (type(node).__name__, getattr(node, "module", None), a.name, a.asname)
            for node in ast.parse(source).body
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for a in node.names
        }

    every = set().union(
        # a step's imports: the imports part of its one setup cell
        *(bound(make._cell(read(name), "imports").source) for name in STEPS)
    )
    used = make._loaded_names([c.source for c in code])
    expected = {
        item
        for item in every
        if (item[3] or item[2]) not in defined and ((item[3] or item[2].split(".")[0]) in used)
    }
    # kept unused: `import vggcifar` (it quiets TensorFlow) and zipfile (for an exercise)
    assert bound(imports) - expected == {
        ("Import", None, "vggcifar", None),
        ("Import", None, "zipfile", None),
    }
    assert expected <= bound(imports)
    assert not [c.id for c in code if c.id != "install" and bound(c.source)]
    assert "ensure_finished_run" not in imports


def test_the_parameters_are_every_steps_with_the_same_defaults():
    article = literal_parameters(
        next(
            c
            for c in nbformat.read(ARTICLE, as_version=4).cells
            if "parameters" in c.metadata.get("tags", [])
        )
    )
    union = {}
    for name in STEPS:
        values = literal_parameters(next(c for c in read(name).cells if c.id == "parameters"))
        assert {k: article.get(k) for k in values} == values, name
        union.update(values)
    assert article == union
    assert set(papermill.inspect_notebook(ARTICLE)) == set(union)


def test_every_steps_cells_follow_in_order_under_its_heading():
    notebook = nbformat.read(ARTICLE, as_version=4)
    ids = [c.id for c in notebook.cells]
    assert len(ids) == len(set(ids))
    by_id = {c.id: c for c in notebook.cells}
    starts = [ids.index(f"step-{n}") for n in range(1, 6)]
    assert starts == sorted(starts) and starts[0] == len(make.ARTICLE_SETUP_IDS)
    for n, name in enumerate(STEPS, start=1):
        end = starts[n] if n < len(STEPS) else len(ids)
        section = ids[starts[n - 1] + 1 : end]
        # every own cell of the step, in order, as one lesson holds it (some left out or replaced)
        lesson = [make.lesson_cell(c, n, n == 1) for c in own_cells(name)]
        expected = [c for c in lesson if c is not None and c.id not in make.OMIT]
        assert [i for i in section if i != "exercises"] == [c.id for c in expected], name
        for cell in expected:
            summary = make.split_exercises(cell.source)[0] if cell.cell_type == "markdown" else cell.source
            assert (by_id[cell.id].cell_type, by_id[cell.id].source) == (cell.cell_type, summary)
        assert by_id[f"step-{n}"].source.startswith(f"# Step {n}: ")
    # what 02's and 03's check cells do besides checking runs in 00's one check cell
    check = by_id["check-parameters"].source
    assert "use_parameters(globals())" in check and "RunFolder(" in check
    assert ids[-1] == "exercises"


def test_committed_without_outputs_with_its_own_colab_link_and_a_gpu():
    notebook = nbformat.read(ARTICLE, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata == read("01_data").metadata and notebook.metadata["accelerator"] == "GPU"
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
            compile(cell.source, cell.id, "exec")
    title = notebook.cells[0].source
    assert title.startswith("# The whole article in one notebook\n")
    home = make.current_home()
    assert make.colab_link(home, "notebooks/source/00_article.ipynb") in title
    assert make.github_link(home, "notebooks/source/00_article.ipynb") in title


# (c) run once on small settings: it trains once --------------------------------------------

COUNT_FITS = """\
# test only: count the model.fit calls
import keras
FITS = []
_fit = keras.Model.fit
def _counted_fit(self, *args, **kwargs):
    FITS.append(self.name)
    return _fit(self, *args, **kwargs)
keras.Model.fit = _counted_fit"""


@pytest.mark.slow  # a kernel for the cells of 01-05, which run under nbval in test_notebooks.py
def test_the_article_runs_on_small_settings_and_trains_once(tmp_path):
    notebook = nbformat.read(RUN, as_version=4)
    at = [c.id for c in notebook.cells].index("install") + 1
    notebook.cells.insert(at, nbformat.v4.new_code_cell(COUNT_FITS, id="count-fits"))
    notebook.cells.append(nbformat.v4.new_code_cell('print("model.fit calls:", FITS)', id="fits"))
    counted, out, run_dir = tmp_path / "00_article.ipynb", tmp_path / "out.ipynb", tmp_path / "run"
    nbformat.write(notebook, counted)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MPLBACKEND", "Agg")
        env.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
        papermill.execute_notebook(
            counted,
            out,
            parameters={**SMALL, "run_dir": str(run_dir)},
            cwd=str(tmp_path),
            progress_bar=False,
            kernel_name="python3",
        )
    text = {
        c.id: "".join(o.get("text", "") for o in c.outputs if o.output_type == "stream")
        for c in nbformat.read(out, as_version=4).cells
        if c.cell_type == "code"
    }
    assert text["fits"].strip() == "model.fit calls: ['vgg16_bn']"  # step 3's fit, and no other
    # step 4 plots step 3's history; step 5 reads back the run's model: no run is looked for
    assert text["s4-run"].startswith(f"{SMALL['epochs']} epochs in history"), text["s4-run"]
    assert text["s5-run"].startswith("loaded vgg16_bn with 33,655,114 parameters"), text["s5-run"]
    assert "finished run" not in "".join(text.values())
    assert json.loads((run_dir / "history.json").read_text())["epoch"] == [1]
    for produced in (
        "model.keras",
        "metrics.json",
        "accuracy.png",
        "loss.png",
        "cifar10-CNN.keras",
        "cifar10-CNN.weights.h5",
        "cifar10-CNN.h5",
    ):
        assert (run_dir / produced).exists(), produced
    assert "All three files give back the same model." in text["s5-reload"]


# (d) one lesson: no other notebooks named, data loaded once, model built once ------------------


def test_the_article_names_no_other_notebook_of_the_article():
    import re

    stale = re.compile(r"\b0[1-8]_[a-z]+|\b[Nn]otebooks? 0\d\b|ノートブック ?0\d|^\s*(?:Next:|次は)", re.M)
    allowed = re.compile(make.ALLOWED_REFERENCES)
    found = [
        (cell.id, match.group(0))
        for cell in nbformat.read(ARTICLE, as_version=4).cells
        for match in stale.finditer(allowed.sub("", cell.source))
    ]
    assert not found


def test_the_article_loads_the_data_once_and_builds_the_model_once():
    code = [c for c in nbformat.read(ARTICLE, as_version=4).cells if c.cell_type == "code"]
    calls, models = [], []
    for cell in code:
        tree = ast.parse(cell.source)
        calls += [
            cell.id
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "load_data"
        ]
        for node in tree.body:  # the notebook's model, not build_vgg16's own `model` inside it
            if (
                isinstance(node, ast.Assign)
                and [ast.unparse(t) for t in node.targets] == ["model"]
                and isinstance(node.value, ast.Call)
                and ast.unparse(node.value.func) in ("keras.Sequential", "build_vgg16")
            ):
                models.append(cell.id)
    assert calls == ["s1-load"]
    assert models == ["s2-listing"]
    assert not [c.id for c in code if "ensure_finished_run(" in c.source]
