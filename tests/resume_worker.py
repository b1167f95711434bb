"""Trains a small run in its own process and, when asked, kills itself with SIGKILL.

    python resume_worker.py RUN_DIR KILL_POINT

KILL_POINT: "none", "mid-epoch" (during epoch 2), "between-epochs" (before epoch 3),
"while-saving" (half-way through writing epoch 2's backup).
The test then runs it again with "none" and checks the run resumed correctly.
"""

import os
import signal
import sys

import keras

from vggcifar import files, runs
from vggcifar.data import make_synthetic
from vggcifar.model import build_vgg16
from vggcifar.runs import RunFolder
from vggcifar.training import pixels_to_float, seed_everything

EPOCHS, BATCH = 3, 16  # 40 pictures: 3 steps per epoch


def die():
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class Killer(keras.callbacks.Callback):
    def __init__(self, point):
        super().__init__()
        self.point, self.epoch = point, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        if self.point == "between-epochs" and epoch == 2:
            die()

    def on_train_batch_end(self, batch, logs=None):
        if self.point == "mid-epoch" and self.epoch == 1 and batch == 1:
            die()


def main(run_dir, point):
    seed_everything(0)
    dataset = make_synthetic(per_class=4, test_per_class=1, seed=0)
    model = build_vgg16(blocks=((1, 8),) * 5, fc_units=16)  # the same mechanics, files of a few KB
    schedule = keras.optimizers.schedules.ExponentialDecay(1e-3, decay_steps=1, decay_rate=0.9)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule), loss="categorical_crossentropy", metrics=["accuracy"]
    )
    if point == "while-saving":
        save_weights = model.save_weights

        def save_half_then_die(path, *args, **kwargs):
            save_weights(path, *args, **kwargs)
            if files.is_temporary_of(os.path.basename(path), "epoch-0002.weights.h5"):
                with open(path, "r+b") as f:
                    f.truncate(os.path.getsize(path) // 2)
                die()

        model.save_weights = save_half_then_die
    run = RunFolder(run_dir, {"worker": "resume", "epochs": EPOCHS})
    initial_epoch = run.resume(model)
    history = model.fit(
        pixels_to_float(dataset.x_train),
        keras.utils.to_categorical(dataset.y_train, 10),
        batch_size=BATCH,
        epochs=EPOCHS,
        initial_epoch=initial_epoch,
        validation_data=(pixels_to_float(dataset.x_test), keras.utils.to_categorical(dataset.y_test, 10)),
        callbacks=[run, Killer(point)],
        verbose=0,
    )
    print("ITERATIONS", int(model.optimizer.iterations))
    print("LEARNING_RATE", float(model.optimizer.learning_rate))
    print("EPOCHS", run.history["epoch"], "FIT_HISTORY_ROWS", len(history.history["loss"]))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
    print("DONE", runs.is_finished(sys.argv[1]))
