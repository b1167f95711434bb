import keras
import numpy as np
import pytest

from vggcifar.data import make_synthetic
from vggcifar.model import build_vgg16
from vggcifar.saving import (FILES, load_saved_model, prediction_differences,
                             reload_model_files, save_model_files)
from vggcifar.training import compile_like_article, pixels_to_float


@pytest.fixture(scope="module")
def trained_model():
    """The article's model after a few steps, so weights, BatchNorm statistics and Adam state are not initial."""
    keras.utils.set_random_seed(1)
    dataset = make_synthetic(per_class=6, test_per_class=2, seed=1)
    model = compile_like_article(build_vgg16())
    model.fit(pixels_to_float(dataset.x_train), keras.utils.to_categorical(dataset.y_train, 10),
              batch_size=20, epochs=1, verbose=0)
    return model, pixels_to_float(dataset.x_test)


def test_three_files_reload_to_the_same_predictions(trained_model, tmp_path):
    model, pictures = trained_model
    paths = save_model_files(model, tmp_path)
    assert {kind: path.name for kind, path in paths.items()} == FILES
    assert all(path.stat().st_size > 100e6 for path in paths.values())  # 33.6M float32 weights
    assert not list(tmp_path.glob("tmp-*"))  # no temporary files left behind
    reloaded = reload_model_files(paths, model)
    differences = prediction_differences(model, reloaded, pictures)
    assert set(differences) == {"keras", "weights", "legacy_h5"}
    assert max(differences.values()) < 1e-6
    # and the reloaded models are real copies, not the same object
    assert all(other is not model for other in reloaded.values())


def test_keras_file_keeps_the_optimizer_state(trained_model, tmp_path):
    model, _ = trained_model
    paths = save_model_files(model, tmp_path)
    again = load_saved_model(paths["keras"])
    assert int(again.optimizer.iterations) == int(model.optimizer.iterations) > 0


def test_weights_do_not_load_into_a_model_of_other_shapes(trained_model, tmp_path):
    model, _ = trained_model
    paths = save_model_files(model, tmp_path)
    with pytest.raises(ValueError):
        build_vgg16(num_classes=5).load_weights(paths["weights"])


def test_saving_again_replaces_files_whole(trained_model, tmp_path):
    model, pictures = trained_model
    save_model_files(model, tmp_path)
    paths = save_model_files(model, tmp_path)  # a second save over the first
    differences = prediction_differences(model, reload_model_files(paths, model), pictures)
    assert max(differences.values()) < 1e-6


def test_missing_model_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.keras"):
        load_saved_model(tmp_path / "nothing.keras")
