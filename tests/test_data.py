import tarfile

import keras
import numpy as np
import pytest

from conftest import write_image_folder
from vggcifar import data
from vggcifar.data import DataError, load_data
from vggcifar.settings import ParameterError

pytestmark = pytest.mark.backends  # also run on JAX without TensorFlow (.ci/run)


def test_synthetic_has_cifar10_shapes_and_balanced_classes():
    dataset = data.make_synthetic(per_class=30, test_per_class=6, seed=1)
    assert dataset.x_train.shape == (300, 32, 32, 3) and dataset.x_train.dtype == np.uint8
    assert dataset.x_test.shape == (60, 32, 32, 3)
    assert np.bincount(dataset.y_train).tolist() == [30] * 10
    assert dataset.is_synthetic and "SYNTHETIC" in dataset.describe()


def test_synthetic_classes_can_be_learned():
    # A nearest-class-mean rule on the pictures' colour must beat chance (10%) by far.
    dataset = data.make_synthetic(per_class=200, test_per_class=50, seed=2)
    features = lambda x: x.reshape(len(x), -1, 3).mean(axis=1)  # noqa: E731
    means = np.stack([features(dataset.x_train[dataset.y_train == k]).mean(0) for k in range(10)])
    distances = ((features(dataset.x_test)[:, None, :] - means[None]) ** 2).sum(-1)
    accuracy = (distances.argmin(1) == dataset.y_test).mean()
    assert accuracy > 0.5


def test_synthetic_is_seeded():
    a, b = data.make_synthetic(per_class=5, seed=3), data.make_synthetic(per_class=5, seed=3)
    assert np.array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.x_train, data.make_synthetic(per_class=5, seed=4).x_train)


def test_load_data_unpacks_into_the_articles_four_arrays():
    """Like keras.datasets.cifar10.load_data(): (x_train, y_train), (x_test, y_test)."""
    dataset = load_data("sample")
    (x_train, y_train), (x_test, y_test) = dataset
    assert x_train is dataset.x_train and y_train is dataset.y_train
    assert x_test is dataset.x_test and y_test is dataset.y_test
    assert x_train.shape == (4000, 32, 32, 3) and y_test.shape == (1000,)
    assert keras.utils.to_categorical(y_train, 10).shape == (4000, 10)


def test_load_data_synthetic_with_subset():
    dataset = load_data("synthetic", subset=20, seed=0)
    assert dataset.x_train.shape == (200, 32, 32, 3)
    assert dataset.x_test.shape == (40, 32, 32, 3)


def test_one_hot_matches_keras_and_checks_range():
    labels = np.array([0, 3, 9, 3])
    encoded = data.one_hot(labels, 10)
    assert encoded.shape == (4, 10) and encoded.dtype == np.float32
    assert np.array_equal(encoded, keras.utils.to_categorical(labels, 10))
    assert encoded.sum(axis=1).tolist() == [1, 1, 1, 1] and encoded[1, 3] == 1
    with pytest.raises(ValueError, match="0..9"):
        data.one_hot([10], 10)


def test_folder_with_train_and_test(tmp_path):
    layout = {"train": {"cat": 4, "dog": 5, "ant": 3}, "test": {"cat": 2, "dog": 2, "ant": 1}}
    root = write_image_folder(tmp_path / "pets", layout, suffix=".png")
    dataset = load_data(str(root))
    assert dataset.class_names == ("ant", "cat", "dog")  # sorted folder names
    assert dataset.x_train.shape == (12, 32, 32, 3) and dataset.x_test.shape == (5, 32, 32, 3)
    assert np.bincount(dataset.y_train).tolist() == [3, 4, 5]
    # class k was written with colour k*20 (+ noise < 10), in sorted class order
    assert dataset.x_train[dataset.y_train == 2].min() >= 40
    assert dataset.notes == []


def test_folder_with_only_train_holds_out_a_stratified_test_split(tmp_path):
    layout = {"train": {f"c{k}": 10 for k in range(5)}}
    root = write_image_folder(tmp_path / "five", layout, suffix=".jpg")
    dataset = load_data(root, seed=7)
    assert dataset.num_classes == 5 and dataset.input_shape == (32, 32, 3)
    assert np.bincount(dataset.y_test).tolist() == [2] * 5  # 20% of each class
    assert np.bincount(dataset.y_train).tolist() == [8] * 5
    assert "held out" in dataset.notes[0]
    # the held-out pictures are not among the training pictures
    train_rows = {x.tobytes() for x in dataset.x_train}
    assert not any(x.tobytes() in train_rows for x in dataset.x_test)
    again = load_data(root, seed=7)
    assert np.array_equal(again.x_test, dataset.x_test)


def test_tarball_reads_like_the_folder(tmp_path):
    root = write_image_folder(tmp_path / "src", {"train": {"a": 3, "b": 3}, "test": {"a": 1, "b": 2}})
    archive = tmp_path / "pictures.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root / "train", arcname="train")
        tar.add(root / "test", arcname="test")
    from_folder, from_tar = load_data(str(root)), load_data(str(archive))
    assert np.array_equal(from_folder.x_train, from_tar.x_train)
    assert np.array_equal(from_folder.y_test, from_tar.y_test)
    assert from_tar.class_names == ("a", "b")
    wrapped = tmp_path / "wrapped.tar.gz"
    with tarfile.open(wrapped, "w:gz") as tar:
        tar.add(root / "train", arcname="top/train")
    with pytest.raises(DataError, match="split folder 'top' .* point data at that folder"):
        load_data(str(wrapped))


def test_subset_is_stratified_seeded_and_shrinks_test_alike():
    full = data.make_synthetic(per_class=50, test_per_class=10, seed=0)
    small = data.take_subset(full, 20, seed=5)
    assert np.bincount(small.y_train).tolist() == [20] * 10
    assert np.bincount(small.y_test).tolist() == [4] * 10
    again = data.take_subset(full, 20, seed=5)
    assert np.array_equal(small.x_train, again.x_train)


@pytest.mark.parametrize(
    "bad, expected",
    [
        ("imagenet", "unknown source 'imagenet'"),
        ("no/such/folder", "not found"),
        ("missing.tar.gz", "not found"),
        (42, "data must be"),
    ],
)
def test_bad_sources_are_named(bad, expected):
    with pytest.raises(ParameterError, match=expected) as raised:
        load_data(bad)
    assert "synthetic" in str(raised.value)  # and the allowed sources are listed


def test_class_folders_that_differ_between_splits(tmp_path):
    root = write_image_folder(tmp_path / "odd", {"train": {"a": 2, "b": 2}, "test": {"a": 1, "c": 1}})
    with pytest.raises(DataError, match="class folders differ between splits"):
        load_data(root)


def test_unknown_split_folder_and_unreadable_picture(tmp_path):
    root = write_image_folder(tmp_path / "v", {"train": {"a": 2, "b": 2}, "valid": {"a": 1, "b": 1}})
    with pytest.raises(DataError, match="split folder 'valid'"):
        load_data(root)
    root = write_image_folder(tmp_path / "broken", {"train": {"a": 2, "b": 2}})
    (root / "train" / "a" / "bad.png").write_bytes(b"not a picture")
    with pytest.raises(DataError, match="cannot read picture"):
        load_data(root)


@pytest.mark.parametrize("subset", [0, -3, 2.5, "10", True])
def test_bad_subset_values(subset):
    with pytest.raises(ParameterError, match="subset must be"):
        load_data("synthetic", subset=subset)


def test_subset_larger_than_the_data(tmp_path):
    root = write_image_folder(tmp_path / "small", {"train": {"a": 5, "b": 5}, "test": {"a": 1, "b": 1}})
    with pytest.raises(DataError, match=r"subset=6 is larger than the data.*1..5"):
        load_data(root, subset=6)


def test_source_shape_without_download(monkeypatch):
    monkeypatch.setattr(keras.datasets.cifar10, "load_data", lambda: pytest.fail("downloaded"))
    assert data.source_shape("cifar10") == ((32, 32, 3), data.CIFAR10_CLASSES)
    shape, names = data.source_shape("synthetic")
    assert shape == (32, 32, 3) and len(names) == 10
