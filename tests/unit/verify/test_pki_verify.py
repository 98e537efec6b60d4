"""Certificate bundles from an organisation PKI: chains, usage, CRLs, identities, codes.

Each adversarial case of issue 16 has its exact code here. Bundles are built by hand (the
shape `dssesign attest --certificate` writes) so each test states the certificate it uses.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID

from dssesign.codes import Code
from dssesign.core.dsse import pae
from dssesign.errors import TrustRootError, VerificationError
from dssesign.intoto.statement import PAYLOAD_TYPE
from dssesign.trust import load_trust_root
from dssesign.trust.document import dump_trust_root
from dssesign.verify import verify
from tests.pki import (
    EPOCH,
    YEAR,
    Issued,
    Revoked,
    certificate_bundle,
    crl_pem,
    make_ca,
    make_crl,
    make_leaf,
    new_key,
    org_pki,
)
from tests.unit.verify.test_verify import NOW, payload_of, statement

PAYLOAD = payload_of(statement())


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def signed(leaf: Issued, *, key: Any = None, chain: Sequence[Issued] = ()) -> tuple[str, str]:
    """(envelope JSON, bundle JSON) for one signature by `key` (default the leaf's)."""
    signing_key = key if key is not None else leaf.key
    sig = signing_key.sign(pae(PAYLOAD_TYPE, PAYLOAD), ec.ECDSA(hashes.SHA256()))
    envelope = {
        "payload": _b64(PAYLOAD),
        "payloadType": PAYLOAD_TYPE,
        "signatures": [{"keyid": "", "sig": _b64(sig)}],
    }
    bundle = certificate_bundle(PAYLOAD, PAYLOAD_TYPE, sig, leaf, chain=chain)
    return json.dumps(envelope), bundle.decode()


def root_of(
    authorities: Sequence[tuple[str, Issued] | dict[str, Any]],
    identities: Sequence[dict[str, Any]] = ({"ca": "root", "subject": "release@example.com"},),
    crls: Sequence[x509.CertificateRevocationList] = (),
    **extra: Any,
) -> Any:
    cas = [
        a if isinstance(a, dict) else {"name": a[0], "certificate": a[1].pem.decode()}
        for a in authorities
    ]
    pki: dict[str, Any] = {"certificateAuthorities": cas}
    if identities:
        pki["identities"] = list(identities)
    if crls:
        pki["crls"] = [crl_pem(c).decode() for c in crls]
    document = {
        "mediaType": "application/vnd.dssesign.trust-root.v2+json",
        "version": 1,
        "expires": "2030-01-01T00:00:00Z",
        "keys": [],
        "rotations": [],
        "policy": {"threshold": 1, "hybrid": "off"},
        "pki": pki,
        **extra,
    }
    return load_trust_root(json.dumps(document))


def refused(
    envelope: str, bundle: str, root: Any, *, bundles_extra: Sequence[str] = (), **kwargs: Any
) -> VerificationError:
    kwargs.setdefault("at", NOW)
    with pytest.raises(VerificationError) as info:
        verify(envelope, root, bundles=[bundle, *bundles_extra], **kwargs)
    assert info.value.code != Code.INTERNAL
    return info.value


@pytest.fixture(scope="module")
def pki() -> Any:
    return org_pki()


def standard_root(pki: Any, **kwargs: Any) -> Any:
    return root_of([("root", pki.root), ("issuing", pki.intermediate)], **kwargs)


def test_a_leaf_of_the_organisation_ca_counts_as_its_identity(pki: Any) -> None:
    envelope, bundle = signed(pki.leaf)
    result = verify(envelope, standard_root(pki), bundles=[bundle], at=NOW)
    assert [(i.issuer, i.subject) for i in result.identities_counted] == [
        ("root", "release@example.com")
    ]
    entry = result.signatures[0]
    assert entry.time_source == "at"


def test_the_trust_root_round_trips_and_is_v2(pki: Any) -> None:
    root = standard_root(pki, crls=[make_crl(pki.intermediate)])
    again = load_trust_root(dump_trust_root(root))
    assert again.pki == root.pki
    assert again.media_type.endswith("v2+json")


def test_a_v02_bundle_chain_counts_only_for_listed_cas(pki: Any) -> None:
    envelope, bundle = signed(pki.leaf, chain=[pki.intermediate])
    # Intermediates come from the trust root: one carried in the bundle is not trusted...
    error = refused(envelope, bundle, root_of([("root", pki.root)]))
    assert error.code == Code.CERTIFICATE_UNTRUSTED
    assert "not a CA of the trust root" in str(error)
    # ...unless the trust root lists that CA (here: this very certificate).
    assert verify(envelope, standard_root(pki), bundles=[bundle], at=NOW).identities_counted


def test_an_identity_pinned_to_the_issuing_ca(pki: Any) -> None:
    envelope, bundle = signed(pki.leaf)
    root = standard_root(pki, identities=[{"ca": "issuing", "subject": "release@example.com"}])
    assert verify(envelope, root, bundles=[bundle], at=NOW).identities_counted[0].issuer == (
        "issuing"
    )


def test_subject_dn_and_regexp_rules(pki: Any) -> None:
    envelope, bundle = signed(pki.leaf)
    dn = pki.leaf.cert.subject.rfc4514_string()
    by_dn = standard_root(pki, identities=[{"ca": "root", "subjectDN": dn}])
    assert verify(envelope, by_dn, bundles=[bundle], at=NOW).identities_counted[0].subject == (
        pki.leaf.cert.subject.rfc4514_string()
    )
    by_re = standard_root(pki, identities=[{"ca": "root", "subjectRegExp": r".*@example\.com"}])
    assert verify(envelope, by_re, bundles=[bundle], at=NOW).identities_counted
    partial = standard_root(pki, identities=[{"ca": "root", "subjectRegExp": "release"}])
    assert refused(envelope, bundle, partial).code == Code.IDENTITY_MISMATCH


def test_a_required_extension_value(pki: Any) -> None:
    oid = "1.3.6.1.4.1.55555.1"
    value = x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), b"\x0c\x07release")
    leaf = make_leaf(pki.intermediate, extra=[(value, False)])
    envelope, bundle = signed(leaf)
    good = standard_root(
        pki,
        identities=[
            {"ca": "root", "subject": "release@example.com", "extensions": {oid: "release"}}
        ],
    )
    assert verify(envelope, good, bundles=[bundle], at=NOW).identities_counted
    bad = standard_root(
        pki,
        identities=[{"ca": "root", "subject": "release@example.com", "extensions": {oid: "other"}}],
    )
    assert refused(envelope, bundle, bad).code == Code.IDENTITY_MISMATCH


# --- the adversarial cases of issue 16, each with its code --------------------------------------


def test_a_leaf_from_an_untrusted_ca(pki: Any) -> None:
    stranger = org_pki()
    envelope, bundle = signed(stranger.leaf, chain=[stranger.intermediate])
    error = refused(envelope, bundle, standard_root(pki))
    assert error.code == Code.CERTIFICATE_UNTRUSTED
    assert "does not chain" in str(error)


def test_an_intermediate_without_the_ca_basic_constraint(pki: Any) -> None:
    not_ca = make_ca("Not A CA", issuer=pki.root, ca=False)
    leaf = make_leaf(not_ca)
    envelope, bundle = signed(leaf, chain=[not_ca])
    assert refused(envelope, bundle, standard_root(pki)).code == Code.CERTIFICATE_CA_INVALID


def test_the_trust_root_refuses_a_non_ca_authority(pki: Any) -> None:
    not_ca = make_ca("Not A CA", issuer=pki.root, ca=False)
    with pytest.raises(TrustRootError, match="not a CA certificate"):
        root_of([("root", pki.root), ("bad", not_ca)])


@pytest.mark.parametrize(
    "eku", [(ExtendedKeyUsageOID.SERVER_AUTH,), None], ids=["server-auth", "no-eku"]
)
def test_wrong_eku(pki: Any, eku: Any) -> None:
    leaf = make_leaf(pki.intermediate, eku=eku)
    envelope, bundle = signed(leaf)
    error = refused(envelope, bundle, standard_root(pki))
    assert error.code == Code.CERTIFICATE_USAGE_INVALID
    assert "codeSigning" in str(error)


def test_a_leaf_whose_key_is_not_the_signatures_key(pki: Any) -> None:
    envelope, bundle = signed(pki.leaf, key=new_key())
    assert refused(envelope, bundle, standard_root(pki)).code == Code.CERTIFICATE_KEY_MISMATCH


def test_an_expired_leaf_without_a_timestamp(pki: Any) -> None:
    envelope, bundle = signed(pki.leaf)
    error = refused(envelope, bundle, standard_root(pki), at=EPOCH + 2 * YEAR)
    assert error.code == Code.CERTIFICATE_EXPIRED
    assert "not valid at the signing time" in str(error)


def test_a_leaf_on_the_crl_before_the_signing_time(pki: Any) -> None:
    crl = make_crl(
        pki.intermediate, [Revoked(pki.leaf.cert.serial_number, NOW - timedelta(days=1))]
    )
    envelope, bundle = signed(pki.leaf)
    error = refused(envelope, bundle, standard_root(pki, crls=[crl]))
    assert error.code == Code.CERTIFICATE_REVOKED


def test_a_leaf_revoked_after_the_signing_time_still_verifies(pki: Any) -> None:
    crl = make_crl(
        pki.intermediate,
        [
            Revoked(
                pki.leaf.cert.serial_number, NOW + timedelta(days=1), x509.ReasonFlags.superseded
            )
        ],
    )
    envelope, bundle = signed(pki.leaf)
    assert verify(envelope, standard_root(pki, crls=[crl]), bundles=[bundle], at=NOW)


@pytest.mark.parametrize(
    ("invalid_since", "verifies"),
    [(None, False), (NOW - timedelta(hours=1), False), (NOW + timedelta(hours=1), True)],
    ids=["no-invalidity-date", "compromised-before", "compromised-after"],
)
def test_key_compromise_refuses_from_the_invalidity_date(
    pki: Any, invalid_since: Any, verifies: bool
) -> None:
    entry = Revoked(
        pki.leaf.cert.serial_number,
        NOW + timedelta(days=2),
        x509.ReasonFlags.key_compromise,
        invalid_since,
    )
    root = standard_root(pki, crls=[make_crl(pki.intermediate, [entry])])
    envelope, bundle = signed(pki.leaf)
    if verifies:
        assert verify(envelope, root, bundles=[bundle], at=NOW)
    else:
        assert refused(envelope, bundle, root).code == Code.CERTIFICATE_REVOKED


def test_a_stale_crl(pki: Any) -> None:
    crl = make_crl(pki.intermediate, next_update=NOW - timedelta(hours=1))
    root = standard_root(pki, crls=[crl])
    envelope, bundle = signed(pki.leaf)
    error = refused(envelope, bundle, root)
    assert error.code == Code.CRL_STALE
    assert "--allow-stale-crl" in str(error)
    assert verify(envelope, root, bundles=[bundle], at=NOW, allow_stale_crl=True)


def test_a_dns_name_constraint_violation(pki: Any) -> None:
    constrained = make_ca("Constrained CA", issuer=pki.root, permitted_dns=["example.com"])
    leaf = make_leaf(constrained, dns=["build.evil.org"], emails=())
    envelope, bundle = signed(leaf)
    root = root_of(
        [("root", pki.root), ("constrained", constrained)],
        identities=[{"ca": "root", "subject": "build.evil.org"}],
    )
    assert refused(envelope, bundle, root).code == Code.CERTIFICATE_NAME_CONSTRAINT


def test_a_self_signed_leaf(pki: Any) -> None:
    key = new_key()
    leaf = make_leaf(pki.intermediate, key=key, self_signed=True)
    envelope, bundle = signed(leaf)
    assert refused(envelope, bundle, standard_root(pki)).code == Code.CERTIFICATE_SELF_SIGNED


def test_a_chain_loop_ends_at_the_depth_limit(pki: Any) -> None:
    # Two CAs that certify each other (same names and keys both ways), no path to the root:
    # pyca follows the loop until the depth limit, and no further.
    key_a, key_b = new_key(), new_key()
    a_seed = make_ca("Loop A", key=key_a)
    b = make_ca("Loop B", issuer=a_seed, key=key_b)
    a = make_ca("Loop A", issuer=b, key=key_a)
    leaf = make_leaf(a)
    envelope, bundle = signed(leaf, chain=[a, b])
    error = refused(envelope, bundle, standard_root(pki))
    assert error.code == Code.CERTIFICATE_CHAIN_TOO_DEEP
    assert "loop" in str(error)


def test_a_chain_deeper_than_the_limit(pki: Any) -> None:
    chain = [pki.root]
    for depth in range(5):
        chain.append(make_ca(f"Level {depth}", issuer=chain[-1]))
    leaf = make_leaf(chain[-1])
    envelope, bundle = signed(leaf, chain=chain[:0:-1])
    error = refused(envelope, bundle, root_of([("root", pki.root)]))
    assert error.code == Code.CERTIFICATE_CHAIN_TOO_DEEP


def test_a_crl_signed_by_the_wrong_ca(pki: Any) -> None:
    crl = make_crl(pki.intermediate, signed_by=pki.root.key)
    with pytest.raises(TrustRootError, match="signed by the wrong CA"):
        standard_root(pki, crls=[crl])


def test_an_ed25519_ca_is_refused_with_a_clear_reason(pki: Any) -> None:
    ed_root = make_ca("Ed25519 Root", key=ed25519.Ed25519PrivateKey.generate())
    with pytest.raises(TrustRootError, match="not RSA or ECDSA"):
        root_of([("ed", ed_root)])
    ed_intermediate = make_ca(
        "Ed25519 Issuing", issuer=pki.root, key=ed25519.Ed25519PrivateKey.generate()
    )
    envelope, bundle = signed(make_leaf(ed_intermediate), chain=[ed_intermediate])
    assert refused(envelope, bundle, standard_root(pki)).code == Code.CERTIFICATE_UNSUPPORTED


def test_uri_name_constraints_are_refused(pki: Any) -> None:
    uri_ca = make_ca("URI CA", issuer=pki.root, permitted_uris=["example.com"])
    with pytest.raises(TrustRootError, match="URI name constraints"):
        root_of([("root", pki.root), ("uri", uri_ca)])


# --- the trust root's own state -----------------------------------------------------------------


def test_identity_mismatch_names_the_chain(pki: Any) -> None:
    root = standard_root(pki, identities=[{"ca": "root", "subject": "someone@example.com"}])
    envelope, bundle = signed(pki.leaf)
    error = refused(envelope, bundle, root)
    assert error.code == Code.IDENTITY_MISMATCH
    assert "root" in str(error)


def test_a_revoked_identity_and_a_revoked_ca(pki: Any) -> None:
    envelope, bundle = signed(pki.leaf)
    before = "2026-05-01T00:00:00Z"
    root = standard_root(
        pki,
        identities=[{"ca": "root", "subject": "release@example.com", "revokedAt": before}],
    )
    assert refused(envelope, bundle, root).code == Code.IDENTITY_REVOKED
    revoked_ca = root_of(
        [
            {"name": "root", "certificate": pki.root.pem.decode()},
            {"name": "issuing", "certificate": pki.intermediate.pem.decode(), "revokedAt": before},
        ]
    )
    assert refused(envelope, bundle, revoked_ca).code == Code.CA_NOT_TRUSTED_AT_TIME
    after = root_of(
        [
            {"name": "root", "certificate": pki.root.pem.decode()},
            {
                "name": "issuing",
                "certificate": pki.intermediate.pem.decode(),
                "revokedAt": "2026-07-01T00:00:00Z",
            },
        ]
    )
    assert verify(envelope, after, bundles=[bundle], at=NOW)


def test_a_certificate_identity_in_a_role_and_a_threshold(pki: Any) -> None:
    from dssesign.profiles.software import generate

    other = generate("ecdsa-p256")
    envelope, bundle = signed(pki.leaf)
    document = json.loads(envelope)
    sig = other.sign(pae(PAYLOAD_TYPE, PAYLOAD))
    document["signatures"].append({"keyid": other.keyid, "sig": _b64(sig)})
    root = root_of(
        [("root", pki.root), ("issuing", pki.intermediate)],
        identities=[{"ca": "root", "subject": "release@example.com", "name": "release"}],
        keys=[
            {
                "keyid": other.keyid,
                "publicKey": other.public_key.pem,
                "algorithm": "PKIX_ECDSA_P256_SHA_256",
            }
        ],
        roles=[{"name": "release-team", "threshold": 1, "identities": ["release"]}],
        policy={"threshold": 2, "hybrid": "off", "requiredRoles": ["release-team"]},
    )
    result = verify(json.dumps(document), root, bundles=[bundle], at=NOW)
    assert result.roles["release-team"].met
    assert len(result.keys_counted) == 1 and len(result.identities_counted) == 1


def test_a_role_cannot_name_an_identity_in_both_sections(pki: Any) -> None:
    with pytest.raises(TrustRootError, match="names no identity"):
        root_of(
            [("root", pki.root)],
            roles=[{"name": "r", "threshold": 1, "identities": ["nobody"]}],
        )


# --- red-team regressions -----------------------------------------------------------------------


def _renewal(pki: Any) -> Issued:
    """The issuing CA re-certified by the root with the same name and key (a CA renewal)."""
    return make_ca(
        "Example Issuing CA",
        issuer=pki.root,
        key=pki.intermediate.key,
        path_length=0,
        not_before=EPOCH - YEAR,
        not_after=EPOCH + 3 * YEAR,
    )


def test_a_crl_applies_through_a_renewed_ca_certificate(pki: Any) -> None:
    # After the old CA certificate expired, chains run through its renewal (same name and
    # key): the CRL that key signed still applies.
    renewal = _renewal(pki)
    leaf = make_leaf(pki.intermediate, not_after=EPOCH + 3 * YEAR)
    crl = make_crl(
        pki.intermediate, [Revoked(leaf.cert.serial_number, NOW)], next_update=EPOCH + 3 * YEAR
    )
    root = root_of(
        [("root", pki.root), ("issuing", pki.intermediate), ("issuing-2", renewal)],
        crls=[crl],
        expires="2031-01-01T00:00:00Z",
    )
    envelope, bundle = signed(leaf)
    later = EPOCH + 2 * YEAR
    assert pki.intermediate.cert.not_valid_after_utc > later  # both valid: pyca picks one
    assert refused(envelope, bundle, root, at=later).code == Code.CERTIFICATE_REVOKED
    old_expired = make_ca(
        "Example Issuing CA",
        issuer=pki.root,
        key=pki.intermediate.key,
        not_before=EPOCH - 2 * YEAR,
        not_after=EPOCH + YEAR,
    )
    root = root_of(
        [("root", pki.root), ("issuing", old_expired), ("issuing-2", renewal)],
        crls=[crl],
        expires="2031-01-01T00:00:00Z",
    )
    assert refused(envelope, bundle, root, at=later).code == Code.CERTIFICATE_REVOKED


def test_a_revoked_ca_is_not_revived_by_its_renewal(pki: Any) -> None:
    renewal = _renewal(pki)
    envelope, bundle = signed(pki.leaf, chain=[renewal])
    revoked = root_of(
        [
            {"name": "root", "certificate": pki.root.pem.decode()},
            {
                "name": "issuing",
                "certificate": pki.intermediate.pem.decode(),
                "revokedAt": "2026-05-01T00:00:00Z",
            },
            {"name": "issuing-2", "certificate": renewal.pem.decode()},
        ]
    )
    assert refused(envelope, bundle, revoked).code == Code.CA_NOT_TRUSTED_AT_TIME


def test_a_san_counts_only_in_the_shape_of_its_type(pki: Any) -> None:
    # A DNSName (or a scheme-less URI) that reads like an email is not that email: email name
    # constraints never judged it.
    as_dns = make_leaf(pki.intermediate, emails=(), dns=["release@example.com"])
    as_uri = make_leaf(pki.intermediate, emails=(), uris=["release@example.com"])
    for leaf in (as_dns, as_uri):
        envelope, bundle = signed(leaf)
        assert refused(envelope, bundle, standard_root(pki)).code == Code.IDENTITY_MISMATCH


def test_name_constraints_pyca_cannot_enforce_are_refused(pki: Any) -> None:
    builder_ca = make_ca("Constrained CA", issuer=pki.root, permitted_dns=["example.com"])
    # Re-issue it with the constraint marked non-critical.
    from cryptography.x509 import CertificateBuilder

    cert = builder_ca.cert
    rebuilt = CertificateBuilder(
        issuer_name=cert.issuer,
        subject_name=cert.subject,
        public_key=cert.public_key(),
        serial_number=cert.serial_number,
        not_valid_before=cert.not_valid_before_utc,
        not_valid_after=cert.not_valid_after_utc,
        extensions=[
            x509.Extension(e.oid, False, e.value)
            if isinstance(e.value, x509.NameConstraints)
            else e
            for e in cert.extensions
        ],
    ).sign(pki.root.key, hashes.SHA256())
    with pytest.raises(TrustRootError, match="not critical"):
        root_of([("root", pki.root), ("nc", Issued(rebuilt, builder_ca.key))])


def test_a_ca_limited_to_other_purposes_issues_no_signer(pki: Any) -> None:
    tls_ca = make_ca("TLS Issuing CA", issuer=pki.root)
    from cryptography.x509 import CertificateBuilder

    cert = tls_ca.cert
    with_eku = CertificateBuilder(
        issuer_name=cert.issuer,
        subject_name=cert.subject,
        public_key=cert.public_key(),
        serial_number=cert.serial_number,
        not_valid_before=cert.not_valid_before_utc,
        not_valid_after=cert.not_valid_after_utc,
        extensions=[
            *cert.extensions,
            x509.Extension(
                x509.ExtendedKeyUsage.oid,
                False,
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
            ),
        ],
    ).sign(pki.root.key, hashes.SHA256())
    tls = Issued(with_eku, tls_ca.key)
    leaf = make_leaf(tls)
    envelope, bundle = signed(leaf)
    root = root_of([("root", pki.root), ("tls", tls)])
    error = refused(envelope, bundle, root)
    assert error.code == Code.CERTIFICATE_USAGE_INVALID
    assert "limits its extended key usage" in str(error)


def test_one_subject_counts_once_through_sibling_cas(pki: Any) -> None:
    sibling = make_ca("Sibling Issuing CA", issuer=pki.root, path_length=0)
    second = make_leaf(sibling)
    first_envelope, first_bundle = signed(pki.leaf)
    _, second_bundle = signed(second)
    document = json.loads(first_envelope)
    document["signatures"].append(json.loads(second_bundle)["dsseEnvelope"]["signatures"][0])
    for rules in (
        [
            {"ca": "issuing", "subject": "release@example.com"},
            {"ca": "root", "subject": "release@example.com"},
        ],
        [
            {"ca": "root", "subject": "release@example.com"},
            {"ca": "issuing", "subject": "release@example.com"},
        ],
    ):
        root = root_of(
            [("root", pki.root), ("issuing", pki.intermediate), ("sibling", sibling)],
            identities=rules,
            policy={"threshold": 2, "hybrid": "off"},
            keys=[],
        )
        error = refused(json.dumps(document), first_bundle, root, bundles_extra=[second_bundle])
        assert error.code == Code.THRESHOLD_NOT_MET


@pytest.mark.parametrize(
    "reason", [x509.ReasonFlags.key_compromise, x509.ReasonFlags.ca_compromise]
)
def test_a_compromise_counts_from_the_earlier_of_revocation_and_invalidity(
    pki: Any, reason: x509.ReasonFlags
) -> None:
    entry = Revoked(
        pki.leaf.cert.serial_number, NOW - timedelta(hours=1), reason, NOW + timedelta(days=1)
    )
    root = standard_root(pki, crls=[make_crl(pki.intermediate, [entry])])
    envelope, bundle = signed(pki.leaf)
    assert refused(envelope, bundle, root).code == Code.CERTIFICATE_REVOKED


def test_scoped_and_delta_crls_are_refused(pki: Any) -> None:
    from cryptography.x509 import CertificateRevocationListBuilder

    base = (
        CertificateRevocationListBuilder()
        .issuer_name(pki.intermediate.cert.subject)
        .last_update(EPOCH)
        .next_update(EPOCH + YEAR)
    )
    delta = base.add_extension(x509.DeltaCRLIndicator(1), critical=True).sign(
        pki.intermediate.key, hashes.SHA256()
    )
    with pytest.raises(TrustRootError, match="delta CRL"):
        standard_root(pki, crls=[delta])


def test_extension_text_never_matches_a_hex_rule(pki: Any) -> None:
    oid = "1.3.6.1.4.1.55555.2"
    tricky = x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), b"\x0c\x08hex:0c01")
    leaf = make_leaf(pki.intermediate, extra=[(tricky, False)])
    envelope, bundle = signed(leaf)
    rule = {"ca": "root", "subject": "release@example.com", "extensions": {oid: "hex:0c01"}}
    assert refused(envelope, bundle, standard_root(pki, identities=[rule])).code == (
        Code.IDENTITY_MISMATCH
    )
    exact = {**rule, "extensions": {oid: "hex:0c086865783a30633031"}}
    assert verify(envelope, standard_root(pki, identities=[exact]), bundles=[bundle], at=NOW)


def test_an_unreadable_leaf_is_refused_with_a_code_not_internal(pki: Any) -> None:
    # A duplicated extension: anyone can make one (it needs no CA key, only a signature).
    leaf = make_leaf(
        pki.intermediate,
        extra=[(x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4"), b"\x05\x00"), False)],
    )
    der = bytearray(leaf.der)
    envelope, bundle = signed(leaf)
    document = json.loads(bundle)
    oid = bytes.fromhex("06032a0304")  # 1.2.3.4
    assert oid in der
    # Rename the unknown extension to BasicConstraints' OID: now it is there twice.
    der = der.replace(oid + b"\x04\x02\x05\x00", bytes.fromhex("0603551d13") + b"\x04\x02\x05\x00")
    document["verificationMaterial"]["certificate"]["rawBytes"] = _b64(bytes(der))
    refused(envelope, json.dumps(document), standard_root(pki))  # a code, never INTERNAL
