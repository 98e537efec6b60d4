"""Organisation certificates judged at their RFC 3161 time (issue 16 item 3): a real TSA.

An expired code-signing certificate must not void an attestation timestamped while it was
valid; a CRL entry dated after the token does not touch it, a key compromise before it does.
Token times are moved into the past with `resign` (tests/tsa.py), as in
test_timestamped_verify.py.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from dssesign.codes import Code
from dssesign.core.dsse import pae
from dssesign.errors import VerificationError
from dssesign.intoto.statement import PAYLOAD_TYPE, statement_payload
from dssesign.sign.timestamps import request_timestamp
from dssesign.trust import Policy, TrustRoot
from dssesign.trust.pki import parse_pki
from dssesign.verify import verify
from tests.pki import Issued, Revoked, certificate_bundle, crl_pem, make_ca, make_crl, make_leaf
from tests.tsa import Tsa, resign

NOW = datetime.now(UTC).replace(microsecond=0)
#: The test TSA's certificate is valid from a day ago: every token time is inside that day.
H = timedelta(hours=1)


@dataclasses.dataclass
class Signed:
    envelope: bytes
    payload: bytes
    signature: bytes
    leaf: Issued


@pytest.fixture(scope="module")
def pki() -> tuple[Issued, Issued]:
    root = make_ca("Example Root CA", not_before=NOW - timedelta(days=3650))
    issuing = make_ca("Example Issuing CA", issuer=root, not_before=NOW - timedelta(days=3000))
    return root, issuing


def _signed(issuing: Issued, **leaf: Any) -> Signed:
    issued = make_leaf(issuing, **leaf)
    payload = statement_payload(
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "app.tar.gz", "digest": {"sha256": "a" * 64}}],
            "predicateType": "https://slsa.dev/provenance/v1",
            "predicate": {"buildDefinition": {"buildType": "https://example.com/b"}},
        }
    )
    signature = issued.key.sign(pae(PAYLOAD_TYPE, payload), ec.ECDSA(hashes.SHA256()))
    import base64
    import json

    envelope = json.dumps(
        {
            "payload": base64.b64encode(payload).decode(),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{"keyid": "", "sig": base64.b64encode(signature).decode()}],
        }
    ).encode()
    return Signed(envelope, payload, signature, issued)


def _root(
    tsa: Tsa, pki: tuple[Issued, Issued], crls: list[x509.CertificateRevocationList]
) -> TrustRoot:
    section: dict[str, Any] = {
        "certificateAuthorities": [
            {"name": "root", "certificate": pki[0].pem.decode()},
            {"name": "issuing", "certificate": pki[1].pem.decode()},
        ],
        "identities": [{"ca": "root", "subject": "release@example.com"}],
    }
    if crls:
        section["crls"] = [crl_pem(c).decode() for c in crls]
    return TrustRoot(
        version=1,
        expires=NOW + timedelta(days=3650),
        keys=(),
        policy=Policy(threshold=1),
        timestamp_authorities=(tsa.authority(),),
        pki=parse_pki(section),
    )


def _bundle(tsa: Tsa, signed: Signed, at: datetime | None) -> bytes:
    tokens: tuple[bytes, ...] = ()
    if at is not None:
        token = request_timestamp(
            tsa.url, signed.signature, timeout=30, authorities=[tsa.authority()]
        )
        tokens = (resign(token, tsa.signer, gen_time=at),)
    return certificate_bundle(
        signed.payload, PAYLOAD_TYPE, signed.signature, signed.leaf, tokens=tokens
    )


def _code(signed: Signed, root: TrustRoot, bundle: bytes, **kwargs: Any) -> Code:
    with pytest.raises(VerificationError) as info:
        verify(signed.envelope, root, bundles=[bundle], **kwargs)
    return info.value.code


def test_an_expired_leaf_verifies_for_a_signature_timestamped_inside_its_validity(
    tsa: Tsa, pki: tuple[Issued, Issued]
) -> None:
    signed = _signed(pki[1], not_before=NOW - timedelta(days=400), not_after=NOW - 2 * H)
    root = _root(tsa, pki, [])
    stamped = _bundle(tsa, signed, NOW - 5 * H)
    result = verify(signed.envelope, root, bundles=[stamped])
    assert result.identities_counted[0].subject == "release@example.com"
    assert result.signatures[0].time_source == "rfc3161"
    # Without the token it is judged now, when the certificate has expired.
    assert _code(signed, root, _bundle(tsa, signed, None)) == Code.CERTIFICATE_EXPIRED
    # A token from after the certificate expired does not help.
    late = _bundle(tsa, signed, NOW - H)
    assert _code(signed, root, late) == Code.CERTIFICATE_EXPIRED


def test_a_revocation_after_the_token_does_not_touch_the_signature(
    tsa: Tsa, pki: tuple[Issued, Issued]
) -> None:
    signed = _signed(pki[1], not_before=NOW - timedelta(days=10))
    serial = signed.leaf.cert.serial_number
    crl = make_crl(
        pki[1],
        [Revoked(serial, NOW - timedelta(hours=1), x509.ReasonFlags.cessation_of_operation)],
        last_update=NOW - timedelta(minutes=30),
        next_update=NOW + timedelta(days=7),
    )
    root = _root(tsa, pki, [crl])
    assert verify(signed.envelope, root, bundles=[_bundle(tsa, signed, NOW - timedelta(hours=6))])
    assert _code(signed, root, _bundle(tsa, signed, None)) == Code.CERTIFICATE_REVOKED


def test_a_key_compromise_before_the_token_refuses_it(tsa: Tsa, pki: tuple[Issued, Issued]) -> None:
    signed = _signed(pki[1], not_before=NOW - timedelta(days=10))
    crl = make_crl(
        pki[1],
        [
            Revoked(
                signed.leaf.cert.serial_number,
                NOW - timedelta(hours=1),
                x509.ReasonFlags.key_compromise,
                NOW - 10 * H,
            )
        ],
        last_update=NOW - timedelta(minutes=30),
        next_update=NOW + timedelta(days=7),
    )
    root = _root(tsa, pki, [crl])
    before = _bundle(tsa, signed, NOW - 20 * H)
    assert verify(signed.envelope, root, bundles=[before])
    after = _bundle(tsa, signed, NOW - 5 * H)
    assert _code(signed, root, after) == Code.CERTIFICATE_REVOKED


def test_a_crl_stale_at_the_token_time_refuses_unless_allowed(
    tsa: Tsa, pki: tuple[Issued, Issued]
) -> None:
    signed = _signed(pki[1], not_before=NOW - timedelta(days=100))
    crl = make_crl(pki[1], last_update=NOW - 20 * H, next_update=NOW - 10 * H)
    root = _root(tsa, pki, [crl])
    inside = _bundle(tsa, signed, NOW - 12 * H)
    assert verify(signed.envelope, root, bundles=[inside])
    late = _bundle(tsa, signed, NOW - 5 * H)
    assert _code(signed, root, late) == Code.CRL_STALE
    assert verify(signed.envelope, root, bundles=[late], allow_stale_crl=True)
