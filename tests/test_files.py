"""The lock's check that its holder still runs: right on Linux, macOS and Windows.

Each platform's branch runs here whatever the machine: the real one for POSIX, and
Windows with its system calls replaced by stand-ins. On Windows, ``os.kill(pid, 0)``
would send CTRL_C_EVENT and interrupt the holder, so there ``os.kill`` must never run.
"""

import ctypes
import os
import subprocess
import sys
import threading

import pytest

from vggcifar import files


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
