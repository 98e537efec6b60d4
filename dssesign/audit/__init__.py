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

from ..errors import AuditError
from .check import Entry, Problem, VerifyReport, read_entries, read_records, verify_log
from .checkpoint import Checkpoint
from .display import printable_json
from .records import (
    CHECKPOINT_PAYLOAD_TYPE,
    GENESIS,
    MAX_LOG_BYTES,
    SAFE_QUERY_KEYS,
    SIDECAR_SUFFIX,
    Durability,
    default_actor,
    error_code,
    profile_of,
    redact_reference,
    signing_fields,
)
from .writer import AuditLog

# Internal, importable here for the fuzz targets (not public API).
from .writer import _read_tail as _read_tail

__all__ = [
    "CHECKPOINT_PAYLOAD_TYPE",
    "GENESIS",
    "MAX_LOG_BYTES",
    "SAFE_QUERY_KEYS",
    "SIDECAR_SUFFIX",
    "AuditError",
    "AuditLog",
    "Checkpoint",
    "Durability",
    "Entry",
    "Problem",
    "VerifyReport",
    "default_actor",
    "error_code",
    "printable_json",
    "profile_of",
    "read_entries",
    "read_records",
    "redact_reference",
    "signing_fields",
    "verify_log",
]
