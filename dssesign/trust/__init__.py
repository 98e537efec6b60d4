"""Trust roots: which keys and identities are trusted, when, for what, and how many must agree.

The format is documented field by field in ``docs/trust-root.md`` and published as the JSON
Schema ``dssesign/schemas/trust-root.v1.schema.json``. The package: the model (`model`,
`identity`), the strict loader and canonical writer (`document`, `schema`, `rules`), the
management operations (`edit`, keys and RFC 3161 timestamp authorities alike), key-rotation
handovers (`rotation`) and DSSE-signed trust roots (`signed`). This is the trust layer: it
imports nothing of signing or verification; the timestamp layer below it is imported only
when a trust root lists timestamp authorities.
"""

from __future__ import annotations

from ..errors import TrustRootError
from ._common import (
    HANDOVER_PAYLOAD_TYPE,
    HYBRID_MODES,
    MAX_IDENTITIES,
    MAX_KEYS,
    MAX_REGEXP_CHARS,
    MAX_ROOT_KEYS,
    MAX_ROTATIONS,
    MAX_SUBJECT_CHARS,
    MAX_THRESHOLD,
    MAX_TIMESTAMP_AUTHORITIES,
    MAX_TRUST_ROOT_BYTES,
    MEDIA_TYPE,
    SCHEMA_ID,
    SIGSTORE_EXTENSIONS,
    TRUST_ROOT_ERROR_CODES,
    TRUST_ROOT_EXPIRED,
    TRUST_ROOT_MALFORMED,
    TRUST_ROOT_PAYLOAD_TYPE,
    TRUST_ROOT_ROLLBACK,
    TRUST_ROOT_SIGNATURE_THRESHOLD,
    TRUST_ROOT_VERSION_CONFLICT,
    HybridMode,
    format_time,
    parse_time,
)
from .document import dump_trust_root, load_trust_root, read_trust_root, save_trust_root, to_json
from .edit import (
    add_identity,
    add_key,
    add_timestamp_authority,
    init_trust_root,
    revoke_key,
    revoke_timestamp_authority,
    set_expires,
    set_policy,
    set_root_keys,
    set_sigstore_root,
    unset_type_policy,
)
from .identity import IdentityRule, SigstoreTrust, check_subject_regexp
from .model import Policy, Revocation, RootKeys, RotationEvent, TrustedKey, TrustRoot, TypePolicy
from .rotation import (
    failed_handovers,
    handover_payload,
    rotate_key,
    rotation_chain_problem,
    verify_handover,
)
from .schema import MAX_TRUST_ROOT_ARRAY, schema
from .signed import sign_trust_root, verify_signed_trust_root, verify_trust_root_chain

__all__ = [
    "HANDOVER_PAYLOAD_TYPE",
    "HYBRID_MODES",
    "MAX_IDENTITIES",
    "MAX_KEYS",
    "MAX_REGEXP_CHARS",
    "MAX_ROOT_KEYS",
    "MAX_ROTATIONS",
    "MAX_SUBJECT_CHARS",
    "MAX_THRESHOLD",
    "MAX_TIMESTAMP_AUTHORITIES",
    "MAX_TRUST_ROOT_ARRAY",
    "MAX_TRUST_ROOT_BYTES",
    "MEDIA_TYPE",
    "SCHEMA_ID",
    "SIGSTORE_EXTENSIONS",
    "TRUST_ROOT_ERROR_CODES",
    "TRUST_ROOT_EXPIRED",
    "TRUST_ROOT_MALFORMED",
    "TRUST_ROOT_PAYLOAD_TYPE",
    "TRUST_ROOT_ROLLBACK",
    "TRUST_ROOT_SIGNATURE_THRESHOLD",
    "TRUST_ROOT_VERSION_CONFLICT",
    "HybridMode",
    "IdentityRule",
    "Policy",
    "Revocation",
    "RootKeys",
    "RotationEvent",
    "SigstoreTrust",
    "TrustRoot",
    "TrustRootError",
    "TrustedKey",
    "TypePolicy",
    "add_identity",
    "add_key",
    "add_timestamp_authority",
    "check_subject_regexp",
    "dump_trust_root",
    "failed_handovers",
    "format_time",
    "handover_payload",
    "init_trust_root",
    "load_trust_root",
    "parse_time",
    "read_trust_root",
    "revoke_key",
    "revoke_timestamp_authority",
    "rotate_key",
    "rotation_chain_problem",
    "save_trust_root",
    "schema",
    "set_expires",
    "set_policy",
    "set_root_keys",
    "set_sigstore_root",
    "sign_trust_root",
    "to_json",
    "unset_type_policy",
    "verify_handover",
    "verify_signed_trust_root",
    "verify_trust_root_chain",
]
