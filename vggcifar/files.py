"""Writing files so that a cut-off write never destroys what was there before.

Every file the project writes goes through :func:`replacing`: the new content is
written under a temporary name in the same folder, flushed to the disk (``fsync``),
and only then renamed over the old file in one step, and the folder's entry is
flushed too. A kernel killed at any moment leaves either the old file or the new
one, never half of one. On Google Drive, which uploads in the background, the
flush makes a file complete before anything that points to it is written.

:func:`acquire_lock` keeps a second writer out of a folder that one process is
writing to (two Colab machines sharing a run folder on Drive, say). Of any number of
processes that try at the same instant, exactly one gets it, whether the folder had no
lock, a stale one or a damaged one; the others get :class:`LockedError`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import sys
import time
from pathlib import Path

from .language import say

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
    the block fails, the temporary file is removed and ``path`` is left as it was; a full
    disk is reported as :class:`DiskFullError`, naming the file and the space left.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(temporary_name(path.name))
    try:
        yield temporary
        _flush_file(temporary)
        os.replace(temporary, path)
        _flush_folder(path.parent)
    except OSError as error:
        if not _disk_full(error):
            raise
        temporary.unlink(missing_ok=True)  # give back what the cut-off write took
        raise DiskFullError(path, error) from None
    finally:
        temporary.unlink(missing_ok=True)


class DiskFullError(OSError):
    """A write that found the disk full; ``path`` (and what it held before) is unchanged."""

    def __init__(self, path, error):
        path = Path(path)
        try:
            free = shutil.disk_usage(path.parent).free / 1e6
            left, left_ja = f"{free:,.0f} MB free", f"空き {free:,.0f} MB"
        except OSError:
            left, left_ja = "free space unknown", "空き容量は不明"
        super().__init__(
            errno.ENOSPC,
            say(
                en=f"disk full: {str(path)!r} could not be written ({left} on that disk; {error}). Nothing "
                "was replaced: the file there before, if any, is as it was. Free some space (or choose a "
                "folder on another disk) and run the same cells again: a run resumes from its last backup",
                ja=f"ディスクがいっぱいです: {str(path)!r} を書き込めませんでした(そのディスクの{left_ja}、"
                f"{error})。何も置き換えていないので、前からあったファイルはそのままです。"
                "空きを作るか別のディスクのフォルダを選んでから、同じセルをもう一度実行してください。"
                "ランは最後のバックアップから再開します",
            ),
        )
        self.path = path

    def __str__(self):
        return self.strerror


def _disk_full(error):
    """True for an OSError that says the disk is full (h5py reports it in its message only)."""
    text = str(error)
    return error.errno == errno.ENOSPC or "No space left on device" in text or "errno = 28" in text


@contextlib.contextmanager
def working_folder(path):
    """Inside the block ``path`` is the working folder, so plain file names land there.

    Notebook 05 saves the article's files with the article's plain names
    (``model.save("cifar10-CNN.h5")``) and wants them in the run folder. The folder is
    made if missing; the working folder before is restored when the block ends, error
    or not (``contextlib.chdir`` does the same from Python 3.11 on).
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    before = os.getcwd()
    os.chdir(path)
    try:
        yield path
    finally:
        os.chdir(before)


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

#: An unreadable (empty, cut-off) lock younger than this may be one being written right
#: now (where a lock cannot be created complete, see :func:`_create`): it is waited for,
#: not taken over. An older one is left over from a crash and is taken over.
UNREADABLE_GRACE_SECONDS = 10

#: How long a contender waits for another one that is taking over a stale lock (or writing
#: a new one) before it gives up with :class:`LockedError`.
WAIT_SECONDS = 2.0


class LockedError(RuntimeError):
    """Another process is writing to the folder; the message names it and how to clear a left-over lock."""


def _me():
    return {"host": socket.gethostname(), "pid": os.getpid(), "process": _process_start(os.getpid())}


def _process_start(pid):
    """An exact mark of process ``pid``'s start, or None where the platform does not give one.

    Linux: ``<boot id>/<start time>``, the start time in clock ticks after boot
    (``/proc/<pid>/stat``, field 22) and the boot's id: no two processes of one machine
    have the same mark, even when the second reuses the first's process id. A lock records
    its writer's mark, so a lock whose process id now belongs to another program is known
    to be stale. Elsewhere (macOS, Windows) None: there a live process id is taken for
    the writer (the safe side), and the lock's message says how to clear it.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        boot = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (name) "; a name may hold spaces
        return f"{boot}/{int(fields[19])}"  # fields[0] is field 3 (state); field 22 is fields[19]
    except (OSError, ValueError, IndexError):
        return None


def _same_process(holder, me):
    """Whether the lock record ``holder`` was written by the process ``me`` describes.

    Same host and process id, and the same start mark where both have one (a record of an
    earlier version has none).
    """
    if (holder.get("host"), holder.get("pid")) != (me["host"], me["pid"]):
        return False
    return holder.get("process") is None or me["process"] is None or holder.get("process") == me["process"]


def _number(value, default):
    """``value`` as a float, or ``default`` when a (damaged) record holds something else there."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


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
    """Why ``holder``'s lock may be taken over, or None while its writer may still be at work.

    On this machine: its process has ended, or its process id now belongs to another
    program (the start marks differ, Linux), or it is this very process's own. On another
    machine, where no process can be asked: it has been silent for ``STALE_AFTER_SECONDS``.
    """
    me = _me()
    if holder.get("host") == me["host"]:
        pid = holder.get("pid")
        if _same_process(holder, me):
            return say(
                en="it is this process's own, left by a run that was interrupted",
                ja="中断されたランが残した、このプロセス自身のロックです",
            )
        if not _alive(pid):
            return say(en=f"process {pid} has ended", ja=f"プロセス {pid} は終了しています")
        recorded, current = holder.get("process"), _process_start(pid)
        if recorded is not None and current is not None and recorded != current:
            return say(
                en=f"process {pid} has ended (its process id now belongs to another program)",
                ja=f"プロセス {pid} は終了しています(そのプロセス ID は今は別のプログラムのものです)",
            )
        return None
    silent = now - _number(holder.get("heartbeat"), 0.0)
    if silent > STALE_AFTER_SECONDS:
        return say(
            en=f"its holder on {holder.get('host')} has shown no sign of life for {silent / 60:.0f} minutes "
            "(a disconnected Colab runtime leaves such a lock)",
            ja=f"{holder.get('host')} 上の持ち主から {silent / 60:.0f} 分間応答がありません(切断された Colab "
            "のランタイムがこのようなロックを残します)",
        )
    return None


def _look(path, what):
    """The lock file at ``path`` as it is now: ``(content, holder or None, modified, key)``; None if absent.

    ``holder`` is the record, None when the content is not one (empty, cut off, garbage).
    ``key`` names this very version of the file (its content and modification time): a
    takeover goes ahead only while the lock still has the key that was judged stale.
    """
    try:
        with open(path, "rb") as handle:
            modified = os.fstat(handle.fileno()).st_mtime_ns
            content = handle.read()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise LockedError(
            say(
                en=f"{what}: its lock file {str(path)!r} cannot be read ({error}). Check that no notebook or "
                f"command is still writing to the folder, then delete {str(path)!r} and start again",
                ja=f"{what}: ロックファイル {str(path)!r} を読み込めません({error})。"
                "このフォルダに書き込んでいるノートブックやコマンドがもうないことを確かめてから、"
                f"{str(path)!r} を削除してやり直してください",
            )
        ) from None
    try:
        holder = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        holder = None
    if not isinstance(holder, dict) or not holder:
        holder = None
    key = hashlib.sha256(content + b"|" + str(modified).encode()).hexdigest()[:16]
    return content, holder, modified / 1e9, key


def _create(path, record):
    """Create the lock ``path`` holding ``record`` only if there is none: True, or False if there is one.

    Where the folder allows hard links (local disks of Linux and macOS, NTFS), the record
    is written and flushed to a temporary file of this call's own, then linked as
    ``path``: the link fails if ``path`` exists, and the moment ``path`` exists it holds
    the whole record, so no other process ever reads it empty. Where links are refused
    (some FUSE mounts, such as Google Drive on Colab; FAT), the lock is created with
    ``open(path, "x")`` (O_EXCL), which fails too if it exists, and the record is written
    into it right after: for that moment it is empty, and the others wait for an
    unreadable lock younger than ``UNREADABLE_GRACE_SECONDS`` instead of taking it over.
    Either way, processes that share the folder through one machine's file system get
    one winner. Between machines that share it through Drive's syncing, nothing is
    atomic: the lock keeps out a second machine that starts after the first's lock has
    reached it (seconds), not one that starts at the same instant.
    """
    text = json.dumps(record)
    temporary = path.with_name(temporary_name(path.name))
    try:
        temporary.write_text(text, encoding="utf-8")
        _flush_file(temporary)
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        except (OSError, NotImplementedError, AttributeError):  # no hard links here
            return _create_in_place(path, text)
    finally:
        temporary.unlink(missing_ok=True)
    _flush_folder(path.parent)
    return True


def _create_in_place(path, text):
    """:func:`_create` where there are no hard links: O_EXCL, then the record."""
    try:
        with open(path, "x", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    except FileExistsError:
        return False
    _flush_folder(path.parent)
    return True


def _take_over(path, key, record):
    """Replace the stale lock ``path`` (its version ``key``) by ``record``: "won", "busy" or "changed".

    Only the process that creates the claim ``tmp-takeover-<key>-<lock's name>`` (O_EXCL:
    one process does) may replace that version of the lock; the others answer "busy" and
    wait. Holding the claim, it looks again: if the lock is no longer that version (taken
    over and the claim gone already, released, refreshed) it answers "changed" and
    nothing is written; otherwise it replaces the lock in one step (:func:`replacing`),
    so the lock never disappears and nobody else can create one in between. A version's
    key never comes back, so a claim made after the takeover finds "changed".
    """
    claim = path.with_name(f"{TEMPORARY_PREFIX}takeover-{key}-{path.name}")
    try:
        os.close(os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return "busy"
    try:
        seen = _look(path, say(en="the folder", ja="このフォルダ"))
        if seen is None or seen[3] != key:
            return "changed"
        write_json(path, record)
        return "won"
    finally:
        claim.unlink(missing_ok=True)


def _wait_for_change(path, key, deadline):
    """Wait until the lock ``path`` is no longer the version ``key`` (or is gone), or the deadline."""
    while time.monotonic() < deadline:
        seen = _look(path, say(en="the folder", ja="このフォルダ"))
        if seen is None or seen[3] != key:
            return
        time.sleep(0.01)


def _clear_safely(path):
    return say(
        en="check that no notebook or command is still writing to the folder (on this machine, or another "
        f"one sharing it), then delete {str(path)!r} and start again",
        ja="このフォルダに書き込んでいるノートブックやコマンドが(このマシンにも、"
        f"フォルダを共有する別のマシンにも)もうないことを確かめてから、{str(path)!r} "
        "を削除してやり直してください",
    )


def _held_message(what, path, holder, now):
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(_number(holder.get("started"), now)))
    silent = now - _number(holder.get("heartbeat"), now)
    return say(
        en=f"{what} is being written by process {holder.get('pid')} on {holder.get('host')} (since "
        f"{started}, last sign of life {silent:.0f} s ago). Two writers would spoil it: wait until that one "
        f"has finished. If nothing is writing there any more, the lock is left over: {_clear_safely(path)}. "
        "(A lock whose process has ended on this machine, or whose holder on another machine has been "
        f"silent for {STALE_AFTER_SECONDS // 60} minutes, is taken over by itself.)",
        ja=f"{what} には、{holder.get('host')} 上のプロセス {holder.get('pid')} が書き込んでいます({started} "
        f"から。最後の応答は {silent:.0f} 秒前)。2 つのプロセスが同時に書き込むと壊れるので、"
        "そちらが終わるまで待ってください。もう何も書き込んでいないなら、ロックが残っているだけです: "
        f"{_clear_safely(path)}。(このマシンでプロセスが終わっているロックと、別のマシンの持ち主から "
        f"{STALE_AFTER_SECONDS // 60} 分間応答のないロックは、自動的に引き継がれます)",
    )


def acquire_lock(path, what=None):
    """Take the lock file ``path`` for this process; returns a note when a stale lock was taken over.

    The lock records the host, the process (its id and start mark, see
    :func:`_process_start`), a random token and the time. It is created complete and in
    one step (:func:`_create`). A lock whose writer may still be at work (see
    :func:`_why_stale`) raises :class:`LockedError`. A stale one, or one left empty or
    damaged by a crash, is taken over in one step by one process only
    (:func:`_take_over`). Of processes trying at the same instant, one gets the lock;
    each of the others gets :class:`LockedError`, never another error.
    """
    path = Path(path)
    what = say(en="this folder", ja="このフォルダ") if what is None else what
    deadline = time.monotonic() + WAIT_SECONDS
    first = True
    while first or time.monotonic() < deadline:
        first = False
        now = time.time()
        mine = {**_me(), "token": secrets.token_hex(8), "started": now, "heartbeat": now}
        if _create(path, mine):
            return None
        seen = _look(path, what)
        if seen is None:  # released between the two steps: try again
            continue
        _, holder, modified, key = seen
        if holder is not None:
            reason = _why_stale(holder, now)
            if reason is None:
                raise LockedError(_held_message(what, path, holder, now))
            whose = say(
                en=f"the lock of process {holder.get('pid')} on {holder.get('host')}",
                ja=f"{holder.get('host')} 上のプロセス {holder.get('pid')} のロック",
            )
        elif now - modified > UNREADABLE_GRACE_SECONDS:
            reason = say(
                en="the lock file was empty or damaged, left by a crash",
                ja="ロックファイルが空か壊れていました(クラッシュで残ったものです)",
            )
            whose = say(en="the lock", ja="ロック")
        else:
            reason = None  # being written right now, where there are no hard links: wait
        if reason is not None:
            outcome = _take_over(path, key, mine)
            if outcome == "won":
                return say(en=f"took over {whose}: {reason}", ja=f"{whose}を引き継ぎました: {reason}")
            if outcome == "changed":
                continue
        _wait_for_change(path, key, deadline)
    raise LockedError(
        say(
            en=f"{what}: another process is taking its lock {str(path)!r} at this very moment. Try again in "
            f"a moment; if this message stays, the lock is left over: {_clear_safely(path)}",
            ja=f"{what}: ちょうど今、別のプロセスがロック {str(path)!r} を取ろうとしています。"
            "少し待ってからやり直してください。このメッセージが続くなら、ロックが残っているだけです: "
            f"{_clear_safely(path)}",
        )
    )


def held_by_me(path):
    """The lock's content when this process holds it; None otherwise (or when unreadable)."""
    try:
        holder = read_json(path)
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) and _same_process(holder, _me()) else None


def refresh_lock(path):
    """Show that the holder (this process) is alive: a new heartbeat, written in one step.

    A check, then a write: a holder on another machine that was silent for
    ``STALE_AFTER_SECONDS`` and comes back while its lock is taken over could, in that
    moment, write over the new holder's lock. Only such a long-silent holder can.
    """
    holder = held_by_me(path)
    if holder is not None:
        write_json(path, {**holder, "heartbeat": time.time()})


def release_lock(path):
    """Remove the lock file if this process holds it."""
    if held_by_me(path) is not None:
        Path(path).unlink(missing_ok=True)
