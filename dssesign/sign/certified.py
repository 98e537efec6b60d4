"""Signing with an organisation certificate: a key's X.509 leaf, checked, carried in its bundle.

An organisation PKI names a signer by a code-signing certificate its CA issued for the signer's
key (software, PKCS#11, KMS or Vault). `certify` checks the certificate against the key before
anything is signed and returns a `CertifiedSigner`: the same signer, carrying the certificate.
`bundles.bundles_for` then writes that signature's bundle with the leaf in
`verificationMaterial.certificate` in place of the public-key hint. The envelope is unchanged.

Checks (each refusal names the certificate and what is wrong):

- exactly one PEM certificate, no larger than `MAX_PEM_BYTES`;
- its public key (SubjectPublicKeyInfo) is the signer's key;
- BasicConstraints cA is not true; KeyUsage, if present, has digitalSignature; ExtendedKeyUsage
  is present and lists codeSigning;
- it is valid now (notBefore <= now <= notAfter);
- with a chain (intermediates, the leaf's issuer first, at most `MAX_CHAIN_CERTIFICATES`): the
  leaf is directly issued by the chain's first certificate and each chain certificate by the
  next. The chain only serves this check: at verification the intermediates come from the trust
  root, never from the bundle.

Nothing here trusts the certificate: the verifier judges the chain against its trust root.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from ..core.keys import Algorithm, PublicKey, keyid_of_spki
from ..errors import ConfigError, InputError
from .signer import Signer

__all__ = [
    "MAX_CHAIN_CERTIFICATES",
    "MAX_PEM_BYTES",
    "CertifiedSigner",
    "certificate_spki",
    "certify",
    "check_leaf",
    "load_chain",
    "load_leaf",
]

#: Largest PEM file read for a leaf or a chain.
MAX_PEM_BYTES: Final = 64 * 1024
#: Most certificates a chain file may hold.
MAX_CHAIN_CERTIFICATES: Final = 10
_PEM_BEGIN: Final = b"-----BEGIN "
_CODE_SIGNING: Final = ExtendedKeyUsageOID.CODE_SIGNING


class CertifiedSigner:
    """A signer whose key carries a checked X.509 certificate; built by `certify`.

    Signs exactly as the inner signer does (the envelope and its keyid are unchanged); only its
    bundle differs. What a signer is does not change while it signs, so its attributes are
    read from the inner signer once, here: the signing path is one delegated call.
    """

    def __init__(
        self,
        inner: Signer,
        certificate: x509.Certificate,
        chain: Sequence[x509.Certificate] = (),
    ) -> None:
        self.inner: Signer = inner
        #: The leaf: its public key is `public_key` (checked by `certify`).
        self.certificate: x509.Certificate = certificate
        #: The intermediates the leaf was checked against (never written to a bundle).
        self.chain: tuple[x509.Certificate, ...] = tuple(chain)
        #: DER of the leaf, as the bundle carries it.
        self.certificate_der: bytes = certificate.public_bytes(serialization.Encoding.DER)
        self.keyid: str = inner.keyid
        self.algorithm: Algorithm = inner.algorithm
        self.public_key: PublicKey = inner.public_key
        reference = getattr(inner, "reference", None)
        self.reference: str = reference if isinstance(reference, str) else type(inner).__name__
        self.in_process: bool = getattr(inner, "in_process", False) is True
        self.exportable: bool = getattr(inner, "exportable", False) is True
        self._sign = inner.sign

    def sign(self, data: bytes) -> bytes:
        """The inner signer's signature over `data`."""
        return self._sign(data)

    @property
    def fingerprint(self) -> str:
        """Lowercase hex SHA-256 of the leaf's DER."""
        return hashlib.sha256(self.certificate_der).hexdigest()

    @property
    def subject(self) -> str:
        """The leaf's subject DN (RFC 4514); may hold any character: escape it before printing."""
        return self.certificate.subject.rfc4514_string()

    def __repr__(self) -> str:
        return f"CertifiedSigner({self.reference!r}, keyid={self.keyid[:16]}…, {self.subject!r})"


def load_leaf(data: bytes, *, source: str = "certificate") -> x509.Certificate:
    """Exactly one PEM certificate from `data`; InputError naming `source` otherwise."""
    certificates = _load_pem(data, source)
    if len(certificates) != 1:
        raise InputError(
            f"{source}: holds {len(certificates)} certificates, expected exactly one (the "
            "signing certificate; give intermediates with --certificate-chain)"
        )
    return certificates[0]


def load_chain(data: bytes, *, source: str = "certificate chain") -> tuple[x509.Certificate, ...]:
    """One to `MAX_CHAIN_CERTIFICATES` PEM certificates from `data`, in file order."""
    certificates = _load_pem(data, source)
    if len(certificates) > MAX_CHAIN_CERTIFICATES:
        raise InputError(
            f"{source}: holds {len(certificates)} certificates, more than the limit of "
            f"{MAX_CHAIN_CERTIFICATES}"
        )
    return tuple(certificates)


def _load_pem(data: bytes, source: str) -> list[x509.Certificate]:
    if len(data) > MAX_PEM_BYTES:
        raise InputError(f"{source}: larger than the limit of {MAX_PEM_BYTES} bytes")
    blocks = data.count(_PEM_BEGIN)
    if not blocks:
        raise InputError(f"{source}: not a PEM certificate (no -----BEGIN CERTIFICATE----- block)")
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise InputError(f"{source}: not a readable PEM certificate") from None
    if len(certificates) != blocks:
        # pyca skips blocks of other types; a private key has no business next to a certificate.
        raise InputError(f"{source}: holds a PEM block that is not a certificate")
    return certificates


def certificate_spki(certificate: x509.Certificate, *, source: str = "certificate") -> bytes:
    """The DER SubjectPublicKeyInfo of the certificate's key (as `PublicKey.spki_der` writes it)."""
    try:
        return certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InputError(f"{source}: unsupported or unreadable public key ({exc})") from None


def check_leaf(
    leaf: x509.Certificate,
    chain: Sequence[x509.Certificate] = (),
    *,
    now: datetime | None = None,
    source: str = "certificate",
    chain_source: str = "certificate chain",
) -> None:
    """Every check of the leaf that needs no key: usage, validity now, and issuance by `chain`.

    ConfigError naming `source` (or `chain_source`) and what is wrong.
    """
    moment = now if now is not None else datetime.now(UTC)
    if moment.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    try:
        extensions = leaf.extensions
        _check_usage(extensions, source)
        self_issued = leaf.issuer == leaf.subject
    except ConfigError:
        raise
    except Exception as exc:  # duplicate or malformed extensions or names: refused, named
        raise InputError(f"{source}: unreadable extensions or names ({exc})") from None
    if self_issued:
        # A verifier refuses a self-signed leaf (CERTIFICATE_SELF_SIGNED): never sign with one.
        raise ConfigError(
            f"{source}: is self-signed (issuer = subject); a signing certificate must be issued "
            "by the organisation CA"
        )
    not_before, not_after = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    if moment < not_before:
        raise ConfigError(
            f"{source}: not valid yet (valid from {_when(not_before)}; now is {_when(moment)})"
        )
    if moment > not_after:
        raise ConfigError(f"{source}: expired on {_when(not_after)} (now is {_when(moment)})")
    if chain:
        _check_issued(leaf, chain, source, chain_source)


def _check_usage(extensions: x509.Extensions, source: str) -> None:
    try:
        constraints = extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is not None and constraints.ca:
        raise ConfigError(
            f"{source}: is a CA certificate (BasicConstraints cA=TRUE), not a signing certificate"
        )
    try:
        usage = extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and not usage.digital_signature:
        raise ConfigError(f"{source}: its KeyUsage does not allow digitalSignature")
    try:
        extended = extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        raise ConfigError(
            f"{source}: has no ExtendedKeyUsage; a signing certificate needs codeSigning "
            f"({_CODE_SIGNING.dotted_string})"
        ) from None
    if _CODE_SIGNING not in extended:
        listed = ", ".join(oid.dotted_string for oid in extended) or "nothing"
        raise ConfigError(
            f"{source}: its ExtendedKeyUsage ({listed}) does not allow codeSigning "
            f"({_CODE_SIGNING.dotted_string})"
        )


def _check_issued(
    leaf: x509.Certificate,
    chain: Sequence[x509.Certificate],
    source: str,
    chain_source: str,
) -> None:
    if len(chain) > MAX_CHAIN_CERTIFICATES:
        raise InputError(
            f"{chain_source}: {len(chain)} certificates, more than the limit of "
            f"{MAX_CHAIN_CERTIFICATES}"
        )
    problem = _issuance_problem(leaf, chain[0])
    if problem:
        raise ConfigError(
            f"{source}: not issued by the first certificate of {chain_source} "
            f"({_name(chain[0])}): {problem}"
        )
    for position, (child, parent) in enumerate(itertools.pairwise(chain), start=1):
        problem = _issuance_problem(child, parent)
        if problem:
            raise ConfigError(
                f"{chain_source}: certificate {position} ({_name(child)}) is not issued by "
                f"certificate {position + 1} ({_name(parent)}): {problem}"
            )


def _issuance_problem(child: x509.Certificate, parent: x509.Certificate) -> str | None:
    """Why `parent` did not directly sign `child`; None if it did."""
    try:
        child.verify_directly_issued_by(parent)
    except InvalidSignature:
        return "the signature does not verify with the issuer's key"
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        return str(exc).rstrip(".") or type(exc).__name__
    return None


def certify(
    signer: Signer,
    leaf: bytes | x509.Certificate,
    chain: bytes | Sequence[x509.Certificate] | None = None,
    *,
    now: datetime | None = None,
    source: str = "certificate",
    chain_source: str = "certificate chain",
) -> CertifiedSigner:
    """`signer` carrying the certificate `leaf` (PEM bytes or parsed), after every check above.

    `chain`: the intermediates (PEM bytes or parsed, the leaf's issuer first), used only to
    check the leaf's issuance. `now` (timezone-aware) is when the leaf must be valid (default:
    the current time). `source` and `chain_source` name the inputs in messages (the CLI gives
    ``--certificate FILE``).

    Raises ConfigError (a keyless signer, a key mismatch, a certificate not fit for code
    signing, outside its validity, not issued by the chain) or InputError (unreadable input),
    before anything is signed.
    """
    if callable(getattr(signer, "bundle_for", None)):
        # As bundles.is_keyless sees it: a Sigstore keyless signer, whose key is ephemeral.
        raise ConfigError(
            f"{source}: a keyless signer takes no certificate (Fulcio issues its own)"
        )
    if isinstance(signer, CertifiedSigner):
        raise ConfigError(f"{source}: the key {signer.keyid[:16]} already carries a certificate")
    certificate = load_leaf(leaf, source=source) if isinstance(leaf, bytes) else leaf
    if chain is None:
        intermediates: tuple[x509.Certificate, ...] = ()
    elif isinstance(chain, bytes):
        intermediates = load_chain(chain, source=chain_source)
    else:
        intermediates = tuple(chain)
    spki = certificate_spki(certificate, source=source)
    if spki != signer.public_key.spki_der:
        raise ConfigError(
            f"{source}: its public key (keyid {keyid_of_spki(spki)[:16]}) is not the signer's "
            f"key {signer.keyid[:16]} ({_reference(signer)})"
        )
    check_leaf(certificate, intermediates, now=now, source=source, chain_source=chain_source)
    return CertifiedSigner(signer, certificate, intermediates)


def _reference(signer: Signer) -> str:
    reference = getattr(signer, "reference", None)
    return reference if isinstance(reference, str) else type(signer).__name__


def _name(certificate: x509.Certificate) -> str:
    try:
        return certificate.subject.rfc4514_string()
    except ValueError:
        return "an unreadable subject"


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
