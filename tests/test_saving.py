import h5py
import keras
import numpy as np
import pytest

from vggcifar import runs
from vggcifar.data import make_synthetic
from vggcifar.environment import precision_policy
from vggcifar.model import ARTICLE_PARAMS, build_vgg16
from vggcifar.saving import (
    FILES,
    load_saved_model,
    prediction_differences,
    reload_model_files,
    save_article_files,
    without_optimizer,
)
from vggcifar.speed import SpeedUps
from vggcifar.training import compile_like_article, pixels_to_float

pytestmark = pytest.mark.backends  # also run on JAX without TensorFlow (.ci/run)


#: The article's kind of network, a few KB: the tests that are not about the article's sizes.
TINY = {"blocks": ((1, 8),) * 5, "fc_units": 16}


def build_tiny():
    return build_vgg16(**TINY)


@pytest.fixture(scope="module")
def trained_model():
    """A small VGG after a few steps (with the CPU speed-ups), so weights, BatchNorm
    statistics and Adam's state are not initial."""
    keras.utils.set_random_seed(1)
    dataset = make_synthetic(per_class=6, test_per_class=2, seed=1)
    model = compile_like_article(build_tiny())
    model.fit(
        pixels_to_float(dataset.x_train),
        keras.utils.to_categorical(dataset.y_train, 10),
        batch_size=20,
        epochs=1,
        callbacks=[SpeedUps(True)],
        verbose=0,
    )
    return model, pixels_to_float(dataset.x_test)


def test_three_files_reload_to_the_same_predictions(trained_model, tmp_path):
    model, pictures = trained_model
    paths = save_article_files(model, tmp_path)
    assert {kind: path.name for kind, path in paths.items()} == FILES
    assert not list(tmp_path.glob("tmp-*"))  # no temporary files left behind
    reloaded = reload_model_files(paths, build_tiny)
    differences = prediction_differences(model, reloaded, pictures)
    assert set(differences) == {"keras", "weights", "legacy_h5"}
    assert max(differences.values()) < 1e-6
    assert all(other is not model for other in reloaded.values())


def test_only_the_keras_file_keeps_the_optimizer_and_its_state(trained_model, tmp_path):
    model, _ = trained_model
    save_article_files(model, tmp_path / "first")
    paths = save_article_files(model, tmp_path / "second")  # .keras after an .h5 save
    again = load_saved_model(paths["keras"])
    assert isinstance(again.optimizer, keras.optimizers.Adam)
    assert int(again.optimizer.iterations) == int(model.optimizer.iterations) > 0
    for kept, original in zip(again.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(kept, original)  # Adam's moments, to continue training
    assert not load_saved_model(paths["legacy_h5"]).compiled  # layers and weights only
    with h5py.File(paths["weights"]) as weights:
        assert "optimizer" not in weights and "layers" in weights
    assert model.compiled and model.optimizer.built  # saving changed nothing in the model


def test_the_twin_without_optimizer_has_the_same_weights_and_precision(trained_model):
    model, pictures = trained_model
    twin = without_optimizer(model)
    assert not twin.compiled and twin is not model
    assert [(w.name, w.shape) for w in twin.weights] == [(w.name, w.shape) for w in model.weights]
    assert [layer.dtype_policy for layer in twin.layers] == [layer.dtype_policy for layer in model.layers]
    for copied, original in zip(twin.weights, model.weights):
        np.testing.assert_array_equal(copied, original)
    # the speed-ups' fused kernels (in model, not in the twin) round differently: 1e-6
    np.testing.assert_allclose(
        twin.predict(pictures, verbose=0), model.predict(pictures, verbose=0), atol=1e-6
    )


def test_weights_do_not_load_into_a_model_of_other_shapes(trained_model, tmp_path):
    model, _ = trained_model
    paths = save_article_files(model, tmp_path)
    with pytest.raises(ValueError):
        build_vgg16(num_classes=5, **TINY).load_weights(paths["weights"])


def test_a_failed_save_leaves_the_earlier_file_whole(trained_model, tmp_path, monkeypatch):
    model, pictures = trained_model
    paths = save_article_files(model, tmp_path)
    before = paths["keras"].read_bytes()

    def broken_save(path, *args, **kwargs):
        with open(path, "wb") as half:
            half.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(model, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_article_files(model, tmp_path)
    assert paths["keras"].read_bytes() == before and not list(tmp_path.glob("tmp-*"))


def test_mixed_precision_model_reloads_to_the_same_predictions(tmp_path):
    keras.utils.set_random_seed(2)
    with precision_policy("mixed_bfloat16"):
        model = compile_like_article(build_tiny())
    pictures = np.random.default_rng(0).random((4, 32, 32, 3), dtype="float32")
    paths = save_article_files(model, tmp_path)

    def build():
        with precision_policy(model.layers[0].dtype_policy.name):
            return build_tiny()

    differences = prediction_differences(model, reload_model_files(paths, build), pictures)
    assert max(differences.values()) < 1e-6


def test_missing_model_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.keras"):
        load_saved_model(tmp_path / "nothing.keras")


def file_sizes(folder):
    return {path.name: path.stat().st_size for path in sorted(folder.iterdir()) if path.is_file()}


@pytest.mark.slow  # writes and reloads 800 MB of the article's files
def test_article_size_files_weigh_what_they_hold(tmp_path):
    """The article's model with Adam's state built, as after training: the weights file is
    4 bytes x 33.6 M parameters (135 MB); only cifar10-CNN.keras holds 3x that (Adam's two
    moments per weight); a finished run with the article's three files stays under 1 GB."""
    keras.utils.set_random_seed(3)
    model = compile_like_article(build_vgg16())
    model.optimizer.build(model.trainable_variables)
    run_dir = tmp_path / "run"
    history = {"epoch": [1], "loss": [2.3], "accuracy": [0.1], "seconds": [1.0]}
    runs.finish_run(run_dir, model, history, {})
    paths = save_article_files(model, run_dir)
    sizes = file_sizes(run_dir)
    weights = 4 * ARTICLE_PARAMS["total"]  # 134.6 MB
    with_adam = weights + 2 * 4 * ARTICLE_PARAMS["trainable"]  # 403.8 MB
    for name in (runs.MODEL, FILES["weights"], FILES["legacy_h5"]):
        assert sizes[name] == pytest.approx(weights, rel=0.03), name
    assert sizes[FILES["keras"]] == pytest.approx(with_adam, rel=0.03)
    big = (runs.MODEL, *FILES.values())
    assert sum(sizes[name] for name in big) <= 1e9, sizes
    assert not list(run_dir.rglob("tmp-*"))
    pictures = np.random.default_rng(0).random((4, 32, 32, 3), dtype="float32")
    reloaded = {**reload_model_files(paths, build_vgg16), "run": load_saved_model(run_dir / runs.MODEL)}
    assert max(prediction_differences(model, reloaded, pictures).values()) < 1e-6


def test_working_folder_saves_plain_names_into_the_run_folder_and_comes_back(tmp_path):
    """05 saves with the article's plain file names inside ``with working_folder(run_dir)``."""
    import os

    from vggcifar.files import working_folder

    before = os.getcwd()
    with working_folder(tmp_path / "run") as folder:
        assert os.getcwd() == str((tmp_path / "run").resolve()) and folder == tmp_path / "run"
        with open("cifar10-CNN.weights.h5", "w") as file:
            file.write("x")
    assert os.getcwd() == before and (tmp_path / "run" / "cifar10-CNN.weights.h5").is_file()
    with pytest.raises(RuntimeError, match="cut off"), working_folder(tmp_path / "run"):
        raise RuntimeError("cut off")
    assert os.getcwd() == before
