"""The solution notebooks (notebooks/en/solutions/): their structure, and each one run on small settings.

Each step notebook's exercises are solved in ``notebooks/<en|ja>/solutions/<step>_solutions.ipynb``
(written from ``notebooks/source/solutions/``); the tests run the English ones.
The structure tests are quick; the execution tests run each notebook once with papermill on
generated pictures (10 per class, 1 epoch), and check what it computed: printed figures and the
files of its runs. 03, 04, 05 and 07 share one small article run (03 trains it, the others
reuse it, as on one machine; without 03, the first of 04, 05 and 07 trains it), two notebooks
run at a time, and each one's time is printed. The three longest, 03 (five trainings), 06
(six runs) and 08 (three sweeps, a kernel per run), are in the slow tier
(``python -m pytest -m slow``).
"""

import csv
import json
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import nbformat
import papermill
import pytest
import yaml

from conftest import ENV, NOTEBOOKS, SMALL, parameters_of

SOLUTIONS = NOTEBOOKS / "solutions"
STEPS = [
    "01_data",
    "02_model",
    "03_training",
    "04_plots",
    "05_saving",
    "06_improvements",
    "07_evaluation",
    "08_sweeps",
]
SHARED = ["data", "subset", "seed", "epochs", "batch_size", "run_dir", "data_cache"]


def read(path):
    return nbformat.read(path, as_version=4)


def solution(step):
    return read(SOLUTIONS / f"{step}_solutions.ipynb")


def english(cell_source):
    return cell_source.split("<!-- ja -->")[0]


def step_exercises(step):
    """How many exercises the step notebook lists under its "## Exercises" heading (English part)."""
    cell = next(
        c
        for c in read(NOTEBOOKS / f"{step}.ipynb").cells
        if c.cell_type == "markdown" and "## Exercises" in c.source
    )
    listed = english(cell.source).split("## Exercises", 1)[1]
    return len(re.findall(r"^\d+\. ", listed, flags=re.M))


def test_one_solutions_notebook_per_step():
    assert sorted(p.name for p in SOLUTIONS.glob("*.ipynb")) == [f"{s}_solutions.ipynb" for s in STEPS]


@pytest.mark.parametrize("step", STEPS)
def test_layout_like_the_step_notebooks(step):
    """What tools/check_notebooks.py does not check (outputs, ids, metadata, links, both
    languages: tests/test_notebook_habits.py runs it over these notebooks too)."""
    notebook = solution(step)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            compile(cell.source, f"{step}_solutions:{cell.id}", "exec")  # plain Python, no magics
    assert notebook.cells[0].source.startswith("# Solutions: ")
    cells = {cell.id: cell.source for cell in notebook.cells}
    # the step notebook's own install cell (08's also fetches the notebooks a sweep runs)
    step_install = next(c.source for c in read(NOTEBOOKS / f"{step}.ipynb").cells if c.get("id") == "install")
    if step_install.startswith("# @title Setup"):  # a one-cell setup (03): its install part
        step_install = step_install.split("\n", 1)[1].split("\n\nimport vggcifar")[0]
    assert cells["install"] == step_install, "the same install cell as the step notebook"
    assert cells["imports"].startswith("import vggcifar")


@pytest.mark.parametrize("step", STEPS)
def test_parameters_are_literal_typed_and_shared(step):
    path = SOLUTIONS / f"{step}_solutions.ipynb"
    notebook = read(path)
    values = parameters_of(notebook)
    source = next(c.source for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    assert all("# type: " in line for line in source.splitlines()), "a typed help per line"
    assert list(values)[: len(SHARED)] == SHARED and values["data"] == "cifar10"
    found = papermill.inspect_notebook(path)  # what `papermill --help-notebook` shows
    assert set(found) == set(values)
    python_types = {"str": str, "int": int, "float": float, "bool": bool, "list": list, "None": type(None)}
    for name, value in values.items():
        allowed = found[name]["inferred_type_name"].split("|")
        assert type(value) in {python_types[t] for t in allowed}, (name, value, allowed)
        assert found[name]["help"], name


@pytest.mark.parametrize("step", STEPS)
def test_every_exercise_of_the_step_has_a_solution_and_an_answer(step):
    ids = [cell.id for cell in solution(step).cells]
    exercises = [i for i in ids if re.fullmatch(r"exercise-\d+", i)]
    assert exercises == [f"exercise-{n}" for n in range(1, step_exercises(step) + 1)]
    for exercise in exercises:
        assert any(i.startswith(f"{exercise}-code") for i in ids) and f"{exercise}-answer" in ids


# --- executed ------------------------------------------------------------------------

#: Two notebooks run at a time (a kernel spends most of a small run tracing the model, on one
#: core), in two lanes of about the same length in each tier: 03 and 08 beside 06 in the slow
#: tier; 01, 02 and 07 beside 04 and 05 in the default one.
LANES = (
    ["03_training", "08_sweeps", "01_data", "02_model", "07_evaluation"],
    ["06_improvements", "04_plots", "05_saving"],
)
#: The notebooks that use the small article run: the first of them that is selected trains it
#: (03 by its exercises, the others as on a fresh machine), the others wait for it.
ARTICLE_RUN_USERS = ("03_training", "04_plots", "05_saving", "07_evaluation")


def small_parameters(step, folder):
    """What each notebook gets besides SMALL: run folders in ``folder``, and the fewest runs."""
    shared = str(folder / "article-run")
    return {
        **SMALL,
        **{
            "03_training": {"run_dir": shared},
            "04_plots": {"run_dir": shared, "small_subset": 5},
            "05_saving": {"run_dir": shared},
            # two epochs: exercise 6 trains one on small crops, the last on whole pictures
            "06_improvements": {"run_dir": str(folder / "06"), "switch_off": ["flip"], "epochs": 2},
            "07_evaluation": {"run_dir": shared, "improved_run_dir": str(folder / "improved")},
            "08_sweeps": {
                "run_dir": str(folder / "08"),
                "batch_sizes": [16],
                "earlier_sweep": "",
                "learning_rates": [0.05],
                "large_batch_size": 32,
                "rates_subset": 10,
                "seeds": [0, 1],
            },
        }.get(step, {}),
    }


def execute(step, folder):
    """Run one solutions notebook with papermill; its exit status, what each cell printed, the seconds."""
    given = folder / f"{step}-parameters.yaml"
    given.write_text(yaml.safe_dump(small_parameters(step, folder)))
    out = folder / f"{step}_solutions.ipynb"
    started = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "papermill",
            str(SOLUTIONS / f"{step}_solutions.ipynb"),
            str(out),
            "-f",
            str(given),
            "--cwd",
            str(folder),
            "--no-progress-bar",
        ],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=900,
    )
    seconds = time.perf_counter() - started
    printed = {}
    if out.exists():
        for cell in read(out).cells:
            if cell.cell_type == "code":
                printed[cell.get("id")] = "".join(
                    o.get("text", "") or o.get("data", {}).get("text/plain", "") for o in cell.outputs
                )
    return {"returncode": done.returncode, "log": done.stderr[-4000:], "printed": printed, "seconds": seconds}


@pytest.fixture(scope="module")
def executed(request, tmp_path_factory):
    """Every selected solutions notebook, executed once, two at a time; {step: its result}."""
    folder = tmp_path_factory.mktemp("solutions")
    wanted = {
        item.callspec.params["step"]
        for item in request.session.items
        if item.originalname == "test_solution_runs_and_computes"
    }
    results, article_run = {}, threading.Event()
    trainer = next((step for step in ARTICLE_RUN_USERS if step in wanted), None)

    def run(lane):
        for step in lane:
            if step not in wanted:
                continue
            if step in ARTICLE_RUN_USERS and step != trainer:
                article_run.wait()  # the trainer makes the run these reuse
            try:
                results[step] = execute(step, folder)
            finally:
                if step == trainer:
                    article_run.set()

    with ThreadPoolExecutor(len(LANES)) as pool:
        list(pool.map(run, LANES))
    print(
        "\nsolutions notebooks, seconds each (two at a time): "
        + ", ".join(f"{step} {results[step]['seconds']:.0f}" for step in STEPS if step in results)
    )
    return folder, results


def params(run_dir):
    return json.loads((run_dir / "params.json").read_text())


def check_01_data(printed, folder):
    assert "training split: balanced, 10 pictures in every class" in printed["exercise-1-code"]
    assert "(1000, 32, 32, 3)" in printed["exercise-2-code"]  # small_subset = 100 per class
    assert "largest difference between the splits" in printed["exercise-3-code-2"]
    assert "epsilon of bn1: 0.001" in printed["exercise-4-code"]


def check_02_model(printed, folder):
    assert "parameters that disappear: 16,896" in printed["exercise-1-code"]
    assert "The two numbers agree." in printed["exercise-1-code"]
    assert "new: dropout1 (Dropout, rate 0.5) after fc1, 0 parameters" in printed["exercise-2-code"]
    assert "fc1: 2,101,248 -> 8,392,704 parameters (+6,291,456)" in printed["exercise-3-code"]
    assert "fc_units = 512" in printed["exercise-4-code"]
    assert "block 3 agrees with vgg_block." in printed["exercise-5-code"]
    assert "the same in vgg_block: True" in printed["exercise-5-code"]


def check_03_training(printed, folder):
    shared = folder / "article-run"
    assert (shared / "history.csv").is_file() and (shared / "metrics.json").is_file()
    assert "lowest val_loss at epoch 1" in printed["exercise-1-code"]
    assert params(folder / "article-run-batch-100")["batch_size"] == 100  # 256 > the 100 pictures
    assert "batch  100:    1 steps per epoch" in printed["exercise-2-code"]
    assert "Adam, learning rate 0.0001" in printed["exercise-3-code-2"]
    assert "log(10) = 2.3026" in printed["exercise-4-code"]
    assert "without BatchNormalization: training loss after epoch 1" in printed["exercise-5-code"]


def check_04_plots(printed, folder):
    small, shared = params(folder / "article-run-subset-5"), params(folder / "article-run")
    assert small["subset"] == 5
    # the smaller run is trained like the shared run it is compared with, on fewer pictures
    assert {k: v for k, v in small.items() if k not in ("subset", "run_dir")} == {
        k: v for k, v in shared.items() if k not in ("subset", "run_dir")
    }
    same = f"adam at learning rate {shared['learning_rate']}, bn_momentum {shared['bn_momentum']}"
    assert f"both runs: 1 epochs, batches of 32, {same}" in printed["exercise-1-code"]
    assert printed["exercise-1-code"].count("lowest validation loss at epoch 1 of 1") == 2
    assert (
        "the article (20 epochs): test accuracy drops at epochs [6, 8, 10, 13, 17, 19]"
        in printed["exercise-2-code"]
    )
    assert "the article: training loss 2.050 -> 0.099" in printed["exercise-3-code"]


def check_05_saving(printed, folder):
    for name in ("cifar10-CNN.keras", "cifar10-CNN.weights.h5", "cifar10-CNN.h5"):
        assert (folder / "article-run" / name).is_file()
    assert "(2 x 33,646,666 trainable weights = 67,293,332)" in printed["exercise-1-code"]
    assert "(10 classes saved, 5 built): ['predictions']" in printed["exercise-2-code"]
    assert "model.weights.h5" in printed["exercise-3-code"] and '"name": "bn1"' in printed["exercise-3-code"]


def check_06_improvements(printed, folder):
    runs = folder / "06"
    for name in ("quick", "no-flip", "adam", "cutout-8", "validation-test", "quick-small-crops-24"):
        assert (runs / name / "metrics.json").is_file(), name
    assert not (runs / "improved").exists()  # the quick recipe is the reference
    assert params(runs / "no-flip")["flip"] is False and params(runs / "quick")["flip"] is True
    assert params(runs / "quick")["learning_rate"] == 0.2 and params(runs / "quick")["epochs"] == 2
    assert params(runs / "adam")["optimizer"] == "adam" and params(runs / "cutout-8")["cutout"] == 8
    assert params(runs / "validation-test")["validation"] == "test"
    assert params(runs / "quick-small-crops-24")["small_crops"] == 24
    assert "without flip (True -> False)" in printed["exercise-1-code"]
    # exercise 6's whole-picture run is the reference run, loaded, not trained again
    assert "'quick': the run is already finished" in printed["exercise-6-code"].replace(str(runs) + "/", "")
    assert "cutout = 8 hides" in printed["exercise-3-code-1"]
    assert "PyTorch's weight_decay=5e-04" in printed["exercise-5-code"]
    assert "PyTorch's weight_decay=1e-03" in printed["exercise-5-code"]
    assert "(trained on 24x24 crops)" in printed["exercise-6-code"]


def check_07_evaluation(printed, folder):
    improved = params(folder / "improved")  # the quick recipe, by default
    assert improved["learning_rate"] == 0.2 and improved["flip"] and improved["validation"] == "holdout"
    assert "confused most often" in printed["exercise-1-code"] or "no mistakes" in printed["exercise-1-code"]
    assert "improved" in printed["exercise-2-code"]
    assert "article   model (trained without flips)" in printed["exercise-3-code"]
    assert "improved  model (trained with flips)" in printed["exercise-3-code"]
    assert "the whole photo" in printed["exercise-4-code"] and "(true class" in printed["exercise-4-code"]


def check_08_sweeps(printed, folder):
    def results(sweep):
        with open(folder / "08" / sweep / "results.csv", newline="") as handle:
            return [(row["run"], row["status"]) for row in csv.DictReader(handle)]

    assert results("batch-size") == [("batch_size=16", "finished")]
    # exercises 1 and 3: the article's recipe through 06, with Adam at 0.0001, momentum 0.9 and flips
    for run in ("batch-size/batch_size=16", "seed/seed=0"):
        article = params(folder / "08" / run)
        assert article["optimizer"] == "adam" and article["schedule"] == "constant", run
        assert article["learning_rate"] == 0.0001 and article["bn_momentum"] == 0.9 and article["flip"], run
    assert results("learning-rate") == [("batch_size=32,learning_rate=0.05", "finished")]
    assert params(folder / "08" / "learning-rate" / "batch_size=32,learning_rate=0.05")["optimizer"] == "sgd"
    assert results("seed") == [("seed=0", "finished"), ("seed=1", "finished")]
    assert "2 seeds at batch 32" in printed["exercise-3-code"]


#: The longest executions, in the slow tier: 03 trains five runs, 06 six, 08 sweeps three times.
SLOW_SOLUTIONS = ("03_training", "06_improvements", "08_sweeps")


@pytest.mark.parametrize(
    "step", [pytest.param(step, marks=pytest.mark.slow) if step in SLOW_SOLUTIONS else step for step in STEPS]
)
def test_solution_runs_and_computes(step, executed):
    folder, results = executed
    result = results[step]
    print(f"{step}_solutions: {result['seconds']:.1f} s")
    assert result["returncode"] == 0, result["log"]
    globals()[f"check_{step}"](result["printed"], folder)
