import json

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from conftest import REPO  # noqa: E402
from vggcifar.plots import (  # noqa: E402
    add_article_curves,
    load_article_history,
    load_full_run_history,
    plot_comparison,
    plot_history,
    plot_metric,
    show_samples,
)

pytestmark = pytest.mark.backends  # also run on JAX without TensorFlow (.ci/run)


SHARED_HISTORY = REPO.parent / "shared" / "article" / "article-history.json"


def test_article_history_has_20_epochs_with_keras3_names():
    article = load_article_history()
    assert article["epoch"] == list(range(1, 21))
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "seconds"):
        assert len(article[key]) == 20
    assert article["accuracy"][-1] == pytest.approx(0.9689)
    assert article["val_accuracy"][-1] == pytest.approx(0.835)


def test_embedded_numbers_equal_the_shared_record():
    if not SHARED_HISTORY.exists():
        pytest.skip(f"{SHARED_HISTORY} not found (only development machines and CI have ../shared/)")
    shared, article = json.loads(SHARED_HISTORY.read_text()), load_article_history()
    assert article["accuracy"] == shared["acc"] and article["val_accuracy"] == shared["val_acc"]
    assert article["loss"] == shared["loss"] and article["val_loss"] == shared["val_loss"]
    assert article["seconds"] == shared["epoch_seconds"]


def test_the_shipped_full_run_is_the_articles_recipe_for_20_epochs():
    """bench/article_run.py --ship wrote it from the run folder of the README's full run."""
    run = load_full_run_history()
    assert run["params"] == {"subset": None, "seed": 0, "epochs": 20, "batch_size": 64, "validation": "test"}
    assert run["epoch"] == list(range(1, 21)) and run["test_pictures"] == 10_000
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "seconds"):
        assert len(run[key]) == 20
    assert all(0 <= value <= 1 for key in ("accuracy", "val_accuracy") for value in run[key])
    assert run["accuracy"][-1] > run["accuracy"][0] and max(run["val_accuracy"]) > 0.5  # it learnt
    figure = plot_comparison({"full run": run, "article": load_article_history()}, "accuracy")
    assert len(figure.axes[0].lines) == 4


def test_two_figures_blue_training_red_test_with_reference(tmp_path):
    history = {
        "epoch": [1, 2, 3],
        "accuracy": [0.2, 0.4, 0.6],
        "val_accuracy": [0.2, 0.3, 0.35],
        "loss": [2.0, 1.5, 1.0],
        "val_loss": [2.1, 1.8, 1.9],
    }
    figures = plot_history(history, with_article=True, out_dir=tmp_path)
    assert set(figures) == {"accuracy", "loss"}
    for metric, fig in figures.items():
        lines = fig.axes[0].get_lines()
        assert [line.get_label() for line in lines] == [
            "training",
            "test",
            "article: training",
            "article: test",
        ]
        assert lines[0].get_color() == "b" and lines[1].get_color() == "r"
        assert list(lines[1].get_ydata()) == history[f"val_{metric}"]
        assert len(lines[2].get_xdata()) == 20
        png = tmp_path / f"{metric}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_metric_is_named():
    with pytest.raises(ValueError, match="metric must be one of"):
        add_article_curves("precision")
    with pytest.raises(KeyError, match="val_precision"):
        plot_metric({"precision": [1]}, "precision")


def test_sample_grid_titles_are_class_names():
    x = np.zeros((20, 32, 32, 3), "uint8")
    y = np.repeat([0, 1], 10)
    fig = show_samples(x, y, ("cat", "dog"), per_class=2, title="SYNTHETIC")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles.count("cat") == 2 and titles.count("dog") == 2
    assert fig._suptitle.get_text() == "SYNTHETIC"


def test_red_line_names_what_the_run_validated_on():
    history = {
        "epoch": [1, 2],
        "accuracy": [0.3, 0.5],
        "val_accuracy": [0.2, 0.4],
        "loss": [2.0, 1.5],
        "val_loss": [2.1, 1.7],
    }
    labels = [line.get_label() for line in plot_metric(history, "accuracy").axes[0].lines]
    assert labels == ["training", "test"]  # the article's way
    held_out = plot_history(history, with_article=False, validation="holdout")["loss"].axes[0].lines
    assert [line.get_label() for line in held_out] == ["training", "validation (held out)"]


def test_a_run_folders_history_reads_as_fit_returns_it(tmp_path):
    """04 plots history.history[...] whether history came from model.fit or from a run folder."""
    from vggcifar import runs

    saved = {"epoch": [1, 2], "loss": [2.0, 1.5], "accuracy": [0.2, 0.4], "val_loss": [2.1, 1.9]}
    (tmp_path / runs.HISTORY).write_text(json.dumps({**saved, "val_accuracy": [0.1, 0.3]}))
    history = runs.load_fit_history(tmp_path)
    assert history.epoch == [0, 1]  # as Keras counts them
    assert history.history == {**{k: v for k, v in saved.items() if k != "epoch"}, "val_accuracy": [0.1, 0.3]}
    assert "2 epochs" in repr(history)
