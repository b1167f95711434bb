"""Each epoch's loss and accuracy for TensorBoard, on every Keras backend.

Keras' own ``keras.callbacks.TensorBoard`` writes through TensorFlow's ``tf.summary``,
so it only works where TensorFlow is installed: not on Colab's TPU runtime, which has
Keras on JAX alone. :func:`tensorboard_callback` gives Keras' callback on TensorFlow
and :class:`EpochCurves` elsewhere. EpochCurves writes the same curves (``epoch_loss``,
``epoch_accuracy``... in ``train/`` and ``validation/``, one point per epoch) with the
``tensorboard`` package's own writer, which needs only NumPy, so that
``tensorboard --logdir runs`` shows runs of every backend side by side.
"""

from __future__ import annotations

import os

import keras

from . import backends
from .language import say


def tensorboard_callback(log_dir):
    """A callback that writes each epoch's curves under ``log_dir`` for TensorBoard."""
    if backends.on_tensorflow():
        return keras.callbacks.TensorBoard(str(log_dir))
    return EpochCurves(log_dir)


class EpochCurves(keras.callbacks.Callback):
    """Keras' TensorBoard callback's epoch curves, written without TensorFlow.

    Where the ``tensorboard`` package is missing too, it says so once and writes
    nothing: the run folder's ``history.json`` and notebook 04's figures hold the same
    curves.
    """

    def __init__(self, log_dir):
        super().__init__()
        self.log_dir = str(log_dir)
        self.writers = {}

    def on_train_begin(self, logs=None):
        try:
            from tensorboard.summary import Writer
        except ImportError:
            print(
                say(
                    en="No TensorBoard curves: the tensorboard package is not installed "
                    "(pip install tensorboard); history.json and notebook 04 hold the same curves.",
                    ja="TensorBoard 用の曲線は書きません。tensorboard パッケージがありません"
                    "(pip install tensorboard)。同じ曲線は history.json とノートブック 04 にあります。",
                )
            )
            return
        self.writers = {split: Writer(os.path.join(self.log_dir, split)) for split in ("train", "validation")}

    def on_epoch_end(self, epoch, logs=None):
        if not self.writers:
            return
        for name, value in (logs or {}).items():
            split = "validation" if name.startswith("val_") else "train"
            self.writers[split].add_scalar(f"epoch_{name.removeprefix('val_')}", float(value), step=epoch)
        for writer in self.writers.values():
            writer.flush()

    def on_train_end(self, logs=None):
        for writer in self.writers.values():
            writer.close()
        self.writers = {}
