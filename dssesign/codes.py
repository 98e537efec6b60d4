"""Every stable code dssesign reports, in one enum, each with its one-line meaning.

Verification, trust-root, bundle and command-line codes all live here; `VerificationError.code`
is a `Code`, and docs/verification.md lists exactly these (a test checks both ways). Codes are
never looked up by name at run time and never recovered from message text.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final

__all__ = ["CODES", "Code", "SignFailure"]


class Code(StrEnum):
    """Stable, machine-readable outcome codes (the CLI's ``--json`` ``code``)."""

    OK = "OK"
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    TRUST_ROOT_INVALID = "TRUST_ROOT_INVALID"
    TRUST_ROOT_EXPIRED = "TRUST_ROOT_EXPIRED"
    ENVELOPE_TOO_LARGE = "ENVELOPE_TOO_LARGE"
    TOO_MANY_SIGNATURES = "TOO_MANY_SIGNATURES"
    MALFORMED_ENVELOPE = "MALFORMED_ENVELOPE"
    UNSUPPORTED_PAYLOAD_TYPE = "UNSUPPORTED_PAYLOAD_TYPE"
    NO_SIGNATURES = "NO_SIGNATURES"
    NO_VALID_SIGNATURE = "NO_VALID_SIGNATURE"
    SIGNATURE_DUPLICATE = "SIGNATURE_DUPLICATE"
    TOO_MANY_BUNDLES = "TOO_MANY_BUNDLES"
    BUNDLE_MALFORMED = "BUNDLE_MALFORMED"
    BUNDLE_UNSUPPORTED = "BUNDLE_UNSUPPORTED"
    BUNDLE_PAYLOAD_MISMATCH = "BUNDLE_PAYLOAD_MISMATCH"
    BUNDLE_SIGNATURE_MISMATCH = "BUNDLE_SIGNATURE_MISMATCH"
    SIGSTORE_NOT_CONFIGURED = "SIGSTORE_NOT_CONFIGURED"
    SIGSTORE_UNAVAILABLE = "SIGSTORE_UNAVAILABLE"
    BUNDLE_KEY_UNTRUSTED = "BUNDLE_KEY_UNTRUSTED"
    BUNDLE_CERTIFICATE_INVALID = "BUNDLE_CERTIFICATE_INVALID"
    BUNDLE_SCT_INVALID = "BUNDLE_SCT_INVALID"
    BUNDLE_TLOG_INVALID = "BUNDLE_TLOG_INVALID"
    BUNDLE_TLOG_MISMATCH = "BUNDLE_TLOG_MISMATCH"
    BUNDLE_TIMESTAMP_INVALID = "BUNDLE_TIMESTAMP_INVALID"
    BUNDLE_SIGNATURE_INVALID = "BUNDLE_SIGNATURE_INVALID"
    BUNDLE_VERIFICATION_FAILED = "BUNDLE_VERIFICATION_FAILED"
    IDENTITY_MISMATCH = "IDENTITY_MISMATCH"
    TOO_MANY_TIMESTAMPS = "TOO_MANY_TIMESTAMPS"
    TIMESTAMP_INVALID = "TIMESTAMP_INVALID"
    TIMESTAMP_WEAK_HASH = "TIMESTAMP_WEAK_HASH"
    TIMESTAMP_UNTRUSTED = "TIMESTAMP_UNTRUSTED"
    TIMESTAMP_MISMATCH = "TIMESTAMP_MISMATCH"
    TIMESTAMP_IN_FUTURE = "TIMESTAMP_IN_FUTURE"
    TIMESTAMP_REQUIRED = "TIMESTAMP_REQUIRED"
    KEY_NOT_YET_VALID = "KEY_NOT_YET_VALID"
    KEY_EXPIRED = "KEY_EXPIRED"
    KEY_REVOKED = "KEY_REVOKED"
    KEY_ROTATED_OUT = "KEY_ROTATED_OUT"
    ROTATION_UNVERIFIED = "ROTATION_UNVERIFIED"
    INVALID_STATEMENT = "INVALID_STATEMENT"
    PREDICATE_TYPE_MISMATCH = "PREDICATE_TYPE_MISMATCH"
    PREDICATE_TYPE_NOT_ALLOWED = "PREDICATE_TYPE_NOT_ALLOWED"
    THRESHOLD_NOT_MET = "THRESHOLD_NOT_MET"
    REQUIRED_KEY_MISSING = "REQUIRED_KEY_MISSING"
    HYBRID_POLICY_NOT_MET = "HYBRID_POLICY_NOT_MET"
    ROLE_POLICY_NOT_MET = "ROLE_POLICY_NOT_MET"
    ARTIFACT_UNREADABLE = "ARTIFACT_UNREADABLE"
    SUBJECT_MISMATCH = "SUBJECT_MISMATCH"
    ARTIFACT_DIGEST_MISMATCH = "ARTIFACT_DIGEST_MISMATCH"
    TRUST_ROOT_MALFORMED = "TRUST_ROOT_MALFORMED"
    TRUST_ROOT_PAYLOAD_TYPE = "TRUST_ROOT_PAYLOAD_TYPE"
    TRUST_ROOT_SIGNATURE_THRESHOLD = "TRUST_ROOT_SIGNATURE_THRESHOLD"
    TRUST_ROOT_ROLLBACK = "TRUST_ROOT_ROLLBACK"
    TRUST_ROOT_VERSION_CONFLICT = "TRUST_ROOT_VERSION_CONFLICT"
    CERTIFICATE_UNTRUSTED = "CERTIFICATE_UNTRUSTED"
    CERTIFICATE_SELF_SIGNED = "CERTIFICATE_SELF_SIGNED"
    CERTIFICATE_CA_INVALID = "CERTIFICATE_CA_INVALID"
    CERTIFICATE_USAGE_INVALID = "CERTIFICATE_USAGE_INVALID"
    CERTIFICATE_EXPIRED = "CERTIFICATE_EXPIRED"
    CERTIFICATE_NAME_CONSTRAINT = "CERTIFICATE_NAME_CONSTRAINT"
    CERTIFICATE_CHAIN_TOO_DEEP = "CERTIFICATE_CHAIN_TOO_DEEP"
    CERTIFICATE_UNSUPPORTED = "CERTIFICATE_UNSUPPORTED"
    CERTIFICATE_KEY_MISMATCH = "CERTIFICATE_KEY_MISMATCH"
    CERTIFICATE_REVOKED = "CERTIFICATE_REVOKED"
    CA_NOT_TRUSTED_AT_TIME = "CA_NOT_TRUSTED_AT_TIME"
    IDENTITY_REVOKED = "IDENTITY_REVOKED"
    CRL_STALE = "CRL_STALE"
    VSA_NOT_PASSED = "VSA_NOT_PASSED"
    REGISTRY_UNAVAILABLE = "REGISTRY_UNAVAILABLE"
    REGISTRY_UNAUTHORIZED = "REGISTRY_UNAUTHORIZED"
    IMAGE_NOT_FOUND = "IMAGE_NOT_FOUND"
    REGISTRY_CONTENT_INVALID = "REGISTRY_CONTENT_INVALID"
    NO_ATTESTATIONS = "NO_ATTESTATIONS"
    UNREADABLE = "UNREADABLE"
    INTERNAL = "INTERNAL"


#: Every code with its one-line meaning, in the order the verifier can reach them.
CODES: Final[Mapping[str, str]] = MappingProxyType(
    {
        Code.OK: "verified: the policy is met and every artifact/digest matched a subject",
        Code.INVALID_ARGUMENT: "the caller's request is unusable (naive --at, bad --digest, ...)",
        Code.TRUST_ROOT_INVALID: "the trust root is inconsistent or would fail open "
        "(threshold < 1, unknown hybrid mode, required keyid not in it)",
        Code.TRUST_ROOT_EXPIRED: "the trust root's `expires` is at or before the verification time",
        Code.ENVELOPE_TOO_LARGE: "the envelope or its payload exceeds the size limits",
        Code.TOO_MANY_SIGNATURES: "more signatures than limits.max_signatures (refused unread)",
        Code.MALFORMED_ENVELOPE: "not a strictly valid DSSE envelope (JSON, fields, base64)",
        Code.UNSUPPORTED_PAYLOAD_TYPE: "payloadType is not exactly application/vnd.in-toto+json",
        Code.NO_SIGNATURES: "the envelope carries no signature at all",
        Code.NO_VALID_SIGNATURE: "no signature verifies over the PAE under any trusted key",
        Code.SIGNATURE_DUPLICATE: "(a report's signatures entry) another signature by a key or "
        "keyless identity that already counted through an earlier one: a signer counts once",
        Code.TOO_MANY_BUNDLES: "more Sigstore bundles than limits.max_signatures",
        Code.BUNDLE_MALFORMED: "a Sigstore bundle is not strictly valid (JSON, fields, base64)",
        Code.BUNDLE_UNSUPPORTED: "a bundle version, log entry kind or digest we do not verify",
        Code.BUNDLE_PAYLOAD_MISMATCH: "a bundle's payload or payloadType differs from the "
        "envelope's (byte for byte)",
        Code.BUNDLE_SIGNATURE_MISMATCH: "a bundle's signature is not one of the envelope's",
        Code.SIGSTORE_NOT_CONFIGURED: "a keyless bundle, but the trust root has no sigstore "
        "section",
        Code.SIGSTORE_UNAVAILABLE: "a keyless bundle, but sigstore-python is not installed",
        Code.BUNDLE_KEY_UNTRUSTED: "a keyed bundle's signature verifies under no trusted key",
        Code.BUNDLE_CERTIFICATE_INVALID: "a bundle's certificate does not chain to the trusted "
        "root at the signing time, or breaks the Fulcio profile",
        Code.BUNDLE_SCT_INVALID: "a bundle certificate's SCT does not verify against a CT log key",
        Code.BUNDLE_TLOG_INVALID: "a bundle's log entry fails its inclusion proof, checkpoint "
        "or SET",
        Code.BUNDLE_TLOG_MISMATCH: "a bundle's log entry is not for this signature, key and "
        "payload",
        Code.BUNDLE_TIMESTAMP_INVALID: "no verified signing time (bad or untrusted timestamps)",
        Code.BUNDLE_SIGNATURE_INVALID: "a bundle's signature does not verify under its certificate",
        Code.BUNDLE_VERIFICATION_FAILED: "a bundle failed another sigstore-python check",
        Code.IDENTITY_MISMATCH: "a keyless certificate matches no identity rule of the trust root",
        Code.CERTIFICATE_UNTRUSTED: "a bundle's certificate does not chain to an organisation CA "
        "of the trust root's pki section",
        Code.CERTIFICATE_SELF_SIGNED: "a bundle's signing certificate is self-signed (it names "
        "itself as issuer)",
        Code.CERTIFICATE_CA_INVALID: "a CA certificate in the chain is not a CA (basic "
        "constraints, key usage, path length)",
        Code.CERTIFICATE_USAGE_INVALID: "the signing certificate lacks the codeSigning EKU or the "
        "digitalSignature key usage",
        Code.CERTIFICATE_EXPIRED: "a certificate in the chain is not valid at the signing time (a "
        "timestamp, else now or --at)",
        Code.CERTIFICATE_NAME_CONSTRAINT: "the signing certificate's names break a CA's name "
        "constraints",
        Code.CERTIFICATE_CHAIN_TOO_DEEP: "the certificate chain is longer than the depth limit",
        Code.CERTIFICATE_UNSUPPORTED: "the chain holds what the verifier cannot judge (an Ed25519 "
        "CA, URI name constraints)",
        Code.CERTIFICATE_KEY_MISMATCH: "the signature does not verify under the bundle "
        "certificate's key",
        Code.CERTIFICATE_REVOKED: "a certificate in the chain is on a carried CRL at the signing "
        "time (keyCompromise: from its invalidity date)",
        Code.CA_NOT_TRUSTED_AT_TIME: "an organisation CA in the chain is revoked or outside its "
        "window in the trust root at the signing time",
        Code.IDENTITY_REVOKED: "the certificate identity that matched was revoked in the trust "
        "root at or before the signing time",
        Code.CRL_STALE: "a carried CRL's nextUpdate is before the signing time (--allow-stale-crl "
        "accepts it)",
        Code.VSA_NOT_PASSED: "a verification summary (SLSA VSA) verified, but it says FAILED, not "
        "PASSED",
        Code.REGISTRY_UNAVAILABLE: "an OCI registry could not be reached, failed TLS "
        "verification, timed out or answered with a server error",
        Code.REGISTRY_UNAUTHORIZED: "an OCI registry refused the request (401/403): no "
        "credentials for it in the docker config.json, or the wrong ones",
        Code.IMAGE_NOT_FOUND: "the image (or the tag, or the --platform) is not in the registry",
        Code.REGISTRY_CONTENT_INVALID: "what a registry served breaks the OCI rules: a manifest "
        "or blob over its size limit, bytes that do not match their digest, a malformed manifest "
        "or index, a referrer whose subject is another image",
        Code.NO_ATTESTATIONS: "the image has no attestation (of the requested type) in either "
        "layout: no referrer, no tag-schema index entry, no legacy .att tag",
        Code.TOO_MANY_TIMESTAMPS: "a signature carries more than 32 RFC 3161 timestamps, or the "
        "same one twice",
        Code.TIMESTAMP_INVALID: "an RFC 3161 timestamp is unreadable (size, strict DER), not "
        "granted, its CMS signature does not verify, or its ESS certificate binding or signature "
        "algorithm does not match its signer",
        Code.TIMESTAMP_WEAK_HASH: "a timestamp's imprint, CMS digest, signature algorithm or ESS "
        "certificate hash is SHA-1 or unknown (SHA-256, SHA-384 and SHA-512 only)",
        Code.TIMESTAMP_UNTRUSTED: "a timestamp's TSA certificate does not chain to a trusted TSA, "
        "lacks the critical timeStamping EKU, or is not valid, inside its trust-root window and "
        "unrevoked at the token's time",
        Code.TIMESTAMP_MISMATCH: "a timestamp's message imprint is not the hash of exactly this "
        "signature's bytes",
        Code.TIMESTAMP_IN_FUTURE: "a timestamp's time is later than the verification time (now "
        "or --at)",
        Code.TIMESTAMP_REQUIRED: "a signature carries no timestamp, but --require-timestamp or "
        "the trust root's policy requires one",
        Code.KEY_NOT_YET_VALID: "a key that signed is not valid yet at the verification time",
        Code.KEY_EXPIRED: "a key that signed is past its validUntil at the verification time",
        Code.KEY_REVOKED: "a key that signed was revoked at or before the verification time",
        Code.KEY_ROTATED_OUT: "a key that signed was rotated out; its transition deadline passed",
        Code.ROTATION_UNVERIFIED: "a key introduced by rotation has no verifying chain of "
        "handovers back to a directly trusted key",
        Code.INVALID_STATEMENT: "the signed payload is not a valid in-toto Statement v1/v0.1",
        Code.PREDICATE_TYPE_MISMATCH: "the Statement's predicateType is not the one requested",
        Code.PREDICATE_TYPE_NOT_ALLOWED: "a key that signed may not attest to this predicateType",
        Code.THRESHOLD_NOT_MET: "fewer distinct trusted keys than the policy's threshold",
        Code.REQUIRED_KEY_MISSING: "a keyid the policy requires did not count",
        Code.HYBRID_POLICY_NOT_MET: "the hybrid post-quantum mode (and / pq-only) is not met",
        Code.ROLE_POLICY_NOT_MET: "a role the policy requires (all of them, or one with "
        "anyRole) has fewer distinct counted members than its threshold",
        Code.ARTIFACT_UNREADABLE: "an artifact given to check could not be read",
        Code.SUBJECT_MISMATCH: "an artifact or digest matches no subject of the Statement",
        Code.ARTIFACT_DIGEST_MISMATCH: "the artifact's SHA-256 is not the one the "
        "messageSignature bundle signs",
        Code.TRUST_ROOT_MALFORMED: "a signed trust root's envelope cannot be parsed or exceeds a "
        "limit, or its payload is not a valid, complete trust root",
        Code.TRUST_ROOT_PAYLOAD_TYPE: "a signed trust root's payloadType is not "
        "application/vnd.dssesign.trust-root.v1+json",
        Code.TRUST_ROOT_SIGNATURE_THRESHOLD: "too few distinct root keys signed a signed trust "
        "root (of the previous version, of the pinned keys, or of the document itself)",
        Code.TRUST_ROOT_ROLLBACK: "a signed trust root's version is lower than the one accepted",
        Code.TRUST_ROOT_VERSION_CONFLICT: "a signed trust root has the accepted version but "
        "other content",
        Code.UNREADABLE: "(verify of several files) this envelope file could not be read; the "
        "others are still verified",
        Code.INTERNAL: "an unexpected error inside the verifier; the input is refused",
    }
)


class SignFailure(StrEnum):
    """Why one signer failed, as the audit log and metrics record it (never error text).

    A failure of another kind is recorded as ``exception:<ExceptionType>``; a key that could
    not be loaded as ``key-load:<ExceptionType>``.
    """

    TIMEOUT = "timeout"
    #: A --tsa did not return a token that verifies for this signature: it is not emitted.
    TIMESTAMP = "timestamp"
    INVALID_SIGNATURE = "invalid-signature"
    BAD_OUTPUT = "bad-output"
