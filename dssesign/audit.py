"""Tamper-evident audit log of key use: a hash chain in a JSON-lines file with signed checkpoints.

Every line of the log is one JSON object (RFC 8785 form) and one of two kinds:

* ``{"type": "record", "seq": N, ..., "prev": H}``: one signing operation per signer, trust-root
  change, key rotation or crash recovery. ``prev`` is the hash of record N-1 (64 zeros for the
  first record); a record's hash is SHA-256 over its RFC 8785 form. Sequence numbers start at 1
  and have no gaps.
* ``{"type": "checkpoint", "seq": N, "head": H, "time": T, "keyid": K, "algorithm": A,
  "signature": S}``: the audit key's signature (through any `Signer`: software, HSM, KMS) over
  the DSSE PAE of ``{"head", "seq", "time"}`` in RFC 8785 form, payload type
  `CHECKPOINT_PAYLOAD_TYPE`. A checkpoint is written every N records and on close, into the log
  and (atomically replaced) into the sidecar ``LOG.checkpoint``, so a log cut back behind the
  last checkpoint is caught as long as the sidecar (or a copy shipped elsewhere) survives.

Writers in several processes share one log: each append takes an exclusive `fcntl.flock`
(waiting at most ``lock_timeout`` seconds for another process that holds it, then failing with
`AuditError`), reads the tail when another process wrote since, and writes its line with one
``write`` on an ``O_APPEND`` descriptor. `AuditLog.commit` makes the records durable and
checkpointed before what they describe is published. Durability is ``fsync`` per record or
group commit (one ``fdatasync`` per batch or interval, and always before a checkpoint and on
close). A line a crash left without its newline (a torn final line) is never taken for a record:
the verifier reports it, and the next writer cuts it off and appends a ``recovery`` record with
its length and SHA-256 before continuing the chain.

No record holds a payload, signature, passphrase or PIN: payloads appear as SHA-256 digests,
key references with their secrets stripped (`redact_reference`), errors as codes.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import functools
import getpass
import hashlib
import json
import os
import re
import stat
import tempfile
import threading
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal

from ._fileio import atomic_write
from ._json import loads_strict
from ._lock import DEFAULT_LOCK_TIMEOUT, check_timeout, flock_within
from ._text import escape_controls
from .canonical import MAX_SAFE_INTEGER, canonicalize
from .dsse import pae
from .errors import AuditError, CanonicalizationError, InputError, LockTimeoutError
from .keys import PublicKey
from .multisign import RecordHook, SigningContext, SigningRecord
from .signer import Signer, redacted_reference

__all__ = [
    "CHECKPOINT_PAYLOAD_TYPE",
    "GENESIS",
    "AuditError",
    "AuditLog",
    "Checkpoint",
    "Problem",
    "VerifyReport",
    "default_actor",
    "printable_json",
    "read_entries",
    "redact_reference",
    "verify_log",
]

CHECKPOINT_PAYLOAD_TYPE: Final = "application/vnd.dssesign.audit-checkpoint+json"
#: `prev` of the first record.
GENESIS: Final = "0" * 64
SIDECAR_SUFFIX: Final = ".checkpoint"
#: Query keys of a key reference that never carry a secret; every other query value is dropped.
SAFE_QUERY_KEYS: Final = frozenset(
    {"module-name", "module-path", "slot-id", "region", "endpoint", "version", "key-version"}
)
_SECRET_ATTRIBUTES: Final = ("pin-value", "pin-source", "password", "passphrase")
_READ_CHUNK: Final = 65536
_MAX_LINE: Final = 1 << 20
#: Largest log `audit verify` and `audit show` read (kept in memory while checked).
MAX_LOG_BYTES: Final = 1 << 30

Durability = Literal["fsync", "group"]


# --- records ---------------------------------------------------------------------------------


def default_actor() -> str:
    """`DSSESIGN_ACTOR`, else the OS user."""
    actor = os.environ.get("DSSESIGN_ACTOR")
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        return f"uid:{os.getuid()}"


def redact_reference(reference: str) -> str:
    """A key reference fit for a record: `dssesign.signer.redacted_reference`, an allow-list.

    Only the scheme and attributes known to hold no secret survive; pkcs11 URIs also lose
    ``pin-source``; URL user info, fragments and every other attribute are dropped.
    """
    return redacted_reference(reference, pin_source=False)


def profile_of(reference: str) -> str:
    """The signing profile a (redacted) key reference names: software, pkcs11, awskms, ..."""
    head = reference.split(":", 1)[0].lower() if ":" in reference else ""
    if not head or head == "file" or len(head) == 1 or not head.isascii():
        return "software"  # a path, file://, or a drive letter
    return head


def error_code(record: SigningRecord) -> str | None:
    """The record's stable failure code (set by the signer where it failed; text is never read)."""
    if record.ok:
        return None
    return record.error_code or "error"


_second: tuple[int, str] = (-1, "")


def _now() -> str:
    """UTC now as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (the prefix is cached per second)."""
    global _second  # noqa: PLW0603 - a cache; a race only recomputes it
    seconds, nanos = divmod(time.time_ns(), 1_000_000_000)
    cached_second, prefix = _second
    if cached_second != seconds:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(seconds))
        _second = (seconds, prefix)
    return f"{prefix}{nanos // 1000:06d}Z"


_SAFE_INT: Final = 2**53 - 1


def _plain(container: dict[str, Any] | list[Any], depth: int = 0) -> bool:
    """Only strings, safe ints, bools, None and shallow lists/dicts of them, with ASCII keys:
    then JCS is sorted compact `json.dumps` output."""
    if type(container) is dict:
        try:
            if not "".join(container).isascii():
                return False
        except TypeError:  # a key that is not a string
            return False
        values: Any = container.values()
    else:
        values = container
    for v in values:
        kind = type(v)
        if kind is str or kind is bool or v is None:
            continue
        if kind is int:
            if -_SAFE_INT <= v <= _SAFE_INT:
                continue
            return False
        if (kind is list or kind is dict) and depth < 3 and _plain(v, depth + 1):
            continue
        return False
    return True


_ENCODER: Final = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, check_circular=False
)


def _encode(record: dict[str, Any]) -> bytes:
    """RFC 8785 bytes of a record. With no floats and ASCII keys, sorted compact `json.dumps`
    output already is JCS (see `dssesign.canonical`); anything else takes `canonicalize`."""
    if _plain(record):
        try:
            return _ENCODER.encode(record).encode("utf-8")
        except UnicodeEncodeError:
            pass  # a lone surrogate: canonicalize names the problem
    return canonicalize(record)


def _hash(obj: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonicalize(obj)).hexdigest()


def _context_fields(context: SigningContext | None) -> dict[str, Any]:
    if context is None:
        return {}
    fields: dict[str, Any] = {"operationId": context.operation_id}
    if context.actor is not None:
        fields["actor"] = context.actor
    if context.tenant is not None:
        fields["tenant"] = context.tenant
    if context.subject_digests:
        fields["subjectDigests"] = [dict(d) for d in context.subject_digests]
    if context.predicate_type is not None:
        fields["predicateType"] = context.predicate_type
    if not context.predicate_validated:
        fields["predicateValidation"] = "skipped"  # attest --no-validate
    return fields


@functools.lru_cache(maxsize=256)
def _reference_fields(reference: str) -> tuple[str, str]:
    redacted = redact_reference(reference)
    return redacted, profile_of(redacted)


def signing_fields(record: SigningRecord) -> dict[str, Any]:
    """The audit fields of one `SigningRecord` (without seq, time and prev)."""
    reference, profile = _reference_fields(record.reference)
    fields: dict[str, Any] = {
        "event": "sign",
        **_context_fields(record.context),
        "profile": profile,
        "keyRef": reference,
        "keyid": record.keyid,
        "algorithm": record.algorithm,
        "payloadType": record.payload_type,
        "payloadSha256": record.payload_sha256,
        "result": "success" if record.ok else "failure",
        "durationUs": round(record.duration_seconds * 1_000_000),
    }
    if record.signature_sha256 is not None:
        fields["signatureSha256"] = record.signature_sha256
    if record.exportable:
        fields["exportable"] = True  # the key can leave its device (allow-exportable/-extractable)
    code = error_code(record)
    if code is not None:
        fields["errorCode"] = code
    return fields


# --- the writer ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    head: str
    time: str
    keyid: str
    algorithm: str
    signature: bytes

    def body(self) -> dict[str, Any]:
        return {"head": self.head, "seq": self.seq, "time": self.time}

    def message(self) -> bytes:
        return pae(CHECKPOINT_PAYLOAD_TYPE, canonicalize(self.body()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "checkpoint",
            **self.body(),
            "keyid": self.keyid,
            "algorithm": self.algorithm,
            "signature": base64.b64encode(self.signature).decode("ascii"),
        }

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> Checkpoint:
        try:
            seq, head, moment = obj["seq"], obj["head"], obj["time"]
            keyid, algorithm, signature = obj["keyid"], obj["algorithm"], obj["signature"]
            if not (
                type(seq) is int
                and 0 < seq <= MAX_SAFE_INTEGER
                and all(isinstance(v, str) for v in (head, moment, keyid, algorithm, signature))
            ):
                raise TypeError
            for text in (head, moment, keyid, algorithm):
                text.encode("utf-8")  # a lone surrogate: no signed message could hold it
            raw = base64.b64decode(signature, validate=True)
        except (KeyError, TypeError, ValueError):
            raise InputError("malformed checkpoint") from None
        return cls(seq, head, moment, keyid, algorithm, raw)


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
        self._last_sync = time.monotonic()

    def _flush_loop(self) -> None:
        while not self._stopping:
            self._wake.wait(self._group_interval)
            self._wake.clear()
            with self._lock:
                if self._closed or not self._unsynced:
                    continue
                self._unsynced = 0  # records written from now on wait for the next round
            try:
                _fdatasync(self._fd)  # the fd stays open: close() joins this thread first
            except OSError as exc:
                self._flush_error = exc  # the next append fails: fail closed
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
        """Make every record written so far durable (group commit's explicit commit)."""
        with self._lock:
            if not self._closed:
                self._sync()

    def close(self) -> None:
        """Checkpoint (if this writer appended since the last one), fsync and close."""
        self._stop_flusher()
        with self._lock:
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


# --- display ---------------------------------------------------------------------------------

# What `escape_controls` shows escaped (controls, bidi overrides/isolates, line separators, BOM)
# and lone surrogates, less C0, which json.dumps escapes itself: these appear only inside strings.
_UNPRINTABLE_IN_JSON: Final = re.compile(
    "[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ud800-\udfff]"
)


def printable_json(value: Any) -> str:
    """Indented JSON of `value` that is safe for a terminal: a character a terminal would obey or
    reorder by becomes a ``\\uXXXX`` escape (the same string to a JSON reader), so a field a
    signer wrote cannot erase, hide or forge output; other non-ASCII text stays readable."""
    text = json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False)
    return _UNPRINTABLE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _excerpt(text: str, limit: int = 200) -> str:
    """Escaped and bounded: attacker-chosen text quoted in a finding's message."""
    return escape_controls(text[:limit]) + ("..." if len(text) > limit else "")


# --- reading and verifying -------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One line of the log: a record or a checkpoint (`obj`), or None for a line that is not
    sound I-JSON (unparsable, torn, or without an RFC 8785 form, so no writer made it)."""

    line: int
    obj: dict[str, Any] | None
    raw: bytes
    complete: bool
    #: Why `obj` is None (None for a sound line).
    error: str | None = None
    #: A line strict reading refused, read leniently: only to say which record it claims to be.
    salvaged: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    #: SHA-256 (hex) of `obj` in RFC 8785 form: a record's hash ("" when `obj` is None).
    digest: str = ""

    @property
    def kind(self) -> str:
        return str(self.obj.get("type")) if self.obj is not None else "corrupt"


def _salvage(line: bytes) -> dict[str, Any] | None:
    """Lenient reading of a refused line, never trusted: only for which record it claims to be,
    so that one bad record is one finding and not also a deleted one."""
    if len(line) > _MAX_LINE:
        return None
    try:
        obj = json.loads(line.decode("utf-8", "surrogatepass"))
    except (ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def _entry(number: int, raw: bytes, complete: bool) -> Entry:
    """Parse one line strictly and canonicalize it once: an object that parses but has no
    RFC 8785 form (1e400, an integer beyond 2^53, a lone surrogate) has no hash to chain, so it
    is a bad line to report, never an exception that aborts the whole verification."""
    if not complete:
        return Entry(number, None, raw, False, error="torn final line")
    try:
        obj = loads_strict(raw, what="audit line")
    except InputError as exc:
        return Entry(number, None, raw, True, error=str(exc), salvaged=_salvage(raw))
    if not isinstance(obj, dict):
        return Entry(number, None, raw, True, error="not a JSON object")
    try:
        digest = hashlib.sha256(canonicalize(obj)).hexdigest()
    except CanonicalizationError as exc:
        return Entry(number, None, raw, True, error=str(exc), salvaged=obj)
    return Entry(number, obj, raw, True, digest=digest)


def read_entries(path: str | os.PathLike[str]) -> list[Entry]:
    """Every line of the log, under a shared lock so no writer is half-way through one."""
    try:
        with open(path, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                # /dev/zero or a FIFO would be read without end: a log is a regular file.
                raise InputError(f"audit log {path}: not a regular file")
            # A hung writer must not hang verify or show: the shared lock is bounded too.
            if not flock_within(handle.fileno(), DEFAULT_LOCK_TIMEOUT, shared=True):
                raise LockTimeoutError(
                    f"audit log {path}: a writer held its lock for over "
                    f"{DEFAULT_LOCK_TIMEOUT:g} s; nothing was read"
                )
            try:
                data = handle.read(MAX_LOG_BYTES + 1)
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        if len(data) > MAX_LOG_BYTES:
            raise InputError(
                f"audit log {path}: larger than the limit of {MAX_LOG_BYTES} bytes "
                "(dssesign.audit.MAX_LOG_BYTES); verify a rotated, smaller log"
            )
    except FileNotFoundError:
        raise InputError(f"audit log {path}: no such file") from None
    except OSError as exc:
        raise InputError(f"audit log {path}: {exc.strerror}") from None
    entries: list[Entry] = []
    if not data:
        return entries
    lines = data.split(b"\n")
    last_complete = data.endswith(b"\n")
    if last_complete:
        lines.pop()
    for index, raw in enumerate(lines):
        complete = last_complete or index < len(lines) - 1
        entries.append(_entry(index + 1, raw, complete))
    return entries


@dataclass(frozen=True)
class Problem:
    """One finding. `kind`: edited, deleted, inserted, reordered, truncated, torn-final-line,
    corrupt-line, malformed-record, bad-checkpoint-signature, unknown-checkpoint-key,
    checkpoint-mismatch, no-checkpoint."""

    kind: str
    message: str
    seq: int | None = None
    line: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "seq": self.seq, "line": self.line}


@dataclass
class VerifyReport:
    records: int = 0
    last_seq: int = 0
    head: str = GENESIS
    checkpoints: int = 0
    #: The highest sequence number a valid checkpoint signs.
    anchored_seq: int = 0
    #: Every record up to this sequence number verified (chain and checkpoints).
    valid_through: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def unanchored(self) -> int:
        """Records after the last valid checkpoint: a cut there is not detectable."""
        return max(0, self.last_seq - self.anchored_seq)

    def kinds(self) -> set[str]:
        return {p.kind for p in self.problems}

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "records": self.records,
            "lastSeq": self.last_seq,
            "head": self.head,
            "checkpoints": self.checkpoints,
            "anchoredSeq": self.anchored_seq,
            "unanchoredRecords": self.unanchored,
            "validThrough": self.valid_through,
            "problems": [p.to_dict() for p in self.problems],
        }


@dataclass(frozen=True)
class _Rec:
    line: int
    seq: int
    prev: str
    hash: str
    #: False for a malformed record kept in the chain only for its place (reported already).
    sound: bool = True


def verify_log(
    path: str | os.PathLike[str],
    keys: Sequence[PublicKey],
    *,
    checkpoint: bytes | None = None,
    use_sidecar: bool = True,
) -> VerifyReport:
    """Walk the chain and the checkpoints of a log; every finding is a `Problem`.

    `keys` are the audit keys whose checkpoints count. `checkpoint` is a checkpoint line kept
    elsewhere (the newest one seen); else the sidecar ``LOG.checkpoint`` is used if present.
    Whatever a line holds, it is a finding in the report, never an exception.
    """
    report = VerifyReport()
    by_keyid = {key.keyid: key for key in keys}
    records: list[_Rec] = []
    checkpoints: list[tuple[int, Checkpoint]] = []
    for entry in read_entries(path):
        if not entry.complete:
            report.problems.append(
                Problem(
                    "torn-final-line",
                    f"line {entry.line} is a torn final line ({len(entry.raw)} bytes without a "
                    "newline): not a record",
                    line=entry.line,
                )
            )
            continue
        obj = entry.obj
        if obj is None:
            _bad_line(entry, entry.salvaged or {}, entry.error or "not JSON", records, report)
            continue
        if obj.get("type") == "checkpoint":
            try:
                checkpoints.append((entry.line, Checkpoint.from_dict(obj)))
            except InputError:
                report.problems.append(
                    Problem(
                        "corrupt-line", f"line {entry.line}: malformed checkpoint", line=entry.line
                    )
                )
            continue
        seq, prev = obj.get("seq"), obj.get("prev")
        if obj.get("type") == "record" and type(seq) is int and isinstance(prev, str):
            records.append(_Rec(entry.line, seq, prev, entry.digest))
        else:
            _bad_line(
                entry, obj, "a record needs type, an integer seq and a prev hash", records, report
            )
    _walk_chain(records, report)
    genuine: dict[int, str] = {}
    record_line: dict[int, int] = {}
    for rec in records:
        genuine.setdefault(rec.seq, rec.hash)
        record_line.setdefault(rec.seq, rec.line)
    _check_checkpoint_order(checkpoints, record_line, report)
    authentic = _check_checkpoints(checkpoints, genuine, by_keyid, report)
    external = checkpoint
    sidecar = Path(f"{path}{SIDECAR_SUFFIX}")
    if external is None and use_sidecar:
        try:
            with sidecar.open("rb") as handle:
                external = handle.read(_MAX_LINE + 1)
        except FileNotFoundError:
            pass
        except OSError as exc:
            report.problems.append(
                Problem("corrupt-line", f"the checkpoint {sidecar} cannot be read: {exc.strerror}")
            )
    if external is not None:
        obj = _parse_line(external.strip()) if len(external) <= _MAX_LINE else None
        try:
            if obj is None:
                raise InputError("not JSON")
            authentic += _check_checkpoints(
                [(0, Checkpoint.from_dict(obj))], genuine, by_keyid, report
            )
        except InputError:
            report.problems.append(Problem("corrupt-line", "the outside checkpoint is malformed"))
    if (
        records
        and report.anchored_seq == 0
        and not authentic
        and not (report.kinds() & _CHECKPOINT_KINDS)
    ):
        report.problems.append(
            Problem(
                "no-checkpoint",
                "no valid checkpoint: the log could have been cut back or rewritten undetected",
            )
        )
    first_bad = min(
        (p.seq for p in report.problems if p.seq is not None), default=report.last_seq + 1
    )
    report.valid_through = max(0, min(report.last_seq, first_bad - 1))
    report.problems.sort(key=lambda p: (p.line or 0) if p.line else 1 << 60)
    return report


_CHECKPOINT_KINDS: Final = frozenset(
    {"bad-checkpoint-signature", "unknown-checkpoint-key", "checkpoint-mismatch", "truncated"}
)


def _bad_line(
    entry: Entry, claimed: Mapping[str, Any], why: str, records: list[_Rec], report: VerifyReport
) -> None:
    """One finding for a line that is not a well-formed record or checkpoint. A record that
    still says which it is keeps its place in the chain (hashed over its raw bytes, which no
    genuine record hashes to), so the records after it are not also reported as deleted,
    reordered or edited."""
    seq, prev = claimed.get("seq"), claimed.get("prev")
    why = _excerpt(why)
    if claimed.get("type") == "record" and type(seq) is int and abs(seq) <= MAX_SAFE_INTEGER:
        report.problems.append(
            Problem(
                "malformed-record",
                f"line {entry.line}: record {seq} is not a valid audit record ({why})",
                seq,
                entry.line,
            )
        )
        raw_hash = hashlib.sha256(entry.raw).hexdigest()
        records.append(
            _Rec(entry.line, seq, prev if isinstance(prev, str) else "", raw_hash, sound=False)
        )
    elif entry.obj is not None:
        report.problems.append(
            Problem("malformed-record", f"line {entry.line}: {why}", line=entry.line)
        )
    else:
        what = "checkpoint" if claimed.get("type") == "checkpoint" else "audit line"
        report.problems.append(
            Problem(
                "corrupt-line", f"line {entry.line} is not a valid {what} ({why})", line=entry.line
            )
        )


def _walk_chain(records: list[_Rec], report: VerifyReport) -> None:
    """Follow the chain in file order. Every step is a few dict/set probes (a gap: a bisect into
    the sorted sequence numbers, over ranges that never overlap), so no input of n lines costs
    more than O(n log n): thousands of forged lines sharing one sequence number, or one gap after
    another, must not make verification quadratic."""
    counts = Counter(rec.seq for rec in records)
    referenced = {rec.prev for rec in records}
    # How many records of each seq something chains to: "does another record of this seq
    # chain?" is then a subtraction, not a scan of all the records that share the seq.
    chained = Counter(rec.seq for rec in records if rec.hash in referenced)
    last_index = {rec.seq: index for index, rec in enumerate(records)}
    ordered = sorted(last_index)
    expected, expected_prev, prev_sound = 1, GENESIS, True
    seen_hashes: set[str] = set()
    problems = report.problems
    for index, rec in enumerate(records):
        if counts[rec.seq] > 1:
            chains = rec.hash in referenced
            others_chain = chained[rec.seq] - int(chains) > 0
            if rec.hash in seen_hashes or (not chains and others_chain):
                if rec.sound:  # a malformed record is reported once, as malformed
                    problems.append(
                        Problem(
                            "inserted",
                            f"line {rec.line}: record {rec.seq} is a second record with this "
                            "sequence number and not part of the chain",
                            rec.seq,
                            rec.line,
                        )
                    )
                continue
        seen_hashes.add(rec.hash)
        if rec.seq == expected:
            if rec.prev != expected_prev and rec.sound and prev_sound:
                problems.append(
                    Problem(
                        "edited",
                        f"line {rec.line}: record {rec.seq} does not chain to record "
                        f"{rec.seq - 1}: record {rec.seq - 1} (or this link) was edited",
                        rec.seq - 1 if rec.seq > 1 else rec.seq,
                        rec.line,
                    )
                )
        elif rec.seq > expected:
            # Missing here but present further down: moved; absent everywhere: deleted. A forged
            # huge seq must not make us enumerate its gap.
            start, stop = bisect_left(ordered, expected), bisect_left(ordered, rec.seq)
            moved = [s for s in ordered[start:stop] if last_index[s] > index]
            moved_set = set(moved)
            gone_first = next((s for s in range(expected, rec.seq) if s not in moved_set), None)
            gone_last = next(
                (s for s in range(rec.seq - 1, expected - 1, -1) if s not in moved_set), None
            )
            if gone_first is not None and gone_last is not None:
                span = f"{gone_first}" if gone_first == gone_last else f"{gone_first}..{gone_last}"
                problems.append(
                    Problem(
                        "deleted",
                        f"record {span} missing before line {rec.line} (deleted)",
                        gone_first,
                        rec.line,
                    )
                )
            if moved:
                problems.append(
                    Problem(
                        "reordered",
                        f"line {rec.line}: record {rec.seq} comes before record {moved[0]}",
                        moved[0],
                        rec.line,
                    )
                )
        else:
            if rec.sound:
                kind = "inserted" if counts[rec.seq] > 1 else "reordered"
                problems.append(
                    Problem(
                        kind,
                        f"line {rec.line}: record {rec.seq} after record {expected - 1} "
                        + (
                            "(duplicate sequence number)"
                            if kind == "inserted"
                            else "(out of order)"
                        ),
                        rec.seq,
                        rec.line,
                    )
                )
            continue
        expected, expected_prev, prev_sound = rec.seq + 1, rec.hash, rec.sound
        report.records += 1
    report.last_seq = expected - 1
    report.head = expected_prev


def _check_checkpoint_order(
    checkpoints: list[tuple[int, Checkpoint]],
    record_line: Mapping[int, int],
    report: VerifyReport,
) -> None:
    """A writer appends a checkpoint after the record it signs, in increasing order: a
    checkpoint line before its record, or after a later checkpoint, was moved."""
    highest = 0
    for line, cp in checkpoints:
        signed_at = record_line.get(cp.seq)
        if signed_at is not None and signed_at > line:
            report.problems.append(
                Problem(
                    "reordered",
                    f"line {line}: checkpoint {cp.seq} comes before its record (line "
                    f"{signed_at}): checkpoint lines were moved",
                    cp.seq,
                    line,
                )
            )
        elif cp.seq < highest:
            report.problems.append(
                Problem(
                    "reordered",
                    f"line {line}: checkpoint {cp.seq} comes after checkpoint {highest}: "
                    "checkpoint lines were moved",
                    cp.seq,
                    line,
                )
            )
        highest = max(highest, cp.seq)


def _check_checkpoints(
    checkpoints: list[tuple[int, Checkpoint]],
    genuine: Mapping[int, str],
    by_keyid: Mapping[str, PublicKey],
    report: VerifyReport,
) -> int:
    """Check each checkpoint against the records; return how many an audit key signed."""
    authentic = 0
    verified: dict[tuple[str, bytes, bytes], bool] = {}  # copies of one line: one verification
    for line, cp in checkpoints:
        where = f"line {line}" if line else "the outside checkpoint"
        key = by_keyid.get(cp.keyid)
        if key is None:
            report.problems.append(
                Problem(
                    "unknown-checkpoint-key",
                    f"{where}: checkpoint {cp.seq} is signed by keyid {_excerpt(cp.keyid, 80)}, "
                    "not an audit key",
                    cp.seq,
                    line or None,
                )
            )
            continue
        message = cp.message()
        valid = verified.get((cp.keyid, message, cp.signature))
        if valid is None:
            valid = verified[cp.keyid, message, cp.signature] = key.verify(cp.signature, message)
        if not valid:
            report.problems.append(
                Problem(
                    "bad-checkpoint-signature",
                    f"{where}: the signature on checkpoint {cp.seq} does not verify",
                    cp.seq,
                    line or None,
                )
            )
            continue
        authentic += 1
        actual = genuine.get(cp.seq)
        if actual is None and 0 < cp.seq <= report.last_seq:
            # Its record is missing from inside the chain, which the walk reported as deleted:
            # the log is not truncated, and one deletion is one finding.
            continue
        if actual is None:
            report.problems.append(
                Problem(
                    "truncated",
                    f"{where}: checkpoint {cp.seq} signs a record the log no longer has "
                    f"(log ends at {report.last_seq}): truncated behind the checkpoint",
                    cp.seq,
                    line or None,
                )
            )
            continue
        if actual != cp.head:
            report.problems.append(
                Problem(
                    "checkpoint-mismatch",
                    f"{where}: checkpoint {cp.seq} signs another head: records up to "
                    f"{cp.seq} were edited, inserted, deleted or reordered",
                    cp.seq,
                    line or None,
                )
            )
            continue
        report.checkpoints += 1 if line else 0
        report.anchored_seq = max(report.anchored_seq, cp.seq)
    return authentic


def read_records(
    path: str | os.PathLike[str],
    *,
    since: datetime | None = None,
    keyid: str | None = None,
    on_skip: Callable[[Entry], None] | None = None,
) -> list[dict[str, Any]]:
    """The complete records of a log (no checkpoints), optionally filtered.

    A line that is neither a sound record nor a checkpoint (torn, corrupt, not I-JSON) is left
    out and passed to `on_skip`: it has no faithful listing, and `verify_log` says what is wrong.
    """
    since_text = None
    if since is not None:
        t = since.astimezone(UTC)
        since_text = t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond:06d}Z"
    out = []
    for entry in read_entries(path):
        obj = entry.obj
        kind = obj.get("type") if obj is not None else None
        if obj is None or kind != "record":
            if kind != "checkpoint" and on_skip is not None:
                on_skip(entry)
            continue
        if since_text is not None and str(obj.get("time", "")) < since_text:
            continue
        if keyid is not None and not any(
            str(obj.get(name, "")).startswith(keyid) for name in ("keyid", "fromKeyid", "toKeyid")
        ):
            continue
        out.append(obj)
    return out
