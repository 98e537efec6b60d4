"""File locks with a bounded wait, for files several processes update.

* `flock_within(fd, timeout)`: `fcntl.flock` that gives up after `timeout` seconds (polling
  ``LOCK_NB`` with a deadline) instead of waiting forever on a process that holds the lock.
* `locked(path, timeout=...)`: an exclusive lock that serialises every read-modify-write of
  `path`. It is taken on a sidecar ``PATH.lock``, never on `path` itself: an atomic rename
  replaces the file's inode, so a lock on the old inode would stop guarding the new file and a
  second writer could read the new file while the first still "holds the lock". The sidecar
  is never renamed or deleted (deleting a lock file reopens the same race).

Staging and publishing the new content is `_fileio.OutputSet`'s job.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import ConcurrentUpdateError, InputError, LockTimeoutError

__all__ = [
    "DEFAULT_LOCK_TIMEOUT",
    "LOCK_SUFFIX",
    "ConcurrentUpdateError",
    "LockTimeoutError",
    "check_timeout",
    "flock_within",
    "lock_path",
    "locked",
]

#: Seconds a writer waits for another process's lock by default.
DEFAULT_LOCK_TIMEOUT = 60.0
LOCK_SUFFIX = ".lock"
_FIRST_DELAY = 0.001
_MAX_DELAY = 0.05


def check_timeout(timeout: float | None) -> float | None:
    """`timeout` if it is None or a finite number of seconds >= 0; else ValueError."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise ValueError("a lock timeout must be a number of seconds")
    if not math.isfinite(timeout) or timeout < 0:
        raise ValueError("a lock timeout must be a finite number of seconds >= 0")
    return float(timeout)


def flock_within(fd: int, timeout: float | None, *, shared: bool = False) -> bool:
    """Take `flock` on `fd`, waiting at most `timeout` seconds (None: as long as it takes).

    Returns False when the lock was not obtained in time; OSError for anything else.
    """
    operation = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        pass
    if timeout is None:
        fcntl.flock(fd, operation)
        return True
    deadline = time.monotonic() + timeout
    delay = _FIRST_DELAY
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, _MAX_DELAY)
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            continue


def lock_path(path: str | os.PathLike[str]) -> Path:
    """The sidecar lock of `path`: ``REAL.lock`` beside the file `path` really names.

    Resolved like `_fileio.OutputSet` resolves an output (a symlink is written through, its
    final target replaced), so ``./root.json``, ``/abs/root.json`` and a link to it share one
    lock.
    """
    real = Path(os.path.realpath(path))
    return real.with_name(f"{real.name}{LOCK_SUFFIX}")


@contextlib.contextmanager
def locked(
    path: str | os.PathLike[str], *, timeout: float | None = DEFAULT_LOCK_TIMEOUT, what: str
) -> Iterator[None]:
    """Hold the exclusive update lock of `path` (its ``PATH.lock`` sidecar) for the block.

    Raises `LockTimeoutError` (exit 1) after `timeout` seconds, `InputError` (exit 2) when the
    lock file cannot be created or opened.
    """
    timeout = check_timeout(timeout)
    sidecar = lock_path(path)
    try:
        # O_NOFOLLOW: a symlink planted as the lock file is refused, never followed.
        fd = os.open(sidecar, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    except PermissionError:
        # Made by another user: a read-only descriptor takes a flock just as well.
        try:
            fd = os.open(sidecar, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError as exc:
            raise InputError(
                f"{what}: cannot open the lock file {sidecar}: {exc.strerror}"
            ) from None
    except OSError as exc:
        raise InputError(f"{what}: cannot create the lock file {sidecar}: {exc.strerror}") from None
    try:
        try:
            obtained = flock_within(fd, timeout)
        except OSError as exc:
            raise InputError(f"{what}: cannot lock {sidecar}: {exc.strerror}") from None
        if not obtained:
            raise LockTimeoutError(
                f"{what}: another process has held its lock ({sidecar}) for more than "
                f"{timeout:g}s; nothing was changed (try again, or raise --timeout)"
            )
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
