"""Writing files so that a cut-off write never destroys what was there before.

Every file the project writes goes through :func:`replacing`: the new content is
written under a temporary name in the same folder, flushed to the disk (``fsync``),
and only then renamed over the old file in one step, and the folder's entry is
flushed too. A kernel killed at any moment leaves either the old file or the new
one, never half of one. On Google Drive, which uploads in the background, the
flush makes a file complete before anything that points to it is written.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

TEMPORARY_PREFIX = "tmp-"


@contextlib.contextmanager
def replacing(path):
    """Yield a temporary path beside ``path``; when the block ends without error, it becomes ``path``.

    The temporary name keeps the file's suffix (Keras checks ``.keras``,
    ``.weights.h5``...). If the block fails, the temporary file is removed and
    ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(TEMPORARY_PREFIX + path.name)
    try:
        yield temporary
        _flush_file(temporary)
        os.replace(temporary, path)
        _flush_folder(path.parent)
    finally:
        temporary.unlink(missing_ok=True)


def write_text(path, text):
    """Write ``text`` (UTF-8) to ``path`` through :func:`replacing`."""
    with replacing(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def write_json(path, obj):
    """Write ``obj`` as indented JSON through :func:`replacing`."""
    write_text(path, json.dumps(obj, indent=1) + "\n")


def read_json(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _flush_file(path):
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _flush_folder(folder):
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:  # some systems (Windows) cannot open a folder; the rename still happened
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)
