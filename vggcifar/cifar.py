"""The official CIFAR-10 archive: downloaded with its checksum, read without running pickle code.

The University of Toronto publishes CIFAR-10 as ``cifar-10-python.tar.gz``: six files
(``data_batch_1`` … ``data_batch_5``, ``test_batch``) inside ``cifar-10-batches-py/``,
each a Python pickle of a dict whose ``data`` is a uint8 array of 10,000 rows of
3,072 values (the red, green and blue planes of a 32x32 picture) and whose ``labels``
is a list of class numbers. A pickle can name any Python function to call while it
loads, so a tampered file could run code; Keras' own loader did so before Keras 3.15.
Here the batches are read by :class:`BatchUnpickler`, which admits only what these
files need (a NumPy array and its dtype) and refuses anything else without running it.

:func:`download` fetches the archive through ``keras.utils.get_file`` (kept in
``~/.keras/datasets``, never unpacked) and checks it against the published SHA-256;
:func:`read_cifar10` reads the archive, the ``cifar-10-batches-py/`` folder it unpacks to,
or the folder that holds that one.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np

from .folders import DataError

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE = "cifar-10-python.tar.gz"
FOLDER = "cifar-10-batches-py"
#: The published archive's SHA-256.
SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
#: Largest batch file read (each official one is about 31 MB).
MAX_BATCH_BYTES = 64 * 2**20


class BatchUnpickler(pickle.Unpickler):
    """An unpickler that builds NumPy arrays and plain Python values, and nothing else."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR-10 batch")
        if name == "_reconstruct":  # the official (Python 2) pickles name numpy.core
            try:
                from numpy._core import multiarray
            except ImportError:  # NumPy before 1.26
                from numpy.core import multiarray
            return multiarray._reconstruct
        return getattr(np, name)


def parse_batch(raw, name):
    """``(pictures (n, 32, 32, 3) uint8, labels (n,) int64)`` from one batch file's bytes."""
    try:
        batch = BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype="uint8")
        labels = np.asarray(batch[b"labels"], dtype="int64")
        pictures = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    except (pickle.UnpicklingError, KeyError, TypeError, ValueError, EOFError, AttributeError) as error:
        raise DataError(
            f"data: the CIFAR-10 batch {name!r} cannot be read ({error}); it is "
            "damaged or not a CIFAR-10 batch, and nothing in it was run"
        ) from error
    if len(pictures) != len(labels):
        raise DataError(
            f"data: the CIFAR-10 batch {name!r} has {len(pictures)} pictures but {len(labels)} labels"
        )
    return pictures, labels


def sha256_of(path, chunk=2**20):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_cifar10(path):
    """``(x_train, y_train, x_test, y_test)`` from ``cifar-10-python.tar.gz`` or ``cifar-10-batches-py/``.

    The archive must be the published one (its SHA-256 is checked first); a folder is
    read as it is, and may also be the one that holds ``cifar-10-batches-py/`` (see
    :func:`batches_folder`). Either way no pickle code runs.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        folder = batches_folder(path) or path  # a missing batch is then named with its full path
        batches = {name: _read_file(folder / name) for name in (*TRAIN_BATCHES, TEST_BATCH)}
    else:
        found = sha256_of(path)
        if found != SHA256:
            raise DataError(
                f"data: {str(path)!r} is not the published {ARCHIVE} (its SHA-256 is "
                f"{found}, the published one {SHA256}); download it again, or "
                f"use the folder {FOLDER}/ it unpacks to"
            )
        batches = _read_archive(path)
    parts = {name: parse_batch(raw, name) for name, raw in batches.items()}
    x_train = np.concatenate([parts[name][0] for name in TRAIN_BATCHES])
    y_train = np.concatenate([parts[name][1] for name in TRAIN_BATCHES])
    return x_train, y_train, parts[TEST_BATCH][0], parts[TEST_BATCH][1]


def _read_file(path):
    if not path.is_file():
        raise DataError(
            f"data: {str(path)!r} is missing; a {FOLDER}/ folder holds "
            f"{', '.join(TRAIN_BATCHES)} and {TEST_BATCH}"
        )
    if path.stat().st_size > MAX_BATCH_BYTES:
        raise DataError(
            f"data: {str(path)!r} is larger than a CIFAR-10 batch "
            f"({MAX_BATCH_BYTES:,} bytes at most); refused before reading it"
        )
    return path.read_bytes()


def _read_archive(path):
    wanted = {f"{FOLDER}/{name}": name for name in (*TRAIN_BATCHES, TEST_BATCH)}
    batches = {}
    try:
        with tarfile.open(path, "r:gz") as archive:
            for member in archive:
                name = wanted.get(member.name)
                if name is None or not member.isfile():
                    continue
                if member.size > MAX_BATCH_BYTES:
                    raise DataError(
                        f"data: {member.name!r} in {str(path)!r} is larger than a "
                        "CIFAR-10 batch; refused before reading it"
                    )
                batches[name] = archive.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
        raise DataError(
            f"data: the archive {str(path)!r} is damaged or cut short ({error}); download it again"
        ) from error
    missing = sorted(set(wanted.values()) - set(batches))
    if missing:
        raise DataError(f"data: {str(path)!r} lacks {missing}")
    return batches


def download(cache=None):
    """The published archive, downloaded once and checked against its SHA-256; its path.

    It is kept in ``<cache>/datasets/`` (by default ``~/.keras/datasets/``): a copy that is
    there and whole is used without downloading again; a damaged one is downloaded anew.
    On Colab a ``cache`` on Google Drive outlives the machine, so the other notebooks and
    later sessions skip the download.
    """
    import keras

    if cache is not None:
        Path(cache).expanduser().mkdir(parents=True, exist_ok=True)
    return Path(
        keras.utils.get_file(
            ARCHIVE,
            URL,
            file_hash=SHA256,
            hash_algorithm="sha256",
            cache_dir=None if cache is None else str(Path(cache).expanduser()),
        )
    )


def batches_folder(path):
    """The folder of the six batches that ``path`` names, or None when it names none.

    That is ``path`` itself when it holds ``test_batch``, or its ``cifar-10-batches-py/``
    when it holds one: ``tar xzf cifar-10-python.tar.gz`` leaves that folder inside the
    folder it ran in, and users give the folder they unpacked into as often as the
    folder it made.
    """
    path = Path(path).expanduser()
    if path.is_dir() and (path.name == FOLDER or (path / TEST_BATCH).is_file()):
        return path  # (read_cifar10 names a batch missing from a folder named cifar-10-batches-py)
    if (path / FOLDER).is_dir():
        return path / FOLDER
    return None


def is_official_source(path):
    """True when ``path`` names the published archive or a folder :func:`batches_folder` finds."""
    return Path(path).name == ARCHIVE or batches_folder(path) is not None
