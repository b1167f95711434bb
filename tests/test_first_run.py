"""The README's first command, as a newcomer runs it: a quiet console, real pictures, visible learning.

The default tier runs it at reduced size (3 of its 5 epochs: 27.0% measured on the sample's
test pictures) and checks what the console shows and a floor of 20% (chance is 10%); the slow
tier runs it exactly as the README gives it and checks the 30% floor below the README's
"about 40%".
"""

import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from conftest import REPO

#: What a beginner must never meet after a run that worked.
NOISE = (
    "I0000",
    "E0000",
    "W0000",
    "absl::InitializeLog",
    "cuInit",
    "ERROR",
    "Traceback",
    "KeyboardInterrupt",
)


def first_command():
    """The arguments of ``python -m vggcifar run ...`` in the README's first code block."""
    block = re.search(r"```bash\n(.*?)```", (REPO / "README.md").read_text(encoding="utf-8"), re.S).group(1)
    line = next(line for line in block.splitlines() if "python -m vggcifar run" in line)
    return shlex.split(line.split("python -m vggcifar run", 1)[1])


def run_first_command(arguments, run_dir):
    """Run the command in a fresh process, as a terminal would; returns its console lines."""
    arguments = list(arguments)
    where = arguments.index("--run-dir")
    arguments[where + 1] = str(run_dir)
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a new terminal
    done = subprocess.run(
        [sys.executable, "-m", "vggcifar", "run", *arguments],
        cwd=run_dir.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    console = (done.stdout + done.stderr).splitlines()
    assert done.returncode == 0, "\n".join(console[-40:])
    return console


def given_parameters(arguments):
    """The ``-p NAME VALUE`` pairs among the arguments."""
    return {arguments[i + 1]: arguments[i + 2] for i, a in enumerate(arguments) if a == "-p"}


def test_the_first_command_is_on_the_shipped_sample_with_the_quick_recipe():
    arguments = first_command()
    assert arguments[:2] == ["--recipe", "quick"] and given_parameters(arguments)["data"] == "sample"
    assert "--run-dir" in arguments


def test_at_reduced_size_it_learns_and_the_console_shows_each_notebook_each_epoch_and_a_summary(tmp_path):
    arguments = first_command()
    arguments[arguments.index("epochs") + 1] = "3"  # 3 of the 5 epochs
    console = run_first_command(arguments, tmp_path / "first")
    assert len(console) <= 150
    assert not [line for line in console if line.strip() in ("False", "True", "None")]  # no stray values
    assert not [line for line in console if any(word in line for word in NOISE)]
    steps = [line for line in console if re.match(r"\[\d of 5\] ", line)]
    assert steps == [
        "[1 of 5] 01_data",
        "[2 of 5] 02_model",
        "[3 of 5] 06_improvements",
        "[4 of 5] 04_plots",
        "[5 of 5] 05_saving",
    ]
    epochs = [line.split(":")[0].strip() for line in console if line.lstrip().startswith("epoch ")]
    assert epochs == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    metrics = json.loads((tmp_path / "first" / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.20, metrics  # it learns from the real pictures (chance: 10%)
    summary = next(line for line in console if line.startswith("Done in "))
    assert f"Test accuracy {metrics['test_accuracy']:.1%}" in summary
    assert f"Figures: {tmp_path / 'first' / 'accuracy.png'}, {tmp_path / 'first' / 'loss.png'}" in console


@pytest.mark.slow
def test_the_first_command_as_the_readme_gives_it_learns_from_real_pictures(tmp_path):
    """The README promises about 40%: the floor is 30% on the sample's 1,000 test pictures (chance: 10%)."""
    console = run_first_command(first_command(), tmp_path / "first")
    metrics = json.loads((tmp_path / "first" / "metrics.json").read_text())
    print("\n".join(console))  # the newcomer's view, in the test log
    assert metrics["test_accuracy"] >= 0.30, metrics
    assert len(console) <= 150
    assert not [line for line in console if any(word in line for word in NOISE)]
