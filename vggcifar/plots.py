"""Step 4 — plots: accuracy and loss per epoch, and grids of pictures.

As in the article there are two figures, one for accuracy and one for loss,
training in blue and test in red. Notebook 04 draws them first with plain ``plt``
calls, as the post does; :func:`plot_metric` is the same in fewer lines (04 defines it
after, ``# @save``), and :func:`add_article_curves` draws the article's published
curves beside them, dashed, so a run can be compared with the original.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

#: The two metrics the article plots.
METRICS = ("accuracy", "loss")


def load_article_history():
    """The article's published per-epoch results (20 epochs), with Keras 3 key names."""
    text = resources.files("vggcifar").joinpath("resources/article_history.json").read_text()
    return json.loads(text)


def load_full_run_history():
    """This project's own run of the article's recipe at full scale (20 epochs of batch 64 on
    40,000 real CIFAR-10 pictures, validated on 10,000 others), per epoch: the curves of a
    whole run, to draw beside a short one (``plot_comparison({"full run": ...})``).
    ``history["source"]`` says where, how and on what it ran (README, "The article's own run").
    """
    text = resources.files("vggcifar").joinpath("resources/article_run_history.json").read_text()
    return json.loads(text)


def _check_metric(metric):
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {list(METRICS)}, got {metric!r}")


def plot_metric(history, metric, validation_label="test"):
    """One of the article's figures: metric per epoch, training in blue, validation in red."""
    epochs = range(1, len(history[metric]) + 1)
    figure = plt.figure(figsize=(8, 5))
    plt.plot(epochs, history[metric], color="b", linewidth=2.5, label="training")
    plt.plot(epochs, history[f"val_{metric}"], color="r", linewidth=2.5, label=validation_label)
    plt.xlabel("epoch")
    plt.ylabel(metric)
    plt.title(f"{metric} per epoch")
    plt.grid(alpha=0.3)
    plt.legend(loc="best")
    return figure


def add_article_curves(metric, article=None):
    """Draw the article's published ``metric`` curves, dashed, into the current figure."""
    _check_metric(metric)
    article = article or load_article_history()
    plt.plot(article["epoch"], article[metric], "b--", alpha=0.45, label="article: training")
    plt.plot(article["epoch"], article[f"val_{metric}"], "r--", alpha=0.45, label="article: test")
    plt.legend(loc="best")


def validation_label(validation):
    """How the red line is labelled: "test" as in the article, or "validation (held out)"."""
    return "test" if validation == "test" else "validation (held out)"


def plot_history(history, with_article=True, out_dir=None, validation="test"):
    """The article's two figures (accuracy, loss); saved as PNG into ``out_dir`` when given.

    Returns ``{"accuracy": figure, "loss": figure}``.
    """
    figures = {}
    for metric in METRICS:
        figures[metric] = plot_metric(history, metric, validation_label(validation))
        if with_article:
            add_article_curves(metric)
        figures[metric].tight_layout()
        if out_dir is not None:
            Path(out_dir).mkdir(parents=True, exist_ok=True)
            figures[metric].savefig(Path(out_dir) / f"{metric}.png", dpi=100)
    return figures


def show_samples(x, y, class_names, per_class=1, title="", seed=0):
    """A grid of pictures, ``per_class`` of each class, each titled with its class name."""
    rng = np.random.default_rng(seed)
    y = np.asarray(y).reshape(-1)
    columns = len(class_names)
    fig, axes = plt.subplots(
        per_class, columns, figsize=(1.4 * columns, 1.6 * per_class + 0.4), squeeze=False
    )
    for label, name in enumerate(class_names):
        members = np.flatnonzero(y == label)
        picks = rng.choice(members, min(per_class, len(members)), replace=False)
        for row in range(per_class):
            ax = axes[row, label]
            ax.axis("off")
            if row < len(picks):
                ax.imshow(x[picks[row]])
                ax.set_title(name, fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


# --- 06: improvements ---------------------------------------------------------------


def plot_comparison(histories, metric="accuracy", title=None):
    """Several runs in one figure: ``{label: history}``; training solid, validation dashed."""
    _check_metric(metric)
    fig, ax = plt.subplots(figsize=(8, 5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for (label, history), color in zip(histories.items(), colors):
        epochs = range(1, len(history[metric]) + 1)
        ax.plot(
            epochs, history[metric], "o-", color=color, linewidth=2, markersize=4, label=f"{label}: training"
        )
        ax.plot(
            epochs,
            history[f"val_{metric}"],
            "o--",
            color=color,
            linewidth=2,
            markersize=4,
            label=f"{label}: validation",
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title(title or f"{metric} per epoch")
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    fig.tight_layout()
    return fig


# --- 08: sweeps ---------------------------------------------------------------------


def plot_sweep(rows, histories, swept, out_dir=None):
    """A sweep's two figures: validation accuracy per epoch (one line per run), and the
    final validation accuracy against each swept parameter.

    ``rows`` come from :func:`vggcifar.sweeps.gather`, ``histories`` map a run's name to
    its ``history.json``. With ``out_dir`` the figures are also saved there as
    ``sweep-curves.png`` and ``sweep-final.png``. Returns the two figures.
    """
    curves, ax = plt.subplots(figsize=(8, 5))
    for row in rows:
        values = histories.get(row["run"], {}).get("val_accuracy", [])
        if values:
            ax.plot(range(1, len(values) + 1), values, "o-", linewidth=2, markersize=4, label=row["run"])
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    ax.set_title("validation accuracy per epoch, one line per run")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(loc="best", fontsize="small")
    curves.tight_layout()

    names = list(swept) or ["run"]
    final, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 4), squeeze=False)
    done = [row for row in rows if row["final_val_accuracy"] is not None]
    for ax, name in zip(axes[0], names):
        labels = [str(row["parameters"].get(name, row["run"])) for row in done]
        positions = {label: i for i, label in enumerate(dict.fromkeys(labels))}
        ax.plot(
            [positions[label] for label in labels],
            [row["final_val_accuracy"] for row in done],
            "o",
            markersize=8,
            alpha=0.7,
        )
        ax.set_xticks(list(positions.values()), list(positions))
        ax.set_xlabel(name)
        ax.set_ylabel("final validation accuracy")
        ax.grid(alpha=0.3)
    final.suptitle("final validation accuracy of every run")
    final.tight_layout()
    if out_dir is not None:
        curves.savefig(Path(out_dir) / "sweep-curves.png", dpi=100)
        final.savefig(Path(out_dir) / "sweep-final.png", dpi=100)
    return curves, final


def plot_schedule(schedule, total_steps, steps_per_epoch):
    """The learning rate of every step of a Keras schedule (or a constant), against epochs."""
    steps = np.arange(total_steps + 1)
    rates = [float(schedule(step)) if callable(schedule) else float(schedule) for step in steps]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(steps / steps_per_epoch, rates, linewidth=2)
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    ax.set_title("learning rate during training")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def show_pictures(pictures, titles=None, columns=8, title="", size=1.4):
    """A grid of pictures, each with its (short) title below the grid row."""
    count = len(pictures)
    rows = max(1, -(-count // columns))
    fig, axes = plt.subplots(
        rows, columns, figsize=(size * columns, (size + 0.35) * rows + 0.4), squeeze=False
    )
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < count:
            ax.imshow(pictures[i])
            if titles is not None:
                ax.set_title(titles[i], fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


# --- 07: evaluation -----------------------------------------------------------------


def plot_confusion_matrix(matrix, class_names, title="confusion matrix (rows: true class)"):
    """The confusion matrix as a picture: each row in shares of that class, counts written in."""
    matrix = np.asarray(matrix)
    totals = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right")
    ax.set_yticks(ticks, class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    for t in ticks:
        for p in ticks:
            ax.text(
                p,
                t,
                str(matrix[t, p]),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if shares[t, p] > 0.5 else "black",
            )
    fig.colorbar(image, ax=ax, label="share of the true class")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def show_mistakes(pictures, labels, probabilities, indices, class_names, columns=8):
    """The pictures at ``indices`` titled "true → predicted (confidence)"."""
    predicted = np.argmax(probabilities, axis=1)
    titles = [
        f"{class_names[labels[i]]}\n→ {class_names[predicted[i]]} {probabilities[i, predicted[i]]:.0%}"
        for i in indices
    ]
    return show_pictures(
        [pictures[i] for i in indices],
        titles,
        columns=columns,
        title="the most confident mistakes (true → predicted, confidence)",
    )
