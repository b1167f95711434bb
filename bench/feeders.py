#!/usr/bin/env python3
"""Pictures a second that each input pipeline feeds to ``fit``, with the improved recipe's augmentation.

    python bench/feeders.py                                    # the backends this Python has
    python bench/feeders.py --python jax=/path/to/venv/bin/python --python torch=/path/...

``vggcifar.improvements.make_pipeline`` makes the training batches of an augmented run
in one of two ways: a ``tf.data`` pipeline (TensorFlow's own ops, batches prepared in
parallel while the model trains) where Keras runs on TensorFlow, and
``PictureBatches`` (NumPy in a ``keras.utils.PyDataset``, two threads) on JAX and
PyTorch, where TensorFlow may be missing. This measures what each feeds: ``fit``
trains a model of one Dense layer on 32x32x3 pictures, so that the model costs next to
nothing and the pictures a second are the pipeline's (shuffle, flip, 4-pixel shift,
cutout, scale to [0, 1], one-hot labels). The article's GPU trained at about 1,500
pictures a second (782 steps of 64 in 34 s); a pipeline slower than that would hold
a GPU back. Each backend runs in its own process; on TensorFlow both pipelines run.
One untimed epoch, then ``--epochs`` timed; the median is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SIDE = r"""
import json, statistics, sys, time
import keras
import numpy as np
from vggcifar import backends
from vggcifar.improvements import make_augmenter, make_pipeline
from vggcifar.settings import IMPROVED_RECIPE

pictures, batch_size, epochs = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
x = rng.integers(0, 256, (pictures, 32, 32, 3), dtype=np.uint8)
y = rng.integers(0, 10, pictures)
recipe = {**IMPROVED_RECIPE, "cutout": 8}  # every change on
feeders = ["tf.data", "numpy"] if backends.on_tensorflow() else ["numpy"]
for feeder in feeders:
    augment = make_augmenter(recipe)
    feed = make_pipeline(x, y, 10, batch_size, shuffle=True, seed=0, augment=augment, feeder=feeder)
    layers = [keras.Input((32, 32, 3)), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")]
    model = keras.Sequential(layers)
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    model.fit(feed, epochs=1, verbose=0)  # untimed: tracing, threads starting
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.fit(feed, epochs=1, verbose=0)
        seconds.append(time.perf_counter() - start)
    median = statistics.median(seconds)
    print("RESULT", json.dumps({"backend": backends.backend(), "feeder": feeder, "seconds": seconds,
                                "pictures_per_second": pictures / median}))
"""


def run_side(backend, python, pictures, batch_size, epochs):
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [python, "-c", SIDE, str(pictures), str(batch_size), str(epochs)],
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if result.returncode:
        return [{"backend": backend, "error": result.stderr.strip().splitlines()[-1]}]
    return [
        json.loads(line[len("RESULT ") :])
        for line in result.stdout.splitlines()
        if line.startswith("RESULT ")
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pictures", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--python", action="append", default=[], metavar="BACKEND=PYTHON")
    args = parser.parse_args(argv)
    pythons = {"tensorflow": sys.executable, **dict(item.split("=", 1) for item in args.python)}
    print(f"{args.pictures:,} pictures an epoch, batch {args.batch_size}, {args.epochs} timed epochs")
    print(f"{'backend':12s}{'feeder':10s}{'pictures/s':>12s}  seconds per epoch")
    for backend, python in pythons.items():
        for row in run_side(backend, python, args.pictures, args.batch_size, args.epochs):
            if "error" in row:
                print(f"{backend:12s}{'':10s}  failed: {row['error']}")
                continue
            timings = ", ".join(f"{s:.2f}" for s in row["seconds"])
            print(f"{backend:12s}{row['feeder']:10s}{row['pictures_per_second']:12,.0f}  {timings}")


if __name__ == "__main__":
    main()
