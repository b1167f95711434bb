import keras
import numpy as np
import pytest

from vggcifar.data import make_synthetic
from vggcifar.environment import precision_policy
from vggcifar.model import build_vgg16
from vggcifar.saving import (
    FILES,
    load_saved_model,
    prediction_differences,
    reload_model_files,
    save_article_files,
)
from vggcifar.speed import SpeedUps
from vggcifar.training import compile_like_article, pixels_to_float


@pytest.fixture(scope="module")
def trained_model():
    """The article's model after a few steps (with the CPU speed-ups), so weights, BatchNorm
    statistics and Adam's state are not initial."""
    keras.utils.set_random_seed(1)
    dataset = make_synthetic(per_class=6, test_per_class=2, seed=1)
    model = compile_like_article(build_vgg16())
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
    assert all(path.stat().st_size > 100e6 for path in paths.values())  # 33.6M float32 weights
    assert not list(tmp_path.glob("tmp-*"))  # no temporary files left behind
    reloaded = reload_model_files(paths, build_vgg16)
    differences = prediction_differences(model, reloaded, pictures)
    assert set(differences) == {"keras", "weights", "legacy_h5"}
    assert max(differences.values()) < 1e-6
    assert all(other is not model for other in reloaded.values())


def test_files_keep_the_optimizer_and_its_state_even_after_the_legacy_save(trained_model, tmp_path):
    model, _ = trained_model
    save_article_files(model, tmp_path / "first")
    paths = save_article_files(model, tmp_path / "second")  # .keras after an .h5 save
    for kind in ("keras", "legacy_h5"):
        again = load_saved_model(paths[kind])
        assert type(again.optimizer) is keras.optimizers.Adam, kind
    assert int(load_saved_model(paths["keras"]).optimizer.iterations) == int(model.optimizer.iterations) > 0


def test_weights_do_not_load_into_a_model_of_other_shapes(trained_model, tmp_path):
    model, _ = trained_model
    paths = save_article_files(model, tmp_path)
    with pytest.raises(ValueError):
        build_vgg16(num_classes=5).load_weights(paths["weights"])


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
        model = compile_like_article(build_vgg16(fc_units=32))
    pictures = np.random.default_rng(0).random((4, 32, 32, 3), dtype="float32")
    paths = save_article_files(model, tmp_path)

    def build():
        with precision_policy(model.layers[0].dtype_policy.name):
            return build_vgg16(fc_units=32)

    differences = prediction_differences(model, reload_model_files(paths, build), pictures)
    assert max(differences.values()) < 1e-6


def test_missing_model_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.keras"):
        load_saved_model(tmp_path / "nothing.keras")
