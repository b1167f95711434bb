import csv
import json

import keras
import numpy as np
import pytest

from vggcifar import runs
from vggcifar.data import DataError, make_synthetic
from vggcifar.model import build_vgg16
from vggcifar.optimizers import FusedAdam, FusedSGD
from vggcifar.training import (check_params, compile_like_article, pixels_to_float, run_training,
                               train)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """Two epochs of the article's model on 200 synthetic pictures."""
    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    keras.utils.set_random_seed(0)
    dataset = make_synthetic(per_class=20, test_per_class=5, seed=0)
    model = build_vgg16()
    history = train(model, dataset, epochs=2, batch_size=32, run_dir=run_dir,
                    params={"data": "synthetic", "subset": 20})
    return run_dir, model, dataset, history


def test_pixels_to_float():
    x = np.array([[0, 255, 51]], dtype="uint8")
    scaled = pixels_to_float(x)
    assert scaled.dtype == np.float32 and scaled.tolist() == [[0.0, 1.0, np.float32(0.2)]]


def test_train_compiles_like_the_article(tiny_run):
    _, model, _, _ = tiny_run
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.001)
    assert model.loss == "categorical_crossentropy"


def test_history_has_one_row_per_epoch_in_json_and_csv(tiny_run):
    run_dir, _, _, history = tiny_run
    saved = json.loads((run_dir / runs.HISTORY).read_text())
    assert saved == history
    assert saved["epoch"] == [1, 2]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "seconds"):
        assert len(saved[key]) == 2
    rows = list(csv.DictReader((run_dir / runs.HISTORY_CSV).open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert float(rows[1]["val_accuracy"]) == pytest.approx(saved["val_accuracy"][1])


def test_run_folder_records_params_metrics_and_model(tiny_run):
    run_dir, model, dataset, history = tiny_run
    params = runs.load_params(run_dir)
    assert params == {"epochs": 2, "batch_size": 32, "validation": "test", "data": "synthetic",
                      "subset": 20}
    environment = runs.read_json(run_dir / runs.ENVIRONMENT)
    assert set(environment) >= {"python", "tensorflow", "keras", "numpy", "device", "precision",
                                "strategy", "replicas"}
    assert environment["precision"] == "float32" and environment["replicas"] == 1
    assert not (run_dir / runs.BACKUP).exists()  # a finished run needs no backup
    metrics = json.loads((run_dir / runs.METRICS).read_text())
    assert metrics["epochs"] == 2 and metrics["val_accuracy"] == history["val_accuracy"][-1]
    assert metrics["test_accuracy"] == metrics["val_accuracy"]  # the article validates on test
    assert metrics["environment"]["keras"] == keras.__version__
    assert runs.is_finished(run_dir)
    reloaded = keras.models.load_model(run_dir / runs.MODEL)
    x = pixels_to_float(dataset.x_test[:8])
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_history_is_written_after_every_epoch(tmp_path):
    seen = []

    class Peek(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            path = tmp_path / "run" / runs.HISTORY
            seen.append(json.loads(path.read_text())["epoch"] if path.exists() else None)

    dataset = make_synthetic(per_class=3, test_per_class=1)
    model = build_vgg16()
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    original_fit = model.fit
    model.fit = lambda *a, **k: original_fit(*a, **{**k, "callbacks": k["callbacks"] + [Peek()]})
    train(model, dataset, epochs=3, batch_size=16, run_dir=tmp_path / "run")
    assert seen == [None, [1], [1, 2]]


def test_a_finished_run_is_not_overwritten(tiny_run):
    run_dir, _, dataset, _ = tiny_run
    before = (run_dir / runs.HISTORY).read_text()
    with pytest.raises(runs.RunFolderError, match="already holds a run with other parameters.*epochs.*overwrite=True"):
        train(build_vgg16(), dataset, epochs=1, batch_size=32, run_dir=run_dir)
    assert (run_dir / runs.HISTORY).read_text() == before


@pytest.mark.parametrize("kwargs, message", [
    ({"epochs": 0}, "epochs must be a whole number >= 1"),
    ({"epochs": 2.5}, "epochs must be"),
    ({"batch_size": 0}, "batch_size must be a whole number >= 1"),
    ({"batch_size": -64}, "batch_size must be"),
    ({"seed": -1}, "seed must be"),
    ({"data": "mnist"}, "unknown source 'mnist'"),
    ({"subset": 0}, "subset must be"),
])
def test_bad_parameters_fail_before_any_work(tmp_path, kwargs, message):
    run_dir = tmp_path / "never"
    params = dict(epochs=1, batch_size=8, data="synthetic", subset=2, seed=0, run_dir=str(run_dir))
    with pytest.raises((ValueError, DataError), match=message):
        run_training(**{**params, **kwargs})
    assert not run_dir.exists()  # nothing was started
    with pytest.raises((ValueError, DataError), match=message):
        check_params(**{**params, **kwargs})


def test_subset_larger_than_the_data_fails_before_training(tmp_path, monkeypatch):
    from conftest import write_image_folder
    root = write_image_folder(tmp_path / "pics", {"train": {"a": 3, "b": 3}})
    monkeypatch.setattr("vggcifar.training.build_vgg16", lambda *a, **k: pytest.fail("built"))
    with pytest.raises(DataError, match="subset=9 is larger than the data"):
        run_training(epochs=1, batch_size=4, data=str(root), subset=9, run_dir=str(tmp_path / "r"))
    assert not (tmp_path / "r").exists()


def test_ensure_finished_run_trains_only_when_missing(tmp_path, capsys):
    params = dict(epochs=1, batch_size=16, data="synthetic", subset=3, seed=0,
                  run_dir=str(tmp_path / "made"))
    assert runs.ensure_finished_run("04_plots", **params) is True
    assert "No finished run" in capsys.readouterr().out
    assert runs.load_history(params["run_dir"])["epoch"] == [1]
    assert runs.ensure_finished_run("04_plots", **params) is False
    assert "Using the finished run" in capsys.readouterr().out


def test_missing_history_names_the_notebook_that_makes_it(tmp_path):
    with pytest.raises(runs.RunFolderError, match="03_training.ipynb writes it"):
        runs.load_history(tmp_path)


@pytest.mark.parametrize("fused, plain", [
    (lambda: FusedAdam(learning_rate=0.01), lambda: keras.optimizers.Adam(learning_rate=0.01)),
    (lambda: FusedSGD(0.05, momentum=0.9, nesterov=True),
     lambda: keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True)),
    (lambda: FusedSGD(0.05, momentum=0.8), lambda: keras.optimizers.SGD(0.05, momentum=0.8)),
])
def test_fused_optimizers_update_exactly_like_keras(fused, plain):
    """The fused kernels compute Keras' updates: same weights after several steps."""
    import tensorflow as tf

    results = []
    for make in (fused, plain):
        weights = [keras.Variable(np.linspace(-1, 1, 12, dtype="float32").reshape(3, 4)),
                   keras.Variable(np.arange(5, dtype="float32"))]
        optimizer = make()
        for step in range(4):
            gradients = [tf.constant(np.sin(np.arange(12) + step).reshape(3, 4), tf.float32),
                         tf.constant(np.cos(np.arange(5) * step), tf.float32)]
            optimizer.apply(gradients, weights)
        results.append([w.numpy() for w in weights])
    for mine, theirs in zip(*results):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)  # float rounding only
    assert not np.allclose(results[0][0], np.linspace(-1, 1, 12).reshape(3, 4))  # it did move


def test_article_compile_uses_the_fused_adam_and_saves_as_such(tmp_path):
    model = compile_like_article(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))
    assert isinstance(model.optimizer, FusedAdam) and isinstance(model.optimizer, keras.optimizers.Adam)
    model.fit(np.ones((4, 3)), np.eye(2)[[0, 1, 0, 1]], verbose=0)
    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(reloaded.optimizer, FusedAdam) and int(reloaded.optimizer.iterations) == 1
    for mine, theirs in zip(reloaded.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(mine), np.asarray(theirs))
