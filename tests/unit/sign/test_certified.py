"""`sign.certified`: a key's organisation certificate, checked before signing, in its bundle."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import pytest
import sigstore.models
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sigstore_models.bundle.v1 import Bundle as BundleModel

from dssesign.core.dsse import pae
from dssesign.errors import ConfigError, InputError, SigningError
from dssesign.sign.bundles import (
    BUNDLE_MEDIA_TYPE,
    bundle_names,
    bundles_for,
    is_keyless,
    keyed_bundle,
    public_key_hint,
)
from dssesign.sign.certified import (
    MAX_CHAIN_CERTIFICATES,
    MAX_PEM_BYTES,
    CertifiedSigner,
    certify,
    load_chain,
    load_leaf,
)
from dssesign.sign.multisign import MultiProfileSigner
from dssesign.sign.signer import Signer
from tests.conftest import DelegatingSigner, signer_for
from tests.pki import EPOCH, YEAR, Issued, make_ca, make_leaf, new_key, org_pki, pem_of
from tests.unit.sign.test_bundles import FakeKeyless, _validator

PAYLOAD = b'{"_type":"https://in-toto.io/Statement/v1","predicateType":"x","subject":[]}'
PAYLOAD_TYPE = "application/vnd.in-toto+json"
#: The software keys an organisation CA certifies in these tests.
ALGORITHMS = ("ed25519", "ecdsa-p256", "rsa-pss-3072")


def _pki(signer: Signer, **leaf: Any) -> Any:
    return org_pki(leaf_public_key=signer.public_key.key, **leaf)


def _leaf_with_key_usage(issuer: Issued, signer: Signer, *, digital_signature: bool) -> Issued:
    """A code-signing leaf whose KeyUsage allows (or not) digitalSignature."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "encipher only")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.cert.subject)
        .public_key(signer.public_key.key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(EPOCH - YEAR)
        .not_valid_after(EPOCH + YEAR)
        .add_extension(
            x509.KeyUsage(
                digital_signature=digital_signature,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .sign(issuer.key, _sha256())
    )
    return Issued(certificate)


def _leaf_without_extensions(issuer: Issued, signer: Signer, **extensions: Any) -> Issued:
    """A leaf with only an EKU (codeSigning) and what `extensions` adds: no KeyUsage, no BC."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bare")]))
        .issuer_name(issuer.cert.subject)
        .public_key(signer.public_key.key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(EPOCH - YEAR)
        .not_valid_after(EPOCH + YEAR)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
    )
    for extension in extensions.values():
        builder = builder.add_extension(extension, critical=True)
    return Issued(builder.sign(issuer.key, _sha256()))


def _sha256() -> Any:
    from cryptography.hazmat.primitives import hashes

    return hashes.SHA256()


# --- certify: what it accepts -----------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_certify_wraps_the_signer_and_signs_as_it_does(algorithm: str) -> None:
    inner = signer_for(algorithm)
    pki = _pki(inner)
    certified = certify(inner, pki.leaf.pem, pem_of(pki.intermediate, pki.root), now=EPOCH)
    assert isinstance(certified, CertifiedSigner) and isinstance(certified, Signer)
    assert certified.inner is inner
    assert certified.certificate == pki.leaf.cert
    assert certified.certificate_der == pki.leaf.der
    assert certified.chain == (pki.intermediate.cert, pki.root.cert)
    assert (certified.keyid, certified.algorithm, certified.public_key) == (
        inner.keyid,
        inner.algorithm,
        inner.public_key,
    )
    assert (certified.reference, certified.in_process, certified.exportable) == (
        inner.reference,
        inner.in_process,
        inner.exportable,
    )
    assert not is_keyless(certified)
    message = pae(PAYLOAD_TYPE, PAYLOAD)
    assert inner.public_key.verify(certified.sign(message), message)
    assert certified.subject == "CN=release signer,O=Example Corp"
    assert len(certified.fingerprint) == 64


def test_certify_takes_parsed_certificates_and_no_chain() -> None:
    inner = signer_for("ecdsa-p256")
    pki = _pki(inner)
    assert certify(inner, pki.leaf.cert, now=EPOCH).chain == ()
    chain = (pki.intermediate.cert,)
    assert certify(inner, pki.leaf.cert, chain, now=EPOCH).chain == chain


def test_a_leaf_without_key_usage_or_basic_constraints_is_accepted() -> None:
    inner = signer_for("ed25519")
    pki = _pki(inner)
    bare = _leaf_without_extensions(pki.intermediate, inner)
    assert certify(inner, bare.pem, now=EPOCH).certificate == bare.cert


def test_signer_attributes_are_read_once_not_per_signature() -> None:
    # The signing path is one delegated call: no property or Protocol check per signature.
    inner = DelegatingSigner(signer_for("ed25519"), "pkcs11:token=t;object=k")
    certified = certify(inner, _pki(inner).leaf.pem, now=EPOCH)
    assert {"keyid", "algorithm", "public_key", "reference", "in_process", "exportable"} <= set(
        vars(certified)
    )
    assert certified.in_process is False and certified.reference == "pkcs11:token=t;object=k"


def test_the_validity_bounds_are_inclusive() -> None:
    inner = signer_for("ed25519")
    pki = _pki(inner)
    start, end = pki.leaf.cert.not_valid_before_utc, pki.leaf.cert.not_valid_after_utc
    certify(inner, pki.leaf.pem, now=start)
    certify(inner, pki.leaf.pem, now=end)


# --- certify: what it refuses -----------------------------------------------------------------


def test_a_certificate_for_another_key_is_refused() -> None:
    inner, other = signer_for("ecdsa-p256"), signer_for("ecdsa-p256", 1)
    pki = _pki(other)
    with pytest.raises(ConfigError) as refused:
        certify(inner, pki.leaf.pem, now=EPOCH, source="--certificate leaf.pem")
    message = str(refused.value)
    assert message.startswith("--certificate leaf.pem: its public key")
    assert other.keyid[:16] in message and inner.keyid[:16] in message


def test_a_keyless_signer_is_refused() -> None:
    keyless = FakeKeyless()
    pki = _pki(keyless)
    with pytest.raises(ConfigError, match="a keyless signer takes no certificate"):
        certify(keyless, pki.leaf.pem, now=EPOCH)


def test_a_signer_certified_twice_is_refused() -> None:
    inner = signer_for("ed25519")
    pki = _pki(inner)
    certified = certify(inner, pki.leaf.pem, now=EPOCH)
    with pytest.raises(ConfigError, match="already carries a certificate"):
        certify(certified, pki.leaf.pem, now=EPOCH)


def _refused(inner: Signer, leaf: Issued | bytes, *fragments: str, **kwargs: Any) -> None:
    pem = leaf.pem if isinstance(leaf, Issued) else leaf
    with pytest.raises((ConfigError, InputError)) as refused:
        certify(inner, pem, source="--certificate leaf.pem", now=kwargs.pop("now", EPOCH), **kwargs)
    message = str(refused.value)
    assert message.startswith("--certificate leaf.pem: "), message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_a_ca_certificate_is_refused() -> None:
    inner = signer_for("ecdsa-p256")
    pki = _pki(inner)
    ca = make_ca("signing CA", issuer=pki.intermediate, key=_PublicOnly(inner))
    _refused(inner, ca, "is a CA certificate (BasicConstraints cA=TRUE)")


class _PublicOnly:
    """What `make_ca` needs of an issued CA's key when another CA signs: its public half."""

    def __init__(self, signer: Signer) -> None:
        self._signer = signer

    def public_key(self) -> Any:
        return self._signer.public_key.key


def test_key_usage_without_digital_signature_is_refused() -> None:
    inner = signer_for("ecdsa-p256")
    pki = _pki(inner)
    _refused(
        inner,
        _leaf_with_key_usage(pki.intermediate, inner, digital_signature=False),
        "KeyUsage does not allow digitalSignature",
    )
    # The same leaf with digitalSignature is fine.
    certify(
        inner, _leaf_with_key_usage(pki.intermediate, inner, digital_signature=True).pem, now=EPOCH
    )


def test_a_leaf_without_extended_key_usage_is_refused() -> None:
    inner = signer_for("ed25519")
    _refused(inner, _pki(inner, eku=None).leaf, "has no ExtendedKeyUsage", "1.3.6.1.5.5.7.3.3")


def test_a_leaf_without_code_signing_is_refused() -> None:
    inner = signer_for("ed25519")
    pki = _pki(inner, eku=(ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION))
    _refused(
        inner,
        pki.leaf,
        "does not allow codeSigning (1.3.6.1.5.5.7.3.3)",
        "1.3.6.1.5.5.7.3.1, 1.3.6.1.5.5.7.3.4",
    )


def test_an_expired_leaf_is_refused() -> None:
    inner = signer_for("ed25519")
    pki = _pki(inner, not_after=EPOCH - timedelta(days=1))
    _refused(inner, pki.leaf, "expired on 2026-05-31T00:00:00Z", "now is 2026-06-01T00:00:00Z")


def test_a_leaf_not_valid_yet_is_refused() -> None:
    inner = signer_for("ed25519")
    pki = _pki(inner, not_before=EPOCH + timedelta(hours=1))
    _refused(inner, pki.leaf, "not valid yet (valid from 2026-06-01T01:00:00Z")


def test_now_must_be_timezone_aware() -> None:
    inner = signer_for("ed25519")
    with pytest.raises(ValueError, match="timezone-aware"):
        certify(inner, _pki(inner).leaf.pem, now=EPOCH.replace(tzinfo=None))


# --- the chain --------------------------------------------------------------------------------


def _chain_refused(inner: Signer, leaf: Issued, chain: bytes, *fragments: str) -> str:
    with pytest.raises(ConfigError) as refused:
        certify(
            inner,
            leaf.pem,
            chain,
            now=EPOCH,
            source="--certificate leaf.pem",
            chain_source="--certificate-chain chain.pem",
        )
    message = str(refused.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


def test_a_chain_that_did_not_issue_the_leaf_is_refused() -> None:
    inner = signer_for("ecdsa-p256")
    pki, other = _pki(inner), org_pki()
    message = _chain_refused(
        inner,
        pki.leaf,
        pem_of(other.intermediate, other.root),
        "--certificate leaf.pem: not issued by the first certificate of --certificate-chain "
        "chain.pem (CN=Example Issuing CA,O=Example Corp)",
    )
    # Same names, other keys: only the signature tells them apart.
    assert "does not verify with the issuer's key" in message


def test_a_chain_in_the_wrong_order_is_refused() -> None:
    inner = signer_for("ecdsa-p256")
    pki = _pki(inner)
    _chain_refused(
        inner,
        pki.leaf,
        pem_of(pki.root, pki.intermediate),
        "not issued by the first certificate",
        "CN=Example Root CA",
        "subject does not match",
    )


def test_a_broken_link_inside_the_chain_is_refused() -> None:
    inner = signer_for("ecdsa-p256")
    pki, other = _pki(inner), org_pki()
    _chain_refused(
        inner,
        pki.leaf,
        pem_of(pki.intermediate, other.root),
        "--certificate-chain chain.pem: certificate 1 (CN=Example Issuing CA,O=Example Corp) "
        "is not issued by certificate 2 (CN=Example Root CA,O=Example Corp)",
    )


def test_a_chain_may_stop_at_the_intermediate_or_go_deeper() -> None:
    inner = signer_for("ed25519")
    root = make_ca("Deep Root")
    middle = make_ca("Deep Middle", issuer=root)
    issuing = make_ca("Deep Issuing", issuer=middle)
    leaf = make_leaf(issuing, public_key=inner.public_key.key)
    certify(inner, leaf.pem, pem_of(issuing), now=EPOCH)
    certify(inner, leaf.pem, pem_of(issuing, middle, root), now=EPOCH)


# --- PEM input --------------------------------------------------------------------------------


def test_a_leaf_file_with_two_certificates_is_refused() -> None:
    inner = signer_for("ed25519")
    pki = _pki(inner)
    _refused(
        inner, pem_of(pki.leaf, pki.intermediate), "holds 2 certificates, expected exactly one"
    )


def test_a_leaf_file_with_a_private_key_is_refused() -> None:
    inner = signer_for("ed25519")
    key = new_key().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _refused(inner, _pki(inner).leaf.pem + key, "holds a PEM block that is not a certificate")


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "not a PEM certificate"),
        (b"\x30\x82\x01\x00", "not a PEM certificate"),
        (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "not a readable"),
        (b"-----BEGIN CERTIFICATE-----\n" * 2, "not a readable"),
    ],
)
def test_unreadable_pem_is_refused(data: bytes, fragment: str) -> None:
    _refused(signer_for("ed25519"), data, fragment)


def test_a_der_certificate_is_refused() -> None:
    inner = signer_for("ed25519")
    _refused(inner, _pki(inner).leaf.der, "not a PEM certificate")


def test_pem_input_is_bounded() -> None:
    inner = signer_for("ed25519")
    pem = _pki(inner).leaf.pem
    padded = pem + b"#" * (MAX_PEM_BYTES - len(pem) + 1)
    _refused(inner, padded, f"larger than the limit of {MAX_PEM_BYTES} bytes")
    with pytest.raises(InputError, match="larger than the limit"):
        load_chain(padded)


def test_a_chain_is_at_most_ten_certificates() -> None:
    ca = make_ca("Loop CA")
    assert len(load_chain(pem_of(*[ca] * MAX_CHAIN_CERTIFICATES))) == MAX_CHAIN_CERTIFICATES
    with pytest.raises(InputError, match="holds 11 certificates, more than the limit of 10"):
        load_chain(pem_of(*[ca] * 11), source="--certificate-chain c.pem")
    leaf = make_leaf(ca, public_key=signer_for("ed25519").public_key.key)
    with pytest.raises(InputError, match="more than the limit of 10"):
        certify(signer_for("ed25519"), leaf.cert, [ca.cert] * 11, now=EPOCH)


def test_load_leaf_names_its_source() -> None:
    with pytest.raises(InputError, match=r"^--certificate x\.pem: not a PEM certificate"):
        load_leaf(b"nothing", source="--certificate x.pem")


# --- bundles ----------------------------------------------------------------------------------


def _certified(algorithm: str, index: int = 0) -> tuple[CertifiedSigner, Issued]:
    inner = signer_for(algorithm, index)
    pki = _pki(inner)
    return certify(inner, pki.leaf.pem, pem_of(pki.intermediate), now=EPOCH), pki.leaf


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_certified_signature_gets_a_certificate_bundle(algorithm: str) -> None:
    signer, leaf = _certified(algorithm)
    result = MultiProfileSigner([signer]).sign_detailed(PAYLOAD, PAYLOAD_TYPE)
    # The envelope is as without a certificate: the key's keyid, the key's signature.
    (signature,) = result.envelope.signatures
    assert signature.keyid == signer.keyid == signer.inner.keyid
    assert signer.public_key.verify(signature.sig, pae(PAYLOAD_TYPE, PAYLOAD))
    (item,) = bundles_for(result.envelope, result.signers, "att")
    assert item.name == f"att.{signer.keyid[:16]}.sigstore.json"
    assert (item.keyid, item.keyless) == (signer.keyid, False)
    bundle = json.loads(item.data)
    assert bundle == {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {
            "certificate": {"rawBytes": base64.b64encode(leaf.der).decode()},
            "tlogEntries": [],
        },
        "dsseEnvelope": {
            "payload": base64.b64encode(PAYLOAD).decode(),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(signature.sig).decode(), "keyid": ""}],
        },
    }
    # The leaf's DER round-trips; the intermediates are not carried.
    raw = base64.b64decode(bundle["verificationMaterial"]["certificate"]["rawBytes"])
    assert x509.load_der_x509_certificate(raw) == leaf.cert
    assert "x509CertificateChain" not in bundle["verificationMaterial"]
    _validator().validate(bundle)


def test_sigstore_python_reads_the_certificate_bundle() -> None:
    signer, leaf = _certified("ecdsa-p256")
    result = MultiProfileSigner([signer]).sign_detailed(PAYLOAD, PAYLOAD_TYPE)
    (item,) = bundles_for(result.envelope, result.signers, "att")
    # The protobuf-specs model sigstore-python parses every bundle into.
    model = BundleModel.from_json(item.data)
    assert model.verification_material.certificate is not None
    assert model.verification_material.certificate.raw_bytes == leaf.der
    assert model.dsse_envelope is not None
    assert model.dsse_envelope.signatures[0].sig == result.envelope.signatures[0].sig
    # sigstore-python's Bundle reads the leaf (v0.3: `certificate`), then insists on a
    # transparency-log entry, which keyed signatures do not have: nothing else stops it.
    with pytest.raises(sigstore.models.InvalidBundle, match="expected exactly one log entry"):
        sigstore.models.Bundle.from_json(item.data)


def test_mixed_signers_give_a_certificate_bundle_and_a_public_key_bundle() -> None:
    certified, leaf = _certified("ecdsa-p256")
    plain = signer_for("ed25519", 3)
    signers: list[Signer] = [certified, plain]
    result = MultiProfileSigner(signers).sign_detailed(PAYLOAD, PAYLOAD_TYPE)
    assert [s.keyid for s in result.envelope.signatures] == [certified.keyid, plain.keyid]
    files = bundles_for(result.envelope, result.signers, "env")
    assert [f.name for f in files] == bundle_names(signers, "env")
    first, second = (json.loads(f.data) for f in files)
    assert first["verificationMaterial"] == {
        "certificate": {"rawBytes": base64.b64encode(leaf.der).decode()},
        "tlogEntries": [],
    }
    assert first["dsseEnvelope"]["signatures"][0]["keyid"] == ""
    hint = public_key_hint(plain.public_key)
    assert second["verificationMaterial"] == {"publicKey": {"hint": hint}, "tlogEntries": []}
    assert second["dsseEnvelope"]["signatures"][0]["keyid"] == hint


def test_timestamps_travel_in_a_certificate_bundle_too() -> None:
    signer, leaf = _certified("ed25519")
    result = MultiProfileSigner([signer]).sign_detailed(PAYLOAD, PAYLOAD_TYPE)
    tokens = (b"token one", b"token two")  # carried as given; `timestamps` judged them
    (item,) = bundles_for(result.envelope, result.signers, "att", [tokens])
    material = json.loads(item.data)["verificationMaterial"]
    assert material == {
        "certificate": {"rawBytes": base64.b64encode(leaf.der).decode()},
        "tlogEntries": [],
        "timestampVerificationData": {
            "rfc3161Timestamps": [{"signedTimestamp": base64.b64encode(t).decode()} for t in tokens]
        },
    }


def test_keyed_bundle_refuses_a_certificate_for_another_key() -> None:
    signer, leaf = _certified("ed25519")
    other = signer_for("ed25519", 1)
    with pytest.raises(SigningError, match="is not for the key"):
        keyed_bundle(PAYLOAD, PAYLOAD_TYPE, b"sig", other.public_key, certificate=leaf.cert)
    bundle: Any = keyed_bundle(
        PAYLOAD, PAYLOAD_TYPE, b"sig", signer.public_key, certificate=leaf.cert
    )
    assert set(bundle["verificationMaterial"]) == {"certificate", "tlogEntries"}


def test_only_a_checked_certificate_reaches_a_bundle() -> None:
    # A signer that merely has a `certificate` attribute gets the public-key bundle.
    class Claims(DelegatingSigner):
        certificate = _pki(signer_for("ed25519")).leaf.cert

    signer = Claims(signer_for("ed25519"))
    result = MultiProfileSigner([signer]).sign_detailed(PAYLOAD, PAYLOAD_TYPE)
    (item,) = bundles_for(result.envelope, result.signers, "att")
    assert "publicKey" in json.loads(item.data)["verificationMaterial"]


def test_the_signing_record_names_the_certificate() -> None:
    """The audit trail says which organisation certificate a key signed under."""
    from dssesign.audit.records import signing_fields
    from dssesign.sign.multisign import SigningRecord

    inner = signer_for("ecdsa-p256")
    certified = certify(inner, _pki(inner).leaf.pem, now=EPOCH)
    records: list[SigningRecord] = []
    MultiProfileSigner([certified, signer_for("ed25519")], audit=records.append).sign(
        b"{}", "application/vnd.in-toto+json"
    )
    by_keyid = {r.keyid: r for r in records}
    assert by_keyid[certified.keyid].certificate_sha256 == certified.fingerprint
    assert signing_fields(by_keyid[certified.keyid])["certificateSha256"] == certified.fingerprint
    assert "certificateSha256" not in signing_fields(by_keyid[signer_for("ed25519").keyid])
