"""Step 3 — training, as in the article: Adam, categorical cross-entropy, accuracy, ``model.fit``.

Notebook 03 shows every step in its cells: scale the pixels, one-hot the labels,
build the model of notebook 02, :func:`compile_like_article`, open the run folder
(:class:`~vggcifar.runs.RunFolder`) and call ``model.fit``. :func:`run_training`
does the same steps in one call, with a recipe (notebook 06) where one is given,
for the notebooks that need a trained run and do not find one (04, 05, 06, 07 on a
fresh Colab machine), for scripts and for tests.
"""

from __future__ import annotations

from pathlib import Path

import keras

from .backends import replicas, strategy_record, use_strategy  # noqa: F401  (03 imports strategy_record from here)
from .curves import tensorboard_callback

# split_validation, pixels_to_float, seed_everything, make_pipeline, strategy_record and
# tensorboard_callback live with their step's work (data, environment, improvements, backends,
# curves); the notebooks import them from here too.
from .data import load_checked, one_hot, pixels_to_float, split_validation, stratified_split
from .environment import (
    accelerator_present,
    choose_precision,
    choose_strategy,
    precision_policy,
    seed_everything,
)
from .improvements import compile_recipe, make_augmenter, make_pipeline, model_options
from .language import say
from .model import build_vgg16
from .runs import LOGS, RunFolder, is_finished, load_history, load_metrics, load_params
from .settings import (
    ARTICLE_RECIPE,
    DATA_CACHE,
    HOLDOUT_SHARE,
    TRAINING,
    ParameterError,
    augments,
    batch_too_large,
    check_even_split,
    check_params,
    recipe_of,
    run_params,
    small_crop_epochs,
)
from .speed import SpeedUps


def compile_like_article(model):
    """The article's compile: Adam with its default settings, categorical cross-entropy, accuracy."""
    model.compile(optimizer=keras.optimizers.Adam(), loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def count_steps(dataset, params):
    """Training steps per epoch: the pictures left after validation's share, per batch."""
    pictures = len(dataset.y_train)
    if params["validation"] == "holdout":  # counted from the labels, as split_validation splits
        pictures = len(stratified_split(dataset.y_train, HOLDOUT_SHARE, params["seed"])[0])
    return -(-pictures // params["batch_size"])


#: The parameters of the step notebooks' ``parameters`` cells, and those a run's ``params.json`` records.
NOTEBOOK_PARAMETERS = (
    "data", "subset", "seed", "epochs", "batch_size", "run_dir", "data_cache",
    "precision", "strategy", "validation", "deterministic", "overwrite", "speedups",
)  # fmt: skip
RUN_PARAMETERS = (
    "data", "subset", "seed", "epochs", "batch_size", "run_dir",
    "precision", "strategy", "validation", "deterministic",
)  # fmt: skip


def use_parameters(namespace):
    """A notebook's one setup line: check its parameters, apply them, return the run's record.

    ``namespace`` is the notebook's ``globals()``: the parameters its ``parameters`` cell
    set are read from there, by their names (:func:`check_params` knows them all; other
    names are ignored). Every one is checked first (a :class:`ParameterError` names the
    first bad one). Then, where the notebook has them: Google Drive is mounted when
    ``run_dir`` or ``data_cache`` lie on it (Colab); ``seed`` (and ``deterministic``) seed
    the subset, the split and the starting weights; ``precision`` becomes Keras' global
    dtype policy and ``strategy`` the backend's global distribution (TensorFlow's strategy,
    JAX's ``keras.distribution``), so that a
    model built and compiled after this line takes both (what 03's "Going further"
    explains). Returns :func:`run_params` of the run parameters present, as ``params.json``
    records them, for ``RunFolder(run_dir, params)``.
    """
    from .environment import mount_drive_if_needed

    given = {name: namespace[name] for name in NOTEBOOK_PARAMETERS if name in namespace}
    checked = check_params(**given)
    for folder in ("run_dir", "data_cache"):
        if checked.get(folder) is not None:
            mount_drive_if_needed(checked[folder], folder)
    if "seed" in checked:
        seed_everything(checked["seed"], bool(checked.get("deterministic", False)))
    if "precision" in checked:
        keras.mixed_precision.set_global_policy(choose_precision(checked["precision"]))
    if "strategy" in checked:
        use_strategy(choose_strategy(checked["strategy"]))
    return run_params(**{name: value for name, value in checked.items() if name in RUN_PARAMETERS})


def run_training(
    *,
    recipe=None,
    data=None,
    subset=None,
    seed=None,
    epochs=None,
    batch_size=None,
    run_dir=None,
    precision=None,
    strategy=None,
    validation=None,
    deterministic=None,
    overwrite=False,
    speedups=TRAINING["speedups"],
    data_cache=DATA_CACHE,
    **recipe_settings,
):
    """Notebook 03's steps in one call (with a ``recipe``, notebook 06's).

    The parameters are the notebooks' (see :mod:`vggcifar.settings`); ``recipe_settings``
    are a recipe's own settings (``optimizer``, ``flip`` ...). Every one left at None takes
    the article's value or, with ``recipe="improved"`` or ``"quick"``, that recipe's: they
    are resolved and checked once, by :func:`~vggcifar.settings.run_params`, and used as
    they are from there on. A run folder that holds the same run resumes it (or loads it,
    when finished); one with other parameters raises, unless ``overwrite=True``. Returns
    ``(model, dataset, history)``.
    """
    check_params(overwrite=overwrite, speedups=speedups, data_cache=data_cache)
    record = run_params(
        recipe,
        data=data,
        subset=subset,
        seed=seed,
        epochs=epochs,
        batch_size=batch_size,
        run_dir=run_dir,
        precision=precision,
        strategy=strategy,
        validation=validation,
        deterministic=deterministic,
        **recipe_settings,
    )
    epochs, batch_size, seed = record["epochs"], record["batch_size"], record["seed"]
    recipe = recipe_of(record)
    # Epochs 1..small_epochs on small random crops (if the recipe says so), then whole pictures:
    # one fit per picture size, so that each is compiled for fixed shapes.
    small_epochs = small_crop_epochs(recipe["small_crops"], recipe["small_crops_share"], epochs)
    parts = [(recipe["small_crops"], small_epochs)] if small_epochs else []
    augmented = augments(recipe)  # the pictures go through make_pipeline, else as arrays
    run = RunFolder(  # checked before the download
        record["run_dir"],
        record,
        overwrite=overwrite,
        epochs=epochs,
        batch_size=batch_size,
        part_ends=[end for _, end in parts],
    )
    # The data (notebook 01), split for validation (03); float32 pictures, one-hot labels.
    dataset = load_checked(record["data"], record["subset"], seed, data_cache)
    print(dataset.describe())
    x_train, y_train, x_val, y_val = split_validation(dataset, record["validation"], seed)
    classes = dataset.num_classes
    if batch_size > len(x_train):  # what check_batch_size checks in notebook 03
        raise ParameterError(batch_too_large(batch_size, len(x_train)))
    if recipe["small_crops"] >= min(x_train.shape[1:3]):
        raise ParameterError(
            say(
                en=f"small_crops must be smaller than the pictures ({x_train.shape[1]}x{x_train.shape[2]}), "
                f"got {recipe['small_crops']}",
                ja=f"small_crops は画像({x_train.shape[1]}x{x_train.shape[2]})より小さくしてください"
                f"(指定された値: {recipe['small_crops']})",
            )
        )
    validation_data = (pixels_to_float(x_val), one_hot(y_val, classes))
    if record["validation"] == "holdout":  # the test split is scored once, at the end
        run.test_data = (pixels_to_float(dataset.x_test), one_hot(dataset.y_test, classes))
    # Without augmentation, as in notebook 03 and the article: arrays, shuffled by Keras.
    arrays = None if augmented else {"x": pixels_to_float(x_train), "y": one_hot(y_train, classes)}
    # The model (notebook 02), seeded, on the machine's precision and strategy, compiled.
    seed_everything(seed, record["deterministic"])
    distribution = choose_strategy(record["strategy"])
    check_even_split(batch_size, {"training": len(x_train), "validation": len(x_val)}, replicas(distribution))
    with precision_policy(choose_precision(record["precision"])), distribution.scope():
        model = build_vgg16(dataset.input_shape, classes, **model_options(recipe))
        if recipe == ARTICLE_RECIPE:
            compile_like_article(model)
        else:
            compile_recipe(model, recipe, epochs, -(-len(x_train) // batch_size))
    # JAX's DataParallel shards each batch only inside its scope, so fit runs there too.
    with distribution.scope():
        initial_epoch = run.resume(model)
        board = tensorboard_callback(run.run_dir / LOGS)  # tensorboard --logdir <folder>
        for size, last_epoch in parts + [(None, epochs)]:
            if size and last_epoch <= initial_epoch:
                continue  # that part is done (resumed after it)
            augment = make_augmenter(recipe, size)
            if augment is None:
                training_data = {**arrays, "batch_size": batch_size}
            else:
                training_data = {
                    "x": make_pipeline(
                        x_train, y_train, classes, batch_size, shuffle=True, seed=seed, augment=augment
                    ),
                    "shuffle": False,
                }  # the pipeline shuffles, every epoch anew
            if parts and size is None:  # compiled anew for whole pictures, with their fixed shape
                model.make_train_function(force=True)
            model.fit(
                **training_data,
                epochs=last_epoch,
                initial_epoch=initial_epoch,
                validation_data=validation_data,
                validation_batch_size=batch_size,
                callbacks=[run, board, SpeedUps(speedups)],
                verbose=2,
            )
            initial_epoch = max(initial_epoch, last_epoch)
    return model, dataset, run.history


#: Seconds per epoch of 50,000 pictures, for telling a student how long a missing run takes:
#: the article's Colab GPU (about 34 s), and this project's 2-core CPU with the speed-ups,
#: from the median step to the wall clock with pauses (bench/README.md: 5.5 to 17 minutes).
EPOCH_SECONDS = {"gpu": 34, "cpu": (330, 1020)}
DRIVE_EXAMPLE = "/content/drive/MyDrive/vggcifar/article"


def _duration(seconds):
    if seconds < 90:
        return say(en=f"{seconds:.0f} s", ja=f"{seconds:.0f} 秒")
    if seconds < 5400:
        return say(en=f"{seconds / 60:.0f} min", ja=f"{seconds / 60:.0f} 分")
    return say(en=f"{seconds / 3600:.1f} h", ja=f"{seconds / 3600:.1f} 時間")


def training_time_note(record, gpu):
    """How long training ``record`` (resolved parameters) takes, roughly, with and without a GPU."""
    pictures = record["subset"] * 10 if record["subset"] else 50_000
    share = record["epochs"] * pictures / 50_000
    low, high = (share * s for s in EPOCH_SECONDS["cpu"])
    gpu_time = _duration(share * EPOCH_SECONDS["gpu"])
    return say(
        en=(
            f"It trains {record['epochs']} epoch(s) of about {pictures:,} pictures: about "
            f"{gpu_time} with a GPU (the article's Colab GPU took 34 s "
            f"an epoch), {_duration(low)} to {_duration(high)} on a 2-core CPU. "
            + ("This machine has a GPU." if gpu else "This machine has no GPU: expect the CPU time.")
        ),
        ja=(
            f"約 {pictures:,} 枚の画像で {record['epochs']} エポック学習します。GPU なら約 {gpu_time}"
            f"(記事の Colab GPU では 1 エポック 34 秒)、2 コア CPU では {_duration(low)}〜{_duration(high)}"
            "かかります。"
            + (
                "このマシンには GPU があります。"
                if gpu
                else "このマシンには GPU がないので、CPU の時間を見込んでください。"
            )
        ),
    )


def ensure_finished_run(notebook, **params):
    """For 04 to 07: use the finished run in ``params['run_dir']``, or make one now.

    On Colab every notebook gets a fresh machine, so the run folder that
    03_training.ipynb wrote is not here unless ``run_dir`` is on Google Drive. Then
    this says so and trains with the given parameters, the same way 03 would —
    resuming, if an earlier attempt of this notebook was cut off — and says that the
    result was made here. Returns True when it had to train.
    """
    record = run_params(**params)
    run_dir = Path(record["run_dir"])
    if is_finished(run_dir):  # its records checked: a damaged one is named, never trained over
        load_history(run_dir), load_metrics(run_dir)
        made_with = load_params(run_dir)
        print(
            say(
                en=f"Using the finished run in {str(run_dir)!r} (made with {made_with}).",
                ja=f"{str(run_dir)!r} にある学習済みのランを使います(パラメータ: {made_with})。",
            )
        )
        return False
    note = training_time_note(record, accelerator_present())
    print(
        say(
            en=f"No finished run in {str(run_dir)!r}. 03_training.ipynb makes it; on Colab each notebook "
            "runs on its own machine, so its files are not here unless run_dir is on Google "
            f"Drive.\n{notebook} therefore trains a run now, with this notebook's parameters {record}. "
            f"{note}\nTo train once and share the run: give 03 and this notebook the same run_dir on Google "
            f"Drive (e.g. {DRIVE_EXAMPLE!r}), or run 00_article.ipynb, which does the article's five steps "
            f"on one machine. Everything below comes from this run made by {notebook}.",
            ja=f"{str(run_dir)!r} に学習済みのランがありません。このランは 03_training.ipynb が作ります。"
            "Colab ではノートブックごとに別のマシンで動くので、run_dir が Google ドライブ上になければ、03 "
            f"の書いたファイルはここにはありません。\nそこで {notebook} が、このノートブックのパラメータ "
            f"{record} で今からランを学習します。{note}\n学習を 1 回で済ませてランを共有するには、03 "
            f"とこのノートブックに Google ドライブ上の同じ run_dir(例: {DRIVE_EXAMPLE!r})を指定するか、"
            "記事の 5 つのステップを 1 台のマシンで行う 00_article.ipynb を実行してください。"
            f"以下の結果はすべて、{notebook} が作ったこのランのものです。",
        )
    )
    run_training(**params)  # resumes a cut-off run with the same parameters; never mixes runs
    return True
