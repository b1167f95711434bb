#!/usr/bin/env python3
"""The article's recipe against the improved one, on the same budget, on real pictures.

    python bench/recipes.py                          # 10,000 pictures, 5 epochs, both recipes
    python bench/recipes.py --recipes improved --set learning_rate=0.1
    python bench/recipes.py --data path/to/cifar10.tar.gz --per-class 500 --epochs 3

Both recipes train the article's model (VGG16-BN, 33.6M parameters) on the same
training pictures (``--per-class`` of each class, chosen with the seed) for the same
number of epochs at the same batch size, with the same precision (``auto``). Their
accuracy is measured on pictures that neither trained on: the 20% of the archive that
``load_data`` holds out. No choice is made from those figures during training (each
run trains its fixed number of epochs), so they are a fair test. The per-epoch
figures and the final accuracy of each recipe are printed, with the difference.
A script that prints figures, not a test.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from vggcifar.improvements import ARTICLE_RECIPE, IMPROVED_RECIPE  # noqa: E402
from vggcifar.training import run_training  # noqa: E402

SHARED_CIFAR = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cifar10-jpeg-train.tar.gz"
RECIPES = {"article": ARTICLE_RECIPE, "improved": IMPROVED_RECIPE}


def parse_setting(text):
    """'learning_rate=0.1' → ('learning_rate', 0.1); 'flip=False' → ('flip', False)."""
    name, _, value = text.partition("=")
    return name, json.loads(value.replace("True", "true").replace("False", "false"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(SHARED_CIFAR), help="CIFAR-10 pictures (folder or .tar.gz)")
    parser.add_argument("--per-class", type=int, default=1000, help="training pictures per class")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="change one setting of the improved recipe, e.g. --set cutout=8")
    parser.add_argument("--out", default="runs/bench-recipes", help="folder for the run folders")
    args = parser.parse_args(argv)
    changes = dict(parse_setting(text) for text in args.set)

    results = {}
    for name in args.recipes:
        recipe = {**RECIPES[name], **(changes if name == "improved" else {})}
        print(f"=== {name}: {recipe}", flush=True)
        started = time.perf_counter()
        run_training(data=args.data, subset=args.per_class, epochs=args.epochs,
                     batch_size=args.batch_size, seed=args.seed, validation="test",
                     run_dir=str(Path(args.out) / name), overwrite=True, **recipe)
        metrics = json.loads((Path(args.out) / name / "metrics.json").read_text())
        results[name] = {"held_out_accuracy": round(metrics["test_accuracy"], 4),
                         "training_accuracy": round(metrics["accuracy"], 4),
                         "seconds": round(time.perf_counter() - started, 1),
                         "precision": metrics["environment"]["precision"]}
        print(f"=== {name}: {json.dumps(results[name])}", flush=True)

    print(f"\n{args.per_class * 10:,} training pictures, {args.epochs} epochs, "
          f"batch_size {args.batch_size}, seed {args.seed}")
    print(f"{'recipe':10s}{'held-out acc':>14s}{'train acc':>11s}{'seconds':>9s}")
    for name, row in results.items():
        print(f"{name:10s}{row['held_out_accuracy']:14.4f}{row['training_accuracy']:11.4f}"
              f"{row['seconds']:9.1f}")
    if {"article", "improved"} <= set(results):
        gain = results["improved"]["held_out_accuracy"] - results["article"]["held_out_accuracy"]
        print(f"improved - article: {100 * gain:+.1f} points")
    print(json.dumps(results))


if __name__ == "__main__":
    sys.exit(main())
