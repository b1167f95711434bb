"""Step 1 — the data: CIFAR-10, a sample of it that ships in the package, and offline stand-ins.

``load_data(data)`` is the one entry point; what it returns unpacks as the article's
``keras.datasets.cifar10.load_data()`` does, ``(x_train, y_train), (x_test, y_test)``.
``data`` names the source:

* ``"cifar10"`` (the default, as in the article): the real CIFAR-10, downloaded once
  (about 170 MB, checked against its published SHA-256) and cached by Keras, read by
  :mod:`vggcifar.cifar` without running pickle code; a path to
  ``cifar-10-python.tar.gz``, to the ``cifar-10-batches-py/`` folder it unpacks to, or to
  the folder holding that one (where ``tar xzf`` leaves it) reads a copy.
* ``"sample"``: 5,000 real CIFAR-10 pictures inside the package (400 training and 100
  test pictures per class, JPEG), so real pictures load offline wherever the package is
  installed, in well under a second. Both of its splits are drawn from CIFAR-10's
  *training* pictures, disjoint from each other: its test pictures are not CIFAR-10's
  test set. Built by ``tools/make_sample.py``; checked against :data:`SAMPLE_SHA256`.
* a path to a folder, or a ``.tar.gz`` of one, laid out as
  ``<split>/<class>/<image>`` (PNG or JPEG), read by :mod:`vggcifar.folders`.
  The class names are the folder names in sorted order. When there is only a
  ``train`` split, a seeded, stratified part of it is held out as the test split.
* ``"synthetic"``: generated pictures with CIFAR-10's shapes whose classes can
  be learned (a class-dependent colour and stripe pattern plus noise). Nothing
  to download: for trying the code on a machine without internet.

Pictures stay ``uint8`` (0-255) and labels stay whole numbers (0-9); turning them
into float32 pixels and one-hot vectors is part of the lesson in the notebooks.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
from importlib import resources
from pathlib import Path

import numpy as np

from . import cifar
from .folders import DataError, read_picture_folder
from .language import say
from .settings import HOLDOUT_SHARE, NAMED_SOURCES, VALIDATIONS, check_subset, data_source_kind

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
#: Share of a train-only folder held out as its test split (CIFAR-10's 10,000 of 60,000 is 1/6).
HOLDOUT_FRACTION = 0.2
#: The CIFAR-10 sample inside the package (``data="sample"``), built by tools/make_sample.py.
SAMPLE_RESOURCE = "resources/cifar10-sample.tar.gz"
#: Its SHA-256, checked at every load; tools/make_sample.py compares its rebuild with it.
SAMPLE_SHA256 = "9c44de3196aa016038c88b76df5fc5d80adefc8b67ac004ddff6164d7625adeb"
CIFAR10_CREDIT = (
    "CIFAR-10: Alex Krizhevsky, Learning Multiple Layers of Features from Tiny Images, 2009, "
    "https://www.cs.toronto.edu/~kriz/cifar.html"
)

__all__ = [
    "DataError",
    "Dataset",
    "load_data",
    "split_validation",
    "pixels_to_float",
    "one_hot",
    "CIFAR10_CLASSES",
    "SAMPLE_SHA256",
]


@dataclasses.dataclass
class Dataset:
    """Pictures and labels of one source, split into train and test.

    It unpacks like ``keras.datasets.cifar10.load_data()``, the article's call, into its
    four arrays: ``(x_train, y_train), (x_test, y_test) = load_data(data)``; the source's
    description, notes and class names stay on the object. The labels are class numbers
    of shape ``(n,)``, where Keras' CIFAR-10 gives ``(n, 1)``: ``to_categorical`` turns
    both into the same one-hot rows.
    """

    x_train: np.ndarray  # (n, height, width, 3) uint8
    y_train: np.ndarray  # (n,) int, class numbers
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple
    source: str  # a one-line description, printed wherever the data is shown
    notes: list = dataclasses.field(default_factory=list)  # caveats a reader must see

    def __iter__(self):
        """``(x_train, y_train)``, then ``(x_test, y_test)``: the article's four arrays."""
        return iter(((self.x_train, self.y_train), (self.x_test, self.y_test)))

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def input_shape(self):
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def is_synthetic(self):
        return self.source.startswith("SYNTHETIC")

    def describe(self):
        """A few lines for the notebook: source, caveats, shapes, classes."""
        lines = [f"Data: {self.source}"]
        lines += [f"Note: {note}" for note in self.notes]
        lines += [
            f"x_train: {self.x_train.shape}   y_train: {self.y_train.shape}",
            f"x_test:  {self.x_test.shape}   y_test:  {self.y_test.shape}",
            f"classes ({self.num_classes}): {', '.join(self.class_names)}",
        ]
        return "\n".join(lines)


def load_data(data="cifar10", subset=None, seed=0, cache=None):
    """Load a source (see the module's help) and optionally keep a small subset.

    ``subset=N`` keeps N training pictures per class and shrinks the test split in
    the same proportion, both stratified and chosen with ``seed``. ``cache`` names the
    folder that keeps the downloaded CIFAR-10 (see :func:`vggcifar.cifar.download`).
    """
    subset = check_subset(subset)
    data_source_kind(data)  # an unknown source raises here, naming the allowed ones
    return load_checked(data, subset, seed, cache)


def load_checked(data, subset=None, seed=0, cache=None):
    """:func:`load_data` for a ``data`` and ``subset`` that are checked already.

    :func:`vggcifar.settings.run_params` checks them (a training run's record holds them
    checked), so a run loads its data with this and does not check them again.
    """
    kind = str(data) if str(data) in NAMED_SOURCES else "folder"  # as data_source_kind says
    if kind == "cifar10":
        dataset = load_cifar10(cache=cache)
    elif kind == "sample":
        dataset = load_sample()
    elif kind == "synthetic":
        dataset = make_synthetic(per_class=subset or 5000, seed=seed)
        return dataset  # generated at the requested size already
    elif cifar.is_official_source(data):
        dataset = load_cifar10(data)
    else:
        dataset = load_image_folder(data, seed=seed)
    if subset is not None:
        dataset = take_subset(dataset, subset, seed=seed)
    return dataset


def pixels_to_float(x):
    """uint8 pixels 0-255 → float32 0-1, as the article does before ``fit``."""
    return np.asarray(x, dtype="float32") / 255.0


def one_hot(labels, num_classes):
    """Class numbers → one-hot rows (one 1, the rest 0), as float32."""
    labels = np.asarray(labels).reshape(-1)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}, got {labels.min()}..{labels.max()}")
    return np.eye(num_classes, dtype="float32")[labels]


# --- the real CIFAR-10 -------------------------------------------------------------


def load_cifar10(path=None, cache=None):
    """The official CIFAR-10: downloaded (checked against its SHA-256), or from ``path``.

    ``path`` names ``cifar-10-python.tar.gz``, the ``cifar-10-batches-py/`` folder it
    unpacks to, or the folder holding that one. Either way the batches are read by
    :mod:`vggcifar.cifar`, which runs no pickle code. A failed download gets a message
    that names the offline sources and says what became of an earlier cached copy; a
    cache folder that cannot keep the archive is named as the problem instead.
    """
    if path is None:
        try:
            path = cifar.download(cache)  # a problem of the cache folder is its own DataError
        except cifar.DownloadError as error:
            raise DataError(
                say(
                    en=f"data='cifar10': {error}. This needs internet access to www.cs.toronto.edu. Without "
                    "it, use one of the offline sources: data='sample' (5,000 real CIFAR-10 pictures inside "
                    "the package), data='synthetic' (generated pictures, for trying the code), "
                    f"data='path/to/{cifar.ARCHIVE}' (a copy of the official archive) or "
                    "data='path/to/folder-or-archive.tar.gz' (your own pictures, laid out as "
                    "<split>/<class>/<image>).",
                    ja=f"data='cifar10': {error}。ダウンロードには www.cs.toronto.edu "
                    "へのインターネット接続が必要です。接続できないときは、"
                    "オフラインで使えるデータを指定してください: data='sample'(パッケージに入っている本物の "
                    "CIFAR-10 画像 5,000 枚)、data='synthetic'(コードを試すための生成画像)、"
                    f"data='path/to/{cifar.ARCHIVE}'(公式アーカイブのコピー)、"
                    "data='path/to/folder-or-archive.tar.gz'(<split>/<class>/<image> "
                    "の形に並べた自分の画像)。",
                )
            ) from error
    x_train, y_train, x_test, y_test = cifar.read_cifar10(path)
    return Dataset(
        x_train,
        y_train,
        x_test,
        y_test,
        CIFAR10_CLASSES,
        f"CIFAR-10 (official, from {Path(cifar.batches_folder(path) or path).name})",
    )


# --- the sample inside the package -------------------------------------------------

#: The sample's decoded arrays, kept for the rest of the process (a later load copies them).
_SAMPLE_ARRAYS = {}


def sample_file():
    """The sample archive inside the installed package (a path-like ``importlib.resources`` object).

    Found as package data, so it is there wherever the package is installed, not only in a clone.
    """
    return resources.files("vggcifar").joinpath(SAMPLE_RESOURCE)


def load_sample():
    """The CIFAR-10 sample inside the package: 4,000 training and 1,000 test pictures.

    The archive is checked against :data:`SAMPLE_SHA256` at every load, so a damaged or
    altered copy is refused by name. The first load in a process decodes the 5,000 JPEG
    pictures; later ones return copies of the kept arrays, so changing one dataset never
    changes another.
    """
    location = sample_file()
    try:
        raw = location.read_bytes()
    except OSError as error:
        raise DataError(
            f"data='sample': the CIFAR-10 sample is missing from the installed package "
            f"({location}: {error.strerror or error}); reinstall vggcifar"
        ) from error
    found = hashlib.sha256(raw).hexdigest()
    if found != SAMPLE_SHA256:
        raise DataError(
            f"data='sample': the CIFAR-10 sample {str(location)!r} is damaged or altered (its "
            f"SHA-256 is {found}, expected {SAMPLE_SHA256}); reinstall vggcifar, or in a clone "
            "run `git checkout vggcifar/resources` or `python tools/make_sample.py`"
        )
    if not _SAMPLE_ARRAYS:
        _SAMPLE_ARRAYS.update(_decode_sample(raw))
    arrays = {name: array.copy() for name, array in _SAMPLE_ARRAYS.items()}
    per_class = len(arrays["y_train"]) // len(CIFAR10_CLASSES), len(arrays["y_test"]) // len(CIFAR10_CLASSES)
    return Dataset(
        **arrays,
        class_names=CIFAR10_CLASSES,
        source=(
            f"CIFAR-10 sample (in the package, offline): {per_class[0]} training + {per_class[1]} "
            "test pictures per class, all drawn from CIFAR-10's TRAINING pictures"
        ),
        notes=[
            "the sample's test pictures are CIFAR-10 training pictures (none of them is in "
            "the sample's training split), not CIFAR-10's test set: its test accuracy is "
            "not comparable with accuracies reported on CIFAR-10's test set",
            "the pictures are JPEG copies, so their pixels differ slightly from the official ones. "
            + CIFAR10_CREDIT,
        ],
    )


def _decode_sample(raw):
    """``{x_train, y_train, x_test, y_test}`` from the sample archive's bytes (already checked).

    The SHA-256 check makes the archive's content known: tools/make_sample.py writes it
    as plain USTAR members ``<split>/<class>/<name>.jpg``, each a 32x32 RGB JPEG. So the
    members are cut out of the unpacked bytes directly (a 512-byte header with the name
    and the size in octal, then the data padded to 512 bytes) rather than through
    ``tarfile``, and Pillow's JPEG decoder is called directly (``Image.frombytes``)
    rather than through ``Image.open``, which parses every header in Python first.
    Together that halves the load (bench/README.md has the measurements).
    """
    from PIL import Image

    packed = gzip.decompress(raw)
    split_of = {"train": ([], []), "test": ([], [])}
    start = 0
    while start + 512 <= len(packed) and packed[start] != 0:  # two zero blocks end the archive
        name = packed[start : start + 100].rstrip(b"\0").decode()
        size = int(packed[start + 124 : start + 136].rstrip(b"\0 "), 8)
        split, class_name, _ = name.split("/")
        split_of[split][0].append(packed[start + 512 : start + 512 + size])
        split_of[split][1].append(CIFAR10_CLASSES.index(class_name))
        start += 512 + -(-size // 512) * 512
    arrays = {}
    for split, (jpegs, labels) in split_of.items():
        pictures = np.empty((len(jpegs), 32, 32, 3), dtype="uint8")
        for i, jpeg in enumerate(jpegs):
            pictures[i] = Image.frombytes("RGB", (32, 32), jpeg, "jpeg", "RGB", "")
        arrays[f"x_{split}"], arrays[f"y_{split}"] = pictures, np.asarray(labels, dtype="int64")
    return arrays


# --- a folder (or .tar.gz) of pictures ----------------------------------------------


def load_image_folder(path, seed=0, holdout_fraction=HOLDOUT_FRACTION):
    """The pictures of a folder or ``.tar.gz`` laid out as ``<split>/<class>/<image>``.

    Without a ``test`` split, a seeded, stratified ``holdout_fraction`` of ``train``
    is held out as the test split, and the dataset's notes say so.
    """
    arrays, class_names, skipped = read_picture_folder(path)
    source = f"picture folder {str(path)!r}"
    notes = []
    if skipped:
        shown = ", ".join(f"{where} ({why})" for where, why in skipped[:5])
        notes.append(
            f"{len(skipped)} entr{'y was' if len(skipped) == 1 else 'ies were'} skipped: "
            f"{shown}{' ...' if len(skipped) > 5 else ''}"
        )
    if "test" in arrays:
        (x_train, y_train), (x_test, y_test) = arrays["train"], arrays["test"]
        return Dataset(x_train, y_train, x_test, y_test, class_names, source, notes)
    x, y = arrays["train"]
    train_idx, test_idx = stratified_split(
        y, holdout_fraction, seed, class_names, "as the test split (the folder has none)"
    )
    note = (
        f"this folder has no test split, so {len(test_idx):,} of its {len(y):,} training "
        f"pictures ({holdout_fraction:.0%}, stratified, seed={seed}) are held out and "
        "used as the test split; they are never trained on"
    )
    return Dataset(x[train_idx], y[train_idx], x[test_idx], y[test_idx], class_names, source, notes + [note])


# --- subsets and held-out splits --------------------------------------------------


def stratified_split(labels, fraction, seed=0, class_names=None, purpose="held out"):
    """Indices (kept, held_out): ``fraction`` of every class (at least one) held out, chosen with ``seed``.

    A class too small to keep a picture after that raises :class:`DataError`, naming it.
    """
    rng = np.random.default_rng(seed)
    kept, held_out = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_out = max(1, round(len(members) * fraction))
        if n_out >= len(members):
            name = class_names[label] if class_names is not None else label
            raise DataError(
                f"class {name!r} has only {len(members)} picture(s): setting aside "
                f"{fraction:.0%} of every class (at least one) {purpose} leaves it "
                "none to train on; give every class at least 2 pictures"
            )
        held_out.append(members[:n_out])
        kept.append(members[n_out:])
    return np.sort(np.concatenate(kept)), np.sort(np.concatenate(held_out))


def split_validation(dataset, validation="test", seed=0):
    """``(x_train, y_train, x_val, y_val)`` for training and its per-epoch validation.

    ``"test"`` validates on the test split, as the article does. ``"holdout"`` sets
    aside :data:`~vggcifar.settings.HOLDOUT_SHARE` of every class's training pictures
    (chosen with ``seed``) and validates on those, so the test split stays unseen
    until the end.
    """
    if validation not in VALIDATIONS:
        raise ValueError(
            say(
                en=f"validation must be one of {VALIDATIONS}, got {validation!r}",
                ja=f"validation は {VALIDATIONS} のどれかにしてください(指定された値: {validation!r})",
            )
        )
    if validation == "test":
        return dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test
    kept, held_out = stratified_split(
        dataset.y_train,
        HOLDOUT_SHARE,
        seed,
        dataset.class_names,
        "for validation='holdout' (use a larger subset, or validation='test')",
    )
    return (
        dataset.x_train[kept],
        dataset.y_train[kept],
        dataset.x_train[held_out],
        dataset.y_train[held_out],
    )


def stratified_sample(labels, per_class, seed=0):
    """Sorted indices of ``per_class`` items of every class, chosen with ``seed``."""
    rng = np.random.default_rng(seed)
    chosen = [
        rng.choice(np.flatnonzero(labels == label), per_class, replace=False) for label in np.unique(labels)
    ]
    return np.sort(np.concatenate(chosen))


def take_subset(dataset, per_class, seed=0):
    """Keep ``per_class`` training pictures per class; shrink test in the same proportion."""
    smallest = int(np.bincount(dataset.y_train).min())
    if per_class > smallest:
        raise DataError(
            say(
                en=f"subset={per_class} is larger than the data: the smallest class has {smallest} training "
                f"pictures; allowed: 1..{smallest} or None (all)",
                ja=f"subset={per_class} がデータを超えています: いちばん少ないクラスの訓練画像は {smallest} "
                f"枚です。1..{smallest} か None(すべて)にしてください",
            )
        )
    test_smallest = int(np.bincount(dataset.y_test).min())
    test_per_class = max(1, min(test_smallest, round(per_class * test_smallest / smallest)))
    train_idx = stratified_sample(dataset.y_train, per_class, seed)
    test_idx = stratified_sample(dataset.y_test, test_per_class, seed)
    return dataclasses.replace(
        dataset,
        x_train=dataset.x_train[train_idx],
        y_train=dataset.y_train[train_idx],
        x_test=dataset.x_test[test_idx],
        y_test=dataset.y_test[test_idx],
        notes=dataset.notes
        + [
            f"subset={per_class}: {per_class} training and "
            f"{test_per_class} test pictures per class (seed={seed})"
        ],
    )


# --- synthetic pictures ----------------------------------------------------------


def make_synthetic(per_class=5000, test_per_class=None, num_classes=10, seed=0, image_size=32):
    """Generated pictures with CIFAR-10's shapes and learnable classes.

    Each class has its own mean colour and its own stripe direction and spacing;
    every picture gets a random stripe phase and strong noise, so a model has to
    look at the picture, not at a single pixel. Defaults give 50,000 + 10,000 like CIFAR-10.
    """
    test_per_class = test_per_class or max(1, per_class // 5)
    rng = np.random.default_rng(seed)
    pattern_rng = np.random.default_rng(1234)  # the classes look the same for every seed
    colours = pattern_rng.uniform(60, 196, size=(num_classes, 3))
    angles = np.linspace(0, np.pi, num_classes, endpoint=False)
    spacings = pattern_rng.uniform(3.0, 8.0, size=num_classes)
    colours, spacings = colours.astype("float32"), spacings.astype("float32")
    rows, cols = np.mgrid[0:image_size, 0:image_size].astype("float32")

    def pictures(n_per_class):
        labels = np.repeat(np.arange(num_classes), n_per_class)
        rng.shuffle(labels)
        phase = rng.uniform(0, 2 * np.pi, size=(len(labels), 1, 1)).astype("float32")
        cos, sin = np.cos(angles[labels]).astype("float32"), np.sin(angles[labels]).astype("float32")
        direction = cos[:, None, None] * cols + sin[:, None, None] * rows
        stripes = np.sin(2 * np.pi * direction / spacings[labels][:, None, None] + phase)
        x = colours[labels][:, None, None, :] + 50 * stripes[..., None]
        x = x + 40 * rng.standard_normal(size=x.shape, dtype="float32")
        return np.clip(x, 0, 255).astype("uint8"), labels.astype("int64")

    x_train, y_train = pictures(per_class)
    x_test, y_test = pictures(test_per_class)
    names = tuple(f"synthetic{i}" for i in range(num_classes))
    return Dataset(
        x_train,
        y_train,
        x_test,
        y_test,
        names,
        "SYNTHETIC pictures (generated patterns, not CIFAR-10)",
        [
            "these are generated stripe patterns, not photographs: accuracy on them "
            "says nothing about CIFAR-10"
        ],
    )


def source_shape(data, seed=0):
    """``(input_shape, class_names)`` of a source, without downloading CIFAR-10."""
    kind = data_source_kind(data)
    if kind in ("cifar10", "sample") or cifar.is_official_source(data):
        return (32, 32, 3), CIFAR10_CLASSES
    if kind == "synthetic":
        sample = make_synthetic(per_class=1, test_per_class=1)
    else:
        sample = load_image_folder(data, seed=seed)
    return sample.input_shape, sample.class_names
