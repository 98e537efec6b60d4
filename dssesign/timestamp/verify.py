"""Verify an RFC 3161 timestamp of one signature against the trust root's TSAs, offline.

Every check is judged at the token's own time (genTime), never at "now": the TSA certificate's
validity, its chain, the TSA's trust-root window and revocation. "Now" (or `--at`) only bounds
the token time from above. Each failure has its own code (see docs/verification.md).

The steps: rfc3161-client parses the TimeStampResp as strict DER
(TIMESTAMP_INVALID); the imprint and the CMS digests must be SHA-256/384/512
(TIMESTAMP_WEAK_HASH) and the imprint the hash of exactly the signature's bytes
(TIMESTAMP_MISMATCH); the one SignerInfo names the signer certificate, embedded or a trusted
TSA's leaf; our trust checks (pyca chain at the token's time, RFC 3161's critical
timeStamping-only EKU, the trust-root window and revocation: TIMESTAMP_UNTRUSTED); then the CMS
signature, by rfc3161-client's verifier (OpenSSL's PKCS7_verify: TIMESTAMP_INVALID), never by
our own reading of the DER; then what PKCS7_verify leaves unchecked, read with asn1crypto
(`_signer_info`): the ESS signingCertificate(V2) names that signer certificate and the
signatureAlgorithm fits its key and digest (TIMESTAMP_INVALID, or TIMESTAMP_WEAK_HASH); last
the token time against now (TIMESTAMP_IN_FUTURE).

Chain validation is cached per (authority, signer certificate) and rfc3161-client's verifier
per authority: a TSA signs thousands of tokens with one certificate. The verifier builds an
OpenSSL store on every call, so a warm verify costs that plus a parse and a hash.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Final

import rfc3161_client
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
)
from cryptography.x509.verification import VerificationError as ChainError

from .._internal.text import escape_controls
from ..codes import Code
from ..errors import VerificationError
from ._signer_info import check_signer_info
from .authority import MAX_CHAIN_CERTIFICATES, TimestampAuthority

__all__ = [
    "MAX_TIMESTAMPS",
    "MAX_TOKEN_BYTES",
    "VerifiedTime",
    "verify_token",
    "verify_tokens",
]

#: Size of one DER TimeStampResp (tokens are 1-8 KiB; a full chain stays far below).
MAX_TOKEN_BYTES: Final = 64 * 1024
#: Timestamps accepted on one signature.
MAX_TIMESTAMPS: Final = 32
#: Message-imprint hashes accepted, by OID: SHA-1 is refused (collisions are practical).
_IMPRINT_HASHES: Final = {
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
}
#: Digests the CMS SignedData may name (its digestAlgorithms): the same three. OpenSSL accepts a
#: SHA-1 SignerInfo digest and requires the SignerInfo's digest to be listed here, so refusing
#: SHA-1 here refuses it there.
_CMS_DIGESTS: Final = frozenset(_IMPRINT_HASHES)
_GRANTED: Final = rfc3161_client.PKIStatus.GRANTED
_SIGNED_DATA_VERSION: Final = 3
_SIGNER_INFO_VERSION: Final = 1
_CACHE_SIZE: Final = 1024


@dataclass(frozen=True)
class VerifiedTime:
    """A token that verified: its time, the trusted TSA that vouches for it, its serial."""

    time: datetime
    authority: str
    serial_number: int
    #: The message imprint's hash ("sha256", "sha384" or "sha512").
    hash_algorithm: str


def _fail(code: Code, message: str) -> VerificationError:
    return VerificationError(code, f"timestamp: {message}")


def _is_rust_panic(exc: BaseException) -> bool:
    # A panic in rfc3161-client's Rust parser surfaces as pyo3's PanicException, which is a
    # BaseException: hostile bytes must be refused, not crash the verifier.
    return type(exc).__name__ == "PanicException"


def _eku(policy: Policy, certificate: x509.Certificate, eku: x509.ExtendedKeyUsage) -> None:
    if list(eku) != [ExtendedKeyUsageOID.TIME_STAMPING]:
        raise ValueError("the EKU must be timeStamping only (RFC 3161 2.3)")


def _key_usage(policy: Policy, cert: x509.Certificate, usage: x509.KeyUsage | None) -> None:
    if usage is not None and not (usage.digital_signature or usage.content_commitment):
        raise ValueError("keyUsage allows neither digitalSignature nor nonRepudiation")


def _not_ca(policy: Policy, cert: x509.Certificate, basic: x509.BasicConstraints | None) -> None:
    if basic is not None and basic.ca:
        raise ValueError("a CA certificate cannot sign timestamps")


def _is_ca(policy: Policy, cert: x509.Certificate, basic: x509.BasicConstraints) -> None:
    if not basic.ca:
        raise ValueError("an issuer without basicConstraints cA")


def _signs_certificates(
    policy: Policy, cert: x509.Certificate, usage: x509.KeyUsage | None
) -> None:
    if usage is not None and not usage.key_cert_sign:
        raise ValueError("an issuer whose keyUsage lacks keyCertSign")


def _ca_eku(policy: Policy, cert: x509.Certificate, eku: x509.ExtendedKeyUsage | None) -> None:
    if eku is not None and not {
        ExtendedKeyUsageOID.TIME_STAMPING,
        ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
    }.intersection(eku):
        raise ValueError("an issuer whose extendedKeyUsage excludes timeStamping")


#: The TSA certificate's profile: RFC 3161's critical timeStamping-only EKU, no CA.
_TSA_POLICY: Final = (
    ExtensionPolicy.permit_all()
    .require_present(x509.ExtendedKeyUsage, Criticality.CRITICAL, _eku)
    .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, _key_usage)
    .may_be_present(x509.BasicConstraints, Criticality.AGNOSTIC, _not_ca)
)
#: CAs above it: cA asserted (path lengths are enforced by the path builder), keyCertSign, and
#: an EKU, if any, that allows timeStamping. Not the WebPKI CA defaults: those demand the
#: verifier's EKU (clientAuth) on any CA that has one, and TSA CAs carry timeStamping (as
#: Sigstore's do).
_CA_POLICY: Final = (
    ExtensionPolicy.permit_all()
    .require_present(x509.BasicConstraints, Criticality.AGNOSTIC, _is_ca)
    .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, _signs_certificates)
    .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _ca_eku)
)

#: (authority chain key, signer certificate DER) -> the window (earliest, latest) in which the
#: validated path is valid: outside it the chain is built again at the token's time.
_WINDOWS: dict[tuple[bytes, bytes], tuple[datetime, datetime]] = {}
_WINDOWS_LOCK: Final = threading.Lock()
#: (authority chain key, token embeds its signer) -> rfc3161-client's verifier for that TSA
#: (the verifier object, never a verdict).
_VERIFIERS: dict[tuple[bytes, bool], rfc3161_client.Verifier] = {}
_VERIFIERS_LOCK: Final = threading.Lock()


@dataclass(frozen=True)
class _Token:
    """What the verifier reads of a parsed TimeStampResp (all through rfc3161-client)."""

    response: rfc3161_client.TimeStampResponse
    time: datetime
    serial: int
    imprint_algorithm: str
    imprint: bytes
    #: The SignedData's version and digestAlgorithms (dotted OIDs).
    version: int
    digests: frozenset[str]
    #: Each SignerInfo's version and issuerAndSerialNumber.
    signers: tuple[tuple[int, x509.Name, int], ...]
    #: Certificates embedded in the SignedData (DER).
    certificates: tuple[bytes, ...]


def _parse(token_der: bytes) -> _Token:
    """The token read by rfc3161-client (strict DER), granted; TIMESTAMP_INVALID otherwise."""
    try:
        response = rfc3161_client.decode_timestamp_response(token_der)
        if response.status != _GRANTED:
            status = escape_controls("; ".join(response.status_string))[:200]
            raise _fail(Code.TIMESTAMP_INVALID, f"status {response.status}, not granted {status}")
        info, signed = response.tst_info, response.signed_data
        imprint = info.message_imprint
        return _Token(
            response=response,
            time=info.gen_time,
            serial=info.serial_number,
            imprint_algorithm=imprint.hash_algorithm.dotted_string,
            imprint=imprint.message,
            version=signed.version,
            digests=frozenset(oid.dotted_string for oid in signed.digest_algorithms),
            signers=tuple((si.version, si.issuer, si.serial_number) for si in signed.signer_infos),
            certificates=tuple(signed.certificates),
        )
    except VerificationError:
        raise
    except BaseException as exc:
        if not isinstance(exc, Exception) and not _is_rust_panic(exc):
            raise
        raise _fail(Code.TIMESTAMP_INVALID, f"not a strict DER TimeStampResp ({exc})") from None


@lru_cache(maxsize=256)
def _certificate(der: bytes) -> x509.Certificate:
    return x509.load_der_x509_certificate(der)


def _signer(
    token: _Token, authorities: Sequence[TimestampAuthority]
) -> tuple[x509.Certificate, bytes]:
    """The certificate the SignerInfo names: embedded in the token, or a trusted TSA's leaf."""
    if len(token.signers) != 1:
        raise _fail(
            Code.TIMESTAMP_INVALID, f"expected exactly one SignerInfo, found {len(token.signers)}"
        )
    version, issuer, serial = token.signers[0]
    # RFC 5652: a TSTInfo's SignedData is version 3, a SignerInfo naming its signer by issuer
    # and serial version 1. No signature covers either number: refusing others keeps a token
    # from having altered twins that verify alike.
    if token.version != _SIGNED_DATA_VERSION or version != _SIGNER_INFO_VERSION:
        raise _fail(
            Code.TIMESTAMP_INVALID,
            f"SignedData version {token.version} and SignerInfo version {version}, "
            f"not {_SIGNED_DATA_VERSION} and {_SIGNER_INFO_VERSION}",
        )
    named = []
    for der in token.certificates:
        try:  # attacker-controlled DER: cryptography raises several non-ValueError types
            certificate = _certificate(der)
            if certificate.serial_number == serial and certificate.issuer == issuer:
                named.append((certificate, der))
        except Exception as exc:
            raise _fail(
                Code.TIMESTAMP_INVALID,
                f"an embedded certificate is unreadable ({type(exc).__name__}: {exc})",
            ) from None
    if len(named) == 1:
        return named[0]
    if named:  # which one rfc3161-client and OpenSSL would pick is theirs to say: refused
        raise _fail(Code.TIMESTAMP_INVALID, "two embedded certificates name the signer")
    if token.certificates:  # certReq: the TSA embeds its own certificate; a token without it
        raise _fail(  # was altered (or is not the one requested)
            Code.TIMESTAMP_INVALID, "the embedded certificates do not include the signer's"
        )
    for authority in authorities:
        leaf = authority.certificate
        if leaf.serial_number == serial and leaf.issuer == issuer:
            return leaf, authority.chain_der[0]
    raise _fail(
        Code.TIMESTAMP_UNTRUSTED,
        "signed by a certificate that is neither in the token nor any trusted TSA's",
    )


def _explicit_checks(certificate: x509.Certificate, at: datetime) -> None:
    """The TSA-certificate rules, checked first so the error says which one failed."""
    start, end = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    if not start <= at <= end:
        raise ValueError(
            f"the TSA certificate is not valid at the token's time {at.isoformat()} "
            f"(valid {start.isoformat()} to {end.isoformat()})"
        )
    try:
        eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        raise ValueError("the TSA certificate has no extendedKeyUsage") from None
    if not eku.critical:
        raise ValueError("the TSA certificate's timeStamping EKU is not critical")
    _eku(None, certificate, eku.value)  # type: ignore[arg-type]


def _validate_chain(
    authority: TimestampAuthority, certificate: x509.Certificate, der: bytes, at: datetime
) -> None:
    """The signer certificate chains to `authority`'s anchor at `at` (cached per pair)."""
    key = (authority.cache_key, der)
    window = _WINDOWS.get(key)
    if window is not None and window[0] <= at <= window[1]:
        return
    try:
        _explicit_checks(certificate, at)
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as exc:
        raise ValueError(str(exc)) from None
    intermediates = [
        c for c, d in zip(authority.chain[:-1], authority.chain_der, strict=False) if d != der
    ]
    verifier = (
        PolicyBuilder()
        .store(Store([authority.chain[-1]]))
        .time(at)
        .max_chain_depth(MAX_CHAIN_CERTIFICATES)
        .extension_policies(ca_policy=_CA_POLICY, ee_policy=_TSA_POLICY)
        .build_client_verifier()
    )
    try:
        path = verifier.verify(certificate, intermediates).chain
    except ChainError as exc:
        raise ValueError(f"the TSA certificate does not chain to it ({exc})") from None
    window = (
        max(c.not_valid_before_utc for c in path),
        min(c.not_valid_after_utc for c in path),
    )
    with _WINDOWS_LOCK:
        if len(_WINDOWS) >= _CACHE_SIZE:
            _WINDOWS.pop(next(iter(_WINDOWS)))
        _WINDOWS[key] = window


def _related(authority: TimestampAuthority, certificate: x509.Certificate, der: bytes) -> bool:
    """Could `authority` vouch for this certificate at all (its leaf, or issued in its chain)?"""
    try:
        return der == authority.chain_der[0] or any(
            certificate.issuer == c.subject for c in authority.chain
        )
    except ValueError:  # an issuer Name cryptography cannot read: no TSA vouches for it
        return False


def _trusted_authority(
    certificate: x509.Certificate,
    der: bytes,
    authorities: Sequence[TimestampAuthority],
    at: datetime,
) -> TimestampAuthority:
    reasons = []
    # A certificate that is some authority's own leaf is vouched for by those authorities only:
    # another TSA under the same CA must not revive a revoked or windowed-out one. Any of them
    # refusing at this time refuses the token.
    owners = [a for a in authorities if a.chain_der[0] == der]
    for authority in owners:
        if not authority.covers(at) or authority.revoked_by(at):
            raise _fail(
                Code.TIMESTAMP_UNTRUSTED,
                f"TSA {authority.name!r} (whose certificate signed the token) is revoked or "
                f"outside its trust-root window at the token's time {at.isoformat()}",
            )
    for authority in owners or authorities:
        if not _related(authority, certificate, der):
            continue
        try:
            _validate_chain(authority, certificate, der, at)
        except ValueError as exc:
            reasons.append(f"TSA {authority.name!r}: {exc}")
            continue
        if not authority.covers(at):
            reasons.append(
                f"TSA {authority.name!r} is trusted only from {authority.valid_from} until "
                f"{authority.valid_until}, not at the token's time {at.isoformat()}"
            )
        elif authority.revoked_by(at):
            reasons.append(
                f"TSA {authority.name!r} was revoked at {authority.revoked_at}, at or before "
                f"the token's time {at.isoformat()}"
            )
        else:
            return authority
    if not reasons:
        try:
            names = f"{certificate.subject.rfc4514_string()[:120]!r} (issued by "
            names += f"{certificate.issuer.rfc4514_string()[:120]!r})"
        except ValueError:
            names = "(a certificate with unreadable names)"
        reasons.append(f"its signer {names} is no trusted TSA")
    raise _fail(Code.TIMESTAMP_UNTRUSTED, "; ".join(reasons))


def _cms_verifier(authority: TimestampAuthority, embedded: bool) -> rfc3161_client.Verifier:
    """rfc3161-client's verifier for `authority`'s chain, built once per authority.

    A token embedding its signer (any TSA certificate the chain issued, a rotated one too) is
    checked against the chain's CAs; one without is checked with the authority's leaf as the
    signer (`tsa_certificate`: rfc3161-client requires it then).
    """
    key = (authority.cache_key, embedded)
    verifier = _VERIFIERS.get(key)
    if verifier is None:
        builder = rfc3161_client.VerifierBuilder().add_root_certificate(authority.chain[-1])
        for intermediate in authority.chain[1:-1]:
            builder = builder.add_intermediate_certificate(intermediate)
        if not embedded:
            builder = builder.tsa_certificate(authority.certificate)
        verifier = builder.build()
        with _VERIFIERS_LOCK:
            if len(_VERIFIERS) >= _CACHE_SIZE:
                _VERIFIERS.pop(next(iter(_VERIFIERS)))
            _VERIFIERS[key] = verifier
    return verifier


def _check_cms(token: _Token, authority: TimestampAuthority, imprint: bytes) -> None:
    """The CMS signature over the TSTInfo verifies (rfc3161-client); TIMESTAMP_INVALID if not.

    Trust was judged before (by our checks, with their own codes), so a failure here is the
    signature or the CMS structure: the token was altered or is malformed.
    """
    verifier = _cms_verifier(authority, embedded=bool(token.certificates))
    try:
        verified = verifier.verify(token.response, imprint)
    except BaseException as exc:
        if not isinstance(exc, Exception) and not _is_rust_panic(exc):
            raise
        reason = "the CMS signature does not verify (the token was altered or is malformed)"
        if not isinstance(exc, rfc3161_client.VerificationError):
            reason += f" ({type(exc).__name__})"
        raise _fail(Code.TIMESTAMP_INVALID, reason) from None
    if verified is not True:
        raise _fail(Code.TIMESTAMP_INVALID, "the CMS signature does not verify")


def verify_token(
    token_der: bytes,
    signature: bytes,
    authorities: Sequence[TimestampAuthority],
    *,
    now: datetime,
    skew: timedelta = timedelta(0),
) -> VerifiedTime:
    """Verify one DER TimeStampResp over exactly `signature`; VerificationError otherwise.

    `now` (timezone-aware: now or `--at`) bounds the token time from above, allowing `skew`
    (default none: a token from a TSA whose clock runs ahead is refused until it is past).
    """
    if not isinstance(now, datetime) or now.utcoffset() is None:
        raise VerificationError(Code.INVALID_ARGUMENT, "now: must be a timezone-aware datetime")
    if not isinstance(token_der, bytes) or not isinstance(signature, bytes):
        raise VerificationError(Code.INVALID_ARGUMENT, "token and signature must be bytes")
    if len(token_der) > MAX_TOKEN_BYTES:
        raise _fail(Code.TIMESTAMP_INVALID, f"larger than the limit of {MAX_TOKEN_BYTES} bytes")
    token = _parse(token_der)
    hash_name = _IMPRINT_HASHES.get(token.imprint_algorithm)
    if hash_name is None:
        raise _fail(
            Code.TIMESTAMP_WEAK_HASH,
            f"the imprint hash {token.imprint_algorithm} is not SHA-256, SHA-384 or SHA-512",
        )
    weak = sorted(token.digests - _CMS_DIGESTS)
    if weak:
        raise _fail(
            Code.TIMESTAMP_WEAK_HASH,
            f"the CMS digest {', '.join(weak)[:120]} is not SHA-256, SHA-384 or SHA-512",
        )
    imprint = hashlib.new(hash_name, signature).digest()
    if imprint != token.imprint:
        raise _fail(
            Code.TIMESTAMP_MISMATCH, f"its {hash_name} imprint is not over this signature's bytes"
        )
    certificate, der = _signer(token, authorities)
    authority = _trusted_authority(certificate, der, authorities, token.time)
    _check_cms(token, authority, imprint)
    check_signer_info(token_der, certificate, der)
    if token.time > now + skew:
        raise _fail(
            Code.TIMESTAMP_IN_FUTURE,
            f"its time {token.time.isoformat()} is later than the verification time "
            f"{now.isoformat()}",
        )
    return VerifiedTime(token.time, authority.name, token.serial, hash_name)


def verify_tokens(
    tokens: Sequence[bytes],
    signature: bytes,
    authorities: Sequence[TimestampAuthority],
    *,
    now: datetime,
    required: bool = False,
) -> tuple[VerifiedTime, ...]:
    """Verify every token of one signature (a bad one is an error, never skipped).

    Refused: more than MAX_TIMESTAMPS, the same token twice (by bytes, or by TSA and serial),
    and none at all when `required`. The result is in token order; the earliest time is the
    signature's signing time.
    """
    if len(tokens) > MAX_TIMESTAMPS:
        raise _fail(Code.TOO_MANY_TIMESTAMPS, f"{len(tokens)} tokens, more than {MAX_TIMESTAMPS}")
    if len(set(tokens)) != len(tokens):
        raise _fail(Code.TOO_MANY_TIMESTAMPS, "the same token appears twice")
    if not tokens and required:
        raise VerificationError(Code.TIMESTAMP_REQUIRED, "the signature carries no timestamp")
    verified = tuple(verify_token(t, signature, authorities, now=now) for t in tokens)
    if len({(v.authority, v.serial_number) for v in verified}) != len(verified):
        raise _fail(Code.TOO_MANY_TIMESTAMPS, "two tokens have the same TSA and serial number")
    return verified
