"""data="sample": the 5,000 real CIFAR-10 pictures inside the package."""

import hashlib
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from vggcifar import data
from vggcifar.data import DataError, load_data
from vggcifar.folders import read_picture_folder
from vggcifar.settings import ParameterError, check_params

pytestmark = pytest.mark.backends  # also run on JAX without TensorFlow (.ci/run)


@pytest.fixture(scope="module")
def sample():
    return load_data("sample")


def test_shapes_classes_and_labels(sample):
    assert sample.x_train.shape == (4000, 32, 32, 3) and sample.x_test.shape == (1000, 32, 32, 3)
    assert sample.x_train.dtype == np.uint8 and sample.x_test.dtype == np.uint8
    assert sample.class_names == data.CIFAR10_CLASSES  # CIFAR-10's names, in CIFAR-10's order
    assert np.bincount(sample.y_train).tolist() == [400] * 10
    assert np.bincount(sample.y_test).tolist() == [100] * 10
    # labels are grouped by class, 0 first (the archive lists the class folders in order)
    assert (np.diff(sample.y_train) >= 0).all() and (np.diff(sample.y_test) >= 0).all()
    assert sample.input_shape == (32, 32, 3) and not sample.is_synthetic


def test_the_fast_decoder_gives_the_general_readers_pictures(sample):
    """load_sample decodes the archive its own (faster) way; the pixels must be those of
    the reader of any picture folder, which opens every JPEG with Image.open."""
    arrays, class_names, skipped = read_picture_folder(data.sample_file())
    assert class_names == data.CIFAR10_CLASSES and skipped == []
    np.testing.assert_array_equal(arrays["train"][0], sample.x_train)
    np.testing.assert_array_equal(arrays["train"][1], sample.y_train)
    np.testing.assert_array_equal(arrays["test"][0], sample.x_test)
    np.testing.assert_array_equal(arrays["test"][1], sample.y_test)


def test_train_and_test_are_disjoint(sample):
    train = {picture.tobytes() for picture in sample.x_train}
    test = {picture.tobytes() for picture in sample.x_test}
    assert len(test) == 1000 and len(train) > 3990  # whole distinct pictures, not a constant
    assert not train & test


def test_the_description_says_where_the_test_pictures_come_from_and_credits_cifar10(sample):
    text = sample.describe()
    assert "TRAINING pictures" in sample.source
    assert "test pictures are CIFAR-10 training pictures" in text and "not CIFAR-10's test set" in text
    assert "Krizhevsky" in text and "2009" in text


def test_every_load_is_a_fresh_copy():
    first = load_data("sample")
    first.x_train[:] = 0
    first.y_test[:] = 9
    again = load_data("sample")
    assert again.x_train.any() and np.bincount(again.y_test).tolist() == [100] * 10


def test_subset(sample):
    small = load_data("sample", subset=40, seed=3)
    assert small.x_train.shape == (400, 32, 32, 3) and small.x_test.shape == (100, 32, 32, 3)
    assert (
        np.bincount(small.y_train).tolist() == [40] * 10 and np.bincount(small.y_test).tolist() == [10] * 10
    )
    full = {picture.tobytes() for picture in sample.x_train}
    assert all(picture.tobytes() in full for picture in small.x_train)
    assert any("subset=40" in note for note in small.notes)
    with pytest.raises(DataError, match=r"subset=401 is larger than the data.*1..400"):
        load_data("sample", subset=401)


def test_it_is_a_named_source():
    assert check_params(data="sample") == {"data": "sample"}
    assert data.source_shape("sample") == ((32, 32, 3), data.CIFAR10_CLASSES)
    with pytest.raises(ParameterError, match=r"unknown source 'samples'.*'sample' \(5,000 real CIFAR-10"):
        load_data("samples")


def test_the_shipped_file_has_the_recorded_checksum():
    raw = data.sample_file().read_bytes()
    assert hashlib.sha256(raw).hexdigest() == data.SAMPLE_SHA256
    assert len(raw) < 3_000_000  # the limit that ../shared/datasets/README.md sets


def test_a_damaged_or_missing_sample_is_refused_by_name(tmp_path, monkeypatch):
    damaged = tmp_path / "cifar10-sample.tar.gz"
    raw = bytearray(data.sample_file().read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # one byte changed in a copy; the shipped file is left alone
    damaged.write_bytes(bytes(raw))
    monkeypatch.setattr(data, "sample_file", lambda: damaged)
    with pytest.raises(DataError, match=r"data='sample': the CIFAR-10 sample .* is damaged or altered"):
        load_data("sample")
    damaged.unlink()
    with pytest.raises(DataError, match="data='sample': the CIFAR-10 sample is missing"):
        load_data("sample")


# The sample from an installed wheel, outside the clone: tests/test_install.py (one wheel for all).


def test_make_sample_rebuilds_the_shipped_sample(shared_cifar_archive):
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "tools" / "make_sample.py"),
            "--check",
            "--source",
            str(shared_cifar_archive),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"sha256 {data.SAMPLE_SHA256}" in done.stdout and "rebuilt byte for byte" in done.stdout
