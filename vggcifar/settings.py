"""Every default and every check of the notebooks' parameters, in one place.

:data:`ARTICLE` holds the article's settings, the defaults of every notebook's
parameters cell; :data:`TRAINING` the settings that notebook 03 adds; the three
recipes (:data:`ARTICLE_RECIPE`, :data:`IMPROVED_RECIPE`, :data:`QUICK_RECIPE`) the
training settings of notebook 06. :func:`check_params` checks any of them where they enter (a
notebook's second cell, :func:`vggcifar.training.run_training`) and raises an error
that names the parameter and what it may be, before any download or training.

Every message comes in the student's language (:mod:`vggcifar.language`). This module
imports nothing else from the package but that one, so every other module can use it.
"""

from __future__ import annotations

import numbers
import os
from pathlib import Path

from .language import say

#: The article's settings: the defaults of every notebook's parameters cell.
ARTICLE = {
    "data": "cifar10",
    "subset": None,
    "seed": 0,
    "epochs": 20,
    "batch_size": 64,
    "run_dir": "runs/article",
}

#: Where the downloaded CIFAR-10 is kept (every notebook's parameter; None: Keras' own
#: ``~/.keras``, which a Colab machine loses with itself).
DATA_CACHE = None

#: What notebook 03 adds to the article's settings, with their defaults.
TRAINING = {
    "precision": "auto",
    "strategy": "auto",
    "validation": "test",
    "deterministic": False,
    "speedups": "auto",
}

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("auto", "default", "mirrored", "tpu")
#: Where the per-epoch validation figures come from: the test split, as the article
#: does, or pictures held out from the training split (the honest way).
VALIDATIONS = ("test", "holdout")
#: The CPU speed-ups of :mod:`vggcifar.speed`: "auto" = on where no GPU or TPU is seen.
SPEEDUPS = ("auto", True, False)
#: Share of every class's training pictures that ``validation="holdout"`` sets aside.
HOLDOUT_SHARE = 0.1
#: Data sources with a name; anything else must be a folder or a .tar.gz of pictures
#: (a name wins over a folder of the same name: give such a folder as ``./sample``).
NAMED_SOURCES = ("cifar10", "sample", "synthetic")
ALLOWED_SOURCES = (
    "'cifar10' (download), 'sample' (5,000 real CIFAR-10 pictures in the package, offline), "
    "'synthetic' (generated, offline), a path to cifar-10-python.tar.gz or to the folder "
    "holding cifar-10-batches-py/, or a path to a folder or .tar.gz laid out as <split>/<class>/<image>"
)
ALLOWED_SOURCES_JA = (
    "'cifar10'(ダウンロード)、'sample'(パッケージ内の本物の CIFAR-10 画像 5,000 枚、オフライン)、"
    "'synthetic'(生成画像、オフライン)、cifar-10-python.tar.gz か cifar-10-batches-py/ を含むフォルダへの"
    "パス、または <split>/<class>/<image> の形に並べたフォルダか .tar.gz へのパス"
)


def allowed_sources():
    """:data:`ALLOWED_SOURCES` in the student's language."""
    return say(en=ALLOWED_SOURCES, ja=ALLOWED_SOURCES_JA)


#: Largest seed NumPy's and TensorFlow's generators take.
MAX_SEED = 2**32 - 1

OPTIMIZERS = ("adam", "sgd")
#: Smallest side of the training crops of ``small_crops`` (a recipe setting).
MIN_SMALL_CROPS = 8
SCHEDULES = ("constant", "cosine", "one_cycle")

#: The article's recipe: Adam with its defaults, no regularisation, no augmentation.
ARTICLE_RECIPE = {
    "optimizer": "adam",
    "learning_rate": 0.001,
    "schedule": "constant",
    "warmup": 0.0,
    "dropout": 0.0,
    "weight_decay": 0.0,
    "flip": False,
    "crop_padding": 0,
    "cutout": 0,
    "label_smoothing": 0.0,
    "bn_momentum": 0.99,
    "small_crops": 0,
    "small_crops_share": 0.0,
}

#: Every improvement on; settings common in the CIFAR-10 literature for VGG-type networks.
IMPROVED_RECIPE = {
    "optimizer": "sgd",
    "learning_rate": 0.05,
    "schedule": "one_cycle",
    "warmup": 0.15,
    "dropout": 0.5,
    "weight_decay": 5e-4,
    "flip": True,
    "crop_padding": 4,
    "cutout": 0,
    "label_smoothing": 0.1,
    "bn_momentum": 0.9,
    "small_crops": 0,
    "small_crops_share": 0.0,
}

#: The quick recipe for classes without GPUs: the article's model trained for about ten
#: minutes on a 2-core CPU with :data:`QUICK_BUDGET`: big batches, a higher peak, no
#: Dropout, more label smoothing (bench/README.md has its measured time and held-out
#: accuracy, and what each step bought). ``small_crops`` stays off: on that CPU it did
#: not buy more accuracy per minute.
QUICK_RECIPE = {
    "optimizer": "sgd",
    "learning_rate": 0.2,
    "schedule": "one_cycle",
    "warmup": 0.25,
    "dropout": 0.0,
    "weight_decay": 5e-4,
    "flip": True,
    "crop_padding": 2,
    "cutout": 0,
    "label_smoothing": 0.2,
    "bn_momentum": 0.9,
    "small_crops": 0,
    "small_crops_share": 0.0,
}

#: The named recipes: what ``recipe=...`` selects (notebook 06, run_training, the sweeps).
RECIPES = {"article": ARTICLE_RECIPE, "improved": IMPROVED_RECIPE, "quick": QUICK_RECIPE}
#: The epochs and batch size each recipe is made for (article and improved: the article's).
QUICK_BUDGET = {"epochs": 3, "batch_size": 512}
BUDGETS = {
    "article": {"epochs": ARTICLE["epochs"], "batch_size": ARTICLE["batch_size"]},
    "improved": {"epochs": ARTICLE["epochs"], "batch_size": ARTICLE["batch_size"]},
    "quick": QUICK_BUDGET,
}

#: Parameters that say how to run, not what the run is: left out of ``params.json``.
#: (``recipe`` only names a set of values; the values themselves are recorded.)
NOT_RECORDED = ("overwrite", "speedups", "data_cache", "recipe")


class ParameterError(ValueError):
    """A parameter with a value it may not have; the message names both."""


# --- the checks, one per kind of value -------------------------------------------------


def _is_whole(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _whole(name, value, low, high=None):
    if not _is_whole(value) or value < low or (high is not None and value > high):
        allowed = f"in {low}..{high}" if high is not None else f">= {low}"
        allowed_ja = f"{low} から {high} までの整数" if high is not None else f"{low} 以上の整数"
        raise ParameterError(
            say(
                en=f"{name} must be a whole number {allowed}, got {value!r}",
                ja=f"{name} は {allowed_ja}にしてください(指定された値: {value!r})",
            )
        )
    return int(value)


def _number(name, value, low, high, positive=False):
    if not _is_number(value) or not low <= value < high or (positive and value == 0):
        raise ParameterError(
            say(
                en=f"{name} must be a number in [{low}, {high}){' and > 0' if positive else ''}, got "
                f"{value!r}",
                ja=f"{name} は {low} 以上 {high} 未満{'で 0 より大きい' if positive else 'の'}数に"
                f"してください(指定された値: {value!r})",
            )
        )
    return float(value)


def _one_of(name, value, allowed):
    for choice in allowed:  # True is not 1 here, and "auto" is not True
        if isinstance(value, type(choice)) and value == choice:
            return choice
    raise ParameterError(
        say(
            en=f"{name} must be one of {allowed}, got {value!r}",
            ja=f"{name} は {allowed} のどれかにしてください(指定された値: {value!r})",
        )
    )


def _flag(name, value):
    if not isinstance(value, bool):
        raise ParameterError(
            say(
                en=f"{name} must be True or False, got {value!r}",
                ja=f"{name} は True か False にしてください(指定された値: {value!r})",
            )
        )
    return value


def _share(name, value):
    if not _is_number(value) or not 0.0 <= value <= 1.0:
        raise ParameterError(
            say(
                en=f"{name} must be a number in [0.0, 1.0], got {value!r}",
                ja=f"{name} は 0.0 以上 1.0 以下の数にしてください(指定された値: {value!r})",
            )
        )
    return float(value)


def _small_crops(value):
    if not _is_whole(value) or not (value == 0 or MIN_SMALL_CROPS <= value <= 4096):
        raise ParameterError(
            say(
                en="small_crops must be 0 (off) or the side in pixels of the training crops, a whole number "
                f">= {MIN_SMALL_CROPS}; got {value!r}",
                ja=f"small_crops は 0(使わない)か、訓練用の切り抜きの一辺のピクセル数({MIN_SMALL_CROPS} "
                f"以上の整数)にしてください(指定された値: {value!r})",
            )
        )
    return int(value)


def check_subset(subset):
    """``None`` (all pictures) or a whole number >= 1 of pictures per class."""
    if subset is None:
        return None
    if not _is_whole(subset) or subset < 1:
        raise ParameterError(
            say(
                en="subset must be None (all pictures) or a whole number >= 1 of pictures per class; got "
                f"{subset!r}",
                ja="subset は None(すべての画像)か、クラスごとの画像の枚数(1 "
                f"以上の整数)にしてください(指定された値: {subset!r})",
            )
        )
    return int(subset)


def data_source_kind(data):
    """``"cifar10"``, ``"sample"``, ``"synthetic"`` or ``"folder"``; a clear error for anything else."""
    if isinstance(data, Path):
        data = str(data)
    if not isinstance(data, str) or not data:
        raise ParameterError(
            say(
                en=f"data must be {ALLOWED_SOURCES}; got {data!r}",
                ja=f"data は次のどれかにしてください: {ALLOWED_SOURCES_JA}(指定された値: {data!r})",
            )
        )
    if data in NAMED_SOURCES:
        return data
    path = Path(data).expanduser()
    if path.is_dir() or (path.is_file() and is_tarball(path)):
        return "folder"
    if path.is_file():
        raise ParameterError(
            say(
                en=f"data: {data!r} is a file but not a .tar.gz; allowed: {ALLOWED_SOURCES}",
                ja=f"data: {data!r} はファイルですが .tar.gz ではありません。指定できるもの: "
                f"{ALLOWED_SOURCES_JA}",
            )
        )
    if "/" in data or "\\" in data or is_tarball(path):
        raise ParameterError(
            say(
                en=f"data: folder or archive not found: {data!r}. Allowed: {ALLOWED_SOURCES}",
                ja=f"data: フォルダもアーカイブも見つかりません: {data!r}。指定できるもの: "
                f"{ALLOWED_SOURCES_JA}",
            )
        )
    raise ParameterError(
        say(
            en=f"data: unknown source {data!r}. Allowed: {ALLOWED_SOURCES}",
            ja=f"data: {data!r} というデータはありません。指定できるもの: {ALLOWED_SOURCES_JA}",
        )
    )


def is_tarball(path):
    return Path(path).name.lower().endswith((".tar.gz", ".tgz"))


def _writable_folder(name, value):
    """A folder that exists and can be written to, or one that can be made."""
    if not isinstance(value, (str, Path)) or not str(value):
        raise ParameterError(
            say(
                en=f"{name} must be a folder path, got {value!r}",
                ja=f"{name} にはフォルダのパスを指定してください(指定された値: {value!r})",
            )
        )
    path = Path(value).expanduser()
    if path.exists() and not path.is_dir():
        raise ParameterError(
            say(
                en=f"{name} {str(value)!r} is a file, not a folder; choose another {name}",
                ja=f"{name} {str(value)!r} はフォルダではなくファイルです。別の {name} を指定してください",
            )
        )
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        where = "it" if existing == path else f"the folder {str(existing)!r} it would be made in"
        where_ja = "このフォルダ" if existing == path else f"これを作る場所のフォルダ {str(existing)!r}"
        raise ParameterError(
            say(
                en=f"{name} {str(value)!r} cannot be written: {where} is read-only for you; choose another "
                f"{name}",
                ja=f"{name} {str(value)!r} には書き込めません: {where_ja}は読み取り専用です。別の {name} "
                "を指定してください",
            )
        )
    return str(value)


_CHECKS = {
    "data": lambda v: (data_source_kind(v), str(v))[1],
    "subset": check_subset,
    "seed": lambda v: _whole("seed", v, 0, MAX_SEED),
    "epochs": lambda v: _whole("epochs", v, 1),
    "batch_size": lambda v: _whole("batch_size", v, 1),
    "run_dir": lambda v: _writable_folder("run_dir", v),
    "data_cache": lambda v: None if v is None else _writable_folder("data_cache", v),
    "precision": lambda v: _one_of("precision", v, PRECISIONS),
    "strategy": lambda v: _one_of("strategy", v, STRATEGIES),
    "validation": lambda v: _one_of("validation", v, VALIDATIONS),
    "deterministic": lambda v: _flag("deterministic", v),
    "overwrite": lambda v: _flag("overwrite", v),
    "speedups": lambda v: _one_of("speedups", v, SPEEDUPS),
    "recipe": lambda v: _one_of("recipe", v, tuple(RECIPES)),
    # the recipe
    "optimizer": lambda v: _one_of("optimizer", v, OPTIMIZERS),
    "learning_rate": lambda v: _number("learning_rate", v, 0.0, 10.0, positive=True),
    "schedule": lambda v: _one_of("schedule", v, SCHEDULES),
    "warmup": lambda v: _number("warmup", v, 0.0, 1.0),
    "dropout": lambda v: _number("dropout", v, 0.0, 1.0),
    "weight_decay": lambda v: _number("weight_decay", v, 0.0, 1.0),
    "flip": lambda v: _flag("flip", v),
    "crop_padding": lambda v: _whole("crop_padding", v, 0, 15),
    "cutout": lambda v: _whole("cutout", v, 0, 32),
    "label_smoothing": lambda v: _number("label_smoothing", v, 0.0, 1.0),
    "bn_momentum": lambda v: _number("bn_momentum", v, 0.0, 1.0),
    "small_crops": lambda v: _small_crops(v),
    "small_crops_share": lambda v: _share("small_crops_share", v),
}


def check_params(**params):
    """Check every given parameter; return them as plain Python values (ints, floats, text).

    Raises :class:`ParameterError` naming the first bad parameter and what it may
    be, or naming an unknown parameter and the known ones.
    """
    unknown = sorted(set(params) - set(_CHECKS))
    if unknown:
        raise ParameterError(
            say(
                en=f"unknown parameter(s) {unknown}; known: {sorted(_CHECKS)}",
                ja=f"{unknown} というパラメータはありません。使えるパラメータ: {sorted(_CHECKS)}",
            )
        )
    return {name: _CHECKS[name](value) for name, value in params.items()}


def known_parameter(name):
    """True for a name that :func:`check_params` checks."""
    return name in _CHECKS


#: What :func:`check_batch_size` says (and run_training, which checks the same inline),
#: through :func:`batch_too_large`.
BATCH_TOO_LARGE = (
    "batch_size {batch_size} is larger than the {pictures} training pictures; "
    "use a batch_size of at most {pictures}, or more pictures"
)
BATCH_TOO_LARGE_JA = (
    "batch_size {batch_size} が訓練画像の枚数 {pictures} を超えています。"
    "batch_size を {pictures} 以下にするか、画像を増やしてください"
)


def batch_too_large(batch_size, pictures):
    """The message of a batch larger than the training pictures, in the student's language."""
    return say(en=BATCH_TOO_LARGE, ja=BATCH_TOO_LARGE_JA).format(batch_size=batch_size, pictures=pictures)


def check_batch_size(batch_size, pictures, validation=None):
    """After the data is loaded: a batch can hold at most all the training pictures.

    Where Keras runs on JAX with several devices (the global strategy), every batch of
    the ``pictures`` training and ``validation`` pictures must also divide among them
    (:func:`check_even_split`).
    """
    if batch_size > pictures:
        raise ParameterError(batch_too_large(batch_size, pictures))
    from .backends import global_replicas

    counts = {"training": pictures, "validation": validation}
    check_even_split(batch_size, {k: v for k, v in counts.items() if v}, global_replicas())
    return batch_size


def check_even_split(batch_size, pictures, devices):
    """Where JAX spreads each batch over ``devices``, every batch must divide among them.

    ``pictures`` maps each split's name to its number of pictures. TensorFlow's strategies
    share out an uneven last batch; JAX's ``DataParallel`` cannot, and would stop inside
    ``fit``. So this says it first, with the sizes that would work.
    """
    from .backends import on_tensorflow

    if devices <= 1 or on_tensorflow():
        return
    for split, count in pictures.items():
        last = count % batch_size or batch_size
        if last % devices:
            raise ParameterError(
                say(
                    en=f"batch_size {batch_size} leaves a last {split} batch of {last} pictures, which "
                    f"{devices} devices cannot share equally (JAX's DataParallel needs every batch to "
                    f"divide by {devices}); choose a batch_size (or a subset) whose last batch of the "
                    f"{count} {split} pictures divides by {devices}, or strategy='default'",
                    ja=f"batch_size {batch_size} では {split} の最後のバッチが {last} 枚になり、{devices} 台"
                    f"のデバイスで等分できません(JAX の DataParallel では、どのバッチも {devices} で割り"
                    f"切れる必要があります)。{split} の {count} 枚の最後のバッチが {devices} で割り切れる "
                    "batch_size(または subset)を選ぶか、strategy='default' を指定してください",
                )
            )


def check_recipe(recipe):
    """The full recipe, checked: settings that ``recipe`` leaves out take the article's values."""
    unknown = sorted(set(recipe) - set(ARTICLE_RECIPE))
    if unknown:
        raise ParameterError(
            say(
                en=f"unknown recipe setting(s) {unknown}; allowed: {list(ARTICLE_RECIPE)}",
                ja=f"{unknown} というレシピの設定はありません。使える設定: {list(ARTICLE_RECIPE)}",
            )
        )
    return check_params(**{**ARTICLE_RECIPE, **recipe})


def run_params(
    recipe=None,
    *,
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
    **recipe_settings,
):
    """All parameters of a training run, checked once, as its ``params.json`` records them.

    Every parameter given as None (or not given) takes the article's value (:data:`ARTICLE`,
    :data:`TRAINING`, :data:`ARTICLE_RECIPE`) or, with ``recipe`` (a name of
    :data:`RECIPES`), that recipe's settings and budget (:data:`BUDGETS`): this is their
    one home. ``recipe_settings`` are the recipe's own settings (``optimizer``, ``flip``
    ...). Every run folder records every setting; the parameters in :data:`NOT_RECORDED`
    are left out. The functions that train take the record's values from here on,
    without checking them again.
    """
    chosen = {}
    if recipe is not None:
        name = _one_of("recipe", recipe, tuple(RECIPES))
        chosen = {**RECIPES[name], **BUDGETS[name]}
    given = dict(
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
    given = {name: value for name, value in given.items() if value is not None}
    full = check_params(**{**ARTICLE, **TRAINING, **ARTICLE_RECIPE, **chosen, **given})
    return {name: value for name, value in full.items() if name not in NOT_RECORDED}


def small_crop_epochs(small_crops, small_crops_share, epochs):
    """How many of the first epochs train on ``small_crops``: the recipe's share, rounded down.

    The last epoch always sees whole pictures, so that BatchNormalization's moving
    statistics and the last layers are set for the pictures the model will predict.
    """
    if not small_crops:
        return 0
    return min(int(small_crops_share * epochs), epochs - 1)


def augments(recipe):
    """True when ``recipe`` changes the training pictures (``flip``, ``crop_padding`` or ``cutout``).

    Its pictures then go through an augmentation pipeline; otherwise they are given to
    ``fit`` as arrays, as in the article. (``small_crops`` cuts windows only in the epochs
    that use them.)
    """
    return bool(recipe["flip"] or recipe["crop_padding"] or recipe["cutout"])


def recipe_of(params):
    """The recipe settings among ``params``."""
    return {name: params[name] for name in ARTICLE_RECIPE}


def check_model_options(input_shape, num_classes, dropout, l2, fc_units, bn_momentum, blocks):
    """Check :func:`vggcifar.model.build_vgg16`'s options; raise naming the bad one."""
    if (
        not isinstance(blocks, (tuple, list))
        or not blocks
        or not all(
            isinstance(block, (tuple, list))
            and len(block) == 2
            and all(_is_whole(n) and n >= 1 for n in block)
            for block in blocks
        )
    ):
        raise ParameterError(
            say(
                en="blocks must be a non-empty tuple of (convolutions, filters) pairs, one per block, each "
                "a whole number >= 1, such as ((1, 8),) * 5 (the article's are "
                f"vggcifar.model.VGG16_BLOCKS), got {blocks!r}",
                ja="blocks は、ブロックごとに 1 組の (畳み込みの数, フィルタ数) を並べた、"
                "空でないタプルにしてください。数はどれも 1 以上の整数です。例: ((1, 8),) * 5(記事のものは "
                f"vggcifar.model.VGG16_BLOCKS)。指定された値: {blocks!r}",
            )
        )
    shape = tuple(input_shape)
    if len(shape) != 3 or not all(_is_whole(d) and d >= 1 for d in shape):
        raise ParameterError(
            say(
                en="input_shape must be (height, width, channels) with positive whole numbers, got "
                f"{input_shape!r}",
                ja="input_shape は正の整数の (height, width, channels) にしてください(指定された値: "
                f"{input_shape!r})",
            )
        )
    smallest = 2 ** len(blocks)
    if shape[0] < smallest or shape[1] < smallest:
        raise ParameterError(
            say(
                en=f"input_shape must be at least {smallest}x{smallest} ({len(blocks)} 2x2 poolings halve "
                f"the picture {len(blocks)} times), got {shape[0]}x{shape[1]}",
                ja=f"input_shape は {smallest}x{smallest} 以上にしてください。{len(blocks)} 回の 2x2 "
                f"プーリングで画像が {len(blocks)} 回半分になります(指定された値: {shape[0]}x{shape[1]})",
            )
        )
    if not _is_whole(num_classes) or num_classes < 2:
        raise ParameterError(
            say(
                en=f"num_classes must be a whole number >= 2, got {num_classes!r}",
                ja=f"num_classes は 2 以上の整数にしてください(指定された値: {num_classes!r})",
            )
        )
    _number("dropout", dropout, 0.0, 1.0)
    if not _is_number(l2) or l2 < 0:
        raise ParameterError(
            say(
                en=f"l2 must be a number >= 0, got {l2!r}",
                ja=f"l2 は 0 以上の数にしてください(指定された値: {l2!r})",
            )
        )
    _whole("fc_units", fc_units, 1)
    _number("bn_momentum", bn_momentum, 0.0, 1.0)
