"""Writing files so that a cut-off write never destroys what was there before.

Every file the project writes goes through :func:`replacing`: the new content is
written under a temporary name in the same folder, flushed to the disk (``fsync``),
and only then renamed over the old file in one step, and the folder's entry is
flushed too. A kernel killed at any moment leaves either the old file or the new
one, never half of one. On Google Drive, which uploads in the background, the
flush makes a file complete before anything that points to it is written.

:func:`acquire_lock` keeps a second writer out of a folder that one process is
writing to (two Colab machines sharing a run folder on Drive, say).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import socket
import sys
import time
from pathlib import Path

TEMPORARY_PREFIX = "tmp-"


def temporary_name(name):
    """A temporary name for ``name`` that no other writer uses: ``tmp-<pid>-<random>-<name>``.

    Unique per process and per call, so two writers of the same file (two threads, two
    processes) never write into each other's temporary file; it ends with ``name``, so it
    keeps the suffix (Keras checks ``.keras``, ``.weights.h5``...).
    """
    return f"{TEMPORARY_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-{name}"


def is_temporary_of(entry, name):
    """Whether the file name ``entry`` is a temporary file of ``name``.

    Both :func:`temporary_name`'s names and the ``tmp-<name>`` that earlier versions of
    this project used (and may have left in a run folder) count.
    """
    return (
        re.fullmatch(re.escape(TEMPORARY_PREFIX) + r"(?:\d+-[0-9a-f]+-)?" + re.escape(name), entry)
        is not None
    )


@contextlib.contextmanager
def replacing(path):
    """Yield a temporary path beside ``path``; when the block ends without error, it becomes ``path``.

    The temporary name (:func:`temporary_name`) is unique to this call and keeps the
    file's suffix. Two writers of the same path each write their own temporary file and
    each replaces ``path`` in one step: the result is one of their complete contents. If
    the block fails, the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(temporary_name(path.name))
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


# --- one writer at a time ------------------------------------------------------------

#: A lock whose holder has shown no sign of life for this long is taken over.
STALE_AFTER_SECONDS = 600


class LockedError(RuntimeError):
    """Another process is writing to the folder; the message names it."""


def _me():
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _alive(pid):
    """Whether process ``pid`` on this machine still runs; asking never disturbs it.

    A lock with no usable process id (not a whole number above 0) has no live holder:
    on POSIX, ``os.kill`` would read ``0`` and ``-1`` as "every process of the group
    or user", which always answers yes.
    """
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False
    return _alive_on_windows(pid) if sys.platform == "win32" else _alive_on_posix(pid)


def _alive_on_posix(pid):
    """POSIX (Linux, macOS): signal 0 checks that the process exists and sends nothing."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


#: Windows: the access right that reads a process's exit code, ...
_PROCESS_QUERY_LIMITED_INFORMATION = 0x1000
#: ... the exit code of a process that has not ended, ...
_STILL_ACTIVE = 259
#: ... and OpenProcess's error for a process that exists but belongs to another user.
_ERROR_ACCESS_DENIED = 5


def _alive_on_windows(pid):
    """Windows: open the process and read its exit code; never ``os.kill``.

    On Windows, ``os.kill(pid, 0)`` sends CTRL_C_EVENT (signal 0) to the process: it
    would interrupt the lock's holder instead of asking about it. A process that ended
    with exit code 259 reads as alive (Windows cannot tell it apart); its lock then
    stays until someone removes it, which is the safe side.
    """
    import ctypes
    from ctypes import wintypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.OpenProcess.argtypes = (wintypes.DWORD, wintypes.BOOL, wintypes.DWORD)
    kernel32.OpenProcess.restype = wintypes.HANDLE
    kernel32.GetExitCodeProcess.argtypes = (wintypes.HANDLE, ctypes.POINTER(wintypes.DWORD))
    kernel32.GetExitCodeProcess.restype = wintypes.BOOL
    kernel32.CloseHandle.argtypes = (wintypes.HANDLE,)
    handle = kernel32.OpenProcess(_PROCESS_QUERY_LIMITED_INFORMATION, False, pid)
    if not handle:  # no such process, or one we may not open (it exists: alive)
        return ctypes.get_last_error() == _ERROR_ACCESS_DENIED
    try:
        code = wintypes.DWORD()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True  # cannot tell: keep the lock rather than take a live one over
        return code.value == _STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


def _why_stale(holder, now):
    """Why ``holder``'s lock may be taken over, or None while it is alive."""
    me = _me()
    if holder.get("host") == me["host"]:
        if holder.get("pid") == me["pid"]:
            return "it is this process's own, left by a run that was interrupted"
        if not _alive(holder.get("pid", -1)):
            return f"process {holder.get('pid')} has ended"
        return None
    silent = now - float(holder.get("heartbeat", 0))
    if silent > STALE_AFTER_SECONDS:
        return (
            f"its holder on {holder.get('host')} has shown no sign of life for "
            f"{silent / 60:.0f} minutes (a disconnected Colab runtime leaves such a lock)"
        )
    return None


def acquire_lock(path, what="this folder"):
    """Take the lock file ``path`` for this process; returns a note when a stale lock was taken over.

    The lock holds the host, the process and the time. A lock of a live process (on
    this machine), or one refreshed in the last ``STALE_AFTER_SECONDS`` (on another
    machine, e.g. sharing a folder on Google Drive), raises :class:`LockedError`.
    """
    path = Path(path)
    now = time.time()
    mine = {**_me(), "started": now, "heartbeat": now}
    try:
        with open(path, "x", encoding="utf-8") as handle:  # fails if the lock exists
            json.dump(mine, handle)
        return None
    except FileExistsError:
        pass
    try:
        holder = read_json(path)
    except (OSError, ValueError):
        holder = {}
    reason = _why_stale(holder, now) if holder else "the lock file is unreadable"
    if reason is None:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", now)))
        raise LockedError(
            f"{what} is being written by process {holder.get('pid')} on {holder.get('host')} "
            f"(since {started}, last sign of life {now - float(holder.get('heartbeat', now)):.0f} s "
            f"ago). Two writers would spoil it: wait until that one has finished, or stop it. "
            f"A lock whose holder has ended, or has been silent for {STALE_AFTER_SECONDS // 60} "
            f"minutes, is taken over by itself; the lock is {str(path)!r}"
        )
    write_json(path, mine)
    return f"took over the lock of process {holder.get('pid')} on {holder.get('host')}: {reason}"


def held_by_me(path):
    """The lock's content when this process holds it; None otherwise (or when unreadable)."""
    try:
        holder = read_json(path)
    except (OSError, ValueError):
        return None
    return holder if {k: holder.get(k) for k in ("host", "pid")} == _me() else None


def refresh_lock(path):
    """Show that the holder (this process) is alive."""
    holder = held_by_me(path)
    if holder is not None:
        write_json(path, {**holder, "heartbeat": time.time()})


def release_lock(path):
    """Remove the lock file if this process holds it."""
    if held_by_me(path) is not None:
        Path(path).unlink(missing_ok=True)
