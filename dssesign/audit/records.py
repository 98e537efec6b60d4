"""What a record holds: signing fields, redacted references, stable codes, RFC 8785 lines."""

from __future__ import annotations

import functools
import getpass
import hashlib
import json
import os
import time
from collections.abc import Mapping
from typing import Any, Final, Literal

from ..core.canonical import canonicalize
from ..sign.multisign import SigningContext, SigningRecord
from ..sign.signer import redacted_reference

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
    """A key reference fit for a record: `dssesign.sign.signer.redacted_reference`, an allow-list.

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
    output already is JCS (see `dssesign.core.canonical`); anything else takes `canonicalize`."""
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
        "event": record.context.event if record.context is not None else "sign",
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
    if record.timestamps:
        fields["timestamps"] = [dict(stamp) for stamp in record.timestamps]
    if record.certificate_sha256 is not None:
        fields["certificateSha256"] = record.certificate_sha256  # the key's organisation cert
    code = error_code(record)
    if code is not None:
        fields["errorCode"] = code
    return fields


# --- the writer ------------------------------------------------------------------------------
