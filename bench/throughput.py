#!/usr/bin/env python3
"""Training and inference speed: the article's plain code against vggcifar's pipeline.

    python bench/throughput.py                  # CPU: 2,048 pictures per timed epoch
    python bench/throughput.py --pictures 10000 # more pictures, steadier figures

Both sides train the article's model (33.6M parameters) at the same batch size on the
same pictures (generated, CIFAR-10's shapes: speed does not depend on what they show):

* article: ``model.fit`` on float32 arrays already divided by 255, float32 weights and
  maths, ``model.predict`` on float32 arrays — what the 2020 code does;
* vggcifar: ``choose_precision("auto")`` (mixed precision where the hardware gains),
  BatchNormalization by TensorFlow's fused kernel, Adam's update by TensorFlow's fused
  kernel (``vggcifar.optimizers.FusedAdam``), the uint8 ``tf.data`` pipeline of
  ``vggcifar.training``, Keras' automatic XLA choice (on for GPUs, off for CPUs, where
  it was slower); predictions from the copy with BatchNormalization folded into the
  convolutions (``vggcifar.model.fold_batchnorm``).

Each side runs one untimed epoch first (tracing and warm-up); then the sides take
turns for ``--rounds`` timed epochs each, and each keeps its best time. Prints pictures per second, their ratio, and the seconds a 50,000-picture
CIFAR-10 epoch would take at that speed. A script that prints figures, not a test.
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from vggcifar.data import make_synthetic  # noqa: E402
from vggcifar.environment import choose_precision, describe_device  # noqa: E402
from vggcifar.model import build_vgg16, fold_batchnorm  # noqa: E402
from vggcifar.training import compile_like_article, make_pipeline, pixels_to_float  # noqa: E402

CIFAR10_TRAIN = 50_000


def article_side(dataset, batch_size):
    """The 2020 code: float32 arrays / 255, float32 model, Keras' Adam, fit and predict on arrays."""
    keras.utils.set_random_seed(0)
    model = build_vgg16(dtype="float32")
    model.compile(optimizer=keras.optimizers.Adam(), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    x, x_test = pixels_to_float(dataset.x_train), pixels_to_float(dataset.x_test)
    y = keras.utils.to_categorical(dataset.y_train, 10)
    fit = lambda: model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)  # noqa: E731
    predict = lambda: model.predict(x_test, batch_size=batch_size, verbose=0)  # noqa: E731
    return fit, predict, "float32"


def vggcifar_side(dataset, batch_size):
    """vggcifar: automatic precision, fused BatchNormalization, uint8 tf.data pipeline;
    predictions from the BatchNormalization-folded copy of the trained model."""
    keras.utils.set_random_seed(0)
    policy = choose_precision("auto")
    model = compile_like_article(build_vgg16(dtype=policy, fused_batchnorm=True))
    train = make_pipeline(dataset.x_train, dataset.y_train, 10, batch_size, shuffle=True)
    test = make_pipeline(dataset.x_test, dataset.y_test, 10, batch_size).map(lambda x, y: x)
    fit = lambda: model.fit(train, epochs=1, verbose=0)  # noqa: E731
    folded = {}

    def predict():
        if "model" not in folded:  # fold once the model is trained, as a user would
            folded["model"] = fold_batchnorm(model)
        return folded["model"].predict(test, verbose=0)

    return fit, predict, policy


def measure(sides, rounds):
    """Alternate the sides round by round so that a slow spell of the machine hits both;
    keep each side's best time. The first round is a warm-up (tracing), not timed."""
    times = {name: {"fit": [], "predict": []} for name in sides}
    for round_ in range(rounds + 1):
        for name, (fit, predict, _) in sides.items():
            for kind, function in (("fit", fit), ("predict", predict)):
                started = time.perf_counter()
                function()
                if round_:
                    times[name][kind].append(time.perf_counter() - started)
    return {name: {kind: min(values) for kind, values in kinds.items()}
            for name, kinds in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pictures", type=int, default=2048, help="training pictures per epoch")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="timed epochs per side (best counts)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)

    per_class = max(1, args.pictures // 10)
    dataset = make_synthetic(per_class=per_class, test_per_class=per_class, seed=0)
    n = len(dataset.x_train)
    print(f"device: {describe_device()};  keras {keras.__version__};  {n} pictures per epoch, "
          f"batch_size {args.batch_size}", flush=True)
    sides = {"article": article_side(dataset, args.batch_size),
             "vggcifar": vggcifar_side(dataset, args.batch_size)}
    best = measure(sides, args.rounds)
    figures = {}
    for side, (_, _, policy) in sides.items():
        fit_s, predict_s = best[side]["fit"], best[side]["predict"]
        figures[side] = {"precision": policy, "train_img_s": n / fit_s,
                         "infer_img_s": len(dataset.x_test) / predict_s,
                         "cifar10_epoch_s": CIFAR10_TRAIN * fit_s / n}
        f = figures[side]
        print(f"{side:9s} {policy:15s} train {f['train_img_s']:8.1f} img/s   "
              f"inference {f['infer_img_s']:8.1f} img/s   "
              f"CIFAR-10 epoch ≈ {f['cifar10_epoch_s']:7.1f} s", flush=True)
    figures["train_ratio"] = figures["vggcifar"]["train_img_s"] / figures["article"]["train_img_s"]
    figures["infer_ratio"] = figures["vggcifar"]["infer_img_s"] / figures["article"]["infer_img_s"]
    print(f"ratio vggcifar / article: training {figures['train_ratio']:.2f}x, "
          f"inference {figures['infer_ratio']:.2f}x")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(figures, out, indent=1)
    return figures


if __name__ == "__main__":
    main()
