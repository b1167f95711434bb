"""Reading pictures from a folder, or from a ``.tar.gz`` of one, laid out as ``<split>/<class>/<image>``.

:func:`read_picture_folder` returns the pictures of each split as arrays, with the
class names (the folder names, sorted) and a report of what it skipped.
:mod:`vggcifar.data` turns the result into a :class:`~vggcifar.data.Dataset`.

The reader is strict and bounded, because a folder or an archive can hold anything:

* exactly ``<split>/<class>/<file>`` at the top: deeper (nested) names, ``..`` and
  absolute names are refused, not guessed at;
* every file is sized before it is read (at most :data:`MAX_FILE_BYTES`) and every
  picture before it is decoded (at most :data:`MAX_PIXELS`), so a small archive with a
  huge member, or a small PNG that would decode to gigabytes, is refused in bounded
  memory;
* only the PNG and JPEG decoders are used; other files, links and anything that is not
  a regular file (a pipe named ``x.png``) are skipped and reported by name;
* a class with no usable picture is an error, named; 16-bit pictures are scaled to 8 bits.

Archives are read in memory, never unpacked, so no member can write anywhere. Every
failure is a :class:`DataError` that names the file.
"""

from __future__ import annotations

import io
import tarfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
DECODERS = ("PNG", "JPEG")
SPLITS = ("train", "test")
#: Largest picture file read (CIFAR-10's pictures are about 1 KB as PNG).
MAX_FILE_BYTES = 1_000_000
#: Largest picture decoded, in pixels (1024 x 1024; CIFAR-10's are 32 x 32).
MAX_PIXELS = 1024 * 1024


class DataError(ValueError):
    """A data source that cannot be used, with a message that says what to do instead."""


def read_picture_folder(path):
    """``({split: (pictures, labels)}, class_names, skipped)`` from a folder or ``.tar.gz``.

    Every split has the same classes; all pictures must have one size; they become
    RGB ``uint8``. ``skipped`` lists the entries that were not read, with the reason.
    """
    path = Path(path).expanduser()
    entries = _folder_entries(path) if path.is_dir() else _archive_entries(path)
    splits, skipped = _group_by_split(entries, path)
    class_names = tuple(sorted(splits["train"]))
    if "test" in splits and tuple(sorted(splits["test"])) != class_names:
        raise DataError(
            f"data: class folders differ between splits in {str(path)!r}: "
            f"train has {list(class_names)}, test has {sorted(splits['test'])}; "
            "both splits must have the same class folders"
        )
    if len(class_names) < 2:
        raise DataError(f"data: {str(path)!r} needs at least 2 class folders, found {list(class_names)}")
    arrays = {split: _stack(by_class, class_names, path) for split, by_class in splits.items()}
    sizes = {x.shape[1:] for x, _ in arrays.values()}
    if len(sizes) > 1:
        raise DataError(f"data: pictures in {str(path)!r} must all have one size, found {sizes}")
    return arrays, class_names, skipped


# --- what a folder or an archive holds ----------------------------------------------


def _folder_entries(root):
    """``(parts, kind, size, read)`` for everything under ``root``; kind is file/dir/link/other."""
    for entry in sorted(root.rglob("*")):
        parts = entry.relative_to(root).parts
        if entry.is_symlink():
            yield parts, "link", 0, None
        elif entry.is_dir():
            yield parts, "dir", 0, None
        elif entry.is_file():
            yield parts, "file", entry.stat().st_size, entry.read_bytes
        else:  # a pipe, a socket, a device: reading could hang
            yield parts, "other", 0, None


def _archive_entries(path):
    """The same for the members of a ``.tar.gz``, checking every name before anything is read."""
    try:
        archive = tarfile.open(path, "r:*")  # noqa: SIM115 (closed by the `with archive:` below)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
        raise DataError(
            f"data: cannot open the archive {str(path)!r} ({error}); it must be a "
            "complete .tar.gz laid out as <split>/<class>/<image>"
        ) from error
    with archive:
        try:
            for member in archive:
                name = PurePosixPath(member.name)
                if name.is_absolute() or ".." in name.parts:
                    raise DataError(
                        f"data: the archive {str(path)!r} holds the member "
                        f"{member.name!r}, whose name points outside it; refused"
                    )
                parts = tuple(p for p in name.parts if p not in ("", "."))
                if member.issym() or member.islnk():
                    yield parts, "link", 0, None
                elif member.isdir():
                    yield parts, "dir", 0, None
                elif member.isfile():
                    yield parts, "file", member.size, (lambda m=member: archive.extractfile(m).read())
                else:
                    yield parts, "other", 0, None
        except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
            raise DataError(
                f"data: the archive {str(path)!r} is damaged or cut short ({error}); "
                "download or copy it again"
            ) from error


def _group_by_split(entries, path):
    """``({split: {class: [picture arrays]}}, skipped)``, strictly by ``<split>/<class>/<file>``."""
    splits, skipped, seen_classes = {}, [], set()
    for parts, kind, size, read in entries:
        where = "/".join(parts)
        if len(parts) > 3 or (len(parts) == 3 and kind == "dir"):
            raise DataError(
                f"data: {where!r} in {str(path)!r} is nested too deep: pictures must "
                "lie exactly at <split>/<class>/<image> at the top of the folder or "
                "archive"
            )
        if len(parts) >= 1 and parts[0] not in SPLITS and (len(parts) > 1 or kind == "dir"):
            raise DataError(
                f"data: split folder {parts[0]!r} in {str(path)!r} is not allowed; "
                f"split folders must be named {' or '.join(SPLITS)} and lie at the "
                f"top (if {parts[0]!r} wraps them, point data at that folder, or "
                "pack its contents without it)"
            )
        if len(parts) == 2 and kind == "dir":
            seen_classes.add(parts)
            continue
        if len(parts) < 3:
            if kind != "dir":
                skipped.append((where, "not inside a <split>/<class>/ folder"))
            continue
        seen_classes.add(parts[:2])
        if kind != "file":
            skipped.append((where, "a link" if kind == "link" else "not a regular file"))
            continue
        if PurePosixPath(parts[2]).suffix.lower() not in IMAGE_SUFFIXES:
            skipped.append((where, "not a .png or .jpg file"))
            continue
        if size > MAX_FILE_BYTES:
            raise DataError(
                f"data: {where!r} in {str(path)!r} is {size:,} bytes, more than the "
                f"{MAX_FILE_BYTES:,} a small picture may have; refused before reading it"
            )
        picture = decode_picture(read(), where, MAX_PIXELS)
        splits.setdefault(parts[0], {}).setdefault(parts[1], []).append(picture)
    empty = sorted("/".join(c) for c in seen_classes if c[1] not in splits.get(c[0], {}))
    if empty:
        reasons = [f"{w} ({r})" for w, r in skipped if "/".join(w.split("/")[:2]) in empty]
        raise DataError(
            f"data: class folder(s) {empty} in {str(path)!r} hold no PNG or JPEG "
            f"picture{'; skipped: ' + ', '.join(reasons[:5]) if reasons else ''}"
        )
    if "train" not in splits:
        raise DataError(
            f"data: no pictures (PNG or JPEG) under {str(path)!r}/train/<class>/; "
            f"the folder must be laid out as <split>/<class>/<image>"
        )
    return splits, skipped


# --- one picture ---------------------------------------------------------------------


def decode_picture(raw, name, max_pixels=MAX_PIXELS, formats=DECODERS):
    """RGB ``uint8`` pixels of a picture file's bytes; its size is checked before it is decoded.

    Only the decoders in ``formats`` are tried. 16-bit pictures are scaled to 8 bits
    (a plain conversion would clip them to white).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(raw), formats=list(formats)) as picture:
            width, height = picture.size
            if width * height > max_pixels:
                raise DataError(
                    f"data: picture {name!r} is {width}x{height} pixels, more than "
                    f"the {max_pixels:,} allowed; refused before decoding it"
                )
            return to_rgb(picture)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as error:
        if isinstance(error, DataError):
            raise
        raise DataError(f"data: cannot read picture {name!r} as {' or '.join(formats)}: {error}") from error


def to_rgb(picture):
    """A Pillow picture as RGB ``uint8`` pixels, 16-bit ones scaled rather than clipped."""
    if picture.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):  # 16-bit grey (PNG)
        gray = np.clip(np.asarray(picture).astype("int64") >> 8, 0, 255).astype("uint8")
        return np.repeat(gray[..., None], 3, axis=-1)
    return np.asarray(picture.convert("RGB"))


def _stack(by_class, class_names, path):
    pictures, labels = [], []
    for label, name in enumerate(class_names):
        pictures += by_class[name]
        labels += [label] * len(by_class[name])
    sizes = {p.shape for p in pictures}
    if len(sizes) > 1:
        raise DataError(f"data: pictures in {str(path)!r} must all have one size, found {sorted(sizes)[:3]}")
    return np.stack(pictures), np.asarray(labels, dtype="int64")
