"""Step 3 — training, as in the article: Adam, categorical cross-entropy, accuracy.

``train`` feeds the pictures through a ``tf.data`` pipeline (shuffled every epoch,
batched, prefetched; pixels stay uint8 until the batch goes to the model, where
they become float32 / 255 as in the article) and keeps a record in the run folder
(see :mod:`vggcifar.runs`): history and backup after every epoch, so a crashed
kernel or a Colab disconnect loses at most the epoch in progress, and training
again with the same ``run_dir`` resumes. ``run_training`` does the whole step —
check, seed, load, build, train — in one call.
"""

from __future__ import annotations

import time
from pathlib import Path

import keras
import numpy as np

from . import data as data_module
from . import runs
from .environment import PRECISIONS, STRATEGIES, choose_precision, choose_strategy, environment_report
from .improvements import ARTICLE_RECIPE, check_recipe, compile_recipe, make_augmenter, model_options
from .model import build_vgg16
from .optimizers import FusedAdam


#: Where the per-epoch validation figures come from: the test set, as the article does,
#: or pictures held out from the training set (the honest way; see :func:`split_validation`).
VALIDATIONS = ("test", "holdout")
#: Share of every class's training pictures that ``validation="holdout"`` sets aside.
HOLDOUT_SHARE = 0.1


def _whole(value, minimum):
    return not isinstance(value, bool) and isinstance(value, (int, np.integer)) and value >= minimum


def check_params(*, epochs=20, batch_size=64, data="cifar10", subset=None, seed=0,
                 run_dir="runs/article", precision="auto", strategy="auto",
                 deterministic=False, validation="test"):
    """Check the notebook parameters before any long work; raise ValueError naming the bad one."""
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if not _whole(value, 1):
            raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    if not _whole(seed, 0):
        raise ValueError(f"seed must be a whole number >= 0, got {seed!r}")
    if not isinstance(run_dir, (str, Path)) or not str(run_dir):
        raise ValueError(f"run_dir must be a folder path, got {run_dir!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if not isinstance(deterministic, bool):
        raise ValueError(f"deterministic must be True or False, got {deterministic!r}")
    if validation not in VALIDATIONS:
        raise ValueError(f"validation must be one of {VALIDATIONS}, got {validation!r}")
    data_module.check_subset(subset)
    data_module.source_kind(data)


def run_params(*, epochs=20, batch_size=64, data="cifar10", subset=None, seed=0,
               run_dir="runs/article", precision="auto", strategy="auto",
               deterministic=False, validation="test", **recipe):
    """All parameters of a run, checked, as they go into its ``params.json``.

    The recipe settings (see :mod:`vggcifar.improvements`) that are not given take
    the article's values, so every run folder records every setting.
    """
    params = dict(epochs=epochs, batch_size=batch_size, data=str(data), subset=subset,
                  seed=seed, run_dir=str(run_dir), precision=precision, strategy=strategy,
                  deterministic=deterministic, validation=validation)
    check_params(**params)
    return {**params, **check_recipe(recipe)}


def pixels_to_float(x):
    """uint8 pixels 0-255 → float32 0-1, as the article does before ``fit``."""
    return np.asarray(x, dtype="float32") / 255.0


def compile_like_article(model):
    """Adam with default settings, categorical cross-entropy, accuracy.

    The Adam is :class:`~vggcifar.optimizers.FusedAdam`: Keras' Adam, the same maths,
    with each weight updated by TensorFlow's one-pass kernel (faster, above all on CPUs).
    Keras' default ``jit_compile="auto"`` stays: XLA on GPUs and TPUs, where it fuses
    operations, and off on CPU-only machines, where it made this model 3 times slower.
    """
    model.compile(optimizer=FusedAdam(), loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def make_pipeline(x, y, num_classes, batch_size, shuffle=False, seed=0, augment=None):
    """A ``tf.data`` pipeline of (float32 pictures / 255, one-hot labels) batches.

    The pictures stay uint8 (a quarter of float32's memory) until a batch is taken;
    the conversion runs on the CPU while the accelerator works on the previous batch.
    ``augment(pictures, seed)`` (see :func:`vggcifar.improvements.make_augmenter`)
    changes each uint8 batch first, with a new seed for every batch and epoch. It runs
    here rather than as layers inside the model: Keras' random layers would keep XLA
    from compiling the model on GPUs and TPUs.
    """
    import tensorflow as tf

    pipeline = tf.data.Dataset.from_tensor_slices((x, np.asarray(y, dtype="int32")))
    if shuffle:
        pipeline = pipeline.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    pipeline = pipeline.batch(batch_size)
    if augment is not None:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        pipeline = tf.data.Dataset.zip(pipeline, seeds).map(
            lambda batch, batch_seed: (augment(batch[0], batch_seed), batch[1]),
            num_parallel_calls=tf.data.AUTOTUNE)
    pipeline = pipeline.map(
        lambda pictures, labels: (tf.cast(pictures, tf.float32) / 255.0,
                                  tf.one_hot(labels, num_classes)),
        num_parallel_calls=tf.data.AUTOTUNE)
    return pipeline.prefetch(tf.data.AUTOTUNE)


class RunRecorder(keras.callbacks.Callback):
    """After every epoch: add a history row, back up and commit, print one line."""

    def __init__(self, run_dir, epochs, history=None):
        super().__init__()
        self.run_dir, self.epochs = run_dir, epochs
        self.history = history or {}

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()},
               "seconds": round(time.perf_counter() - self._started, 2)}
        for key, value in row.items():
            self.history.setdefault(key, []).append(value)
        runs.commit_epoch(self.run_dir, self.model, self.history)
        shown = "  ".join(f"{k} {v:.4f}" for k, v in row.items() if k not in ("epoch", "seconds"))
        print(f"epoch {epoch + 1}/{self.epochs}  {row['seconds']:.1f} s  {shown}", flush=True)


def _describe_setup(model):
    strategy = model.distribute_strategy
    return {"precision": model.layers[0].dtype_policy.name,
            "strategy": type(strategy).__name__,
            "replicas": strategy.num_replicas_in_sync}


def split_validation(dataset, validation="test", seed=0):
    """``(x_train, y_train, x_val, y_val)`` for training and its per-epoch validation.

    ``"test"`` validates on the test split, as the article does. ``"holdout"`` sets
    aside :data:`HOLDOUT_SHARE` of every class's training pictures (chosen with
    ``seed``) and validates on those, so the test split stays unseen until the end.
    """
    if validation not in VALIDATIONS:
        raise ValueError(f"validation must be one of {VALIDATIONS}, got {validation!r}")
    if validation == "test":
        return dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test
    kept, held_out = data_module.stratified_split(dataset.y_train, HOLDOUT_SHARE, seed)
    return (dataset.x_train[kept], dataset.y_train[kept],
            dataset.x_train[held_out], dataset.y_train[held_out])


def train(model, dataset, *, epochs=20, batch_size=64, run_dir="runs/article",
          params=None, seed=0, overwrite=False, validation="test", augment=None):
    """Train ``model`` on ``dataset``, validating after every epoch.

    ``validation="test"`` validates on the test split as the article does;
    ``"holdout"`` on pictures held out from the training split, and then the test
    split is scored once, after the last epoch (``test_accuracy`` in ``metrics.json``).
    ``augment`` changes every training batch (see :func:`make_pipeline`).
    ``batch_size`` is the global batch (split across the replicas of a strategy).
    A ``run_dir`` holding an unfinished run with the same ``params`` is resumed
    after its last completed epoch; a finished one is loaded into ``model`` and its
    history returned; one with other parameters raises, unless ``overwrite=True``.
    Returns the history dict (one item per epoch in each list).
    """
    check_params(epochs=epochs, batch_size=batch_size, run_dir=run_dir, seed=seed,
                 validation=validation)
    params = {"epochs": epochs, "batch_size": batch_size, "validation": validation,
              **(params or {})}
    environment = {**environment_report(show=False), **_describe_setup(model)}
    state = runs.start_run(run_dir, params, environment, overwrite=overwrite)
    if not model.compiled:
        compile_like_article(model)
    if state is not None:
        _restore(model, state, run_dir)
        if state["finished"]:
            print(f"The run in {str(run_dir)!r} is already finished ({state['epoch']} epochs); "
                  "its trained model and history are loaded. Use another run_dir or "
                  "overwrite=True to train again.")
            return state["history"]
        print(f"Resuming the run in {str(run_dir)!r} after epoch {state['epoch']} of {epochs}.")
    initial_epoch = state["epoch"] if state else 0
    recorder = RunRecorder(run_dir, epochs, state["history"] if state else None)
    x_train, y_train, x_val, y_val = split_validation(dataset, validation, seed)
    train_data = make_pipeline(x_train, y_train, dataset.num_classes, batch_size,
                               shuffle=True, seed=seed, augment=augment)
    val_data = make_pipeline(x_val, y_val, dataset.num_classes, batch_size)
    steps = -(-len(x_train) // batch_size)
    print(f"Training {epochs} epochs of {steps} steps ({len(x_train):,} pictures, "
          f"batch_size {batch_size}{', augmented' if augment else ''}); validating on "
          f"{len(x_val):,} {'test' if validation == 'test' else 'held-out training'} pictures. "
          f"Precision {environment['precision']}, {environment['strategy']} with "
          f"{environment['replicas']} replica(s). Run folder: {run_dir}", flush=True)
    model.fit(train_data, epochs=epochs, initial_epoch=initial_epoch,
              validation_data=val_data, callbacks=[recorder], shuffle=False, verbose=0)
    runs.finish_run(run_dir, model, recorder.history, environment,
                    _score_test(model, dataset, batch_size, validation, recorder.history))
    return recorder.history


def _score_test(model, dataset, batch_size, validation, history):
    """The test split's loss and accuracy: the last validation figures, or scored now."""
    if validation == "test":
        return {"test_loss": history["val_loss"][-1], "test_accuracy": history["val_accuracy"][-1]}
    test_data = make_pipeline(dataset.x_test, dataset.y_test, dataset.num_classes, batch_size)
    scores = model.evaluate(test_data, verbose=0, return_dict=True)
    print(f"Test split, scored once now: accuracy {scores['accuracy']:.4f}, "
          f"loss {scores['loss']:.4f} ({len(dataset.x_test):,} pictures)", flush=True)
    return {"test_loss": float(scores["loss"]), "test_accuracy": float(scores["accuracy"])}


def _restore(model, state, run_dir):
    """Load the backed-up (or finished) weights and optimizer state into ``model``."""
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    try:
        model.load_weights(state["weights"])
    except Exception as error:  # h5py, zip and shape errors alike
        raise runs.damaged(run_dir, error) from error


def run_training(*, epochs=20, batch_size=64, data="cifar10", subset=None, seed=0,
                 run_dir="runs/article", precision="auto", strategy="auto",
                 deterministic=False, overwrite=False, validation="test", **recipe):
    """Everything 03_training (and 06 with a recipe) does, in one call: check, seed, load, build, train.

    ``recipe`` settings (see :mod:`vggcifar.improvements`) not given take the
    article's values. Returns ``(model, dataset, history)``.
    """
    params = run_params(epochs=epochs, batch_size=batch_size, data=data, subset=subset,
                        seed=seed, run_dir=run_dir, precision=precision, strategy=strategy,
                        deterministic=deterministic, validation=validation, **recipe)
    runs.check_free(run_dir, params, overwrite)  # before the download, not only in train()
    seed_everything(seed, deterministic)
    dataset = data_module.load_data(data, subset=subset, seed=seed)
    print(dataset.describe())
    model = build_for_recipe(dataset, params, choose_precision(precision),
                             choose_strategy(strategy))
    history = train(model, dataset, epochs=epochs, batch_size=batch_size, run_dir=run_dir,
                    params=params, seed=seed, overwrite=overwrite, validation=validation,
                    augment=make_augmenter(_recipe_of(params)))
    return model, dataset, history


def _recipe_of(params):
    return {key: params[key] for key in ARTICLE_RECIPE}


def count_steps(dataset, params):
    """Training steps per epoch: the pictures left after validation's share, per batch."""
    pictures = len(dataset.y_train)
    if params["validation"] == "holdout":  # counted from the labels, as split_validation splits
        pictures = len(data_module.stratified_split(dataset.y_train, HOLDOUT_SHARE, params["seed"])[0])
    return -(-pictures // params["batch_size"])


def build_for_recipe(dataset, params, policy=None, distribution=None):
    """The model of the recipe in ``params`` (see :func:`run_params`), built and compiled.

    Built inside ``distribution``'s scope when one is given; the schedule's length
    comes from ``params["epochs"]`` and :func:`count_steps`.
    """
    import tensorflow as tf

    distribution = distribution or tf.distribute.get_strategy()
    recipe = _recipe_of(params)
    steps = count_steps(dataset, params)
    with distribution.scope():
        model = build_vgg16(dataset.input_shape, dataset.num_classes, fused_batchnorm=True,
                            small_picture_conv=True, dtype=policy, **model_options(recipe))
        if recipe == ARTICLE_RECIPE:
            return compile_like_article(model)
        return compile_recipe(model, recipe, params["epochs"], steps)


def seed_everything(seed, deterministic=False):
    """Seed Python, NumPy and TensorFlow; ``deterministic`` also makes TensorFlow's ops repeatable.

    Deterministic ops can be slower, and once switched on they stay on for the session.
    """
    keras.utils.set_random_seed(seed)
    if deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
