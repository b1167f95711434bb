"""Runs that survive a dead kernel: SIGKILL at several points, then resume."""

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import keras
import pytest

from vggcifar import runs
from vggcifar.data import make_synthetic
from vggcifar.runs import RunFolder
from vggcifar.training import compile_like_article, pixels_to_float

pytestmark = pytest.mark.backends  # also run on JAX without TensorFlow (.ci/run)


WORKER = Path(__file__).with_name("resume_worker.py")
STEPS = 3 * 3  # 3 epochs of 3 steps
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def work(run_dir, point):
    return subprocess.run(
        [sys.executable, str(WORKER), str(run_dir), point],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )


# Killed in the middle of an epoch and half-way through a backup: the two hard cases. A kill
# between epochs (the worker's "between-epochs") resumes the same way as "mid-epoch" does after
# the epoch before; it is left out to keep the suite under its time budget.
@pytest.mark.parametrize("point, resumed_after", [("mid-epoch", 1), ("while-saving", 1)])
def test_killed_run_resumes_with_exactly_epochs_rows(tmp_path, point, resumed_after):
    run_dir = tmp_path / point
    killed = work(run_dir, point)
    assert killed.returncode == -9, killed.stderr[-3000:]  # SIGKILL, as a dead kernel
    assert not runs.is_finished(run_dir)
    saved = runs.load_history(run_dir)["epoch"]
    assert saved == list(range(1, len(saved) + 1)) and len(saved) >= resumed_after

    again = work(run_dir, "none")
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"Run folder {str(run_dir)!r}: resuming after epoch {resumed_after}." in again.stdout
    assert "EPOCHS [1, 2, 3] FIT_HISTORY_ROWS 3" in again.stdout  # fit's history: the whole run
    history = runs.load_history(run_dir)
    assert history["epoch"] == [1, 2, 3]
    assert all(len(values) == 3 for values in history.values())
    assert len((run_dir / runs.HISTORY_CSV).read_text().splitlines()) == 1 + 3
    # the optimizer's step counter and the learning-rate schedule went on from the backup
    assert f"ITERATIONS {STEPS}" in again.stdout
    rate = float(again.stdout.split("LEARNING_RATE ")[1].split()[0])
    assert rate == pytest.approx(1e-3 * 0.9**STEPS, rel=1e-4)
    assert not keras.models.load_model(run_dir / runs.MODEL).compiled  # finished: no optimizer kept
    assert json.loads((run_dir / runs.METRICS).read_text())["epochs"] == 3
    assert not list(run_dir.rglob("tmp-*")) and not (run_dir / runs.BACKUP).exists()


def tiny_model(units=8):
    """A small Keras model: the run folder's mechanics do not depend on the architecture."""
    return keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Flatten(),
            keras.layers.Dense(units, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


def train(model, dataset, run_dir, overwrite=False, epochs=2):
    """Notebook 03's run folder and fit, on a small model."""
    if not model.compiled:
        compile_like_article(model)
    run = RunFolder(run_dir, {"epochs": epochs}, overwrite=overwrite)
    initial_epoch = run.resume(model)
    model.fit(
        pixels_to_float(dataset.x_train),
        keras.utils.to_categorical(dataset.y_train, 10),
        batch_size=10,
        epochs=epochs,
        initial_epoch=initial_epoch,
        validation_data=(pixels_to_float(dataset.x_test), keras.utils.to_categorical(dataset.y_test, 10)),
        callbacks=[run],
        verbose=0,
    )
    return run.history


@pytest.fixture
def interrupted_run(tmp_path, monkeypatch):
    """A run whose two epochs are backed up, cut off just before it could finish."""
    run_dir = tmp_path / "cut"
    dataset = make_synthetic(per_class=2, test_per_class=1)
    with monkeypatch.context() as patch:
        patch.setattr(runs, "finish_run", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
        with pytest.raises(KeyboardInterrupt):
            train(tiny_model(), dataset, run_dir)
    assert [state["epoch"] for state in runs.read_backup(run_dir)] == [2, 1]
    return run_dir, dataset


def snapshot(folder):
    """Every file's bytes, but for the lock (who is writing, not what was written)."""
    return {p: p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file() and p.name != runs.LOCK}


def test_damaged_backup_gets_a_clear_message_and_nothing_changes(interrupted_run):
    run_dir, dataset = interrupted_run
    for weights in (run_dir / runs.BACKUP).glob("epoch-*.weights.h5"):  # both epochs' backups
        weights.write_bytes(b"this is not an HDF5 file")
    before = snapshot(run_dir)
    with pytest.raises(runs.RunFolderError, match=r"backup in .* is damaged.*overwrite=True"):
        train(tiny_model(), dataset, run_dir)
    assert snapshot(run_dir) == before
    # a fresh start, because it was asked for
    history = train(tiny_model(), dataset, run_dir, overwrite=True)
    assert history["epoch"] == [1, 2] and runs.is_finished(run_dir)


def test_damaged_state_file(interrupted_run):
    run_dir, dataset = interrupted_run
    (run_dir / runs.BACKUP / runs.STATE).write_text('{"epoch": 2, "weig')
    with pytest.raises(runs.RunFolderError, match="is damaged"):
        train(tiny_model(), dataset, run_dir)


def test_interrupted_run_finishes_without_training_again(interrupted_run, capsys):
    run_dir, dataset = interrupted_run
    history = train(tiny_model(), dataset, run_dir)
    assert "resuming after epoch 2" in capsys.readouterr().out
    assert history["epoch"] == [1, 2] and runs.is_finished(run_dir)


def test_overwrite_removes_the_runs_files_and_nothing_else(interrupted_run):
    run_dir, dataset = interrupted_run
    (run_dir / "notes.txt").write_text("mine")
    (run_dir / runs.BACKUP / "thesis-draft.docx").write_text("mine too")
    history = train(tiny_model(), dataset, run_dir, overwrite=True)
    assert history["epoch"] == [1, 2] and runs.is_finished(run_dir)
    assert (run_dir / "notes.txt").read_text() == "mine"
    assert (run_dir / runs.BACKUP / "thesis-draft.docx").read_text() == "mine too"


# --- nothing of the user's is lost ----------------------------------------------------


def test_a_folder_of_someone_elses_files_is_never_used(tmp_path):
    """Not for a new run, and not with overwrite=True: no mark, no run folder."""
    mine = tmp_path / "thesis"
    (mine / "backup").mkdir(parents=True)
    (mine / "backup" / "thesis-draft.docx").write_text("years of work")
    (mine / "notes.txt").write_text("mine")
    before = snapshot(mine)
    for overwrite in (False, True):
        with pytest.raises(
            runs.RunFolderError,
            match=r"holds files that are not a run of this project "
            r"\(notes.txt\).*overwrite=True does not change",
        ):
            RunFolder(mine, {"epochs": 2}, overwrite=overwrite)
    assert snapshot(mine) == before


def write_lock(run_dir, **holder):
    (run_dir / runs.LOCK).write_text(json.dumps({"started": time.time(), "heartbeat": time.time(), **holder}))


def test_a_second_writer_is_refused_with_the_holders_name(interrupted_run):
    run_dir, dataset = interrupted_run
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        write_lock(run_dir, host=socket.gethostname(), pid=other.pid)
        with pytest.raises(
            runs.RunFolderError,
            match=rf"being written by process {other.pid} on "
            rf"{socket.gethostname()}.*wait until",
        ):
            train(tiny_model(), dataset, run_dir)
        write_lock(run_dir, host="colab-machine-2", pid=1234)  # alive a moment ago, elsewhere
        with pytest.raises(runs.RunFolderError, match="process 1234 on colab-machine-2"):
            train(tiny_model(), dataset, run_dir)
    finally:
        other.kill()
        other.wait()


@pytest.mark.parametrize(
    "holder, reason",
    [
        ("ended", r"process \d+ has ended"),
        ("silent", "has shown no sign of life for 20 minutes"),
    ],
)
def test_a_stale_lock_is_taken_over_and_said_so(interrupted_run, capsys, holder, reason):
    run_dir, dataset = interrupted_run
    if holder == "ended":
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        write_lock(run_dir, host=socket.gethostname(), pid=gone.pid)
    else:
        write_lock(run_dir, host="colab-machine-2", pid=1234, heartbeat=time.time() - 1200)
    history = train(tiny_model(), dataset, run_dir)
    out = capsys.readouterr().out
    assert "took over the lock" in out and re.search(reason, out), out
    assert history["epoch"] == [1, 2] and not (run_dir / runs.LOCK).exists()


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_an_incomplete_newest_backup_falls_back_to_the_one_before(interrupted_run, capsys, damage):
    """As Google Drive can leave it: state.json arrived, its weights file not (or not whole)."""
    run_dir, dataset = interrupted_run
    state = json.loads((run_dir / runs.BACKUP / runs.STATE).read_text())
    assert state["epoch"] == 2 and state["previous"]["epoch"] == 1
    newest = run_dir / runs.BACKUP / state["weights"]
    if damage == "missing":
        newest.unlink()
    else:
        newest.write_bytes(newest.read_bytes()[:1000])
    history = train(tiny_model(), dataset, run_dir)
    out = capsys.readouterr().out
    assert "the backup of epoch 2 could not be read" in out and "resuming after epoch 1." in out
    assert history["epoch"] == [1, 2] and runs.is_finished(run_dir)


def test_a_backup_of_another_model_says_it_does_not_fit(interrupted_run):
    run_dir, dataset = interrupted_run
    params = json.loads((run_dir / runs.PARAMS).read_text())
    del params["setup"]  # as a run folder of an older version has it
    (run_dir / runs.PARAMS).write_text(json.dumps(params))
    with pytest.raises(
        runs.RunFolderError, match="made by a model of other shapes than this one.*does not fit"
    ):
        train(tiny_model(units=16), dataset, run_dir)


def test_damaged_params_are_named_and_nothing_changes(interrupted_run):
    run_dir, dataset = interrupted_run
    (run_dir / runs.PARAMS).write_text('{"epochs": 2, "bat')
    before = snapshot(run_dir)
    with pytest.raises(runs.RunFolderError, match="params.json in run_dir .* is damaged"):
        train(tiny_model(), dataset, run_dir)
    assert snapshot(run_dir) == before


def test_backup_keeps_two_generations_and_no_leftovers_of_a_crash(tmp_path):
    """A killed save leaves a temporary file, a crash between commit and clean-up an old
    generation: the next commit removes both, so backup/ never holds more than two epochs."""
    run_dir = tmp_path / "run"
    model = compile_like_article(tiny_model())
    history = {"epoch": [], "loss": []}
    for epoch in (1, 2, 3):
        history["epoch"].append(epoch)
        history["loss"].append(1.0 / epoch)
        runs.commit_epoch(run_dir, model, history)
    backup = run_dir / runs.BACKUP
    assert sorted(p.name for p in backup.iterdir()) == [
        "epoch-0002.weights.h5",
        "epoch-0003.weights.h5",
        "state.json",
    ]
    (backup / "tmp-epoch-0004.weights.h5").write_bytes(b"half a backup")  # killed while saving epoch 4
    (backup / "epoch-0001.weights.h5").write_bytes(b"an old generation")  # killed before clean-up
    history["epoch"].append(4)
    history["loss"].append(0.25)
    runs.commit_epoch(run_dir, model, history)
    assert sorted(p.name for p in backup.iterdir()) == [
        "epoch-0003.weights.h5",
        "epoch-0004.weights.h5",
        "state.json",
    ]
    assert [state["epoch"] for state in runs.read_backup(run_dir)] == [4, 3]


def test_a_new_start_removes_temporary_files_of_a_killed_write(interrupted_run):
    run_dir, dataset = interrupted_run
    leftovers = [
        run_dir / "tmp-model.keras",
        run_dir / "tmp-history.json",
        run_dir / "tmp-4321-0a1b2c3d-history.csv",  # this version's names: tmp-<pid>-<random>-<name>
        run_dir / runs.BACKUP / "tmp-x.weights.h5",
    ]
    for path in leftovers:
        path.write_bytes(b"cut off")
    (run_dir / "tmp-notes.txt").write_text("not a name of ours: stays")
    (run_dir / "tmp-4321-0a1b2c3d-notes.txt").write_text("nor this one: stays")
    train(tiny_model(), dataset, run_dir)
    assert runs.is_finished(run_dir) and not any(path.exists() for path in leftovers)
    assert (run_dir / "tmp-notes.txt").exists() and (run_dir / "tmp-4321-0a1b2c3d-notes.txt").exists()
