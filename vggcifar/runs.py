"""The run folder: what a training run leaves behind for the later notebooks.

=================  ==========================================================
``params.json``    the parameters the run was started with
``history.json``   per-epoch loss, accuracy, val_loss, val_accuracy, seconds
``history.csv``    the same as a table (one row per epoch)
``model.keras``    the trained model (written when training ends)
``metrics.json``   the final epoch's figures; its presence means "finished"
=================  ==========================================================

Every file is written to a temporary name first and then renamed, so a kernel
that dies mid-write never leaves half a file behind.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

PARAMS, HISTORY, HISTORY_CSV, MODEL, METRICS = (
    "params.json", "history.json", "history.csv", "model.keras", "metrics.json")


class RunFolderError(ValueError):
    """A run folder that cannot be used as asked."""


def _write_text(path, text):
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _write_json(path, obj):
    _write_text(path, json.dumps(obj, indent=1) + "\n")


def check_free(run_dir, overwrite=False):
    """Raise if ``run_dir`` already holds a run's history and ``overwrite`` is not set."""
    run_dir = Path(run_dir)
    if not overwrite and (run_dir / HISTORY).exists():
        raise RunFolderError(
            f"run_dir {str(run_dir)!r} already holds a run ({HISTORY}); "
            "choose another run_dir, or pass overwrite=True to replace it")


def start_run(run_dir, params, overwrite=False):
    """Create ``run_dir`` and write ``params.json``; old results go only with ``overwrite``."""
    check_free(run_dir, overwrite)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in (HISTORY, HISTORY_CSV, METRICS, MODEL):
        (run_dir / name).unlink(missing_ok=True)
    _write_json(run_dir / PARAMS, params)
    return run_dir


def write_history(run_dir, history):
    """Write the history so far as JSON (columns) and CSV (one row per epoch)."""
    run_dir = Path(run_dir)
    _write_json(run_dir / HISTORY, history)
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    keys = list(history)
    writer.writerow(keys)
    writer.writerows(zip(*(history[k] for k in keys)))
    _write_text(run_dir / HISTORY_CSV, table.getvalue())


def finish_run(run_dir, model, history):
    """Save the trained model, then ``metrics.json`` (the mark of a finished run)."""
    run_dir = Path(run_dir)
    tmp = run_dir / ("tmp-" + MODEL)
    model.save(tmp)
    os.replace(tmp, run_dir / MODEL)
    final = {k: v[-1] for k, v in history.items() if k not in ("seconds",)}
    final["epochs"] = final.pop("epoch")
    final["mean_epoch_seconds"] = round(sum(history["seconds"]) / len(history["seconds"]), 2)
    _write_json(run_dir / METRICS, final)


def is_finished(run_dir):
    run_dir = Path(run_dir)
    return all((run_dir / name).exists() for name in (HISTORY, MODEL, METRICS))


def load_history(run_dir):
    """The history dict of a run folder (lists per key, one item per epoch)."""
    path = Path(run_dir) / HISTORY
    if not path.exists():
        raise RunFolderError(f"no {HISTORY} in run_dir {str(run_dir)!r}: "
                             "03_training.ipynb writes it")
    return json.loads(path.read_text(encoding="utf-8"))


def load_params(run_dir):
    return json.loads((Path(run_dir) / PARAMS).read_text(encoding="utf-8"))


def ensure_finished_run(notebook, **params):
    """For 04 and 05: use the finished run in ``params['run_dir']``, or make one now.

    On Colab every notebook gets a fresh machine, so the run folder that
    03_training.ipynb wrote is usually not here. Then this says so and trains with
    the given parameters, the same way 03 would, and labels the result as made here.
    Returns True when it had to train.
    """
    from .training import check_params, run_training

    check_params(**params)
    run_dir = Path(params["run_dir"])
    if is_finished(run_dir):
        print(f"Using the finished run in {str(run_dir)!r} "
              f"(made with {load_params(run_dir)}).")
        return False
    print(f"No finished run in {str(run_dir)!r}. 03_training.ipynb makes it; on Colab each "
          f"notebook runs on its own machine, so its files are not here.\n"
          f"{notebook} therefore trains a run now, with this notebook's parameters "
          f"{params}. Everything below comes from this run made by {notebook}.")
    run_training(**params)  # refuses a folder with an unfinished run: nothing is lost
    return True
