"""Reading pictures from a folder, or from a ``.tar.gz`` of one, laid out as ``<split>/<class>/<image>``.

:func:`read_picture_folder` returns the pictures of each split as arrays, with the
class names (the folder names, sorted). Archives are read in memory, never
unpacked, so no member can write outside a folder. :mod:`vggcifar.data` turns the
result into a :class:`~vggcifar.data.Dataset`.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
SPLITS = ("train", "test")


class DataError(ValueError):
    """A data source that cannot be used, with a message that says what to do instead."""


def read_picture_folder(path):
    """``({split: (pictures, labels)}, class_names)`` from a folder or ``.tar.gz``.

    Every split has the same classes; all pictures must have one size; they are
    converted to RGB ``uint8``.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        files = [(p.relative_to(path).parts, p.read_bytes)
                 for p in sorted(path.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES]
        splits = _group_by_split(files, path)
    else:
        with tarfile.open(path, "r:*") as archive:
            files = [(Path(m.name).parts, (lambda m=m: archive.extractfile(m).read()))
                     for m in archive.getmembers()
                     if m.isfile() and Path(m.name).suffix.lower() in IMAGE_SUFFIXES]
            splits = _group_by_split(files, path)
    class_names = tuple(sorted(splits["train"]))
    if "test" in splits and tuple(sorted(splits["test"])) != class_names:
        raise DataError(
            f"data: class folders differ between splits in {str(path)!r}: "
            f"train has {list(class_names)}, test has {sorted(splits['test'])}; "
            "both splits must have the same class folders")
    if len(class_names) < 2:
        raise DataError(f"data: {str(path)!r} needs at least 2 class folders, "
                        f"found {list(class_names)}")
    arrays = {split: _stack(by_class, class_names, path) for split, by_class in splits.items()}
    sizes = {x.shape[1:] for x, _ in arrays.values()}
    if len(sizes) > 1:
        raise DataError(f"data: pictures in {str(path)!r} must all have one size, found {sizes}")
    return arrays, class_names


def _group_by_split(files, path):
    """{split: {class: [picture arrays]}} from (path parts, read function) pairs."""
    splits = {}
    for parts, read in files:
        if len(parts) < 3:
            raise DataError(f"data: {str(path)!r} must be laid out as <split>/<class>/<image>; "
                            f"found {'/'.join(parts)!r}")
        split, class_name = parts[-3], parts[-2]
        if split not in SPLITS:
            raise DataError(f"data: split folder {split!r} in {str(path)!r} is not allowed; "
                            f"split folders must be named {' or '.join(SPLITS)}")
        splits.setdefault(split, {}).setdefault(class_name, []).append(_decode(read(), parts))
    if "train" not in splits:
        raise DataError(f"data: no pictures (PNG or JPEG) under {str(path)!r}/train/<class>/; "
                        f"the folder must be laid out as <split>/<class>/<image>")
    return splits


def _decode(raw, parts):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(raw)) as picture:
            return np.asarray(picture.convert("RGB"))
    except (UnidentifiedImageError, OSError) as error:
        raise DataError(f"data: cannot read picture {'/'.join(parts)!r}: {error}") from error


def _stack(by_class, class_names, path):
    pictures, labels = [], []
    for label, name in enumerate(class_names):
        pictures += by_class[name]
        labels += [label] * len(by_class[name])
    sizes = {p.shape for p in pictures}
    if len(sizes) > 1:
        raise DataError(f"data: pictures in {str(path)!r} must all have one size, "
                        f"found {sorted(sizes)[:3]}")
    return np.stack(pictures), np.asarray(labels, dtype="int64")
