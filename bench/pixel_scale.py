#!/usr/bin/env python3
"""Does dividing the pixels by 255 matter for the article's model? Trained both ways, side by side.

    python bench/pixel_scale.py                      # 5,000 real pictures, 3 epochs, 4 runs
    python bench/pixel_scale.py --per-class 200 --epochs 2

The article scales the pixels to 0..1 before ``fit``. Its model puts BatchNormalization
right after every convolution, and BatchNormalization divides each channel by its
own spread: multiplying the input by 255 multiplies the first convolution's output by
255, and the normalisation takes that factor out again. This script measures what is
left of the difference: the article's model (Adam, batch 64) trained on the same real
CIFAR-10 pictures with pixels 0..1 and with raw pixels 0..255, with BatchNormalization
(the article's model) and without it (``batch_norm=False``). Scored on pictures none
of them trained on. A script that prints figures, not a test.
"""

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

import vggcifar  # noqa: E402,F401  (it too quiets TensorFlow's start-up messages)
from vggcifar.data import load_data  # noqa: E402
from vggcifar.environment import choose_precision, precision_policy  # noqa: E402
from vggcifar.model import build_vgg16  # noqa: E402
from vggcifar.speed import SpeedUps  # noqa: E402
from vggcifar.training import compile_like_article  # noqa: E402

SHARED_CIFAR = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cifar10-jpeg-train.tar.gz"


def train_once(dataset, scale, batch_norm, epochs, batch_size, seed, precision="auto"):
    keras.utils.set_random_seed(seed)
    with precision_policy(choose_precision(precision)):
        model = compile_like_article(build_vgg16(batch_norm=batch_norm))
    x = dataset.x_train.astype("float32") / scale
    x_test = dataset.x_test.astype("float32") / scale
    y = keras.utils.to_categorical(dataset.y_train, 10)
    y_test = keras.utils.to_categorical(dataset.y_test, 10)
    history = model.fit(
        x,
        y,
        batch_size=batch_size,
        epochs=epochs,
        validation_data=(x_test, y_test),
        callbacks=[SpeedUps("auto")],
        verbose=0,
    )
    return {k: [round(float(v), 4) for v in values] for k, values in history.history.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(SHARED_CIFAR))
    parser.add_argument("--per-class", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", default="auto", help="auto (the notebooks' choice) or float32")
    parser.add_argument(
        "--with-batchnorm-only", action="store_true", help="skip the two runs without BatchNormalization"
    )
    args = parser.parse_args(argv)
    dataset = load_data(args.data, subset=args.per_class, seed=0)  # the same pictures for every seed
    print(dataset.describe(), flush=True)
    results = {}
    for batch_norm in (True,) if args.with_batchnorm_only else (True, False):
        for scale, label in ((255.0, "pixels / 255"), (1.0, "raw pixels")):
            name = f"{'with' if batch_norm else 'without'} BatchNormalization, {label}"
            results[name] = train_once(
                dataset, scale, batch_norm, args.epochs, args.batch_size, args.seed, args.precision
            )
            h = results[name]
            print(f"{name:45s} training loss {h['loss']}  held-out accuracy {h['val_accuracy']}", flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
