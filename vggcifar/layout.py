"""The run folder's layout: the name of every file the project writes into it.

One home for the names, read by :mod:`vggcifar.runs` (which writes the files), by
:mod:`vggcifar.saving` (the article's three files), by the command line and the
sweeps (which only read them). This module imports neither Keras nor TensorFlow, so
``python -m vggcifar --help`` and the sweep planner stay light.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .files import TEMPORARY_PREFIX
from .language import say

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
#: A sweep's record of its plan in ``<out>``, written before its first run (see :mod:`vggcifar.sweeps`).
SWEEP_PLAN = "sweep-plan.json"
#: What a sweep writes into ``<out>`` when its runs are done.
SWEEP_RESULTS = ("results.csv", "results.md", "sweep-curves.png", "sweep-final.png")
#: The only names ``backup/state.json`` may give for weights: files of ``backup/`` itself.
BACKUP_WEIGHTS = re.compile(r"epoch-\d{4}\.weights\.h5")
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


class RunFolderError(ValueError):
    """A run folder that cannot be used as asked."""


class DamagedRecord(RunFolderError):
    """One of a run folder's JSON records that cannot be read, or holds the wrong thing.

    ``name`` is the file's name, ``reason`` what is wrong with it (for a sweep's table).
    """

    def __init__(self, message, name, reason):
        super().__init__(message)
        self.name, self.reason = name, reason


def shown(names, most=5):
    """A few names for a message: ``a, b, c and 4 more``."""
    names = list(names)
    more = say(en=f" and {len(names) - most} more", ja=f" ほか {len(names) - most} 件")
    return ", ".join(names[:most]) + (more if len(names) > most else "")


def foreign_entries(run_dir):
    """The names in ``run_dir`` that this project did not write there."""
    own = {*RUN_FILES, *NOTEBOOK_FILES, BACKUP, LOCK}
    return sorted(
        p.name
        for p in Path(run_dir).iterdir()
        if p.name not in own and not p.name.startswith(TEMPORARY_PREFIX)
    )


def _a_dict(content):
    if not isinstance(content, dict):
        raise ValueError(
            say(
                en=f"it holds a {type(content).__name__}, not a JSON object",
                ja=f"中身が JSON のオブジェクトではなく {type(content).__name__} です",
            )
        )


def _a_history(content):
    """Per-epoch lists of numbers, one value per epoch, with the epoch numbers 1, 2, ..."""
    _a_dict(content)
    epochs = content.get("epoch")
    if not isinstance(epochs, list):
        raise ValueError(
            say(en="it has no list of epochs ('epoch')", ja="エポックのリスト('epoch')がありません")
        )
    for key, values in content.items():
        if not isinstance(values, list) or len(values) != len(epochs):
            raise ValueError(
                say(
                    en=f"{key!r} does not hold one value per epoch",
                    ja=f"{key!r} の値がエポックごとに 1 つずつになっていません",
                )
            )
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise ValueError(
                say(en=f"{key!r} holds something that is not a number", ja=f"{key!r} に数でない値があります")
            )
    if epochs != list(range(1, len(epochs) + 1)):
        raise ValueError(
            say(en="its epochs are not 1, 2, 3...", ja="エポックの番号が 1, 2, 3... になっていません")
        )


#: What each JSON record must hold; a record that does not is damaged.
_SHAPES = {PARAMS: _a_dict, HISTORY: _a_history, METRICS: _a_dict, STATE: _a_dict, SWEEP_RECORD: _a_dict}
#: What to do about a damaged record, when its reader does not say.
_ADVICE = (
    "Restore the file from a copy, or choose another run_dir; overwrite=True deletes "
    "this run's files and trains it afresh"
)
_ADVICE_JA = (
    "コピーからファイルを戻すか、別の run_dir を指定してください。overwrite=True にすると、"
    "このランのファイルを削除して最初から学習し直します"
)


def read_record(path, advice=None):
    """One JSON record of a run folder (``params.json``, ``history.json``...), checked.

    Raises :class:`DamagedRecord` naming the file when it cannot be read (a folder in its
    place, not JSON, not UTF-8) or holds the wrong thing (a list for a dict, a history
    whose columns differ in length), instead of an ``AttributeError`` or ``KeyError``
    somewhere later. Reading changes nothing, and the message says so.
    """
    path = Path(path)
    advice = say(en=_ADVICE, ja=_ADVICE_JA) if advice is None else advice
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
        _SHAPES.get(path.name, lambda content: None)(content)
    except IsADirectoryError:
        reason = say(en="it is a folder, not a file", ja="ファイルではなくフォルダです")
    except FileNotFoundError:
        raise DamagedRecord(
            say(
                en=f"{path.name} is missing in run_dir {str(path.parent)!r}; nothing was changed. {advice}",
                ja=f"run_dir {str(path.parent)!r} に {path.name} がありません。何も変更していません。"
                f"{advice}",
            ),
            path.name,
            say(en="it is missing", ja="ありません"),
        ) from None
    except (OSError, ValueError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        reason = str(error)
    else:
        return content
    raise DamagedRecord(
        say(
            en=f"{path.name} in run_dir {str(path.parent)!r} is damaged ({reason}); nothing was changed. "
            f"{advice}",
            ja=f"run_dir {str(path.parent)!r} の {path.name} が壊れています({reason})。何も変更していません。"
            f"{advice}",
        ),
        path.name,
        reason,
    )


def written_by_papermill(path):
    """True for a notebook that papermill executed: it records itself in ``metadata.papermill``."""
    path = Path(path)
    if not path.is_file() or path.suffix != ".ipynb":
        return False
    try:
        notebook = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(notebook, dict) and isinstance(notebook.get("metadata", {}).get("papermill"), dict)


#: Jupyter's own copies, made when a person opens an executed notebook; never written by this project.
CHECKPOINTS = ".ipynb_checkpoints"


def in_the_way(run_dir):
    """What keeps ``python -m vggcifar`` or a sweep from writing into ``run_dir``; None if nothing.

    They write the executed notebooks into ``run_dir/notebooks/`` before the notebooks
    check the folder, so the check happens first, here, without Keras: the folder must
    be new or empty, or a run folder of this project (see :func:`foreign_entries`), and
    its ``notebooks/`` may hold only notebooks that papermill executed.
    """
    run_dir = Path(run_dir)
    if not run_dir.exists():
        return None
    if not run_dir.is_dir():
        return "it is a file, not a folder"
    if not (run_dir / PARAMS).exists() and not (run_dir / HISTORY).exists():
        foreign = foreign_entries(run_dir)
        if foreign:
            return f"it holds files that are not a run of this project ({shown(foreign)})"
    executed = run_dir / EXECUTED
    if executed.exists() and not executed.is_dir():
        return f"{EXECUTED} in it is a file, where the executed notebooks go"
    if executed.is_dir():
        others = sorted(
            p.name for p in executed.iterdir() if p.name != CHECKPOINTS and not written_by_papermill(p)
        )
        if others:
            return (
                f"its {EXECUTED}/ holds files that are not notebooks executed by this project "
                f"({shown(others)})"
            )
    return None
