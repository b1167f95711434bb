"""The official CIFAR-10 archive: its checksum, and batches read without running pickle code."""

import os
import pickle
import re
import tarfile

import keras
import numpy as np
import pytest

from conftest import run_memory_limited
from vggcifar import cifar, data
from vggcifar.data import DataError, load_data


def write_batches(folder, per_batch=3, seed=0):
    """A cifar-10-batches-py/ folder with the official file names, small batches of random pictures."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for name in (*cifar.TRAIN_BATCHES, cifar.TEST_BATCH):
        batch = {
            b"batch_label": name.encode(),
            b"labels": [int(v) for v in rng.integers(0, 10, per_batch)],
            b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
            b"filenames": [f"{name}-{i}.png".encode() for i in range(per_batch)],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=4))
    return folder


def pack(folder, archive):
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=cifar.FOLDER)
    return archive


@pytest.fixture
def official(tmp_path, monkeypatch):
    """A small archive laid out like the published one, accepted as if its checksum were published."""
    folder = write_batches(tmp_path / "unpacked" / cifar.FOLDER)
    archive = pack(folder, tmp_path / cifar.ARCHIVE)
    monkeypatch.setattr(cifar, "SHA256", cifar.sha256_of(archive))
    return folder, archive


def test_archive_and_folder_give_kerass_arrays(official):
    from keras.src.datasets.cifar import load_batch  # Keras' own reader of one batch

    folder, archive = official
    from_folder, from_archive = load_data(str(folder)), load_data(str(archive))
    expected_x, expected_y = [], []
    for name in cifar.TRAIN_BATCHES:
        x, y = load_batch(str(folder / name))
        expected_x.append(x.transpose(0, 2, 3, 1))  # channels last, as Keras' cifar10 returns them
        expected_y.append(np.asarray(y))
    for dataset in (from_folder, from_archive):
        assert dataset.x_train.shape == (15, 32, 32, 3) and dataset.x_train.dtype == np.uint8
        np.testing.assert_array_equal(dataset.x_train, np.concatenate(expected_x))
        np.testing.assert_array_equal(dataset.y_train, np.concatenate(expected_y))
        assert dataset.x_test.shape == (3, 32, 32, 3) and dataset.class_names == data.CIFAR10_CLASSES
    assert data.source_shape(str(archive)) == ((32, 32, 3), data.CIFAR10_CLASSES)


def test_an_archive_with_another_checksum_is_refused(tmp_path):
    archive = pack(write_batches(tmp_path / "x" / cifar.FOLDER), tmp_path / cifar.ARCHIVE)
    with pytest.raises(DataError, match=r"is not the published cifar-10-python.tar.gz \(its SHA-256 is"):
        load_data(str(archive))


class Gadget:
    """A pickle that would create a file while it loads."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_a_batch_that_would_run_code_is_refused_without_running_it(tmp_path):
    folder = write_batches(tmp_path / cifar.FOLDER)
    marker = tmp_path / "the-gadget-ran"
    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": Gadget(marker), b"labels": [1]}))
    with pytest.raises(
        DataError,
        match=r"data_batch_3.*cannot be read.*posix.mkdir is not allowed"
        r".*nothing in it was run",
    ):
        load_data(str(folder))
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncated", "not gzip"])
def test_a_damaged_archive_gets_a_clear_error(official, damage):
    _, archive = official
    raw = archive.read_bytes()
    archive.write_bytes(raw[: len(raw) // 2] if damage == "truncated" else b"plain text, not gzip")
    cifar.SHA256 = cifar.sha256_of(archive)  # the checksum passes: the reader must still cope
    with pytest.raises(DataError, match="damaged or cut short"):
        load_data(str(archive))


def test_a_missing_or_empty_batch_is_named(tmp_path):
    folder = write_batches(tmp_path / cifar.FOLDER)
    (folder / "data_batch_4").write_bytes(b"")
    with pytest.raises(DataError, match=r"batch 'data_batch_4' in '.*cifar-10-batches-py' cannot be read"):
        load_data(str(folder))
    (folder / "data_batch_5").unlink()  # the test batch, which marks the folder, stays
    with pytest.raises(DataError, match="data_batch_5' is missing"):
        load_data(str(folder))


def test_download_failure_names_the_offline_options(monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.utils, "get_file", no_network)
    with pytest.raises(DataError) as raised:
        load_data("cifar10")
    message = str(raised.value)
    assert "could not download CIFAR-10" in message and "Temporary failure" in message
    assert "data='synthetic'" in message and "cifar-10-python.tar.gz" in message
    assert "data='sample' (5,000 real CIFAR-10 pictures" in message


def test_the_download_is_checked_against_the_published_checksum(monkeypatch, official):
    _, archive = official
    asked = {}

    def get_file(fname, origin, file_hash=None, hash_algorithm=None, cache_dir=None, **kwargs):
        asked.update(
            fname=fname, origin=origin, file_hash=file_hash, algorithm=hash_algorithm, cache_dir=cache_dir
        )
        return str(archive)

    monkeypatch.setattr(keras.utils, "get_file", get_file)
    dataset = load_data("cifar10")
    assert asked == {
        "fname": cifar.ARCHIVE,
        "origin": cifar.URL,
        "file_hash": cifar.SHA256,
        "algorithm": "sha256",
        "cache_dir": None,
    }
    assert dataset.x_train.shape == (15, 32, 32, 3) and "official" in dataset.source
    # a data cache (on Colab: a folder on Drive) is where Keras keeps and checks the archive
    load_data("cifar10", cache=archive.parent / "drive-cache")
    assert asked["cache_dir"] == str(archive.parent / "drive-cache")
    assert (archive.parent / "drive-cache").is_dir()


def test_keras_keeps_a_whole_archive_and_replaces_a_damaged_one(tmp_path, official, monkeypatch):
    """What the data cache relies on: get_file uses a copy whose SHA-256 matches, and
    downloads again when it does not."""
    _, archive = official
    cache = tmp_path / "cache"
    (cache / "datasets").mkdir(parents=True)
    kept = cache / "datasets" / cifar.ARCHIVE
    kept.write_bytes(archive.read_bytes())
    monkeypatch.setattr(cifar, "URL", "http://127.0.0.1:9/unreachable.tar.gz")
    assert load_data("cifar10", cache=cache).x_train.shape == (15, 32, 32, 3)  # no download
    kept.write_bytes(b"half an archive")
    with pytest.raises(DataError, match="could not download CIFAR-10"):  # would download anew
        load_data("cifar10", cache=cache)


def test_the_folder_that_holds_the_unpacked_batches_is_read_too(tmp_path):
    """``tar xzf cifar-10-python.tar.gz`` leaves cifar-10-batches-py/ inside the folder it ran
    in; that folder, given as data, reads the same CIFAR-10 as the batches' own folder."""
    folder = write_batches(tmp_path / "downloads" / cifar.FOLDER)
    (tmp_path / "downloads" / "notes.txt").write_text("not a picture")  # other files beside it are fine
    from_parent, from_folder = load_data(str(tmp_path / "downloads")), load_data(str(folder))
    np.testing.assert_array_equal(from_parent.x_train, from_folder.x_train)
    np.testing.assert_array_equal(from_parent.y_test, from_folder.y_test)
    assert from_parent.x_train.shape == (15, 32, 32, 3) and from_parent.class_names == data.CIFAR10_CLASSES
    assert from_parent.source == f"CIFAR-10 (official, from {cifar.FOLDER})"
    assert data.source_shape(str(tmp_path / "downloads")) == ((32, 32, 3), data.CIFAR10_CLASSES)


def test_a_batch_missing_beside_the_unpacked_folder_is_named_with_its_path(tmp_path):
    folder = write_batches(tmp_path / "downloads" / cifar.FOLDER)
    (folder / cifar.TEST_BATCH).unlink()  # an unpacking cut short: the folder is still recognised
    with pytest.raises(DataError, match=r"cifar-10-batches-py/test_batch' is missing"):
        load_data(str(tmp_path / "downloads"))
    with pytest.raises(DataError, match=r"cifar-10-batches-py/test_batch' is missing"):
        load_data(str(folder))


TIB = 2**40
#: Tiny batches that ask Python or NumPy for 1 TiB (or a memo list of 2**31 slots) while they load.
CRAFTED = {
    # BINBYTES8 announcing 1 TiB, followed by two bytes
    "bytes": b"\x80\x04\x8e" + TIB.to_bytes(8, "little") + b"xx",
    # _reconstruct(ndarray, (2**40,), b"b"): NumPy allocates the array before any data
    "array": b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
    + b"\x8a\x06"
    + TIB.to_bytes(6, "little")
    + b"\x85C\x01b\x87R.",
    # a dict whose BUILD state gives an empty array the shape (2**40,) of objects
    "object array": b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85C\x01b\x87R"
    + b"(K\x01\x8a\x06"
    + TIB.to_bytes(6, "little")
    + b"\x85cnumpy\ndtype\nX\x02\x00\x00\x00O8\x89\x88\x87R\x89]tb.",
    # LONG_BINPUT into memo slot 2**31: Python's memo list grows to that size first
    "memo": b"\x80\x02Nr" + (2**31).to_bytes(4, "little") + b".",
}


@pytest.mark.parametrize("kind", list(CRAFTED))
def test_a_tiny_crafted_batch_cannot_ask_for_a_terabyte(tmp_path, kind):
    """In a process capped at 1 GiB, each crafted batch (a few dozen bytes) is refused with
    the named error, never a MemoryError: sizes are checked before anything is allocated."""
    folder = write_batches(tmp_path / cifar.FOLDER)
    (folder / "data_batch_2").write_bytes(CRAFTED[kind])
    out = run_memory_limited(
        "from vggcifar.data import load_data; load_data(sys.argv[3])", folder, limit=2**30
    )
    print(f"crafted {kind!r} batch: peak RSS {out['peak_rss_mb']:.0f} MB")
    assert out.get("error") == "DataError", out
    message = out["message"]
    assert message.startswith(f"data: the CIFAR-10 batch 'data_batch_2' in {str(folder)!r}"), message
    expected = {
        "bytes": r"it announces 1,099,511,627,776 bytes, more than the 2 left in the file",
        "array": r"asks for an array of shape \(1099511627776,\) .* more than the 67,108,864 bytes "
        r"\(MAX_ARRAY_BYTES\)",
        "object array": r"arrays of dtype object are not allowed, only numbers",
        "memo": r"numbers a memo slot 2,147,483,648, beyond the 2 opcodes before it",
    }[kind]
    assert re.search(expected, message), message
    assert "nothing in it was run" in message and out["peak_rss_mb"] < 200, out


def test_every_cut_point_of_the_archive_gives_the_named_error(official, monkeypatch):
    _, archive = official
    raw = archive.read_bytes()
    cut = archive.with_name("cut.tar.gz")
    for length in np.linspace(0, len(raw) - 1, 20).astype(int):
        cut.write_bytes(raw[:length])
        monkeypatch.setattr(cifar, "SHA256", cifar.sha256_of(cut))  # the reader itself must cope
        with pytest.raises(DataError, match=r"data: (the archive '.*cut.tar.gz' is damaged or cut short|)"):
            load_data(str(cut))


def test_a_cut_short_batch_gives_the_named_error(tmp_path):
    folder = write_batches(tmp_path / cifar.FOLDER)
    raw = (folder / "test_batch").read_bytes()
    for length in np.linspace(0, len(raw) - 1, 10).astype(int):
        (folder / "test_batch").write_bytes(raw[:length])
        with pytest.raises(DataError, match=r"batch 'test_batch' in .* cannot be read"):
            load_data(str(folder))
