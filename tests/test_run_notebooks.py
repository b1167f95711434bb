"""tools/run_notebooks.py: values typed as Python literals, checked before anything runs,
paths taken from where the command runs. papermill is replaced by a recorder here; the
notebooks themselves run in test_notebooks.py."""

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("run_notebooks", REPO / "tools" / "run_notebooks.py")
run_notebooks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_notebooks)


@pytest.fixture
def executed(monkeypatch):
    calls = []
    monkeypatch.setattr(run_notebooks.papermill, "execute_notebook",
                        lambda source, target, parameters, **options: calls.append(
                            (Path(source).name, dict(parameters), options["cwd"])))
    return calls


@pytest.mark.parametrize("text, value", [("20", 20), ("0.5", 0.5), ("None", None), ("True", True),
                                         ("False", False), ("synthetic", "synthetic")])
def test_values_are_typed_as_the_parameters_cell_types_them(text, value):
    assert run_notebooks.parse_value(text) == value
    assert type(run_notebooks.parse_value(text)) is type(value)


def test_five_notebooks_in_order_with_the_same_parameters(executed, tmp_path):
    run_notebooks.main(["-p", "data", "synthetic", "-p", "epochs", "1",
                        "--run-dir", str(tmp_path / "run")])
    assert [name[:2] for name, _, _ in executed] == ["01", "02", "03", "04", "05"]
    assert all(parameters == executed[0][1] for _, parameters, _ in executed)
    assert executed[0][1]["epochs"] == 1 and executed[0][1]["run_dir"] == str(tmp_path / "run")


@pytest.mark.parametrize("argv, message", [(["-p", "epoch", "5"], "epoch"),
                                           (["-p", "batch_size", "0"], "batch_size"),
                                           (["-p", "data", "no/such/folder"], "not found")])
def test_a_misspelled_name_or_bad_value_stops_before_any_notebook(executed, tmp_path, capsys,
                                                                    argv, message):
    with pytest.raises(SystemExit) as stop:
        run_notebooks.main([*argv, "--run-dir", str(tmp_path / "run")])
    assert stop.value.code == 2 and message in capsys.readouterr().err
    assert executed == [] and not (tmp_path / "run").exists()


def test_relative_paths_are_taken_from_where_the_command_runs(executed, tmp_path, monkeypatch):
    (tmp_path / "pictures" / "train" / "cat").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    run_notebooks.main(["-p", "data", "pictures", "-p", "data_cache", "cache",
                        "--run-dir", "run"])
    _, parameters, cwd = executed[0]
    assert parameters["data"] == str(tmp_path / "pictures")
    assert parameters["data_cache"] == str(tmp_path / "cache")
    assert parameters["run_dir"] == str(tmp_path / "run")
    assert Path(cwd).name == "notebooks"  # where a relative path would otherwise be looked for
