"""The local Sigstore instance refuses what the real services refuse, and issues what they issue."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from datetime import timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from sigstore._internal.sct import verify_sct
from sigstore._internal.trust import KeyringPurpose
from sigstore.models import TrustedRoot

from . import SigstoreInstance
from .ca import OIDC_ISSUER_V1, OIDC_ISSUER_V2
from .oidc import TestOIDCProvider


def _call(
    instance: SigstoreInstance, path: str, body: object = None, token: str | None = None
) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(instance.url + path, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _csr(key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .sign(key, hashes.SHA256())
    )
    pem = csr.public_bytes(serialization.Encoding.PEM)
    return {"certificateSigningRequest": base64.b64encode(pem).decode()}


def _issue(
    instance: SigstoreInstance, token: str
) -> tuple[ec.EllipticCurvePrivateKey, list[x509.Certificate]]:
    key = ec.generate_private_key(ec.SECP256R1())
    status, answer = _call(instance, "/api/v2/signingCert", _csr(key), token)
    assert status == 201, answer
    pems = answer["signedCertificateEmbeddedSct"]["chain"]["certificates"]
    return key, [x509.load_pem_x509_certificate(p.encode()) for p in pems]


def test_leaf_is_a_fulcio_style_code_signing_certificate(
    sigstore_instance: SigstoreInstance,
) -> None:
    token = sigstore_instance.identity_token(subject="https://ci.example/job/7")
    key, (leaf, intermediate, root) = _issue(sigstore_instance, token)
    assert leaf.public_key() == key.public_key()
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical
    assert san.value.get_values_for_type(x509.UniformResourceIdentifier) == [
        "https://ci.example/job/7"
    ]
    issuer_v1 = leaf.extensions.get_extension_for_oid(OIDC_ISSUER_V1).value
    issuer_v2 = leaf.extensions.get_extension_for_oid(OIDC_ISSUER_V2).value
    assert isinstance(issuer_v1, x509.UnrecognizedExtension)
    assert isinstance(issuer_v2, x509.UnrecognizedExtension)
    assert issuer_v1.value == sigstore_instance.issuer.encode()
    assert issuer_v2.value[0] == 0x0C  # UTF8String
    assert issuer_v2.value[2:] == sigstore_instance.issuer.encode()
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CODE_SIGNING]
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == timedelta(minutes=10)
    leaf.verify_directly_issued_by(intermediate)
    intermediate.verify_directly_issued_by(root)
    # sigstore-python's own SCT check, with the CT key from the trusted root.
    trusted_root = TrustedRoot.from_file(str(sigstore_instance.trusted_root_path))
    verify_sct(leaf, [intermediate, root], trusted_root.ct_keyring(KeyringPurpose.VERIFY))


def test_email_subjects_become_rfc822_sans(sigstore_instance: SigstoreInstance) -> None:
    _, (leaf, *_) = _issue(sigstore_instance, sigstore_instance.identity_token("a@b.test"))
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.RFC822Name) == ["a@b.test"]


def test_fulcio_refuses_missing_forged_and_expired_tokens(
    sigstore_instance: SigstoreInstance,
) -> None:
    body = _csr(ec.generate_private_key(ec.SECP256R1()))
    forged = TestOIDCProvider().token()
    expired = sigstore_instance.identity_token(lifetime=-60)
    for token in (None, forged, expired, "junk"):
        status, answer = _call(sigstore_instance, "/api/v2/signingCert", body, token)
        assert status == 401, answer


def test_fulcio_refuses_a_csr_without_proof_of_possession(
    sigstore_instance: SigstoreInstance,
) -> None:
    body = _csr(ec.generate_private_key(ec.SECP256R1()))
    pem = base64.b64decode(body["certificateSigningRequest"]).decode()
    lines = pem.strip().splitlines()
    der = bytearray(base64.b64decode("".join(lines[1:-1])))
    der[-5] ^= 0x01  # inside the signature
    tampered = "\n".join([lines[0], base64.b64encode(bytes(der)).decode(), lines[-1]]) + "\n"
    body = {"certificateSigningRequest": base64.b64encode(tampered.encode()).decode()}
    status, answer = _call(
        sigstore_instance, "/api/v2/signingCert", body, sigstore_instance.identity_token()
    )
    assert status == 400 and "proof of possession" in answer["message"]


def _dsse_entry(
    instance: SigstoreInstance, payload: bytes, *, sign_other: bool = False
) -> dict[str, Any]:
    key, (leaf, *_) = _issue(instance, instance.identity_token())
    payload_type = "application/vnd.in-toto+json"
    pae = b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type.encode(), len(payload), payload)
    signature = key.sign(pae + (b"x" if sign_other else b""), ec.ECDSA(hashes.SHA256()))
    envelope = {
        "payload": base64.b64encode(payload).decode(),
        "payloadType": payload_type,
        "signatures": [{"sig": base64.b64encode(signature).decode()}],
    }
    verifier = base64.b64encode(leaf.public_bytes(serialization.Encoding.PEM)).decode()
    return {
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {"proposedContent": {"envelope": json.dumps(envelope), "verifiers": [verifier]}},
    }


def test_rekor_integrates_reads_back_and_refuses_duplicates(
    sigstore_instance: SigstoreInstance,
) -> None:
    entry = _dsse_entry(sigstore_instance, b'{"n": "dup"}')
    status, created = _call(sigstore_instance, "/api/v1/log/entries", entry)
    assert status == 201
    ((uuid, logged),) = created.items()
    status, fetched = _call(sigstore_instance, f"/api/v1/log/entries/{uuid}")
    assert status == 200 and fetched[uuid]["body"] == logged["body"]
    status, info = _call(sigstore_instance, "/api/v1/log")
    assert info["treeSize"] >= logged["logIndex"] + 1
    assert f"\n{info['treeSize']}\n" in info["signedTreeHead"]
    status, answer = _call(sigstore_instance, "/api/v1/log/entries", entry)
    assert status == 409, answer


@pytest.mark.parametrize(
    "entry",
    [
        {"apiVersion": "0.0.1", "kind": "rekord", "spec": {}},
        {"apiVersion": "0.0.2", "kind": "dsse", "spec": {}},
        {"apiVersion": "0.0.1", "kind": "dsse", "spec": {"proposedContent": {}}},
        [],
    ],
)
def test_rekor_refuses_malformed_entries(
    sigstore_instance: SigstoreInstance,
    entry: object,
) -> None:
    status, answer = _call(sigstore_instance, "/api/v1/log/entries", entry)
    assert status == 400, answer


def test_rekor_refuses_a_signature_that_does_not_verify(
    sigstore_instance: SigstoreInstance,
) -> None:
    entry = _dsse_entry(sigstore_instance, b'{"n": "bad"}', sign_other=True)
    status, answer = _call(sigstore_instance, "/api/v1/log/entries", entry)
    assert status == 400 and "does not verify" in answer["message"]


def test_unknown_routes_are_404(sigstore_instance: SigstoreInstance) -> None:
    assert _call(sigstore_instance, "/api/v1/nothing")[0] == 404
