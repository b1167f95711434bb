#!/usr/bin/env python3
"""Training and inference speed: the article's plain code against the notebooks', with and without speed-ups.

    python bench/throughput.py                  # CPU: 1,020 pictures per timed epoch,
                                                # 4,090 per timed prediction, 8 rounds
    python bench/throughput.py --rounds 16      # more rounds, steadier figures

All sides train the article's model (33.6M parameters) at the same batch size on the
same pictures (generated, CIFAR-10's shapes: speed does not depend on what they show),
with ``model.fit`` on float32 arrays divided by 255, as the article and notebook 03 do:

* ``article``: float32 weights and maths, Keras' Adam, ``model.predict`` — the 2020 code;
* ``plain``: notebook 03 with ``speedups=False``: ``choose_precision("auto")`` (mixed
  precision where the hardware gains from it) and Keras' own code otherwise;
* ``speedups``: notebook 03 as it runs on a CPU (``speedups="auto"``): the same, with
  the :class:`vggcifar.speed.SpeedUps` callback (fused BatchNormalization, fused Adam,
  the small-picture convolutions as matrix products); predictions from the copy with
  BatchNormalization folded into the convolutions (``vggcifar.speed.fold_batchnorm``).

Each side runs one untimed epoch first (tracing and warm-up); then the sides take
turns for ``--rounds`` timed epochs each, so that a slow spell of the machine hits
all of them. Three clocks, each giving a ratio per round (article time / side's time,
measured back to back) and the median of those ratios:

* wall clock of the whole epoch (or prediction);
* CPU time of the whole epoch (seconds of work on all cores), which a pause of the
  whole machine does not inflate;
* wall clock of the median step, read by a callback at the end of every batch inside
  the same ``fit``/``predict`` call: a pause that stretches a few steps does not move
  it. The project's 2-core machine is paused now and then until the next multiple of
  10.24 s, which can add 70% to a 6-second measurement; this clock ignores that.
  (On a GPU the host may queue steps ahead of the device: there trust the first clock.)

Prints pictures per second (whole epochs: median and best; median step), the ratios
with every round's value, the seconds a 50,000-picture CIFAR-10 epoch would take, and
with ``--json`` every round's raw seconds. A script that prints figures, not a test;
the figures it printed, with machine and date, are in ``bench/README.md``.
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import vggcifar  # noqa: E402,F401  (it too quiets TensorFlow's start-up messages)
from vggcifar.data import make_synthetic  # noqa: E402
from vggcifar.environment import choose_precision, describe_device, precision_policy  # noqa: E402
from vggcifar.model import build_vgg16  # noqa: E402
from vggcifar.speed import SpeedUps, fold_batchnorm  # noqa: E402
from vggcifar.training import pixels_to_float  # noqa: E402

CIFAR10_TRAIN = 50_000
#: What is timed, and how the figures name it.
KINDS = (("fit", "train"), ("predict", "infer"))


def make_side(dataset, batch_size, policy, speedups):
    """``(fit, predict, policy)``: one epoch of ``model.fit`` and one ``model.predict`` on arrays."""
    keras.utils.set_random_seed(0)
    with precision_policy(policy):
        model = build_vgg16()
        model.compile(
            optimizer=keras.optimizers.Adam(), loss="categorical_crossentropy", metrics=["accuracy"]
        )
    x, x_test = pixels_to_float(dataset.x_train), pixels_to_float(dataset.x_test)
    y = keras.utils.to_categorical(dataset.y_train, 10)
    extra = [SpeedUps(True)] if speedups else []

    def fit(clock):
        return model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, callbacks=[clock, *extra])

    folded = {}

    def predict(clock):
        predictor = model
        if speedups:
            if "model" not in folded:  # fold once, after the first epoch, as a user would
                folded["model"] = fold_batchnorm(model)
            predictor = folded["model"]
        return predictor.predict(x_test, batch_size=batch_size, verbose=0, callbacks=[clock])

    return fit, predict, policy


def sides_for(dataset, batch_size):
    auto = choose_precision("auto")
    return {
        "article": make_side(dataset, batch_size, "float32", speedups=False),
        "plain": make_side(dataset, batch_size, auto, speedups=False),
        "speedups": make_side(dataset, batch_size, auto, speedups=True),
    }


class StepClock(keras.callbacks.Callback):
    """Reads the clock when a fit or predict call starts and at the end of every batch."""

    def __init__(self):
        super().__init__()
        self.times = []

    def on_train_begin(self, logs=None):
        self.times = [time.perf_counter()]

    on_predict_begin = on_train_begin

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter())

    on_predict_batch_end = on_train_batch_end

    def median_step(self):
        return float(np.median(np.diff(self.times)))


def measure(sides, rounds):
    """Alternate the sides round by round so that a slow spell of the machine hits both.

    The first round is a warm-up (tracing), not timed. Returns every timed round's
    seconds: wall clock, CPU (all cores together) and the median step's wall clock,
    ``{side: {"fit": [...], "fit_cpu": [...], "fit_step": [...], "predict": [...], ...}}``.
    """
    kinds = [kind + clock for kind, _ in KINDS for clock in ("", "_cpu", "_step")]
    times = {name: {kind: [] for kind in kinds} for name in sides}
    for round_ in range(rounds + 1):
        for name, (fit, predict, _) in sides.items():
            for kind, function in (("fit", fit), ("predict", predict)):
                clock = StepClock()
                started, started_cpu = time.perf_counter(), time.process_time()
                function(clock)
                if round_:
                    times[name][kind].append(time.perf_counter() - started)
                    times[name][kind + "_cpu"].append(time.process_time() - started_cpu)
                    times[name][kind + "_step"].append(clock.median_step())
    return times


def paired_ratio(times, kind, side):
    """Median over the rounds of article time / ``side``'s time, each round's pair measured
    back to back: the machine's slow and fast spells cancel within a pair."""
    pairs = [a / v for a, v in zip(times["article"][kind], times[side][kind])]
    return float(np.median(pairs)), pairs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pictures", type=int, default=1024, help="training pictures per timed epoch")
    parser.add_argument(
        "--test-pictures",
        type=int,
        default=4096,
        help="pictures per timed prediction (prediction is fast: more pictures "
        "than for training keep the timing steady)",
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=8, help="timed epochs per side")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)

    dataset = make_synthetic(
        per_class=max(1, args.pictures // 10), test_per_class=max(1, args.test_pictures // 10), seed=0
    )
    n = len(dataset.x_train)
    print(
        f"device: {describe_device()};  keras {keras.__version__};  {n} pictures per epoch, "
        f"{len(dataset.x_test)} per prediction, batch_size {args.batch_size}, "
        f"{args.rounds} rounds",
        flush=True,
    )
    sides = sides_for(dataset, args.batch_size)
    times = measure(sides, args.rounds)
    figures = {}
    pictures = {"fit": n, "predict": len(dataset.x_test)}
    for side, (_, _, policy) in sides.items():
        f = figures[side] = {"precision": policy, "seconds": times[side]}
        for kind, label in KINDS:
            f[f"{label}_img_s"] = pictures[kind] / np.median(times[side][kind])
            f[f"{label}_img_s_best"] = pictures[kind] / min(times[side][kind])
            f[f"{label}_img_s_step"] = args.batch_size / np.median(times[side][kind + "_step"])
        f["cifar10_epoch_s"] = CIFAR10_TRAIN / f["train_img_s"]
        print(
            f"{side:9s} {policy:15s} train {f['train_img_s']:6.1f} img/s "
            f"(best {f['train_img_s_best']:6.1f}, median step {f['train_img_s_step']:6.1f})"
            f"   inference {f['infer_img_s']:6.1f} img/s"
            f" (best {f['infer_img_s_best']:6.1f}, median step {f['infer_img_s_step']:6.1f})"
            f"   CIFAR-10 epoch ≈ {f['cifar10_epoch_s']:6.1f} s",
            flush=True,
        )
    for side in ("plain", "speedups"):
        for kind, label in KINDS:
            for clock, name in (("", "wall clock"), ("_cpu", "CPU time"), ("_step", "median step")):
                key = f"{side}_{label}_ratio{clock}"
                figures[key], pairs = paired_ratio(times, kind + clock, side)
                figures[key + "_rounds"] = pairs
                print(
                    f"speed-up of {side:8s} over article, {label:5s} {name:11s}: {figures[key]:.2f}x"
                    f"  (rounds: {', '.join(f'{r:.2f}' for r in pairs)})"
                )
    if args.json:
        with open(args.json, "w") as out:
            json.dump(figures, out, indent=1)
    return figures


if __name__ == "__main__":
    main()
