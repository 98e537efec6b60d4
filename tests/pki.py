"""A test organisation PKI made with pyca/cryptography: roots, intermediates, leaves, CRLs.

Everything an organisation CA would issue (and the broken variants the adversarial tests need),
built in memory so each test states the PKI it relies on. Keys are ECDSA P-256 unless a test
gives its own (a leaf's public key may be a device's: SoftHSM, LocalStack KMS).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: The moment test PKIs are built around (certificates valid a year either side).
EPOCH = datetime(2026, 6, 1, tzinfo=UTC)
YEAR = timedelta(days=365)


@dataclass(frozen=True)
class Issued:
    """A certificate and, where the test holds it, its private key."""

    cert: x509.Certificate
    key: Any = None

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)


def pem_of(*certs: Issued | x509.Certificate) -> bytes:
    """A PEM file of these certificates, in order."""
    return b"".join(
        (c.cert if isinstance(c, Issued) else c).public_bytes(serialization.Encoding.PEM)
        for c in certs
    )


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Corp"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _ski(public_key: Any) -> x509.SubjectKeyIdentifier:
    return x509.SubjectKeyIdentifier.from_public_key(public_key)


def make_ca(
    common_name: str,
    *,
    issuer: Issued | None = None,
    key: Any = None,
    path_length: int | None = None,
    ca: bool = True,
    not_before: datetime = EPOCH - 5 * YEAR,
    not_after: datetime = EPOCH + 5 * YEAR,
    permitted_dns: Sequence[str] = (),
    permitted_uris: Sequence[str] = (),
    key_usage: bool = True,
    subject: x509.Name | None = None,
) -> Issued:
    """A root (no `issuer`) or an intermediate issued by `issuer`.

    `ca=False` makes the broken intermediate without the CA basic constraint; `permitted_*`
    adds a name constraint (URI ones are what pyca refuses).
    """
    key = key if key is not None else new_key()
    name = subject if subject is not None else _name(common_name)
    signer = issuer.key if issuer is not None else key
    issuer_name = issuer.cert.subject if issuer is not None else name
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(_ski(key.public_key()), critical=False)
    )
    if key_usage:
        builder = builder.add_extension(
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
            critical=True,
        )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    if permitted_dns or permitted_uris:
        subtrees: list[x509.GeneralName] = [x509.DNSName(d) for d in permitted_dns]
        subtrees += [x509.UniformResourceIdentifier(u) for u in permitted_uris]
        builder = builder.add_extension(
            x509.NameConstraints(permitted_subtrees=subtrees, excluded_subtrees=None),
            critical=True,
        )
    return Issued(builder.sign(signer, _hash_for(signer)), key)


def _hash_for(key: Any) -> hashes.SHA256 | None:
    from cryptography.hazmat.primitives.asymmetric import ed448, ed25519

    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return None
    return hashes.SHA256()


def make_leaf(
    issuer: Issued,
    *,
    common_name: str = "release signer",
    key: Any = None,
    public_key: Any = None,
    emails: Sequence[str] = ("release@example.com",),
    uris: Sequence[str] = (),
    dns: Sequence[str] = (),
    eku: Sequence[x509.ObjectIdentifier] | None = (ExtendedKeyUsageOID.CODE_SIGNING,),
    not_before: datetime = EPOCH - YEAR,
    not_after: datetime = EPOCH + YEAR,
    extra: Sequence[tuple[x509.ExtensionType, bool]] = (),
    self_signed: bool = False,
    subject: x509.Name | None = None,
) -> Issued:
    """A code-signing leaf issued by `issuer` for `key` (or a device's `public_key`).

    `eku=None` leaves the EKU extension out; `self_signed` signs it with its own key (and names
    itself as issuer), the leaf an attacker mints.
    """
    if public_key is None:
        key = key if key is not None else new_key()
        public_key = key.public_key()
    name = subject if subject is not None else _name(common_name)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name if self_signed else issuer.cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
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
            critical=True,
        )
        .add_extension(_ski(public_key), critical=False)
    )
    if not self_signed:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    names: list[x509.GeneralName] = [x509.RFC822Name(e) for e in emails]
    names += [x509.UniformResourceIdentifier(u) for u in uris]
    names += [x509.DNSName(d) for d in dns]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    for extension, critical in extra:
        builder = builder.add_extension(extension, critical=critical)
    if self_signed:
        if key is None:
            raise ValueError("a self-signed leaf needs its private key")
        return Issued(builder.sign(key, _hash_for(key)), key)
    return Issued(builder.sign(issuer.key, _hash_for(issuer.key)), key)


@dataclass(frozen=True)
class Revoked:
    """One CRL entry."""

    serial: int
    revoked_at: datetime
    reason: x509.ReasonFlags | None = None
    invalidity_date: datetime | None = None


def make_crl(
    issuer: Issued,
    entries: Sequence[Revoked] = (),
    *,
    last_update: datetime = EPOCH - timedelta(days=1),
    next_update: datetime = EPOCH + 2 * YEAR,
    number: int = 1,
    signed_by: Any = None,
) -> x509.CertificateRevocationList:
    """A CRL in `issuer`'s name; `signed_by` another key makes the wrongly signed one."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(last_update)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    )
    for entry in entries:
        revoked = (
            x509.RevokedCertificateBuilder()
            .serial_number(entry.serial)
            .revocation_date(entry.revoked_at)
        )
        if entry.reason is not None:
            revoked = revoked.add_extension(x509.CRLReason(entry.reason), critical=False)
        if entry.invalidity_date is not None:
            revoked = revoked.add_extension(
                x509.InvalidityDate(entry.invalidity_date.replace(tzinfo=None)), critical=False
            )
        builder = builder.add_revoked_certificate(revoked.build())
    key = signed_by if signed_by is not None else issuer.key
    return builder.sign(key, _hash_for(key))


def crl_pem(crl: x509.CertificateRevocationList) -> bytes:
    return crl.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class OrgPKI:
    """The usual shape: an offline root, an issuing intermediate, a code-signing leaf."""

    root: Issued
    intermediate: Issued
    leaf: Issued


def org_pki(*, leaf_key: Any = None, leaf_public_key: Any = None, **leaf: Any) -> OrgPKI:
    root = make_ca("Example Root CA")
    intermediate = make_ca("Example Issuing CA", issuer=root, path_length=0)
    issued = make_leaf(intermediate, key=leaf_key, public_key=leaf_public_key, **leaf)
    return OrgPKI(root, intermediate, issued)


def certificate_bundle(
    payload: bytes,
    payload_type: str,
    signature: bytes,
    leaf: Issued,
    *,
    chain: Sequence[Issued] = (),
    tokens: Sequence[bytes] = (),
) -> bytes:
    """The bundle `dssesign attest --certificate` writes (v0.3, the leaf alone), or with `chain`
    a v0.2 bundle carrying the leaf and those intermediates; `tokens` are RFC 3161 responses."""
    import base64
    import json

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    material: dict[str, Any]
    if chain:
        media_type = "application/vnd.dev.sigstore.bundle+json;version=0.2"
        certificates = [{"rawBytes": b64(c.der)} for c in (leaf, *chain)]
        material = {"x509CertificateChain": {"certificates": certificates}}
    else:
        media_type = "application/vnd.dev.sigstore.bundle.v0.3+json"
        material = {"certificate": {"rawBytes": b64(leaf.der)}}
    material["tlogEntries"] = []
    if tokens:
        material["timestampVerificationData"] = {
            "rfc3161Timestamps": [{"signedTimestamp": b64(t)} for t in tokens]
        }
    dsse = {
        "payload": b64(payload),
        "payloadType": payload_type,
        "signatures": [{"keyid": "", "sig": b64(signature)}],
    }
    bundle = {"mediaType": media_type, "verificationMaterial": material, "dsseEnvelope": dsse}
    return json.dumps(bundle).encode()
