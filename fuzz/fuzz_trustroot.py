"""Target `trustroot`: trust-root documents, plain and DSSE-signed.

Each input is used three ways:
1. `load_trust_root` (for verifiers, and with `allow_incomplete` for the management commands);
   a root that loads must dump to a document that loads back and dumps the same (fixpoint).
2. `verify_signed_trust_root(input, pinned_root_keyids=...)`: the input as a signed envelope.
3. The input as the PAYLOAD of an envelope signed by the pinned root keys, verified with pinned
   keyids and against a previous root: this reaches everything behind the signatures (schema,
   semantic rules, rollback and version checks). Accepting needs a document that loads.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Iterator
from datetime import timedelta
from functools import partial

from dssesign import trust as tr
from dssesign._internal.strict_json import loads_strict
from dssesign.core.dsse import Envelope, Signature, pae
from dssesign.profiles.software import generate
from dssesign.trust import TrustRoot

from ._common import (
    FIXTURES,
    NOW,
    SLSA,
    ContractViolation,
    attempt,
    compact,
    ed25519_signer,
    p256_signer,
)

NAME = "trustroot"
MAX_LEN = 32 * 1024
_ROOT_SIGNERS = (ed25519_signer(5), p256_signer(5))
PINNED = tuple(s.keyid for s in _ROOT_SIGNERS)
TRUSTED_ROOT = (
    FIXTURES
    / "sigstore-conformance"
    / "assets"
    / "bundle-verify"
    / "intoto-with-custom-trust-root"
    / "trusted_root.json"
)

DICTIONARY = (
    '"version"', '"expires"', '"keys"', '"keyid"', '"algorithm"', '"publicKey"', '"validFrom"',
    '"validUntil"', '"predicateTypes"', '"label"', '"revoked"', '"time"', '"reason"', '"policy"',
    '"threshold"', '"requiredKeyids"', '"perType"', '"hybrid"', '"rotations"', '"fromKeyid"',
    '"toKeyid"', '"signature"', '"transitionDeadline"', '"rootKeys"', '"sigstore"',
    '"trustedRoot"', '"identities"', '"issuer"', '"subject"', '"subjectRegExp"', '"extensions"',
    '"mediaType"', tr.MEDIA_TYPE, "PKIX_ED25519", "PKIX_ECDSA_P256_SHA_256",
    "PKIX_ECDSA_P384_SHA_384", "PKIX_RSA_PSS_3072_SHA256", "PKIX_RSA_PSS_4096_SHA256", "ML_DSA_65",
    "-----BEGIN PUBLIC KEY-----", "-----END PUBLIC KEY-----", "2026-06-01T12:00:00Z",
    "1970-01-01T00:00:00Z", "9999-12-31T23:59:59Z", '"and"', '"or"', '"pq-only"', '"off"', SLSA,
    "(a+)+$", "^.*$", "[^/]*", "\\\\d{1,9}", "(?i)", "\\\\b", "(?=", ".{0,99999}",
)  # fmt: skip


@functools.cache
def previous() -> TrustRoot:
    """Version 2, rooted in the pinned keys: a newer signed root must not go back."""
    root = tr.init_trust_root(threshold=1, now=NOW - timedelta(days=1))
    root = tr.add_key(root, ed25519_signer(0).public_key)
    root = tr.set_root_keys(root, [s.public_key for s in _ROOT_SIGNERS], threshold=1)
    return dataclasses.replace(root, version=2)


def _sign(payload: bytes) -> Envelope:
    message = pae(tr.MEDIA_TYPE, payload)
    return Envelope(
        payload, tr.MEDIA_TYPE, tuple(Signature(s.sign(message), s.keyid) for s in _ROOT_SIGNERS)
    )


def check(data: bytes) -> None:
    for incomplete in (False, True):
        root = attempt(partial(tr.load_trust_root, data, allow_incomplete=incomplete))
        if root is None:
            continue
        dumped = tr.dump_trust_root(root)
        again = attempt(partial(tr.load_trust_root, dumped, allow_incomplete=True))
        if again is None or tr.dump_trust_root(again) != dumped:
            raise ContractViolation("round-trip", "a loaded trust root does not dump and reload")
    attempt(lambda: tr.verify_signed_trust_root(data, pinned_root_keyids=PINNED, now=NOW))
    if not isinstance(attempt(lambda: loads_strict(data, what="trust root")), dict):
        return
    signed = _sign(data)
    for accepted in (
        attempt(partial(tr.verify_signed_trust_root, signed, pinned_root_keyids=PINNED, now=NOW)),
        attempt(partial(tr.verify_signed_trust_root, signed, previous=previous(), now=NOW)),
    ):
        if accepted is not None and attempt(lambda: tr.load_trust_root(data)) is None:
            raise ContractViolation("accepted", "a signed trust root that does not load")


# --- seeds ------------------------------------------------------------------------------------


def _roots() -> Iterator[TrustRoot]:
    start = NOW - timedelta(days=1)
    root = tr.init_trust_root(threshold=1, now=start)
    root = tr.add_key(root, ed25519_signer(0).public_key, label="ci")
    yield root
    root = tr.add_key(
        root, p256_signer(0).public_key, predicate_types=[SLSA], valid_from=start,
        valid_until=NOW + timedelta(days=90),
    )  # fmt: skip
    root = tr.add_key(root, generate("ecdsa-p384").public_key)
    root = tr.add_key(root, generate("rsa-pss-3072").public_key, label="legacy")
    root = tr.add_key(root, generate("ml-dsa-65").public_key, label="pq")
    root = tr.set_policy(root, threshold=2, required_keyids=[ed25519_signer(0).keyid])
    root = tr.set_policy(root, threshold=1, for_type=SLSA)
    yield root
    root = tr.add_key(root, ed25519_signer(2).public_key)
    root = tr.rotate_key(root, ed25519_signer(2), ed25519_signer(3).public_key, now=NOW)
    root = tr.add_key(root, ed25519_signer(4).public_key)
    root = tr.revoke_key(root, ed25519_signer(4).keyid, at=NOW, reason="lost")
    root = tr.set_root_keys(root, [s.public_key for s in _ROOT_SIGNERS], threshold=2)
    yield root
    keyless = tr.set_sigstore_root(root, json.loads(TRUSTED_ROOT.read_bytes()))
    keyless = tr.add_identity(
        keyless, issuer="https://token.actions.githubusercontent.com",
        subject_regexp=r"^https://github\.com/example/[^/]+/\.github/workflows/.*$",
    )  # fmt: skip
    keyless = tr.add_identity(
        keyless, issuer="https://accounts.example.com", subject="dev@example.com",
        predicate_types=[SLSA],
    )  # fmt: skip
    yield keyless
    yield tr.set_policy(root, hybrid="and")


def seeds() -> Iterator[bytes]:
    for root in _roots():
        document = tr.dump_trust_root(root, allow_incomplete=True)
        yield document
        yield compact(json.loads(document))
        yield _sign(document).to_json()
        yield _sign(compact(json.loads(document))).to_json()
    schema = tr.schema()
    yield compact(schema)
