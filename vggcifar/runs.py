"""The run folder: everything a training run leaves behind, and how it resumes.

=====================  ========================================================
``params.json``        all parameters the run was started with
``environment.json``   Python, TensorFlow, Keras, NumPy; device; precision; strategy
``history.json``       per-epoch loss, accuracy, val_loss, val_accuracy, seconds
``history.csv``        the same as a table (one row per epoch)
``backup/``            the last completed epoch: weights with the optimizer's state,
                       and ``state.json`` (epoch number and history)
``model.keras``        the trained model (written when training ends)
``metrics.json``       the final figures (with the test split's, scored once); its
                       presence means "finished"
=====================  ========================================================

**Resuming.** Colab disconnects long sessions. After every epoch the weights (with
Adam's state, so a learning-rate schedule continues where it stopped) are written
to ``backup/``, and then ``backup/state.json`` is replaced in one step. That file is
the commit point: a kernel killed at any moment leaves either the old state or
the new one, each pointing to a complete weights file. Training again with the
same ``run_dir`` and the same parameters continues after the last committed epoch.

Keras has ``keras.callbacks.BackupAndRestore`` for the same job; it overwrites its
weights file in place and writes its epoch number separately, so a kill during a
save can leave a broken or mismatched backup. Hence this small variant, which also
keeps the history with the weights.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path

PARAMS, ENVIRONMENT, HISTORY, HISTORY_CSV, MODEL, METRICS = (
    "params.json", "environment.json", "history.json", "history.csv", "model.keras",
    "metrics.json")
BACKUP, STATE = "backup", "state.json"
#: What a run writes; ``overwrite=True`` removes these and nothing else.
RUN_FILES = (PARAMS, ENVIRONMENT, HISTORY, HISTORY_CSV, MODEL, METRICS)


class RunFolderError(ValueError):
    """A run folder that cannot be used as asked."""


def write_text(path, text):
    """Write through a temporary file and rename: never half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=1) + "\n")


def read_json(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _comparable(params):
    return {k: v for k, v in params.items() if k != "run_dir"}


def check_free(run_dir, params=None, overwrite=False):
    """Raise unless ``run_dir`` is empty, or holds a run with these very ``params``.

    A run with the same parameters can be resumed (or is already finished); one with
    other parameters is never mixed with this one.
    """
    run_dir = Path(run_dir)
    if overwrite or not (run_dir / PARAMS).exists() and not (run_dir / HISTORY).exists():
        return
    old = read_json(run_dir / PARAMS) if (run_dir / PARAMS).exists() else {}
    if params is None or _comparable(old) != _comparable(params):
        differences = {k: (old.get(k), (params or {}).get(k))
                       for k in sorted(set(_comparable(old)) | set(_comparable(params or {})))
                       if old.get(k) != (params or {}).get(k)}
        raise RunFolderError(
            f"run_dir {str(run_dir)!r} already holds a run with other parameters "
            f"(saved, now: {differences}); choose another run_dir, or pass "
            "overwrite=True to replace it")


def start_run(run_dir, params, environment, overwrite=False):
    """Prepare ``run_dir`` for training; returns the backup state to resume from, or None.

    The state is ``{"epoch": n, "weights": path, "history": {...}}``; a finished run
    returns its state with ``"finished": True``.
    """
    check_free(run_dir, params, overwrite)
    run_dir = Path(run_dir)
    if overwrite:
        for name in RUN_FILES:
            (run_dir / name).unlink(missing_ok=True)
        shutil.rmtree(run_dir / BACKUP, ignore_errors=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    if is_finished(run_dir):  # its records stay as they were
        history = load_history(run_dir)
        return {"finished": True, "epoch": len(history["epoch"]),
                "weights": run_dir / MODEL, "history": history}
    write_json(run_dir / PARAMS, params)
    write_json(run_dir / ENVIRONMENT, environment)
    return read_backup(run_dir)


def read_backup(run_dir):
    """The last committed epoch in ``run_dir/backup``, or None; a clear error if damaged."""
    state_path = Path(run_dir) / BACKUP / STATE
    if not state_path.exists():
        return None
    try:
        state = read_json(state_path)
        weights = state_path.parent / state["weights"]
        if not weights.exists() or int(state["epoch"]) != len(state["history"]["epoch"]):
            raise ValueError("the weights file or the history does not match the epoch")
    except (ValueError, KeyError, TypeError) as error:
        raise damaged(run_dir, error) from error
    return {**state, "weights": weights, "finished": False}


def damaged(run_dir, error):
    return RunFolderError(
        f"the backup in {str(Path(run_dir) / BACKUP)!r} is damaged ({error}). "
        "Nothing was changed. To start this run afresh, pass overwrite=True "
        "(it deletes the run's files and the damaged backup)")


def commit_epoch(run_dir, model, history):
    """Back up the model after an epoch, then commit: write ``state.json`` in one step."""
    backup = Path(run_dir) / BACKUP
    backup.mkdir(parents=True, exist_ok=True)
    epoch = len(history["epoch"])
    name = f"epoch-{epoch:04d}.weights.h5"
    tmp = backup / f"tmp-{name}"
    model.save_weights(tmp)  # weights and optimizer state
    os.replace(tmp, backup / name)
    write_json(backup / STATE, {"epoch": epoch, "weights": name, "history": history})
    for old in backup.glob("*.weights.h5"):
        if old.name != name:
            old.unlink()
    write_history(run_dir, history)


def write_history(run_dir, history):
    """Write the history so far as JSON (columns) and CSV (one row per epoch)."""
    run_dir = Path(run_dir)
    write_json(run_dir / HISTORY, history)
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    keys = list(history)
    writer.writerow(keys)
    writer.writerows(zip(*(history[k] for k in keys)))
    write_text(run_dir / HISTORY_CSV, table.getvalue())


def finish_run(run_dir, model, history, environment, test=None):
    """Save the trained model, write ``metrics.json`` (the mark of a finished run), drop the backup.

    ``test`` (``test_loss``, ``test_accuracy``) goes into ``metrics.json`` too.
    """
    run_dir = Path(run_dir)
    write_history(run_dir, history)
    tmp = run_dir / ("tmp-" + MODEL)
    model.save(tmp)
    os.replace(tmp, run_dir / MODEL)
    final = {k: v[-1] for k, v in history.items() if k not in ("epoch", "seconds")}
    final.update(test or {})
    final["epochs"] = len(history["epoch"])
    final["mean_epoch_seconds"] = round(sum(history["seconds"]) / len(history["seconds"]), 2)
    final["environment"] = environment
    write_json(run_dir / METRICS, final)
    shutil.rmtree(run_dir / BACKUP, ignore_errors=True)


def is_finished(run_dir):
    run_dir = Path(run_dir)
    return all((run_dir / name).exists() for name in (HISTORY, MODEL, METRICS))


def load_history(run_dir):
    """The history dict of a run folder (lists per key, one item per epoch)."""
    path = Path(run_dir) / HISTORY
    if not path.exists():
        raise RunFolderError(f"no {HISTORY} in run_dir {str(run_dir)!r}: "
                             "03_training.ipynb writes it")
    return read_json(path)


def load_params(run_dir):
    return read_json(Path(run_dir) / PARAMS)


def ensure_finished_run(notebook, **params):
    """For 04 to 07: use the finished run in ``params['run_dir']``, or make one now.

    On Colab every notebook gets a fresh machine, so the run folder that
    03_training.ipynb wrote is usually not here (unless ``run_dir`` is on Google
    Drive). Then this says so and trains with the given parameters, the same way 03
    would — resuming, if an earlier attempt of this notebook was cut off — and labels
    the result as made here. Returns True when it had to train.
    """
    from .training import run_params, run_training

    params = run_params(**params)
    run_dir = Path(params["run_dir"])
    if is_finished(run_dir):
        print(f"Using the finished run in {str(run_dir)!r} "
              f"(made with {load_params(run_dir)}).")
        return False
    print(f"No finished run in {str(run_dir)!r}. 03_training.ipynb makes it; on Colab each "
          f"notebook runs on its own machine, so its files are not here.\n"
          f"{notebook} therefore trains a run now, with this notebook's parameters "
          f"{params}. Everything below comes from this run made by {notebook}.")
    run_training(**params)  # resumes a cut-off run with the same parameters; never mixes runs
    return True
