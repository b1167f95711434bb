#!/usr/bin/env python3
"""The README's reference run: figures and figures' labels from one finished run folder.

    python bench/reference_run.py RUN_DIR [--out docs/images] [--name reference]

Reads the run's ``history.json``, ``params.json``, ``metrics.json`` and ``model.keras``,
reloads its data the way it was trained (same source, subset and seed), and writes
``<name>-accuracy.png``, ``<name>-loss.png`` (the curves per epoch, as notebook 04 draws
them) and ``<name>-confusion.png`` (notebook 07's matrix on the held-out pictures); it
prints what the README's table needs: data, parameters, machine, accuracy, seconds.
A script that prints figures, not a test.
"""

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

import keras  # noqa: E402

from vggcifar.data import load_data  # noqa: E402
from vggcifar.evaluation import accuracy, confusion_matrix, predict_probabilities  # noqa: E402
from vggcifar.plots import plot_confusion_matrix, plot_history  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--out", default="docs/images")
    parser.add_argument("--name", default="reference")
    args = parser.parse_args(argv)
    run = Path(args.run_dir)
    params = json.loads((run / "params.json").read_text())
    history = json.loads((run / "history.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    out = Path(args.out)
    figures = plot_history(history, with_article=False, validation=params["validation"])
    for metric, figure in figures.items():
        figure.savefig(out / f"{args.name}-{metric}.png", dpi=80)
    dataset = load_data(params["data"], subset=params["subset"], seed=params["seed"])
    model = keras.models.load_model(run / "model.keras")
    probabilities = predict_probabilities(model, dataset.x_test)
    flipped = predict_probabilities(model, dataset.x_test, flip_average=True)
    matrix = confusion_matrix(dataset.y_test, probabilities.argmax(axis=1), dataset.num_classes)
    plot_confusion_matrix(
        matrix, dataset.class_names, title=f"held-out pictures ({len(dataset.y_test):,})"
    ).savefig(out / f"{args.name}-confusion.png", dpi=80)
    print(
        json.dumps(
            {
                "data": params["data"],
                "subset": params["subset"],
                "seed": params["seed"],
                "epochs": params["epochs"],
                "batch_size": params["batch_size"],
                "held_out": len(dataset.y_test),
                "held_out_accuracy": accuracy(probabilities, dataset.y_test),
                "flip_averaged": accuracy(flipped, dataset.y_test),
                "training_seconds": round(sum(history["seconds"]), 1),
                "device": metrics["environment"]["device"],
                "precision": metrics["environment"]["precision"],
                "versions": {k: metrics["environment"][k] for k in ("tensorflow", "keras")},
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
