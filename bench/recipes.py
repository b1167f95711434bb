#!/usr/bin/env python3
"""The three recipes on real pictures: held-out accuracy and training time.

    python bench/recipes.py                            # article, improved and quick, seed 0
    python bench/recipes.py --recipes quick --seed 1   # the ten-minute recipe, another seed
    python bench/recipes.py --recipes quick --set small_crops=0 --epochs 3   # one step of its table
    python bench/recipes.py --data path/to/cifar-10-python.tar.gz --per-class 1000

Every recipe trains the article's model (VGG16-BN, 33.6M parameters) on the same
pictures: ``load_data`` first holds out 20% of the archive (10,000 of the 50,000
shared pictures, stratified, chosen with the seed) as the **held-out** set, which
no run trains on and no choice is made from; ``validation="holdout"`` then sets 10%
of the rest aside for the per-epoch validation (the figures settings are chosen
on), and the run trains on the remaining 36,000. The quick recipe trains with its
own budget (``QUICK_BUDGET``: epochs and batch size); the article's and the improved
recipe, whose budget (20 epochs of 64) takes hours on a CPU, get ``--epochs`` (default
2: about ten minutes each on the project's 2-core CPU) at batch 64.

Prints, per recipe: the validation accuracy after every epoch, the held-out accuracy
(plain, and with flip averaging: each picture predicted as it is and mirrored, the
two answers averaged), and the training time (the seconds of all epochs of ``fit``,
per-epoch validation included; loading the data and scoring the held-out set not).
A script that prints figures, not a test; what it printed is in ``bench/README.md``.
"""

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from vggcifar.evaluation import accuracy, predict_probabilities  # noqa: E402
from vggcifar.settings import BUDGETS, RECIPES  # noqa: E402
from vggcifar.training import run_training  # noqa: E402

SHARED_CIFAR = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cifar10-jpeg-train.tar.gz"
CPU_EPOCHS = 2  # the article's and the improved recipe: about ten minutes each on 2 cores


def parse_setting(text):
    """'learning_rate=0.1' → ('learning_rate', 0.1); 'flip=False' → ('flip', False)."""
    name, _, value = text.partition("=")
    return name, json.loads(value.replace("True", "true").replace("False", "false"))


def budget(name, args):
    """Epochs and batch size for one recipe: the options where given, else as the module says."""
    own = BUDGETS[name] if name == "quick" else {"epochs": CPU_EPOCHS, "batch_size": 64}
    return {"epochs": args.epochs or own["epochs"], "batch_size": args.batch_size or own["batch_size"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(SHARED_CIFAR), help="CIFAR-10 pictures (folder or .tar.gz)")
    parser.add_argument(
        "--per-class",
        type=int,
        default=None,
        help="training pictures per class (default: all; the held-out set shrinks too)",
    )
    parser.add_argument("--epochs", type=int, default=None, help="epochs for every recipe")
    parser.add_argument("--batch-size", type=int, default=None, help="batch size for every recipe")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="change one setting of the recipes run, e.g. --set cutout=8",
    )
    parser.add_argument("--out", default="runs/bench-recipes", help="folder for the run folders")
    args = parser.parse_args(argv)
    changes = dict(parse_setting(text) for text in args.set)

    results = {}
    for name in args.recipes:
        params = {**budget(name, args), **changes}
        print(f"=== {name}: {json.dumps({**RECIPES[name], **params})}", flush=True)
        run_dir = Path(args.out) / f"{name}-seed{args.seed}"
        model, dataset, history = run_training(
            recipe=name,
            data=args.data,
            subset=args.per_class,
            seed=args.seed,
            validation="holdout",
            run_dir=str(run_dir),
            overwrite=True,
            **params,
        )
        metrics = json.loads((run_dir / "metrics.json").read_text())
        flipped = accuracy(predict_probabilities(model, dataset.x_test, flip_average=True), dataset.y_test)
        results[name] = {
            **params,
            "validation_per_epoch": [round(v, 4) for v in history["val_accuracy"]],
            "held_out_accuracy": round(metrics["test_accuracy"], 4),
            "held_out_flip_averaged": round(float(flipped), 4),
            "training_seconds": round(sum(history["seconds"]), 1),
            "held_out_pictures": len(dataset.y_test),
            "precision": metrics["environment"]["precision"],
        }
        print(f"=== {name}: {json.dumps(results[name])}", flush=True)

    print(f"\nseed {args.seed}, held-out pictures: {next(iter(results.values()))['held_out_pictures']:,}")
    print(
        f"{'recipe':10s}{'epochs':>7s}{'batch':>6s}{'validation':>11s}{'held-out':>9s}"
        f"{'+ flips':>8s}{'seconds':>9s}"
    )
    for name, row in results.items():
        print(
            f"{name:10s}{row['epochs']:7d}{row['batch_size']:6d}{row['validation_per_epoch'][-1]:11.4f}"
            f"{row['held_out_accuracy']:9.4f}{row['held_out_flip_averaged']:8.4f}"
            f"{row['training_seconds']:9.1f}"
        )
    print(json.dumps(results))


if __name__ == "__main__":
    sys.exit(main())
