"""Step 6 — the improvements the article proposed (Dropout, L2, tuning the optimiser) and
common CIFAR-10 practice (augmentation, label smoothing, schedules, SGD with Nesterov
momentum), as one "recipe" of settings.

The article's model learns its 50,000 training pictures almost by heart (97%) but
gets 83.5% of the test pictures right: it overfits. Its closing words propose
Dropout, L2 regularisation and tuning the optimiser. A *recipe* is a dict of those
settings; :data:`~vggcifar.settings.ARTICLE_RECIPE` reproduces the article,
:data:`~vggcifar.settings.IMPROVED_RECIPE` switches every improvement on and
:data:`~vggcifar.settings.QUICK_RECIPE` is made for about ten minutes on a CPU (all three
are defined, with their check, in :mod:`vggcifar.settings`).

**Small crops.** The model ends in ``Flatten`` after five 2x2 poolings with "same"
padding, so a 24x24 picture also comes out as 1x1x512 and the same weights apply:
training on random 24x24 windows costs about half the arithmetic of whole pictures
(on the project's 2-core CPU an epoch took about 0.75 times as long, and bought no more
accuracy per minute than whole pictures: bench/README.md).
The last epoch trains on whole pictures, so that BatchNormalization's moving
statistics (and the layers after it) match the pictures the model will predict; until
then the validation figures, computed on whole pictures, read low. Everything here is plain
Keras, so a model trained with any recipe saves and loads with Keras alone.

================  ===================================================================
``optimizer``     ``"adam"`` (the article) or ``"sgd"``: SGD with Nesterov momentum 0.9
``learning_rate`` the peak learning rate of the schedule
``schedule``      ``"constant"`` (the article), ``"cosine"`` (up from 0, then half a
                  cosine down to 0) or ``"one_cycle"`` (the same, up from peak/25)
``warmup``        share of all training steps spent rising to the peak
``dropout``       rate of the Dropout layers after fc1 and fc2
``weight_decay``  weight decay as PyTorch and most papers count it (see below)
``flip``          mirror half of the pictures left-right
``crop_padding``  pad by this many pixels (mirrored edges), then cut a random 32x32 window
``cutout``        side of a grey square hidden at a random place (0: off)
``label_smoothing`` share of the target spread over all classes
``bn_momentum``   how slowly BatchNormalization's moving statistics follow the batches
``small_crops``   side of the random windows the first epochs train on (0: off)
``small_crops_share`` share of the epochs trained on those windows (the last: whole pictures)
================  ===================================================================

**Weight decay, Keras and PyTorch.** PyTorch's ``weight_decay=λ`` adds ``λ·w`` to every
gradient. Keras' ``L2(λ)`` adds ``λ·Σw²`` to the loss, whose gradient is ``2λ·w``: twice
as strong. Papers that say "weight decay 5e-4" mean PyTorch's, so the model gets
``L2(weight_decay / 2)``.
"""

from __future__ import annotations

import keras
import numpy as np

from . import backends
from .settings import ARTICLE_RECIPE, IMPROVED_RECIPE, OPTIMIZERS, SCHEDULES, augments, check_recipe

__all__ = [
    "ARTICLE_RECIPE",
    "IMPROVED_RECIPE",
    "check_recipe",
    "make_schedule",
    "make_optimizer",
    "compile_recipe",
    "model_options",
    "augment_batch",
    "make_augmenter",
    "make_pipeline",
]


# --- learning-rate schedules -------------------------------------------------------


def make_schedule(schedule, learning_rate, epochs, steps_per_epoch, warmup=0.0):
    """The learning rate for every training step, worked out from ``epochs``.

    ``"constant"`` returns the number itself. ``"cosine"`` rises in a straight line
    from 0 to ``learning_rate`` during the first ``warmup`` share of the steps, then
    follows half a cosine down to 0 at the last step. ``"one_cycle"`` (Smith 2018, as
    PyTorch's ``OneCycleLR`` anneals it) starts at ``learning_rate / 25`` instead of 0,
    and otherwise does the same. Both are Keras' own ``CosineDecay``, so a model
    saved with them loads with Keras alone.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    total = epochs * steps_per_epoch
    rise = int(round(warmup * total))
    if schedule == "constant":
        return learning_rate
    start = learning_rate / 25.0 if schedule == "one_cycle" else 0.0
    return keras.optimizers.schedules.CosineDecay(
        start, decay_steps=max(total - rise, 1), warmup_target=learning_rate, warmup_steps=rise
    )


def make_optimizer(optimizer, learning_rate):
    """Keras' Adam (its defaults otherwise), or Keras' SGD with Nesterov momentum 0.9."""
    if optimizer == "adam":
        return keras.optimizers.Adam(learning_rate)
    if optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")


def compile_recipe(model, recipe, epochs, steps_per_epoch):
    """Compile ``model`` with the recipe's optimiser, schedule and (smoothed) cross-entropy.

    ``recipe`` holds every recipe setting, checked (:func:`vggcifar.settings.run_params`'s
    record, or one of the named recipes); it is not checked again here.
    """
    schedule = make_schedule(
        recipe["schedule"], recipe["learning_rate"], epochs, steps_per_epoch, recipe["warmup"]
    )
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=recipe["label_smoothing"])
    model.compile(optimizer=make_optimizer(recipe["optimizer"], schedule), loss=loss, metrics=["accuracy"])
    return model


def model_options(recipe):
    """The ``build_vgg16`` keywords that a (checked) recipe sets."""
    return {
        "dropout": recipe["dropout"],
        "l2": recipe["weight_decay"] / 2,
        "bn_momentum": recipe["bn_momentum"],
    }


# --- data augmentation -------------------------------------------------------------


def augment_batch(pictures, seed, *, flip=True, crop_padding=4, cutout=0, size=None):
    """Randomly changed copies of a batch of uint8 pictures (shape n, height, width, 3).

    Each picture independently: mirrored left-right with probability 1/2 (never
    upside down: CIFAR-10 has no upside-down ships), moved by up to ``crop_padding``
    pixels in each direction (pad with mirrored edges, cut a window of the old size),
    and a grey ``cutout`` x ``cutout`` square hidden somewhere. ``size`` (the recipe's
    ``small_crops``) then cuts a random ``size`` x ``size`` window out of each picture.
    ``seed`` (two integers) fixes the randomness, so a seeded run is repeatable.

    A NumPy array comes back as a NumPy array, computed with NumPy (the input of JAX
    and PyTorch, and notebook 06's grid); a TensorFlow tensor, as inside a ``tf.data``
    pipeline, comes back as a tensor, computed with TensorFlow. The two draw their
    random numbers differently, so one seed gives other pictures in each.
    """
    if isinstance(pictures, np.ndarray):
        return _augment_with_numpy(pictures, seed, flip, crop_padding, cutout, size)
    return _augment_with_tensorflow(pictures, seed, flip, crop_padding, cutout, size)


def _augment_with_numpy(pictures, seed, flip, crop_padding, cutout, size):
    random = np.random.default_rng(np.asarray(seed, dtype=np.int64).astype(np.uint64).tolist())
    n, height, width = pictures.shape[:3]
    if flip:
        mirror = random.random(n) < 0.5
        pictures = np.where(mirror[:, None, None, None], pictures[:, :, ::-1], pictures)
    if crop_padding:
        p = crop_padding
        padded = np.pad(pictures, [(0, 0), (p, p), (p, p), (0, 0)], mode="reflect")
        pictures = _numpy_windows(padded, random.integers(0, 2 * p + 1, (n, 2)), height, width)
    if cutout:
        corner = random.integers(-(cutout // 2), max(height, width) - cutout // 2, (n, 2))
        inside_rows = _between(np.arange(height)[None, :], corner[:, :1], cutout)
        inside_cols = _between(np.arange(width)[None, :], corner[:, 1:], cutout)
        hidden = inside_rows[:, :, None] & inside_cols[:, None, :]
        pictures = np.where(hidden[..., None], np.asarray(128, pictures.dtype), pictures)
    if size and (size < height or size < width):
        corner = random.integers(0, [height - size + 1, width - size + 1], (n, 2))
        pictures = _numpy_windows(pictures, corner, size, size)
    return pictures


def _numpy_windows(pictures, corner, height, width):
    """From each picture, the ``height`` x ``width`` window whose top-left pixel is its row of ``corner``."""
    rows = corner[:, :1] + np.arange(height)[None, :]  # (n, height) rows to keep
    cols = corner[:, 1:] + np.arange(width)[None, :]
    return pictures[np.arange(len(pictures))[:, None, None], rows[:, :, None], cols[:, None, :]]


def _augment_with_tensorflow(pictures, seed, flip, crop_padding, cutout, size):
    import tensorflow as tf

    pictures = tf.convert_to_tensor(pictures)
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3)
    n, height, width = tf.shape(pictures)[0], pictures.shape[1], pictures.shape[2]
    if flip:
        mirror = tf.random.stateless_uniform([n], seeds[0]) < 0.5
        pictures = tf.where(mirror[:, None, None, None], tf.reverse(pictures, axis=[2]), pictures)
    if crop_padding:
        p = crop_padding
        padded = tf.pad(pictures, [[0, 0], [p, p], [p, p], [0, 0]], mode="REFLECT")
        corner = tf.random.stateless_uniform([n, 2], seeds[1], 0, 2 * p + 1, dtype=tf.int32)
        pictures = _tensorflow_windows(padded, corner, height, width)
    if cutout:
        corner = tf.random.stateless_uniform(
            [n, 2], seeds[2], -(cutout // 2), max(height, width) - cutout // 2, dtype=tf.int32
        )
        inside_rows = _between(tf.range(height)[None, :], corner[:, :1], cutout)
        inside_cols = _between(tf.range(width)[None, :], corner[:, 1:], cutout)
        hidden = inside_rows[:, :, None] & inside_cols[:, None, :]
        pictures = tf.where(hidden[..., None], tf.constant(128, pictures.dtype), pictures)
    if size and (size < height or size < width):
        size_seed = tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), 3)
        corner = tf.random.stateless_uniform([n, 2], size_seed, 0, 2**30, dtype=tf.int32)
        corner = corner % tf.constant([[height - size + 1, width - size + 1]])
        pictures = _tensorflow_windows(pictures, corner, size, size)
    return pictures


def _tensorflow_windows(pictures, corner, height, width):
    """:func:`_numpy_windows` in TensorFlow, for ``tf.data``."""
    import tensorflow as tf

    rows = corner[:, :1] + tf.range(height)[None, :]
    cols = corner[:, 1:] + tf.range(width)[None, :]
    return tf.gather(tf.gather(pictures, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)


def _between(index, start, size):
    return (index >= start) & (index < start + size)


def make_augmenter(recipe, size=None):
    """``augment(pictures, seed)`` for :func:`make_pipeline`; None when all is off.

    ``size`` cuts every picture to a random ``size`` x ``size`` window at the end (the
    recipe's ``small_crops``, in the epochs that use them). ``recipe`` is checked already.
    """
    if not (augments(recipe) or size):
        return None

    def augment(pictures, seed):
        return augment_batch(
            pictures,
            seed,
            flip=recipe["flip"],
            crop_padding=recipe["crop_padding"],
            cutout=recipe["cutout"],
            size=size,
        )

    return augment


def make_pipeline(x, y, num_classes, batch_size, shuffle=False, seed=0, augment=None, feeder=None):
    """Batches of (float32 pictures / 255, one-hot labels) for ``fit``, for augmentation.

    The pictures stay uint8 until a batch is taken. ``augment(pictures, seed)`` (see
    :func:`make_augmenter`) changes each uint8 batch first, with a new seed for every
    batch and epoch. It runs here rather than as layers inside the model: Keras' random
    layers would keep XLA from compiling the model on GPUs.

    ``feeder`` says who makes the batches: ``"tf.data"`` (a ``tf.data`` pipeline, which
    prepares batches on other CPU cores while the model trains) or ``"numpy"``
    (:class:`PictureBatches`, a ``keras.utils.PyDataset``, which needs no TensorFlow).
    Left at None it follows the Keras backend: ``tf.data`` on TensorFlow, NumPy on JAX
    and PyTorch, where TensorFlow may be missing (Colab's TPU runtime) and, where it is
    installed, would claim GPU memory beside the backend's own.
    """
    feeder = feeder or ("tf.data" if backends.on_tensorflow() else "numpy")
    if feeder == "numpy":
        return PictureBatches(x, y, num_classes, batch_size, shuffle=shuffle, seed=seed, augment=augment)
    import tensorflow as tf

    pipeline = tf.data.Dataset.from_tensor_slices((x, np.asarray(y, dtype="int32")))
    if shuffle:
        pipeline = pipeline.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    pipeline = pipeline.batch(batch_size)
    if augment is not None:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        pipeline = tf.data.Dataset.zip(pipeline, seeds).map(
            lambda batch, batch_seed: (augment(batch[0], batch_seed), batch[1]),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    pipeline = pipeline.map(
        lambda pictures, labels: (tf.cast(pictures, tf.float32) / 255.0, tf.one_hot(labels, num_classes)),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return pipeline.prefetch(tf.data.AUTOTUNE)


class PictureBatches(keras.utils.PyDataset):
    """:func:`make_pipeline`'s batches made with NumPy, for every Keras backend.

    Epoch ``e``'s order is a permutation drawn from ``(seed, e)``, and batch ``i`` of it
    is augmented with the seed ``(seed, e * len(self) + i)``: the same seed gives the
    same batches, and every epoch other ones. Keras calls :meth:`on_epoch_end` after
    each epoch; two threads prepare the next batches while the model trains.
    """

    def __init__(self, x, y, num_classes, batch_size, shuffle=False, seed=0, augment=None):
        super().__init__(workers=2, max_queue_size=4)
        self.x, self.y = x, np.asarray(y, dtype="int64")
        self.num_classes, self.batch_size = num_classes, batch_size
        self.shuffle, self.seed, self.augment = shuffle, seed, augment
        self.epoch = 0
        self.order = self._order()

    def _order(self):
        if not self.shuffle:
            return np.arange(len(self.x))
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.x))

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(index)  # where a plain `for` loop over one epoch stops
        take = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        pictures = self.x[take]
        if self.augment is not None:
            pictures = np.asarray(self.augment(pictures, [self.seed, self.epoch * len(self) + index]))
        labels = np.eye(self.num_classes, dtype="float32")[self.y[take]]
        return pictures.astype("float32") / 255.0, labels

    def on_epoch_end(self):
        self.epoch += 1
        self.order = self._order()
