#!/usr/bin/env python3
"""Seconds per epoch of the article's model on each Keras backend: TensorFlow, JAX, PyTorch.

    python bench/backends.py                                   # the backends this Python has
    python bench/backends.py --python jax=/path/to/venv/bin/python   # a backend from another
                                                               # environment (e.g. JAX without TensorFlow)

Every side builds the same model (``vggcifar.model.build_vgg16``: the article's VGG16
with BatchNormalization, float32, 33.6M parameters), compiles it as the article does
(Adam with its defaults, categorical cross-entropy, accuracy) and trains it with
``model.fit`` on the same generated pictures (CIFAR-10's shapes, seed 0: speed does not
depend on what they show), at the same batch size. Each backend runs in its own process
(``KERAS_BACKEND`` is read once, at ``import keras``): one untimed epoch first (tracing,
compiling), then ``--epochs`` timed ones. A script that prints figures, not a test; what
it printed, with the machine and the date, is in ``bench/README.md``.

Printed per backend: Keras' and the backend's versions, seconds per epoch (median of the
timed epochs), pictures a second by the median step (a callback reads the clock after
every batch; a pause of the whole machine stretches a few steps, not the median), and
the seconds a 50,000-picture CIFAR-10 epoch would take at that pace.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

BACKENDS = ("tensorflow", "jax", "torch")
MODULES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
CIFAR10_TRAIN = 50_000
REPO = Path(__file__).resolve().parents[1]

#: What one backend's process runs; it prints one JSON line.
SIDE = r"""
import json, statistics, sys, time
import numpy as np
import keras
from vggcifar.model import build_vgg16

pictures, batch_size, epochs = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
x = rng.integers(0, 256, (pictures, 32, 32, 3), dtype=np.uint8).astype("float32") / 255
y = keras.utils.to_categorical(rng.integers(0, 10, pictures), 10)
model = build_vgg16()
model.compile(optimizer=keras.optimizers.Adam(), loss="categorical_crossentropy", metrics=["accuracy"])


class Clock(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.steps, self.last, self.start = [], time.perf_counter(), time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        self.steps.append(now - self.last)
        self.last = now

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(time.perf_counter() - self.start)
        self.medians.append(statistics.median(self.steps))


clock = Clock()
clock.epochs, clock.medians = [], []
model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, callbacks=[clock])  # tracing, warm-up
clock.epochs, clock.medians = [], []
model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, callbacks=[clock])
backend = keras.backend.backend()
module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[backend]
print(json.dumps({
    "backend": backend,
    "versions": {"keras": keras.__version__, module: __import__(module).__version__},
    "epoch_seconds": clock.epochs,
    "median_step_seconds": clock.medians,
}))
"""


def available(python, backend):
    """True when ``python`` can import ``backend``'s module (without importing it here)."""
    check = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({MODULES[backend]!r}) is None)"
    return subprocess.run([python, "-c", check], capture_output=True).returncode == 0


def run_side(python, backend, pictures, batch_size, epochs):
    """One backend in its own process; its figures, or None with the reason printed."""
    env = {
        **os.environ,
        "KERAS_BACKEND": backend,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    done = subprocess.run(
        [python, "-c", SIDE, str(pictures), str(batch_size), str(epochs)],
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        print(f"{backend}: failed\n{done.stderr.strip()[-1500:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pictures", type=int, default=1024, help="training pictures per epoch")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per backend")
    parser.add_argument(
        "--python",
        action="append",
        default=[],
        metavar="BACKEND=PYTHON",
        help="run BACKEND with another environment's Python (repeatable)",
    )
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    pythons = dict.fromkeys(BACKENDS, sys.executable)
    for pair in args.python:
        backend, _, python = pair.partition("=")
        if backend not in BACKENDS or not python:
            parser.error(f"--python takes BACKEND=PYTHON with BACKEND one of {list(BACKENDS)}, got {pair!r}")
        pythons[backend] = python
    print(f"{args.pictures} pictures per epoch, batch_size {args.batch_size}, {args.epochs} timed epochs")
    results = []
    for backend in BACKENDS:
        if not available(pythons[backend], backend):
            print(f"{backend:10s} not installed for {pythons[backend]}: skipped")
            continue
        found = run_side(pythons[backend], backend, args.pictures, args.batch_size, args.epochs)
        if not found:
            continue
        results.append(found)
        epoch = sorted(found["epoch_seconds"])[len(found["epoch_seconds"]) // 2]
        step = sorted(found["median_step_seconds"])[len(found["median_step_seconds"]) // 2]
        rate = args.batch_size / step
        versions = ", ".join(f"{name} {version}" for name, version in found["versions"].items())
        print(
            f"{backend:10s} {epoch:6.1f} s an epoch  {rate:6.1f} pictures/s by the median step  "
            f"CIFAR-10 epoch ≈ {CIFAR10_TRAIN / rate:5.0f} s   ({versions})"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"settings": vars(args), "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
