"""The official CIFAR-10 archive: downloaded with its checksum, read without running pickle code.

The University of Toronto publishes CIFAR-10 as ``cifar-10-python.tar.gz``: six files
(``data_batch_1`` … ``data_batch_5``, ``test_batch``) inside ``cifar-10-batches-py/``,
each a Python pickle of a dict whose ``data`` is a uint8 array of 10,000 rows of
3,072 values (the red, green and blue planes of a 32x32 picture) and whose ``labels``
is a list of class numbers. A pickle can name any Python function to call while it
loads, so a tampered file could run code; Keras' own loader did so before Keras 3.15.
Here the batches are read by :class:`BatchUnpickler`, which admits only what these
files need (a NumPy array and its dtype) and refuses anything else without running it.

A pickle can also ask for memory: a few dozen bytes can announce a 1 TiB string, a memo
slot numbered in the billions or a NumPy array of any shape, and Python or NumPy would
allocate it before finding the data missing. So every batch is first scanned without
being loaded (:func:`check_pickle_sizes`: each announced length must lie inside the file,
each memo slot be one the file could fill), and every array is sized before it is built:
at most :data:`MAX_ARRAY_BYTES`, the limit on a whole batch file, since an array's bytes
come from the file (CIFAR-10's largest array, a batch's ``data``, is 10,000 x 3,072 =
30,720,000 bytes). With six batches of at most :data:`MAX_BATCH_BYTES` (64 MiB, twice
the official 31 MB), reading CIFAR-10 holds a few hundred MB at most, whatever the files say.

:func:`download` fetches the archive through ``keras.utils.get_file`` (kept in
``~/.keras/datasets`` or the ``data_cache`` folder, never unpacked) and checks it against
the published SHA-256 before it replaces anything;
:func:`read_cifar10` reads the archive, the ``cifar-10-batches-py/`` folder it unpacks to,
or the folder that holds that one.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import pickle
import pickletools
import shutil
import tarfile
import uuid
import zlib
from pathlib import Path

import numpy as np

from .folders import DataError
from .language import say

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE = "cifar-10-python.tar.gz"
FOLDER = "cifar-10-batches-py"
#: The published archive's SHA-256.
SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
#: Largest batch file read (each official one is about 31 MB).
MAX_BATCH_BYTES = 64 * 2**20
#: Largest NumPy array a batch may ask for. An array's bytes come from the file, so no real
#: array is larger than the file limit; CIFAR-10's ``data`` array is 10,000 x 3,072 =
#: 30,720,000 bytes.
MAX_ARRAY_BYTES = MAX_BATCH_BYTES
#: Array element kinds a batch may use: fixed-size numbers (``data`` is uint8). Object and
#: void types are refused: their size is not tied to the bytes in the file.
ARRAY_KINDS = "biuf"


class ArrayTooLarge(pickle.UnpicklingError):
    """A pickle asked for an array of more than :data:`MAX_ARRAY_BYTES` bytes."""


def _check_array(shape, dtype):
    """Raise unless ``shape`` x ``dtype`` is a plain array of numbers of at most :data:`MAX_ARRAY_BYTES`."""
    dtype = np.dtype(dtype)
    if dtype.kind not in ARRAY_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise pickle.UnpicklingError(f"arrays of dtype {dtype} are not allowed, only numbers")
    shape = (shape,) if isinstance(shape, int) else shape
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise pickle.UnpicklingError(f"an array shape of an unknown form ({shape!r})")
    size = dtype.itemsize
    for length in shape:
        size *= length
    if size > MAX_ARRAY_BYTES:
        raise ArrayTooLarge(f"an array of shape {shape} and dtype {dtype} ({size:,} bytes)")


class _SizedArray(np.ndarray):
    """An array whose ``__setstate__`` (the pickle's BUILD) is sized before NumPy allocates it."""

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) not in (4, 5):  # (version,) shape, dtype, order, data
            raise pickle.UnpicklingError(f"an array state of an unknown form ({type(state).__name__})")
        _check_array(state[-4], state[-3])
        super().__setstate__(state)


class BatchUnpickler(pickle.Unpickler):
    """An unpickler that builds NumPy arrays of numbers and plain Python values, and nothing else.

    Arrays are sized before they are allocated (:data:`MAX_ARRAY_BYTES`); run
    :func:`check_pickle_sizes` on the bytes first, for the sizes Python itself allocates.
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR-10 batch")
        return {"_reconstruct": self.reconstruct, "dtype": self.dtype, "ndarray": np.ndarray}[name]

    @staticmethod
    def reconstruct(subtype, shape, dtype):
        """NumPy's ``_reconstruct`` (the official Python 2 pickles name numpy.core), sized first."""
        if subtype is not np.ndarray:
            raise pickle.UnpicklingError(f"only numpy.ndarray may be rebuilt, not {subtype!r}")
        _check_array(shape, dtype)
        try:
            from numpy._core import multiarray
        except ImportError:  # NumPy before 1.26
            from numpy.core import multiarray
        return multiarray._reconstruct(_SizedArray, shape, dtype)

    @staticmethod
    def dtype(*args):
        """``numpy.dtype``, for the number kinds of :data:`ARRAY_KINDS` only."""
        made = np.dtype(*args)
        if made.kind not in ARRAY_KINDS:
            raise pickle.UnpicklingError(f"arrays of dtype {made} are not allowed, only numbers")
        return made


def _argument_layout(op):
    """``(kind, width)`` of a pickle opcode's argument, from the standard library's table."""
    if op.arg is None:
        return "none", 0
    if op.arg.n > 0:
        return "fixed", op.arg.n
    if op.arg.n == pickletools.UP_TO_NEWLINE:
        return "lines", 2 if op.arg.name.endswith("_pair") else 1
    widths = {
        pickletools.TAKEN_FROM_ARGUMENT1: 1,
        pickletools.TAKEN_FROM_ARGUMENT4: 4,
        pickletools.TAKEN_FROM_ARGUMENT4U: 4,
        pickletools.TAKEN_FROM_ARGUMENT8U: 8,
    }
    return ("counted_signed" if op.arg.n == pickletools.TAKEN_FROM_ARGUMENT4 else "counted"), widths[op.arg.n]


_LAYOUT = {op.code.encode("latin-1")[0]: _argument_layout(op) for op in pickletools.opcodes}
_MEMO_PUTS = frozenset(b"pqr")  # PUT, BINPUT, LONG_BINPUT
_FRAME, _STOP = 0x95, ord(".")


def check_pickle_sizes(raw):
    """Raise :class:`pickle.UnpicklingError` where a pickle announces more than it holds.

    Scans the opcodes without building anything: every length (of a string, bytes or a
    frame) must fit in the bytes that follow it, and no memo slot may be numbered beyond
    the opcodes before it (a pickler numbers them 0, 1, 2 ...). Python's unpickler
    allocates both before it reads the data (a 1 TiB string, a memo list of 2**31
    slots), so without this scan a file of a few dozen bytes could exhaust the memory.
    """
    pos, end, opcodes = 0, len(raw), 0
    while pos < end:
        code = raw[pos]
        pos += 1
        opcodes += 1
        if code not in _LAYOUT:
            raise pickle.UnpicklingError(f"unknown pickle opcode {code:#04x} at byte {pos - 1:,}")
        kind, width = _LAYOUT[code]
        if kind == "fixed":
            value = int.from_bytes(raw[pos : pos + width], "little")
            pos += width
            if code in _MEMO_PUTS and value >= opcodes:
                raise pickle.UnpicklingError(
                    f"at byte {pos - width - 1:,} it numbers a memo slot {value:,}, beyond the "
                    f"{opcodes - 1:,} opcodes before it"
                )
            if code == _FRAME and value > end - pos:
                raise pickle.UnpicklingError(
                    f"at byte {pos - width - 1:,} it announces a frame of {value:,} bytes, more "
                    f"than the {end - pos:,} left in the file"
                )
        elif kind == "lines":
            for _ in range(width):
                newline = raw.find(b"\n", pos)
                if newline < 0:
                    raise pickle.UnpicklingError("the pickle ends inside a line")
                text = raw[pos:newline].strip()
                if code in _MEMO_PUTS and (not text.isdigit() or int(text) >= opcodes):
                    raise pickle.UnpicklingError(f"memo slot {text[:20]!r} is out of range")
                pos = newline + 1
        elif kind.startswith("counted"):
            size = int.from_bytes(raw[pos : pos + width], "little", signed=kind == "counted_signed")
            pos += width
            if not 0 <= size <= end - pos:
                raise pickle.UnpicklingError(
                    f"at byte {pos - width - 1:,} it announces {size:,} bytes, more than the "
                    f"{end - pos:,} left in the file"
                )
            pos += size
        if code == _STOP:
            return
    raise pickle.UnpicklingError("the pickle ends before its STOP opcode")


def parse_batch(raw, name, source=None):
    """``(pictures (n, 32, 32, 3) uint8, labels (n,) int64)`` from one batch file's bytes.

    The bytes are scanned (:func:`check_pickle_sizes`) before they are unpickled, and
    every array is sized before it is allocated, so a crafted batch is refused in
    bounded memory. ``source`` (the archive or folder) is named in the errors.
    """
    where = f"{name!r}" + (f" in {str(source)!r}" if source is not None else "")
    try:
        check_pickle_sizes(raw)
        batch = BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype="uint8")
        labels = np.asarray(batch[b"labels"], dtype="int64")
        pictures = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    except ArrayTooLarge as error:
        raise DataError(
            f"data: the CIFAR-10 batch {where} asks for {error}, more than the "
            f"{MAX_ARRAY_BYTES:,} bytes (MAX_ARRAY_BYTES) an array may have (CIFAR-10's "
            "largest is 30,720,000); refused before allocating it, and nothing in it was run"
        ) from error
    except (pickle.UnpicklingError, KeyError, TypeError, ValueError, EOFError, AttributeError) as error:
        raise DataError(
            f"data: the CIFAR-10 batch {where} cannot be read ({error}); it is "
            "damaged or not a CIFAR-10 batch, and nothing in it was run"
        ) from error
    if len(pictures) != len(labels):
        raise DataError(
            f"data: the CIFAR-10 batch {where} has {len(pictures)} pictures but {len(labels)} labels"
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
    parts = {name: parse_batch(raw, name, path) for name, raw in batches.items()}
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
                if len(batches[name]) != member.size:
                    raise EOFError(
                        f"{member.name!r} holds {len(batches[name]):,} of its {member.size:,} bytes"
                    )
            while archive.fileobj.read(2**20):  # to the gzip trailer, whose check sum and length
                pass  # tell an archive cut in its last bytes
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
        raise DataError(
            f"data: the archive {str(path)!r} is damaged or cut short ({error}); download it again"
        ) from error
    missing = sorted(set(wanted.values()) - set(batches))
    if missing:
        raise DataError(f"data: {str(path)!r} lacks {missing}")
    return batches


#: The published archive's size (about 170 MB): the free space a download needs in the cache folder.
ARCHIVE_BYTES = 170_498_071
#: ``errno`` values that mean the cache folder, not the network, is the problem.
CACHE_FOLDER_ERRNOS = frozenset(
    getattr(errno, name)
    for name in ("ENOSPC", "EDQUOT", "EROFS", "EACCES", "EPERM", "ENOTDIR", "EISDIR", "EEXIST", "EFBIG")
    if hasattr(errno, name)
)


class DownloadError(DataError):
    """The download itself failed (no internet, a server error, a damaged transfer)."""


def cache_folder(cache=None):
    """The folder that keeps the archive: ``<cache>/datasets``, by default Keras' ``~/.keras/datasets``."""
    base = Path(cache) if cache is not None else Path(os.environ.get("KERAS_HOME", "~/.keras"))
    return base.expanduser() / "datasets"


def download(cache=None):
    """The published archive, downloaded once and checked against its SHA-256; its path.

    It is kept in :func:`cache_folder` (by default ``~/.keras/datasets/``): a copy that is
    there and whole is used without downloading again. A damaged one is never deleted
    before a verified replacement is complete: the new archive is downloaded under a
    temporary name beside it, checked, and only then put in its place; a failed download
    leaves the old copy as it was, and the error says so. Problems of the cache folder
    itself (a file where the folder should be, not writable, full) are named as such,
    before the download starts where they can be seen then. On Colab a ``cache`` on
    Google Drive outlives the machine, so the other notebooks and later sessions skip
    the download.
    """
    import keras

    folder = cache_folder(cache)
    target = folder / ARCHIVE
    old = say(en="no earlier copy was there", ja="以前のコピーはありませんでした")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if target.is_dir():
            raise IsADirectoryError(errno.EISDIR, "a folder is where the archive should be", str(target))
        if target.exists():
            if sha256_of(target) == SHA256:
                return target
            old = say(
                en=f"the copy already there, {str(target)!r}, fails the checksum (damaged or cut short); it "
                "was left as it is, not deleted, and not used",
                ja=f"すでにあったコピー {str(target)!r} はチェックサムが合いません(壊れているか"
                "途中で切れています)。削除せず、使わずに、そのまま残してあります",
            )
        free = shutil.disk_usage(folder).free
        if free < ARCHIVE_BYTES:
            raise OSError(errno.ENOSPC, f"{free:,} bytes free, {ARCHIVE_BYTES:,} needed", str(folder))
        part = folder / f"{ARCHIVE}.{uuid.uuid4().hex[:12]}.part"
        part.touch(exist_ok=False)  # can this folder be written? (Drive and ACLs defeat os.access)
        part.unlink()
    except OSError as error:
        raise _cache_error(folder, cache, error, old) from error
    try:
        got = Path(
            keras.utils.get_file(
                part.name,
                URL,
                file_hash=SHA256,
                hash_algorithm="sha256",
                cache_dir=str(folder.parent),
                cache_subdir=folder.name,
            )
        )
        if got != part:  # Keras wrote elsewhere (it falls back to /tmp when it finds no write access)
            shutil.copyfile(got, part)
            got.unlink()
        found = sha256_of(part)
        if found != SHA256:
            raise ValueError(f"the downloaded file's SHA-256 is {found}, the published one {SHA256}")
        os.replace(part, target)  # the old copy, if any, goes only now, for a verified one
    except OSError as error:
        if error.errno in CACHE_FOLDER_ERRNOS:
            raise _cache_error(folder, cache, error, old) from error
        raise DownloadError(_not_downloaded(error, old)) from error
    except Exception as error:  # urllib, SSL, socket, HTTP and checksum errors alike
        raise DownloadError(_not_downloaded(error, old)) from error
    finally:
        part.unlink(missing_ok=True)
    return target


def _not_downloaded(error, old):
    return say(
        en=f"could not download CIFAR-10 ({type(error).__name__}: {error}); {old}",
        ja=f"CIFAR-10 をダウンロードできませんでした({type(error).__name__}: {error})。{old}",
    )


def _cache_error(folder, cache, error, old):
    setting = "data_cache" if cache is not None else "data_cache=None (Keras' own folder)"
    setting_ja = "data_cache" if cache is not None else "data_cache=None(Keras 自身のフォルダ)"
    return DataError(
        say(
            en=f"data_cache: the cache folder {str(folder)!r} ({setting}) cannot keep CIFAR-10 "
            f"({type(error).__name__}: {error}); this is the folder, not the internet connection. "
            f"It needs to be a writable folder with about {ARCHIVE_BYTES // 10**6} MB free: free some "
            "space, or set data_cache to another folder. Meanwhile " + old,
            ja=f"data_cache: キャッシュフォルダ {str(folder)!r}({setting_ja})に CIFAR-10 "
            f"を保存できません({type(error).__name__}: {error})。問題はインターネット接続ではなく、"
            f"このフォルダです。約 {ARCHIVE_BYTES // 10**6} MB の空きがある、書き込めるフォルダが必要です。"
            f"空きを作るか、data_cache に別のフォルダを指定してください。なお、{old}。",
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
