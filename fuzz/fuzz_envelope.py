"""Target `envelope`: DSSE envelope JSON, parsed and verified against a small trust root.

Each input is used three ways:
1. `Envelope.from_json`: a result must survive a round trip through `to_json`.
2. `verify(input, root)`: an accept is only possible for a payload the seeds signed (the
   verifier never accepts bytes no trusted key signed).
3. The input as the PAYLOAD of an envelope signed by the trust root's keys, then `verify`: this
   reaches what lies behind the signatures (Statement parsing, predicate-type limits, per-type
   thresholds, subject matching). An accept needs a valid Statement naming the digest asked for.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections.abc import Iterator
from datetime import timedelta

from dssesign import trust as tr
from dssesign._internal.strict_json import loads_strict
from dssesign.core.dsse import Envelope, Signature, pae
from dssesign.intoto.statement import parse_statement
from dssesign.trust import TrustRoot
from dssesign.verify import VerificationResult, verify

from ._common import (
    FIXTURES,
    NOW,
    PAYLOAD_TYPE,
    SLSA,
    ContractViolation,
    attempt,
    compact,
    ed25519_signer,
    p256_signer,
    statement,
)

NAME = "envelope"
MAX_LEN = 16 * 1024
SPDX = "https://spdx.dev/Document/v2.3"
DIGEST = hashlib.sha256(b"artifact").hexdigest()
DIGESTS = (f"sha256:{DIGEST}",)

DICTIONARY = (
    '"payload"', '"payloadType"', '"signatures"', '"keyid"', '"sig"', PAYLOAD_TYPE,
    "application/vnd.dssesign.trust-root.v1+json", '"_type"', '"subject"', '"predicateType"',
    '"predicate"', '"digest"', '"sha256"', '"sha512"', '"name"', '"uri"', '"annotations"',
    "https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1", SLSA, SPDX,
    DIGEST, "\\u0000", "\\ud800", "\\udc00", "1e400", "-0", "==", "=", "-_", "+/", "null",
    "true", "[]", "{}", '"Payload"', '"payloadtype"', '"\u017fig"',
)  # fmt: skip


@functools.cache
def root() -> TrustRoot:
    """Ed25519 (any type) and P-256 (SLSA only), threshold 1; SPDX needs both; a revoked key."""
    base = tr.init_trust_root(threshold=1, now=NOW - timedelta(days=1))
    base = tr.add_key(base, ed25519_signer(0).public_key, label="ci")
    base = tr.add_key(base, p256_signer(0).public_key, predicate_types=[SLSA], label="release")
    base = tr.add_key(base, ed25519_signer(1).public_key, label="old")
    base = tr.revoke_key(base, ed25519_signer(1).keyid, at=NOW - timedelta(hours=1))
    return tr.set_policy(base, threshold=2, for_type=SPDX)


def _signatures(payload_type: str, payload: bytes, signers: int = 3) -> tuple[Signature, ...]:
    message = pae(payload_type, payload)
    chosen = [ed25519_signer(0), p256_signer(0), ed25519_signer(1)][:signers]
    return tuple(Signature(sig=s.sign(message), keyid=s.keyid) for s in chosen)


def _accepted_input(data: bytes, result: VerificationResult) -> None:
    envelope = Envelope.from_json(data)
    if (envelope.payload_type, envelope.payload) not in _signed_payloads():
        raise ContractViolation(
            "accepted", f"an envelope no seed signed was accepted ({result.code})"
        )


def _accepted_payload(payload: bytes) -> None:
    parsed = parse_statement(payload)  # raises (a finding) if the verifier accepted junk
    subjects = parsed.get("subject")
    assert isinstance(subjects, list)
    if not any(
        isinstance(s, dict)
        and isinstance(s.get("digest"), dict)
        and s["digest"].get("sha256") == DIGEST
        for s in subjects
    ):
        raise ContractViolation("accepted", "accepted a Statement without the digest asked for")


def check(data: bytes) -> None:
    envelope = attempt(lambda: Envelope.from_json(data))
    if envelope is not None:
        again = Envelope.from_json(envelope.to_json())
        if again != envelope:
            raise ContractViolation("round-trip", "to_json does not read back as the same envelope")
    result = attempt(lambda: verify(data, root(), digests=DIGESTS, at=NOW))
    if result is not None:
        _accepted_input(data, result)
    # Signing costs more than the rest: only payloads the verifier would read past JSON.
    if not isinstance(attempt(lambda: loads_strict(data, what="payload")), dict):
        return
    signed = Envelope(data, PAYLOAD_TYPE, _signatures(PAYLOAD_TYPE, data, 2))
    result = attempt(lambda: verify(signed, root(), digests=DIGESTS, at=NOW))
    if result is not None:
        _accepted_payload(data)


# --- seeds ------------------------------------------------------------------------------------


def _payloads() -> list[tuple[str, bytes]]:
    slsa = compact(statement(DIGEST))
    v01 = compact({**statement(DIGEST), "_type": "https://in-toto.io/Statement/v0.1"})
    spdx = compact(statement(DIGEST, SPDX))
    other = compact(statement(hashlib.sha256(b"other").hexdigest()))
    two = compact(
        {
            **statement(DIGEST),
            "subject": [
                {"name": "a", "digest": {"sha256": DIGEST, "sha512": "ab" * 64}},
                {"uri": "https://example.com/b", "digest": {"sha256": "cd" * 32}},
            ],
        }
    )
    return [
        (PAYLOAD_TYPE, slsa),
        (PAYLOAD_TYPE, v01),
        (PAYLOAD_TYPE, spdx),
        (PAYLOAD_TYPE, other),
        (PAYLOAD_TYPE, two),
        (PAYLOAD_TYPE, b"[]"),
        ("text/plain", b"hello world"),
        (tr.MEDIA_TYPE, b"{}"),
    ]


@functools.cache
def _signed_payloads() -> frozenset[tuple[str, bytes]]:
    return frozenset(_payloads())


def seeds() -> Iterator[bytes]:
    for payload_type, payload in _payloads():
        signatures = _signatures(payload_type, payload)
        full = Envelope(payload, payload_type, signatures)
        yield full.to_json()
        yield Envelope(payload, payload_type, signatures[:1]).to_json()
        yield Envelope(payload, payload_type, signatures[1:2]).to_json()
        doc = full.to_dict()
        for entry in doc["signatures"]:
            entry.pop("keyid", None)
        yield compact(doc)
        doc["payload"] = base64.urlsafe_b64encode(payload).decode().rstrip("=") or ""
        yield compact({**doc, "extra": {"nested": [1, 2.5, None]}})
        # The payload alone, for the third use of each input.
        yield payload
    yield compact({"payload": "", "payloadType": "", "signatures": []})
    yield compact({"payload": "AA==", "payloadType": PAYLOAD_TYPE, "signatures": [{"sig": "AA=="}]})
    vectors = json.loads((FIXTURES / "dsse" / "dsse_vectors.json").read_text())
    for vector in vectors.values():
        text = json.dumps(vector)
        for key in ("statement_json_utf8", "envelope_json", "envelope"):
            value = vector.get(key) if isinstance(vector, dict) else None
            if isinstance(value, str):
                yield value.encode("utf-8")
            elif isinstance(value, dict):
                yield compact(value)
        yield text.encode("utf-8")
