"""Atomic file output: a failed command never leaves a partial file behind."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from .errors import InputError


def atomic_write(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o644) -> None:
    """Write `data` to `path` through a same-directory temp file, fsync, then rename over."""
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise InputError(f"{target}: is a directory")
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise InputError(f"cannot write {target}: {exc.strerror}") from None
    try:
        # mkstemp creates 0600; widen only as asked, so a private key is never readable by others.
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise InputError(f"cannot write {target}: {exc.strerror}") from None
        raise


def read_bounded(path: str | os.PathLike[str], *, limit: int, what: str) -> bytes:
    """Read a whole file no larger than `limit`, with errors that name the file."""
    target = Path(path)
    try:
        with open(target, "rb") as handle:
            data = handle.read(limit + 1)
    except IsADirectoryError:
        raise InputError(f"{what} {target}: is a directory") from None
    except FileNotFoundError:
        raise InputError(f"{what} {target}: no such file") from None
    except OSError as exc:
        raise InputError(f"{what} {target}: {exc.strerror}") from None
    if len(data) > limit:
        raise InputError(f"{what} {target}: larger than the limit of {limit} bytes")
    return data
