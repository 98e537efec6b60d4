"""Subjects: ResourceDescriptors from files (streamed SHA-256/512) or from given digests.

Split from `statement` so the validator stays one module; these only build descriptors that
the validator then checks.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
from collections.abc import Callable, Iterable, Sequence
from typing import Final

from ..errors import ConfigError, InputError
from ..limits import MiB
from .statement import (
    _ALGORITHM_BY_FOLD,
    _COMPUTABLE,
    KNOWN_DIGEST_ALGORITHMS,
    ResourceDescriptor,
    _fold,
    _hex_problem,
    _show,
)

__all__ = [
    "ProgressCallback",
    "digest_file",
    "parse_subject_arg",
    "subject_from_digest",
    "subject_from_file",
]


# --- file digests -----------------------------------------------------------------------------

#: Big enough that per-call overhead vanishes next to hashing, small enough to stay in L2/L3.
_BUFFER_SIZE: Final = 1 * MiB
#: Told how many bytes of how many (None: unknown) were hashed, after each chunk. The library
#: draws nothing itself; the CLI turns this into a progress bar on a terminal.
ProgressCallback = Callable[[int, "int | None"], None]


def _read_error(path: str | os.PathLike[str], exc: OSError) -> InputError:
    if isinstance(exc, FileNotFoundError):
        reason = "no such file"
    elif isinstance(exc, IsADirectoryError):
        reason = "is a directory"
    elif isinstance(exc, PermissionError):
        reason = "permission denied"
    else:
        reason = exc.strerror or type(exc).__name__
        reason = reason[:1].lower() + reason[1:]
    return InputError(f"cannot read {os.fsdecode(path)}: {reason}")


def digest_file(
    path: str | os.PathLike[str],
    *,
    algorithms: Iterable[str] = ("sha256",),
    progress: ProgressCallback | None = None,
) -> dict[str, str]:
    """Hash a file of any size in one pass, every algorithm fed from one reused buffer.

    `progress`, if given, is called after each chunk with (bytes so far, file size or None).
    OS errors become `InputError` naming the file.
    """
    names = tuple(dict.fromkeys(algorithms))
    if not names:
        raise ConfigError("digest_file: no algorithms given")
    hashers = []
    for name in names:
        if name not in _COMPUTABLE:
            supported = ", ".join(sorted(_COMPUTABLE))
            raise ConfigError(f"cannot compute digest {name!r}; supported: {supported}")
        hashers.append(hashlib.new(name))
    try:
        handle = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by the `with` below
    except OSError as exc:
        raise _read_error(path, exc) from None
    with handle:
        try:
            info = os.fstat(handle.fileno())
            if stat.S_ISDIR(info.st_mode):
                raise IsADirectoryError(errno.EISDIR, "Is a directory")
            size = info.st_size if stat.S_ISREG(info.st_mode) else None
            if size and hasattr(os, "posix_fadvise"):
                with contextlib.suppress(OSError):  # only a read-ahead hint
                    os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
            updates = [hasher.update for hasher in hashers]
            advance = None
            if progress is not None:
                done = 0
                report = progress

                def advance(n: int) -> None:
                    nonlocal done
                    done += n
                    report(done, size)

            _hash_stream(handle.readinto, updates, advance)
        except OSError as exc:
            raise _read_error(path, exc) from None
    return {name: hasher.hexdigest() for name, hasher in zip(names, hashers, strict=True)}


def _hash_stream(
    readinto: Callable[[memoryview], int | None],
    updates: Sequence[Callable[[memoryview], None]],
    advance: Callable[[int], None] | None,
) -> None:
    buffer = bytearray(_BUFFER_SIZE)
    with memoryview(buffer) as view:
        if len(updates) == 1 and advance is None:
            # The common case (sha256 only) as tight as hashlib.file_digest's own loop.
            update = updates[0]
            while n := readinto(view):
                update(view if n == _BUFFER_SIZE else view[:n])
            return
        while n := readinto(view):
            chunk = view if n == _BUFFER_SIZE else view[:n]
            for update in updates:
                update(chunk)
            if advance is not None:
                advance(n)


# --- subjects ---------------------------------------------------------------------------------


def subject_from_file(
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    sha512: bool = False,
    progress: ProgressCallback | None = None,
) -> ResourceDescriptor:
    """A subject for a local file, named by its basename unless `name` says otherwise."""
    algorithms = ("sha256", "sha512") if sha512 else ("sha256",)
    digest = digest_file(path, algorithms=algorithms, progress=progress)
    return ResourceDescriptor(
        name=name if name is not None else os.path.basename(os.fsdecode(path)), digest=digest
    )


def _split_digest_spec(spec: str) -> tuple[str, str] | None:
    """(standard algorithm, value) if `spec` starts with a known algorithm and ':', else None."""
    prefix, colon, value = spec.partition(":")
    if not colon:
        return None
    algorithm = _ALGORITHM_BY_FOLD.get(_fold(prefix))
    return None if algorithm is None else (algorithm, value)


def subject_from_digest(spec: str, *, name: str | None = None) -> ResourceDescriptor:
    """A subject for an artifact we only know by digest, e.g. an image or a remote file.

    `spec` is ``ALG:HEX`` with ALG a digest_set.md algorithm (any case; ``sha-256`` is read as
    ``sha256``) and HEX its digest; uppercase hex is lowercased. Left unnamed unless `name`
    is given: the spec says to leave the name unset when it is not meaningful.
    """
    parts = _split_digest_spec(spec)
    if parts is None:
        known = ", ".join(sorted(KNOWN_DIGEST_ALGORITHMS))
        raise InputError(f"subject digest {_show(spec)}: expected ALG:HEX with ALG one of {known}")
    algorithm, value = parts
    value = value.lower()
    problem = "empty digest value" if not value else _hex_problem(algorithm, value)
    if problem is not None:
        raise InputError(f"subject digest {_show(spec)}: {algorithm} {problem}")
    return ResourceDescriptor(name=name, digest={algorithm: value})


def parse_subject_arg(
    arg: str, *, sha512: bool = False, progress: ProgressCallback | None = None
) -> ResourceDescriptor:
    """Read one ``--subject``: ``PATH``, ``ALG:HEX`` or ``NAME=ALG:HEX``.

    Anything starting with a known algorithm name and ``:`` (``sha256:...``) is a digest, and
    ``NAME=ALG:HEX`` (split at the last ``=``) names it; everything else is a file path, hashed
    with SHA-256 (and SHA-512 if `sha512`) and named by its basename. If a file with a
    digest-looking name exists we refuse to guess: write ``./sha256:...`` to mean the file.
    """
    if not arg:
        raise InputError("--subject: empty argument")
    name: str | None = None
    spec: str | None = None
    if _split_digest_spec(arg) is not None:
        spec = arg
    else:
        head, equals, tail = arg.rpartition("=")
        if equals and _split_digest_spec(tail) is not None:
            if not head:
                raise InputError(f"--subject {_show(arg)}: empty name before '='")
            name, spec = head, tail
    if spec is None:
        return subject_from_file(arg, sha512=sha512, progress=progress)
    if os.path.lexists(arg):
        raise InputError(
            f"--subject {_show(arg)}: ambiguous, both a file and a digest; "
            f"write ./{arg} to mean the file"
        )
    return subject_from_digest(spec, name=name)
