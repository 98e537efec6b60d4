"""Sigstore bundles in: strict parsing, then fully offline verification of one signature.

A bundle carries one signature (a DSSE envelope with one signature, or a messageSignature over
an artifact's SHA-256) and the material to check it:

- keyless (a Fulcio leaf certificate + one transparency-log entry): verified by sigstore-python's
  `Verifier` against the trust root's embedded trusted root, with no network: certificate chain
  at the signing time, SCT, inclusion proof / checkpoint / SET, signed timestamps, integrated
  time inside the certificate validity, the log entry bound to this signature and payload. Our
  code owns the identity policy (`IdentityRule`: issuer, SAN exact or regexp, extensions);
- keyed (`verificationMaterial.publicKey.hint`): sigstore-python refuses these, so the signature
  is checked here with pyca/cryptography against the trust root's keys (the hint is only a
  hint: every trusted key may be tried). Their tlog entries, if any, are not checked: a
  trusted key's validity window in the trust root is what bounds it in time.

sigstore is imported only when a keyless bundle is verified (it costs most of a second), so
verifying plain envelopes stays cheap. Every failure is a `VerificationError` with a stable
code from `verify.Code`; nothing from sigstore-python escapes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, rsa, utils

from .._internal.strict_json import loads_strict
from ..codes import Code
from ..core.canonical import canonicalize
from ..core.certificates import certificate_sans
from ..core.dsse import Envelope, b64decode
from ..core.keys import PublicKey, pss_padding, public_key_hint
from ..errors import InputError, VerificationError
from ..limits import DEFAULT_LIMITS, Limits
from ..trust.sigstore_root import check_trusted_root, sigstore_installed, sigstore_verifier
from ._material import _certificates, _material, _timestamps

if TYPE_CHECKING:
    from cryptography.x509 import Certificate

    from ..trust import IdentityRule, SigstoreTrust

__all__ = [
    "BUNDLE_MEDIA_TYPES",
    "KeylessSigner",
    "ParsedBundle",
    "certificate_issuers",
    "certificate_sans",
    "check_trusted_root",
    "is_bundle_document",
    "parse_bundle",
    "verify_keyed",
    "verify_keyless",
]

#: Bundle media types accepted, with the format version each one means.
BUNDLE_MEDIA_TYPES: Final[Mapping[str, str]] = {
    "application/vnd.dev.sigstore.bundle+json;version=0.1": "0.1",
    "application/vnd.dev.sigstore.bundle+json;version=0.2": "0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.3": "0.3",
    "application/vnd.dev.sigstore.bundle.v0.3+json": "0.3",
}
_BUNDLE_PREFIX: Final = "application/vnd.dev.sigstore.bundle"
_TOP_FIELDS: Final = frozenset(
    {"mediaType", "verificationMaterial", "dsseEnvelope", "messageSignature"}
)
#: Transparency-log entry kinds sigstore-python can check against a bundle's content.
_TLOG_KINDS: Final = frozenset({"hashedrekord/0.0.1", "hashedrekord/0.0.2", "dsse/0.0.1"})
#: Fulcio's OIDC issuer extensions (v2: DER UTF8String, v1: raw bytes).
_ISSUER_V1_OID: Final = "1.3.6.1.4.1.57264.1.1"
_ISSUER_V2_OID: Final = "1.3.6.1.4.1.57264.1.8"


def _error(code: Code, message: str) -> VerificationError:
    return VerificationError(code, message)


# --- parsing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedBundle:
    """What a bundle claims, checked for shape only (nothing here is verified yet)."""

    media_type: str
    version: str
    #: The bundle JSON as given: sigstore-python parses the same bytes.
    raw: bytes
    #: The DSSE envelope (exactly one signature), or None for a messageSignature bundle.
    envelope: Envelope | None
    #: messageSignature: the signature and the SHA-256 the bundle says it covers (if given).
    message_signature: bytes | None
    message_digest: bytes | None
    #: Keyed bundles: publicKey.hint ("" if empty); None for certificate-based bundles.
    key_hint: str | None
    #: "kind/version" of each transparency-log entry.
    tlog_kinds: tuple[str, ...]
    #: RFC 3161 tokens (DER TimeStampResp) from timestampVerificationData, not yet verified.
    timestamps: tuple[bytes, ...] = ()
    #: Certificate bundles: the DER certificates it carries, the signing (leaf) one first.
    certificates: tuple[bytes, ...] = ()

    @property
    def keyed(self) -> bool:
        """True for a bundle with a public-key hint; False for a certificate (keyless) bundle."""
        return self.key_hint is not None

    @property
    def signature(self) -> bytes:
        """The one signature: the DSSE envelope's, or the messageSignature's."""
        if self.envelope is not None:
            return self.envelope.signatures[0].sig
        assert self.message_signature is not None
        return self.message_signature

    @property
    def kind(self) -> str:
        """The bundle's content: ``dsseEnvelope`` or ``messageSignature``."""
        return "dsseEnvelope" if self.envelope is not None else "messageSignature"


def is_bundle_document(document: object) -> bool:
    """A parsed JSON document that says it is a Sigstore bundle (by its mediaType)."""
    return (
        isinstance(document, Mapping)
        and isinstance(document.get("mediaType"), str)
        and document["mediaType"].startswith(_BUNDLE_PREFIX)
        and "payloadType" not in document
    )


def parse_bundle(data: bytes | str, *, limits: Limits = DEFAULT_LIMITS) -> ParsedBundle:
    """Strict, bounded parse; BUNDLE_MALFORMED / BUNDLE_UNSUPPORTED errors name what is wrong."""
    try:
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    except UnicodeEncodeError as exc:
        raise _error(
            Code.BUNDLE_MALFORMED,
            f"bundle: a lone surrogate at character {exc.start} is not valid Unicode text",
        ) from None
    try:
        document = loads_strict(raw, what="bundle", limits=limits)
    except InputError as exc:
        raise _error(Code.BUNDLE_MALFORMED, str(exc)) from None
    if not isinstance(document, dict):
        raise _error(Code.BUNDLE_MALFORMED, "bundle: expected a JSON object")
    media_type = document.get("mediaType")
    if not isinstance(media_type, str):
        raise _error(Code.BUNDLE_MALFORMED, "bundle.mediaType: missing or not a string")
    version = BUNDLE_MEDIA_TYPES.get(media_type)
    if version is None:
        raise _error(
            Code.BUNDLE_UNSUPPORTED,
            f"bundle.mediaType {media_type[:120]!r} is not a supported Sigstore bundle "
            "version (0.1, 0.2, 0.3)",
        )
    unknown = sorted(set(document) - _TOP_FIELDS)
    if unknown:
        raise _error(Code.BUNDLE_MALFORMED, f"bundle: unknown field {unknown[0][:80]!r}")
    if ("dsseEnvelope" in document) == ("messageSignature" in document):
        raise _error(
            Code.BUNDLE_MALFORMED, "bundle: needs exactly one of dsseEnvelope and messageSignature"
        )
    material = document.get("verificationMaterial")
    if not isinstance(material, dict):
        raise _error(Code.BUNDLE_MALFORMED, "bundle.verificationMaterial: missing or not an object")
    key_hint, tlog_kinds = _material(material, version)
    certificates = _certificates(material)
    timestamps = _timestamps(material.get("timestampVerificationData"))
    envelope = None
    signature = digest = None
    if "dsseEnvelope" in document:
        envelope = _dsse(document["dsseEnvelope"], limits)
    else:
        signature, digest = _message(document["messageSignature"])
    return ParsedBundle(
        media_type=media_type,
        version=version,
        raw=raw,
        envelope=envelope,
        message_signature=signature,
        message_digest=digest,
        key_hint=key_hint,
        tlog_kinds=tlog_kinds,
        timestamps=timestamps,
        certificates=certificates,
    )


def _dsse(value: object, limits: Limits) -> Envelope:
    try:
        envelope = Envelope.from_dict(value, limits=limits)
    except InputError as exc:
        raise _error(Code.BUNDLE_MALFORMED, f"bundle.dsseEnvelope: {exc}") from None
    if len(envelope.signatures) != 1:
        raise _error(
            Code.BUNDLE_MALFORMED,
            f"bundle.dsseEnvelope: a bundle holds exactly one signature, not "
            f"{len(envelope.signatures)}",
        )
    return envelope


def _message(value: object) -> tuple[bytes, bytes | None]:
    where = "bundle.messageSignature"
    if not isinstance(value, dict) or not set(value) <= {"messageDigest", "signature"}:
        raise _error(
            Code.BUNDLE_MALFORMED, f"{where}: expected an object of messageDigest, signature"
        )
    text = value.get("signature")
    if not isinstance(text, str) or not text or len(text) > 12_000:
        raise _error(Code.BUNDLE_MALFORMED, f"{where}.signature: missing or not a signature")
    try:
        signature = b64decode(text, what=f"{where}.signature")
    except InputError as exc:
        raise _error(Code.BUNDLE_MALFORMED, str(exc)) from None
    digest = None
    if "messageDigest" in value:
        message_digest = value["messageDigest"]
        if not isinstance(message_digest, dict) or not set(message_digest) <= {
            "algorithm",
            "digest",
        }:
            raise _error(
                Code.BUNDLE_MALFORMED, f"{where}.messageDigest: expected algorithm, digest"
            )
        if message_digest.get("algorithm") != "SHA2_256":
            raise _error(
                Code.BUNDLE_UNSUPPORTED,
                f"{where}.messageDigest.algorithm: only SHA2_256 is supported",
            )
        encoded = message_digest.get("digest")
        try:
            digest = (
                b64decode(encoded, what=f"{where}.messageDigest.digest")
                if isinstance(encoded, str)
                else None
            )
        except InputError as exc:
            raise _error(Code.BUNDLE_MALFORMED, str(exc)) from None
        if digest is None or len(digest) != 32:
            raise _error(
                Code.BUNDLE_MALFORMED, f"{where}.messageDigest.digest: not a SHA-256 digest"
            )
    return signature, digest


# --- keyed bundles ------------------------------------------------------------------------------


def verify_keyed(
    bundle: ParsedBundle, keys: Sequence[PublicKey], *, digest: bytes | None = None
) -> PublicKey:
    """The trusted key whose signature the keyed bundle carries, or BUNDLE_KEY_UNTRUSTED.

    DSSE: over the PAE, as for envelopes. messageSignature: over the artifact's SHA-256
    (`digest`, which must equal the bundle's messageDigest when it has one), as cosign signs
    blobs (ECDSA / RSA-PSS over the pre-hashed digest). The hinted key is tried first.
    """
    if bundle.key_hint is None:  # pragma: no cover - callers dispatch on `keyed`
        raise _error(Code.BUNDLE_MALFORMED, "bundle: not a keyed bundle")
    ordered = sorted(keys, key=lambda k: public_key_hint(k) != bundle.key_hint)
    if bundle.envelope is not None:
        message = bundle.envelope.pae()
        signature = bundle.envelope.signatures[0].sig
        for key in ordered:
            if key.verify(signature, message):
                return key
    else:
        digest = _message_digest(bundle, digest)
        signature = bundle.signature
        for key in ordered:
            if _verify_prehashed(key, signature, digest):
                return key
    shown = f" (hint {bundle.key_hint[:48]})" if bundle.key_hint else ""
    raise _error(
        Code.BUNDLE_KEY_UNTRUSTED,
        f"keyed bundle{shown}: the signature verifies under none of the {len(keys)} trusted key(s)",
    )


def _message_digest(bundle: ParsedBundle, digest: bytes | None) -> bytes:
    """The artifact digest a messageSignature bundle is checked over: given, and equal to the
    bundle's messageDigest when it has one."""
    if digest is None:
        raise _error(Code.INVALID_ARGUMENT, "a messageSignature bundle needs an artifact or digest")
    if bundle.message_digest is not None and bundle.message_digest != digest:
        raise _error(
            Code.ARTIFACT_DIGEST_MISMATCH,
            f"the artifact's SHA-256 {digest.hex()} is not the bundle's messageDigest "
            f"{bundle.message_digest.hex()}",
        )
    return digest


def _verify_prehashed(key: PublicKey, signature: bytes, digest: bytes) -> bool:
    """A blob signature over a SHA-256 digest (what cosign sign-blob makes with a key)."""
    if key.algorithm.hash_name != "sha256":
        return False  # Ed25519 / ML-DSA sign the message itself; P-384 hashes with SHA-384
    prehashed = utils.Prehashed(key.algorithm.hash_algorithm())
    public = key.key
    try:
        if isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(signature, digest, ec.ECDSA(prehashed))
        elif isinstance(public, rsa.RSAPublicKey):
            public.verify(signature, digest, pss_padding(key.algorithm), prehashed)
        else:  # pragma: no cover - the hash_name check leaves only ECDSA and RSA
            return False
    except (InvalidSignature, ValueError):
        return False
    return True


# --- keyless bundles ----------------------------------------------------------------------------


@dataclass(frozen=True)
class KeylessSigner:
    """Who made a verified keyless signature, and the identity rules it satisfied."""

    issuer: str
    subject: str
    rules: tuple[IdentityRule, ...]
    #: The certificate's public key (SPKI DER): one key counts once, however many identities.
    spki_der: bytes
    signature: bytes


def _require_sigstore() -> None:
    if not sigstore_installed():
        raise _error(
            Code.SIGSTORE_UNAVAILABLE,
            "verifying keyless Sigstore bundles needs sigstore-python: "
            "pip install 'dssesign[sigstore]'",
        )


def verify_keyless(
    bundle: ParsedBundle, trust: SigstoreTrust, *, digest: bytes | None = None
) -> KeylessSigner:
    """Verify a certificate-based bundle offline; return the identity that signed it.

    DSSE bundles: `Verifier.verify_dsse`, whose payload and type must equal the bundle's
    envelope. messageSignature bundles: `Verifier.verify_artifact` over `digest` (SHA-256).
    The identity rules are applied as sigstore-python's verification policy.
    """
    for kind in bundle.tlog_kinds:
        if kind not in _TLOG_KINDS:
            raise _error(
                Code.BUNDLE_UNSUPPORTED,
                f"bundle: transparency-log entry kind {kind} is not supported "
                "(hashedrekord/0.0.1, hashedrekord/0.0.2 and dsse/0.0.1 are)",
            )
    if bundle.envelope is None:
        digest = _message_digest(bundle, digest)
    if not trust.identities:
        raise _error(
            Code.IDENTITY_MISMATCH,
            "the trust root lists no keyless identities (dssesign trust-root add-identity)",
        )
    _require_sigstore()
    from sigstore.errors import Error as SigstoreError  # noqa: PLC0415 - on first use
    from sigstore.models import Bundle  # noqa: PLC0415 - optional dependency, imported on first use

    verifier = sigstore_verifier(canonicalize(trust.trusted_root))
    policy = _IdentityPolicy(trust.identities)
    try:
        sigstore_bundle = Bundle.from_json(bundle.raw)
        if bundle.envelope is not None:
            payload_type, payload = verifier.verify_dsse(sigstore_bundle, policy)
            if payload_type != bundle.envelope.payload_type or payload != bundle.envelope.payload:
                raise _error(Code.BUNDLE_PAYLOAD_MISMATCH, "bundle: verified payload differs")
        else:
            from sigstore.hashes import Hashed  # noqa: PLC0415 - on first use
            from sigstore_models.common.v1 import HashAlgorithm  # noqa: PLC0415 - on first use

            assert digest is not None
            hashed = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=digest)
            verifier.verify_artifact(hashed, sigstore_bundle, policy)
    except VerificationError:
        raise
    except (SigstoreError, ValueError) as exc:
        raise _sigstore_failure(exc, policy) from None
    except Exception as exc:  # anything else sigstore-python or cryptography raise: refused
        first = " ".join(str(exc).split())[:200]
        raise _error(
            Code.BUNDLE_VERIFICATION_FAILED, f"bundle: {type(exc).__name__}: {first}"
        ) from None
    if not policy.matched:  # pragma: no cover - sigstore-python always applies the policy
        raise _error(Code.IDENTITY_MISMATCH, "bundle: the identity policy was not applied")
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415 - on first use

    spki = sigstore_bundle.signing_certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return KeylessSigner(
        issuer=policy.matched[0][0].issuer,
        subject=policy.matched[0][1],
        rules=tuple(rule for rule, _ in policy.matched),
        spki_der=spki,
        signature=bundle.signature,
    )


#: sigstore-python raises one VerificationError type with no code of its own; its message
#: tells the failed step (third-party text: an unmatched message is BUNDLE_VERIFICATION_FAILED,
#: never an accept).
_FAILURE_CLASSES: Final[tuple[tuple[str, Code], ...]] = (
    ("Integrated time only supported", Code.BUNDLE_UNSUPPORTED),
    ("Unsupported", Code.BUNDLE_UNSUPPORTED),
    ("failed to load bundle", Code.BUNDLE_MALFORMED),
    ("SCT", Code.BUNDLE_SCT_INVALID),
    ("invalid log entry", Code.BUNDLE_TLOG_INVALID),
    ("inconsistent with other materials", Code.BUNDLE_TLOG_MISMATCH),
    ("does not match bundle", Code.BUNDLE_TLOG_MISMATCH),
    ("log entry", Code.BUNDLE_TLOG_MISMATCH),
    ("message digest mismatch", Code.ARTIFACT_DIGEST_MISMATCH),
    ("invalid signature", Code.BUNDLE_SIGNATURE_INVALID),
    ("Signature is invalid", Code.BUNDLE_SIGNATURE_INVALID),
    ("verified time", Code.BUNDLE_TIMESTAMP_INVALID),
    ("Timestamp", Code.BUNDLE_TIMESTAMP_INVALID),
    ("certificate", Code.BUNDLE_CERTIFICATE_INVALID),
    ("cert", Code.BUNDLE_CERTIFICATE_INVALID),
    ("usage", Code.BUNDLE_CERTIFICATE_INVALID),
)


def _sigstore_failure(exc: Exception, policy: _IdentityPolicy) -> VerificationError:
    from sigstore.errors import CertValidationError  # noqa: PLC0415 - on first use
    from sigstore.models import InvalidBundle  # noqa: PLC0415 - on first use

    text = " ".join(str(exc).split())[:300] or type(exc).__name__
    if policy.failure is not None:
        return _error(Code.IDENTITY_MISMATCH, policy.failure)
    if isinstance(exc, InvalidBundle):
        code = Code.BUNDLE_MALFORMED
        if "log entry version" in text or "Unsupported" in text:
            code = Code.BUNDLE_UNSUPPORTED
    elif isinstance(exc, CertValidationError):
        code = Code.BUNDLE_CERTIFICATE_INVALID
    else:
        lowered = text.lower()
        code = next(
            (c for needle, c in _FAILURE_CLASSES if needle.lower() in lowered),
            Code.BUNDLE_VERIFICATION_FAILED,
        )
    return _error(code, f"bundle: {text}")


class _IdentityPolicy:
    """sigstore-python VerificationPolicy: the certificate must satisfy an identity rule.

    Issuer: Fulcio's OIDC issuer extension (v2, else v1; both must agree when both are present)
    equals the rule's exactly. Subject: some SAN (email, URI, or Sigstore otherName) equals the
    rule's subject or fully matches its subjectRegExp. Extensions: each checked by
    sigstore-python's own per-extension policy. Every matching rule is recorded.
    """

    def __init__(self, rules: Sequence[IdentityRule]) -> None:
        self.rules = tuple(rules)
        self.matched: list[tuple[IdentityRule, str]] = []
        self.failure: str | None = None

    def verify(self, cert: Certificate) -> None:
        from sigstore.errors import VerificationError as SigstoreVerificationError  # noqa: PLC0415 - on first use

        issuers = certificate_issuers(cert)
        sans = certificate_sans(cert)
        matched: list[tuple[IdentityRule, str]] = []
        if len(set(issuers)) == 1:
            for rule in self.rules:
                if issuers[0] != rule.issuer:
                    continue
                san = next((s for s in sans if rule.matches_subject(s)), None)
                if san is not None and _extensions_match(rule, cert):
                    matched.append((rule, san))
        self.matched = matched
        if not matched:
            shown_issuer = " / ".join(sorted(set(issuers))) or "none"
            shown_sans = ", ".join(s[:200] for s in sans[:4]) or "none"
            self.failure = (
                f"the signing certificate's identity (issuer {shown_issuer[:200]}, SAN "
                f"{shown_sans}) matches none of the trust root's {len(self.rules)} identity rule(s)"
            )
            raise SigstoreVerificationError(self.failure)


def certificate_issuers(cert: Certificate) -> list[str]:
    """The Fulcio OIDC issuer(s) a certificate names: the v2 extension first, then v1."""
    from cryptography import x509  # noqa: PLC0415 - imported on first use
    from cryptography.hazmat import asn1  # noqa: PLC0415 - imported on first use

    found: list[str] = []
    for oid, der in ((_ISSUER_V2_OID, True), (_ISSUER_V1_OID, False)):
        try:
            value = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(oid)).value
        except x509.ExtensionNotFound:
            continue
        data = getattr(value, "value", b"")
        try:
            found.append(asn1.decode_der(str, data) if der else data.decode("utf-8"))
        except Exception:
            found.append("\x00undecodable")
    return found


def _extensions_match(rule: IdentityRule, cert: Certificate) -> bool:
    if not rule.extensions:
        return True
    from sigstore.errors import VerificationError as SigstoreVerificationError  # noqa: PLC0415 - on first use
    from sigstore.verify import policy as sigstore_policy  # noqa: PLC0415 - on first use

    from ..trust import SIGSTORE_EXTENSIONS  # noqa: PLC0415 - on first use

    for name, expected in rule.extensions.items():
        check = getattr(sigstore_policy, SIGSTORE_EXTENSIONS[name][1])(expected)
        try:
            check.verify(cert)
        except (SigstoreVerificationError, ValueError):
            return False
    return True
