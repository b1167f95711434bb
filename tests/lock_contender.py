"""A process that contends for run locks at the same instant as others (tests/test_files.py).

Each contender waits at a barrier shared with the test and the other contenders, tries to
take one lock, and reports what happened: "won", "LockedError", or any other exception.
"""

import os

from vggcifar import files


def no_links(source, target):
    raise PermissionError(1, "Operation not permitted (no hard links here, as on a FUSE mount)")


def contend(paths, barrier, results, links=True):
    """For each lock in ``paths``: wait for everyone, try it, report, wait for the test to check.

    ``links=False``: this process's ``os.link`` fails as on a folder without hard links.
    """
    if not links:
        os.link = no_links
    for path in paths:
        barrier.wait()  # the test has laid the lock out: go, all together
        try:
            files.acquire_lock(path)
            outcome = "won"
        except files.LockedError:
            outcome = "LockedError"
        except Exception as error:  # noqa: BLE001 - any other exception is what the test looks for
            outcome = f"{type(error).__name__}: {error}"
        results.put((str(path), outcome))
        barrier.wait()  # reported: the test counts, then lays out the next
