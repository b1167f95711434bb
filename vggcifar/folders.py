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
* the whole is bounded too, since many small files can add up to more than the
  machine holds (a 32 KB archive of identical 1024x1024 PNGs decodes to gigabytes):
  at most :data:`MAX_ENTRIES` entries, :data:`MAX_PICTURES` pictures and
  :data:`MAX_DECODED_BYTES` of decoded pixels in all. The reader works in two passes:
  the first reads every picture's header (its size, without decoding it) and checks
  the totals, so a source over a limit is refused before any picture is decoded; the
  second decodes each picture straight into arrays allocated once, at their final size;
* only the PNG and JPEG decoders are used; other files, links and anything that is not
  a regular file (a pipe named ``x.png``) are skipped and reported by name;
* a class with no usable picture is an error, named; 16-bit pictures are scaled to 8 bits.

Why these totals: CIFAR-10 as pictures is 60,000 files in 22 folders and decodes to
60,000 x 3,072 bytes = 184 MB. :data:`MAX_PICTURES` (100,000) and :data:`MAX_ENTRIES`
(200,000) leave room for a larger set of small pictures, and :data:`MAX_DECODED_BYTES`
(1 GiB, 5.8 times CIFAR-10; 100,000 pictures of 64x64, say) is the most that stays
safe after the notebooks turn pixels into float32, four times the size: 4 GiB, which a
12 GB Colab machine holds beside the model and its training.

Archives are read in memory, never unpacked, so no member can write anywhere. Every
failure, a cut-short archive included, is a :class:`DataError` that names the file.
"""

from __future__ import annotations

import dataclasses
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
#: Most entries (files, folders, links) in a folder or archive (CIFAR-10 as pictures: 60,022).
MAX_ENTRIES = 200_000
#: Most pictures read from a folder or archive (CIFAR-10: 60,000).
MAX_PICTURES = 100_000
#: Most bytes of decoded pixels (RGB, one byte each) in all (CIFAR-10: 184,320,000).
MAX_DECODED_BYTES = 2**30


class DataError(ValueError):
    """A data source that cannot be used, with a message that says what to do instead."""


def read_picture_folder(path):
    """``({split: (pictures, labels)}, class_names, skipped)`` from a folder or ``.tar.gz``.

    Every split has the same classes; all pictures must have one size; they become
    RGB ``uint8``. ``skipped`` lists the entries that were not read, with the reason.
    Sizes and totals are checked on the pictures' headers before any picture is decoded.
    """
    path = Path(path).expanduser()
    source = _Folder(path) if path.is_dir() else _Archive(path)
    with source:
        pictures, skipped = _plan(source, path)
        splits = {}
        for picture in pictures:
            splits.setdefault(picture.split, {}).setdefault(picture.class_name, []).append(picture)
        class_names = tuple(sorted(splits["train"]))
        if "test" in splits and tuple(sorted(splits["test"])) != class_names:
            raise DataError(
                f"data: class folders differ between splits in {str(path)!r}: "
                f"train has {list(class_names)}, test has {sorted(splits['test'])}; "
                "both splits must have the same class folders"
            )
        if len(class_names) < 2:
            raise DataError(f"data: {str(path)!r} needs at least 2 class folders, found {list(class_names)}")
        sizes = sorted({p.shape for p in pictures})
        if len(sizes) > 1:
            raise DataError(
                f"data: pictures in {str(path)!r} must all have one size, found {[s[:2] for s in sizes[:3]]}"
            )
        arrays = _decode_all(source, pictures, splits, class_names, sizes[0])
    return arrays, class_names, skipped


@dataclasses.dataclass
class _Picture:
    """One picture found by the first pass: where it is, and its size from its header."""

    split: str
    class_name: str
    where: str
    handle: object  # what the source needs to read the file again
    shape: tuple  # (height, width, 3)
    index: int = 0  # its row in its split's array, set once all are known


# --- what a folder or an archive holds ----------------------------------------------


class _Folder:
    """The entries of a folder: ``(parts, kind, size, handle)``; kind is file/dir/link/other."""

    def __init__(self, root):
        self.root = root

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def entries(self):
        found = []
        for entry in self.root.rglob("*"):
            found.append(entry)
            if len(found) > MAX_ENTRIES:
                raise _too_many(self.root, "entries (files and folders)", MAX_ENTRIES, "MAX_ENTRIES")
        for entry in sorted(found):
            parts = entry.relative_to(self.root).parts
            if entry.is_symlink():
                yield parts, "link", 0, None
            elif entry.is_dir():
                yield parts, "dir", 0, None
            elif entry.is_file():
                yield parts, "file", entry.stat().st_size, entry
            else:  # a pipe, a socket, a device: reading could hang
                yield parts, "other", 0, None

    def read(self, entry, where):
        with open(entry, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise _too_large_file(where, self.root, f"more than {MAX_FILE_BYTES:,}")
        return raw


class _Archive:
    """The same for the members of a ``.tar.gz``, every name checked before anything is read.

    Every ``tarfile`` failure (a cut-short or damaged archive raises ``EOFError``,
    ``tarfile.ReadError``, ``zlib.error`` or ``OSError`` at any point) becomes a
    :class:`DataError` that names the archive.
    """

    FAILURES = (tarfile.TarError, EOFError, OSError, zlib.error, ValueError)

    def __init__(self, path):
        self.path = path
        self.archive = None

    def __enter__(self):
        try:
            self.archive = tarfile.open(self.path, "r:*")
        except DataError:
            raise
        except self.FAILURES as error:
            raise DataError(
                f"data: cannot open the archive {str(self.path)!r} ({error}); it must be a "
                "complete .tar.gz laid out as <split>/<class>/<image>"
            ) from error
        return self

    def __exit__(self, *exc):
        self.archive.close()
        return False

    def _damaged(self, error):
        return DataError(
            f"data: the archive {str(self.path)!r} is damaged or cut short "
            f"({type(error).__name__}: {error}); download or copy it again"
        )

    def entries(self):
        count = 0
        try:
            for member in self.archive:
                count += 1
                if count > MAX_ENTRIES:
                    raise _too_many(self.path, "entries (files and folders)", MAX_ENTRIES, "MAX_ENTRIES")
                name = PurePosixPath(member.name)
                if name.is_absolute() or ".." in name.parts:
                    raise DataError(
                        f"data: the archive {str(self.path)!r} holds the member "
                        f"{member.name!r}, whose name points outside it; refused"
                    )
                parts = tuple(p for p in name.parts if p not in ("", "."))
                if member.issym() or member.islnk():
                    yield parts, "link", 0, None
                elif member.isdir():
                    yield parts, "dir", 0, None
                elif member.isfile():
                    yield parts, "file", member.size, member
                else:
                    yield parts, "other", 0, None
            # tarfile stops at the end-of-archive blocks; the compressed stream goes on to its
            # check sum and length. Reading to its end finds an archive cut there too.
            while self.archive.fileobj.read(2**20):
                pass
        except DataError:
            raise
        except self.FAILURES as error:
            raise self._damaged(error) from error

    def read(self, member, where):
        try:
            raw = self.archive.extractfile(member).read()
        except self.FAILURES as error:
            raise self._damaged(error) from error
        if len(raw) != member.size:  # tarfile pads a short member with nothing: it is cut short
            raise self._damaged(EOFError(f"{where!r} holds {len(raw):,} of its {member.size:,} bytes"))
        return raw


def _too_many(path, what, limit, name):
    return DataError(
        f"data: {str(path)!r} holds more than {limit:,} {what}, the most allowed ({name}; "
        "CIFAR-10 has 60,000 pictures); refused before decoding any picture. Use a smaller "
        "set, or a subset of it"
    )


def _too_large_file(where, path, size):
    return DataError(
        f"data: {where!r} in {str(path)!r} is {size} bytes, more than the "
        f"{MAX_FILE_BYTES:,} a small picture may have; refused before reading it"
    )


def _plan(source, path):
    """The first pass: ``([_Picture], skipped)``, strictly by ``<split>/<class>/<file>``.

    Every picture file is read (one at a time) for its header only; the limits on each
    picture and on the totals are checked here, before anything is decoded.
    """
    pictures, skipped, seen_classes, decoded_bytes = [], [], set(), 0
    for parts, kind, size, handle in source.entries():
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
            raise _too_large_file(where, path, f"{size:,}")
        if len(pictures) == MAX_PICTURES:
            raise _too_many(path, "pictures", MAX_PICTURES, "MAX_PICTURES")
        width, height = picture_size(source.read(handle, where), where, MAX_PIXELS)
        decoded_bytes += width * height * 3
        if decoded_bytes > MAX_DECODED_BYTES:
            raise DataError(
                f"data: the pictures in {str(path)!r} would take more than "
                f"{MAX_DECODED_BYTES:,} bytes decoded (MAX_DECODED_BYTES; CIFAR-10 takes "
                f"184,320,000), reached at {where!r}, picture {len(pictures) + 1:,} "
                f"({width}x{height}); refused before decoding any. Use fewer or smaller pictures"
            )
        pictures.append(_Picture(parts[0], parts[1], where, handle, (height, width, 3)))
    have = {(p.split, p.class_name) for p in pictures}
    empty = sorted("/".join(c) for c in seen_classes if c not in have)
    if empty:
        reasons = [f"{w} ({r})" for w, r in skipped if "/".join(w.split("/")[:2]) in empty]
        raise DataError(
            f"data: class folder(s) {empty} in {str(path)!r} hold no PNG or JPEG "
            f"picture{'; skipped: ' + ', '.join(reasons[:5]) if reasons else ''}"
        )
    if not any(p.split == "train" for p in pictures):
        raise DataError(
            f"data: no pictures (PNG or JPEG) under {str(path)!r}/train/<class>/; "
            f"the folder must be laid out as <split>/<class>/<image>"
        )
    return pictures, skipped


def _decode_all(source, pictures, splits, class_names, shape):
    """The second pass: ``{split: (pictures, labels)}``, each array allocated once at its size.

    Rows are grouped by class (in ``class_names`` order); the files are read again in
    the order of the first pass, so an archive is decompressed once more, front to back.
    """
    arrays = {}
    for split, by_class in splits.items():
        row = 0
        labels = []
        for label, name in enumerate(class_names):
            for picture in by_class[name]:
                picture.index = row
                row += 1
            labels += [label] * len(by_class[name])
        arrays[split] = (np.empty((row, *shape), dtype="uint8"), np.asarray(labels, dtype="int64"))
    for picture in pictures:
        pixels = decode_picture(source.read(picture.handle, picture.where), picture.where, MAX_PIXELS)
        if pixels.shape != shape:
            raise DataError(
                f"data: picture {picture.where!r} changed while it was read (its size was "
                f"{shape[:2]}, now {pixels.shape[:2]}); read the folder again"
            )
        arrays[picture.split][0][picture.index] = pixels
    return arrays


# --- one picture ---------------------------------------------------------------------


def decode_picture(raw, name, max_pixels=MAX_PIXELS, formats=DECODERS):
    """RGB ``uint8`` pixels of a picture file's bytes; its size is checked before it is decoded.

    Only the decoders in ``formats`` are tried. 16-bit pictures are scaled to 8 bits
    (a plain conversion would clip them to white).
    """
    return _with_picture(raw, name, max_pixels, formats, to_rgb)


def picture_size(raw, name, max_pixels=MAX_PIXELS, formats=DECODERS):
    """``(width, height)`` of a picture file's bytes, from its header, without decoding it."""
    return _with_picture(raw, name, max_pixels, formats, lambda picture: picture.size)


def _with_picture(raw, name, max_pixels, formats, use):
    """``use(picture)`` on the opened picture, once its size is checked; every failure a DataError."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(raw), formats=list(formats)) as picture:
            width, height = picture.size
            if width * height > max_pixels:
                raise DataError(
                    f"data: picture {name!r} is {width}x{height} pixels, more than "
                    f"the {max_pixels:,} allowed; refused before decoding it"
                )
            return use(picture)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as error:
        if isinstance(error, DataError):
            raise
        raise DataError(f"data: cannot read picture {name!r} as {' or '.join(formats)}: {error}") from error


#: Pillow pixel modes that convert to RGB as they are (colour, grey, palette, with or without alpha).
CONVERTIBLE_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV")
#: 16-bit grey (PNG, TIFF): scaled to 8 bits, since a plain conversion clips them to white.
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")
#: 32-bit grey, whole numbers ("I") or floats ("F", scientific TIFFs): scaled from their range.
WIDE_MODES = ("I", "F")
#: Every mode :func:`to_rgb` reads, named in its error.
PICTURE_MODES = CONVERTIBLE_MODES + SIXTEEN_BIT_MODES + WIDE_MODES


def to_rgb(picture):
    """A Pillow picture as RGB ``uint8`` pixels, deep ones scaled rather than clipped.

    16-bit grey is shifted to 8 bits. 32-bit grey ("I", "F") is scaled from its range:
    floats within 0-1 (the usual convention) become 0-255, whole numbers within 0-65535
    are taken as 16-bit, and anything else is stretched from its minimum to its maximum;
    Pillow's own conversion truncates floats, turning a 0-1 picture all black. Raises
    ValueError for another mode, or for NaN or infinite pixels, naming what is allowed.
    """
    if picture.mode in SIXTEEN_BIT_MODES or picture.mode in WIDE_MODES:
        values = np.asarray(picture, dtype="float64" if picture.mode == "I" else "float32")
        if not np.isfinite(values).all():
            raise ValueError(f"the picture (mode {picture.mode}) has NaN or infinite pixels")
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        if picture.mode == "F" and low >= 0 and high <= 1:
            gray = values * 255
        elif picture.mode != "F" and low >= 0 and high <= 65535:
            gray = values / 256  # the 8 high bits of 16
        elif high > low:
            gray = (values - low) * (255 / (high - low))
        else:  # one value everywhere, outside 0-1: black below, white above
            gray = np.full(values.shape, 0 if high < 0 else 255)
        gray = np.clip(np.floor(gray + (0.5 if picture.mode == "F" else 0)), 0, 255).astype("uint8")
        return np.repeat(gray[..., None], 3, axis=-1)
    if picture.mode not in CONVERTIBLE_MODES:
        raise ValueError(
            f"the picture's pixel mode {picture.mode!r} is not supported; allowed: {', '.join(PICTURE_MODES)}"
        )
    return np.asarray(picture.convert("RGB"))
