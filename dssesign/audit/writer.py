"""The writer: crash-safe, multi-process appends under a bounded lock, group commit, checkpoints."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from .._internal.fileio import atomic_write
from .._internal.lock import DEFAULT_LOCK_TIMEOUT, check_timeout, flock_within
from .._internal.strict_json import loads_strict
from ..core.canonical import canonicalize
from ..core.dsse import pae
from ..errors import AuditError, CanonicalizationError, InputError
from ..sign.multisign import RecordHook, SigningContext, SigningRecord
from ..sign.signer import Signer
from .checkpoint import Checkpoint
from .records import (
    _MAX_LINE,
    _READ_CHUNK,
    CHECKPOINT_PAYLOAD_TYPE,
    GENESIS,
    SIDECAR_SUFFIX,
    Durability,
    _encode,
    _hash,
    _now,
    default_actor,
    profile_of,
    redact_reference,
    signing_fields,
)


@dataclass
class _Tail:
    size: int = -1
    seq: int = 0
    head: str = GENESIS
    torn: bytes | None = None


class AuditLog:
    """Appends records to a JSON-lines audit log; usable as a `MultiProfileSigner` audit sink.

    ``log(record)`` takes a `SigningRecord` (the hook interface); `append` takes any fields.
    Raises `AuditError` when the record cannot be written, which `MultiProfileSigner` turns into
    a failed signing operation. Close it (or use ``with``) to write the final checkpoint.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        durability: Durability = "fsync",
        group_size: int = 512,
        group_interval: float = 0.5,
        checkpoint_every: int = 1000,
        checkpoint_signer: Signer | None = None,
        actor: str | None = None,
        tenant: str | None = None,
        on_append: Callable[[dict[str, Any], str], None] | None = None,
        lock_timeout: float | None = DEFAULT_LOCK_TIMEOUT,
    ) -> None:
        if durability not in ("fsync", "group"):
            raise AuditError(f"durability must be 'fsync' or 'group', not {durability!r}")
        if group_size < 1 or group_interval < 0 or checkpoint_every < 1:
            raise AuditError("group_size and checkpoint_every must be >= 1, group_interval >= 0")
        try:
            #: Seconds an append waits for another process's lock on the log (None: no bound).
            self.lock_timeout = check_timeout(lock_timeout)
        except ValueError as exc:
            raise AuditError(str(exc)) from None
        self.path = Path(path)
        self.sidecar = Path(f"{self.path}{SIDECAR_SUFFIX}")
        self.durability: Durability = durability
        self._group_size = group_size
        self._group_interval = group_interval
        self._checkpoint_every = checkpoint_every
        self._signer = checkpoint_signer
        self._actor = actor if actor is not None else default_actor()
        self._tenant = tenant
        self._on_append = on_append
        self._lock = threading.Lock()
        self._tail = _Tail()
        self._unsynced = 0
        #: Records written by this writer, and how many of them an fdatasync made durable.
        self._written = 0
        self._durable = 0
        #: Held by `flush` across its fdatasync (not the append lock), and by `close`.
        self._sync_lock = threading.Lock()
        self._last_sync = time.monotonic()
        self._appended_since_checkpoint = False
        self._closed = False
        created = not self.path.exists()
        try:
            self._fd = os.open(
                self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640
            )
        except OSError as exc:
            raise AuditError(f"audit log {self.path}: {exc.strerror}") from None
        if created:
            _fsync_directory(self.path)
        # Group commit: a background thread fdatasyncs every `group_interval` seconds, or as
        # soon as `group_size` records wait; fdatasync releases the GIL, so signing goes on.
        self._flush_error: OSError | None = None
        self._stopping = False
        self._wake = threading.Event()
        self._flusher: threading.Thread | None = None
        if durability == "group":
            self._flusher = threading.Thread(
                target=self._flush_loop, daemon=True, name="dssesign-audit-flush"
            )
            self._flusher.start()

    # -- context manager ---------------------------------------------------------------------

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the sink interface --------------------------------------------------------------------

    def __call__(self, record: SigningRecord) -> None:
        """The hook interface: append `record` with actor and tenant; `AuditError` if unwritten."""
        fields = signing_fields(record)
        fields.setdefault("actor", self._actor)
        if self._tenant is not None:
            fields.setdefault("tenant", self._tenant)
        self.append(fields)

    def log(self, record: SigningRecord) -> str:
        """Append one signing record; returns its hash."""
        fields = signing_fields(record)
        fields.setdefault("actor", self._actor)
        if self._tenant is not None:
            fields.setdefault("tenant", self._tenant)
        return self.append(fields)

    def hook(self) -> RecordHook:
        """This log as `MultiProfileSigner(audit=...)` takes it: a failed write fails signing."""
        return self.__call__

    def record_trust_root_change(
        self,
        change: str,
        *,
        version: int,
        keyids: Sequence[str] = (),
        file_sha256: str | None = None,
        operation_id: str | None = None,
        result: str = "success",
        error_code: str | None = None,
    ) -> str:
        """One trust-root change (init, add-key, revoke, set-policy, set-root-keys, sign, ...)."""
        fields: dict[str, Any] = {
            "event": "trust-root",
            "change": change,
            "operationId": operation_id or SigningContext().operation_id,
            "actor": self._actor,
            "trustRootVersion": version,
            "keyids": list(keyids),
            "result": result,
        }
        if file_sha256 is not None:
            fields["trustRootSha256"] = file_sha256
        if error_code is not None:
            fields["errorCode"] = error_code
        return self.append(fields)

    def record_rotation(
        self,
        *,
        from_keyid: str,
        to_keyid: str,
        version: int,
        signer_reference: str | None = None,
        operation_id: str | None = None,
        result: str = "success",
        error_code: str | None = None,
    ) -> str:
        """One key rotation step (the old key's handover to the new one)."""
        fields: dict[str, Any] = {
            "event": "rotation",
            "operationId": operation_id or SigningContext().operation_id,
            "actor": self._actor,
            "fromKeyid": from_keyid,
            "toKeyid": to_keyid,
            "trustRootVersion": version,
            "result": result,
        }
        if signer_reference is not None:
            reference = redact_reference(signer_reference)
            fields["keyRef"] = reference
            fields["profile"] = profile_of(reference)
        if error_code is not None:
            fields["errorCode"] = error_code
        return self.append(fields)

    # -- appending -----------------------------------------------------------------------------

    def append(self, fields: Mapping[str, Any]) -> str:
        """Append one record (``seq``, ``time``, ``prev`` are added); return its hash."""
        if "type" in fields or "seq" in fields or "time" in fields or "prev" in fields:
            reserved = sorted({"type", "seq", "time", "prev"} & set(fields))
            raise AuditError(f"fields {reserved} are set by the log")
        with self._lock:
            if self._closed:
                raise AuditError(f"audit log {self.path} is closed")
            fd = self._fd
            try:
                self._flock()  # (inlined _locked: this is the hot path)
                try:
                    self._refresh_tail()
                    record_hash = self._append_locked(fields)
                    if self._signer is not None and self._tail.seq % self._checkpoint_every == 0:
                        self._checkpoint_locked()
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            except OSError as exc:
                raise AuditError(f"audit log {self.path}: {exc.strerror or exc}") from None
            return record_hash

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self._flock()
        try:
            self._refresh_tail()
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _flock(self) -> None:
        """The exclusive flock on the log, within `lock_timeout` (then AuditError)."""
        if not flock_within(self._fd, self.lock_timeout):
            raise AuditError(
                f"audit log {self.path}: another process has held its lock for more than "
                f"{self.lock_timeout:g}s; nothing was recorded"
            )

    def _refresh_tail(self) -> None:
        size = os.fstat(self._fd).st_size
        if size == self._tail.size:
            return  # nobody wrote since our last append
        first = self._tail.size < 0
        self._tail = _read_tail(self._fd, size)
        if first:
            self._check_sidecar()
        if self._tail.torn is not None:
            # A writer died mid-line: cut the fragment off and say so in the chain.
            torn = self._tail.torn
            os.ftruncate(self._fd, size - len(torn))
            os.fsync(self._fd)
            self._tail.size = size - len(torn)
            self._tail.torn = None
            self._append_locked(
                {
                    "event": "recovery",
                    "actor": self._actor,
                    "tornBytes": len(torn),
                    "tornSha256": hashlib.sha256(torn).hexdigest(),
                }
            )
            self._sync()

    def _check_sidecar(self) -> None:
        """Refuse to extend a log cut back (or rewritten) behind its newest checkpoint: appending
        would overwrite the sidecar, the evidence of it."""
        try:
            obj = _parse_line(self.sidecar.read_bytes().strip())
        except FileNotFoundError:
            return
        if obj is None or obj.get("type") != "checkpoint":
            raise AuditError(f"{self.sidecar} is not a checkpoint; see 'dssesign audit verify'")
        seq, head = obj.get("seq"), obj.get("head")
        if type(seq) is int and (
            seq > self._tail.seq or (seq == self._tail.seq and head != self._tail.head)
        ):
            raise AuditError(
                f"audit log {self.path} ends at record {self._tail.seq} but checkpoint {seq} "
                "was signed for it: it was truncated or rewritten; see 'dssesign audit verify'"
            )

    def _append_locked(self, fields: Mapping[str, Any]) -> str:
        tail = self._tail
        if self._flush_error is not None:
            raise self._flush_error
        record = {"type": "record", "seq": tail.seq + 1, "time": _now()}
        record.update({k: v for k, v in fields.items() if v is not None})
        record["prev"] = tail.head
        data = _encode(record)
        record_hash = hashlib.sha256(data).hexdigest()
        _write_all(self._fd, data + b"\n")
        tail.size += len(data) + 1
        tail.seq += 1
        tail.head = record_hash
        self._appended_since_checkpoint = True
        self._unsynced += 1
        self._written += 1
        if self._flusher is None:
            self._sync()
        elif self._unsynced >= self._group_size:
            self._wake.set()
        if self._on_append is not None:
            self._on_append(record, record_hash)
        return record_hash

    def _sync(self) -> None:
        if self._unsynced:
            _fdatasync(self._fd)
        self._unsynced = 0
        self._durable = self._written
        self._last_sync = time.monotonic()

    def _flush_loop(self) -> None:
        while not self._stopping:
            self._wake.wait(self._group_interval)
            self._wake.clear()
            with self._lock:
                if self._closed or not self._unsynced:
                    continue
                self._unsynced = 0  # records written from now on wait for the next round
                upto = self._written
            try:
                _fdatasync(self._fd)  # the fd stays open: close() joins this thread first
            except OSError as exc:
                self._flush_error = exc  # the next append fails: fail closed
            else:
                with self._lock:
                    self._durable = max(self._durable, upto)
            self._last_sync = time.monotonic()

    def _stop_flusher(self) -> None:
        if self._flusher is not None:
            self._stopping = True
            self._wake.set()
            self._flusher.join()
            self._flusher = None

    # -- checkpoints ---------------------------------------------------------------------------

    def checkpoint(self) -> Checkpoint | None:
        """Sign and write a checkpoint for the current head now (None without an audit key)."""
        with self._lock:
            if self._signer is None:
                return None
            try:
                with self._locked():
                    return self._checkpoint_locked()
            except OSError as exc:
                raise AuditError(f"audit log {self.path}: {exc.strerror or exc}") from None

    def _checkpoint_locked(self) -> Checkpoint | None:
        signer = self._signer
        if signer is None or self._tail.seq == 0:
            return None
        if self._flush_error is not None:
            raise self._flush_error
        self._sync()  # the records a checkpoint covers are on disk before it is
        seq, head, moment = self._tail.seq, self._tail.head, _now()
        message = pae(
            CHECKPOINT_PAYLOAD_TYPE, canonicalize({"head": head, "seq": seq, "time": moment})
        )
        try:
            signature = signer.sign(message)
        except Exception as exc:
            # The type only: a backend's message could echo what it was given.
            raise AuditError(f"signing the audit checkpoint failed ({type(exc).__name__})") from exc
        if not isinstance(signature, bytes) or not signer.public_key.verify(signature, message):
            raise AuditError("the audit checkpoint signature does not verify with the audit key")
        checkpoint = Checkpoint(
            seq=seq,
            head=head,
            time=moment,
            keyid=signer.keyid,
            algorithm=signer.algorithm.name,
            signature=signature,
        )
        line = canonicalize(checkpoint.to_dict()) + b"\n"
        _write_all(self._fd, line)
        _fdatasync(self._fd)
        self._tail.size += len(line)
        atomic_write(self.sidecar, line, mode=0o640)
        self._appended_since_checkpoint = False
        return checkpoint

    def commit(self) -> Checkpoint | None:
        """Make every record written so far durable and (with an audit key) checkpoint them,
        keeping the log open; AuditError if either fails.

        Call it after recording an operation and before publishing its result: nothing is then
        published whose records could still be lost or left unsigned, and the log is still
        open to record a publication that fails after all (`record_publish_failure`). A
        `close` right after it writes nothing more.
        """
        with self._lock:
            if self._closed:
                raise AuditError(f"audit log {self.path} is closed")
            try:
                # Unconditionally: the group-commit thread may be mid-fdatasync of our records.
                _fdatasync(self._fd)
                self._unsynced = 0
                if self._flush_error is not None:
                    raise self._flush_error
                if self._signer is not None and self._appended_since_checkpoint:
                    with self._locked():
                        return self._checkpoint_locked()
                return None
            except OSError as exc:
                raise AuditError(f"audit log {self.path}: {exc.strerror or exc}") from None
            except InputError as exc:  # the checkpoint sidecar could not be replaced
                raise AuditError(f"audit log {self.path}: {exc}") from None

    def check_writable(self) -> None:
        """Refuse now, before any work, a log whose checkpoint could not be written on close.

        The log itself was opened for writing already; this checks that the sidecar
        ``LOG.checkpoint`` can be replaced (a temp file in its directory, then a rename).
        """
        if self._signer is None:
            return
        if self.sidecar.is_dir():
            raise AuditError(f"audit log {self.path}: its checkpoint {self.sidecar} is a directory")
        directory = self.sidecar.parent if str(self.sidecar.parent) else Path(".")
        try:
            fd, tmp = tempfile.mkstemp(
                dir=directory, prefix=f".{self.sidecar.name}.", suffix=".tmp"
            )
            os.close(fd)
            os.unlink(tmp)
        except OSError as exc:
            raise AuditError(
                f"audit log {self.path}: cannot write its checkpoint {self.sidecar}: {exc.strerror}"
            ) from None

    def record_publish_failure(self, *, operation_id: str, error_code: str) -> str:
        """The outputs of operation `operation_id`, recorded as successful, were not published
        after all (e.g. a rename failed after `commit`): ``{"event": "publish", "result":
        "failure", "errorCode": ...}`` under the same operation id."""
        return self.append(
            {
                "event": "publish",
                "operationId": operation_id,
                "actor": self._actor,
                "result": "failure",
                "errorCode": error_code,
            }
        )

    # -- closing -------------------------------------------------------------------------------

    def flush(self) -> None:
        """Make every record written so far durable (group commit's explicit commit).

        Concurrent callers share one fdatasync, run outside the append lock: appends go on
        while it runs, and a caller whose records an fdatasync already covered returns at once.
        """
        with self._lock:
            if self._closed or self._durable >= self._written:
                return
            target = self._written
        with self._sync_lock:
            with self._lock:
                if self._closed or self._durable >= target:
                    return
                upto = self._written
            _fdatasync(self._fd)  # close() takes _sync_lock first: the fd is still open
            with self._lock:
                self._durable = max(self._durable, upto)

    def close(self) -> None:
        """Checkpoint (if this writer appended since the last one), fsync and close."""
        self._stop_flusher()
        with self._sync_lock, self._lock:
            if self._closed:
                return
            try:
                if self._flush_error is not None:
                    raise self._flush_error  # never checkpoint records that may be lost
                if self._signer is not None and self._appended_since_checkpoint:
                    with self._locked():
                        self._checkpoint_locked()
                self._sync()
            except OSError as exc:
                raise AuditError(f"audit log {self.path}: {exc.strerror or exc}") from None
            finally:
                self._closed = True
                os.close(self._fd)

    @property
    def head(self) -> tuple[int, str]:
        """(sequence number, hash) of the last record this writer saw."""
        return self._tail.seq, self._tail.head


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fdatasync(fd: int) -> None:
    sync = getattr(os, "fdatasync", os.fsync)
    sync(fd)


def _fsync_directory(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path.parent if str(path.parent) else ".", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _read_tail(fd: int, size: int) -> _Tail:
    """The last record's seq and hash, and a torn final fragment if there is one."""
    tail = _Tail(size=size)
    if size == 0:
        return tail
    chunk = min(size, _READ_CHUNK)
    while True:
        data = os.pread(fd, chunk, size - chunk)
        end = len(data)
        if not data.endswith(b"\n"):
            cut = data.rfind(b"\n")
            if cut < 0 and chunk < size:
                chunk = min(size, chunk * 4)
                continue
            tail.torn = data[cut + 1 :]
            end = cut + 1
        lines = data[:end].split(b"\n")[:-1]
        complete = lines[1:] if chunk < size else lines  # the first may be cut by the chunk
        for line in reversed(complete):
            obj = _parse_line(line)
            if obj is None:
                raise AuditError(
                    "the audit log ends in a corrupt line; run 'dssesign audit verify'"
                )
            if obj.get("type") == "record":
                seq = obj.get("seq")
                if type(seq) is not int:
                    raise AuditError("the audit log's last record has no sequence number")
                try:
                    head = _hash(obj)
                except CanonicalizationError:  # no writer made it: never chain onto it
                    raise AuditError(
                        "the audit log ends in a malformed record; run 'dssesign audit verify'"
                    ) from None
                tail.seq, tail.head = seq, head
                return tail
        if chunk >= size:
            return tail  # checkpoints only (or nothing): a fresh chain
        if chunk >= _MAX_LINE * 4:
            raise AuditError("no record found near the end of the audit log")
        chunk = min(size, chunk * 4)


def _parse_line(line: bytes) -> dict[str, Any] | None:
    try:
        obj = loads_strict(line, what="audit line")
    except InputError:
        return None
    return obj if isinstance(obj, dict) else None
