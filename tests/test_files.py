"""The lock's check that its holder still runs: right on Linux, macOS and Windows.

Each platform's branch runs here whatever the machine: the real one for POSIX, and
Windows with its system calls replaced by stand-ins. On Windows, ``os.kill(pid, 0)``
would send CTRL_C_EVENT and interrupt the holder, so there ``os.kill`` must never run.
"""

import ctypes
import json
import multiprocessing
import os
import re
import subprocess
import sys
import threading
import time

import pytest

import lock_contender
from vggcifar import files

pytestmark = pytest.mark.backends  # also run on JAX without TensorFlow (.ci/run)


def no_signal(*args):
    raise AssertionError(f"a signal was sent: os.kill{args}")


@pytest.mark.skipif(os.name != "posix", reason="the real POSIX check needs POSIX")
def test_posix_a_running_process_lives_and_an_ended_one_does_not():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert files._alive(child.pid)
    finally:
        child.kill()
        child.wait()
    assert not files._alive(child.pid)


@pytest.mark.parametrize("platform", ["linux", "darwin"])
def test_posix_another_users_process_lives_and_signal_zero_is_all_that_is_sent(platform, monkeypatch):
    sent = []

    def kill(pid, signal):
        sent.append((pid, signal))
        raise PermissionError(1, "Operation not permitted")  # it exists, another user's

    monkeypatch.setattr(sys, "platform", platform)
    monkeypatch.setattr(os, "kill", kill)
    assert files._alive(4321)
    assert sent == [(4321, 0)]


@pytest.mark.parametrize("pid", [0, -1, None, "1234", 12.0, True])
def test_a_lock_without_a_usable_process_id_has_no_live_holder(pid, monkeypatch):
    """``os.kill(0 or -1, 0)`` asks about whole groups and always says yes: never asked."""
    monkeypatch.setattr(os, "kill", no_signal)
    assert not files._alive(pid)


class FakeFunction:
    """A ctypes function stand-in: records its calls and returns what it is given."""

    def __init__(self, result):
        self.result, self.calls = result, []

    def __call__(self, *args):
        self.calls.append(args)
        return self.result(*args) if callable(self.result) else self.result


class FakeKernel32:
    """kernel32 with a process table: pid → exit code (259 while it runs); others are denied or absent."""

    def __init__(self, table, denied=()):
        self.table, self.denied, self.last_error = table, set(denied), 0
        self.OpenProcess = FakeFunction(self.open)
        self.GetExitCodeProcess = FakeFunction(self.exit_code)
        self.CloseHandle = FakeFunction(1)

    def open(self, access, inherit, pid):
        assert access == 0x1000 and not inherit  # PROCESS_QUERY_LIMITED_INFORMATION only
        if pid in self.denied:
            self.last_error = 5  # ERROR_ACCESS_DENIED
            return None
        if pid not in self.table:
            self.last_error = 87  # ERROR_INVALID_PARAMETER: no such process
            return None
        return 1000 + pid

    def exit_code(self, handle, pointer):
        pointer._obj.value = self.table[handle - 1000]
        return 1


@pytest.fixture
def windows(monkeypatch):
    """Pretend to be Windows: ``sys.platform`` 'win32', kernel32 a stand-in, ``os.kill`` forbidden.

    (``os.name`` stays: pathlib reads it, and would make Windows paths.)
    """
    kernel32 = FakeKernel32({4321: 259, 5555: 0, 6666: 1})
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(os, "kill", no_signal)
    monkeypatch.setattr(ctypes, "WinDLL", lambda name, use_last_error: kernel32, raising=False)
    monkeypatch.setattr(ctypes, "get_last_error", lambda: kernel32.last_error, raising=False)
    return kernel32


def test_windows_a_running_process_lives_and_no_signal_is_sent(windows):
    assert files._alive(4321)
    assert windows.OpenProcess.calls == [(0x1000, False, 4321)]
    assert windows.CloseHandle.calls == [(5321,)]  # every handle opened is closed


@pytest.mark.parametrize("pid", [5555, 6666])
def test_windows_an_ended_process_does_not_live(windows, pid):
    assert not files._alive(pid)
    assert windows.CloseHandle.calls == [(1000 + pid,)]


def test_windows_a_missing_process_does_not_live_and_another_users_does(windows):
    assert not files._alive(7777)
    windows.denied.add(8888)
    assert files._alive(8888)
    assert windows.CloseHandle.calls == []  # nothing was opened


def test_windows_an_unreadable_exit_code_keeps_the_lock(windows):
    windows.GetExitCodeProcess.result = 0  # the call failed
    assert files._alive(5555)


def test_windows_a_stale_lock_on_this_machine_is_taken_over_without_a_signal(windows, tmp_path):
    """The whole lock, not just the check: an ended holder's lock is taken over."""
    lock = tmp_path / "run.lock"
    files.write_json(lock, {**files._me(), "pid": 5555, "heartbeat": 0})
    note = files.acquire_lock(lock)
    assert note and "process 5555 has ended" in note
    assert files.held_by_me(lock)
    files.release_lock(lock)
    files.write_json(lock, {**files._me(), "pid": 4321, "heartbeat": 0})
    with pytest.raises(files.LockedError):
        files.acquire_lock(lock)


# --- two writers of one file ---------------------------------------------------------


def test_two_writers_of_one_file_never_collide(tmp_path):
    """Each writer has its own temporary file: both complete, the file is one whole content.

    With one shared temporary name, one writer's rename takes the other's file away
    (FileNotFoundError) or the file holds a mix of the two.
    """
    path, rounds = tmp_path / "history.json", 30
    contents = {letter: letter * 200_000 for letter in "ab"}
    barrier, errors = threading.Barrier(2), []

    def write(letter):
        for _ in range(rounds):
            barrier.wait()
            try:
                files.write_text(path, contents[letter])
            except Exception as error:  # noqa: BLE001 - any exception is the failure looked for
                errors.append(repr(error))
            barrier.wait()
            assert path.read_text() in contents.values()

    threads = [threading.Thread(target=write, args=(letter,)) for letter in contents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:3]
    assert path.read_text() in contents.values() and os.listdir(tmp_path) == ["history.json"]


def test_temporary_names_are_unique_keep_the_suffix_and_are_recognised():
    names = {files.temporary_name("model.weights.h5") for _ in range(100)}
    assert len(names) == 100
    assert all(n.startswith(f"tmp-{os.getpid()}-") and n.endswith(".weights.h5") for n in names)
    assert all(files.is_temporary_of(n, "model.weights.h5") for n in names)
    assert files.is_temporary_of("tmp-model.keras", "model.keras")  # an earlier version's name
    for other in ("model.keras", "tmp-notes.txt", "tmp-12-ab-xmodel.keras", "tmp-12-ab-model.keras.part"):
        assert not files.is_temporary_of(other, "model.keras")


# --- many contenders at the same instant: exactly one gets the lock ---------------------

CONTENDERS, TRIALS = 8, 20


def dead_pid():
    """The process id of a process that has ended (and, with luck, not been reused yet)."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    return gone.pid


def lay_out(lock, start, gone):
    """Put the lock the contenders find in place: none, process ``gone``'s, empty or garbage ones."""
    lock.parent.mkdir(parents=True)
    long_ago = time.time() - 3600
    if start == "stale":
        files.write_json(lock, {**files._me(), "pid": gone, "started": long_ago, "heartbeat": long_ago})
    elif start in ("empty", "garbage"):
        lock.write_text("" if start == "empty" else '{"host": "half a rec')
        os.utime(lock, (long_ago, long_ago))  # left long ago, not being written right now


@pytest.mark.parametrize(
    "start, links",
    [("none", True), ("stale", True), ("empty", True), ("garbage", True), ("none", False), ("stale", False)],
)
def test_contenders_at_the_same_instant_exactly_one_wins_every_time(tmp_path, start, links):
    """CONTENDERS processes released by one barrier, TRIALS times: one "won", the rest LockedError.

    With no lock, a dead process's lock, an empty or a damaged one left long ago; and where
    hard links are refused (the lock is created with O_EXCL and written a moment later).
    """
    context = multiprocessing.get_context("spawn")  # no fork of a process that may hold TensorFlow
    locks = [tmp_path / f"trial-{trial}" / "run.lock" for trial in range(TRIALS)]
    barrier, results = context.Barrier(CONTENDERS + 1), context.Queue()
    workers = [
        context.Process(target=lock_contender.contend, args=(locks, barrier, results, links), daemon=True)
        for _ in range(CONTENDERS)
    ]
    for worker in workers:
        worker.start()
    outcomes, gone = [], dead_pid()
    try:
        for lock in locks:
            lay_out(lock, start, gone)
            barrier.wait(timeout=60)  # go
            barrier.wait(timeout=60)  # all have reported
            outcomes.append(sorted(results.get(timeout=10)[1] for _ in range(CONTENDERS)))
    finally:
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()
    wins = [trial.count("won") for trial in outcomes]
    others = [o for trial in outcomes for o in trial if o not in ("won", "LockedError")]
    kinds = sorted({o.split(":")[0] for o in others})
    assert wins == [1] * TRIALS and not others, f"wins per trial {wins}; {len(others)} others: {kinds}"


# --- a process id that now belongs to another program ---------------------------------

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="start marks come from /proc")


def live_record(pid, process):
    now = time.time()
    return {**files._me(), "pid": pid, "process": process, "started": now, "heartbeat": now}


@linux_only
def test_a_start_mark_is_exact_and_tells_processes_apart():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        mark = files._process_start(child.pid)
        assert mark and mark == files._process_start(child.pid) != files._process_start(os.getpid())
    finally:
        child.kill()
        child.wait()
    assert files._process_start(child.pid) is None  # ended


def test_elsewhere_there_is_no_start_mark(monkeypatch):
    for platform in ("darwin", "win32"):
        monkeypatch.setattr(sys, "platform", platform)
        assert files._process_start(os.getpid()) is None


@linux_only
def test_a_live_process_id_with_another_start_mark_is_a_reused_one_and_its_lock_is_taken_over(tmp_path):
    """The parent process runs: with its own mark it holds the lock; with another, it is not the writer."""
    lock, parent = tmp_path / "run.lock", os.getppid()
    files.write_json(lock, live_record(parent, files._process_start(parent)))
    with pytest.raises(files.LockedError, match=f"being written by process {parent} on"):
        files.acquire_lock(lock)
    files.write_json(lock, live_record(parent, "another-boot/12345"))
    note = files.acquire_lock(lock)
    assert note and f"process {parent} has ended (its process id now belongs to another program)" in note
    assert files.held_by_me(lock)["token"]


@linux_only
def test_a_lock_with_this_process_id_but_another_start_mark_is_not_this_processs(tmp_path):
    """An earlier process had this id: its lock is not held by this one, and is taken over."""
    lock = tmp_path / "run.lock"
    files.write_json(lock, live_record(os.getpid(), "another-boot/12345"))
    assert files.held_by_me(lock) is None
    files.release_lock(lock)  # not ours: stays
    assert lock.exists()
    assert "process" in files.acquire_lock(lock) and files.held_by_me(lock)


def test_a_record_without_a_start_mark_and_a_live_process_id_keeps_the_lock(tmp_path):
    """As an earlier version wrote it, or macOS/Windows: a live process id is taken for the writer."""
    lock = tmp_path / "run.lock"
    files.write_json(lock, live_record(os.getppid(), None))
    with pytest.raises(files.LockedError):
        files.acquire_lock(lock)


# --- what the messages say -----------------------------------------------------------


def test_a_held_lock_says_whose_it_is_and_how_to_clear_a_left_over_one(tmp_path):
    lock = tmp_path / "run.lock"
    files.write_json(lock, {**live_record(os.getppid(), None), "host": "colab-machine-2"})
    with pytest.raises(files.LockedError) as error:
        files.acquire_lock(lock, "run_dir 'runs/a'")
    message = str(error.value)
    assert message.startswith("run_dir 'runs/a' is being written by process")
    assert "on colab-machine-2" in message and "wait until that one has finished" in message
    assert "no notebook or command is still writing to the folder" in message
    assert f"then delete {str(lock)!r}" in message and "stop" not in message


def test_a_lock_being_written_right_now_is_waited_for_not_taken_over(tmp_path, monkeypatch):
    """An empty lock of this very moment (as O_EXCL leaves it for an instant) is not left over."""
    monkeypatch.setattr(files, "WAIT_SECONDS", 0.2)
    lock = tmp_path / "run.lock"
    lock.write_text("")
    with pytest.raises(files.LockedError, match=r"at this very moment.*then delete") as error:
        files.acquire_lock(lock)
    assert str(lock) in str(error.value) and lock.read_text() == ""


def test_a_takeover_cut_off_by_a_crash_blocks_only_until_the_lock_is_deleted(tmp_path, monkeypatch):
    """A claim left by a process killed in mid-takeover: the others wait, then say how to clear it."""
    monkeypatch.setattr(files, "WAIT_SECONDS", 0.2)
    lock = tmp_path / "run.lock"
    files.write_json(lock, {**live_record(dead_pid(), None), "heartbeat": 0})
    key = files._look(lock, "")[3]
    (tmp_path / f"tmp-takeover-{key}-run.lock").touch()
    with pytest.raises(files.LockedError, match=rf"at this very moment.*delete {re.escape(repr(str(lock)))}"):
        files.acquire_lock(lock)
    lock.unlink()  # as the message says
    assert files.acquire_lock(lock) is None and files.held_by_me(lock)


def test_a_damaged_record_is_taken_over_without_another_error(tmp_path):
    """A record of the wrong types (heartbeat, started as text) is still judged and taken over."""
    lock = tmp_path / "run.lock"
    for record in (
        [1, 2],
        {"host": "elsewhere", "heartbeat": "soon"},
        {"host": files._me()["host"], "pid": "x"},
    ):
        lock.write_text(json.dumps(record))
        os.utime(lock, (0, 0))
        assert files.acquire_lock(lock) and files.held_by_me(lock)


def test_a_full_disk_is_named_and_the_old_file_stays(tmp_path):
    import errno

    from vggcifar.files import DiskFullError, replacing

    kept = tmp_path / "model.keras"
    kept.write_text("the trained model")
    full = r"disk full: '.*model\.keras' could not be written .* MB free"
    with pytest.raises(DiskFullError, match=full), replacing(kept) as temporary:
        temporary.write_text("half a mod")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert kept.read_text() == "the trained model" and [p.name for p in tmp_path.iterdir()] == ["model.keras"]
    h5py_says = "Unable to synchronously write data (file write failed: errno = 28, error message = ...)"
    with pytest.raises(DiskFullError), replacing(kept):  # h5py says it in its message only
        raise OSError(h5py_says)
    with pytest.raises(PermissionError), replacing(kept):  # other errors pass through as they are
        raise PermissionError(errno.EACCES, "Permission denied")
