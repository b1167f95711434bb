"""The official CIFAR-10 archive: its checksum, and batches read without running pickle code."""

import errno
import os
import pickle
import re
import shutil
import tarfile

import keras
import numpy as np
import pytest

from conftest import run_memory_limited
from vggcifar import cifar, data
from vggcifar.data import DataError, load_data

pytestmark = pytest.mark.backends  # also run on JAX without TensorFlow (.ci/run)


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


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    """Keras' own folder (data_cache=None) in a temporary place, never the user's ~/.keras."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    return tmp_path / "keras-home"


def fake_get_file(payload, asked):
    """A stand-in for keras.utils.get_file that 'downloads' ``payload`` where Keras would put it."""

    def get_file(fname, origin, file_hash=None, hash_algorithm=None, cache_dir=None, cache_subdir="datasets"):
        asked.update(fname=fname, origin=origin, file_hash=file_hash, algorithm=hash_algorithm)
        asked.update(cache_dir=cache_dir, cache_subdir=cache_subdir)
        if isinstance(payload, Exception):
            raise payload
        target = os.path.join(cache_dir, cache_subdir, fname)
        with open(target, "wb") as handle:
            handle.write(payload)
        return target

    return get_file


def test_download_failure_names_the_offline_options(monkeypatch, keras_home):
    no_network = OSError("[Errno -3] Temporary failure in name resolution")
    monkeypatch.setattr(keras.utils, "get_file", fake_get_file(no_network, {}))
    with pytest.raises(DataError) as raised:
        load_data("cifar10")
    message = str(raised.value)
    assert message.startswith("data='cifar10': could not download CIFAR-10")
    assert "Temporary failure" in message
    assert "no earlier copy was there" in message
    assert "data='synthetic'" in message and "cifar-10-python.tar.gz" in message
    assert "data='sample' (5,000 real CIFAR-10 pictures" in message
    assert os.listdir(keras_home / "datasets") == []  # no partial file left behind


def test_the_download_is_checked_and_only_then_takes_its_place(monkeypatch, official, tmp_path, keras_home):
    _, archive = official
    asked = {}
    monkeypatch.setattr(keras.utils, "get_file", fake_get_file(archive.read_bytes(), asked))
    dataset = load_data("cifar10")
    assert asked["fname"].startswith(cifar.ARCHIVE + ".") and asked["fname"].endswith(".part")
    assert (asked["origin"], asked["file_hash"], asked["algorithm"]) == (cifar.URL, cifar.SHA256, "sha256")
    assert asked["cache_dir"] == str(keras_home) and asked["cache_subdir"] == "datasets"
    assert os.listdir(keras_home / "datasets") == [cifar.ARCHIVE]
    assert dataset.x_train.shape == (15, 32, 32, 3) and "official" in dataset.source
    # a data cache (on Colab: a folder on Drive) is where the archive is kept and checked
    drive = tmp_path / "drive-cache"
    load_data("cifar10", cache=drive)
    assert asked["cache_dir"] == str(drive)
    assert (drive / "datasets" / cifar.ARCHIVE).read_bytes() == archive.read_bytes()
    asked.clear()
    load_data("cifar10", cache=drive)  # whole and checked: not downloaded again
    assert asked == {}


def test_a_damaged_cached_copy_is_kept_until_a_verified_one_replaces_it(tmp_path, official, monkeypatch):
    """The cached copy fails its checksum: a failed download (offline, or a damaged transfer)
    leaves it as it was and says so; a verified download replaces it."""
    _, archive = official
    cache = tmp_path / "cache"
    kept = cache / "datasets" / cifar.ARCHIVE
    kept.parent.mkdir(parents=True)
    kept.write_bytes(archive.read_bytes())
    monkeypatch.setattr(cifar, "URL", "http://127.0.0.1:9/unreachable.tar.gz")  # Keras' real get_file
    assert load_data("cifar10", cache=cache).x_train.shape == (15, 32, 32, 3)  # no download
    kept.write_bytes(b"half an archive")
    for failure in ("offline", "damaged transfer"):
        if failure == "damaged transfer":
            monkeypatch.setattr(keras.utils, "get_file", fake_get_file(b"not the archive", {}))
        with pytest.raises(DataError) as raised:
            load_data("cifar10", cache=cache)
        message = str(raised.value)
        assert message.startswith("data='cifar10': could not download CIFAR-10"), message
        assert f"the copy already there, {str(kept)!r}, fails the checksum" in message
        assert "it was left as it is, not deleted, and not used" in message
        assert kept.read_bytes() == b"half an archive"  # the user's copy is still there
        assert os.listdir(kept.parent) == [cifar.ARCHIVE]  # and no partial download beside it
    monkeypatch.setattr(keras.utils, "get_file", fake_get_file(archive.read_bytes(), {}))
    assert load_data("cifar10", cache=cache).x_train.shape == (15, 32, 32, 3)
    assert kept.read_bytes() == archive.read_bytes() and os.listdir(kept.parent) == [cifar.ARCHIVE]


def test_cache_folder_problems_are_blamed_on_the_folder_not_the_internet(tmp_path, monkeypatch):
    monkeypatch.setattr(keras.utils, "get_file", fake_get_file(AssertionError("no download expected"), {}))
    in_the_way = tmp_path / "cache-file"
    in_the_way.write_text("a file where the cache folder should be")
    in_the_way_message = r"^data_cache: the cache folder '.*cache-file/datasets' \(data_cache\) "
    with pytest.raises(DataError, match=in_the_way_message):
        load_data("cifar10", cache=in_the_way)
    assert in_the_way.read_text() == "a file where the cache folder should be"
    cache = tmp_path / "cache"
    (cache / "datasets" / cifar.ARCHIVE).mkdir(parents=True)
    with pytest.raises(DataError, match=r"^data_cache: .*a folder is where the archive should be"):
        load_data("cifar10", cache=cache)
    (cache / "datasets" / cifar.ARCHIVE).rmdir()
    (cache / "datasets" / cifar.ARCHIVE).write_bytes(b"damaged")
    full = shutil.disk_usage(tmp_path)._replace(free=10_000_000)
    monkeypatch.setattr(cifar.shutil, "disk_usage", lambda path: full)
    with pytest.raises(DataError) as raised:
        load_data("cifar10", cache=cache)
    message = str(raised.value)
    folder = str(cache / "datasets")
    assert message.startswith(f"data_cache: the cache folder {folder!r} (data_cache) cannot keep"), message
    assert "10,000,000 bytes free, 170,498,071 needed" in message and "not the internet connection" in message
    assert "set data_cache to another folder" in message and "left as it is, not deleted" in message
    assert (cache / "datasets" / cifar.ARCHIVE).read_bytes() == b"damaged"
    monkeypatch.undo()
    disk_full = OSError(errno.ENOSPC, "No space left on device")  # the folder fills up mid-download
    monkeypatch.setattr(keras.utils, "get_file", fake_get_file(disk_full, {}))
    with pytest.raises(DataError, match=r"^data_cache: .*No space left on device.*not the internet"):
        load_data("cifar10", cache=cache)
    assert (cache / "datasets" / cifar.ARCHIVE).read_bytes() == b"damaged"


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
    cut = archive.parent / "cut" / cifar.ARCHIVE  # the official name: read as CIFAR-10, not as pictures
    cut.parent.mkdir()
    for length in np.linspace(0, len(raw) - 1, 20).astype(int):
        cut.write_bytes(raw[:length])
        monkeypatch.setattr(cifar, "SHA256", cifar.sha256_of(cut))  # the reader itself must cope
        with pytest.raises(
            DataError, match=r"data: the archive '.*cut/cifar-10-python.tar.gz' is damaged or cut short"
        ):
            load_data(str(cut))


def test_a_cut_short_batch_gives_the_named_error(tmp_path):
    folder = write_batches(tmp_path / cifar.FOLDER)
    raw = (folder / "test_batch").read_bytes()
    for length in np.linspace(0, len(raw) - 1, 10).astype(int):
        (folder / "test_batch").write_bytes(raw[:length])
        with pytest.raises(DataError, match=r"batch 'test_batch' in .* cannot be read"):
            load_data(str(folder))
