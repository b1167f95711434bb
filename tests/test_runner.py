"""The one notebook runner: what a console shows of a notebook run, and what it keeps quiet."""

import io
import json

import nbformat

from vggcifar.runner import EpochEcho, execute

KERAS_OUTPUT = (
    "Run folder '/tmp/run': a new run.\n"
    "Epoch 1/2\n"
    "63/63 - 25s - 398ms/step - accuracy: 0.1063 - loss: 2.7236 - val_accuracy: 0.1000\n"
    "Epoch 2/2\n"
    "63/63 - 17s - 263ms/step - accuracy: 0.1437 - loss: 2.2142 - val_accuracy: 0.1620\n"
    "{'data': 'sample', 'epochs': 2, 'batch_size': 64}\n"
    "Run folder '/tmp/run': finished after 2 epochs; model.keras and metrics.json written.\n"
)


def test_one_line_per_epoch_and_the_run_folders_notes_whatever_the_pieces():
    for piece in (len(KERAS_OUTPUT), 7, 1):  # papermill hands over pieces of any length
        shown = io.StringIO()
        echo = EpochEcho(indent="  ", out=shown)
        for start in range(0, len(KERAS_OUTPUT), piece):
            echo.write(KERAS_OUTPUT[start : start + piece])
        assert shown.getvalue().splitlines() == [
            "  Run folder '/tmp/run': a new run.",
            "  epoch 1/2: 25s - 398ms/step - accuracy: 0.1063 - loss: 2.7236 - val_accuracy: 0.1000",
            "  epoch 2/2: 17s - 263ms/step - accuracy: 0.1437 - loss: 2.2142 - val_accuracy: 0.1620",
            "  Run folder '/tmp/run': finished after 2 epochs; model.keras and metrics.json written.",
        ]


def test_a_single_epoch_without_keras_epoch_line_still_gets_its_line():
    shown = io.StringIO()
    EpochEcho(indent="", out=shown).write(
        "3/3 - 9s - 3s/step - accuracy: 0.1 - loss: 4.8\nprogress 1/2 done\n"
    )
    assert shown.getvalue() == "epoch 1/1: 9s - 3s/step - accuracy: 0.1 - loss: 4.8\n"


def test_a_real_run_shows_its_epoch_lines_and_nothing_of_the_kernels_noise(tmp_path, capfd):
    notebook = nbformat.v4.new_notebook(
        metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}}
    )
    notebook.cells = [
        nbformat.v4.new_code_cell("epochs = 1", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "import sys\n"
            "print('Epoch 1/2')\n"
            "print('4/4 - 1s - loss: 0.5')\n"
            "print('a line nobody needs on a console')\n"
            "print('a warning', file=sys.stderr)\n"
            "False"  # a bare value, shown as the cell's result in Jupyter
        ),
    ]
    source = tmp_path / "notebooks" / "demo.ipynb"
    source.parent.mkdir()
    nbformat.write(notebook, source)
    execute(source, tmp_path / "out.ipynb", {"epochs": 2})
    out, err = capfd.readouterr()
    assert out.splitlines() == ["    epoch 1/2: 1s - loss: 0.5"]
    assert err == ""  # no kernel start-up or shut-down messages
    kept = json.loads((tmp_path / "out.ipynb").read_text())
    printed = "".join("".join(o.get("text", "")) for c in kept["cells"] for o in c.get("outputs", []))
    assert "a line nobody needs on a console" in printed and "a warning" in printed


def test_a_notebooks_first_import_of_vggcifar_keeps_tensorflows_start_up_lines_out(tmp_path):
    """In a kernel already running, TF_CPP_MIN_LOG_LEVEL comes too late: the import must hide them."""
    import os
    import subprocess
    import sys

    notebook = nbformat.v4.new_notebook(
        metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}}
    )
    notebook.cells = [
        nbformat.v4.new_code_cell(
            "import vggcifar\nimport keras\nimport sys\n"
            "from vggcifar.environment import environment_report\n"
            "environment_report()\n"  # asks for a GPU: where TensorFlow says "failed call to cuInit"
            "print('after', file=sys.stderr)"
        )
    ]
    nbformat.write(notebook, tmp_path / "setup.ipynb")
    hidden = (
        "TF_CPP_MIN_LOG_LEVEL",
        "KERAS_BACKEND",
        "PYTEST_CURRENT_TEST",
    )  # ipykernel captures no fd under pytest
    env = {k: v for k, v in os.environ.items() if k not in hidden}
    code = "import papermill, sys; papermill.execute_notebook(sys.argv[1], sys.argv[2], progress_bar=False)"
    run = [sys.executable, "-c", code, str(tmp_path / "setup.ipynb"), str(tmp_path / "out.ipynb")]
    subprocess.run(run, env=env, check=True, capture_output=True, timeout=300)
    kept = json.loads((tmp_path / "out.ipynb").read_text())
    errors = "".join(
        "".join(o.get("text", "")) for o in kept["cells"][0]["outputs"] if o.get("name") == "stderr"
    )
    assert errors == "after\n"  # the cell's own message still shows; TensorFlow's C++ lines do not


def test_the_command_lines_help_and_the_sweep_planner_never_import_keras():
    import subprocess
    import sys

    code = (
        "import sys; from vggcifar import cli, sweeps; from vggcifar.cli import main\n"
        "sweeps.plan([{'epochs': 1}], ['03_training', '04_plots'])\n"
        "try:\n    main(['run', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('keras', 'tensorflow') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.splitlines()[-1] == "[]"


def test_a_run_started_from_a_notebook_shows_its_epoch_lines_in_that_notebooks_cell(tmp_path):
    """As in 08: a sweep cell runs other notebooks; their epochs appear in its output as they come."""
    kernelspec = {"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}}
    inner = nbformat.v4.new_notebook(metadata=kernelspec)
    inner.cells = [nbformat.v4.new_code_cell("print('Epoch 1/2')\nprint('4/4 - 1s - loss: 0.5')")]
    (tmp_path / "notebooks").mkdir()
    nbformat.write(inner, tmp_path / "notebooks" / "inner.ipynb")
    outer = nbformat.v4.new_notebook(metadata=kernelspec)
    outer.cells = [
        nbformat.v4.new_code_cell(
            "from vggcifar.runner import execute\n"
            f"execute({str(tmp_path / 'notebooks' / 'inner.ipynb')!r}, "
            f"{str(tmp_path / 'done.ipynb')!r}, {{}})"
        )
    ]
    nbformat.write(outer, tmp_path / "outer.ipynb")
    execute(tmp_path / "outer.ipynb", tmp_path / "outer-out.ipynb", {})
    kept = json.loads((tmp_path / "outer-out.ipynb").read_text())
    shown = "".join("".join(o.get("text", "")) for o in kept["cells"][0]["outputs"])
    assert shown == "    epoch 1/2: 1s - loss: 0.5\n"
