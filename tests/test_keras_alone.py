"""Every file the notebooks save loads with Keras alone, where vggcifar cannot even be imported."""

import keras
import numpy as np
import pytest

from conftest import load_with_keras_alone
from vggcifar import runs
from vggcifar.data import make_synthetic
from vggcifar.improvements import compile_recipe, make_augmenter, model_options
from vggcifar.model import build_vgg16
from vggcifar.runs import RunFolder
from vggcifar.saving import save_article_files
from vggcifar.settings import IMPROVED_RECIPE
from vggcifar.speed import SpeedUps, speedups_applied
from vggcifar.training import make_pipeline, pixels_to_float

pytestmark = pytest.mark.backends  # also run on JAX without TensorFlow (.ci/run)


def test_saved_files_load_with_keras_alone_and_predict_the_same(tmp_path):
    """Trained as notebook 06 trains, without the CPU speed-ups, saved as the run folder and
    notebook 05 save: each file loads in a fresh process without vggcifar and predicts
    exactly what the trained model predicts. (With the speed-ups on, as on this CPU, the
    runs of notebooks 03 and 06 are loaded with Keras alone in test_notebooks.py.)"""
    keras.utils.set_random_seed(0)
    dataset = make_synthetic(per_class=3, test_per_class=1, seed=0)
    model = compile_recipe(
        build_vgg16(blocks=((1, 8),) * 5, fc_units=16, **model_options(IMPROVED_RECIPE)),
        IMPROVED_RECIPE,
        epochs=2,
        steps_per_epoch=3,
    )
    pipeline = make_pipeline(
        dataset.x_train, dataset.y_train, 10, 10, shuffle=True, augment=make_augmenter(IMPROVED_RECIPE)
    )
    run = RunFolder(tmp_path / "run", {"epochs": 2})
    model.fit(
        pipeline,
        shuffle=False,
        epochs=2,
        initial_epoch=run.resume(model),
        callbacks=[run, SpeedUps(False)],
        verbose=0,
    )
    assert speedups_applied(model) is False
    files = save_article_files(model, tmp_path / "run")
    paths = {
        "model_keras": tmp_path / "run" / runs.MODEL,
        "article_keras": files["keras"],
        "article_weights": files["weights"],
        "article_h5": files["legacy_h5"],
    }
    pictures = pixels_to_float(dataset.x_test)
    expected = model.predict(pictures, verbose=0)

    alone = load_with_keras_alone(paths, pictures, tmp_path)
    assert alone["article_keras_optimizer"] == "SGD"  # the .keras file, saved after fit, can go on training
    assert alone["model_keras_optimizer"] is None and alone["article_h5_optimizer"] is None  # weights only
    for name in paths:  # every file gives back exactly the model that was trained
        np.testing.assert_array_equal(np.asarray(alone[name]), expected, err_msg=name)
