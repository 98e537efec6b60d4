"""A Fulcio-style test CA: a root and an intermediate that issue short-lived code-signing leaves.

The leaf carries what Sigstore verifiers check: the token's subject as the (critical) SAN, the
OIDC issuer in Fulcio's extensions 1.3.6.1.4.1.57264.1.1 (raw) and .1.8 (DER UTF8String), the
code-signing EKU, and an embedded precertificate SCT from the test CT log.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from . import der
from .ctlog import CTLog

#: Fulcio's deprecated issuer extension (the raw issuer string as the extension value).
OIDC_ISSUER_V1 = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
#: Fulcio's issuer extension, a DER UTF8String.
OIDC_ISSUER_V2 = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
#: How long a leaf certificate lives (Fulcio issues 10-minute certificates).
LEAF_LIFETIME = timedelta(minutes=10)


def spki_der(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dssesign test"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


@dataclass(frozen=True)
class Identity:
    """What Fulcio takes from a verified OIDC token."""

    issuer: str
    subject: str
    #: True when the subject is an email address (RFC822Name SAN), else a URI SAN.
    is_email: bool


class TestCA:
    """Root CA -> intermediate CA -> leaf, like Fulcio's production hierarchy."""

    __test__ = False  # not a pytest test class

    def __init__(self, ct_log: CTLog, *, now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        self.not_before = (now - timedelta(days=1)).replace(microsecond=0)
        self._ct_log = ct_log
        self._root_key = ec.generate_private_key(ec.SECP384R1())
        self._intermediate_key = ec.generate_private_key(ec.SECP384R1())
        root_name = _name("dssesign test root")
        self.root = self._ca_certificate(root_name, self._root_key, self._root_key, root_name)
        self.intermediate = self._ca_certificate(
            _name("dssesign test intermediate"),
            self._intermediate_key,
            self._root_key,
            root_name,
            path_length=0,
        )

    def _ca_certificate(
        self,
        subject: x509.Name,
        key: ec.EllipticCurvePrivateKey,
        signing_key: ec.EllipticCurvePrivateKey,
        issuer: x509.Name,
        *,
        path_length: int | None = 1,
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.not_before)
            .not_valid_after(self.not_before + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()),
                False,
            )
        )
        return builder.sign(signing_key, hashes.SHA384())

    @property
    def chain(self) -> list[x509.Certificate]:
        """Intermediate then root: what Fulcio returns after the leaf."""
        return [self.intermediate, self.root]

    def issue(self, public_key: ec.EllipticCurvePublicKey, identity: Identity) -> x509.Certificate:
        """A leaf for `public_key` bound to `identity`, with one embedded precertificate SCT."""
        now = datetime.now(UTC).replace(microsecond=0)
        san: x509.GeneralName = (
            x509.RFC822Name(identity.subject)
            if identity.is_email
            else x509.UniformResourceIdentifier(identity.subject)
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.intermediate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + LEAF_LIFETIME)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self._intermediate_key.public_key()
                ),
                False,
            )
            # An empty subject makes the SAN the only name, so it must be critical (RFC 5280).
            .add_extension(x509.SubjectAlternativeName([san]), True)
            .add_extension(
                x509.UnrecognizedExtension(OIDC_ISSUER_V1, identity.issuer.encode()), False
            )
            .add_extension(
                x509.UnrecognizedExtension(OIDC_ISSUER_V2, der.utf8_string(identity.issuer)),
                False,
            )
        )
        # RFC 6962 3.2: the log signs the precertificate's TBS (the final certificate's TBS
        # without the SCT list), so sign a certificate without the extension first ...
        precertificate = builder.sign(self._intermediate_key, hashes.SHA384())
        tbs = precertificate.tbs_certificate_bytes
        issuer_key_hash = hashlib.sha256(spki_der(self._intermediate_key.public_key())).digest()
        sct = self._ct_log.sign_precertificate(issuer_key_hash, tbs, timestamp=now)
        # ... then add the SCT list as the last extension, and check the log signed exactly
        # what a verifier will reconstruct from the final certificate.
        leaf = builder.add_extension(self._ct_log.sct_list_extension([sct]), False).sign(
            self._intermediate_key, hashes.SHA384()
        )
        if leaf.tbs_precertificate_bytes != tbs:
            raise AssertionError("precertificate TBS differs from the SCT-signed TBS")
        return leaf
