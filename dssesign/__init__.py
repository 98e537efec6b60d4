"""dssesign: in-toto Statements signed into multi-signature DSSE envelopes, verified offline.

Names are imported on first use, so `dssesign verify` never pays for jsonschema or the
signing profiles.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> (module, attribute)
_EXPORTS: dict[str, tuple[str, str]] = {
    "ALGORITHMS": (".core.keys", "ALGORITHMS"),
    "AttestResult": (".sign.attest", "AttestResult"),
    "AuditError": (".errors", "AuditError"),
    "Code": (".codes", "Code"),
    "MissingDependencyError": (".errors", "MissingDependencyError"),
    "attest": (".sign.attest", "attest"),
    "verify_envelope": (".verify", "verify"),
    "Algorithm": (".core.keys", "Algorithm"),
    "CanonicalizationError": (".errors", "CanonicalizationError"),
    "ConfigError": (".errors", "ConfigError"),
    "DEFAULT_LIMITS": (".limits", "DEFAULT_LIMITS"),
    "DssesignError": (".errors", "DssesignError"),
    "Envelope": (".core.dsse", "Envelope"),
    "EnvelopeError": (".errors", "EnvelopeError"),
    "InputError": (".errors", "InputError"),
    "KeyFormatError": (".errors", "KeyFormatError"),
    "Limits": (".limits", "Limits"),
    "MultiProfileSigner": (".sign.multisign", "MultiProfileSigner"),
    "PAYLOAD_TYPE": (".intoto.statement", "PAYLOAD_TYPE"),
    "PredicateError": (".errors", "PredicateError"),
    "PredicateType": (".intoto.predicates", "PredicateType"),
    "PublicKey": (".core.keys", "PublicKey"),
    "ResourceDescriptor": (".intoto.statement", "ResourceDescriptor"),
    "STATEMENT_TYPE_V1": (".intoto.statement", "STATEMENT_TYPE_V1"),
    "Signature": (".core.dsse", "Signature"),
    "Signer": (".sign.signer", "Signer"),
    "SignerOptions": (".sign.signer", "SignerOptions"),
    "SigningError": (".errors", "SigningError"),
    "SigningRecord": (".sign.multisign", "SigningRecord"),
    "SigningResult": (".sign.multisign", "SigningResult"),
    "SoftwareSigner": (".profiles.software", "SoftwareSigner"),
    "StatementError": (".errors", "StatementError"),
    "TrustRoot": (".trust", "TrustRoot"),
    "TrustRootError": (".errors", "TrustRootError"),
    "VerificationError": (".errors", "VerificationError"),
    "VerificationFailure": (".errors", "VerificationFailure"),
    "VerificationResult": (".verify", "VerificationResult"),
    "build_statement": (".intoto.statement", "build_statement"),
    "canonicalize": (".core.canonical", "canonicalize"),
    "digest_file": (".intoto.subjects", "digest_file"),
    "generate_key": (".profiles.software", "generate"),
    "get_algorithm": (".core.keys", "get_algorithm"),
    "keyed_bundle": (".sign.bundles", "keyed_bundle"),
    "keyid_of_spki": (".core.keys", "keyid_of_spki"),
    "known_predicate_types": (".intoto.predicates", "known_predicate_types"),
    "load_public_key": (".core.keys", "load_public_key"),
    "load_signer": (".sign.signer", "load_signer"),
    "load_trust_root": (".trust", "load_trust_root"),
    "pae": (".core.dsse", "pae"),
    "parse_statement": (".intoto.statement", "parse_statement"),
    "prepare_predicate": (".intoto.predicates", "prepare_predicate"),
    "public_key_hint": (".core.keys", "public_key_hint"),
    "read_trust_root": (".trust", "read_trust_root"),
    "register_predicate_type": (".intoto.predicates", "register_predicate_type"),
    "register_scheme": (".sign.signer", "register_scheme"),
    "resolve_predicate_type": (".intoto.predicates", "resolve_predicate_type"),
    "statement_payload": (".intoto.statement", "statement_payload"),
    "subject_from_digest": (".intoto.subjects", "subject_from_digest"),
    "subject_from_file": (".intoto.subjects", "subject_from_file"),
    "validate_predicate": (".intoto.predicates", "validate_predicate"),
    "CertifiedSigner": (".sign.certified", "CertifiedSigner"),
    "certify": (".sign.certified", "certify"),
    "build_csr": (".sign.csr", "build_csr"),
    "VerifiedInput": (".vsa", "VerifiedInput"),
    "VsaRequest": (".vsa", "VsaRequest"),
    "build_vsa": (".vsa", "build_vsa"),
    "emit_vsa": (".vsa", "emit_vsa"),
    "read_jsonl": (".verify", "read_jsonl"),
    "verify_jsonl": (".verify", "verify_jsonl"),
    "validate_statement": (".intoto.statement", "validate_statement"),
    "verify_bundle": (".verify", "verify_bundle"),
    "verify_signed_trust_root": (".trust", "verify_signed_trust_root"),
}

__all__ = [
    "ALGORITHMS",
    "DEFAULT_LIMITS",
    "PAYLOAD_TYPE",
    "STATEMENT_TYPE_V1",
    "Algorithm",
    "AttestResult",
    "AuditError",
    "CanonicalizationError",
    "CertifiedSigner",
    "Code",
    "ConfigError",
    "DssesignError",
    "Envelope",
    "EnvelopeError",
    "InputError",
    "KeyFormatError",
    "Limits",
    "MissingDependencyError",
    "MultiProfileSigner",
    "PredicateError",
    "PredicateType",
    "PublicKey",
    "ResourceDescriptor",
    "Signature",
    "Signer",
    "SignerOptions",
    "SigningError",
    "SigningRecord",
    "SigningResult",
    "SoftwareSigner",
    "StatementError",
    "TrustRoot",
    "TrustRootError",
    "VerificationError",
    "VerificationFailure",
    "VerificationResult",
    "VerifiedInput",
    "VsaRequest",
    "attest",
    "build_csr",
    "build_statement",
    "build_vsa",
    "canonicalize",
    "certify",
    "digest_file",
    "emit_vsa",
    "generate_key",
    "get_algorithm",
    "keyed_bundle",
    "keyid_of_spki",
    "known_predicate_types",
    "load_public_key",
    "load_signer",
    "load_trust_root",
    "pae",
    "parse_statement",
    "prepare_predicate",
    "public_key_hint",
    "read_jsonl",
    "read_trust_root",
    "register_predicate_type",
    "register_scheme",
    "resolve_predicate_type",
    "statement_payload",
    "subject_from_digest",
    "subject_from_file",
    "validate_predicate",
    "validate_statement",
    "verify_bundle",
    "verify_envelope",
    "verify_jsonl",
    "verify_signed_trust_root",
]


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'dssesign' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module, __name__), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])


if TYPE_CHECKING:
    from .codes import Code
    from .core.canonical import canonicalize
    from .core.dsse import Envelope, Signature, pae
    from .core.keys import (
        ALGORITHMS,
        Algorithm,
        PublicKey,
        get_algorithm,
        keyid_of_spki,
        load_public_key,
        public_key_hint,
    )
    from .errors import (
        AuditError,
        CanonicalizationError,
        ConfigError,
        DssesignError,
        EnvelopeError,
        InputError,
        KeyFormatError,
        MissingDependencyError,
        PredicateError,
        SigningError,
        StatementError,
        TrustRootError,
        VerificationError,
        VerificationFailure,
    )
    from .intoto.predicates import (
        PredicateType,
        known_predicate_types,
        prepare_predicate,
        register_predicate_type,
        resolve_predicate_type,
        validate_predicate,
    )
    from .intoto.statement import (
        PAYLOAD_TYPE,
        STATEMENT_TYPE_V1,
        ResourceDescriptor,
        build_statement,
        parse_statement,
        statement_payload,
        validate_statement,
    )
    from .intoto.subjects import digest_file, subject_from_digest, subject_from_file
    from .limits import DEFAULT_LIMITS, Limits
    from .profiles.software import SoftwareSigner
    from .profiles.software import generate as generate_key
    from .sign.attest import AttestResult, attest
    from .sign.bundles import keyed_bundle
    from .sign.certified import CertifiedSigner, certify
    from .sign.csr import build_csr
    from .sign.multisign import MultiProfileSigner, SigningRecord, SigningResult
    from .sign.signer import Signer, SignerOptions, load_signer, register_scheme
    from .trust import (
        TrustRoot,
        load_trust_root,
        read_trust_root,
        verify_signed_trust_root,
    )
    from .verify import VerificationResult, read_jsonl, verify_bundle, verify_jsonl
    from .verify import verify as verify_envelope
    from .vsa import VerifiedInput, VsaRequest, build_vsa, emit_vsa
