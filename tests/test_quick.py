"""The quick recipe's settings; small training crops, and training in two parts.

How accurate and how fast it is, is measured by ``bench/recipes.py`` (figures in
bench/README.md); these tests check that its settings are valid, that it builds the
article's model, and that it trains, resumes and finishes like any other run.
"""

import json

import keras
import numpy as np
import pytest

from vggcifar import runs
from vggcifar.improvements import augment_batch, make_augmenter, model_options
from vggcifar.model import ARTICLE_PARAMS, build_vgg16, count_params
from vggcifar.settings import (
    ARTICLE_RECIPE,
    BUDGETS,
    IMPROVED_RECIPE,
    QUICK_BUDGET,
    QUICK_RECIPE,
    RECIPES,
    ParameterError,
    check_params,
    check_recipe,
    recipe_of,
    run_params,
    small_crop_epochs,
)
from vggcifar.training import run_training

pytestmark = pytest.mark.backends  # also run on JAX without TensorFlow (.ci/run)


def test_quick_recipe_is_valid_and_trains_the_articles_model():
    assert set(RECIPES) == {"article", "improved", "quick"}
    assert check_recipe(QUICK_RECIPE) == QUICK_RECIPE and set(QUICK_RECIPE) == set(ARTICLE_RECIPE)
    assert BUDGETS["quick"] == QUICK_BUDGET
    model = build_vgg16(**model_options(QUICK_RECIPE))
    assert count_params(model) == ARTICLE_PARAMS
    assert model.input_shape == (None, 32, 32, 3)


def test_a_named_recipe_brings_its_settings_and_budget_and_none_keeps_them():
    quick = run_params("quick")
    assert recipe_of(quick) == QUICK_RECIPE and "recipe" not in quick
    assert (quick["epochs"], quick["batch_size"]) == (QUICK_BUDGET["epochs"], QUICK_BUDGET["batch_size"])
    changed = run_params("quick", epochs=None, dropout=None, learning_rate=0.1, subset=None)
    assert changed["epochs"] == QUICK_BUDGET["epochs"] and changed["dropout"] == QUICK_RECIPE["dropout"]
    assert changed["learning_rate"] == 0.1 and changed["subset"] is None
    improved = run_params("improved", batch_size=None)
    assert recipe_of(improved) == IMPROVED_RECIPE and (improved["epochs"], improved["batch_size"]) == (20, 64)
    with pytest.raises(
        ParameterError,
        match=r"recipe must be one of \('article', 'improved', 'quick'\), "
        r"got 'fast'",
    ):
        run_params("fast")
    assert run_params(epochs=None)["epochs"] == 20  # None is "not given": the article's value
    with pytest.raises(ParameterError, match="epochs must be a whole number"):
        check_params(epochs=None)  # a notebook's parameters cell saying None is refused there


@pytest.mark.parametrize(
    "setting, message",
    [
        ({"small_crops": 4}, r"small_crops must be 0 \(off\) or the side in pixels .* >= 8; got 4"),
        ({"small_crops": 24.0}, "small_crops must be 0"),
        ({"small_crops": True}, "small_crops must be 0"),
        ({"small_crops_share": 1.5}, r"small_crops_share must be a number in \[0.0, 1.0\], got 1.5"),
    ],
)
def test_bad_small_crops_settings_are_named(setting, message):
    with pytest.raises(ParameterError, match=message):
        check_recipe(setting)


def test_small_crops_larger_than_the_pictures_stop_before_training(tmp_path, monkeypatch):
    monkeypatch.setattr("vggcifar.training.build_vgg16", lambda *a, **k: pytest.fail("built"))
    with pytest.raises(
        ParameterError,
        match=r"small_crops must be smaller than the pictures \(32x32\), "
        r"got 32",
    ):
        run_training(
            recipe="quick",
            small_crops=32,
            small_crops_share=0.5,
            data="synthetic",
            subset=2,
            batch_size=4,
            run_dir=str(tmp_path / "r"),
        )


def test_small_crops_are_random_windows_of_the_pictures():
    pictures = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype="uint8")
    crops = augment_batch(pictures, [1, 2], flip=False, crop_padding=0, size=24)
    assert crops.shape == (8, 24, 24, 3) and crops.dtype == np.uint8
    corners = []
    for picture, crop in zip(pictures, crops):
        found = [
            (r, c)
            for r in range(9)
            for c in range(9)
            if np.array_equal(picture[r : r + 24, c : c + 24], crop)
        ]
        assert len(found) == 1
        corners += found
    assert len(set(corners)) > 1  # each picture gets its own window
    assert make_augmenter(ARTICLE_RECIPE) is None and make_augmenter(ARTICLE_RECIPE, 24) is not None


SMALL_CROPS = {**QUICK_RECIPE, "small_crops": 24, "small_crops_share": 0.75}


def test_the_last_epoch_always_sees_whole_pictures():
    def parts(recipe, epochs):
        return small_crop_epochs(recipe["small_crops"], recipe["small_crops_share"], epochs)

    assert parts(SMALL_CROPS, 5) == 3 and parts(SMALL_CROPS, 4) == 3
    assert parts(SMALL_CROPS, 1) == 0
    assert parts({**SMALL_CROPS, "small_crops_share": 1.0}, 3) == 2
    assert parts(QUICK_RECIPE, 5) == parts(IMPROVED_RECIPE, 5) == 0


def test_runs_recorded_before_the_small_crops_settings_still_resume():
    new = run_params("improved")
    old = {k: v for k, v in new.items() if k not in ("small_crops", "small_crops_share")}
    assert runs._differences(old, new) == {}
    assert runs._differences({**old, "dropout": 0.0}, new) == {"dropout": (0.0, 0.5)}


def test_small_crops_train_first_then_whole_pictures_and_resume_between(
    tmp_path, monkeypatch, capsys, narrow_vgg
):
    run_dir = tmp_path / "quick"
    params = {
        "recipe": "quick",
        "small_crops": 24,
        "small_crops_share": 0.75,
        "data": "synthetic",
        "subset": 8,
        "epochs": 3,
        "batch_size": 16,
        "run_dir": str(run_dir),
    }
    sizes, original = [], make_augmenter
    monkeypatch.setattr(
        "vggcifar.training.make_augmenter",
        lambda recipe, size=None: (sizes.append(size), original(recipe, size))[1],
    )

    class StopAfterSecondEpoch(keras.callbacks.Callback):  # stands in for SpeedUps: a cut-off
        def __init__(self, speedups):
            super().__init__()

        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr("vggcifar.training.SpeedUps", StopAfterSecondEpoch)
        with pytest.raises(KeyboardInterrupt):
            run_training(**params)
    assert sizes == [24] and not runs.is_finished(run_dir)
    assert runs.load_history(run_dir)["epoch"] == [1, 2]  # both epochs on crops, committed
    capsys.readouterr()

    model, _, history = run_training(**params)
    assert "resuming after epoch 2" in capsys.readouterr().out
    assert sizes == [24, None]  # the small-crop part was done: only whole pictures now
    assert history["epoch"] == [1, 2, 3] and runs.is_finished(run_dir)
    assert model.input_shape == (None, 32, 32, 3)
    recorded = json.loads((run_dir / runs.PARAMS).read_text())
    assert recipe_of(recorded) == {**QUICK_RECIPE, "small_crops": 24, "small_crops_share": 0.75}
    assert recorded["epochs"] == 3
    assert runs.load_metrics(run_dir)["val_accuracy"] == history["val_accuracy"][-1]
