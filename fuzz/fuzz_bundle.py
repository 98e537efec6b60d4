"""Target `bundle`: Sigstore bundles (v0.1-v0.3), parsed and verified offline.

Each input is used three ways:
1. `parse_bundle` (what the CLI and the kit use to tell a bundle from an envelope).
2. `verify_bundle(input, root)`: the bundle alone (a messageSignature one against the SHA-256
   of a.txt). A trusted keyed bundle may be accepted; any accept needs a bundle that parses.
3. `verify(envelope, root, bundles=[input])` with the envelope the bundle itself carries: the
   bundle-to-envelope matching and the per-bundle checks behind it.

Keyless bundles are verified by sigstore-python (10-20 ms each, 100x a keyed one): only a fixed
1 in KEYLESS_SAMPLE of them (chosen by a hash of the input, so a finding replays) is verified,
every one is parsed. The trust root holds the keyed keys and the sigstore trusted root +
identity of the conformance case `rekor2-dsse-happy-path`.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections.abc import Iterator
from datetime import timedelta

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from dssesign import trust as tr
from dssesign.core.dsse import Envelope, pae
from dssesign.core.keys import PublicKey
from dssesign.sign.bundles import bundle_json, keyed_bundle, public_key_hint
from dssesign.trust import TrustRoot
from dssesign.verify import verify, verify_bundle
from dssesign.verify.bundles import parse_bundle

from ._common import (
    FIXTURES,
    NOW,
    PAYLOAD_TYPE,
    ContractViolation,
    attempt,
    compact,
    ed25519_signer,
    p256_signer,
    statement,
)

NAME = "bundle"
MAX_LEN = 32 * 1024
KEYLESS_SAMPLE = 32
CASES = FIXTURES / "sigstore-conformance" / "assets" / "bundle-verify"
KEYLESS_CASE = CASES / "rekor2-dsse-happy-path"
ISSUER = "https://token.actions.githubusercontent.com"
SUBJECT = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
ARTIFACT = (CASES / "a.txt").read_bytes()
ARTIFACT_DIGEST = f"sha256:{hashlib.sha256(ARTIFACT).hexdigest()}"
DIGEST = hashlib.sha256(b"artifact").hexdigest()

DICTIONARY = (
    '"mediaType"', '"verificationMaterial"', '"dsseEnvelope"', '"messageSignature"',
    '"publicKey"', '"hint"', '"x509CertificateChain"', '"certificates"', '"certificate"',
    '"rawBytes"', '"tlogEntries"', '"timestampVerificationData"', '"rfc3161Timestamps"',
    '"signedTimestamp"', '"logIndex"', '"logId"', '"keyId"', '"kindVersion"', '"kind"',
    '"integratedTime"', '"inclusionPromise"', '"signedEntryTimestamp"', '"inclusionProof"',
    '"treeSize"', '"rootHash"', '"hashes"', '"checkpoint"', '"envelope"', '"canonicalizedBody"',
    '"messageDigest"', '"algorithm"', '"digest"', '"signature"', '"payload"', '"payloadType"',
    '"signatures"', '"sig"', '"keyid"', "SHA2_256", "SHA2_384", "SHA2_512", "hashedrekord",
    "intoto", "dsse", "0.0.1", "0.0.2", "application/vnd.dev.sigstore.bundle+json;version=0.1",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle.v0.3+json", PAYLOAD_TYPE,
)  # fmt: skip


@functools.cache
def cosign_key() -> PublicKey:
    return PublicKey.from_pem((FIXTURES / "sigstore" / "cosign-keyed.pub").read_bytes())


@functools.cache
def root() -> TrustRoot:
    base = tr.init_trust_root(threshold=1, now=NOW - timedelta(days=1))
    for key in (ed25519_signer(0).public_key, p256_signer(0).public_key, cosign_key()):
        base = tr.add_key(base, key)
    base = tr.set_sigstore_root(base, json.loads((KEYLESS_CASE / "trusted_root.json").read_text()))
    return tr.add_identity(base, issuer=ISSUER, subject=SUBJECT)


def _sampled(data: bytes) -> bool:
    return hashlib.sha256(data).digest()[0] % KEYLESS_SAMPLE == 0


def check(data: bytes) -> None:
    parsed = attempt(lambda: parse_bundle(data))
    if parsed is None:
        # Never a bundle: the verifier must refuse it too (cheaply: it parses first).
        if attempt(lambda: verify_bundle(data, root(), at=NOW)) is not None:
            raise ContractViolation("accepted", "verify_bundle accepted what parse_bundle refused")
        return
    if not parsed.keyed and not _sampled(data):
        return
    digests = (ARTIFACT_DIGEST,) if parsed.envelope is None else ()
    at = NOW if parsed.keyed else None
    attempt(lambda: verify_bundle(data, root(), digests=digests, at=at))
    if parsed.envelope is not None:
        attempt(lambda: verify(parsed.envelope, root(), bundles=[data], at=at))  # type: ignore[arg-type]


# --- seeds ------------------------------------------------------------------------------------


def _message_bundle(artifact: bytes, *, with_digest: bool) -> bytes:
    private = p256_signer(0)._private_key
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    sha = hashlib.sha256(artifact).digest()
    signature = private.sign(sha, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    message: dict[str, object] = {"signature": base64.b64encode(signature).decode()}
    if with_digest:
        encoded = base64.b64encode(sha).decode()
        message["messageDigest"] = {"algorithm": "SHA2_256", "digest": encoded}
    hint = public_key_hint(p256_signer(0).public_key)
    return compact(
        {
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {"publicKey": {"hint": hint}},
            "messageSignature": message,
        }
    )


def seeds() -> Iterator[bytes]:
    payload = compact(statement(DIGEST))
    message = Envelope(payload, PAYLOAD_TYPE).pae()
    assert message == pae(PAYLOAD_TYPE, payload)
    for signer in (ed25519_signer(0), p256_signer(0), ed25519_signer(9)):
        bundle = keyed_bundle(payload, PAYLOAD_TYPE, signer.sign(message), signer.public_key)
        yield bundle_json(bundle)
        for version in ("0.1", "0.2"):
            media_type = f"application/vnd.dev.sigstore.bundle+json;version={version}"
            yield compact({**bundle, "mediaType": media_type})
    yield _message_bundle(ARTIFACT, with_digest=True)
    yield _message_bundle(ARTIFACT, with_digest=False)
    for path in sorted(CASES.glob("*/bundle.sigstore.json")):
        yield path.read_bytes()
    for path in sorted((FIXTURES / "sigstore").glob("*.sigstore.json")):
        yield path.read_bytes()
