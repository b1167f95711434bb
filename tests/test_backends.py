"""Keras on TensorFlow, JAX and PyTorch: what differs between them, and files that cross over.

The rest of the backend-neutral tests (model, data, run folder, training, notebooks) are
marked ``backends``: `.ci/run` runs them once on TensorFlow and once in `.venv-jax`, Keras
on JAX without TensorFlow, as on Colab's TPU runtime (README: "Other Keras backends").
"""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from conftest import ENV, NARROW, REPO, load_with_keras_alone
from vggcifar import backends, curves, environment, runs
from vggcifar.data import make_synthetic
from vggcifar.improvements import PictureBatches, compile_recipe, make_augmenter, make_pipeline, model_options
from vggcifar.model import build_vgg16
from vggcifar.runs import RunFolder
from vggcifar.saving import save_article_files
from vggcifar.settings import IMPROVED_RECIPE, ParameterError
from vggcifar.training import pixels_to_float

pytestmark = pytest.mark.backends

#: Where each backend's environment is found: VGGCIFAR_BACKEND_PYTHONS="jax=/path/python,..."
#: or, by default, the virtual environments that .ci/run makes beside the repository's files.
DEFAULT_PYTHONS = {"tensorflow": ".venv", "jax": ".venv-jax", "torch": ".venv-torch"}


def backend_pythons():
    """The Python of each backend's environment that is present here, this one's included."""
    given = dict(
        item.split("=", 1)
        for item in os.environ.get("VGGCIFAR_BACKEND_PYTHONS", "").split(",")
        if "=" in item
    )
    found = {name: str(REPO / folder / "bin" / "python") for name, folder in DEFAULT_PYTHONS.items()}
    found = {**{k: v for k, v in found.items() if Path(v).exists()}, **given}
    found[backends.backend()] = sys.executable
    return found


# --- saved files cross over ----------------------------------------------------------


def test_files_saved_on_this_backend_load_on_the_others_and_predict_the_same(tmp_path):
    """Trained as notebook 06 trains (augmented, SGD, a schedule) and saved as the run folder
    and notebook 05 save: every file loads on every other backend present, with Keras alone,
    and predicts what the trained model predicts, to float32 rounding."""
    others = {name: python for name, python in backend_pythons().items() if name != backends.backend()}
    needed = {"tensorflow", "jax"} - {backends.backend()}
    if not needed <= set(others):
        message = f"no environment for {sorted(needed - set(others))}: .ci/run makes .venv and .venv-jax"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    keras.utils.set_random_seed(0)
    dataset = make_synthetic(per_class=3, test_per_class=1, seed=0)
    model = compile_recipe(
        build_vgg16(**NARROW, **model_options(IMPROVED_RECIPE)), IMPROVED_RECIPE, epochs=2, steps_per_epoch=3
    )
    augment = make_augmenter(IMPROVED_RECIPE)
    pipeline = make_pipeline(dataset.x_train, dataset.y_train, 10, 10, shuffle=True, augment=augment)
    run = RunFolder(tmp_path / "run", {"epochs": 2})
    model.fit(pipeline, shuffle=False, epochs=2, initial_epoch=run.resume(model), callbacks=[run], verbose=0)
    files = save_article_files(model, tmp_path / "run")
    paths = {
        "model_keras": tmp_path / "run" / runs.MODEL,
        "article_keras": files["keras"],
        "article_weights": files["weights"],
        "article_h5": files["legacy_h5"],
    }
    pictures = pixels_to_float(dataset.x_test)
    expected = model.predict(pictures, verbose=0)
    for name, python in sorted(others.items()):
        loaded = load_with_keras_alone(paths, pictures, tmp_path, python=python, backend=name)
        assert loaded["backend"] == name
        assert loaded["article_keras_optimizer"] == "SGD"  # the .keras file can go on training there
        for file in paths:
            np.testing.assert_allclose(
                np.asarray(loaded[file]), expected, rtol=1e-4, atol=1e-6, err_msg=f"{file} on {name}"
            )


# --- what each backend sees and picks ---------------------------------------------------


def test_on_a_tpu_auto_picks_bfloat16_and_names_the_tpu(monkeypatch):
    monkeypatch.setattr(backends, "accelerators", lambda: backends.Accelerators(tpu_cores=8))
    assert environment.choose_precision("auto") == "mixed_bfloat16"
    assert environment.accelerator_present()
    assert environment.describe_device().startswith("TPU (8 cores, Keras on ")


def test_a_cpu_keeps_float32_on_jax_and_torch_even_with_amx(monkeypatch):
    """AMX's gain was measured through TensorFlow's oneDNN kernels only (bench/README.md)."""
    monkeypatch.setattr(backends, "accelerators", lambda: backends.Accelerators())
    monkeypatch.setattr(environment, "cpu_has_bfloat16", lambda: True)
    expected = "mixed_bfloat16" if backends.on_tensorflow() else "float32"
    assert environment.choose_precision("auto") == expected


def test_the_report_names_the_framework_under_keras(capsys):
    report = environment.environment_report()
    first = capsys.readouterr().out.splitlines()[0]
    label, version = backends.framework()
    assert report["backend"] == backends.backend() and report[backends.backend()] == version
    assert f"  {label} {version}  Keras {keras.__version__}  " in first


def test_one_device_strategy_has_a_scope_and_one_replica():
    strategy = environment.choose_strategy("default")
    with strategy.scope():
        model = build_vgg16(**NARROW)
    assert backends.replicas(strategy) == 1
    assert backends.strategy_record(model)["replicas"] == 1


@pytest.mark.skipif(backends.backend() != "torch", reason="PyTorch only")
def test_several_devices_on_torch_is_refused_by_name():
    with pytest.raises(ParameterError, match="strategy='mirrored' needs TensorFlow or JAX"):
        environment.choose_strategy("mirrored")


def test_the_speedups_stay_off_where_they_cannot_run(capsys):
    from vggcifar.speed import speedups_enabled

    if backends.on_tensorflow():
        assert speedups_enabled(True) is True
        return
    assert speedups_enabled("auto") is False and capsys.readouterr().out == ""
    assert speedups_enabled(True) is False
    assert "TensorFlow's kernels" in capsys.readouterr().out


JAX_TWO_DEVICES = {"KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}


@pytest.mark.skipif(backends.backend() != "jax", reason="JAX only")
def test_jax_spreads_each_batch_over_two_host_devices(tmp_path):
    """strategy="mirrored" and, on a (simulated) TPU, "auto": DataParallel over every device."""
    code = textwrap.dedent(f"""
        import json, functools
        import vggcifar.model, vggcifar.training
        from vggcifar import backends, environment, runs
        vggcifar.training.build_vgg16 = functools.partial(vggcifar.model.build_vgg16, **{NARROW!r})
        _, _, history = vggcifar.training.run_training(
            data="synthetic", subset=4, epochs=2, batch_size=16, precision="float32",
            strategy="mirrored", run_dir=r"{tmp_path}/mirrored")
        print("ENV", json.dumps(runs.read_json(r"{tmp_path}/mirrored/environment.json")))
        print("EPOCHS", history["epoch"])
        backends.accelerators = lambda: backends.Accelerators(tpu_cores=2)  # as on a TPU
        auto = environment.choose_strategy("auto")
        print("AUTO", type(auto).__name__, backends.replicas(auto))
        # a last batch the two devices cannot share is refused before training, by name
        from vggcifar.settings import ParameterError, check_batch_size
        try:
            vggcifar.training.run_training(
                data="synthetic", subset=4, epochs=1, batch_size=7, precision="float32",
                strategy="mirrored", run_dir=r"{tmp_path}/uneven")
        except ParameterError as error:
            print("UNEVEN", error)
        backends.use_strategy(auto)  # as 03's setup line does: then its check_batch_size
        check_batch_size(16, 40, 10)
        try:
            check_batch_size(16, 45, 10)
        except ParameterError as error:
            print("NOTEBOOK", error)
    """)
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**ENV, **JAX_TWO_DEVICES},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    env = json.loads(result.stdout.split("ENV ")[1].splitlines()[0])
    assert (env["strategy"], env["replicas"]) == ("DataParallel", 2)
    assert "EPOCHS [1, 2]" in result.stdout
    assert "3/3 - " in result.stdout  # 40 pictures in steps of 16: batch_size is the global batch
    assert "AUTO DataParallel 2" in result.stdout
    # 40 training pictures in batches of 7 leave 5
    assert "UNEVEN batch_size 7 leaves a last training batch of 5 pictures, which 2 devices" in result.stdout
    assert not (tmp_path / "uneven" / "history.json").exists()  # refused before any training
    assert (
        "NOTEBOOK batch_size 16 leaves a last training batch of 13 pictures, which 2 devices" in result.stdout
    )


# --- the NumPy input pipeline -----------------------------------------------------------


def test_numpy_batches_keep_pairs_shuffle_each_epoch_and_repeat_with_the_seed():
    x = np.arange(20, dtype="uint8").reshape(20, 1, 1, 1) * 10
    y = np.arange(20) % 4
    batches = PictureBatches(x, y, 4, 8, shuffle=True, seed=3)
    first = [batches[i] for i in range(len(batches))]
    batches.on_epoch_end()
    second = [batches[i] for i in range(len(batches))]
    assert [len(bx) for bx, _ in first] == [8, 8, 4]
    for bx, by in first:
        np.testing.assert_allclose(bx.reshape(-1) * 255 / 10 % 4, by.argmax(1))  # pairs kept
    order = lambda epoch: np.concatenate([bx.reshape(-1) for bx, _ in epoch])  # noqa: E731
    assert not np.array_equal(order(first), order(second))
    again = PictureBatches(x, y, 4, 8, shuffle=True, seed=3)
    assert np.array_equal(order([again[i] for i in range(len(again))]), order(first))
    with pytest.raises(IndexError):
        batches[len(batches)]


def test_numpy_batches_train_a_model_on_this_backend():
    """The NumPy feeder is what JAX and PyTorch train with; it works on TensorFlow too (the bench)."""
    dataset = make_synthetic(per_class=4, test_per_class=1, seed=0)
    feed = make_pipeline(
        dataset.x_train,
        dataset.y_train,
        10,
        8,
        shuffle=True,
        augment=make_augmenter(IMPROVED_RECIPE),
        feeder="numpy",
    )
    model = build_vgg16(**NARROW)
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(feed, shuffle=False, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2 and feed.epoch >= 2  # a new order every epoch


# --- TensorBoard's curves without TensorFlow --------------------------------------------


def read_events(folder):
    """Each scalar's (step, value) points, as TensorBoard reads them (summaries v2 are tensors)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util.tensor_util import make_ndarray

    accumulator = EventAccumulator(str(folder))
    accumulator.Reload()
    return {
        tag: [(e.step, float(make_ndarray(e.tensor_proto))) for e in accumulator.Tensors(tag)]
        for tag in accumulator.Tags()["tensors"]
        if tag.startswith("epoch_")  # Keras' own callback also writes the model's config, as text
    }


@pytest.mark.parametrize("callback", ["ours", "this backend's"])
def test_epoch_curves_reach_tensorboard_without_tensorflow(tmp_path, callback):
    """Ours writes what Keras' own callback writes: the same tags, steps and values."""
    pytest.importorskip("tensorboard")
    make = curves.EpochCurves if callback == "ours" else curves.tensorboard_callback
    x = np.random.default_rng(0).random((16, 4), dtype="float32")
    y = keras.utils.to_categorical(np.arange(16) % 2, 2)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=3, validation_data=(x, y), callbacks=[make(tmp_path)], verbose=0).history
    train, validation = read_events(tmp_path / "train"), read_events(tmp_path / "validation")
    assert [step for step, _ in train["epoch_loss"]] == [0, 1, 2]  # one point per epoch, as Keras' callback
    np.testing.assert_allclose([v for _, v in train["epoch_loss"]], history["loss"], rtol=1e-6)
    np.testing.assert_allclose(
        [v for _, v in validation["epoch_accuracy"]], history["val_accuracy"], rtol=1e-6
    )


def test_without_the_tensorboard_package_the_curves_say_so_once(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tensorboard.summary", None)  # any import of it fails
    callback = curves.EpochCurves(tmp_path)
    callback.on_train_begin()
    callback.on_epoch_end(0, {"loss": 1.0})
    callback.on_train_end()
    assert "pip install tensorboard" in capsys.readouterr().out
    assert not any(tmp_path.iterdir())


def test_the_callback_is_keras_own_on_tensorflow_and_ours_elsewhere(tmp_path):
    callback = curves.tensorboard_callback(tmp_path)
    expected = keras.callbacks.TensorBoard if backends.on_tensorflow() else curves.EpochCurves
    assert type(callback) is expected


def test_without_tensorflow_and_without_a_choice_keras_starts_on_what_is_there(tmp_path):
    """Keras alone would start on TensorFlow and fail where only JAX (or PyTorch) is installed."""
    env = {k: v for k, v in ENV.items() if k != "KERAS_BACKEND"}
    code = "import vggcifar, keras; print(keras.backend.backend())"
    for config in (None, "tensorflow"):  # no keras.json, and one that names TensorFlow
        home = tmp_path / str(config)
        home.mkdir()
        if config:
            (home / "keras.json").write_text(json.dumps({"backend": config}))
        result = subprocess.run(
            [sys.executable, "-c", code], env={**env, "KERAS_HOME": str(home)}, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr[-2000:]
        found = importlib.util.find_spec("tensorflow") is not None
        expected = "tensorflow" if found else "jax" if importlib.util.find_spec("jax") else "torch"
        assert result.stdout.split() == [expected]
