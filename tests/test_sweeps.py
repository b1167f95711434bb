"""Sweeps and the command line: checked before anything runs, one run folder per set,
finished runs skipped, failed ones recorded, interrupted ones resumed, results read from
the run records. Most tests replace papermill by a stand-in that writes a run's records;
notebook 08, run under nbval in test_notebooks.py, sweeps the real notebook 03."""

import csv
import json
from pathlib import Path

import pytest

from vggcifar import cli, sweeps
from vggcifar.layout import HISTORY, METRICS, MODEL, PARAMS, SWEEP_RECORD
from vggcifar.settings import ParameterError


class StandIn:
    """:func:`vggcifar.runner.execute` for tests: writes the records a finished run would.

    ``fail`` and ``interrupt`` name runs (by a parameter value) that raise instead.
    """

    def __init__(self, fail=(), interrupt=()):
        self.calls, self.fail, self.interrupt = [], set(fail), set(interrupt)

    def __call__(self, notebook, target, parameters, indent=""):
        self.calls.append((Path(notebook).stem, dict(parameters)))
        # the English set by default (VGGCIFAR_LANGUAGE unset); the executed copies in <run>/notebooks/
        assert (
            Path(notebook).parent.parts[-2:] == ("notebooks", "en")
            and Path(target).parent.name == "notebooks"
        )
        if parameters.get("batch_size") in self.interrupt:
            self.interrupt.clear()  # only the first time
            raise KeyboardInterrupt
        if parameters.get("batch_size") in self.fail:
            raise RuntimeError("ParameterError: batch_size 999 is larger than the 50 training pictures")
        run_dir = Path(parameters["run_dir"])
        epochs, batch = parameters.get("epochs", 20), parameters.get("batch_size", 64)
        val = [round(0.1 + 0.01 * batch / 16 * e, 4) for e in range(1, epochs + 1)]
        (run_dir / PARAMS).write_text(json.dumps(parameters))
        (run_dir / HISTORY).write_text(
            json.dumps({"epoch": list(range(1, epochs + 1)), "val_accuracy": val, "seconds": [2.0] * epochs})
        )
        (run_dir / METRICS).write_text(json.dumps({"test_accuracy": val[-1]}))
        (run_dir / MODEL).write_text("a model")


def read_table(out):
    with open(out / "results.csv") as handle:
        return list(csv.DictReader(handle))


# --- typed values, grids and sets ----------------------------------------------------


@pytest.mark.parametrize(
    "text, value",
    [("20", 20), ("0.5", 0.5), ("None", None), ("True", True), ("False", False), ("synthetic", "synthetic")],
)
def test_values_are_typed_as_the_parameters_cell_types_them(text, value):
    assert sweeps.parse_value(text) == value and type(sweeps.parse_value(text)) is type(value)


def test_a_grid_is_every_combination_in_order():
    grid = sweeps.parse_grid(["epochs=5,10", "batch_size=32,64,128"])
    assert grid == {"epochs": [5, 10], "batch_size": [32, 64, 128]}
    sets = sweeps.expand(grid)
    assert len(sets) == 6 and sets[0] == {"epochs": 5, "batch_size": 32}
    assert sets[-1] == {"epochs": 10, "batch_size": 128}
    with pytest.raises(ParameterError, match="--param must look like name=value1,value2"):
        sweeps.parse_grid(["epochs"])


def test_sets_from_yaml_as_a_list_or_a_grid(tmp_path):
    listed = tmp_path / "sets.yaml"
    listed.write_text("- {epochs: 5, batch_size: 32}\n- {epochs: 10, optimizer: sgd}\n")
    assert sweeps.read_sets(listed) == [{"epochs": 5, "batch_size": 32}, {"epochs": 10, "optimizer": "sgd"}]
    grid = tmp_path / "grid.json"
    grid.write_text('{"epochs": [1, 2], "seed": [0, 1]}')
    assert len(sweeps.read_sets(grid)) == 4
    (tmp_path / "bad.yaml").write_text("epochs: 5\n")
    with pytest.raises(ParameterError, match="must hold a list of parameter sets"):
        sweeps.read_sets(tmp_path / "bad.yaml")


@pytest.mark.parametrize(
    "sets, message",
    [
        (
            [{"epoch": 5}],
            r"unknown parameter 'epoch'; the notebooks \['03_training', '04_plots'\] take: .*'epochs'",
        ),
        ([{"batch_size": 0}], "batch_size must be a whole number >= 1, got 0"),
        ([{"epochs": 1}, {"epochs": 1}], r"appear more than once: \['epochs=1'\]"),
        ([{"run_dir": "x"}], "run_dir is set by the sweep"),
        ([], "at least one parameter set"),
    ],
)
def test_bad_names_and_values_are_refused_before_anything_runs(tmp_path, sets, message):
    execute = StandIn()
    with pytest.raises(ParameterError, match=message):
        sweeps.run_sweep(sets, tmp_path / "sweep", execute=execute)
    assert execute.calls == [] and not (tmp_path / "sweep").exists()


# --- running, skipping, failing, resuming ----------------------------------------------


def test_a_two_by_two_sweep_gives_four_runs_a_table_and_figures(tmp_path):
    execute, out = StandIn(), tmp_path / "sweep"
    sets = sweeps.expand({"batch_size": [16, 32], "epochs": [1, 2]})
    rows = sweeps.run_sweep(sets, out, fixed={"data": "synthetic"}, execute=execute)
    assert [name for name, _ in execute.calls] == ["03_training", "04_plots"] * 4
    names = [
        "batch_size=16,epochs=1",
        "batch_size=16,epochs=2",
        "batch_size=32,epochs=1",
        "batch_size=32,epochs=2",
    ]
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == names
    table = read_table(out)
    assert [(r["run"], r["batch_size"], r["epochs"], r["status"], r["epochs_done"]) for r in table] == [
        (name, b, e, "finished", e)
        for name, (b, e) in zip(names, [("16", "1"), ("16", "2"), ("32", "1"), ("32", "2")])
    ]
    assert float(table[3]["best_val_accuracy"]) == pytest.approx(0.14)  # from history.json
    assert float(table[3]["seconds_per_epoch"]) == 2.0
    assert rows[0]["parameters"]["data"] == "synthetic"
    assert (out / "results.md").read_text().count("\n") == 6  # header, rule, four runs
    assert (out / "sweep-curves.png").stat().st_size > 0 and (out / "sweep-final.png").stat().st_size > 0
    # 04 takes fewer parameters than 03: each notebook gets only its own
    plots = [parameters for name, parameters in execute.calls if name == "04_plots"][0]
    assert set(plots) <= sweeps.notebook_parameters(sweeps.find_notebook("04_plots"))

    again = StandIn()
    sweeps.run_sweep(sets, out, fixed={"data": "synthetic"}, execute=again)
    assert again.calls == []  # every run finished before: nothing runs
    assert len(read_table(out)) == 4


def test_a_failed_run_is_recorded_and_the_others_finish_then_it_is_tried_again(tmp_path):
    out = tmp_path / "sweep"
    sets = [{"batch_size": 16}, {"batch_size": 999}, {"batch_size": 32}]
    sweeps.run_sweep(sets, out, execute=StandIn(fail={999}))
    table = {r["run"]: r for r in read_table(out)}
    assert [table[n]["status"] for n in ("batch_size=16", "batch_size=999", "batch_size=32")] == [
        "finished",
        "failed",
        "finished",
    ]
    assert "larger than the 50 training pictures" in table["batch_size=999"]["error"]
    assert "Traceback" in json.loads((out / "batch_size=999" / SWEEP_RECORD).read_text())["traceback"]
    retry = StandIn()
    sweeps.run_sweep(sets, out, execute=retry)
    assert {p["batch_size"] for _, p in retry.calls} == {999}  # only the failed one again
    assert all(r["status"] == "finished" for r in read_table(out))


def test_an_interrupted_sweep_keeps_finished_runs_and_resumes(tmp_path, capsys):
    out = tmp_path / "sweep"
    sets = [{"batch_size": 16}, {"batch_size": 32}, {"batch_size": 64}]
    with pytest.raises(KeyboardInterrupt):
        sweeps.run_sweep(sets, out, execute=StandIn(interrupt={32}))
    assert json.loads((out / "batch_size=16" / SWEEP_RECORD).read_text())["status"] == "finished"
    assert json.loads((out / "batch_size=32" / SWEEP_RECORD).read_text())["status"] == "interrupted"
    assert not (out / "batch_size=64").exists()
    resumed = StandIn()
    sweeps.run_sweep(sets, out, execute=resumed)
    assert sorted({p["batch_size"] for _, p in resumed.calls}) == [32, 64]
    assert "interrupted before: resuming" in capsys.readouterr().out
    assert [r["status"] for r in read_table(out)] == ["finished"] * 3


# --- the command line ------------------------------------------------------------------


def test_the_command_line_refuses_a_bad_name_or_value_before_anything_runs(tmp_path, capsys, monkeypatch):
    import papermill

    ran = []
    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: ran.append(a))
    for argv, message in (
        (["--param", "epoch=1,2"], "unknown parameter 'epoch'"),
        (["-p", "batch_sise", "3", "--param", "epochs=1"], "'batch_sise'"),
        (["-p", "subset", "-1", "--param", "epochs=1"], "subset"),
    ):
        with pytest.raises(SystemExit) as stop:
            cli.main(["sweep", *argv, "--out", str(tmp_path / "s")])
        assert stop.value.code == 2 and message in capsys.readouterr().err
    assert ran == [] and not (tmp_path / "s").exists()


@pytest.fixture
def article_calls(monkeypatch):
    import papermill

    calls = []
    monkeypatch.setattr(
        papermill,
        "execute_notebook",
        lambda source, target, parameters, **o: calls.append((Path(source).name, dict(parameters), o["cwd"])),
    )
    return calls


def test_run_is_the_five_notebooks_with_the_same_parameters(article_calls, tmp_path):
    cli.main(
        ["run", "-p", "data", "synthetic", "-p", "deterministic", "True", "--run-dir", str(tmp_path / "run")]
    )
    assert [name[:2] for name, _, _ in article_calls] == ["01", "02", "03", "04", "05"]
    given = {name[:2]: parameters for name, parameters, _ in article_calls}
    for name, parameters in given.items():  # each the ones it has, with the same values
        assert parameters.items() <= given["03"].items() and parameters["run_dir"] == str(tmp_path / "run")
        assert set(parameters) == sweeps.notebook_parameters(sweeps.find_notebook(name)) & set(given["03"])
    assert given["03"]["deterministic"] is True  # typed, not the text 'True'
    assert given["01"]["data"] == "synthetic"


def test_run_with_a_recipe_trains_in_06_and_keeps_the_other_steps(article_calls, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli.main(["run", "--recipe", "quick", "-p", "data", "synthetic", "-p", "epochs", "2"])
    assert [name[:2] for name, _, _ in article_calls] == ["01", "02", "06", "04", "05"]
    given = {name[:2]: parameters for name, parameters, _ in article_calls}
    assert given["06"]["recipe"] == "quick" and given["06"]["article_run_dir"] == ""  # no second training
    assert all(p["run_dir"] == str(tmp_path / "runs" / "quick") for p in given.values())
    assert all(p["epochs"] == 2 for name, p in given.items() if name != "02")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["-p", "epoch", "5"], "unknown parameter 'epoch'"),
        (["-p", "batch_size", "0"], "batch_size"),
        (["-p", "data", "no/such/folder"], "not found"),
    ],
)
def test_run_stops_a_misspelled_name_or_bad_value_before_any_notebook(
    article_calls, tmp_path, capsys, argv, message
):
    with pytest.raises(SystemExit) as stop:
        cli.main(["run", *argv, "--run-dir", str(tmp_path / "run")])
    assert stop.value.code == 2 and message in capsys.readouterr().err
    assert article_calls == [] and not (tmp_path / "run").exists()


def test_relative_paths_are_taken_from_where_the_command_runs(article_calls, tmp_path, monkeypatch):
    (tmp_path / "pictures" / "train" / "cat").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    cli.main(["run", "-p", "data", "pictures", "-p", "data_cache", "cache", "--run-dir", "run"])
    _, parameters, cwd = article_calls[0]
    assert parameters["data"] == str(tmp_path / "pictures")
    assert parameters["data_cache"] == str(tmp_path / "cache")
    assert parameters["run_dir"] == str(tmp_path / "run")
    assert Path(cwd).parts[-2:] == ("notebooks", "en")  # where a relative path would otherwise be looked for


def test_a_sweep_of_notebook_06_compares_the_named_recipes(tmp_path):
    execute = StandIn()
    sweeps.run_sweep(
        sweeps.expand({"recipe": ["improved", "quick"]}),
        tmp_path / "sweep",
        chain=["06_improvements"],
        fixed={"article_run_dir": ""},
        execute=execute,
    )
    assert [(name, p["recipe"]) for name, p in execute.calls] == [
        ("06_improvements", "improved"),
        ("06_improvements", "quick"),
    ]
    assert [row["recipe"] for row in read_table(tmp_path / "sweep")] == ["improved", "quick"]
    with pytest.raises(ParameterError, match=r"recipe must be one of \('article', 'improved', 'quick'\)"):
        sweeps.run_sweep(
            [{"recipe": "fast"}], tmp_path / "other", chain=["06_improvements"], execute=StandIn()
        )


def test_the_japanese_notebooks_sweep_the_japanese_set(monkeypatch):
    """08 in Japanese sets VGGCIFAR_LANGUAGE=ja: its sweep runs notebooks/ja/, as does --language ja."""
    monkeypatch.setenv("VGGCIFAR_LANGUAGE", "ja")
    notebooks, _ = sweeps.plan([{"epochs": 1}], ("03_training", "04_plots"))
    assert [n.parent.parts[-2:] for n in notebooks] == [("notebooks", "ja")] * 2
    monkeypatch.setenv("VGGCIFAR_LANGUAGE", "fr")
    with pytest.raises(ParameterError, match="VGGCIFAR_LANGUAGE='fr' is not a language"):
        sweeps.plan([{"epochs": 1}], ("03_training",))
