"""Every bound dssesign enforces on untrusted input, in one place."""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Bounds applied when reading envelopes, statements and predicates."""

    #: Decoded DSSE payload size.
    max_payload_bytes: int = 32 * MiB
    #: Signatures accepted in one envelope.
    max_signatures: int = 64
    #: Size of one decoded signature (ML-DSA-87 is 4627 bytes; RSA-4096 is 512).
    max_signature_bytes: int = 8192
    #: Length of a keyid hint.
    max_keyid_chars: int = 256
    #: Length of a payloadType.
    max_payload_type_chars: int = 1024
    #: Nesting depth of any JSON document we parse.
    max_json_depth: int = 64
    #: Size of a JSON document (envelope, statement, predicate) read from disk.
    max_json_bytes: int = 64 * MiB
    #: Subjects in one Statement.
    max_subjects: int = 10_000


DEFAULT_LIMITS = Limits()
