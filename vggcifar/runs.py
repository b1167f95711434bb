"""The run folder: everything a training run leaves behind, kept by one Keras callback.

=====================  ========================================================
``params.json``        the run's parameters, and what model and optimizer it trains
``environment.json``   Python, TensorFlow, Keras, NumPy; device; precision; strategy
``history.json``       per-epoch loss, accuracy, val_loss, val_accuracy, seconds
``history.csv``        the same as a table (one row per epoch)
``backup/``            the last two completed epochs: weights with the optimizer's
                       state, and ``state.json`` (epoch number and history); removed
                       when training ends
``run.lock``           while a process trains: which one (host, process, time)
``model.keras``        the trained model, layers and weights (written when training
                       ends; without the optimizer: a finished run is not trained further)
``metrics.json``       the final figures (with the test split's, scored once); its
                       presence means "finished"
=====================  ========================================================

In a notebook the folder is one object beside ``fit``::

    run = RunFolder(run_dir, params)             # checks the folder at once
    initial_epoch = run.resume(model)            # 0, or the epochs a cut-off run had done
    history = model.fit(..., initial_epoch=initial_epoch, callbacks=[run])

**Resuming.** Colab disconnects long sessions. After every epoch the weights (with
the optimizer's state, so a learning-rate schedule continues where it stopped) are
written to ``backup/``, and then ``backup/state.json`` is replaced in one step. That
file is the commit point: a kernel killed at any moment leaves either the old state
or the new one, each pointing to a complete weights file; the epoch before stays as
well, in case the newest file is still uploading to Google Drive. Running the same cells
again with the same ``run_dir`` continues after the last committed epoch; a finished
run is loaded instead of trained again. On Colab that needs ``run_dir`` on Google
Drive: a disconnect can take the machine's own disk with it.

Keras has ``keras.callbacks.BackupAndRestore`` for the same job; it overwrites its
weights file in place and writes its epoch number separately, so a kill during a
save can leave a broken or mismatched backup. Hence this small variant, which also
keeps the history with the weights and refuses to mix two different runs.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import time
import warnings
from pathlib import Path

import keras

from .backends import strategy_record
from .environment import environment_report
from .files import (
    TEMPORARY_PREFIX,
    LockedError,
    acquire_lock,
    held_by_me,
    is_temporary_of,
    read_json,
    refresh_lock,
    release_lock,
    replacing,
    write_json,
    write_text,
)
from .language import say
from .layout import (  # the file names and records' checks, kept in one module without Keras
    BACKUP,
    BACKUP_WEIGHTS,
    ENVIRONMENT,
    HISTORY,
    HISTORY_CSV,
    LOCK,
    LOGS,
    METRICS,
    MODEL,
    NOTEBOOK_FILES,
    PARAMS,
    RUN_FILES,
    STATE,
    RunFolderError,
    foreign_entries,
    is_finished,
    read_record,
    shown,
)
from .saving import without_optimizer
from .settings import ARTICLE_RECIPE
from .speed import speedups_applied

#: Seconds between two signs of life in the lock while training.
HEARTBEAT_SECONDS = 60
#: Keys of ``params.json`` that a run with other parameters may differ in.
_NOT_COMPARED = ("run_dir", "setup")


class RunFolder(keras.callbacks.Callback):
    """The run folder of one training run, as a Keras callback (see the module's help).

    ``params`` are the run's parameters (they go into ``params.json``); a folder that
    holds a run with other parameters is refused at once, unless ``overwrite=True``.
    ``test_data`` (pictures, one-hot labels) is scored once when training ends, for
    runs that validate on held-out training pictures; without it the last validation
    figures count as the test figures, as in the article.

    ``epochs`` (the run's planned epochs) and ``batch_size`` (for scoring ``test_data``)
    are the parameters' own unless given. A run trained in several ``fit`` calls (as
    :func:`vggcifar.training.run_training` does for ``small_crops``) names the epochs at
    which its earlier calls end in ``part_ends``; the call that reaches ``epochs`` finishes
    the run.
    """

    def __init__(
        self, run_dir, params, *, overwrite=False, test_data=None, epochs=None, batch_size=None, part_ends=()
    ):
        super().__init__()
        self.run_dir, self.run_params = Path(run_dir), dict(params)
        self.overwrite, self.test_data = overwrite, test_data
        self.epochs = self.run_params.get("epochs") if epochs is None else epochs
        self.batch_size = self.run_params.get("batch_size") if batch_size is None else batch_size
        self.part_ends = tuple(part_ends)
        self.history, self.finished, self._resumed = {}, False, False
        check_free(self.run_dir, self.run_params, overwrite)

    # --- before fit ---------------------------------------------------------------
    def resume(self, model):
        """Prepare the folder for ``model``; load what it holds; return the epochs already done.

        A new run returns 0. A cut-off run loads its last backup (weights and the
        optimizer's state) into ``model`` and returns its epochs — or the backup before
        it, when the last one is incomplete (as Google Drive can leave a file that is
        still uploading); a finished run loads its trained model and returns all its
        epochs, so ``fit`` has nothing left to do. Pass the result to ``fit`` as
        ``initial_epoch``. While it trains, the folder is locked against a second writer.
        """
        if not model.compiled:
            raise RunFolderError(
                say(
                    en="compile the model before run.resume(model): the backup holds the optimizer's state "
                    "too",
                    ja="run.resume(model) の前にモデルをコンパイルしてください。"
                    "バックアップには最適化手法の状態も入っています",
                )
            )
        try:
            candidates, note = start_run(
                self.run_dir,
                {**self.run_params, "setup": describe_setup(model)},
                {**environment_report(show=False), **_precision_and_strategy(model)},
                self.overwrite,
            )
            if note:
                print(
                    say(
                        en=f"Run folder {str(self.run_dir)!r}: {note}.",
                        ja=f"ランフォルダ {str(self.run_dir)!r}: {note}。",
                    )
                )
            state = _load_first(model, candidates, self.run_dir) if candidates else None
        except RunFolderError:
            release_lock(self.run_dir / LOCK)  # nothing will be written: let others in
            raise
        self._resumed = True
        if state is None:
            self.history = {}
            print(
                say(
                    en=f"Run folder {str(self.run_dir)!r}: a new run.",
                    ja=f"ランフォルダ {str(self.run_dir)!r}: 新しいランを始めます。",
                )
            )
            return 0
        self.history, self.finished = state["history"], state["finished"]
        done = len(self.history["epoch"])
        if self.finished:
            print(
                say(
                    en=f"Run folder {str(self.run_dir)!r}: the run is already finished ({done} epochs); its "
                    "trained model and history are loaded, nothing is trained again. Use another run_dir, "
                    "or overwrite=True, to train again.",
                    ja=f"ランフォルダ {str(self.run_dir)!r}: このランは学習を終えています({done} エポック)。"
                    "学習済みのモデルと履歴を読み込んだので、学習はし直しません。もう一度学習するには、別の "
                    "run_dir を指定するか、overwrite=True にしてください。",
                )
            )
        else:
            print(
                say(
                    en=f"Run folder {str(self.run_dir)!r}: resuming after epoch {done}.",
                    ja=f"ランフォルダ {str(self.run_dir)!r}: エポック {done} の続きから学習を再開します。",
                )
            )
        return done

    # --- during fit ------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        if not self._resumed:
            raise RunFolderError(
                say(
                    en="call run.resume(model) before model.fit, and pass what it returns as initial_epoch",
                    ja="model.fit の前に run.resume(model) を呼び出し、その戻り値を initial_epoch "
                    "に渡してください",
                )
            )
        called = self.params.get("epochs")
        if self.epochs is not None and called not in (self.epochs, *self.part_ends):
            parts = f" (or, for an earlier part, one of {list(self.part_ends)})" if self.part_ends else ""
            parts_ja = f"(前半の部分なら {list(self.part_ends)} のどれか)" if self.part_ends else ""
            raise RunFolderError(
                say(
                    en=f"the run's parameters say epochs={self.epochs}{parts}, but fit was called with "
                    f"epochs={called}",
                    ja=f"このランのパラメータは epochs={self.epochs}{parts_ja} ですが、fit は "
                    f"epochs={called} で呼び出されました",
                )
            )
        if held_by_me(self.run_dir / LOCK) is None and not self.finished:  # a later part
            acquire_lock(self.run_dir / LOCK, f"run_dir {str(self.run_dir)!r}")

    def on_epoch_begin(self, epoch, logs=None):
        done = len(self.history.get("epoch", []))
        if epoch != done:
            raise RunFolderError(
                say(
                    en=f"fit starts at epoch {epoch + 1}, but the run folder {str(self.run_dir)!r} holds "
                    f"{done} epoch(s): pass initial_epoch=run.resume(model) to fit",
                    ja=f"fit はエポック {epoch + 1} から始まりますが、ランフォルダ {str(self.run_dir)!r} "
                    f"には {done} エポック分が入っています。fit に initial_epoch=run.resume(model) "
                    "を渡してください",
                )
            )
        self._started = self._heartbeat = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if time.perf_counter() - self._heartbeat > HEARTBEAT_SECONDS:
            refresh_lock(self.run_dir / LOCK)
            self._heartbeat = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        row = {
            "epoch": epoch + 1,
            **{k: float(v) for k, v in (logs or {}).items()},
            "seconds": round(time.perf_counter() - self._started, 2),
        }
        for key, value in row.items():
            self.history.setdefault(key, []).append(value)
        commit_epoch(self.run_dir, self.model, self.history)
        refresh_lock(self.run_dir / LOCK)

    def on_train_end(self, logs=None):
        done = len(self.history.get("epoch", []))
        wanted = self.epochs or self.params.get("epochs", done)
        if done and not self.finished and (done >= wanted or self.model.stop_training):
            test = self._score_test()
            finish_run(
                self.run_dir,
                self.model,
                self.history,
                {
                    **environment_report(show=False),
                    **_precision_and_strategy(self.model),
                    "speedups": speedups_applied(self.model),
                },
                test,
            )
            self.finished = True
            print(
                say(
                    en=f"Run folder {str(self.run_dir)!r}: finished after {done} epochs; {MODEL} and "
                    f"{METRICS} written.",
                    ja=f"ランフォルダ {str(self.run_dir)!r}: {done} エポックで学習を終え、{MODEL} と "
                    f"{METRICS} を書き込みました。",
                )
            )
        history = getattr(self.model, "history", None)
        if isinstance(history, keras.callbacks.History) and done:  # the whole run, resumed or not
            history.history = {k: list(v) for k, v in self.history.items() if k not in ("epoch", "seconds")}
            history.epoch = [e - 1 for e in self.history["epoch"]]
        release_lock(self.run_dir / LOCK)

    def _score_test(self):
        """The test split's loss and accuracy: the last validation figures, or scored now, once."""
        if self.test_data is None:  # validated on the test split (or not at all)
            return {
                f"test_{key}": self.history[f"val_{key}"][-1]
                for key in ("loss", "accuracy")
                if f"val_{key}" in self.history
            }
        x, y = self.test_data
        scores = self.model.evaluate(x, y, batch_size=self.batch_size, verbose=0, return_dict=True)
        print(
            say(
                en=f"Test split, scored once now: accuracy {scores['accuracy']:.4f}, loss "
                f"{scores['loss']:.4f} ({len(y):,} pictures)",
                ja=f"テストデータをここで 1 回だけ評価しました: 正解率 {scores['accuracy']:.4f}、損失 "
                f"{scores['loss']:.4f}({len(y):,} 枚)",
            ),
            flush=True,
        )
        return {"test_loss": float(scores["loss"]), "test_accuracy": float(scores["accuracy"])}


# --- what the run trains --------------------------------------------------------------


def describe_setup(model):
    """What must not change when a run resumes: the architecture, the optimizer, the loss."""
    # classes and weight shapes, layer by layer; not names, which Keras numbers anew in a session
    shapes = [[type(layer).__name__, [list(w.shape) for w in layer.weights]] for layer in model.layers]
    optimizer = model.optimizer
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)
    config = optimizer.get_config()
    chosen = {
        key: config[key]
        for key in ("learning_rate", "beta_1", "beta_2", "epsilon", "momentum", "nesterov")
        if key in config
    }
    loss = model.loss if isinstance(model.loss, str) else keras.losses.serialize(model.loss)
    return json.loads(
        json.dumps(
            {
                "model": {
                    "parameters": int(model.count_params()),
                    "architecture": hashlib.sha256(json.dumps(shapes).encode()).hexdigest()[:16],
                },
                "optimizer": {"class": type(optimizer).__name__, **chosen},
                "loss": loss,
            },
            default=float,
        )
    )


def _precision_and_strategy(model):
    return {"precision": model.dtype_policy.name, **strategy_record(model)}


# --- reading and writing the folder -----------------------------------------------------


def _comparable(params):
    return {k: v for k, v in params.items() if k not in _NOT_COMPARED}


def _differences(old, new):
    """Parameters that differ; a recipe setting missing from an older run's record had its
    article value (the only one the versions before that setting knew)."""
    old = {**{k: v for k, v in ARTICLE_RECIPE.items() if k in new}, **old}
    return {k: (old.get(k), new.get(k)) for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)}


def check_free(run_dir, params=None, overwrite=False):
    """Raise unless ``run_dir`` is new or empty, or holds a run with these very ``params``.

    A run with the same parameters can be resumed (or is already finished); one with
    other parameters is never mixed with this one, unless ``overwrite``. A folder with
    files of someone else's and no run in it is never used, ``overwrite`` or not.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunFolderError(
            say(
                en=f"run_dir {str(run_dir)!r} is a file, not a folder; choose another run_dir",
                ja=f"run_dir {str(run_dir)!r} はフォルダではなくファイルです。別の run_dir "
                "を指定してください",
            )
        )
    if not run_dir.exists():
        return
    if not overwrite:
        check_complete(run_dir)
    if not (run_dir / PARAMS).exists() and not (run_dir / HISTORY).exists():
        foreign = foreign_entries(run_dir)
        if foreign:
            raise RunFolderError(
                say(
                    en=f"run_dir {str(run_dir)!r} holds files that are not a run of this project "
                    f"({shown(foreign)}); a run is never set up among other files, and overwrite=True does "
                    "not change that: choose a new or empty folder",
                    ja=f"run_dir {str(run_dir)!r} には、"
                    f"このプロジェクトのランではないファイルがあります({shown(foreign)})。"
                    "ほかのファイルがあるフォルダにランを作ることはしません。overwrite=True でも同じです。"
                    "新しいフォルダか空のフォルダを指定してください",
                )
            )
        return
    if overwrite or not (run_dir / PARAMS).exists():  # no params.json: resumed from the backup
        return
    old = _comparable(load_params(run_dir))
    new = _comparable(params or {})
    if old != new:
        raise RunFolderError(
            say(
                en=f"run_dir {str(run_dir)!r} already holds a run with other parameters (saved, now: "
                f"{_differences(old, new)}); choose another run_dir, or pass overwrite=True to replace that "
                "run's files",
                ja=f"run_dir {str(run_dir)!r} には、パラメータの違うランがすでにあります"
                f"(保存されている値と今の値: {_differences(old, new)})。別の run_dir を指定するか、"
                "そのランのファイルを置き換えてよければ overwrite=True にしてください",
            )
        )


def check_complete(run_dir):
    """Raise unless ``run_dir``'s records let a run go on: finished, resumable, or not begun.

    A run that has written its history, its trained model or its final figures is never
    taken for a new one and trained again over them. Without ``metrics.json`` a run is
    finished from its backup (a kernel killed between ``model.keras`` and ``metrics.json``
    leaves ``backup/state.json``, and resuming finishes the run without training); where
    there is no backup either, nothing can go on, and the folder is refused, named, with
    nothing changed. A missing ``params.json`` is said to be missing (not taken for other
    parameters); with a backup, the run resumes and the parameters are recorded anew.
    """
    run_dir = Path(run_dir)
    present = [name for name in (HISTORY, MODEL, METRICS) if (run_dir / name).exists()]
    resumable = (run_dir / BACKUP / STATE).exists()
    if present and not (run_dir / PARAMS).exists() and not resumable:
        raise RunFolderError(
            say(
                en=f"{PARAMS} is missing in run_dir {str(run_dir)!r}, which holds {', '.join(present)} of a "
                f"run; nothing was changed. Without it the run's parameters are unknown: restore {PARAMS} "
                "from a copy, or choose another run_dir; overwrite=True deletes this run's files and trains "
                "it afresh",
                ja=f"run_dir {str(run_dir)!r} にはランの {', '.join(present)} がありますが、{PARAMS} "
                f"がありません。何も変更していません。これがないとランのパラメータがわかりません。{PARAMS} "
                "をコピーから戻すか、別の run_dir を指定してください。overwrite=True にすると、"
                "このランのファイルを削除して最初から学習し直します",
            )
        )
    if present and not is_finished(run_dir) and not resumable:
        missing = [name for name in (HISTORY, MODEL, METRICS) if name not in present]
        raise RunFolderError(
            say(
                en=f"run_dir {str(run_dir)!r} holds {', '.join(present)} of a run, but no "
                f"{' or '.join(missing)} and no backup to finish it from; nothing was changed. A run is "
                "never trained again over its files: restore the missing file(s) from a copy, or move the "
                "folder aside and use a new run_dir; overwrite=True deletes this run's files and trains it "
                "afresh",
                ja=f"run_dir {str(run_dir)!r} にはランの {', '.join(present)} がありますが、"
                f"{'、'.join(missing)} も、ランを仕上げるためのバックアップもありません。"
                "何も変更していません。ランのファイルを上書きして学習し直すことはしません。"
                "足りないファイルをコピーから戻すか、フォルダを別の場所に移して新しい run_dir "
                "を使ってください。overwrite=True にすると、"
                "このランのファイルを削除して最初から学習し直します",
            )
        )


def start_run(run_dir, params, environment, overwrite=False):
    """Prepare ``run_dir`` for training; returns ``(states to resume from, a note or None)``.

    Each state is ``{"epoch": n, "weights": path, "history": {...}, "finished": bool}``,
    the newest first (a finished run's model, or the last backup and the one before it);
    none for a new run. ``params["setup"]`` (see :func:`describe_setup`) must match the
    saved run's. An unfinished run is locked for this process (see
    :func:`vggcifar.files.acquire_lock`); the note says when a stale lock was taken over.
    """
    check_free(run_dir, params, overwrite)
    run_dir = Path(run_dir)
    note = None
    if not overwrite and not (run_dir / PARAMS).exists() and (run_dir / BACKUP / STATE).exists():
        note = say(
            en=f"{PARAMS} was missing; resuming from the backup, with this run's parameters recorded anew",
            ja=f"{PARAMS} がなかったので、このランのパラメータを記録し直して、バックアップから再開します",
        )
    if (run_dir / PARAMS).exists() and not overwrite:
        saved = load_params(run_dir).get("setup")
        if saved is not None and saved != params["setup"]:
            raise RunFolderError(
                say(
                    en=f"run_dir {str(run_dir)!r} holds a run of another model, optimizer or loss (saved, "
                    f"now: {_differences(saved, params['setup'])}); choose another run_dir, or pass "
                    "overwrite=True to replace that run's files",
                    ja=f"run_dir {str(run_dir)!r} には、モデル、"
                    "最適化手法か損失の違うランがあります(保存されている値と今の値: "
                    f"{_differences(saved, params['setup'])})。別の run_dir を指定するか、"
                    "そのランのファイルを置き換えてよければ overwrite=True にしてください",
                )
            )
    if not overwrite and is_finished(run_dir):  # its records stay as they were
        history = load_history(run_dir)
        load_metrics(run_dir)  # checked: a damaged record is named, never trained over
        return [
            {"finished": True, "epoch": len(history["epoch"]), "weights": run_dir / MODEL, "history": history}
        ], None
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        taken_over = acquire_lock(run_dir / LOCK, f"run_dir {str(run_dir)!r}")
    except LockedError as error:
        raise RunFolderError(str(error)) from None
    note = say(en="; ", ja="。").join(n for n in (taken_over, note) if n) or None
    if overwrite:
        remove_run_files(run_dir)
    remove_leftovers(run_dir)
    write_json(run_dir / PARAMS, params)
    write_json(run_dir / ENVIRONMENT, environment)
    return read_backup(run_dir), note


def remove_run_files(run_dir):
    """Remove what a run and the notebooks wrote (and the backup) from ``run_dir``; any other file stays."""
    run_dir = Path(run_dir)
    for name in (*RUN_FILES, *NOTEBOOK_FILES):
        if (run_dir / name).is_file():
            (run_dir / name).unlink()
    _remove_backup(run_dir)
    _remove_logs(run_dir)


def remove_leftovers(run_dir):
    """Remove the temporary files that a write cut off by a dead kernel left in ``run_dir``.

    Only the temporary names of this project's own files (``tmp-<pid>-<random>-model.keras``,
    or an earlier version's ``tmp-model.keras``...; see :func:`vggcifar.files.is_temporary_of`)
    and any temporary file in ``backup/`` go: an interrupted save of the model leaves one as
    big as the model. Called while this process holds the folder's lock, so no write is under way.
    """
    run_dir = Path(run_dir)
    ours = (*RUN_FILES, *NOTEBOOK_FILES, STATE)
    for path in run_dir.glob(TEMPORARY_PREFIX + "*"):
        if any(is_temporary_of(path.name, name) for name in ours):
            path.unlink(missing_ok=True)
    for path in (run_dir / BACKUP).glob(TEMPORARY_PREFIX + "*"):
        path.unlink(missing_ok=True)


def _remove_logs(run_dir):
    """TensorBoard's event files of the old run (so that its curves do not mix with the new)."""
    logs = Path(run_dir) / LOGS
    for folder in (logs / "train", logs / "validation"):
        for path in folder.glob("events.out.tfevents.*"):
            path.unlink()
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    if logs.is_dir() and not any(logs.iterdir()):
        logs.rmdir()


def _remove_backup(run_dir):
    backup = Path(run_dir) / BACKUP
    if not backup.is_dir():
        return
    for path in [backup / STATE, *backup.glob("epoch-*.weights.h5"), *backup.glob(TEMPORARY_PREFIX + "*")]:
        path.unlink(missing_ok=True)
    if not any(backup.iterdir()):
        backup.rmdir()


def read_backup(run_dir):
    """The states to resume from, newest first: the last committed epoch and the one before it.

    ``[]`` when there is no backup; a clear error when ``state.json`` itself is damaged:
    not JSON, a folder, the wrong content, or weights that are not a file of ``backup/``
    named ``epoch-NNNN.weights.h5`` (a path elsewhere is never loaded).
    """
    state_path = Path(run_dir) / BACKUP / STATE
    if not state_path.exists():
        return []
    try:
        state = read_json(state_path)
        history = state["history"]
        if int(state["epoch"]) != len(history["epoch"]):
            raise ValueError(
                say(en="the history does not match the epoch", ja="履歴がエポック数と合いません")
            )
        if any(not isinstance(v, list) or len(v) != len(history["epoch"]) for v in history.values()):
            raise ValueError(
                say(
                    en="the history does not hold one value per epoch",
                    ja="履歴の値がエポックごとに 1 つずつになっていません",
                )
            )
        newest = {
            "epoch": int(state["epoch"]),
            "weights": state_path.parent / _weights_name(state["weights"]),
            "history": history,
            "finished": False,
        }
        candidates = [newest]
        previous = state.get("previous")
        if previous:
            epoch = int(previous["epoch"])
            candidates.append(
                {
                    "epoch": epoch,
                    "weights": state_path.parent / _weights_name(previous["weights"]),
                    "history": {k: v[:epoch] for k, v in history.items()},
                    "finished": False,
                }
            )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        folder = say(en="state.json is a folder", ja="state.json がフォルダです")
        reason = folder if state_path.is_dir() else f"{type(error).__name__}: {error}"
        raise damaged(run_dir, reason) from error
    return candidates


def _weights_name(name):
    """A backup's weights file as ``state.json`` names it: only a plain ``epoch-NNNN.weights.h5``."""
    if not isinstance(name, str) or not BACKUP_WEIGHTS.fullmatch(name):
        raise ValueError(
            say(
                en=f"it names weights {name!r}, not a file epoch-NNNN.weights.h5 of the backup",
                ja=f"重みのファイルとして、バックアップの epoch-NNNN.weights.h5 ではなく {name!r} "
                "が書かれています",
            )
        )
    return name


def damaged(run_dir, error):
    return RunFolderError(
        say(
            en=f"the backup in {str(Path(run_dir) / BACKUP)!r} is damaged ({error}). Nothing was changed. To "
            "start this run afresh, pass overwrite=True (it deletes the run's files and the damaged backup)",
            ja=f"{str(Path(run_dir) / BACKUP)!r} のバックアップが壊れています({error})。"
            "何も変更していません。このランを最初からやり直すには overwrite=True "
            "にしてください(ランのファイルと壊れたバックアップを削除します)",
        )
    )


def _load_first(model, candidates, run_dir):
    """Load the first state whose weights file reads into ``model``; say when an older one served."""
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    errors = []
    for state in candidates:
        try:
            if not Path(state["weights"]).is_file():
                name = Path(state["weights"]).name
                raise FileNotFoundError(say(en=f"{name} is missing", ja=f"{name} がありません"))
            with warnings.catch_warnings():
                if state["finished"]:  # model.keras holds no optimizer state (see finish_run)
                    warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
                model.load_weights(state["weights"])
        except Exception as error:  # h5py, zip, shape and missing-file errors alike
            errors.append((state, error))
            continue
        if errors:
            failed, error = errors[0]
            print(
                say(
                    en=f"Run folder {str(run_dir)!r}: the backup of epoch {failed['epoch']} could not be "
                    f"read ({type(error).__name__}: {error}); Google Drive can leave a file like that while "
                    f"it still uploads. Resuming from the backup of epoch {state['epoch']}.",
                    ja=f"ランフォルダ {str(run_dir)!r}: エポック {failed['epoch']} "
                    f"のバックアップを読み込めませんでした({type(error).__name__}: {error})。Google "
                    "ドライブでは、アップロードの途中のファイルがこのように残ることがあります。エポック "
                    f"{state['epoch']} のバックアップから再開します。",
                )
            )
        return state
    if candidates[0]["finished"]:  # a finished run's model.keras, not a backup (there is none)
        error = errors[0][1]
        raise RunFolderError(
            say(
                en=f"{MODEL} in run_dir {str(run_dir)!r} is damaged ({type(error).__name__}: "
                f"{str(error).strip()[:200]}); nothing was changed. It is the run's trained model: restore "
                f"it from a copy, or move the run folder aside and use a new run_dir (its {HISTORY} and "
                f"{METRICS} stay readable); overwrite=True deletes this run's files and trains it afresh",
                ja=f"run_dir {str(run_dir)!r} の {MODEL} が壊れています({type(error).__name__}: "
                f"{str(error).strip()[:200]})。何も変更していません。これはランの学習済みモデルです。"
                f"コピーから戻すか、ランフォルダを別の場所に移して新しい run_dir を使ってください({HISTORY} "
                f"と {METRICS} は読めるまま残ります)。overwrite=True にすると、"
                "このランのファイルを削除して最初から学習し直します",
            )
        )
    shapes = [line for _, error in errors for line in str(error).splitlines() if "shape" in line]
    if shapes:
        raise RunFolderError(
            say(
                en=f"the backup in {str(Path(run_dir) / BACKUP)!r} was made by a model of other shapes than "
                f"this one ({shapes[0].strip()[:200]}); it does not fit. Use another run_dir for this model, "
                "or overwrite=True to replace that run's files",
                ja=f"{str(Path(run_dir) / BACKUP)!r} のバックアップは、"
                f"このモデルとは形の違うモデルが作ったもので({shapes[0].strip()[:200]})、合いません。"
                "このモデルには別の run_dir を使うか、そのランのファイルを置き換えてよければ overwrite=True "
                "にしてください",
            )
        )
    epoch = say(en="epoch", ja="エポック")
    raise damaged(run_dir, say(en="; ", ja="。").join(f"{epoch} {s['epoch']}: {e}" for s, e in errors))


def commit_epoch(run_dir, model, history):
    """Back up the model after an epoch, then commit: replace ``state.json`` in one step.

    The backup holds the optimizer's state (Adam: 3x the weights), which resuming needs.
    The backup of the epoch before stays until the next commit, so a newest backup that
    is incomplete (a Drive upload cut off) still leaves one to resume from. Nothing else
    stays: older epochs and temporary files that a killed save left go at each commit, so
    ``backup/`` never holds more than these two generations.
    """
    backup = Path(run_dir) / BACKUP
    epoch = len(history["epoch"])
    name = f"epoch-{epoch:04d}.weights.h5"
    with replacing(backup / name) as temporary:
        model.save_weights(temporary)  # weights and optimizer state
    previous = None
    if (backup / STATE).exists():
        try:
            old = read_json(backup / STATE)
            previous = {"epoch": int(old["epoch"]), "weights": _weights_name(old["weights"])}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            previous = None
    if previous and (previous["epoch"] >= epoch or not (backup / previous["weights"]).exists()):
        previous = None
    write_json(backup / STATE, {"epoch": epoch, "weights": name, "history": history, "previous": previous})
    keep = {name} | ({previous["weights"]} if previous else set())
    for old_file in [*backup.glob("epoch-*.weights.h5"), *backup.glob(TEMPORARY_PREFIX + "*")]:
        if old_file.name not in keep:
            old_file.unlink(missing_ok=True)
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

    ``model.keras`` holds the layers and the trained weights, not the optimizer: a
    finished run is never trained further (resuming reads ``backup/``, which goes now),
    and notebooks 04 to 07 only plot, save and predict with it. Without Adam's
    two numbers per weight it is a third of the size (135 MB instead of 404 MB for the
    article's model). ``test`` (``test_loss``, ``test_accuracy``) goes into ``metrics.json`` too.
    """
    run_dir = Path(run_dir)
    write_history(run_dir, history)
    with replacing(run_dir / MODEL) as temporary:
        without_optimizer(model).save(temporary)
    final = {k: v[-1] for k, v in history.items() if k not in ("epoch", "seconds")}
    final.update(test or {})
    final["epochs"] = len(history["epoch"])
    final["mean_epoch_seconds"] = round(sum(history["seconds"]) / len(history["seconds"]), 2)
    final["environment"] = environment
    write_json(run_dir / METRICS, final)
    _remove_backup(run_dir)


def load_history(run_dir):
    """The history dict of a run folder (lists per key, one item per epoch)."""
    path = Path(run_dir) / HISTORY
    if not path.exists():
        raise RunFolderError(
            say(
                en=f"no {HISTORY} in run_dir {str(run_dir)!r}: 03_training.ipynb writes it",
                ja=f"run_dir {str(run_dir)!r} に {HISTORY} がありません。これは 03_training.ipynb "
                "が書き込みます",
            )
        )
    return read_record(path)


class FitHistory:
    """A run's history in the form ``model.fit`` returns it (a ``keras.callbacks.History``).

    ``history.history`` maps each metric (``loss``, ``accuracy``, ``val_loss``,
    ``val_accuracy``) to one number per epoch, and ``history.epoch`` counts the epochs
    from 0, so code written for ``history = model.fit(...)`` reads a run folder unchanged.
    """

    def __init__(self, saved):
        saved = dict(saved)
        epochs = saved.pop("epoch", None)
        self.history = {key: list(values) for key, values in saved.items()}
        count = len(next(iter(self.history.values()), []))
        self.epoch = [int(e) - 1 for e in epochs] if epochs else list(range(count))

    def __repr__(self):
        return f"FitHistory({len(self.epoch)} epochs: {', '.join(self.history)})"


def load_fit_history(run_dir):
    """:func:`load_history` as a :class:`FitHistory`: ``history.history["val_loss"]`` and so on."""
    return FitHistory(load_history(run_dir))


def load_params(run_dir):
    """The run's ``params.json``, checked (:class:`RunFolderError` naming it when damaged)."""
    return read_record(Path(run_dir) / PARAMS)


def load_metrics(run_dir):
    """The finished run's ``metrics.json``, checked (:class:`RunFolderError` naming it when damaged)."""
    return read_record(Path(run_dir) / METRICS)
