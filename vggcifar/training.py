"""Step 3 — training, as in the article: Adam, categorical cross-entropy, accuracy.

``train`` runs ``model.fit`` and keeps a record in the run folder as it goes
(see :mod:`vggcifar.runs`): the history is rewritten after every epoch, so a
crashed kernel or a later notebook still has it. ``run_training`` does the
whole step — check, load, build, train — in one call.
"""

from __future__ import annotations

import time

import keras
import numpy as np

from . import data as data_module
from . import runs
from .model import build_vgg16


def check_params(*, epochs=20, batch_size=64, data="cifar10", subset=None, seed=0,
                 run_dir="runs/article"):
    """Check the notebook parameters before any long work; raise ValueError naming the bad one."""
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a whole number >= 0, got {seed!r}")
    if not isinstance(run_dir, (str, runs.Path)) or not str(run_dir):
        raise ValueError(f"run_dir must be a folder path, got {run_dir!r}")
    data_module._check_subset(subset)
    data_module.source_kind(data)


def pixels_to_float(x):
    """uint8 pixels 0-255 → float32 0-1, as the article does before ``fit``."""
    return np.asarray(x, dtype="float32") / 255.0


def compile_like_article(model):
    """Adam with default settings, categorical cross-entropy, accuracy."""
    model.compile(optimizer=keras.optimizers.Adam(),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    return model


class EpochRecorder(keras.callbacks.Callback):
    """Prints one line per epoch and rewrites the run folder's history after each epoch."""

    def __init__(self, run_dir, epochs):
        super().__init__()
        self.run_dir, self.epochs = run_dir, epochs
        self.history = {}

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()},
               "seconds": round(time.perf_counter() - self._started, 2)}
        for key, value in row.items():
            self.history.setdefault(key, []).append(value)
        runs.write_history(self.run_dir, self.history)
        shown = "  ".join(f"{k} {v:.4f}" for k, v in row.items() if k not in ("epoch", "seconds"))
        print(f"epoch {epoch + 1}/{self.epochs}  {row['seconds']:.1f} s  {shown}", flush=True)


def train(model, dataset, *, epochs=20, batch_size=64, run_dir="runs/article",
          params=None, overwrite=False):
    """Train ``model`` on ``dataset`` as the article does, validating on the test split.

    Writes ``params.json`` first, the history after every epoch, and the trained
    model (``model.keras``) and ``metrics.json`` at the end. Refuses a ``run_dir``
    that already holds a run unless ``overwrite=True``. Returns the history dict.
    """
    check_params(epochs=epochs, batch_size=batch_size, run_dir=run_dir)
    run_dir = runs.start_run(run_dir, {"epochs": epochs, "batch_size": batch_size,
                                       **(params or {})}, overwrite=overwrite)
    if not model.compiled:
        compile_like_article(model)
    x_train, x_test = pixels_to_float(dataset.x_train), pixels_to_float(dataset.x_test)
    y_train = data_module.one_hot(dataset.y_train, dataset.num_classes)
    y_test = data_module.one_hot(dataset.y_test, dataset.num_classes)
    steps = -(-len(x_train) // batch_size)
    print(f"Training {epochs} epochs of {steps} steps ({len(x_train):,} pictures, "
          f"batch_size {batch_size}); validating on {len(x_test):,} test pictures. "
          f"Run folder: {run_dir}", flush=True)
    recorder = EpochRecorder(run_dir, epochs)
    model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs,
              validation_data=(x_test, y_test), callbacks=[recorder], verbose=0)
    runs.finish_run(run_dir, model, recorder.history)
    return recorder.history


def run_training(*, epochs=20, batch_size=64, data="cifar10", subset=None, seed=0,
                 run_dir="runs/article", overwrite=False):
    """Everything 03_training does, in one call: check, seed, load, build, train.

    Returns ``(model, dataset, history)``.
    """
    params = dict(epochs=epochs, batch_size=batch_size, data=str(data), subset=subset,
                  seed=seed, run_dir=str(run_dir))
    check_params(**params)
    runs.check_free(run_dir, overwrite)
    keras.utils.set_random_seed(seed)
    dataset = data_module.load_data(data, subset=subset, seed=seed)
    print(dataset.describe())
    model = build_vgg16(dataset.input_shape, dataset.num_classes)
    history = train(model, dataset, epochs=epochs, batch_size=batch_size, run_dir=run_dir,
                    params=params, overwrite=overwrite)
    return model, dataset, history
