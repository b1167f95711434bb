"""Training as notebook 03 does it: compile like the article, the run folder as a callback, model.fit."""

import csv
import json
import os

import keras
import numpy as np
import pytest

from conftest import NARROW, TRAINED_RUN_PARAMS, write_image_folder
from vggcifar import backends, runs
from vggcifar.data import DataError, make_synthetic
from vggcifar.model import build_vgg16
from vggcifar.runs import RunFolder
from vggcifar.settings import ParameterError, check_params, run_params
from vggcifar.training import (
    compile_like_article,
    ensure_finished_run,
    pixels_to_float,
    run_training,
    training_time_note,
)

pytestmark = pytest.mark.backends  # also run on JAX without TensorFlow (.ci/run)


def arrays(dataset):
    """The article's preparation: float32 pixels / 255, one-hot labels."""
    return (
        pixels_to_float(dataset.x_train),
        keras.utils.to_categorical(dataset.y_train, 10),
        pixels_to_float(dataset.x_test),
        keras.utils.to_categorical(dataset.y_test, 10),
    )


def fit_like_notebook_03(model, dataset, run_dir, params=TRAINED_RUN_PARAMS, epochs=2, batch_size=32, **fit):
    """The cells of notebook 03, from the run folder to model.fit."""
    x_train, y_train, x_test, y_test = arrays(dataset)
    run = RunFolder(run_dir, params)
    initial_epoch = run.resume(model)
    history = model.fit(
        x_train,
        y_train,
        batch_size=batch_size,
        epochs=epochs,
        validation_data=(x_test, y_test),
        initial_epoch=initial_epoch,
        callbacks=[run, *fit.pop("callbacks", [])],
        verbose=0,
        **fit,
    )
    return run, history


def test_pixels_to_float():
    x = np.array([[0, 255, 51]], dtype="uint8")
    scaled = pixels_to_float(x)
    assert scaled.dtype == np.float32 and scaled.tolist() == [[0.0, 1.0, np.float32(0.2)]]


def test_compile_like_the_article():
    model = compile_like_article(build_vgg16(**NARROW))
    assert isinstance(model.optimizer, keras.optimizers.Adam)  # on PyTorch, its subclass
    assert float(model.optimizer.learning_rate) == pytest.approx(0.001)
    assert model.loss == "categorical_crossentropy"


def test_fit_returns_the_history_of_every_epoch(trained_run):
    _, _, _, run, history = trained_run
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(values) == 2 for values in history.history.values())
    assert history.history["val_accuracy"] == run.history["val_accuracy"]


def test_history_has_one_row_per_epoch_in_json_and_csv(trained_run):
    run_dir, _, _, run, _ = trained_run
    saved = json.loads((run_dir / runs.HISTORY).read_text())
    assert saved == run.history
    assert saved["epoch"] == [1, 2]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "seconds"):
        assert len(saved[key]) == 2
    rows = list(csv.DictReader((run_dir / runs.HISTORY_CSV).open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert float(rows[1]["val_accuracy"]) == pytest.approx(saved["val_accuracy"][1])


def test_run_folder_records_params_setup_metrics_and_model(trained_run):
    run_dir, model, dataset, run, _ = trained_run
    params = runs.load_params(run_dir)
    assert {k: params[k] for k in TRAINED_RUN_PARAMS} == TRAINED_RUN_PARAMS
    assert params["setup"]["optimizer"]["class"] == "Adam"
    assert params["setup"]["model"]["parameters"] == model.count_params()
    assert params["setup"]["loss"] == "categorical_crossentropy"
    environment = runs.read_json(run_dir / runs.ENVIRONMENT)
    assert set(environment) >= {
        "python",
        "backend",
        backends.backend(),  # the framework's version, e.g. "tensorflow": "2.21.0"
        "keras",
        "numpy",
        "device",
        "precision",
        "strategy",
        "replicas",
    }
    assert environment["precision"] == "float32" and environment["replicas"] == 1
    assert not (run_dir / runs.BACKUP).exists()  # a finished run needs no backup
    metrics = json.loads((run_dir / runs.METRICS).read_text())
    assert metrics["epochs"] == 2 and metrics["val_accuracy"] == run.history["val_accuracy"][-1]
    assert metrics["test_accuracy"] == metrics["val_accuracy"]  # the article validates on test
    assert metrics["environment"]["keras"] == keras.__version__
    assert metrics["environment"]["speedups"] is False
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
    model = compile_like_article(build_vgg16(**NARROW))
    fit_like_notebook_03(
        model, dataset, tmp_path / "run", params={}, epochs=3, batch_size=16, callbacks=[Peek()]
    )
    assert seen == [None, [1], [1, 2]]


def test_a_finished_run_is_loaded_not_trained_again(trained_run, capsys):
    run_dir, model, dataset, _, _ = trained_run
    again = compile_like_article(build_vgg16(**NARROW))
    run, history = fit_like_notebook_03(again, dataset, run_dir)
    assert "already finished (2 epochs)" in capsys.readouterr().out
    assert history.history["loss"] == run.history["loss"] and len(history.history["loss"]) == 2
    x = pixels_to_float(dataset.x_test[:8])
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))


def test_a_run_with_other_parameters_is_refused_before_anything(trained_run):
    run_dir, _, _, _, _ = trained_run
    before = (run_dir / runs.HISTORY).read_text()
    with pytest.raises(
        runs.RunFolderError, match="already holds a run with other parameters.*epochs.*overwrite=True"
    ):
        RunFolder(run_dir, {**TRAINED_RUN_PARAMS, "epochs": 1})
    assert (run_dir / runs.HISTORY).read_text() == before


def test_another_optimizer_in_the_same_run_dir_is_refused(trained_run):
    """Notebook 03's exercise 3: Adam(1e-4) into the article's run_dir is not silently reloaded."""
    run_dir, _, _, _, _ = trained_run
    model = build_vgg16(**NARROW)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-4),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    with pytest.raises(runs.RunFolderError, match="another model, optimizer or loss.*learning_rate"):
        RunFolder(run_dir, TRAINED_RUN_PARAMS).resume(model)


def test_fit_without_resume_or_with_the_wrong_start_is_stopped(tmp_path):
    dataset = make_synthetic(per_class=2, test_per_class=1)
    x, y, _, _ = arrays(dataset)
    model = compile_like_article(build_vgg16(**NARROW))
    with pytest.raises(runs.RunFolderError, match=r"call run.resume\(model\) before model.fit"):
        model.fit(x, y, epochs=1, callbacks=[RunFolder(tmp_path / "a", {})], verbose=0)
    run = RunFolder(tmp_path / "b", {"epochs": 2})
    run.resume(model)
    with pytest.raises(runs.RunFolderError, match="epochs=2, but fit was called with epochs=3"):
        model.fit(x, y, epochs=3, callbacks=[run], verbose=0)
    with pytest.raises(runs.RunFolderError, match="fit starts at epoch 2, but .* holds 0 epoch"):
        model.fit(x, y, epochs=2, initial_epoch=1, callbacks=[run], verbose=0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"epochs": 0}, "epochs must be a whole number >= 1"),
        ({"epochs": 2.5}, "epochs must be"),
        ({"batch_size": 0}, "batch_size must be a whole number >= 1"),
        ({"batch_size": -64}, "batch_size must be"),
        ({"seed": -1}, "seed must be"),
        ({"seed": 2**32}, r"seed must be a whole number in 0..4294967295"),
        ({"data": "mnist"}, "unknown source 'mnist'"),
        ({"subset": 0}, "subset must be"),
        ({"speedups": "fast"}, "speedups must be one of"),
        ({"epoch": 5}, r"unknown parameter\(s\) \['epoch'\]"),
    ],
)
def test_bad_parameters_fail_before_any_work(tmp_path, kwargs, message):
    run_dir = tmp_path / "never"
    params = dict(epochs=1, batch_size=8, data="synthetic", subset=2, seed=0, run_dir=str(run_dir))
    with pytest.raises(ParameterError, match=message):
        run_training(**{**params, **kwargs})
    assert not run_dir.exists()  # nothing was started
    with pytest.raises(ParameterError, match=message):
        check_params(**{**params, **kwargs})


def test_numpy_numbers_are_accepted_and_recorded_as_plain_numbers():
    params = run_params(
        epochs=np.int64(3), batch_size=np.int32(16), seed=np.uint8(1), learning_rate=np.float32(0.01)
    )
    assert type(params["epochs"]) is int and type(params["learning_rate"]) is float
    json.dumps(params)  # no NumPy type left


def test_subset_larger_than_the_data_fails_before_training(tmp_path, monkeypatch):
    root = write_image_folder(tmp_path / "pics", {"train": {"a": 3, "b": 3}})
    monkeypatch.setattr("vggcifar.training.build_vgg16", lambda *a, **k: pytest.fail("built"))
    with pytest.raises(DataError, match="subset=9 is larger than the data"):
        run_training(epochs=1, batch_size=4, data=str(root), subset=9, run_dir=str(tmp_path / "r"))
    assert not (tmp_path / "r" / runs.HISTORY).exists()


def test_run_training_is_notebook_03_in_one_call(tmp_path, capsys, narrow_vgg):
    params = dict(
        epochs=1,
        batch_size=16,
        data="synthetic",
        subset=3,
        seed=0,
        run_dir=str(tmp_path / "made"),
        precision="float32",
    )
    assert ensure_finished_run("04_plots", **params) is True
    said = capsys.readouterr().out
    assert "No finished run" in said and "00_article.ipynb" in said and "/content/drive/" in said
    assert "It trains 1 epoch(s) of about 30 pictures" in said
    assert runs.load_history(params["run_dir"])["epoch"] == [1]
    saved = runs.load_params(params["run_dir"])
    assert saved["setup"]["optimizer"]["class"] == "Adam" and saved["dropout"] == 0.0
    assert ensure_finished_run("04_plots", **params) is False
    assert "Using the finished run" in capsys.readouterr().out


def test_missing_history_names_the_notebook_that_makes_it(tmp_path):
    with pytest.raises(runs.RunFolderError, match="03_training.ipynb writes it"):
        runs.load_history(tmp_path)


def test_run_dir_that_is_a_file_is_refused_at_once(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(runs.RunFolderError, match="is a file, not a folder"):
        RunFolder(tmp_path / "file", TRAINED_RUN_PARAMS)


def test_run_dir_that_cannot_be_written_is_refused_in_the_parameter_check(tmp_path):
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(
        ParameterError,
        match=r"run_dir .*a-file/run' cannot be written: the folder "
        r".*a-file' it would be made in",
    ):
        check_params(run_dir=str(tmp_path / "a-file" / "run"))
    with pytest.raises(ParameterError, match="is a file, not a folder"):
        check_params(run_dir=str(tmp_path / "a-file"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only folders")
def test_read_only_run_dir_is_refused(tmp_path):
    (tmp_path / "locked").mkdir(mode=0o500)
    with pytest.raises(ParameterError, match="cannot be written"):
        check_params(run_dir=str(tmp_path / "locked" / "run"))


@pytest.mark.parametrize(
    "params, error, message",
    [
        (
            {"batch_size": 64, "subset": 2},
            ParameterError,
            "batch_size 64 is larger than the 20 training pictures; use a batch_size of at most 20",
        ),
        (
            {"batch_size": 4, "subset": 1, "validation": "holdout"},
            DataError,
            r"class 'synthetic0' has only 1 picture\(s\).*validation='holdout'",
        ),
    ],
)
def test_settings_that_do_not_fit_the_data_stop_before_training(
    tmp_path, monkeypatch, params, error, message
):
    monkeypatch.setattr("vggcifar.training.build_vgg16", lambda *a, **k: pytest.fail("built"))
    with pytest.raises(error, match=message):
        run_training(epochs=1, data="synthetic", run_dir=str(tmp_path / "r"), **params)
    assert not (tmp_path / "r" / runs.HISTORY).exists()


def test_the_time_a_missing_run_takes_is_said_for_gpu_and_cpu():
    article = run_params()
    note = training_time_note(article, gpu=False)
    assert "20 epoch(s) of about 50,000 pictures" in note
    assert "about 11 min with a GPU" in note  # 20 x 34 s
    assert "1.8 h to 5.7 h on a 2-core CPU" in note and "no GPU" in note
    small = training_time_note(run_params(subset=500, epochs=2), gpu=True)
    assert "about 5,000 pictures" in small and "about 7 s with a GPU" in small
    assert "This machine has a GPU" in small
