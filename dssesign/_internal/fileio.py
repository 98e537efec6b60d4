"""File output every command shares: checked before any work, published all at once at the end.

The rules an output follows (`OutputSet`, and `atomic_write` for a single file):

* It is never one of the command's inputs (the same file by ``(st_dev, st_ino)``, or the same
  real path for one not created yet), nor another output of the same command.
* A regular file is replaced atomically: a temp file in the same directory, written and
  fsynced, then renamed over it. A replaced file keeps its permission bits; a new file gets
  ``0o666 & ~umask``; an explicit ``mode`` (private keys: 0o600) wins over both.
* A symbolic link is written *through*, as a shell redirection does: the file it points to is
  replaced and the link stays a link.
* A character device or a FIFO (``/dev/null``, a pipe), and ``/dev/stdout``, ``/dev/stderr``,
  ``/dev/fd/N`` whatever they point to, are written in place, never replaced. A directory,
  block device or socket is refused.
* Every check (and every temp file) happens in `OutputSet.add`, before the command does any
  work; `OutputSet.publish` renames them all at the end. A command that fails leaves no output
  behind: its temp files are removed, and files it had already published and created are
  removed again.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from ..errors import InputError

#: Paths that name a file descriptor of this process: written in place, whatever is behind them.
_DESCRIPTOR_PATH = re.compile(
    r"^/(?:dev/(?:stdout|stderr|fd/\d+)|proc/(?:self|thread-self|\d+)/fd/\d+)$"
)
_umask_lock = threading.Lock()

#: An input a command reads, as (what it is, path), e.g. ("--key", "sign.key").
NamedPath = tuple[str, "str | os.PathLike[str] | None"]


def current_umask() -> int:
    """The process umask, read without changing it where the platform allows."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", "rb") as status:
        for line in status:
            if line.startswith(b"Umask:"):
                return int(line.split()[1], 8)
    with _umask_lock:  # elsewhere: set and restore, the only portable way
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


@dataclass
class _Output:
    name: str  # as given, for messages
    what: str
    target: Path  # where the bytes go: a symlink's final target, or the path itself
    in_place: bool
    existed: bool
    mode: int
    identity: tuple[int, int] | None
    fd: int | None = None
    tmp: str | None = None
    data: bytes | None = None
    written: bool = False
    published: bool = False


@dataclass(frozen=True)
class _Input:
    what: str
    name: str
    real: str
    identity: tuple[int, int] | None


def _identity(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    return info.st_dev, info.st_ino


def _real(path: str | os.PathLike[str]) -> str:
    try:
        return os.path.realpath(path)
    except (OSError, ValueError):
        return os.path.abspath(path)


class OutputSet:
    """The files one command writes: checked and opened first, published together at the end.

    Use it as a context manager: leaving the block with an exception (or without `publish`)
    removes every temp file, and every file this set published and created.
    """

    def __init__(self, inputs: Iterable[NamedPath] = ()) -> None:
        self._inputs: list[_Input] = []
        self._outputs: dict[str, _Output] = {}
        self._directories: list[Path] = []
        for what, path in inputs:
            self.add_input(what, path)

    def __enter__(self) -> OutputSet:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.discard()

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str | os.PathLike) and os.fspath(path) in self._outputs

    def add_input(self, what: str, path: str | os.PathLike[str] | None) -> None:
        """Something the command reads: no output may be it (checked for outputs added later)."""
        if path is None or not os.fspath(path):
            return
        self._inputs.append(_Input(what, os.fspath(path), _real(path), _identity(path)))

    def add(self, path: str | os.PathLike[str], *, what: str = "", mode: int | None = None) -> None:
        """Check that `path` can be written without harm, and open its temp file now.

        `mode` forces the file's permission bits (a private key: 0o600); without it a replaced
        file keeps its bits and a new one gets ``0o666 & ~umask``.
        """
        name = os.fspath(path)
        if not name:
            raise InputError(f"{what or 'output'}: empty file name")
        if name in self._outputs:
            raise InputError(f"{_label(what, name)} is named twice as an output")
        output = self._plan(name, what, mode)
        self._check_collisions(output)
        if not output.in_place:
            try:
                fd, tmp = tempfile.mkstemp(
                    dir=output.target.parent, prefix=f".{output.target.name}.", suffix=".tmp"
                )
            except OSError as exc:
                raise InputError(f"cannot write {_label(what, name)}: {exc.strerror}") from None
            output.fd, output.tmp = fd, tmp
        self._outputs[name] = output

    def check(self, path: str | os.PathLike[str], *, what: str = "") -> None:
        """Check now, as `add` would, an output whose bytes (and final name) come later."""
        name = os.fspath(path)
        if not name:
            raise InputError(f"{what or 'output'}: empty file name")
        self._check_collisions(self._plan(name, what, None))

    def make_directory(self, path: str | os.PathLike[str], *, what: str = "") -> Path:
        """Create directory `path` (and missing parents) now; `discard` removes what it created
        if still empty. A path that exists and is not a directory is refused."""
        directory = Path(path)
        if directory.exists() and not directory.is_dir():
            raise InputError(f"{_label(what, str(directory))}: not a directory")
        missing = [p for p in (directory, *directory.parents) if not p.exists()]
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(
                f"{_label(what, str(directory))}: cannot create ({exc.strerror})"
            ) from None
        self._directories.extend(missing)  # deepest first
        return directory

    def write(self, path: str | os.PathLike[str], data: bytes) -> None:
        """Stage the bytes of an output added before (written to its temp file and fsynced)."""
        output = self._outputs[os.fspath(path)]
        if output.in_place:
            output.data = data
            output.written = True
            return
        assert output.fd is not None
        fd, output.fd = output.fd, None
        # mkstemp creates 0600: the bits are set before a byte of data is in the file.
        _write_closing(fd, data, output, mode=output.mode, sync=True)
        output.written = True

    def append_target(self, path: str | os.PathLike[str]) -> None:
        """`path` is a file appended to under its lock (JSON Lines --append): published last,
        after the files that belong with its new line, and never removed on a failure (it may
        hold lines another writer appended since it was planned). Call it under the lock."""
        key = os.fspath(path)
        output = self._outputs.pop(key)
        output.existed = output.existed or output.target.exists()
        self._outputs[key] = output

    def publish(self) -> None:
        """Write the in-place outputs, then rename every temp file over its target.

        A failure removes what was published and created so far, and every temp file.
        """
        outputs = list(self._outputs.values())
        missing = [o.name for o in outputs if not o.written]
        if missing:
            raise ValueError(f"outputs never written: {', '.join(missing)}")
        try:
            for output in outputs:
                if output.in_place:
                    assert output.data is not None
                    _write_in_place(output)
                    output.published = True
            for output in outputs:
                if not output.in_place:
                    assert output.tmp is not None
                    try:
                        os.replace(output.tmp, output.target)
                    except OSError as exc:
                        raise InputError(
                            f"cannot write {_label(output.what, output.name)}: {exc.strerror}"
                        ) from None
                    output.tmp, output.published = None, True
        except BaseException:
            self._unpublish()
            self.discard()
            raise
        for directory in {o.target.parent for o in outputs if not o.in_place}:
            _fsync_directory(directory)
        self._outputs.clear()  # published: nothing left to discard
        self._directories.clear()

    def discard(self) -> None:
        """Remove every temp file, and every file this set published that did not exist before."""
        self._unpublish()
        for output in self._outputs.values():
            if output.fd is not None:
                with contextlib.suppress(OSError):
                    os.close(output.fd)
                output.fd = None
            if output.tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(output.tmp)
                output.tmp = None
        self._outputs.clear()
        for directory in self._directories:
            with contextlib.suppress(OSError):
                directory.rmdir()  # only if empty: never anything this set did not create
        self._directories.clear()

    def _unpublish(self) -> None:
        for output in self._outputs.values():
            if output.published and not output.in_place and not output.existed:
                with contextlib.suppress(OSError):
                    os.unlink(output.target)
                output.published = False

    def _plan(self, name: str, what: str, mode: int | None) -> _Output:
        try:
            info: os.stat_result | None = os.stat(name)
        except FileNotFoundError:
            info = None
        except NotADirectoryError:
            raise InputError(
                f"cannot write {_label(what, name)}: a parent is not a directory"
            ) from None
        except OSError as exc:
            raise InputError(f"cannot write {_label(what, name)}: {exc.strerror}") from None
        descriptor = bool(_DESCRIPTOR_PATH.match(os.path.abspath(name)))
        if descriptor and info is None:
            raise InputError(f"cannot write {_label(what, name)}: no such open file descriptor")
        if info is not None and stat.S_ISDIR(info.st_mode):
            raise InputError(f"{_label(what, name)}: is a directory")
        if info is not None and (
            descriptor or stat.S_ISCHR(info.st_mode) or stat.S_ISFIFO(info.st_mode)
        ):
            identity = (info.st_dev, info.st_ino)
            return _Output(name, what, Path(name), True, True, 0, identity)
        if info is not None and not stat.S_ISREG(info.st_mode):
            raise InputError(
                f"{_label(what, name)}: not a regular file, character device or FIFO; refusing it"
            )
        # A symlink (even one that dangles) is written through: its final target is replaced.
        target = Path(_real(name))
        if not target.parent.is_dir():
            raise InputError(
                f"cannot write {_label(what, name)}: no such directory {target.parent}"
            )
        if mode is None:
            mode = stat.S_IMODE(info.st_mode) & 0o777 if info else 0o666 & ~current_umask()
        existing = (info.st_dev, info.st_ino) if info is not None else None
        return _Output(name, what, target, False, info is not None, mode, existing)

    def _check_collisions(self, output: _Output) -> None:
        real = str(output.target) if not output.in_place else _real(output.name)
        char_device = output.in_place and output.identity is not None and _is_char(output.name)
        if char_device:
            return  # /dev/null, a terminal: writing there destroys nothing
        for item in self._inputs:
            same = (output.identity is not None and output.identity == item.identity) or (
                real == item.real
            )
            if same:
                raise InputError(
                    f"{_label(output.what, output.name)} is {_label(item.what, item.name)}: "
                    "refusing to overwrite an input of this command"
                )
        for other in self._outputs.values():
            other_real = str(other.target) if not other.in_place else _real(other.name)
            if (output.identity is not None and output.identity == other.identity) or (
                real == other_real
            ):
                raise InputError(
                    f"{_label(output.what, output.name)} and "
                    f"{_label(other.what, other.name)} are the same file"
                )


def _label(what: str, name: str) -> str:
    return f"{what} {name}" if what else name


def _is_char(name: str) -> bool:
    try:
        return stat.S_ISCHR(os.stat(name).st_mode)
    except OSError:
        return False


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _write_in_place(output: _Output) -> None:
    assert output.data is not None
    flags = os.O_WRONLY | os.O_APPEND | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(output.name, flags)  # never O_CREAT: it is there, and stays what it is
    except OSError as exc:
        raise InputError(
            f"cannot write {_label(output.what, output.name)}: {exc.strerror}"
        ) from None
    _write_closing(fd, output.data, output)


def _write_closing(
    fd: int, data: bytes, output: _Output, *, mode: int | None = None, sync: bool = False
) -> None:
    """Write all of `data` to `fd` (setting `mode` first, syncing after), then close it; an
    OSError becomes one InputError naming the output."""
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        _write_all(fd, data)
        if sync:
            os.fsync(fd)
    except OSError as exc:
        raise InputError(
            f"cannot write {_label(output.what, output.name)}: {exc.strerror}"
        ) from None
    finally:
        os.close(fd)


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(
    path: str | os.PathLike[str],
    data: bytes,
    *,
    mode: int | None = None,
    inputs: Iterable[NamedPath] = (),
) -> None:
    """Write one file by the rules of this module (a temp file renamed over a regular file).

    `mode` forces the permission bits; `inputs` are files the output must not be.
    """
    with OutputSet(inputs) as outputs:
        outputs.add(path, mode=mode)
        outputs.write(path, data)
        outputs.publish()


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
