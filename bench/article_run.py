#!/usr/bin/env python3
"""The article's own run beside the article's numbers: the README's table and figures.

    python bench/article_run.py RUN_DIR [--out docs/images] [--name article-full] [--ship]

Reads a finished run folder of the article's recipe (``params.json``, ``history.json``,
``metrics.json``, ``model.keras``) and prints, in Markdown, what the README's section on
the full run shows: one row per epoch (training and test accuracy and loss, seconds),
each beside the article's published value; the final and best test accuracy, the epoch
of the lowest test loss and the gaps to the article's 83.5% / 96.9%; per-class accuracy.
It writes ``<name>-accuracy.png`` and ``<name>-loss.png`` (notebook 04's figures with
the article's curves dashed) and ``<name>-confusion.png`` (notebook 07's matrix on the
run's test pictures). ``--ship`` also writes the run's history, with where and how it was
made, to ``vggcifar/resources/article_run_history.json`` for the notebooks to draw.
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
from vggcifar.evaluation import confusion_matrix, per_class_accuracy, predict_probabilities  # noqa: E402
from vggcifar.plots import load_article_history, plot_confusion_matrix, plot_history  # noqa: E402

SHIPPED = Path(__file__).resolve().parents[1] / "vggcifar" / "resources" / "article_run_history.json"
KEYS = ("accuracy", "val_accuracy", "loss", "val_loss")


def epoch_table(history, article):
    """Markdown rows: this run's values per epoch, each with the article's in brackets."""
    lines = [
        "| epoch | training accuracy | test accuracy | training loss | test loss | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for i, epoch in enumerate(history["epoch"]):
        cells = [f"{history[k][i]:.4f} ({article[k][i]:.4f})" for k in KEYS]
        seconds = f"{history['seconds'][i]:.0f} ({article['seconds'][i]})"
        lines.append(f"| {epoch} | " + " | ".join(cells) + f" | {seconds} |")
    return "\n".join(lines)


def summary(history, article):
    """The figures a reader of a reproduction asks for first."""
    found = {}
    for name, h in (("this run", history), ("article", article)):
        best = max(range(len(h["epoch"])), key=lambda i: h["val_accuracy"][i])
        lowest = min(range(len(h["epoch"])), key=lambda i: h["val_loss"][i])
        found[name] = {
            "final test accuracy": round(h["val_accuracy"][-1], 4),
            "final training accuracy": round(h["accuracy"][-1], 4),
            "best test accuracy": round(h["val_accuracy"][best], 4),
            "best at epoch": h["epoch"][best],
            "lowest test loss at epoch": h["epoch"][lowest],
            "training seconds": round(sum(h["seconds"]), 1),
        }
    found["gap to the article (points)"] = {
        "final test accuracy": round(100 * (history["val_accuracy"][-1] - article["val_accuracy"][-1]), 1),
        "final training accuracy": round(100 * (history["accuracy"][-1] - article["accuracy"][-1]), 1),
    }
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--out", default="docs/images")
    parser.add_argument("--name", default="article-full")
    parser.add_argument("--ship", action="store_true", help=f"write {SHIPPED.name} into the package")
    args = parser.parse_args(argv)
    run = Path(args.run_dir)
    params = json.loads((run / "params.json").read_text())
    history = json.loads((run / "history.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    article = load_article_history()
    if len(history["epoch"]) != len(article["epoch"]):
        done, wanted = len(history["epoch"]), len(article["epoch"])
        raise SystemExit(f"{run}: {done} epochs; the article trained {wanted}")

    out = Path(args.out)
    for metric, figure in plot_history(history, with_article=True, validation=params["validation"]).items():
        figure.savefig(out / f"{args.name}-{metric}.png", dpi=80)
    dataset = load_data(params["data"], subset=params["subset"], seed=params["seed"])
    model = keras.models.load_model(run / "model.keras")
    predicted = predict_probabilities(model, dataset.x_test).argmax(axis=1)
    matrix = confusion_matrix(dataset.y_test, predicted, dataset.num_classes)
    title = f"the run's {len(dataset.y_test):,} test pictures"
    plot_confusion_matrix(matrix, dataset.class_names, title=title).savefig(
        out / f"{args.name}-confusion.png", dpi=80
    )

    print(epoch_table(history, article), end="\n\n")
    print(json.dumps(summary(history, article), indent=1), end="\n\n")
    print("| class | test accuracy |\n|---|---|")
    for name, value in zip(dataset.class_names, per_class_accuracy(matrix)):
        print(f"| {name} | {value:.1%} |")
    environment = metrics["environment"]
    recorded = ("data", "subset", "seed", "epochs", "batch_size", "validation")
    print(json.dumps({k: params[k] for k in recorded}))
    print(json.dumps(environment))
    if args.ship:
        shipped = {
            "source": (
                "vggcifar's run of the article's recipe (python -m vggcifar run), "
                f"data {Path(str(params['data'])).name}; "
                f"{environment['device']}, {environment['precision']}, "
                f"TensorFlow {environment['tensorflow']}, Keras {environment['keras']}"
            ),
            "params": {k: params[k] for k in ("subset", "seed", "epochs", "batch_size", "validation")},
            "test_pictures": len(dataset.y_test),
            **{k: [round(v, 4) for v in history[k]] for k in KEYS},
            "epoch": history["epoch"],
            "seconds": [round(s, 1) for s in history["seconds"]],
        }
        SHIPPED.write_text(json.dumps(shipped, indent=1) + "\n")
        print(f"wrote {SHIPPED} ({SHIPPED.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
