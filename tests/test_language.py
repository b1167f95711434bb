"""Messages in the student's language: ``VGGCIFAR_LANGUAGE`` (see :mod:`vggcifar.language`).

With ``VGGCIFAR_LANGUAGE=ja`` every translated message holds Japanese and no English
sentence (parameter names, file names and values stay in code form); unset, the English
is what it always was; any other value is refused by name, when a message is made.
Nothing here trains: the run folder's notes come from a narrow model's callback, called
by hand.
"""

import errno
import json
import re
import socket
import time
from collections import namedtuple

import pytest

from conftest import NARROW
from vggcifar import backends, cifar, data, environment, files, runs, settings, training
from vggcifar.language import VARIABLE, LanguageError, language, say
from vggcifar.layout import RunFolderError
from vggcifar.settings import ParameterError, check_params

pytestmark = pytest.mark.backends  # also run on JAX without TensorFlow (.ci/run)


JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\u3000-\u303f\uff01-\uff5e〜]")
#: Names that a Japanese sentence writes in Latin letters too.
NAMES = {"Google", "Colab", "Keras", "TensorFlow", "NumPy", "Python", "GPU", "CPU", "JSON", "ID"}


def english_sentence(text):
    """The first run of three or more English words outside code, or None.

    Code stays code in both languages: quoted values, lists and dicts (their repr), and
    every token with ``_ . = / ( ) < >`` or a digit, and names in capitals (``PNG``) are not
    words; a Japanese character ends a run of words.
    """
    text = re.sub(r"'[^']*'|\"[^\"]*\"|\{[^{}]*\}|\[[^\[\]]*\]", " ", text)
    text = JAPANESE.sub(" | ", text)
    run = []
    for token in text.split():
        if re.fullmatch(r"[A-Za-z]*[a-z][A-Za-z]*[,;:.]?", token) and token.rstrip(",;:.") not in NAMES:
            run.append(token)
            if len(run) >= 3:
                return " ".join(run)
        else:
            run = []
    return None


def assert_japanese(message, *names):
    """``message`` is Japanese, holds no English sentence, and names each of ``names``."""
    assert JAPANESE.search(message), message
    assert english_sentence(message) is None, (english_sentence(message), message)
    for name in names:
        assert name in message, (name, message)


def test_the_check_finds_the_english_it_looks_for(en, tmp_path):
    """The same messages in English fail :func:`assert_japanese`'s check: it would see one left over."""
    for name, value in BAD:
        with pytest.raises(ParameterError) as caught:
            check_params(**{name: value})
        assert english_sentence(str(caught.value)), str(caught.value)
    assert english_sentence(environment.gpu_hint())
    assert english_sentence(str(files.DiskFullError(tmp_path / "x", OSError(errno.ENOSPC, "ENOSPC"))))
    assert english_sentence(training.training_time_note(settings.run_params(), gpu=False))


@pytest.fixture
def ja(monkeypatch):
    monkeypatch.setenv(VARIABLE, "ja")


@pytest.fixture
def en(monkeypatch):
    monkeypatch.delenv(VARIABLE, raising=False)


# --- the setting ----------------------------------------------------------------------


def test_unset_is_english_and_the_two_languages_are_read_when_a_message_is_made(monkeypatch):
    monkeypatch.delenv(VARIABLE, raising=False)
    assert language() == "en" and say(en="yes", ja="はい") == "yes"
    monkeypatch.setenv(VARIABLE, "ja")
    assert language() == "ja" and say(en="yes", ja="はい") == "はい"
    monkeypatch.setenv(VARIABLE, "en")
    assert say(en="yes", ja="はい") == "yes"


@pytest.mark.parametrize("value", ["fr", "JA", "", "japanese"])
def test_another_value_is_refused_by_name_when_a_message_is_made(monkeypatch, value):
    monkeypatch.setenv(VARIABLE, value)
    assert check_params(epochs=3) == {"epochs": 3}  # no message, no error
    with pytest.raises(LanguageError) as caught:
        check_params(epochs=0)
    message = str(caught.value)
    assert VARIABLE in message and repr(value) in message
    assert "'en'" in message and "'ja'" in message
    assert JAPANESE.search(message)  # said in both languages: the reader's is not known


# --- parameter errors ------------------------------------------------------------------

BAD = [
    ("data", 5),
    ("data", "cifar100"),
    ("data", "no/such/folder"),
    ("subset", 0),
    ("seed", -1),
    ("epochs", 0),
    ("batch_size", 2.5),
    ("run_dir", ""),
    ("precision", "half"),
    ("strategy", "gpu"),
    ("validation", "train"),
    ("deterministic", 1),
    ("overwrite", "yes"),
    ("speedups", "fast"),
    ("recipe", "best"),
    ("optimizer", "rmsprop"),
    ("learning_rate", 0),
    ("schedule", "step"),
    ("warmup", 1.5),
    ("dropout", 1.0),
    ("label_smoothing", -0.1),
    ("flip", None),
    ("crop_padding", 16),
    ("small_crops", 4),
    ("small_crops_share", 2),
]


@pytest.mark.parametrize(("name", "value"), BAD, ids=[f"{n}={v!r}" for n, v in BAD])
def test_a_parameter_error_in_japanese_names_the_parameter_and_what_is_allowed(ja, name, value):
    with pytest.raises(ParameterError) as caught:
        check_params(**{name: value})
    assert_japanese(str(caught.value), name, repr(value))


def test_the_teachers_example_parameter_error_is_unchanged_in_english(en):
    with pytest.raises(ParameterError) as caught:
        check_params(epochs=0)
    assert str(caught.value) == "epochs must be a whole number >= 1, got 0"


def test_more_parameter_errors_in_japanese(ja, tmp_path):
    afile = tmp_path / "pictures.zip"
    afile.write_bytes(b"not an archive")
    cases = [
        (lambda: check_params(data=str(afile)), ["data", "pictures.zip", ".tar.gz"]),
        (lambda: check_params(run_dir=str(afile)), ["run_dir", "pictures.zip"]),
        (lambda: check_params(epochs=3, nonsense=1), ["nonsense", "epochs"]),
        (lambda: settings.check_batch_size(100, 40), ["batch_size", "100", "40"]),
        (lambda: settings.check_recipe({"momentum": 0.9}), ["momentum", "optimizer"]),
        (lambda: settings.check_model_options((32, 32, 3), 10, 0.0, 0.0, 16, 0.99, ()), ["blocks"]),
        (lambda: settings.check_model_options((32, 32), 10, 0.0, 0.0, 16, 0.99, ((1, 8),)), ["input_shape"]),
        (
            lambda: settings.check_model_options((8, 8, 3), 10, 0.0, 0.0, 16, 0.99, ((1, 8),) * 5),
            ["input_shape"],
        ),
        (
            lambda: settings.check_model_options((32, 32, 3), 1, 0.0, 0.0, 16, 0.99, ((1, 8),)),
            ["num_classes"],
        ),
        (lambda: settings.check_model_options((32, 32, 3), 10, 0.0, -1, 16, 0.99, ((1, 8),)), ["l2"]),
    ]
    for make, names in cases:
        with pytest.raises(ParameterError) as caught:
            make()
        assert_japanese(str(caught.value), *names)


def test_data_that_does_not_fit_in_japanese(ja):
    dataset = data.make_synthetic(per_class=2, seed=0)
    with pytest.raises(data.DataError) as caught:
        data.take_subset(dataset, 5)
    assert_japanese(str(caught.value), "subset=5", "None")
    with pytest.raises(ValueError) as caught:
        data.split_validation(dataset, "train")
    assert_japanese(str(caught.value), "validation", "'holdout'")


# --- the environment report --------------------------------------------------------------


def test_the_environment_report_without_a_gpu(monkeypatch, capsys):
    monkeypatch.setattr(backends, "accelerators", lambda: backends.Accelerators())
    monkeypatch.delenv(VARIABLE, raising=False)
    environment.environment_report()
    english = capsys.readouterr().out.splitlines()
    assert english[-1] == environment.GPU_HINT
    monkeypatch.setenv(VARIABLE, "ja")
    report = environment.environment_report()
    japanese = capsys.readouterr().out.splitlines()
    assert japanese[0] == english[0]  # the versions: names and numbers
    assert_japanese(japanese[-1], "GPU", "subset=500", "epochs=2")
    assert report["gpus"] == [] and "cores" in report["device"]  # the record stays as it was


def test_the_environment_report_with_a_gpu(monkeypatch, capsys):
    t4 = backends.Accelerators(gpus=[("Tesla T4", (7, 5))])
    monkeypatch.setattr(backends, "accelerators", lambda: t4)
    monkeypatch.delenv(VARIABLE, raising=False)
    environment.environment_report()
    assert capsys.readouterr().out.splitlines()[-1] == "GPU: Tesla T4 (compute capability 7.5)"
    monkeypatch.setenv(VARIABLE, "ja")
    environment.environment_report()
    assert_japanese(capsys.readouterr().out.splitlines()[-1], "GPU", "Tesla T4")


@pytest.mark.parametrize("name", ["run_dir", "data_cache"])
def test_google_drive_outside_colab_in_japanese(ja, name):
    with pytest.raises(ValueError) as caught:
        environment.mount_drive_if_needed("/content/drive/MyDrive/vggcifar/x", name)
    assert_japanese(str(caught.value), name, "/content/drive")


# --- the missing run and the training-time note -----------------------------------------


def test_the_training_time_note_in_japanese(ja):
    note = training.training_time_note(settings.run_params(), gpu=False)
    assert_japanese(note, "50,000", "20 エポック", "約 11 分", "1.8 時間〜5.7 時間")
    small = training.training_time_note(settings.run_params(subset=500, epochs=2), gpu=True)
    assert_japanese(small, "5,000", "約 7 秒", "GPU があります")


def test_the_missing_run_message_in_japanese_and_english(tmp_path, monkeypatch, capsys):
    trained = []
    monkeypatch.setattr(training, "run_training", lambda **params: trained.append(params))
    monkeypatch.setattr(training, "accelerator_present", lambda: False)
    params = {"data": "synthetic", "subset": 2, "epochs": 1, "run_dir": str(tmp_path / "run")}
    monkeypatch.setenv(VARIABLE, "ja")
    assert training.ensure_finished_run("04_plots", **params) is True
    said = capsys.readouterr().out
    assert_japanese(said, "03_training.ipynb", "04_plots", "run_dir", "00_article.ipynb", "1 エポック")
    monkeypatch.delenv(VARIABLE)
    training.ensure_finished_run("04_plots", **params)
    assert capsys.readouterr().out.startswith(f"No finished run in {str(tmp_path / 'run')!r}.")
    assert len(trained) == 2


def test_the_finished_run_found_in_japanese(ja, tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    record = settings.run_params(data="synthetic", subset=2, epochs=1, run_dir=str(run_dir))
    (run_dir / runs.PARAMS).write_text(json.dumps(record))
    (run_dir / runs.HISTORY).write_text(json.dumps({"epoch": [1], "loss": [2.3], "seconds": [1.0]}))
    (run_dir / runs.METRICS).write_text(json.dumps({"epochs": 1}))
    (run_dir / runs.MODEL).write_bytes(b"a model")
    assert training.ensure_finished_run("05_saving", **record) is False
    assert_japanese(capsys.readouterr().out, str(run_dir))


# --- the run folder: notes, end of a run, errors -------------------------------------------


def narrow_model():
    from vggcifar.model import build_vgg16

    model = training.compile_like_article(build_vgg16((32, 32, 3), 10, **NARROW))
    model.optimizer.build(model.trainable_variables)  # its state goes into the backup, as after fit
    return model


def history_of(epochs):
    return {
        "epoch": list(range(1, epochs + 1)),
        "loss": [2.3] * epochs,
        "accuracy": [0.1] * epochs,
        "val_loss": [2.3] * epochs,
        "val_accuracy": [0.1] * epochs,
        "seconds": [1.0] * epochs,
    }


def test_the_run_folders_notes_and_the_end_of_a_run_in_japanese(ja, tmp_path, capsys):
    import numpy as np

    run_dir = tmp_path / "run"
    params = settings.run_params(data="synthetic", subset=2, epochs=2, batch_size=4, run_dir=str(run_dir))
    model = narrow_model()
    said = []

    def lines():
        out = capsys.readouterr().out.strip().splitlines()
        said.extend(out)
        return out

    first = runs.RunFolder(run_dir, params)
    assert first.resume(model) == 0
    (new,) = lines()
    runs.commit_epoch(run_dir, model, history_of(1))  # an epoch done, then the kernel "dies": lock kept
    second = runs.RunFolder(run_dir, params)
    assert second.resume(model) == 1
    took_over, resuming = lines()
    assert "ランフォルダ" in took_over and "引き継ぎました" in took_over
    assert "エポック 1 の続きから" in resuming
    second.history = history_of(2)
    second.set_model(model)
    second.set_params({"epochs": 2})
    second.test_data = (np.zeros((4, 32, 32, 3), "float32"), np.eye(10, dtype="float32")[[0, 1, 2, 3]])
    second.on_train_end()
    test_line, finished = lines()
    assert "正解率" in test_line and "損失" in test_line and "4 枚" in test_line
    assert runs.MODEL in finished and runs.METRICS in finished
    third = runs.RunFolder(run_dir, params)
    assert third.resume(model) == 2
    (already,) = lines()
    assert "overwrite=True" in already and "run_dir" in already
    assert len(said) == 6
    for line in said:
        assert_japanese(line)


def test_the_run_folders_errors_in_japanese(ja, tmp_path):
    run_dir = tmp_path / "run"
    params = settings.run_params(data="synthetic", subset=2, epochs=2, run_dir=str(run_dir))
    runs.start_run(run_dir, {**params, "setup": {"model": 1}}, {})
    files.release_lock(run_dir / runs.LOCK)
    other = settings.run_params(data="synthetic", subset=2, epochs=3, run_dir=str(run_dir))
    cases = [
        (lambda: runs.RunFolder(run_dir, other), ["run_dir", "overwrite=True", "epochs"]),
        (
            lambda: runs.start_run(run_dir, {**params, "setup": {"model": 2}}, {}),
            ["run_dir", "overwrite=True"],
        ),
        (lambda: runs.load_history(run_dir), [runs.HISTORY, "03_training.ipynb"]),
    ]
    afile = tmp_path / "afile"
    afile.write_text("x")
    cases.append((lambda: runs.check_free(afile), ["run_dir", "afile"]))
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    cases.append((lambda: runs.check_free(foreign), ["run_dir", "notes.txt", "overwrite=True"]))
    orphan = tmp_path / "orphan"
    orphan.mkdir()
    (orphan / runs.HISTORY).write_text(json.dumps(history_of(1)))
    cases.append((lambda: runs.check_free(orphan), [runs.PARAMS, runs.HISTORY, "overwrite=True"]))
    half = tmp_path / "half"
    half.mkdir()
    (half / runs.PARAMS).write_text("{}")
    (half / runs.HISTORY).write_text(json.dumps(history_of(1)))
    cases.append((lambda: runs.check_free(half, {}), [runs.HISTORY, runs.MODEL, "overwrite=True"]))
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / runs.PARAMS).write_text("[1, 2]")
    cases.append((lambda: runs.load_params(damaged), [runs.PARAMS, "run_dir", "overwrite=True"]))
    (damaged / runs.BACKUP).mkdir()
    (damaged / runs.BACKUP / runs.STATE).write_text(
        json.dumps({"epoch": 1, "weights": "../x", "history": history_of(1)})
    )
    cases.append((lambda: runs.read_backup(damaged), [runs.BACKUP, "overwrite=True"]))
    fresh = runs.RunFolder(tmp_path / "fresh", params)
    fresh.set_params({"epochs": 2})
    cases.append((fresh.on_train_begin, ["run.resume(model)", "initial_epoch"]))
    for make, names in cases:
        with pytest.raises(RunFolderError) as caught:
            make()
        assert_japanese(str(caught.value), *names)


def test_a_locked_run_folder_and_a_stale_lock_in_japanese(ja, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    now = time.time()
    holder = {"host": "another-machine", "pid": 4321, "token": "t", "started": now, "heartbeat": now}
    (run_dir / runs.LOCK).write_text(json.dumps(holder))
    params = settings.run_params(data="synthetic", subset=2, epochs=2, run_dir=str(run_dir))
    with pytest.raises(RunFolderError) as caught:
        runs.start_run(run_dir, {**params, "setup": {}}, {})
    assert_japanese(str(caught.value), "run_dir", runs.LOCK, "another-machine", "4321")
    silent = {**holder, "heartbeat": now - 20 * 60}
    (run_dir / runs.LOCK).write_text(json.dumps(silent))
    note = files.acquire_lock(run_dir / runs.LOCK, f"run_dir {str(run_dir)!r}")
    assert_japanese(note, "another-machine", "4321", "20 分", "Colab")
    assert files.held_by_me(run_dir / runs.LOCK)["host"] == socket.gethostname()


# --- a full disk, a failed download ------------------------------------------------------


def test_a_full_disk_in_japanese_and_english(tmp_path, monkeypatch):
    path = tmp_path / "history.json"
    error = OSError(errno.ENOSPC, "ENOSPC")
    monkeypatch.setenv(VARIABLE, "ja")
    assert_japanese(str(files.DiskFullError(path, error)), "history.json", "MB")
    monkeypatch.delenv(VARIABLE)
    assert str(files.DiskFullError(path, error)).startswith(
        f"disk full: {str(path)!r} could not be written ("
    )


def test_a_failed_download_and_a_full_cache_folder_in_japanese(ja, tmp_path, monkeypatch):
    import keras

    def offline(*args, **kwargs):
        raise ConnectionError("ENETUNREACH")

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(keras.utils, "get_file", offline)
    monkeypatch.setattr(cifar.shutil, "disk_usage", lambda path: usage(10**12, 0, 10**12))
    with pytest.raises(data.DataError) as caught:
        data.load_cifar10(cache=tmp_path / "cache")
    assert_japanese(str(caught.value), "data='cifar10'", "CIFAR-10", "data='sample'", "www.cs.toronto.edu")
    monkeypatch.setattr(cifar.shutil, "disk_usage", lambda path: usage(10**12, 10**12, 0))
    with pytest.raises(data.DataError) as caught:
        data.load_cifar10(cache=tmp_path / "cache")
    assert_japanese(str(caught.value), "data_cache", "170 MB")


# --- notebook 07's own inputs ----------------------------------------------------------------


def test_notebook_07s_inputs_in_japanese(ja, tmp_path):
    from vggcifar import evaluation, saving

    with pytest.raises(ValueError) as caught:
        evaluation.check_inputs(picture=str(tmp_path / "cat.png"))
    assert_japanese(str(caught.value), "picture", "cat.png", "None")
    with pytest.raises(ValueError) as caught:
        evaluation.check_inputs(upload="yes")
    assert_japanese(str(caught.value), "upload", "'yes'")
    with pytest.raises(ValueError) as caught:
        saving.check_model_file(tmp_path / "model.weights.h5")
    assert_japanese(str(caught.value), "model_path", ".keras", "model.load_weights")
    with pytest.raises(FileNotFoundError) as caught:
        saving.check_model_file(tmp_path / "model.keras")
    assert_japanese(str(caught.value), "model_path", "model.keras")


def test_the_environment_report_on_a_tpu_names_it_instead_of_asking_for_a_gpu(monkeypatch, capsys):
    """Colab's TPU runtime: no GPU, but no "No GPU found" either."""
    monkeypatch.setattr(backends, "accelerators", lambda: backends.Accelerators(tpu_cores=8))
    monkeypatch.delenv(VARIABLE, raising=False)
    report = environment.environment_report()
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("TPU: TPU (8 cores, Keras on ") and report["gpus"] == []
    monkeypatch.setenv(VARIABLE, "ja")
    environment.environment_report()
    assert_japanese(capsys.readouterr().out.splitlines()[-1], "TPU", "8 cores")


def test_a_batch_that_jax_devices_cannot_share_in_japanese(ja, monkeypatch):
    monkeypatch.setattr(backends, "on_tensorflow", lambda: False)  # as on JAX with two devices
    with pytest.raises(settings.ParameterError) as caught:
        settings.check_even_split(7, {"training": 40}, 2)
    assert_japanese(str(caught.value), "batch_size 7", "5 枚", "strategy='default'")
