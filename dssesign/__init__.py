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
    "ALGORITHMS": (".keys", "ALGORITHMS"),
    "AttestResult": ("._attest", "AttestResult"),
    "AuditError": (".errors", "AuditError"),
    "Code": (".codes", "Code"),
    "MissingDependencyError": (".errors", "MissingDependencyError"),
    "attest": ("._attest", "attest"),
    "verify_envelope": (".verify", "verify"),
    "Algorithm": (".keys", "Algorithm"),
    "CanonicalizationError": (".errors", "CanonicalizationError"),
    "ConfigError": (".errors", "ConfigError"),
    "DEFAULT_LIMITS": (".limits", "DEFAULT_LIMITS"),
    "DssesignError": (".errors", "DssesignError"),
    "Envelope": (".dsse", "Envelope"),
    "EnvelopeError": (".errors", "EnvelopeError"),
    "InputError": (".errors", "InputError"),
    "KeyFormatError": (".errors", "KeyFormatError"),
    "Limits": (".limits", "Limits"),
    "MultiProfileSigner": (".multisign", "MultiProfileSigner"),
    "PAYLOAD_TYPE": (".statement", "PAYLOAD_TYPE"),
    "PredicateError": (".errors", "PredicateError"),
    "PredicateType": (".predicates", "PredicateType"),
    "PublicKey": (".keys", "PublicKey"),
    "ResourceDescriptor": (".statement", "ResourceDescriptor"),
    "STATEMENT_TYPE_V1": (".statement", "STATEMENT_TYPE_V1"),
    "Signature": (".dsse", "Signature"),
    "Signer": (".signer", "Signer"),
    "SignerOptions": (".signer", "SignerOptions"),
    "SigningError": (".errors", "SigningError"),
    "SigningRecord": (".multisign", "SigningRecord"),
    "SigningResult": (".multisign", "SigningResult"),
    "SoftwareSigner": (".profiles.software", "SoftwareSigner"),
    "StatementError": (".errors", "StatementError"),
    "TrustRoot": (".trust", "TrustRoot"),
    "TrustRootError": (".errors", "TrustRootError"),
    "VerificationError": (".errors", "VerificationError"),
    "VerificationFailure": (".verify", "VerificationFailure"),
    "VerificationResult": (".verify", "VerificationResult"),
    "build_statement": (".statement", "build_statement"),
    "canonicalize": (".canonical", "canonicalize"),
    "digest_file": (".statement", "digest_file"),
    "generate_key": (".profiles.software", "generate"),
    "get_algorithm": (".keys", "get_algorithm"),
    "keyed_bundle": (".bundles", "keyed_bundle"),
    "keyid_of_spki": (".keys", "keyid_of_spki"),
    "known_predicate_types": (".predicates", "known_predicate_types"),
    "load_public_key": (".keys", "load_public_key"),
    "load_signer": (".signer", "load_signer"),
    "load_trust_root": (".trust", "load_trust_root"),
    "pae": (".dsse", "pae"),
    "parse_statement": (".statement", "parse_statement"),
    "prepare_predicate": (".predicates", "prepare_predicate"),
    "public_key_hint": (".keys", "public_key_hint"),
    "read_trust_root": (".trust", "read_trust_root"),
    "register_predicate_type": (".predicates", "register_predicate_type"),
    "register_scheme": (".signer", "register_scheme"),
    "resolve_predicate_type": (".predicates", "resolve_predicate_type"),
    "statement_payload": (".statement", "statement_payload"),
    "subject_from_digest": (".statement", "subject_from_digest"),
    "subject_from_file": (".statement", "subject_from_file"),
    "validate_predicate": (".predicates", "validate_predicate"),
    "validate_statement": (".statement", "validate_statement"),
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
    "attest",
    "build_statement",
    "canonicalize",
    "digest_file",
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
    from ._attest import AttestResult, attest
    from .bundles import keyed_bundle
    from .canonical import canonicalize
    from .codes import Code
    from .dsse import Envelope, Signature, pae
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
    )
    from .keys import (
        ALGORITHMS,
        Algorithm,
        PublicKey,
        get_algorithm,
        keyid_of_spki,
        load_public_key,
        public_key_hint,
    )
    from .limits import DEFAULT_LIMITS, Limits
    from .multisign import MultiProfileSigner, SigningRecord, SigningResult
    from .predicates import (
        PredicateType,
        known_predicate_types,
        prepare_predicate,
        register_predicate_type,
        resolve_predicate_type,
        validate_predicate,
    )
    from .profiles.software import SoftwareSigner
    from .profiles.software import generate as generate_key
    from .signer import Signer, SignerOptions, load_signer, register_scheme
    from .statement import (
        PAYLOAD_TYPE,
        STATEMENT_TYPE_V1,
        ResourceDescriptor,
        build_statement,
        digest_file,
        parse_statement,
        statement_payload,
        subject_from_digest,
        subject_from_file,
        validate_statement,
    )
    from .trust import (
        TrustRoot,
        load_trust_root,
        read_trust_root,
        verify_signed_trust_root,
    )
    from .verify import VerificationFailure, VerificationResult, verify_bundle
    from .verify import verify as verify_envelope
