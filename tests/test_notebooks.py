"""The notebooks: their structure, and every one of them executed on small settings."""

import json
import re
import subprocess
import sys

import nbformat
import numpy as np
import papermill
import pytest

import vggcifar
from conftest import ENV, NOTEBOOKS, SMALL, load_with_keras_alone, parameters_of
from vggcifar import backends
from vggcifar.settings import ARTICLE, IMPROVED_RECIPE, QUICK_RECIPE, TRAINING, recipe_of, run_params

NAMES = ["01_data", "02_model", "03_training", "04_plots", "05_saving"]  # the article's five steps
BEYOND = ["06_improvements", "07_evaluation", "08_sweeps"]
ALL = NAMES + BEYOND
ARTICLE_DEFAULTS = {k: v for k, v in ARTICLE.items() if k != "run_dir"}
#: 08 sweeps three runs: by default on a tenth of the pictures and for 5 epochs, to fit a Colab session.
SWEEP_SCALE = {"08_sweeps": {"subset": 1000, "epochs": 5}}


def read(name):
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


def test_the_notebooks_are_there():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == ["00_article", *ALL]


@pytest.mark.parametrize("name", ALL)
def test_parameters_cell_is_literal_with_the_article_defaults(name):
    values = parameters_of(read(name))
    if "recipe" in values:  # 06: None takes the recipe's value; the improved recipe has the article's budget
        budget = run_params(values["recipe"], epochs=values["epochs"], batch_size=values["batch_size"])
        values = {
            **values,
            "epochs": budget["epochs"],
            "batch_size": budget["batch_size"],
            "run_dir": values["run_dir"] or f"runs/{values['recipe']}",
        }
    assert {k: values[k] for k in ARTICLE_DEFAULTS} == {**ARTICLE_DEFAULTS, **SWEEP_SCALE.get(name, {})}
    assert isinstance(values["run_dir"], str) and values["run_dir"]


@pytest.mark.parametrize("name", ALL)
def test_papermill_help_lists_every_parameter_with_its_type(name):
    """`papermill --help-notebook` shows what papermill's inspection finds: every name, typed."""
    found = papermill.inspect_notebook(NOTEBOOKS / f"{name}.ipynb")
    values = parameters_of(read(name))
    assert set(found) == set(values)
    python_types = {"str": str, "int": int, "float": float, "bool": bool, "list": list, "None": type(None)}
    for parameter, value in values.items():
        allowed = found[parameter]["inferred_type_name"].split("|")
        assert set(allowed) <= set(python_types), (parameter, allowed)
        assert type(value) in {python_types[t] for t in allowed}, (parameter, value, allowed)
        assert found[parameter]["help"], parameter


def test_same_parameter_names_in_every_notebook():
    shared = {name: set(parameters_of(read(name))) for name in ALL}
    assert all(names >= set(ARTICLE_DEFAULTS) | {"run_dir", "data_cache"} for names in shared.values())
    assert all(parameters_of(read(name))["data_cache"] is None for name in ALL)
    assert len({parameters_of(read(name))["run_dir"] for name in NAMES}) == 1


def test_training_notebook_defaults_are_the_settings_defaults():
    values = parameters_of(read("03_training"))
    assert {k: values[k] for k in TRAINING} == TRAINING
    assert values["run_dir"] == ARTICLE["run_dir"] and values["overwrite"] is False


def code_of(name):
    return "\n".join(c.source for c in read(name).cells if c.cell_type == "code")


@pytest.mark.parametrize(
    "name, lesson",
    [
        (
            "02_model",
            [
                "layers.Conv2D(",
                "layers.BatchNormalization(",
                'layers.Activation("relu"',
                "layers.MaxPooling2D(",
                "layers.Flatten(",
                "layers.Dense(",
                "keras.Input(",
                "model.summary()",
            ],
        ),
        (
            "03_training",
            [
                'astype("float32") / 255',
                "keras.utils.to_categorical(",
                "keras.optimizers.Adam()",
                'loss="categorical_crossentropy"',
                'metrics=["accuracy"]',
                "model.fit(x_train, y_train, batch_size=batch_size",
                "validation_data=",
                "initial_epoch=initial_epoch",
                "callbacks=[run",
                # precision and strategy: applied by the setup line (vggcifar.training.use_parameters)
                "history.history[",
            ],
        ),
        (
            "04_plots",
            [
                "plt.figure(",
                'history.history["accuracy"], color="b"',
                'history.history["val_accuracy"], color="r"',
                'history.history["loss"], color="b"',
                'history.history["val_loss"], color="r"',
                'plt.xlabel("epoch")',
                'plt.ylabel("accuracy")',
                'plt.ylabel("loss")',
                'plt.legend(["training", "test"]',
                "plt.show()",
                "plt.savefig(",
            ],
        ),
        (
            "05_saving",
            [
                'model.save("cifar10-CNN.keras")',
                'model.save("cifar10-CNN.h5")',
                'model.save_weights("cifar10-CNN.weights.h5")',
                'keras.models.load_model("cifar10-CNN.keras")',
                'keras.models.load_model("cifar10-CNN.h5")',
                '.load_weights("cifar10-CNN.weights.h5")',
                "os.path.getsize(",
                "model.save(path)",
                ".save_weights(path)",
            ],
        ),
    ],
)
def test_the_articles_keras_code_is_in_the_cells(name, lesson):
    """A student reads the article's Keras code in the notebook, not behind a wrapper."""
    code = "".join(code_of(name).split())  # as the formatter lays it out: spaces do not count
    missing = [piece for piece in lesson if "".join(piece.split()) not in code]
    assert not missing, f"{name} does not show {missing}"
    for wrapper in ("run_training(", "train(model", "save_model_files("):
        assert wrapper not in code, f"{name} hides the lesson behind {wrapper}"


def test_the_articles_code_cells_build_the_packages_model():
    """02 checks its own model against vggcifar.model (the run under nbval executes the check)."""
    code = code_of("02_model")
    assert "kept.build_vgg16(" in code and "count_params()" in code


def test_improvements_notebook_defaults_are_the_improved_recipe_with_honest_validation():
    values = parameters_of(read("06_improvements"))
    assert values["recipe"] == "improved" and values["run_dir"] is None  # "runs/improved"
    names = [*IMPROVED_RECIPE, "epochs", "batch_size"]
    assert all(values[k] is None for k in names)  # the recipe's
    chosen = run_params(values["recipe"], **{k: values[k] for k in names})
    assert recipe_of(chosen) == IMPROVED_RECIPE and chosen["epochs"] == ARTICLE["epochs"]
    assert values["validation"] == "holdout" and values["article_run_dir"] == "runs/article"
    assert values["article_run_dir"] == parameters_of(read("03_training"))["run_dir"]
    assert parameters_of(read("03_training"))["validation"] == "test"  # the article's way


@pytest.mark.parametrize("name", ALL)
def test_committed_without_outputs_and_with_stable_ids(name):
    notebook = read(name)
    nbformat.validate(notebook)
    ids = [cell.id for cell in notebook.cells]
    assert len(set(ids)) == len(ids) and all(ids)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
            compile(cell.source, f"{name}:{cell.id}", "exec")  # plain Python, no magics


@pytest.mark.parametrize("name", ALL)
def test_colab_link_setup_and_gpu_check(name):
    notebook = read(name)
    first = notebook.cells[0].source
    repo = vggcifar.REPOSITORY.removeprefix("https://github.com/")
    assert f"https://colab.research.google.com/github/{repo}/blob/main/notebooks/en/{name}.ipynb" in first
    assert notebook.metadata["accelerator"] == "GPU"
    code = "\n".join(c.source for c in notebook.cells if c.cell_type == "code")
    assert "environment_report()" in code
    install = next(c.source for c in notebook.cells if c.get("id") == "install")
    # installs vggcifar only where missing, and never TensorFlow, Keras or NumPy
    install = install.split("\nimport vggcifar")[0]  # a one-cell setup imports after it installs
    code_lines = "\n".join(line for line in install.splitlines() if not line.lstrip().startswith("#"))
    assert 'find_spec("vggcifar")' in code_lines and "--no-deps" in code_lines
    assert "package is None or package.origin is None" in code_lines  # an old clone's folder is no install
    assert not any(word in code_lines.lower() for word in ("tensorflow", "keras", "numpy", "-u "))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """All notebooks with small parameters injected by papermill, not yet run.

    06 compares its improved run with the article run that 03 made; 07 evaluates that run.
    """
    folder = tmp_path_factory.mktemp("prepared")
    run_dir = folder / "run"
    extra = {
        "06_improvements": {
            "run_dir": str(folder / "improved"),
            "article_run_dir": str(run_dir),
            "recipe": "quick",
        },  # the quick recipe's settings, at CI's size
        "08_sweeps": {"run_dir": str(folder / "sweep"), "batch_sizes": [16], "epochs": 2},
    }
    for name in ALL:
        papermill.execute_notebook(
            NOTEBOOKS / f"{name}.ipynb",
            folder / f"{name}.ipynb",
            parameters={**SMALL, "run_dir": str(run_dir), **extra.get(name, {})},
            prepare_only=True,
            progress_bar=False,
        )
    return folder, run_dir


@pytest.mark.backends  # also on JAX without TensorFlow (.ci/run): 01 to 08, as on Colab's TPU runtime
def test_every_notebook_runs_under_nbval(prepared):
    folder, run_dir = prepared
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval-lax",
            "-p",
            "no:cacheprovider",
            "-q",
            *[f"{name}.ipynb" for name in ALL],
        ],
        cwd=folder,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    # what 03, 04 and 05 leave in the run folder
    history = json.loads((run_dir / "history.json").read_text())
    assert history["epoch"] == [1]
    assert json.loads((run_dir / "environment.json").read_text())["backend"] == backends.backend()
    for produced in (
        "params.json",
        "history.csv",
        "metrics.json",
        "model.keras",
        "accuracy.png",
        "loss.png",
        "cifar10-CNN.keras",
        "cifar10-CNN.weights.h5",
        "cifar10-CNN.h5",
    ):
        assert (run_dir / produced).exists(), produced
    # 06: its own run, with the recipe given (quick), validated on held-out pictures
    improved = run_dir.parent / "improved"
    params = json.loads((improved / "params.json").read_text())
    assert params["validation"] == "holdout" and recipe_of(params) == QUICK_RECIPE
    assert (params["epochs"], params["batch_size"]) == (SMALL["epochs"], SMALL["batch_size"])
    assert "test_accuracy" in json.loads((improved / "metrics.json").read_text())
    # 03's run was reused by 06, not trained again (one history row, article recipe)
    assert json.loads((run_dir / "params.json").read_text())["dropout"] == 0.0
    # every file the notebooks saved loads with Keras alone, and they agree
    paths = {
        "model_keras": run_dir / "model.keras",
        "article_keras": run_dir / "cifar10-CNN.keras",
        "article_weights": run_dir / "cifar10-CNN.weights.h5",
        "article_h5": run_dir / "cifar10-CNN.h5",
        "improved_keras": improved / "model.keras",
    }
    pictures = np.random.default_rng(0).random((4, 32, 32, 3), dtype="float32")
    alone = load_with_keras_alone(paths, pictures, folder)
    for name in ("article_keras", "article_weights", "article_h5"):
        np.testing.assert_array_equal(alone[name], alone["model_keras"], err_msg=name)
    # a finished run keeps its model without the optimizer, and 05 saves that model
    assert {
        alone[f"{name}_optimizer"]
        for name in ("model_keras", "article_keras", "article_h5", "improved_keras")
    } == {None}
    # 03's fit wrote TensorBoard's event files
    assert list((run_dir / "logs" / "train").glob("events.out.tfevents.*"))
    # 08: a real sweep of 03 (one run here; test_sweeps.py covers grids with a stand-in), with
    # papermill's epochs=2 and the swept batch_size reaching the run
    sweep = run_dir.parent / "sweep"
    one = sweep / "batch_size=16"
    assert json.loads((one / "history.json").read_text())["epoch"] == [1, 2]
    params = json.loads((one / "params.json").read_text())
    assert (params["batch_size"], params["epochs"], params["subset"]) == (16, 2, SMALL["subset"])
    assert params["validation"] == "holdout"  # 08 compares runs on held-out pictures, not the test set
    assert list((one / "logs" / "validation").glob("events.out.tfevents.*"))
    assert (one / "notebooks" / "03_training.ipynb").is_file()
    table = (sweep / "results.csv").read_text().splitlines()
    assert len(table) == 2 and table[0].startswith("run,batch_size,status")
    assert table[1].startswith("batch_size=16,16,finished,2,")
    assert (sweep / "sweep-curves.png").is_file() and (sweep / "sweep-final.png").is_file()


def run_papermill(name, tmp_path, **parameters):
    out = tmp_path / f"{name}-out.ipynb"
    args = [
        sys.executable,
        "-m",
        "papermill",
        str(NOTEBOOKS / f"{name}.ipynb"),
        str(out),
        "--no-progress-bar",
        "--cwd",
        str(tmp_path),
    ]
    for key, value in parameters.items():
        args += ["-p", key, str(value)]
    return subprocess.run(args, env=ENV, capture_output=True, text=True, timeout=900), out


#: A bad parameter of each kind of notebook, and the message that stops it: 03 (the article's
#: steps), 06 (a recipe setting) and 07 (a picture that is not there).
BAD_PARAMETERS = [
    ("03_training", {"epochs": 0}, "epochs must be a whole number >= 1, got 0"),
    ("06_improvements", {"optimizer": "rmsprop"}, "optimizer must be one of ('adam', 'sgd'), got 'rmsprop'"),
    ("07_evaluation", {"picture": "no-such-cat.jpg"}, "picture 'no-such-cat.jpg': no such file"),
]


def test_a_bad_parameter_stops_each_notebook_before_any_work(tmp_path):
    """Each notebook, its parameters injected by papermill, stops at the cell that checks them,
    with the message, and nothing after that cell runs. One kernel runs the three notebooks one
    after the other (its variables cleared before each), as three kernels would."""
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    kernel = KernelManager(kernel_name="python3")
    kernel.start_kernel(cwd=str(tmp_path), env=ENV)
    try:
        for name, parameters, message in BAD_PARAMETERS:
            run_dir = tmp_path / f"never-{name}"
            prepared = tmp_path / f"{name}.ipynb"
            papermill.execute_notebook(
                NOTEBOOKS / f"{name}.ipynb",
                prepared,
                parameters={"data": "synthetic", "run_dir": str(run_dir), **parameters},
                prepare_only=True,
                progress_bar=False,
            )
            notebook = nbformat.read(prepared, as_version=4)
            clear = 'get_ipython().run_line_magic("reset", "-f")  # test only: a fresh namespace'
            notebook.cells.insert(0, nbformat.v4.new_code_cell(clear, id="test-reset"))
            client = NotebookClient(
                notebook, km=kernel, timeout=600, resources={"metadata": {"path": str(tmp_path)}}
            )
            with pytest.raises(CellExecutionError, match=re.escape(message)):
                client.execute()
            code = [cell for cell in notebook.cells if cell.cell_type == "code"]
            failed = [cell.id for cell in code if any(o.output_type == "error" for o in cell.outputs)]
            assert len(failed) == 1, (name, failed)
            after = code[[cell.id for cell in code].index(failed[0]) + 1 :]
            assert after and all(cell.execution_count is None for cell in after), name  # stopped there
            assert not run_dir.exists(), name
    finally:
        kernel.shutdown_kernel(now=True)


@pytest.mark.slow  # a kernel and a training; ensure_finished_run's side: test_training.py
def test_plots_notebook_without_a_run_says_so_and_trains_one(tmp_path):
    run_dir = tmp_path / "fresh-machine"
    result, out = run_papermill(
        "04_plots", tmp_path, data="synthetic", subset=5, epochs=1, batch_size=25, run_dir=run_dir
    )
    assert result.returncode == 0, result.stderr[-4000:]
    text = out.read_text()
    assert "No finished run" in text and "03_training.ipynb makes it" in text
    assert (run_dir / "accuracy.png").exists() and (run_dir / "loss.png").exists()
