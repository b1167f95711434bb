"""The run folder's layout: the name of every file the project writes into it.

One home for the names, read by :mod:`vggcifar.runs` (which writes the files), by
:mod:`vggcifar.saving` (the article's three files), by the command line and the
sweeps (which only read them). This module imports neither Keras nor TensorFlow, so
``python -m vggcifar --help`` and the sweep planner stay light.
"""

from __future__ import annotations

from pathlib import Path

PARAMS, ENVIRONMENT, HISTORY, HISTORY_CSV, MODEL, METRICS = (
    "params.json",
    "environment.json",
    "history.json",
    "history.csv",
    "model.keras",
    "metrics.json",
)
BACKUP, STATE, LOCK = "backup", "state.json", "run.lock"
#: What a run writes; ``overwrite=True`` removes these (and the backup) and nothing else.
RUN_FILES = (PARAMS, ENVIRONMENT, HISTORY, HISTORY_CSV, MODEL, METRICS)
#: What a sweep records about the run in its folder (see :mod:`vggcifar.sweeps`).
SWEEP_RECORD = "sweep.json"
#: Keras' TensorBoard callback writes here: ``logs/train/`` and ``logs/validation/``.
LOGS = "logs"
#: Where ``python -m vggcifar`` and sweeps keep the executed notebooks.
EXECUTED = "notebooks"
#: Notebook 04's two figures, as the article draws them.
FIGURES = ("accuracy.png", "loss.png")
#: Notebook 05's files, the article's step 5 (see :mod:`vggcifar.saving`).
ARTICLE_FILES = {
    "keras": "cifar10-CNN.keras",
    "weights": "cifar10-CNN.weights.h5",
    "legacy_h5": "cifar10-CNN.h5",
}
#: What notebooks 04 and 05, ``python -m vggcifar`` and sweeps add to a run folder.
NOTEBOOK_FILES = (*FIGURES, *ARTICLE_FILES.values(), EXECUTED, SWEEP_RECORD, LOGS)


def is_finished(run_dir):
    """True when ``run_dir`` holds a finished run: its history, trained model and final figures."""
    run_dir = Path(run_dir)
    return all((run_dir / name).exists() for name in (HISTORY, MODEL, METRICS))
