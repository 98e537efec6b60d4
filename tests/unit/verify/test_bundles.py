"""Sigstore bundles in: strict parsing, keyed and keyless verification, and how bundles count.

Keyless bundles here are real ones from the sigstore-conformance fixtures (verified offline
against their trusted roots); keyed bundles are made with dssesign.sign.bundles (Part B's writer)
or, for messageSignature, signed here the way cosign sign-blob signs (ECDSA over SHA-256).
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dssesign import trust as tr
from dssesign.core.dsse import Envelope, Signature
from dssesign.errors import VerificationError
from dssesign.intoto.statement import PAYLOAD_TYPE
from dssesign.limits import Limits
from dssesign.profiles.software import SoftwareSigner
from dssesign.sign.bundles import keyed_bundle, public_key_hint
from dssesign.trust import TrustRoot
from dssesign.verify import CODES, VerificationFailure, verify, verify_bundle
from dssesign.verify import bundles as bv
from tests.conftest import FIXTURES, signer_for
from tests.unit.trust.test_trust_root import json_mutations

NOW = datetime(2026, 6, 1, tzinfo=UTC)
SLSA = "https://slsa.dev/provenance/v1"
CASES = FIXTURES / "sigstore-conformance" / "assets" / "bundle-verify"
A_TXT = FIXTURES / "sigstore-conformance" / "assets" / "a.txt"
PRODUCTION = FIXTURES / "sigstore-conformance" / "production-trust-root" / "trusted_root.json"
ISSUER = "https://token.actions.githubusercontent.com"
SUBJECT = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
#: A DSSE keyless bundle (Rekor v2) with its own trusted root, and a messageSignature one.
DSSE_CASE = CASES / "rekor2-dsse-happy-path"
MESSAGE_CASE = CASES / "happy-path-v0.3"


def statement_payload(digest: str = hashlib.sha256(b"artifact").hexdigest()) -> bytes:
    body = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "artifact", "digest": {"sha256": digest}}],
        "predicateType": SLSA,
        "predicate": {"buildDefinition": {}, "runDetails": {}},
    }
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


def sign(signer: SoftwareSigner, payload: bytes, keyid: str | None = None) -> Signature:
    envelope = Envelope(payload, PAYLOAD_TYPE)
    return Signature(signer.sign(envelope.pae()), signer.keyid if keyid is None else keyid)


def keyed_root(*signers: SoftwareSigner, threshold: int = 1, **key_options: Any) -> TrustRoot:
    root = tr.init_trust_root(threshold=1, now=NOW)
    for signer in signers:
        root = tr.add_key(root, signer.public_key, **key_options)
    return tr.set_policy(root, threshold=threshold) if threshold != 1 else root


def keyless_root(
    trusted_root: Path,
    *,
    keys: tuple[SoftwareSigner, ...] = (),
    threshold: int = 1,
    **identity: Any,
) -> TrustRoot:
    root = tr.init_trust_root(threshold=1, now=NOW)
    for signer in keys:
        root = tr.add_key(root, signer.public_key)
    root = tr.set_sigstore_root(root, json.loads(trusted_root.read_text()))
    rule = identity or {"issuer": ISSUER, "subject": SUBJECT}
    root = tr.add_identity(root, **rule)
    return tr.set_policy(root, threshold=threshold) if threshold != 1 else root


def refused(call: Callable[[], object], code: str) -> VerificationFailure:
    with pytest.raises(VerificationFailure) as info:
        call()
    assert info.value.code == code, str(info.value)
    assert code in CODES
    return info.value


def dsse_case_bundle() -> bytes:
    return (DSSE_CASE / "bundle.sigstore.json").read_bytes()


def envelope_of(bundle: bytes, *extra: Signature) -> Envelope:
    """The envelope a keyless bundle's signature belongs to (keyid "" as cosign writes it)."""
    inner = bv.parse_bundle(bundle).envelope
    assert inner is not None
    return Envelope(inner.payload, inner.payload_type, (*inner.signatures, *extra))


def statement_digest(bundle: bytes) -> str:
    inner = bv.parse_bundle(bundle).envelope
    assert inner is not None
    return str(json.loads(inner.payload)["subject"][0]["digest"]["sha256"])


# --- parsing ---------------------------------------------------------------------------------


def _keyed_dict() -> dict[str, Any]:
    signer = signer_for("ecdsa-p256")
    payload = statement_payload()
    return keyed_bundle(payload, PAYLOAD_TYPE, sign(signer, payload).sig, signer.public_key)


MALFORMED: list[tuple[str, Callable[[dict[str, Any]], object], str]] = [
    ("no media type", lambda d: d.pop("mediaType"), "BUNDLE_MALFORMED"),
    ("unknown version", lambda d: d.update(mediaType=d["mediaType"] + "x"), "BUNDLE_UNSUPPORTED"),
    ("media type not a string", lambda d: d.update(mediaType=3), "BUNDLE_MALFORMED"),
    ("unknown field", lambda d: d.update(extra={}), "BUNDLE_MALFORMED"),
    ("no content", lambda d: d.pop("dsseEnvelope"), "BUNDLE_MALFORMED"),
    (
        "two contents",
        lambda d: d.update(messageSignature={"signature": "AAAA"}),
        "BUNDLE_MALFORMED",
    ),
    ("no material", lambda d: d.pop("verificationMaterial"), "BUNDLE_MALFORMED"),
    (
        "two key materials",
        lambda d: d["verificationMaterial"].update(certificate={"rawBytes": "AAAA"}),
        "BUNDLE_MALFORMED",
    ),
    (
        "v0.3 with a chain",
        lambda d: (
            d["verificationMaterial"].update(
                x509CertificateChain={"certificates": []}, publicKey=None
            )
            or d["verificationMaterial"].pop("publicKey")
        ),
        "BUNDLE_MALFORMED",
    ),
    (
        "two DSSE signatures",
        lambda d: d["dsseEnvelope"]["signatures"].append(d["dsseEnvelope"]["signatures"][0]),
        "BUNDLE_MALFORMED",
    ),
    ("no DSSE signature", lambda d: d["dsseEnvelope"].update(signatures=[]), "BUNDLE_MALFORMED"),
    (
        "DSSE payload not base64",
        lambda d: d["dsseEnvelope"].update(payload="!!"),
        "BUNDLE_MALFORMED",
    ),
    (
        "hint not a string",
        lambda d: d["verificationMaterial"].update(publicKey={"hint": 5}),
        "BUNDLE_MALFORMED",
    ),
    (
        "too many tlog entries",
        lambda d: d["verificationMaterial"].update(
            tlogEntries=[{"kindVersion": {"kind": "dsse", "version": "0.0.1"}}] * 9
        ),
        "BUNDLE_MALFORMED",
    ),
    (
        "tlog entry without kindVersion",
        lambda d: d["verificationMaterial"].update(tlogEntries=[{}]),
        "BUNDLE_MALFORMED",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "code"), [pytest.param(m, c, id=name) for name, m, c in MALFORMED]
)
def test_malformed_bundles_are_refused_with_a_code(
    mutate: Callable[[dict[str, Any]], object], code: str
) -> None:
    document = _keyed_dict()
    mutate(document)
    with pytest.raises(VerificationError) as info:
        bv.parse_bundle(json.dumps(document))
    assert info.value.code == code, str(info.value)


@pytest.mark.parametrize(
    ("message_signature", "code"),
    [
        ({"signature": "not base64!"}, "BUNDLE_MALFORMED"),
        ({}, "BUNDLE_MALFORMED"),
        ({"signature": "AAAA", "other": 1}, "BUNDLE_MALFORMED"),
        (
            {"signature": "AAAA", "messageDigest": {"algorithm": "SHA2_384", "digest": "AAAA"}},
            "BUNDLE_UNSUPPORTED",
        ),
        (
            {"signature": "AAAA", "messageDigest": {"algorithm": "SHA2_256", "digest": "AAAA"}},
            "BUNDLE_MALFORMED",
        ),
    ],
)
def test_malformed_message_signatures(message_signature: dict[str, Any], code: str) -> None:
    document = json.loads((MESSAGE_CASE / "bundle.sigstore.json").read_text())
    document["messageSignature"] = message_signature
    with pytest.raises(VerificationError) as info:
        bv.parse_bundle(json.dumps(document))
    assert info.value.code == code


def test_non_object_and_non_json_bundles_are_refused() -> None:
    for data in ("[]", "null", "{", b"\xff"):
        with pytest.raises(VerificationError) as info:
            bv.parse_bundle(data)
        assert info.value.code == "BUNDLE_MALFORMED"


def test_duplicate_members_and_oversize_bundles_are_refused() -> None:
    text = json.dumps(_keyed_dict())
    duplicated = text.replace('"mediaType"', '"mediaType": "x", "mediaType"', 1)
    with pytest.raises(VerificationError, match="duplicate") as info:
        bv.parse_bundle(duplicated)
    assert info.value.code == "BUNDLE_MALFORMED"
    with pytest.raises(VerificationError, match="exceeds the limit") as info:
        bv.parse_bundle(text, limits=Limits(max_json_bytes=100))
    assert info.value.code == "BUNDLE_MALFORMED"


def test_every_accepted_media_type_parses() -> None:
    for media_type, version in bv.BUNDLE_MEDIA_TYPES.items():
        document = json.loads((CASES / "happy-path-v0.1" / "bundle.sigstore.json").read_text())
        document["mediaType"] = media_type
        if version == "0.3":  # v0.3 carries `certificate`, not a chain
            chain = document["verificationMaterial"].pop("x509CertificateChain")
            document["verificationMaterial"]["certificate"] = chain["certificates"][0]
        parsed = bv.parse_bundle(json.dumps(document))
        assert parsed.version == version and parsed.kind == "messageSignature"
        assert not parsed.keyed and parsed.tlog_kinds == ("hashedrekord/0.0.1",)


def test_bundle_detection() -> None:
    assert bv.is_bundle_document(_keyed_dict())
    assert not bv.is_bundle_document({"payload": "", "payloadType": "x", "signatures": []})
    assert not bv.is_bundle_document({"mediaType": "application/json"})
    assert not bv.is_bundle_document([])


# --- keyed bundles ---------------------------------------------------------------------------


def test_keyed_dsse_bundle_with_its_envelope_and_alone() -> None:
    a, b = signer_for("ecdsa-p256"), signer_for("ed25519")
    payload = statement_payload()
    sig_a, sig_b = sign(a, payload), sign(b, payload)
    envelope = Envelope(payload, PAYLOAD_TYPE, (sig_a, sig_b))
    bundle_a = json.dumps(keyed_bundle(payload, PAYLOAD_TYPE, sig_a.sig, a.public_key))
    root = keyed_root(a, b, threshold=2)
    result = verify(envelope, root, bundles=[bundle_a], at=NOW)
    assert {k.keyid for k in result.keys_counted} == {a.keyid, b.keyid}
    assert result.identities_counted == ()
    # Alone, the bundle is an envelope of one signature: one key, below a threshold of 2 ...
    refused(lambda: verify_bundle(bundle_a, root, at=NOW), "THRESHOLD_NOT_MET")
    # ... and enough with a threshold of 1; the hint (not a hex keyid) is only a hint.
    alone = verify_bundle(bundle_a, keyed_root(a, b), at=NOW)
    assert [k.keyid for k in alone.keys_counted] == [a.keyid]
    # The hint the verifier reads is the one `public_key_hint` (shared with the writer) gives.
    assert bv.parse_bundle(bundle_a).key_hint == public_key_hint(a.public_key)


def test_keyed_bundle_must_belong_to_the_envelope() -> None:
    a = signer_for("ecdsa-p256")
    payload = statement_payload()
    other = statement_payload(hashlib.sha256(b"other").hexdigest())
    envelope = Envelope(payload, PAYLOAD_TYPE, (sign(a, payload),))
    root = keyed_root(a)
    from_other = json.dumps(keyed_bundle(other, PAYLOAD_TYPE, sign(a, other).sig, a.public_key))
    refused(lambda: verify(envelope, root, bundles=[from_other], at=NOW), "BUNDLE_PAYLOAD_MISMATCH")
    retyped = json.dumps(
        keyed_bundle(payload, "application/json", sign(a, payload).sig, a.public_key)
    )
    refused(lambda: verify(envelope, root, bundles=[retyped], at=NOW), "BUNDLE_PAYLOAD_MISMATCH")
    # Same payload, but a signature the envelope does not carry (another trusted key's).
    b = signer_for("ed25519")
    root = keyed_root(a, b)
    fresh = keyed_bundle(payload, PAYLOAD_TYPE, sign(b, payload).sig, b.public_key)
    refused(
        lambda: verify(envelope, root, bundles=[json.dumps(fresh)], at=NOW),
        "BUNDLE_SIGNATURE_MISMATCH",
    )


def test_keyed_bundle_of_an_untrusted_key_fails_even_when_others_meet_the_threshold() -> None:
    trusted, stranger = signer_for("ecdsa-p256"), signer_for("ecdsa-p256", 1)
    payload = statement_payload()
    sig_t, sig_s = sign(trusted, payload), sign(stranger, payload)
    envelope = Envelope(payload, PAYLOAD_TYPE, (sig_t, sig_s))
    bundle = json.dumps(keyed_bundle(payload, PAYLOAD_TYPE, sig_s.sig, stranger.public_key))
    error = refused(
        lambda: verify(envelope, keyed_root(trusted), bundles=[bundle], at=NOW),
        "BUNDLE_KEY_UNTRUSTED",
    )
    assert str(error).startswith("bundle 0: ")


def _message_bundle(signer: SoftwareSigner, artifact: bytes, *, digest: bool = True) -> str:
    """A keyed messageSignature bundle as cosign sign-blob makes it (ECDSA over SHA-256)."""
    private = signer._private_key
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    sha = hashlib.sha256(artifact).digest()
    signature = private.sign(sha, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    message: dict[str, Any] = {"signature": base64.b64encode(signature).decode()}
    if digest:
        message["messageDigest"] = {
            "algorithm": "SHA2_256",
            "digest": base64.b64encode(sha).decode(),
        }
    return json.dumps(
        {
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {"publicKey": {"hint": public_key_hint(signer.public_key)}},
            "messageSignature": message,
        }
    )


def test_keyed_message_signature_bundle(tmp_path: Path) -> None:
    signer = signer_for("ecdsa-p256")
    artifact = tmp_path / "blob.bin"
    artifact.write_bytes(b"release blob\n")
    bundle = _message_bundle(signer, artifact.read_bytes())
    root = keyed_root(signer)
    digest = f"sha256:{hashlib.sha256(artifact.read_bytes()).hexdigest()}"
    for named in ({"artifacts": [artifact]}, {"digests": [digest]}):
        result = verify_bundle(bundle, root, at=NOW, **named)
        assert [k.keyid for k in result.keys_counted] == [signer.keyid]
        assert result.subjects_matched[0].digest == digest
        assert result.to_dict()["predicateType"] == ""
    # Without messageDigest the signature alone binds the artifact.
    verify_bundle(
        _message_bundle(signer, b"release blob\n", digest=False), root, digests=[digest], at=NOW
    )
    wrong = f"sha256:{hashlib.sha256(b'other').hexdigest()}"
    refused(
        lambda: verify_bundle(bundle, root, digests=[wrong], at=NOW), "ARTIFACT_DIGEST_MISMATCH"
    )
    refused(
        lambda: verify_bundle(
            _message_bundle(signer, b"release blob\n", digest=False), root, digests=[wrong], at=NOW
        ),
        "BUNDLE_KEY_UNTRUSTED",
    )
    refused(lambda: verify_bundle(bundle, root, at=NOW), "INVALID_ARGUMENT")
    refused(
        lambda: verify_bundle(bundle, root, digests=[digest, digest], at=NOW), "INVALID_ARGUMENT"
    )
    refused(
        lambda: verify_bundle(bundle, root, digests=[digest], predicate_type=SLSA, at=NOW),
        "PREDICATE_TYPE_MISMATCH",
    )
    refused(
        lambda: verify_bundle(bundle, keyed_root(signer_for("ecdsa-p256", 1)), digests=[digest]),
        "BUNDLE_KEY_UNTRUSTED",
    )
    two = tr.set_policy(keyed_root(signer, signer_for("ed25519")), threshold=2)
    refused(lambda: verify_bundle(bundle, two, digests=[digest], at=NOW), "THRESHOLD_NOT_MET")
    typed = keyed_root(signer, predicate_types=[SLSA])
    refused(
        lambda: verify_bundle(bundle, typed, digests=[digest], at=NOW), "PREDICATE_TYPE_NOT_ALLOWED"
    )
    revoked = tr.revoke_key(root, signer.keyid, at=NOW)
    refused(lambda: verify_bundle(bundle, revoked, digests=[digest], at=NOW), "KEY_REVOKED")
    # A messageSignature bundle cannot stand for an envelope's signature.
    envelope = Envelope(statement_payload(), PAYLOAD_TYPE, (sign(signer, statement_payload()),))
    refused(lambda: verify(envelope, root, bundles=[bundle], at=NOW), "BUNDLE_PAYLOAD_MISMATCH")


# --- keyless bundles (real ones, from the conformance fixtures) -----------------------------


def test_keyless_dsse_bundle_alone_and_with_its_envelope() -> None:
    bundle = dsse_case_bundle()
    root = keyless_root(DSSE_CASE / "trusted_root.json")
    digest = f"sha256:{statement_digest(bundle)}"
    alone = verify_bundle(bundle, root, digests=[digest])
    assert [(i.issuer, i.subject) for i in alone.identities_counted] == [(ISSUER, SUBJECT)]
    assert alone.keys_counted == () and alone.predicate_type
    result = verify(envelope_of(bundle), root, bundles=[bundle], digests=[digest])
    assert result.identities_counted == alone.identities_counted
    assert result.to_dict()["identitiesCounted"] == [
        {"issuer": ISSUER, "subject": SUBJECT, "label": None, "kind": "keyless"}
    ]
    # The envelope alone: the keyless signature has no trusted key.
    refused(lambda: verify(envelope_of(bundle), root), "NO_VALID_SIGNATURE")


def test_a_keyless_identity_counts_once_however_many_bundles() -> None:
    bundle = dsse_case_bundle()
    again = json.dumps(json.loads(bundle), indent=1).encode()  # another text, same bundle
    root = keyless_root(DSSE_CASE / "trusted_root.json", threshold=1)
    result = verify(envelope_of(bundle), root, bundles=[bundle, again])
    assert len(result.identities_counted) == 1
    assert any("counts once" in w for w in result.warnings)
    software = signer_for("ed25519")
    two = keyless_root(DSSE_CASE / "trusted_root.json", keys=(software,), threshold=2)
    refused(lambda: verify(envelope_of(bundle), two, bundles=[bundle, again]), "THRESHOLD_NOT_MET")
    # A trusted key's signature over the same payload makes two distinct signers.
    inner = envelope_of(bundle)
    extra = sign(software, inner.payload)
    both = verify(envelope_of(bundle, extra), two, bundles=[bundle])
    assert len(both.keys_counted) == 1 and len(both.identities_counted) == 1


@pytest.mark.parametrize(
    ("identity", "code"),
    [
        ({"issuer": ISSUER, "subject": SUBJECT + "x"}, "IDENTITY_MISMATCH"),
        ({"issuer": "https://accounts.google.com", "subject": SUBJECT}, "IDENTITY_MISMATCH"),
        (
            {"issuer": ISSUER, "subject_regexp": "https://github\\.com/other/.*"},
            "IDENTITY_MISMATCH",
        ),
        # Implicitly anchored: a regexp matching only part of the SAN does not match.
        (
            {"issuer": ISSUER, "subject_regexp": "https://github\\.com/sigstore-conformance"},
            "IDENTITY_MISMATCH",
        ),
        (
            {
                "issuer": ISSUER,
                "subject": SUBJECT,
                "extensions": {"githubWorkflowRepository": "someone/else"},
            },
            "IDENTITY_MISMATCH",
        ),
        (
            {
                "issuer": ISSUER,
                "subject": SUBJECT,
                "predicate_types": ["https://spdx.dev/Document"],
            },
            "PREDICATE_TYPE_NOT_ALLOWED",
        ),
    ],
)
def test_keyless_identity_rules_refuse(identity: dict[str, Any], code: str) -> None:
    bundle = dsse_case_bundle()
    root = keyless_root(DSSE_CASE / "trusted_root.json", **identity)
    refused(lambda: verify(envelope_of(bundle), root, bundles=[bundle]), code)


@pytest.mark.parametrize(
    "identity",
    [
        {"issuer": ISSUER, "subject_regexp": "https://github\\.com/sigstore-conformance/.*"},
        {
            "issuer": ISSUER,
            "subject": SUBJECT,
            "extensions": {
                "githubWorkflowRepository": (
                    "sigstore-conformance/extremely-dangerous-public-oidc-beacon"
                ),
                "githubWorkflowRef": "refs/heads/main",
            },
            "predicate_types": [SLSA],
            "label": "beacon",
        },
    ],
)
def test_keyless_identity_rules_accept(identity: dict[str, Any]) -> None:
    bundle = dsse_case_bundle()
    root = keyless_root(DSSE_CASE / "trusted_root.json", **identity)
    result = verify(envelope_of(bundle), root, bundles=[bundle])
    assert result.identities_counted[0].subject == SUBJECT
    assert result.identities_counted[0].label == identity.get("label")


def test_keyless_bundle_needs_a_sigstore_section_and_the_right_trusted_root() -> None:
    bundle = dsse_case_bundle()
    software = signer_for("ed25519")
    refused(
        lambda: verify(envelope_of(bundle), keyed_root(software), bundles=[bundle]),
        "SIGSTORE_NOT_CONFIGURED",
    )
    # The production trusted root does not vouch for this (Rekor v2 test instance) bundle.
    refused(
        lambda: verify(envelope_of(bundle), keyless_root(PRODUCTION), bundles=[bundle]),
        "BUNDLE_TIMESTAMP_INVALID",
    )


def test_tampered_keyless_bundles_are_refused() -> None:
    document = json.loads(dsse_case_bundle())
    root = keyless_root(DSSE_CASE / "trusted_root.json")
    envelope = envelope_of(dsse_case_bundle())
    # The payload changed in the bundle: no longer the envelope's.
    changed = copy.deepcopy(document)
    payload = base64.b64decode(changed["dsseEnvelope"]["payload"]).replace(b"sha256", b"sha512")
    changed["dsseEnvelope"]["payload"] = base64.b64encode(payload).decode()
    refused(
        lambda: verify(envelope, root, bundles=[json.dumps(changed)]), "BUNDLE_PAYLOAD_MISMATCH"
    )
    # ... and alone, its signature no longer verifies.
    refused(lambda: verify_bundle(json.dumps(changed), root), "BUNDLE_SIGNATURE_INVALID")
    # The certificate swapped for another case's: the log entry is not for it.
    other = json.loads((CASES / "rekor2-happy-path" / "bundle.sigstore.json").read_text())
    swapped = copy.deepcopy(document)
    swapped["verificationMaterial"]["certificate"] = other["verificationMaterial"]["certificate"]
    with pytest.raises(VerificationFailure) as info:
        verify(envelope, root, bundles=[json.dumps(swapped)])
    assert info.value.code.startswith("BUNDLE_") and info.value.code in CODES


def test_keyless_message_signature_bundle_alone() -> None:
    bundle = (MESSAGE_CASE / "bundle.sigstore.json").read_bytes()
    root = keyless_root(PRODUCTION)
    result = verify_bundle(bundle, root, artifacts=[A_TXT])
    assert result.identities_counted[0].issuer == ISSUER
    typed = keyless_root(PRODUCTION, issuer=ISSUER, subject=SUBJECT, predicate_types=[SLSA])
    refused(lambda: verify_bundle(bundle, typed, artifacts=[A_TXT]), "PREDICATE_TYPE_NOT_ALLOWED")
    pq = dataclasses.replace(root, policy=dataclasses.replace(root.policy, hybrid="pq-only"))
    refused(lambda: verify_bundle(bundle, pq, artifacts=[A_TXT]), "HYBRID_POLICY_NOT_MET")


def test_keyless_trust_root_outline_is_checked_at_verification() -> None:
    bundle = dsse_case_bundle()
    root = keyless_root(DSSE_CASE / "trusted_root.json")
    assert root.sigstore is not None
    broken = {**root.sigstore, "trustedRoot": {"mediaType": tr_media_type(), "tlogs": []}}
    bad = dataclasses.replace(root, sigstore=broken)
    refused(lambda: verify(envelope_of(bundle), bad, bundles=[bundle]), "TRUST_ROOT_INVALID")


def tr_media_type() -> str:
    return "application/vnd.dev.sigstore.trustedroot+json;version=0.1"


def test_plain_verification_never_imports_sigstore(tmp_path: Path) -> None:
    """The cheap path stays cheap: no sigstore import for keyed envelopes, even with a
    sigstore section in the trust root."""
    signer = signer_for("ed25519")
    payload = statement_payload()
    envelope = tmp_path / "e.json"
    envelope.write_bytes(Envelope(payload, PAYLOAD_TYPE, (sign(signer, payload),)).to_json())
    root = keyless_root(DSSE_CASE / "trusted_root.json", keys=(signer,))
    tr.save_trust_root(tmp_path / "root.json", root)
    code = (
        "import sys; from dssesign import cli; "
        f"rc = cli.main(['verify', '--trust-root', {str(tmp_path / 'root.json')!r}, "
        f"{str(envelope)!r}]); "
        "assert rc == 0, rc; "
        "assert not [m for m in sys.modules if m.split('.')[0] in ('sigstore', 'sigstore_models')]"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == 0, run.stderr


# --- fuzzing ---------------------------------------------------------------------------------

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.text(max_size=12)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=8,
)
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _mutations(original: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    return json_mutations(original, JSON_VALUES, ("replace", "delete", "flip"))


_KEYED_SIGNER = signer_for("ecdsa-p256")
_KEYED_PAYLOAD = statement_payload()
_KEYED_SIG = sign(_KEYED_SIGNER, _KEYED_PAYLOAD)
_KEYED = keyed_bundle(_KEYED_PAYLOAD, PAYLOAD_TYPE, _KEYED_SIG.sig, _KEYED_SIGNER.public_key)
_KEYED_ROOT = keyed_root(_KEYED_SIGNER)


@FUZZ
@given(_mutations(_KEYED))
def test_fuzz_keyed_bundles_never_crash_or_accept_a_changed_signature(doc: dict[str, Any]) -> None:
    data = json.dumps(doc)
    envelope = Envelope(_KEYED_PAYLOAD, PAYLOAD_TYPE, (_KEYED_SIG,))
    try:
        verify(envelope, _KEYED_ROOT, bundles=[data], at=NOW)
    except VerificationFailure as exc:
        assert exc.code in CODES and exc.code != "INTERNAL", str(exc)
        return
    # Accepted: the bundle must still say exactly what was signed.
    parsed = bv.parse_bundle(data)
    assert parsed.envelope is not None
    assert parsed.envelope.payload == _KEYED_PAYLOAD
    assert parsed.envelope.payload_type == PAYLOAD_TYPE
    assert parsed.signature == _KEYED_SIG.sig


_KEYLESS = json.loads(dsse_case_bundle())
_KEYLESS_ROOT = keyless_root(DSSE_CASE / "trusted_root.json")
_KEYLESS_ENVELOPE = envelope_of(dsse_case_bundle())


@FUZZ
@given(_mutations(_KEYLESS))
def test_fuzz_keyless_bundles_never_crash_or_accept_a_changed_bundle(doc: dict[str, Any]) -> None:
    data = json.dumps(doc)
    try:
        verify(_KEYLESS_ENVELOPE, _KEYLESS_ROOT, bundles=[data])
    except VerificationFailure as exc:
        assert exc.code in CODES and exc.code != "INTERNAL", str(exc)
        return
    # Accepted: what is signed and who signed it are unchanged (other fields may be noise
    # sigstore-python ignores, such as an unverified integratedTime of a Rekor v2 entry).
    assert doc["dsseEnvelope"] == _KEYLESS["dsseEnvelope"]
    assert (
        doc["verificationMaterial"]["certificate"]
        == _KEYLESS["verificationMaterial"]["certificate"]
    )


@FUZZ
@given(JSON_VALUES)
def test_fuzz_arbitrary_json_is_never_a_bundle_that_verifies(value: object) -> None:
    try:
        verify_bundle(json.dumps(value), _KEYED_ROOT, digests=[f"sha256:{'0' * 64}"], at=NOW)
    except VerificationFailure as exc:
        assert exc.code in CODES and exc.code != "INTERNAL"
    else:  # pragma: no cover - a failure of the property
        pytest.fail("arbitrary JSON verified as a bundle")


def test_a_certificate_key_that_is_also_a_trusted_key_counts_once() -> None:
    """One signature is one signer: as a trusted key it does not count again as an identity."""
    from cryptography import x509

    from dssesign.core.keys import PublicKey

    bundle = dsse_case_bundle()
    raw = json.loads(bundle)["verificationMaterial"]["certificate"]["rawBytes"]
    certificate = x509.load_der_x509_certificate(base64.b64decode(raw))
    cert_key = PublicKey(certificate.public_key())  # type: ignore[arg-type]
    root = tr.init_trust_root(threshold=1, now=NOW)
    root = tr.add_key(root, cert_key)
    root = tr.set_sigstore_root(root, json.loads((DSSE_CASE / "trusted_root.json").read_text()))
    root = tr.add_identity(root, issuer=ISSUER, subject=SUBJECT)
    root = tr.set_policy(root, threshold=2)
    error = refused(
        lambda: verify(envelope_of(bundle), root, bundles=[bundle]), "THRESHOLD_NOT_MET"
    )
    assert len(error.keys_counted) == 1 and error.identities_counted == ()
    assert any("already counts" in w for w in error.warnings)


def test_keyless_bundle_without_sigstore_python_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = dsse_case_bundle()
    root = keyless_root(DSSE_CASE / "trusted_root.json")
    monkeypatch.setitem(sys.modules, "sigstore", None)  # as if the extra were not installed
    error = refused(
        lambda: verify(envelope_of(bundle), root, bundles=[bundle]), "SIGSTORE_UNAVAILABLE"
    )
    assert "dssesign[sigstore]" in str(error)
    # Keyed bundles never need it.
    signer = signer_for("ecdsa-p256")
    payload = statement_payload()
    signature = sign(signer, payload)
    keyed = json.dumps(keyed_bundle(payload, PAYLOAD_TYPE, signature.sig, signer.public_key))
    envelope = Envelope(payload, PAYLOAD_TYPE, (signature,))
    assert verify(envelope, keyed_root(signer), bundles=[keyed], at=NOW).keys_counted
