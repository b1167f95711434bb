"""Runs that survive a dead kernel: SIGKILL at several points, then resume."""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

from vggcifar import runs
from vggcifar.data import make_synthetic
from vggcifar.model import build_vgg16
from vggcifar.runs import RunFolder
from vggcifar.training import compile_like_article, pixels_to_float

WORKER = Path(__file__).with_name("resume_worker.py")
STEPS = 3 * 3  # 3 epochs of 3 steps
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def work(run_dir, point):
    return subprocess.run([sys.executable, str(WORKER), str(run_dir), point], env=ENV,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("point, resumed_after", [
    ("mid-epoch", 1), ("between-epochs", 2), ("while-saving", 1)])
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
    assert rate == pytest.approx(1e-3 * 0.9 ** STEPS, rel=1e-4)
    model = keras.models.load_model(run_dir / runs.MODEL)
    assert int(model.optimizer.iterations) == STEPS
    assert json.loads((run_dir / runs.METRICS).read_text())["epochs"] == 3
    assert not list(run_dir.rglob("tmp-*")) or not (run_dir / runs.BACKUP).exists()


def train(model, dataset, run_dir, overwrite=False, epochs=2):
    """Notebook 03's run folder and fit, on a small model."""
    if not model.compiled:
        compile_like_article(model)
    run = RunFolder(run_dir, {"epochs": epochs}, overwrite=overwrite)
    initial_epoch = run.resume(model)
    model.fit(pixels_to_float(dataset.x_train), keras.utils.to_categorical(dataset.y_train, 10),
              batch_size=10, epochs=epochs, initial_epoch=initial_epoch,
              validation_data=(pixels_to_float(dataset.x_test),
                               keras.utils.to_categorical(dataset.y_test, 10)),
              callbacks=[run], verbose=0)
    return run.history


@pytest.fixture
def interrupted_run(tmp_path, monkeypatch):
    """A run whose two epochs are backed up, cut off just before it could finish."""
    run_dir = tmp_path / "cut"
    dataset = make_synthetic(per_class=2, test_per_class=1)
    with monkeypatch.context() as patch:
        patch.setattr(runs, "finish_run", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
        with pytest.raises(KeyboardInterrupt):
            train(build_vgg16(fc_units=16), dataset, run_dir)
    assert runs.read_backup(run_dir)["epoch"] == 2
    return run_dir, dataset


def snapshot(folder):
    return {p: p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def test_damaged_backup_gets_a_clear_message_and_nothing_changes(interrupted_run):
    run_dir, dataset = interrupted_run
    weights = next((run_dir / runs.BACKUP).glob("epoch-*.weights.h5"))
    weights.write_bytes(b"this is not an HDF5 file")
    before = snapshot(run_dir)
    with pytest.raises(runs.RunFolderError, match=r"backup in .* is damaged.*overwrite=True"):
        train(build_vgg16(fc_units=16), dataset, run_dir)
    assert snapshot(run_dir) == before
    # a fresh start, because it was asked for
    history = train(build_vgg16(fc_units=16), dataset, run_dir, overwrite=True)
    assert history["epoch"] == [1, 2] and runs.is_finished(run_dir)


def test_damaged_state_file(interrupted_run):
    run_dir, dataset = interrupted_run
    (run_dir / runs.BACKUP / runs.STATE).write_text('{"epoch": 2, "weig')
    with pytest.raises(runs.RunFolderError, match="is damaged"):
        train(build_vgg16(fc_units=16), dataset, run_dir)


def test_interrupted_run_finishes_without_training_again(interrupted_run, capsys):
    run_dir, dataset = interrupted_run
    history = train(build_vgg16(fc_units=16), dataset, run_dir)
    assert "resuming after epoch 2" in capsys.readouterr().out
    assert history["epoch"] == [1, 2] and runs.is_finished(run_dir)


def test_overwrite_removes_the_runs_files_and_nothing_else(interrupted_run):
    run_dir, dataset = interrupted_run
    (run_dir / "notes.txt").write_text("mine")
    (run_dir / runs.BACKUP / "thesis-draft.docx").write_text("mine too")
    history = train(build_vgg16(fc_units=16), dataset, run_dir, overwrite=True)
    assert history["epoch"] == [1, 2] and runs.is_finished(run_dir)
    assert (run_dir / "notes.txt").read_text() == "mine"
    assert (run_dir / runs.BACKUP / "thesis-draft.docx").read_text() == "mine too"
