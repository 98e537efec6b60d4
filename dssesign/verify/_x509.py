"""A certificate bundle from an organisation PKI, judged offline at its signing time.

The chain is built by pyca/cryptography's X.509 verification (basic constraints, path length,
key usage, name constraints, validity) from the bundle's leaf to a root of the trust root's
`pki` section, through its listed intermediates (and a v0.1/v0.2 bundle's own). What pyca does
not do is ours: the codeSigning EKU, the trust root's windows and revocations of CAs and
identities, and the carried CRLs. Every failure has its own stable code.

The signing time is the bundle's earliest verified RFC 3161 time when it has one, else the
verification time: an expired leaf still verifies for a signature timestamped inside its
validity, and a CRL entry dated after the signing time does not void it (unless the key was
compromised before it).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import ExtendedKeyUsageOID

from .._internal.text import clip, escape_controls
from ..codes import Code
from ..core.keys import PublicKey
from ..errors import InputError, VerificationError
from ..trust.pki import unsupported_ca

if TYPE_CHECKING:
    from ..trust.pki import CertificateIdentity, OrganisationPKI
    from .bundles import ParsedBundle

__all__ = ["MAX_CHAIN_DEPTH", "CertificateSigner", "verify_certificate"]

#: Certificates between the leaf and the root (pyca's max_chain_depth): an organisation PKI
#: is two or three deep; a deeper chain is refused before it costs more signature checks.
MAX_CHAIN_DEPTH: Final = 4

#: pyca's failure text (third-party: an unmatched message is CERTIFICATE_UNTRUSTED, a refusal).
_PYCA_FAILURES: Final[tuple[tuple[str, Code], ...]] = (
    ("max depth", Code.CERTIFICATE_CHAIN_TOO_DEEP),
    ("name constraint", Code.CERTIFICATE_NAME_CONSTRAINT),
    ("not valid at validation time", Code.CERTIFICATE_EXPIRED),
    ("basicconstraints", Code.CERTIFICATE_CA_INVALID),
    ("pathlen", Code.CERTIFICATE_CA_INVALID),
    ("path length", Code.CERTIFICATE_CA_INVALID),
    ("keycertsign", Code.CERTIFICATE_CA_INVALID),
    ("key usage", Code.CERTIFICATE_CA_INVALID),
    ("forbidden public key algorithm", Code.CERTIFICATE_UNSUPPORTED),
    ("forbidden signature algorithm", Code.CERTIFICATE_UNSUPPORTED),
)


@dataclass(frozen=True)
class CertificateSigner:
    """Who made a verified certificate signature: counted like a keyless identity."""

    #: The name of the CA the matched identity rule names (shown where keyless shows the issuer).
    issuer: str
    #: The SAN or subject DN the rule matched.
    subject: str
    rules: tuple[CertificateIdentity, ...]
    spki_der: bytes
    signature: bytes
    signed_at: datetime


def _fail(code: Code, message: str) -> VerificationError:
    return VerificationError(code, f"bundle: {message}")


def _shown(name: x509.Name) -> str:
    return clip(escape_controls(name.rfc4514_string()), 160)


def verify_certificate(
    bundle: ParsedBundle,
    pki: OrganisationPKI,
    *,
    signed_at: datetime,
    allow_stale_crl: bool = False,
) -> CertificateSigner:
    """The identity that made this certificate bundle's signature, or VerificationError."""
    if not bundle.certificates:  # pragma: no cover - callers dispatch on certificates
        raise _fail(Code.BUNDLE_MALFORMED, "carries no certificate")
    try:
        return _verify(bundle, pki, signed_at=signed_at, allow_stale_crl=allow_stale_crl)
    except VerificationError:
        raise
    except _UNREADABLE as exc:
        # A certificate anyone can make (no CA key needed): an unknown key algorithm, an
        # off-curve point, an unparseable name, a duplicate extension. Refused, never INTERNAL.
        raise _fail(
            Code.CERTIFICATE_UNSUPPORTED,
            f"a certificate cannot be read ({type(exc).__name__}: "
            f"{clip(escape_controls(' '.join(str(exc).split())), 160)})",
        ) from None


def _verify(
    bundle: ParsedBundle, pki: OrganisationPKI, *, signed_at: datetime, allow_stale_crl: bool
) -> CertificateSigner:
    try:
        certs = [x509.load_der_x509_certificate(der) for der in bundle.certificates]
    except ValueError as exc:
        raise _fail(
            Code.BUNDLE_MALFORMED, f"a certificate is not DER X.509 ({clip(str(exc), 120)})"
        ) from None
    leaf, extra = certs[0], certs[1:]
    spki = leaf.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    _check_signature(bundle, spki)
    if leaf.issuer == leaf.subject:
        raise _fail(
            Code.CERTIFICATE_SELF_SIGNED,
            f"the signing certificate {_shown(leaf.subject)} is self-signed (issuer = subject); "
            "it must be issued by an organisation CA",
        )
    for cert in extra:
        _ = (cert.subject, cert.issuer)  # every carried certificate must read, used or not
        problem = unsupported_ca(cert)
        if problem is not None:
            raise _fail(Code.CERTIFICATE_UNSUPPORTED, f"CA {_shown(cert.subject)}: {problem}")
    chain = _build_chain(leaf, [*pki.intermediates, *extra], pki, signed_at)
    _check_usage(leaf, chain[1:])
    names = _check_authorities(chain[1:], pki, signed_at)
    _check_crls(chain, pki, signed_at, allow_stale_crl=allow_stale_crl)
    return _identity(leaf, spki, bundle.signature, names, pki=pki, signed_at=signed_at)


#: What reading a hostile certificate's fields can raise besides a VerificationError.
_UNREADABLE: Final = (
    ValueError,
    TypeError,
    UnsupportedAlgorithm,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
)


def _check_authorities(
    cas: list[x509.Certificate], pki: OrganisationPKI, signed_at: datetime
) -> set[str]:
    """Every CA of the chain is a listed CA (by name and key: a renewed or carried certificate
    of a listed CA is that CA), inside a window and revoked nowhere at the signing time; the
    names of the listed CAs the chain runs through."""
    names: set[str] = set()
    for cert in cas:
        listed = pki.listed(cert)
        if not listed:
            raise _fail(
                Code.CERTIFICATE_UNTRUSTED,
                f"CA {_shown(cert.subject)}, carried in the bundle, is not a CA of the trust "
                "root (intermediates are trusted only when the trust root lists them: "
                "trust-root add-ca)",
            )
        revoked = next((a for a in listed if a.revoked_by(signed_at)), None)
        der = cert.public_bytes(Encoding.DER)
        same = [a for a in listed if a.der == der] or list(listed)
        if revoked is not None or not any(a.covers(signed_at) for a in same):
            authority = revoked or same[0]
            state = "revoked" if revoked is not None else "outside its window"
            raise _fail(
                Code.CA_NOT_TRUSTED_AT_TIME,
                f"CA {authority.name!r} is {state} in the trust root at the signing time "
                f"{_when(signed_at)}",
            )
        names.update(a.name for a in listed)
    return names


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_signature(bundle: ParsedBundle, spki: bytes) -> None:
    """The bundle's signature must verify under the certificate's key (before any chain work)."""
    try:
        key = PublicKey.from_der(spki, source="bundle certificate")
    except InputError as exc:
        raise _fail(Code.CERTIFICATE_UNSUPPORTED, f"the certificate's key: {exc}") from None
    if bundle.envelope is None:  # pragma: no cover - message bundles are judged elsewhere
        raise _fail(Code.BUNDLE_PAYLOAD_MISMATCH, "a certificate bundle must hold a DSSE envelope")
    if not key.verify(bundle.signature, bundle.envelope.pae()):
        raise _fail(
            Code.CERTIFICATE_KEY_MISMATCH,
            "the signature does not verify under the signing certificate's key",
        )


def _build_chain(
    leaf: x509.Certificate,
    intermediates: list[x509.Certificate],
    pki: OrganisationPKI,
    signed_at: datetime,
) -> list[x509.Certificate]:
    from cryptography.x509 import verification as v  # noqa: PLC0415 - only for PKI bundles

    if not pki.roots:
        raise _fail(Code.CERTIFICATE_UNTRUSTED, "the trust root's pki section lists no root CA")
    # The EKU is checked here, with its own code; SAN may be absent (identities by subject DN).
    ca_policy = v.ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.ExtendedKeyUsage, v.Criticality.AGNOSTIC, None
    )
    ee_policy = (
        v.ExtensionPolicy.webpki_defaults_ee()
        .may_be_present(x509.ExtendedKeyUsage, v.Criticality.AGNOSTIC, None)
        .may_be_present(x509.SubjectAlternativeName, v.Criticality.AGNOSTIC, None)
    )
    verifier = (
        v.PolicyBuilder()
        .store(v.Store(list(pki.roots)))
        .time(signed_at)
        .max_chain_depth(MAX_CHAIN_DEPTH)
        .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
        .build_client_verifier()
    )
    try:
        return list(verifier.verify(leaf, intermediates).chain)
    except (v.VerificationError, x509.UnsupportedGeneralNameType, ValueError) as exc:
        text = " ".join(str(exc).split())
        lowered = text.lower()
        code = next((c for needle, c in _PYCA_FAILURES if needle in lowered), None)
        if code is Code.CERTIFICATE_EXPIRED and not (
            leaf.not_valid_before_utc <= signed_at <= leaf.not_valid_after_utc
        ):
            message = (
                f"the signing certificate is not valid at the signing time {_when(signed_at)} "
                f"(valid {_when(leaf.not_valid_before_utc)} to {_when(leaf.not_valid_after_utc)})"
            )
        else:
            code = code or Code.CERTIFICATE_UNTRUSTED
            if code is Code.CERTIFICATE_CHAIN_TOO_DEEP:
                text += f" (more than {MAX_CHAIN_DEPTH} CAs between leaf and root, or a loop)"
            message = (
                f"the signing certificate {_shown(leaf.subject)} (issuer {_shown(leaf.issuer)}) "
                f"does not chain to an organisation CA of the trust root at {_when(signed_at)}: "
                f"{clip(escape_controls(text), 240)}"
            )
        raise _fail(code, message) from None


def _check_usage(leaf: x509.Certificate, cas: list[x509.Certificate]) -> None:
    """The leaf is for code signing; a CA that limits its EKU allows code signing too (a TLS
    issuing CA under the same root issues no signer)."""
    eku = _eku(leaf)
    if eku is None or ExtendedKeyUsageOID.CODE_SIGNING not in eku:
        raise _fail(
            Code.CERTIFICATE_USAGE_INVALID,
            "the signing certificate's extended key usage does not include codeSigning",
        )
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and not usage.digital_signature:
        raise _fail(
            Code.CERTIFICATE_USAGE_INVALID,
            "the signing certificate's key usage does not include digitalSignature",
        )
    for cert in cas:
        limited = _eku(cert)
        if limited is not None and not (
            ExtendedKeyUsageOID.CODE_SIGNING in limited
            or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in limited
        ):
            raise _fail(
                Code.CERTIFICATE_USAGE_INVALID,
                f"CA {_shown(cert.subject)} limits its extended key usage to purposes other "
                "than codeSigning",
            )


def _eku(cert: x509.Certificate) -> x509.ExtendedKeyUsage | None:
    try:
        return cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None


#: Revocation reasons that say the key itself was compromised: every signature made since
#: the invalidity date (or the revocation, if earlier; or ever, without one) is refused.
_COMPROMISE: Final = frozenset(
    {
        x509.ReasonFlags.key_compromise,
        x509.ReasonFlags.ca_compromise,
        x509.ReasonFlags.aa_compromise,
    }
)


def _check_crls(
    chain: list[x509.Certificate],
    pki: OrganisationPKI,
    signed_at: datetime,
    *,
    allow_stale_crl: bool,
) -> None:
    """Each certificate below the anchor against the CRL its issuer's key signed, if carried
    (found by the issuer's name and key, so a renewed CA certificate shares its CRL)."""
    for cert, issuer in itertools.pairwise(chain):
        crl = pki.crl_for(issuer)
        if crl is None:
            continue
        who = _shown(issuer.subject)
        next_update = crl.next_update_utc
        if next_update is not None and next_update < signed_at and not allow_stale_crl:
            raise _fail(
                Code.CRL_STALE,
                f"the CRL of CA {who} was due for renewal at {_when(next_update)}, before the "
                f"signing time {_when(signed_at)}: carry a newer one (trust-root add-crl) or "
                "accept it with --allow-stale-crl",
            )
        entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
        if entry is None:
            continue
        revoked = entry.revocation_date_utc
        reason = _reason(entry)
        shown = f"certificate {_shown(cert.subject)} (serial {cert.serial_number:x})"
        if reason in _COMPROMISE:
            since = _invalidity(entry)
            if since is None or min(since, revoked) <= signed_at:
                after = f" from {_when(min(since, revoked))}" if since is not None else ""
                raise _fail(
                    Code.CERTIFICATE_REVOKED,
                    f"{shown} is on the CRL of CA {who} for {reason.name}{after}: every "
                    "signature made with it since is refused",
                )
        elif revoked <= signed_at:
            raise _fail(
                Code.CERTIFICATE_REVOKED,
                f"{shown} was revoked by CA {who} at {_when(revoked)}, at or before the signing "
                f"time {_when(signed_at)}",
            )


def _reason(entry: x509.RevokedCertificate) -> x509.ReasonFlags | None:
    try:
        return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return None
    except _UNREADABLE:  # an unreadable reason: judged as a compromise, the strictest
        return x509.ReasonFlags.key_compromise


def _invalidity(entry: x509.RevokedCertificate) -> datetime | None:
    try:
        value = entry.extensions.get_extension_for_class(x509.InvalidityDate).value
    except x509.ExtensionNotFound:
        return None
    except _UNREADABLE:  # unreadable: no date, so every signature is refused
        return None
    return value.invalidity_date_utc


def _identity(
    leaf: x509.Certificate,
    spki: bytes,
    signature: bytes,
    chain_cas: set[str],
    *,
    pki: OrganisationPKI,
    signed_at: datetime,
) -> CertificateSigner:
    matched: list[tuple[CertificateIdentity, str]] = []
    revoked: list[CertificateIdentity] = []
    for rule in pki.identities:
        if rule.ca not in chain_cas:
            continue
        subject = rule.matches(leaf)
        if subject is None:
            continue
        if rule.revoked_by(signed_at):
            revoked.append(rule)
        else:
            matched.append((rule, subject))
    if not matched:
        if revoked:
            raise _fail(
                Code.IDENTITY_REVOKED,
                f"certificate identity {revoked[0].describe()!r} was revoked in the trust root "
                f"at or before the signing time {_when(signed_at)}",
            )
        raise _fail(
            Code.IDENTITY_MISMATCH,
            f"the signing certificate {_shown(leaf.subject)} chains through "
            f"{', '.join(sorted(chain_cas))} but matches none of the trust root's "
            f"{len(pki.identities)} certificate identity rule(s)",
        )
    return CertificateSigner(
        issuer=matched[0][0].ca,
        subject=matched[0][1],
        rules=tuple(rule for rule, _ in matched),
        spki_der=spki,
        signature=signature,
        signed_at=signed_at,
    )
