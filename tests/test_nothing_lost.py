"""Issue 21: bad inputs and faults of run folders, sweeps and the command line.

Nothing of the user's is written over, and every refusal is a named error (RunFolderError,
ParameterError, or the command line's exit code 2) naming the file or parameter. The
trained runs here are of a model of a few KB, with the run folder's callback directly.
"""

import json
import time
from pathlib import Path

import keras
import nbformat
import pytest

from vggcifar import cli, runs, sweeps
from vggcifar.data import make_synthetic
from vggcifar.layout import BACKUP, HISTORY, METRICS, MODEL, PARAMS, STATE, SWEEP_RECORD
from vggcifar.model import build_vgg16
from vggcifar.runs import RunFolder, RunFolderError
from vggcifar.settings import ParameterError
from vggcifar.training import compile_like_article, ensure_finished_run, pixels_to_float

pytestmark = pytest.mark.backends  # also run on JAX without TensorFlow (.ci/run)


RUN = {"data": "synthetic", "epochs": 2}


def tiny_model():
    return compile_like_article(build_vgg16(blocks=((1, 8),) * 5, fc_units=16))


def train(run_dir, overwrite=False):
    """Notebook 03's run folder and fit, on a model of a few KB; returns the run's history."""
    dataset = make_synthetic(per_class=2, test_per_class=1)
    model = tiny_model()
    run = RunFolder(run_dir, RUN, overwrite=overwrite)
    initial_epoch = run.resume(model)
    model.fit(
        pixels_to_float(dataset.x_train),
        keras.utils.to_categorical(dataset.y_train, 10),
        batch_size=10,
        epochs=RUN["epochs"],
        initial_epoch=initial_epoch,
        validation_data=(pixels_to_float(dataset.x_test), keras.utils.to_categorical(dataset.y_test, 10)),
        callbacks=[run],
        verbose=0,
    )
    return run.history


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished run, copied afresh for each test that damages it."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    train(run_dir)
    assert runs.is_finished(run_dir)
    return run_dir


@pytest.fixture
def run_copy(finished, tmp_path):
    import shutil

    return Path(shutil.copytree(finished, tmp_path / "run"))


def snapshot(folder):
    """Every file's bytes, but for the lock (who is writing, not what was written)."""
    return {p: p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file() and p.name != runs.LOCK}


# --- 1. the command line checks --run-dir before it writes anything -----------------------


@pytest.fixture
def calls(monkeypatch):
    import papermill

    made = []
    monkeypatch.setattr(papermill, "execute_notebook", lambda source, target, *a, **k: made.append(target))
    return made


def test_run_leaves_a_users_notebooks_alone(calls, tmp_path, capsys):
    own = tmp_path / "mine" / "notebooks" / "01_data.ipynb"
    own.parent.mkdir(parents=True)
    own.write_text(nbformat.writes(nbformat.v4.new_notebook()))  # a notebook, not executed by papermill
    with pytest.raises(SystemExit) as stop:
        cli.main(["run", "-p", "data", "synthetic", "--run-dir", str(tmp_path / "mine")])
    error = capsys.readouterr().err
    assert stop.value.code == 2 and calls == []
    assert "mine" in error and "01_data.ipynb" in error and "Nothing was written" in error
    assert own.read_text() == nbformat.writes(nbformat.v4.new_notebook())


def test_run_in_a_clone_of_the_project_is_refused(calls, tmp_path, capsys, monkeypatch):
    (tmp_path / "README.md").write_text("the project")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        cli.main(["run", "-p", "data", "synthetic", "--run-dir", "."])
    assert stop.value.code == 2 and "not a run of this project (README.md" in capsys.readouterr().err
    assert calls == []


def test_run_goes_on_in_its_own_run_folder(calls, tmp_path):
    executed = tmp_path / "run" / "notebooks"
    executed.mkdir(parents=True)
    notebook = nbformat.v4.new_notebook(metadata={"papermill": {"parameters": {}}})
    nbformat.write(notebook, executed / "01_data.ipynb")
    (executed / ".ipynb_checkpoints").mkdir()  # Jupyter's, when a person opened it
    cli.main(["run", "-p", "data", "synthetic", "--run-dir", str(tmp_path / "run")])
    assert len(calls) == 5


# --- 2. a sweep's --out ----------------------------------------------------------------


class StandIn:
    """:func:`vggcifar.runner.execute` for tests: writes the records a finished run would.

    ``damage`` maps a batch size to (record name, text): that run's record is written so.
    """

    def __init__(self, damage=None):
        self.calls, self.damage = [], dict(damage or {})

    def __call__(self, notebook, target, parameters, indent=""):
        self.calls.append((Path(notebook).stem, dict(parameters)))
        run_dir = Path(parameters["run_dir"])
        epochs = parameters.get("epochs", 2)
        val = [0.1 * e for e in range(1, epochs + 1)]
        (run_dir / PARAMS).write_text(json.dumps(parameters))
        (run_dir / HISTORY).write_text(
            json.dumps({"epoch": list(range(1, epochs + 1)), "val_accuracy": val, "seconds": [2.0] * epochs})
        )
        (run_dir / METRICS).write_text(json.dumps({"test_accuracy": val[-1]}))
        (run_dir / MODEL).write_text("a model")
        if parameters.get("batch_size") in self.damage:
            name, text = self.damage[parameters["batch_size"]]
            (run_dir / name).write_text(text)


def test_a_sweep_never_replaces_a_users_results(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "results.csv").write_text("my own table")
    (out / "sweep-final.png").write_bytes(b"my own figure")
    execute = StandIn()
    with pytest.raises(ParameterError, match=r"results.csv, sweep-final.png would be replaced.*new or empty"):
        sweeps.run_sweep([{"epochs": 1}], out, execute=execute)
    assert execute.calls == [] and (out / "results.csv").read_text() == "my own table"
    assert sorted(p.name for p in out.iterdir()) == ["results.csv", "sweep-final.png"]
    with pytest.raises(SystemExit) as stop:
        cli.main(["sweep", "--param", "epochs=1", "--out", str(out)])
    assert stop.value.code == 2 and "results.csv" in capsys.readouterr().err


def test_a_sweep_folder_of_this_project_is_used_again(tmp_path):
    out = tmp_path / "sweep"
    sweeps.run_sweep([{"epochs": 1}], out, execute=StandIn())
    assert (out / "sweep-plan.json").is_file()
    sweeps.run_sweep([{"epochs": 1}, {"epochs": 2}], out, execute=StandIn())  # its own results replaced
    assert (out / "results.md").read_text().count("finished") == 2


# --- 3. a finished run that lost a record is never trained again ------------------------


def test_a_finished_run_without_metrics_is_refused_not_retrained(run_copy, monkeypatch):
    from vggcifar import training

    monkeypatch.setattr(training, "load_checked", lambda *a, **k: pytest.fail("it would train the run again"))
    (run_copy / METRICS).unlink()
    before = snapshot(run_copy)
    with pytest.raises(RunFolderError, match=r"holds history.json, model.keras .* but no metrics.json"):
        train(run_copy)
    with pytest.raises(RunFolderError, match="nothing was changed"):
        ensure_finished_run("04_plots.ipynb", run_dir=str(run_copy), **RUN)
    assert snapshot(run_copy) == before


def test_a_history_without_params_says_params_is_missing(run_copy):
    (run_copy / PARAMS).unlink()
    before = snapshot(run_copy)
    with pytest.raises(RunFolderError, match=r"params.json is missing in run_dir .*nothing was changed"):
        train(run_copy)
    assert snapshot(run_copy) == before


def test_a_kill_between_the_model_and_metrics_is_finished_from_the_backup(tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "run"
    write_json = runs.write_json

    def killed_at_metrics(path, content):
        if Path(path).name == METRICS:
            raise KeyboardInterrupt
        write_json(path, content)

    with monkeypatch.context() as patch:
        patch.setattr(runs, "write_json", killed_at_metrics)
        with pytest.raises(KeyboardInterrupt):
            train(run_dir)
    assert (run_dir / MODEL).is_file() and not (run_dir / METRICS).exists()
    assert (run_dir / BACKUP / STATE).is_file()
    history = json.loads((run_dir / HISTORY).read_text())
    capsys.readouterr()
    assert train(run_dir) == history  # no epoch trained again
    assert "resuming after epoch 2" in capsys.readouterr().out and runs.is_finished(run_dir)


# --- 7. damaged records are named ---------------------------------------------------------


@pytest.mark.parametrize(
    "name, content",
    [
        (PARAMS, None),
        (PARAMS, "[1, 2]"),
        (HISTORY, None),
        (HISTORY, '{"epoch": [1, 2], "loss": [0.5]}'),
        (HISTORY, '"a text"'),
        (METRICS, None),
        (METRICS, "[]"),
        (METRICS, "{not json"),
    ],
)
def test_a_damaged_record_of_a_finished_run_is_named(run_copy, name, content):
    path = run_copy / name
    path.unlink()
    if content is None:
        path.mkdir()  # a folder where the file should be
    else:
        path.write_text(content)
    before = snapshot(run_copy)
    with pytest.raises(RunFolderError, match=rf"{name} in run_dir .* is damaged .*nothing was changed"):
        train(run_copy)
    assert snapshot(run_copy) == before


@pytest.fixture
def cut_off(tmp_path, monkeypatch):
    """A run cut off after its two epochs were backed up, before it could finish."""
    run_dir = tmp_path / "cut"
    with monkeypatch.context() as patch:
        patch.setattr(runs, "finish_run", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
        with pytest.raises(KeyboardInterrupt):
            train(run_dir)
    return run_dir


@pytest.mark.parametrize("content", [None, "[]", '{"epoch": 2, "weights": 5, "history": {}}'])
def test_a_damaged_state_file_is_named(cut_off, content):
    state = cut_off / BACKUP / STATE
    state.unlink()
    if content is None:
        state.mkdir()
    else:
        state.write_text(content)
    before = snapshot(cut_off)
    with pytest.raises(RunFolderError, match=r"backup in .* is damaged.*Nothing was changed"):
        train(cut_off)
    assert snapshot(cut_off) == before


def test_a_damaged_run_is_a_row_of_the_sweep_not_its_end(tmp_path):
    out = tmp_path / "sweep"
    sets = [{"batch_size": 16}, {"batch_size": 32}, {"batch_size": 64}]
    rows = sweeps.run_sweep(sets, out, execute=StandIn(damage={32: (HISTORY, "{cut off")}))
    assert [row["status"] for row in rows] == ["finished", "damaged", "finished"]
    assert rows[1]["error"].startswith("history.json is damaged")
    assert "damaged" in (out / "results.md").read_text()
    assert (out / "sweep-curves.png").is_file() and (out / "sweep-final.png").is_file()


@pytest.mark.filterwarnings("ignore::UserWarning")  # the figure's labels: long, in a font without kanji
def test_long_run_names_are_shortened_with_a_hash(tmp_path):
    folders = []
    for last in ("一", "二"):
        folder = tmp_path / ("画像データ" * 16) / ("猫と犬の写真" * 13 + last)
        (folder / "train" / "cat").mkdir(parents=True)
        folders.append(str(folder))
    names = [sweeps.run_name({"data": data}, ["data"]) for data in folders]
    assert all(len(name.encode()) <= sweeps.MAX_NAME_BYTES for name in names)
    assert names[0] != names[1]
    rows = sweeps.run_sweep([{"data": data} for data in folders], tmp_path / "sweep", execute=StandIn())
    assert [row["status"] for row in rows] == ["finished", "finished"]
    record = json.loads((tmp_path / "sweep" / names[0] / SWEEP_RECORD).read_text())
    assert record["parameters"]["data"] == folders[0]  # the full value stays


@pytest.mark.parametrize(
    "given, message",
    [
        ("/no/such/notebook.ipynb", "'/no/such/notebook.ipynb' not found"),
        ("0*", "not patterns"),
        ("README", "is not a Jupyter notebook"),
    ],
)
def test_notebooks_that_are_not_notebooks_are_refused(tmp_path, monkeypatch, given, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "README").write_text("not a notebook")
    with pytest.raises(ParameterError, match=message):
        sweeps.run_sweep([{"epochs": 1}], tmp_path / "sweep", chain=[given], execute=StandIn())


# --- 8. the right words ------------------------------------------------------------------


def test_a_damaged_model_is_named_not_the_backup(run_copy):
    (run_copy / MODEL).write_bytes(b"not a zip file")
    before = snapshot(run_copy)
    with pytest.raises(RunFolderError) as refused:
        train(run_copy)
    message = str(refused.value)
    assert "model.keras in run_dir" in message and "is damaged" in message and "backup" not in message
    assert message.index("restore it from a copy") < message.index("overwrite=True")
    assert snapshot(run_copy) == before


@pytest.mark.parametrize(
    "argv, message",
    [
        (["sweep", "--param", "epochs=1", "--param", "epochs=2"], "--param epochs is given twice"),
        (
            ["sweep", "--param", "seed=1", "-p", "epochs", "1", "-p", "epochs", "2"],
            "-p epochs is given twice",
        ),
        (["sweep", "--param", "epochs=1,2", "-p", "epochs", "3"], "epochs is given both as swept"),
        (["run", "-p", "epochs", "1", "-p", "epochs", "2"], "-p epochs is given twice"),
    ],
)
def test_an_option_given_twice_is_refused(calls, tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as stop:
        cli.main([*argv, "--out" if argv[0] == "sweep" else "--run-dir", str(tmp_path / "out")])
    assert stop.value.code == 2 and message in capsys.readouterr().err
    assert calls == [] and not (tmp_path / "out").exists()


def test_a_grid_over_the_limit_is_refused_at_once(tmp_path, capsys):
    started = time.perf_counter()
    with pytest.raises(SystemExit) as stop:
        cli.main(
            [
                "sweep",
                *(f"--param={n}={','.join(map(str, range(1, 41)))}" for n in ("epochs", "seed", "subset")),
            ]
            + ["--out", str(tmp_path / "out")]
        )
    assert stop.value.code == 2 and "64,000 runs; a sweep takes at most 1,000" in capsys.readouterr().err
    assert time.perf_counter() - started < 5 and not (tmp_path / "out").exists()
    sweeps.run_sweep([{"epochs": 1}, {"epochs": 2}], tmp_path / "small", execute=StandIn())
    assert "Checking 2 run(s)" in capsys.readouterr().out


def test_backup_weights_outside_the_backup_are_never_loaded(cut_off, tmp_path):
    elsewhere = tmp_path / "epoch-0002.weights.h5"
    (cut_off / BACKUP / "epoch-0002.weights.h5").rename(elsewhere)  # a readable weights file
    state = json.loads((cut_off / BACKUP / STATE).read_text())
    state["weights"] = str(elsewhere)
    (cut_off / BACKUP / STATE).write_text(json.dumps(state))
    with pytest.raises(RunFolderError, match=r"backup in .* is damaged .*not a file epoch-NNNN.weights.h5"):
        train(cut_off)
