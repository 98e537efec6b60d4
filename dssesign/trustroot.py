"""Trust-root bundle v1: which keys are trusted, when, for what, and how many must agree.

The format is documented field by field in ``docs/trust-root.md`` and published as the JSON
Schema ``dssesign/schemas/trust-root.v1.schema.json``. This module holds the model (frozen
dataclasses), the strict loader and canonical writer, the management operations (each returns
a new `TrustRoot` with ``version + 1``), key-rotation handovers, and DSSE-signed trust roots
with chained updates and rollback protection.
"""

from __future__ import annotations

import base64
import binascii
import copy
import dataclasses
import functools
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from importlib import resources
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Literal, get_args

from ._fileio import atomic_write, read_bounded
from ._json import json_path, loads_strict, member_path
from ._schema import CompiledSchema, SchemaFailure
from ._subject_regexp import SubjectPattern, compile_subject_regexp
from .canonical import MAX_SAFE_INTEGER, canonicalize
from .codes import Code
from .dsse import Envelope, Signature, pae
from .errors import (
    CanonicalizationError,
    ConfigError,
    InputError,
    KeyFormatError,
    SigningError,
    TrustRootError,
    VerificationError,
)
from .keys import PublicKey
from .limits import DEFAULT_LIMITS, Limits

if TYPE_CHECKING:  # the verifier loads trust roots and nothing of the signing stack
    from .signer import Signer

__all__ = [
    "HANDOVER_PAYLOAD_TYPE",
    "MAX_IDENTITIES",
    "MAX_KEYS",
    "MAX_ROOT_KEYS",
    "MAX_ROTATIONS",
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

MEDIA_TYPE: Final = "application/vnd.dssesign.trust-root.v1+json"
#: payloadType of the rotation handover the old key signs (see `handover_payload`).
HANDOVER_PAYLOAD_TYPE: Final = "application/vnd.dssesign.key-handover.v1+json"
SCHEMA_ID: Final = "urn:dssesign:schema:trust-root.v1"

#: Bounds (also in the schema): they cap the work a verifier does per signature.
MAX_KEYS: Final = 256
MAX_ROOT_KEYS: Final = 32
MAX_ROTATIONS: Final = 256
MAX_THRESHOLD: Final = 256
MAX_TRUST_ROOT_BYTES: Final = 4 * 1024 * 1024
#: Keyless identity rules in one trust root.
MAX_IDENTITIES: Final = 64
#: A subjectRegExp longer than this is refused; a SAN longer than MAX_SUBJECT_CHARS never
#: matches a subjectRegExp (exact subjects are compared whatever their length). RE2 matches
#: subjectRegExps (see _subject_regexp): linear in the SAN, it cannot backtrack.
MAX_REGEXP_CHARS: Final = 512
MAX_SUBJECT_CHARS: Final = 512

#: Certificate extensions an identity rule may require, by the name used in the trust root:
#: (Fulcio OID, the sigstore-python policy class in `sigstore.verify.policy` that checks it).
SIGSTORE_EXTENSIONS: Final[Mapping[str, tuple[str, str]]] = MappingProxyType(
    {
        "githubWorkflowTrigger": ("1.3.6.1.4.1.57264.1.2", "GitHubWorkflowTrigger"),
        "githubWorkflowSha": ("1.3.6.1.4.1.57264.1.3", "GitHubWorkflowSHA"),
        "githubWorkflowName": ("1.3.6.1.4.1.57264.1.4", "GitHubWorkflowName"),
        "githubWorkflowRepository": ("1.3.6.1.4.1.57264.1.5", "GitHubWorkflowRepository"),
        "githubWorkflowRef": ("1.3.6.1.4.1.57264.1.6", "GitHubWorkflowRef"),
        "buildSignerURI": ("1.3.6.1.4.1.57264.1.9", "OIDCBuildSignerURI"),
        "buildSignerDigest": ("1.3.6.1.4.1.57264.1.10", "OIDCBuildSignerDigest"),
        "runnerEnvironment": ("1.3.6.1.4.1.57264.1.11", "OIDCRunnerEnvironment"),
        "sourceRepositoryURI": ("1.3.6.1.4.1.57264.1.12", "OIDCSourceRepositoryURI"),
        "sourceRepositoryDigest": ("1.3.6.1.4.1.57264.1.13", "OIDCSourceRepositoryDigest"),
        "sourceRepositoryRef": ("1.3.6.1.4.1.57264.1.14", "OIDCSourceRepositoryRef"),
        "sourceRepositoryIdentifier": (
            "1.3.6.1.4.1.57264.1.15",
            "OIDCSourceRepositoryIdentifier",
        ),
        "sourceRepositoryOwnerURI": ("1.3.6.1.4.1.57264.1.16", "OIDCSourceRepositoryOwnerURI"),
        "sourceRepositoryOwnerIdentifier": (
            "1.3.6.1.4.1.57264.1.17",
            "OIDCSourceRepositoryOwnerIdentifier",
        ),
        "buildConfigURI": ("1.3.6.1.4.1.57264.1.18", "OIDCBuildConfigURI"),
        "buildConfigDigest": ("1.3.6.1.4.1.57264.1.19", "OIDCBuildConfigDigest"),
        "buildTrigger": ("1.3.6.1.4.1.57264.1.20", "OIDCBuildTrigger"),
        "runInvocationURI": ("1.3.6.1.4.1.57264.1.21", "OIDCRunInvocationURI"),
        "sourceRepositoryVisibilityAtSigning": (
            "1.3.6.1.4.1.57264.1.22",
            "OIDCSourceRepositoryVisibility",
        ),
    }
)

# Stable VerificationError codes of verify_signed_trust_root.
# (Names kept for callers of this module; the codes themselves live in `codes.Code`.)
TRUST_ROOT_MALFORMED: Final = Code.TRUST_ROOT_MALFORMED
TRUST_ROOT_PAYLOAD_TYPE: Final = Code.TRUST_ROOT_PAYLOAD_TYPE
TRUST_ROOT_SIGNATURE_THRESHOLD: Final = Code.TRUST_ROOT_SIGNATURE_THRESHOLD
TRUST_ROOT_ROLLBACK: Final = Code.TRUST_ROOT_ROLLBACK
TRUST_ROOT_VERSION_CONFLICT: Final = Code.TRUST_ROOT_VERSION_CONFLICT
TRUST_ROOT_EXPIRED: Final = Code.TRUST_ROOT_EXPIRED
TRUST_ROOT_ERROR_CODES: Final = (
    TRUST_ROOT_MALFORMED,
    TRUST_ROOT_PAYLOAD_TYPE,
    TRUST_ROOT_SIGNATURE_THRESHOLD,
    TRUST_ROOT_ROLLBACK,
    TRUST_ROOT_VERSION_CONFLICT,
    TRUST_ROOT_EXPIRED,
)

HybridMode = Literal["off", "or", "and", "pq-only"]
HYBRID_MODES: Final[tuple[str, ...]] = get_args(HybridMode)


def _fail(path: str, message: str) -> TrustRootError:
    return TrustRootError(f"trust root {path}: {message}", path)


# --- model -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Revocation:
    time: datetime
    reason: str = ""


@dataclass(frozen=True)
class TrustedKey:
    """One signing key; `keyid` is always recomputed from `public_key` on load."""

    public_key: PublicKey
    label: str | None = None
    #: Validity window, both ends inclusive; None leaves that side open.
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    #: Predicate type URIs this key may attest to; empty means any.
    predicate_types: tuple[str, ...] = ()
    revocation: Revocation | None = None

    @property
    def keyid(self) -> str:
        return self.public_key.keyid

    def valid_at(self, moment: datetime) -> bool:
        """Inside [validFrom, validUntil] (inclusive, like sigstore's `validFor`)."""
        return (self.valid_from is None or self.valid_from <= moment) and (
            self.valid_until is None or moment <= self.valid_until
        )

    def revoked_at(self, moment: datetime) -> bool:
        """Revoked from the revocation time on (inclusive)."""
        return self.revocation is not None and self.revocation.time <= moment

    def usable_at(self, moment: datetime) -> bool:
        return self.valid_at(moment) and not self.revoked_at(moment)

    def allows(self, predicate_type: str) -> bool:
        """May this key attest to `predicate_type`? (exact string match; empty list: any)."""
        return not self.predicate_types or predicate_type in self.predicate_types


@dataclass(frozen=True)
class TypePolicy:
    threshold: int
    required_keyids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Policy:
    #: k: distinct trusted keys whose signatures must verify.
    threshold: int = 1
    required_keyids: tuple[str, ...] = ()
    #: predicate type URI -> policy overriding threshold/required keyids for that type.
    per_type: Mapping[str, TypePolicy] = field(default_factory=dict)
    hybrid: HybridMode = "off"

    def for_type(self, predicate_type: str) -> TypePolicy:
        """The threshold and required keyids that apply to `predicate_type`."""
        found = self.per_type.get(predicate_type)
        return found if found is not None else TypePolicy(self.threshold, self.required_keyids)


@dataclass(frozen=True)
class RotationEvent:
    """The old key's signature over the handover to the new key; both count until the deadline."""

    from_keyid: str
    to_keyid: str
    time: datetime
    transition_deadline: datetime
    #: Signature by the old key over PAE(HANDOVER_PAYLOAD_TYPE, handover_payload(...)).
    handover_signature: bytes


@dataclass(frozen=True)
class RootKeys:
    """Keys allowed to sign the trust root itself, and how many must."""

    keys: tuple[PublicKey, ...] = ()
    threshold: int = 1


@dataclass(frozen=True)
class IdentityRule:
    """A keyless signer whose signatures count: OIDC issuer plus certificate SAN (and extensions).

    `subject` is compared exactly; `subject_regexp` must match the whole SAN (it is implicitly
    anchored, unlike cosign's unanchored `--certificate-identity-regexp`).
    """

    issuer: str
    subject: str | None = None
    subject_regexp: str | None = None
    #: Rule name (a key of SIGSTORE_EXTENSIONS) -> exact value the certificate must carry.
    extensions: Mapping[str, str] = field(default_factory=dict)
    #: Predicate type URIs this identity may attest to; empty means any.
    predicate_types: tuple[str, ...] = ()
    label: str | None = None

    def matches_subject(self, san: str) -> bool:
        """Does `san` satisfy this rule's subject (exact or whole-string regexp)?"""
        if not isinstance(san, str):
            return False
        if self.subject is not None:
            return san == self.subject
        if len(san) > MAX_SUBJECT_CHARS:
            return False
        if self.subject_regexp is None:  # pragma: no cover - the loader refuses it
            return False
        try:
            pattern = compile_subject_regexp(self.subject_regexp)
        except ValueError:  # refused on load; a rule built in memory with one matches nothing
            return False
        return pattern.matches(san)

    def allows(self, predicate_type: str) -> bool:
        return not self.predicate_types or predicate_type in self.predicate_types

    def describe(self) -> str:
        """Short human form for messages: the label, else issuer and subject."""
        if self.label:
            return self.label
        return f"{self.issuer} {self.shown_subject}"

    @property
    def shown_subject(self) -> str:
        """The exact subject, or `~` and the subjectRegExp."""
        return self.subject if self.subject is not None else f"~{self.subject_regexp}"

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"issuer": self.issuer}
        if self.subject is not None:
            entry["subject"] = self.subject
        if self.subject_regexp is not None:
            entry["subjectRegExp"] = self.subject_regexp
        if self.extensions:
            entry["extensions"] = dict(self.extensions)
        if self.predicate_types:
            entry["predicateTypes"] = list(self.predicate_types)
        if self.label is not None:
            entry["label"] = self.label
        return entry


@dataclass(frozen=True)
class SigstoreTrust:
    """The parsed `sigstore` section: the embedded trusted_root.json and the identity rules."""

    #: The Sigstore trusted root exactly as embedded (JSON values; treat as read-only).
    trusted_root: Mapping[str, Any]
    identities: tuple[IdentityRule, ...]


@dataclass(frozen=True)
class TrustRoot:
    version: int
    expires: datetime
    keys: tuple[TrustedKey, ...]
    policy: Policy
    rotations: tuple[RotationEvent, ...] = ()
    root: RootKeys = field(default_factory=RootKeys)
    #: Sigstore keyless trust (trusted root + identity rules) as JSON values, read-only; the
    #: checked model of it is `keyless`.
    sigstore: Mapping[str, object] | None = None

    @cached_property
    def keyless(self) -> SigstoreTrust | None:
        """The `sigstore` section parsed (None without one); TrustRootError if it is invalid."""
        return None if self.sigstore is None else _parse_sigstore(self.sigstore)

    @cached_property
    def _by_keyid(self) -> dict[str, TrustedKey]:
        return {k.keyid: k for k in self.keys}

    def key(self, keyid: str) -> TrustedKey | None:
        """The trusted signing key with this keyid, if any."""
        return self._by_keyid.get(keyid)

    @cached_property
    def _rotations_by_target(self) -> dict[str, RotationEvent]:
        found: dict[str, RotationEvent] = {}
        for event in self.rotations:
            found.setdefault(event.to_keyid, event)
        return found

    @cached_property
    def _rotations_by_source(self) -> dict[str, RotationEvent]:
        found: dict[str, RotationEvent] = {}
        for event in self.rotations:
            found.setdefault(event.from_keyid, event)
        return found

    def rotation_to(self, keyid: str) -> RotationEvent | None:
        """The rotation that introduced `keyid` (its handover must verify for it to count)."""
        return self._rotations_by_target.get(keyid)

    def rotation_from(self, keyid: str) -> RotationEvent | None:
        """The rotation that retires `keyid` (it counts until that event's deadline)."""
        return self._rotations_by_source.get(keyid)

    def successors(self, keyid: str) -> tuple[str, ...]:
        """Keys `keyid` was rotated to, in order (A→B→C gives (B, C)); the chain is acyclic."""
        chain: list[str] = []
        event = self.rotation_from(keyid)
        while event is not None and len(chain) < len(self.rotations):
            chain.append(event.to_keyid)
            event = self.rotation_from(event.to_keyid)
        return tuple(chain)

    @property
    def media_type(self) -> str:
        return MEDIA_TYPE


# --- times -----------------------------------------------------------------------------------

_TIME: Final = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})Z")


def parse_time(text: str, *, what: str = "time") -> datetime:
    """RFC 3339 UTC with whole seconds, exactly ``YYYY-MM-DDTHH:MM:SSZ`` (the one spelling)."""
    match = _TIME.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise TrustRootError(
            f"{what}: {text!r} is not an RFC 3339 UTC time like 2026-01-31T12:00:00Z", what
        )
    year, month, day, hour, minute, second = (int(g) for g in match.groups())
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError as exc:  # month 13, Feb 30, second 60 (no leap seconds)
        raise TrustRootError(f"{what}: {text!r} is not a valid time ({exc})", what) from None


def format_time(moment: datetime) -> str:
    """The one spelling of a time in a trust root (4-digit year, whole seconds, 'Z')."""
    t = moment.astimezone(UTC)
    return f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}Z"


def _aware(moment: datetime, what: str) -> datetime:
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise ConfigError(f"{what}: must be a timezone-aware datetime")
    return moment.astimezone(UTC)


def _whole_seconds(moment: datetime, what: str, *, round_up: bool = False) -> datetime:
    """A user-given time to the format's precision, rounded toward the stricter side."""
    t = _aware(moment, what)
    if t.microsecond:
        t = t.replace(microsecond=0) + (timedelta(seconds=1) if round_up else timedelta())
    return t


def _now(now: datetime | None) -> datetime:
    return _whole_seconds(datetime.now(UTC) if now is None else now, "now")


# --- schema ----------------------------------------------------------------------------------


def schema() -> dict[str, Any]:
    """The published JSON Schema (draft 2020-12) of trust-root v1, shipped in the package."""
    return copy.deepcopy(_schema())


@functools.cache
def _schema() -> dict[str, Any]:
    text = (
        resources.files(__package__ or "dssesign")
        .joinpath("schemas", "trust-root.v1.schema.json")
        .read_text(encoding="utf-8")
    )
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@functools.cache
def _validator() -> CompiledSchema:
    """The trust-root schema, compiled once (jsonschema-rs: see `_schema`). No formats."""
    return CompiledSchema(_schema())


#: Longest array anywhere in a trust root (the schema's largest maxItems); checked in one linear
#: walk before the schema, so no keyword ever runs over an attacker-sized array.
MAX_TRUST_ROOT_ARRAY: Final = 256


def _check_array_sizes(document: object) -> None:
    stack: list[tuple[object, tuple[object, ...]]] = [(document, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            stack.extend((v, (*path, k)) for k, v in node.items() if isinstance(v, dict | list))
        elif isinstance(node, list):
            if len(node) > MAX_TRUST_ROOT_ARRAY:
                raise _fail(
                    json_path(path),
                    f"{len(node)} items exceed the limit of {MAX_TRUST_ROOT_ARRAY} per array",
                )
            stack.extend((v, (*path, i)) for i, v in enumerate(node) if isinstance(v, dict | list))


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _schema_error(error: SchemaFailure) -> TrustRootError:
    elements: list[object] = list(error.path)
    instance = error.instance
    if error.keyword == "additionalProperties" and isinstance(instance, dict):
        allowed = error.holder.get("properties", {})
        extra = sorted(k for k in instance if k not in allowed)
        if extra and allowed:
            known = ", ".join(sorted(allowed))
            return _fail(json_path([*elements, extra[0]]), f"unknown field (allowed here: {known})")
    if error.keyword == "required" and isinstance(instance, dict):
        required = error.value if isinstance(error.value, list) else []
        missing = [name for name in required if name not in instance]
        if missing:
            return _fail(json_path([*elements, missing[0]]), "required field is missing")
    if error.under_property_names:
        shown = _clip(json.dumps(instance), 80)
        return _fail(json_path(elements), f"member name {shown} {_schema_message(error)}")
    if isinstance(instance, str | int | float | bool) or instance is None:
        shown = _clip(json.dumps(instance), 80)
        message = error.message
        if error.keyword in (
            "pattern",
            "type",
            "enum",
            "const",
            "minimum",
            "maximum",
            "minLength",
            "maxLength",
        ):
            message = f"{shown} {_schema_message(error)}"
        return _fail(json_path(elements), _clip(message))
    return _fail(json_path(elements), _clip(_schema_message(error)))


def _schema_message(error: SchemaFailure) -> str:
    value = error.value
    kind = error.keyword
    if kind == "type":
        return f"is not of type {value!r}"
    if kind == "enum" and isinstance(value, list):
        return "is not one of " + ", ".join(json.dumps(v) for v in value)
    if kind == "const":
        return f"must be {json.dumps(value)}"
    if kind == "minimum":
        return f"is less than the minimum of {value}"
    if kind == "maximum":
        return f"is greater than the maximum of {value}"
    if kind == "pattern":
        return _pattern_hints().get(str(value), f"does not match the pattern {value!r}")
    if kind == "minLength":
        return "must not be empty" if value == 1 else f"is shorter than {value} characters"
    if kind == "maxLength":
        return f"is longer than {value} characters"
    if kind == "maxItems":
        return f"has more than {value} items"
    if kind == "minItems":
        return f"must have at least {value} item(s); omit the field instead of leaving it empty"
    if kind == "minProperties":
        return "must not be empty; omit the field instead"
    if kind == "uniqueItems":
        return "has duplicate items"
    if kind == "oneOf":  # the only oneOf: an identity rule's subject
        return "needs exactly one of subject and subjectRegExp"
    return error.message


@functools.cache
def _pattern_hints() -> dict[str, str]:
    """Plain-language messages for the schema's patterns (a regex helps nobody)."""
    defs = _schema()["$defs"]
    return {
        defs["time"]["pattern"]: (
            "is not an RFC 3339 UTC time with whole seconds, like 2026-01-31T12:00:00Z"
        ),
        defs["keyid"]["pattern"]: (
            "is not a keyid (64 lower-case hex digits: SHA-256 of the key's DER SPKI)"
        ),
        defs["publicKey"]["pattern"]: "is not a PEM SubjectPublicKeyInfo",
        defs["typeUri"]["pattern"]: (
            "is not an absolute URI (lower-case scheme, printable ASCII, no spaces)"
        ),
        defs["text"]["pattern"]: "contains control characters",
        defs["rotation"]["properties"]["handoverSignature"]["pattern"]: (
            "is not standard padded base64"
        ),
    }


def _schema_check(document: Any) -> None:
    error = _validator().best_failure(document)
    if error is not None:
        raise _schema_error(error)


# --- JSON -> model ---------------------------------------------------------------------------


def load_trust_root(
    data: bytes | str, *, allow_incomplete: bool = False, limits: Limits = DEFAULT_LIMITS
) -> TrustRoot:
    """Parse and check a trust-root document; raise TrustRootError naming the JSON path.

    Strict JSON (duplicate members refused), then the schema (unknown fields refused), then the
    semantic rules: keyids recomputed from the keys, no key twice, algorithms matching keys,
    keyid references resolving, time order, thresholds reachable. `allow_incomplete` accepts
    a trust root still being assembled (a threshold higher than the keys that could meet it),
    for the management commands; verifiers never set it.
    """
    bounded = dataclasses.replace(
        limits, max_json_bytes=min(limits.max_json_bytes, MAX_TRUST_ROOT_BYTES)
    )
    document = loads_strict(data, what="trust root", limits=bounded, error=TrustRootError)
    return _load_document(document, allow_incomplete=allow_incomplete)


def _load_document(document: object, *, allow_incomplete: bool) -> TrustRoot:
    _check_array_sizes(document)
    _schema_check(document)
    assert isinstance(document, dict)  # the schema's "type": "object"
    root = _from_json(document)
    _validate(root, complete=not allow_incomplete)
    return root


def read_trust_root(path: str | os.PathLike[str], *, allow_incomplete: bool = False) -> TrustRoot:
    """`load_trust_root` on a file, read with a size bound."""
    data = read_bounded(path, limit=MAX_TRUST_ROOT_BYTES, what="trust root")
    return load_trust_root(data, allow_incomplete=allow_incomplete)


def _public_key(entry: Mapping[str, Any], path: str, seen: dict[bytes, str]) -> PublicKey:
    """Load one key entry: canonical PEM, allow-listed algorithm, no duplicate, keyid matches."""
    pem: str = entry["publicKey"]
    try:
        key = PublicKey.from_pem(pem.encode("ascii"), source=f"{path}.publicKey")
    except KeyFormatError as exc:
        raise _fail(f"{path}.publicKey", str(exc).removeprefix(f"{path}.publicKey: ")) from None
    if key.pem != pem:
        raise _fail(
            f"{path}.publicKey",
            "not in canonical PEM form (one SubjectPublicKeyInfo block, 64-character lines, "
            "LF line ends, final newline); re-export the key with dssesign",
        )
    if key.spki_der in seen:
        raise _fail(f"{path}.publicKey", f"the same key is already listed at {seen[key.spki_der]}")
    seen[key.spki_der] = path
    if entry["algorithm"] != key.algorithm.name:
        raise _fail(
            f"{path}.algorithm",
            f"{json.dumps(entry['algorithm'])} does not match the key, which is "
            f"{key.algorithm.name}",
        )
    if entry["keyid"] != key.keyid:
        raise _fail(
            f"{path}.keyid",
            f"{entry['keyid']} does not match the key (SHA-256 of its SPKI is {key.keyid})",
        )
    return key


def _from_json(document: Mapping[str, Any]) -> TrustRoot:
    seen: dict[bytes, str] = {}
    keys = []
    for index, entry in enumerate(document["keys"]):
        path = f"$.keys[{index}]"
        public_key = _public_key(entry, path, seen)
        revocation = None
        if "revoked" in entry:
            revocation = Revocation(
                time=parse_time(entry["revoked"]["time"], what=f"{path}.revoked.time"),
                reason=entry["revoked"]["reason"],
            )
        keys.append(
            TrustedKey(
                public_key=public_key,
                label=entry.get("label"),
                valid_from=_optional_time(entry, "validFrom", path),
                valid_until=_optional_time(entry, "validUntil", path),
                predicate_types=tuple(entry.get("predicateTypes", ())),
                revocation=revocation,
            )
        )
    policy_doc = document["policy"]
    policy = Policy(
        threshold=policy_doc["threshold"],
        required_keyids=tuple(policy_doc.get("requiredKeyids", ())),
        per_type={
            uri: TypePolicy(
                threshold=entry["threshold"],
                required_keyids=tuple(entry.get("requiredKeyids", ())),
            )
            for uri, entry in policy_doc.get("perType", {}).items()
        },
        hybrid=policy_doc["hybrid"],
    )
    rotations = []
    for index, entry in enumerate(document["rotations"]):
        path = f"$.rotations[{index}]"
        rotations.append(
            RotationEvent(
                from_keyid=entry["fromKeyid"],
                to_keyid=entry["toKeyid"],
                time=parse_time(entry["time"], what=f"{path}.time"),
                transition_deadline=parse_time(
                    entry["transitionDeadline"], what=f"{path}.transitionDeadline"
                ),
                handover_signature=_b64decode(
                    entry["handoverSignature"], f"{path}.handoverSignature"
                ),
            )
        )
    root_keys = RootKeys()
    if "rootKeys" in document:
        root_seen: dict[bytes, str] = {}
        root_keys = RootKeys(
            keys=tuple(
                _public_key(entry, f"$.rootKeys.keys[{index}]", root_seen)
                for index, entry in enumerate(document["rootKeys"]["keys"])
            ),
            threshold=document["rootKeys"]["threshold"],
        )
    return TrustRoot(
        version=document["version"],
        expires=parse_time(document["expires"], what="$.expires"),
        keys=tuple(keys),
        policy=policy,
        rotations=tuple(rotations),
        root=root_keys,
        sigstore=document.get("sigstore"),
    )


def _optional_time(entry: Mapping[str, Any], name: str, path: str) -> datetime | None:
    return parse_time(entry[name], what=f"{path}.{name}") if name in entry else None


def _b64decode(text: str, path: str) -> bytes:
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise _fail(path, "not valid base64") from None
    if base64.b64encode(data).decode("ascii") != text:
        raise _fail(path, "non-canonical base64 (use standard, padded base64)")
    return data


# --- semantic rules (shared by the loader and every management operation) ------------------

_TYPE_URI: Final = re.compile(r"[a-z][a-z0-9+.-]*:[!-~]+")
_KEYID: Final = re.compile(r"[0-9a-f]{64}")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")


def _check_time(value: object, path: str) -> None:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise _fail(path, "must be a timezone-aware datetime")
    if value.microsecond:
        raise _fail(path, "must be whole seconds (the format has no fractions)")
    if not 1 <= value.astimezone(UTC).year <= 9999:
        raise _fail(path, "year out of range")


def _check_text(value: object, path: str, *, empty_ok: bool, limit: int) -> None:
    if not isinstance(value, str):
        raise _fail(path, "must be a string")
    if not value and not empty_ok:
        raise _fail(path, "must not be empty; omit it instead")
    if len(value) > limit:
        raise _fail(path, f"longer than {limit} characters")
    if _CONTROL.search(value):
        raise _fail(path, "contains control characters")


def _check_type_uri(value: object, path: str) -> None:
    if not isinstance(value, str) or len(value) > 2048 or not _TYPE_URI.fullmatch(value):
        raise _fail(
            path,
            f"{_clip(repr(value), 80)} is not an absolute URI "
            "(lower-case scheme, printable ASCII, no spaces)",
        )


def _check_type_uris(values: Sequence[object], path: str) -> None:
    """A key's or an identity's predicateTypes: absolute URIs, none twice."""
    for i, uri in enumerate(values):
        _check_type_uri(uri, f"{path}[{i}]")
    if len(set(values)) != len(values):
        raise _fail(path, "lists a predicate type twice")


def _check_threshold(value: object, path: str, maximum: int = MAX_THRESHOLD) -> int:
    if type(value) is not int or not 1 <= value <= maximum:
        raise _fail(path, f"must be an integer from 1 to {maximum}, got {value!r}")
    return value


def _check_required(keyids: object, path: str, root: TrustRoot, predicate_type: str | None) -> None:
    if not isinstance(keyids, tuple):
        raise _fail(path, "must be a tuple of keyids")
    if len(set(keyids)) != len(keyids):
        raise _fail(path, "lists a keyid twice")
    for index, keyid in enumerate(keyids):
        key = root.key(keyid) if isinstance(keyid, str) else None
        if key is None:
            raise _fail(f"{path}[{index}]", f"{_clip(repr(keyid), 80)} is not a key in $.keys")
        if predicate_type is not None and not key.allows(predicate_type):
            raise _fail(
                f"{path}[{index}]",
                f"key {keyid} is required for {predicate_type} but may not attest to it "
                "(its predicateTypes exclude it)",
            )


def _validate(root: TrustRoot, *, complete: bool) -> None:
    """Every rule the model must satisfy; raises TrustRootError with the JSON path."""
    if type(root.version) is not int or not 1 <= root.version <= MAX_SAFE_INTEGER:
        raise _fail("$.version", f"must be an integer from 1 to {MAX_SAFE_INTEGER}")
    _check_time(root.expires, "$.expires")
    if len(root.keys) > MAX_KEYS:
        raise _fail("$.keys", f"more than {MAX_KEYS} keys")
    seen: dict[bytes, int] = {}
    for index, key in enumerate(root.keys):
        _validate_key(key, f"$.keys[{index}]", seen, index)
    _validate_policy(root)
    _validate_rotations(root)
    _validate_root_keys(root.root)
    if root.sigstore is not None:
        if not isinstance(root.sigstore, dict):
            raise _fail("$.sigstore", "must be a JSON object")
        try:
            encoded = canonicalize(root.sigstore)
            # A float like 2.0**53 canonicalizes to an integer JSON cannot carry exactly.
            stable = canonicalize(json.loads(encoded)) == encoded
        except CanonicalizationError as exc:
            raise _fail("$.sigstore", str(exc)) from None
        if not stable:
            raise _fail("$.sigstore", "holds a number that does not survive canonical JSON")
        root.keyless  # noqa: B018 - parsed once here, kept for _validate_reachable and verify
    if complete:
        _validate_reachable(root)


def _validate_key(key: TrustedKey, path: str, seen: dict[bytes, int], index: int) -> None:
    if not isinstance(key, TrustedKey) or not isinstance(key.public_key, PublicKey):
        raise _fail(path, "must be a TrustedKey holding a PublicKey")
    spki = key.public_key.spki_der
    if spki in seen:
        raise _fail(f"{path}.publicKey", f"the same key is already listed at $.keys[{seen[spki]}]")
    seen[spki] = index
    if key.label is not None:
        _check_text(key.label, f"{path}.label", empty_ok=False, limit=256)
    if key.valid_from is not None:
        _check_time(key.valid_from, f"{path}.validFrom")
    if key.valid_until is not None:
        _check_time(key.valid_until, f"{path}.validUntil")
    if (
        key.valid_from is not None
        and key.valid_until is not None
        and key.valid_from >= key.valid_until
    ):
        raise _fail(
            f"{path}.validUntil",
            f"{format_time(key.valid_until)} is not after validFrom {format_time(key.valid_from)}",
        )
    if not isinstance(key.predicate_types, tuple) or len(key.predicate_types) > 64:
        raise _fail(f"{path}.predicateTypes", "must be a tuple of at most 64 URIs")
    _check_type_uris(key.predicate_types, f"{path}.predicateTypes")
    if key.revocation is not None:
        _check_time(key.revocation.time, f"{path}.revoked.time")
        _check_text(key.revocation.reason, f"{path}.revoked.reason", empty_ok=True, limit=1024)


def _validate_policy(root: TrustRoot) -> None:
    policy = root.policy
    _check_threshold(policy.threshold, "$.policy.threshold")
    _check_required(policy.required_keyids, "$.policy.requiredKeyids", root, None)
    if policy.hybrid not in HYBRID_MODES:
        raise _fail("$.policy.hybrid", f"{policy.hybrid!r} is not one of {', '.join(HYBRID_MODES)}")
    if len(policy.per_type) > 64:
        raise _fail("$.policy.perType", "more than 64 predicate types")
    for uri, type_policy in policy.per_type.items():
        _check_type_uri(uri, "$.policy.perType")
        path = json_path(["policy", "perType", uri])
        if not isinstance(type_policy, TypePolicy):
            raise _fail(path, "must be a TypePolicy")
        _check_threshold(type_policy.threshold, f"{path}.threshold")
        _check_required(type_policy.required_keyids, f"{path}.requiredKeyids", root, uri)


def _validate_rotations(root: TrustRoot) -> None:
    if len(root.rotations) > MAX_ROTATIONS:
        raise _fail("$.rotations", f"more than {MAX_ROTATIONS} rotations")
    sources: dict[str, int] = {}
    targets: dict[str, int] = {}
    for index, event in enumerate(root.rotations):
        path = f"$.rotations[{index}]"
        if not isinstance(event, RotationEvent):
            raise _fail(path, "must be a RotationEvent")
        for name, keyid in (("fromKeyid", event.from_keyid), ("toKeyid", event.to_keyid)):
            if not isinstance(keyid, str) or root.key(keyid) is None:
                raise _fail(f"{path}.{name}", f"{_clip(repr(keyid), 80)} is not a key in $.keys")
        if event.from_keyid == event.to_keyid:
            raise _fail(f"{path}.toKeyid", "a key cannot be rotated to itself")
        if event.from_keyid in sources:
            raise _fail(
                f"{path}.fromKeyid",
                f"this key was already rotated away at $.rotations[{sources[event.from_keyid]}]",
            )
        if event.to_keyid in targets:
            raise _fail(
                f"{path}.toKeyid",
                f"this key was already introduced at $.rotations[{targets[event.to_keyid]}]",
            )
        sources[event.from_keyid] = index
        targets[event.to_keyid] = index
        _check_time(event.time, f"{path}.time")
        _check_time(event.transition_deadline, f"{path}.transitionDeadline")
        if event.transition_deadline < event.time:
            raise _fail(f"{path}.transitionDeadline", "is before the rotation time")
        if not isinstance(event.handover_signature, bytes) or not event.handover_signature:
            raise _fail(f"{path}.handoverSignature", "must be non-empty signature bytes")
        if len(event.handover_signature) > DEFAULT_LIMITS.max_signature_bytes:
            raise _fail(f"{path}.handoverSignature", "larger than a signature can be")
        old = root.key(event.from_keyid)
        assert old is not None  # checked above
        if old.valid_until is None or old.valid_until > event.transition_deadline:
            old_index = root.keys.index(old)
            raise _fail(
                f"$.keys[{old_index}].validUntil",
                "a rotated-away key must stop being valid by its transition deadline "
                f"({format_time(event.transition_deadline)}, $.rotations[{index}])",
            )
    # With one rotation per source and per target, the events form paths and cycles; a cycle
    # would let two keys vouch for each other, so refuse it.
    for start, start_index in sources.items():
        keyid, steps = start, 0
        while keyid in sources and steps <= len(sources):
            keyid = root.rotations[sources[keyid]].to_keyid
            steps += 1
            if keyid == start:
                raise _fail(f"$.rotations[{start_index}]", "rotations form a cycle")


def _validate_root_keys(root_keys: RootKeys) -> None:
    if not isinstance(root_keys, RootKeys):
        raise _fail("$.rootKeys", "must be RootKeys")
    if not root_keys.keys:
        if root_keys.threshold != 1:
            raise _fail("$.rootKeys.threshold", "set without any root keys")
        return
    if len(root_keys.keys) > MAX_ROOT_KEYS:
        raise _fail("$.rootKeys.keys", f"more than {MAX_ROOT_KEYS} root keys")
    seen: dict[bytes, int] = {}
    for index, key in enumerate(root_keys.keys):
        if not isinstance(key, PublicKey):
            raise _fail(f"$.rootKeys.keys[{index}]", "must be a PublicKey")
        if key.spki_der in seen:
            raise _fail(
                f"$.rootKeys.keys[{index}].publicKey",
                f"the same key is already listed at $.rootKeys.keys[{seen[key.spki_der]}]",
            )
        seen[key.spki_der] = index
    _check_threshold(root_keys.threshold, "$.rootKeys.threshold", len(root_keys.keys))


def _validate_reachable(root: TrustRoot) -> None:
    """Refuse a policy no set of listed keys could ever meet (a typo that would fail closed)."""
    policy = root.policy
    checks: list[tuple[str, str | None, TypePolicy]] = [
        ("$.policy", None, TypePolicy(policy.threshold, policy.required_keyids))
    ]
    checks += [
        (json_path(["policy", "perType", uri]), uri, tp) for uri, tp in policy.per_type.items()
    ]
    rules = root.keyless.identities if root.keyless is not None else ()
    for path, uri, type_policy in checks:
        eligible = [k for k in root.keys if uri is None or k.allows(uri)]
        # A keyless identity (an ECDSA certificate key) counts like one classical key.
        identities = sum(1 for rule in rules if uri is None or rule.allows(uri))
        classical = sum(not k.public_key.algorithm.post_quantum for k in eligible) + identities
        quantum = len(eligible) + identities - classical
        what = "keys" if uri is None else f"keys allowed for {uri}"
        if policy.hybrid == "pq-only":
            if quantum < type_policy.threshold:
                raise _fail(
                    f"{path}.threshold",
                    f"{type_policy.threshold} exceeds the {quantum} ML-DSA {what} "
                    "(hybrid 'pq-only' counts only post-quantum keys); add keys or lower it",
                )
            for keyid in type_policy.required_keyids:
                key = root.key(keyid)
                if key is not None and not key.public_key.algorithm.post_quantum:
                    raise _fail(
                        f"{path}.requiredKeyids",
                        f"{keyid} is a classical key, which hybrid 'pq-only' never counts",
                    )
        elif policy.hybrid == "and":
            if classical < type_policy.threshold or quantum < 1:
                raise _fail(
                    f"{path}.threshold",
                    f"hybrid 'and' needs {type_policy.threshold} classical {what} and at least "
                    f"one ML-DSA key; there are {classical} classical and {quantum} ML-DSA",
                )
        elif len(eligible) + identities < type_policy.threshold:
            extra = f" and {identities} keyless identities" if identities else ""
            raise _fail(
                f"{path}.threshold",
                f"{type_policy.threshold} exceeds the {len(eligible)} {what}{extra}; "
                "add keys or lower the threshold",
            )


# --- the sigstore section --------------------------------------------------------------------

_TRUSTED_ROOT_MEDIA_TYPE: Final = re.compile(
    r"application/vnd\.dev\.sigstore\.trustedroot(\+json;version=0\.1|\.v0\.[0-9]+\+json)"
)
_IDENTITY_FIELDS: Final = frozenset(
    {"issuer", "subject", "subjectRegExp", "extensions", "predicateTypes", "label"}
)
_TRUSTED_ROOT_LISTS: Final = ("tlogs", "ctlogs", "certificateAuthorities", "timestampAuthorities")


def check_subject_regexp(text: str) -> SubjectPattern:
    """Compile a subjectRegExp to match whole SANs with RE2 (raises ValueError if refused).

    At most MAX_REGEXP_CHARS characters of Python regular-expression syntax. RE2 matches in
    time linear in the SAN whatever the expression, so no shape is refused for speed; what RE2
    cannot do or would read unlike Python is (back-references, look-around, ``$`` before the
    end, ``\\b``...: see `dssesign._subject_regexp`).
    """
    if not isinstance(text, str) or not text:
        raise ValueError("must be a non-empty string")
    if len(text) > MAX_REGEXP_CHARS:
        raise ValueError(f"longer than {MAX_REGEXP_CHARS} characters")
    return compile_subject_regexp(text)


def _identity_text(value: object, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(path, "must be a non-empty string")
    _check_text(value, path, empty_ok=False, limit=1024)
    return value


def _parse_identity(entry: object, path: str) -> IdentityRule:
    if not isinstance(entry, Mapping):
        raise _fail(path, "must be a JSON object")
    unknown = sorted(set(entry) - _IDENTITY_FIELDS)
    if unknown:
        known = ", ".join(sorted(_IDENTITY_FIELDS))
        raise _fail(f"{path}.{unknown[0]}", f"unknown field (allowed here: {known})")
    if "issuer" not in entry:
        raise _fail(f"{path}.issuer", "required field is missing")
    issuer = _identity_text(entry["issuer"], f"{path}.issuer")
    if ("subject" in entry) == ("subjectRegExp" in entry):
        raise _fail(path, "needs exactly one of subject and subjectRegExp")
    subject = regexp = None
    if "subject" in entry:
        subject = _identity_text(entry["subject"], f"{path}.subject")
    else:
        regexp = entry["subjectRegExp"]
        _check_text(regexp, f"{path}.subjectRegExp", empty_ok=False, limit=MAX_REGEXP_CHARS)
        try:
            check_subject_regexp(regexp)
        except ValueError as exc:
            raise _fail(f"{path}.subjectRegExp", str(exc)) from None
    extensions: dict[str, str] = {}
    if "extensions" in entry:
        given = entry["extensions"]
        if not isinstance(given, Mapping) or not given or len(given) > 32:
            raise _fail(f"{path}.extensions", "must be an object of 1 to 32 extensions")
        for name, value in given.items():
            if name not in SIGSTORE_EXTENSIONS:
                known = ", ".join(SIGSTORE_EXTENSIONS)
                raise _fail(
                    f"{path}.extensions",
                    f"{_clip(repr(name), 80)} is not a known extension (known: {known})",
                )
            extensions[name] = _identity_text(value, member_path(f"{path}.extensions", name))
    predicate_types: tuple[str, ...] = ()
    if "predicateTypes" in entry:
        given_types = entry["predicateTypes"]
        if not isinstance(given_types, list | tuple) or not 1 <= len(given_types) <= 64:
            raise _fail(f"{path}.predicateTypes", "must be a list of 1 to 64 URIs")
        _check_type_uris(given_types, f"{path}.predicateTypes")
        predicate_types = tuple(given_types)
    label = entry.get("label")
    if label is not None:
        _check_text(label, f"{path}.label", empty_ok=False, limit=256)
    return IdentityRule(
        issuer=issuer,
        subject=subject,
        subject_regexp=regexp,
        extensions=MappingProxyType(extensions),
        predicate_types=predicate_types,
        label=label,
    )


def _parse_sigstore(raw: Mapping[str, object]) -> SigstoreTrust:
    """Check the `sigstore` section's shape and rules (the schema's, for in-memory roots too)."""
    if not isinstance(raw, Mapping):
        raise _fail("$.sigstore", "must be a JSON object")
    unknown = sorted(set(raw) - {"trustedRoot", "identities"})
    if unknown:
        raise _fail(
            f"$.sigstore.{unknown[0]}", "unknown field (allowed here: identities, trustedRoot)"
        )
    for name in ("trustedRoot", "identities"):
        if name not in raw:
            raise _fail(f"$.sigstore.{name}", "required field is missing")
    trusted_root = raw["trustedRoot"]
    if not isinstance(trusted_root, Mapping):
        raise _fail("$.sigstore.trustedRoot", "must be a JSON object (a trusted_root.json)")
    media_type = trusted_root.get("mediaType")
    if not isinstance(media_type, str) or not _TRUSTED_ROOT_MEDIA_TYPE.fullmatch(media_type):
        raise _fail(
            "$.sigstore.trustedRoot.mediaType",
            f"{_clip(repr(media_type), 80)} is not a Sigstore trusted root media type "
            "(application/vnd.dev.sigstore.trustedroot+json;version=0.1)",
        )
    for name in _TRUSTED_ROOT_LISTS:
        items = trusted_root.get(name, [])
        if not isinstance(items, list) or len(items) > 64:
            raise _fail(f"$.sigstore.trustedRoot.{name}", "must be a list of at most 64 entries")
    identities = raw["identities"]
    if not isinstance(identities, list | tuple) or len(identities) > MAX_IDENTITIES:
        raise _fail("$.sigstore.identities", f"must be a list of at most {MAX_IDENTITIES} rules")
    rules: list[IdentityRule] = []
    seen: dict[bytes, int] = {}
    for index, entry in enumerate(identities):
        path = f"$.sigstore.identities[{index}]"
        rule = _parse_identity(entry, path)
        same = canonicalize(
            {
                "issuer": rule.issuer,
                "subject": rule.subject,
                "subjectRegExp": rule.subject_regexp,
                "extensions": dict(rule.extensions),
            }
        )
        if same in seen:
            raise _fail(path, f"the same identity is already listed at identities[{seen[same]}]")
        seen[same] = index
        rules.append(rule)
    return SigstoreTrust(trusted_root=trusted_root, identities=tuple(rules))


# --- model -> JSON ---------------------------------------------------------------------------


def _key_entry(key: PublicKey) -> dict[str, Any]:
    return {"keyid": key.keyid, "algorithm": key.algorithm.name, "publicKey": key.pem}


def to_json(root: TrustRoot) -> dict[str, Any]:
    """The JSON object form of `root` (what `dump_trust_root` canonicalizes)."""
    keys = []
    for key in root.keys:
        entry = _key_entry(key.public_key)
        if key.label is not None:
            entry["label"] = key.label
        if key.valid_from is not None:
            entry["validFrom"] = format_time(key.valid_from)
        if key.valid_until is not None:
            entry["validUntil"] = format_time(key.valid_until)
        if key.predicate_types:
            entry["predicateTypes"] = list(key.predicate_types)
        if key.revocation is not None:
            entry["revoked"] = {
                "time": format_time(key.revocation.time),
                "reason": key.revocation.reason,
            }
        keys.append(entry)
    policy: dict[str, Any] = {"threshold": root.policy.threshold, "hybrid": root.policy.hybrid}
    if root.policy.required_keyids:
        policy["requiredKeyids"] = list(root.policy.required_keyids)
    if root.policy.per_type:
        per_type: dict[str, Any] = {}
        for uri, type_policy in root.policy.per_type.items():
            per_type[uri] = {"threshold": type_policy.threshold}
            if type_policy.required_keyids:
                per_type[uri]["requiredKeyids"] = list(type_policy.required_keyids)
        policy["perType"] = per_type
    document: dict[str, Any] = {
        "mediaType": MEDIA_TYPE,
        "version": root.version,
        "expires": format_time(root.expires),
        "keys": keys,
        "policy": policy,
        "rotations": [
            {
                "fromKeyid": event.from_keyid,
                "toKeyid": event.to_keyid,
                "time": format_time(event.time),
                "transitionDeadline": format_time(event.transition_deadline),
                "handoverSignature": base64.b64encode(event.handover_signature).decode("ascii"),
            }
            for event in root.rotations
        ],
    }
    if root.root.keys:
        document["rootKeys"] = {
            "threshold": root.root.threshold,
            "keys": [_key_entry(key) for key in root.root.keys],
        }
    if root.sigstore is not None:
        document["sigstore"] = root.sigstore
    return document


def dump_trust_root(root: TrustRoot, *, allow_incomplete: bool = True) -> bytes:
    """RFC 8785 canonical JSON; `load_trust_root` of it gives back an equal TrustRoot."""
    _validate(root, complete=not allow_incomplete)
    return canonicalize(to_json(root))


def save_trust_root(path: str | os.PathLike[str], root: TrustRoot) -> None:
    """Write `root` atomically (temp file, fsync, rename): a failure leaves the old file."""
    atomic_write(path, dump_trust_root(root))


# --- management operations (each returns a new TrustRoot, version + 1) ----------------------


def _bump(current: TrustRoot, **changes: Any) -> TrustRoot:
    if current.version >= MAX_SAFE_INTEGER:
        raise TrustRootError("trust root version cannot be increased any further", "$.version")
    updated = dataclasses.replace(current, version=current.version + 1, **changes)
    _validate(updated, complete=False)
    return updated


def init_trust_root(
    *, threshold: int = 1, expires_days: int = 365, now: datetime | None = None
) -> TrustRoot:
    """A new, empty trust root (version 1); add keys next. It verifies nothing until then."""
    if type(expires_days) is not int or expires_days < 1:
        raise ConfigError("expires_days must be a positive number of days")
    root = TrustRoot(
        version=1,
        expires=_now(now) + timedelta(days=expires_days),
        keys=(),
        policy=Policy(threshold=threshold),
    )
    _validate(root, complete=False)
    return root


def set_expires(root: TrustRoot, expires: datetime) -> TrustRoot:
    """Move the expiry (rounded down to whole seconds)."""
    return _bump(root, expires=_whole_seconds(expires, "expires"))


def add_key(
    root: TrustRoot,
    public_key: PublicKey,
    *,
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
    predicate_types: Sequence[str] = (),
    label: str | None = None,
) -> TrustRoot:
    """Trust one more signing key. A key already present (same SPKI) is refused."""
    if not isinstance(public_key, PublicKey):
        raise ConfigError("public_key must be a dssesign.keys.PublicKey")
    if isinstance(predicate_types, str):
        raise ConfigError("predicate_types must be a sequence of URIs, not one string")
    key = TrustedKey(
        public_key=public_key,
        label=label,
        valid_from=(
            None if valid_from is None else _whole_seconds(valid_from, "valid_from", round_up=True)
        ),
        valid_until=None if valid_until is None else _whole_seconds(valid_until, "valid_until"),
        predicate_types=tuple(predicate_types),
    )
    return _bump(root, keys=(*root.keys, key))


def _key_index(root: TrustRoot, keyid: str) -> int:
    for index, key in enumerate(root.keys):
        if key.keyid == keyid:
            return index
    raise TrustRootError(f"trust root has no key with keyid {keyid!r}", "$.keys")


def revoke_key(
    root: TrustRoot, keyid: str, *, at: datetime | None = None, reason: str = ""
) -> TrustRoot:
    """Revoke a key from `at` (default now) on; signatures it makes count nowhere after that."""
    index = _key_index(root, keyid)
    key = root.keys[index]
    if key.revocation is not None:
        raise TrustRootError(
            f"key {keyid} is already revoked (since {format_time(key.revocation.time)})",
            f"$.keys[{index}].revoked",
        )
    revoked = dataclasses.replace(key, revocation=Revocation(_now(at), reason))
    keys = (*root.keys[:index], revoked, *root.keys[index + 1 :])
    return _bump(root, keys=keys)


def set_policy(
    root: TrustRoot,
    *,
    threshold: int | None = None,
    required_keyids: Sequence[str] | None = None,
    for_type: str | None = None,
    hybrid: HybridMode | None = None,
) -> TrustRoot:
    """Change the threshold / required keyids (globally, or for one predicate type) or hybrid.

    `required_keyids=()` clears the requirement; None leaves it as it is. A new per-type entry
    needs a threshold. The hybrid mode is global.
    """
    if threshold is None and required_keyids is None and hybrid is None:
        raise ConfigError("set_policy: nothing to change")
    if isinstance(required_keyids, str):
        raise ConfigError("required_keyids must be a sequence of keyids, not one string")
    required = None if required_keyids is None else tuple(required_keyids)
    policy = root.policy
    if for_type is None:
        policy = dataclasses.replace(
            policy,
            threshold=policy.threshold if threshold is None else threshold,
            required_keyids=policy.required_keyids if required is None else required,
            hybrid=policy.hybrid if hybrid is None else hybrid,
        )
    else:
        if hybrid is not None:
            raise ConfigError("the hybrid mode applies to the whole trust root, not one type")
        current = policy.per_type.get(for_type)
        if current is None:
            if threshold is None:
                raise ConfigError(f"a new policy for {for_type} needs a threshold")
            current = TypePolicy(threshold=threshold)
        updated = TypePolicy(
            threshold=current.threshold if threshold is None else threshold,
            required_keyids=current.required_keyids if required is None else required,
        )
        policy = dataclasses.replace(policy, per_type={**policy.per_type, for_type: updated})
    return _bump(root, policy=policy)


def unset_type_policy(root: TrustRoot, predicate_type: str) -> TrustRoot:
    """Drop the per-type policy for `predicate_type`; the global policy applies to it again."""
    if predicate_type not in root.policy.per_type:
        raise TrustRootError(f"no per-type policy for {predicate_type}", "$.policy.perType")
    per_type = {k: v for k, v in root.policy.per_type.items() if k != predicate_type}
    return _bump(root, policy=dataclasses.replace(root.policy, per_type=per_type))


def set_root_keys(
    root: TrustRoot, public_keys: Sequence[PublicKey], *, threshold: int
) -> TrustRoot:
    """Replace the keys allowed to sign the trust root itself (k of n of them must)."""
    keys = tuple(public_keys)
    if not keys:
        raise ConfigError("set_root_keys: give at least one root key")
    return _bump(root, root=RootKeys(keys=keys, threshold=threshold))


def set_sigstore_root(root: TrustRoot, trusted_root: Mapping[str, Any]) -> TrustRoot:
    """Embed (or replace) the Sigstore trusted_root.json; identity rules are kept.

    Beyond the outline the schema checks, the document is parsed with sigstore-python when the
    `sigstore` extra is installed (the parser verification will use), so a trusted root that
    could never verify anything is refused here rather than at verification time.
    """
    if not isinstance(trusted_root, Mapping):
        raise ConfigError("trusted_root must be a JSON object (a parsed trusted_root.json)")
    document = json.loads(json.dumps(trusted_root))  # a private, plain-JSON copy
    identities = list(root.keyless.identities) if root.keyless is not None else []
    section = {"trustedRoot": document, "identities": [r.to_json() for r in identities]}
    _parse_sigstore(section)  # the outline first, for a clear message
    from ._sigstore_root import check_trusted_root  # noqa: PLC0415 - imports sigstore lazily

    try:
        check_trusted_root(document)
    except VerificationError as exc:
        raise _fail("$.sigstore.trustedRoot", str(exc)) from None
    return _bump(root, sigstore=section)


def add_identity(
    root: TrustRoot,
    *,
    issuer: str,
    subject: str | None = None,
    subject_regexp: str | None = None,
    extensions: Mapping[str, str] | None = None,
    predicate_types: Sequence[str] = (),
    label: str | None = None,
) -> TrustRoot:
    """Trust keyless signatures by one identity (OIDC issuer + SAN, exact or regexp)."""
    if root.keyless is None:
        raise TrustRootError(
            "the trust root has no Sigstore trusted root yet; set it first "
            "(dssesign trust-root set-sigstore-root FILE --trusted-root trusted_root.json)",
            "$.sigstore",
        )
    if isinstance(predicate_types, str):
        raise ConfigError("predicate_types must be a sequence of URIs, not one string")
    rule = IdentityRule(
        issuer=issuer,
        subject=subject,
        subject_regexp=subject_regexp,
        extensions=dict(extensions or {}),
        predicate_types=tuple(predicate_types),
        label=label,
    )
    entries = [r.to_json() for r in root.keyless.identities] + [rule.to_json()]
    section = {"trustedRoot": root.keyless.trusted_root, "identities": entries}
    return _bump(root, sigstore=section)


def handover_payload(
    from_keyid: str, to_public_key: PublicKey, *, time: datetime, transition_deadline: datetime
) -> bytes:
    """Canonical JSON the old key signs: who hands over to which key material, when, until when."""
    return canonicalize(
        {
            "fromKeyid": from_keyid,
            "toKeyid": to_public_key.keyid,
            "toPublicKey": to_public_key.pem,
            "time": format_time(time),
            "transitionDeadline": format_time(transition_deadline),
        }
    )


def rotate_key(
    root: TrustRoot,
    from_signer: Signer,
    to_public_key: PublicKey,
    *,
    transition_days: int = 30,
    now: datetime | None = None,
    label: str | None = None,
) -> TrustRoot:
    """Hand one key's role over to a new key, signed by the old key (which may live in a KMS).

    The new key is appended with validFrom = now, the old key's label (unless `label` is given)
    and predicate types; the old key's validUntil becomes the transition deadline (or stays, if
    already earlier), so both count until then. The RotationEvent records the handover.
    """
    moment = _now(now)
    if type(transition_days) is not int or transition_days < 0:
        raise ConfigError("transition_days must be a whole number of days, 0 or more")
    old_public = from_signer.public_key
    index = _key_index(root, old_public.keyid)
    old = root.keys[index]
    if not old.usable_at(moment):
        raise TrustRootError(
            f"key {old.keyid} is revoked or outside its validity at {format_time(moment)}; "
            "it cannot hand over",
            f"$.keys[{index}]",
        )
    if root.rotation_from(old.keyid) is not None:
        raise TrustRootError(f"key {old.keyid} was already rotated", "$.rotations")
    if not isinstance(to_public_key, PublicKey):
        raise ConfigError("to_public_key must be a dssesign.keys.PublicKey")
    if root.key(to_public_key.keyid) is not None:
        raise TrustRootError(f"key {to_public_key.keyid} is already in the trust root", "$.keys")
    deadline = moment + timedelta(days=transition_days)
    message = pae(
        HANDOVER_PAYLOAD_TYPE,
        handover_payload(old.keyid, to_public_key, time=moment, transition_deadline=deadline),
    )
    try:
        signature = from_signer.sign(message)
    except Exception as exc:
        raise SigningError(f"signing the key handover failed: {exc}") from exc
    if not isinstance(signature, bytes) or not old.public_key.verify(signature, message):
        raise SigningError("the handover signature does not verify with the old key")
    retired = dataclasses.replace(
        old,
        valid_until=deadline if old.valid_until is None else min(old.valid_until, deadline),
    )
    successor = TrustedKey(
        public_key=to_public_key,
        label=old.label if label is None else label,
        valid_from=moment,
        predicate_types=old.predicate_types,
    )
    event = RotationEvent(
        from_keyid=old.keyid,
        to_keyid=to_public_key.keyid,
        time=moment,
        transition_deadline=deadline,
        handover_signature=signature,
    )
    keys = (*root.keys[:index], retired, *root.keys[index + 1 :], successor)
    return _bump(root, keys=keys, rotations=(*root.rotations, event))


def verify_handover(root: TrustRoot, event: RotationEvent) -> bool:
    """True only if the old key, usable at the rotation time, signed this exact handover.

    The payload is rebuilt from the trust root (old keyid, the new key's SPKI, both times), so
    changing any of them, or the key material under the new keyid, breaks the signature.
    """
    old = root.key(event.from_keyid)
    new = root.key(event.to_keyid)
    if old is None or new is None or old is new:
        return False
    if not old.usable_at(event.time):
        return False
    try:
        payload = handover_payload(
            old.keyid,
            new.public_key,
            time=event.time,
            transition_deadline=event.transition_deadline,
        )
    except (CanonicalizationError, ValueError, OverflowError):
        return False
    return old.public_key.verify(event.handover_signature, pae(HANDOVER_PAYLOAD_TYPE, payload))


def rotation_chain_problem(root: TrustRoot, keyid: str) -> str | None:
    """Why `keyid` is not vouched for by its chain of handovers, or None.

    A key brought in by rotation counts only if every handover back to a key the trust root
    trusts directly verifies: in A -> B -> C with a forged A -> B, C is as untrusted as B, even
    though B, as listed, signed the B -> C handover.
    """
    current = keyid
    for _ in range(len(root.rotations) + 1):
        event = root.rotation_to(current)
        if event is None:
            return None
        if not verify_handover(root, event):
            link = f"{event.from_keyid[:16]} -> {event.to_keyid[:16]}"
            if current == keyid:
                return f"its handover {link} does not verify"
            return f"the handover {link} earlier in its rotation chain does not verify"
        current = event.from_keyid
    return "its rotation chain does not end at a directly trusted key"


def failed_handovers(root: TrustRoot) -> tuple[RotationEvent, ...]:
    """Rotation events whose new key will not count: the handover, or one before it, fails."""
    return tuple(event for event in root.rotations if rotation_chain_problem(root, event.to_keyid))


# --- signed trust roots ---------------------------------------------------------------------


def sign_trust_root(root: TrustRoot, signers: Sequence[Signer]) -> Envelope:
    """DSSE-sign the canonical trust root with every signer (root keys, or the previous ones).

    Refuses an incomplete trust root, or one with a handover that does not verify.
    """
    payload = dump_trust_root(root, allow_incomplete=False)
    broken = failed_handovers(root)
    if broken:
        raise TrustRootError(
            f"rotation {broken[0].from_keyid[:16]}… → {broken[0].to_keyid[:16]}…: the handover "
            "signature does not verify; refusing to sign",
            "$.rotations",
        )
    # Root keys are few and sign once: one after the other, each checked before it is kept
    # (the trust-root layer uses the Signer protocol, never the signing stack).
    message = pae(MEDIA_TYPE, payload)
    if not signers:
        raise ConfigError("sign_trust_root: give at least one root key")
    seen: set[bytes] = set()
    signatures: list[Signature] = []
    for signer in signers:
        public = signer.public_key
        if public.spki_der in seen:
            raise ConfigError(f"key {public.keyid[:16]} is given twice")
        seen.add(public.spki_der)
        try:
            signature = signer.sign(message)
        except Exception as exc:
            raise SigningError(
                f"signing the trust root with key {public.keyid[:16]} failed: "
                f"{' '.join(str(exc).split())[:200] or type(exc).__name__}"
            ) from exc
        if not isinstance(signature, bytes) or not public.verify(signature, message):
            raise SigningError(
                f"key {public.keyid[:16]} produced a signature that does not verify with its "
                "public key; refusing to emit it"
            )
        signatures.append(Signature(sig=signature, keyid=public.keyid))
    return Envelope(payload, MEDIA_TYPE, tuple(signatures))


def _envelope(envelope: bytes | str | Envelope, limits: Limits) -> Envelope:
    if isinstance(envelope, Envelope):
        if len(envelope.signatures) > limits.max_signatures:
            raise VerificationError(
                TRUST_ROOT_MALFORMED,
                f"signed trust root: {len(envelope.signatures)} signatures exceed the limit of "
                f"{limits.max_signatures}",
            )
        return envelope
    if not isinstance(envelope, bytes | str):
        raise ConfigError("envelope must be bytes, str or an Envelope")
    try:
        return Envelope.from_json(envelope, limits=limits)
    except InputError as exc:
        raise VerificationError(TRUST_ROOT_MALFORMED, f"signed trust root: {exc}") from None


def _distinct_signers(
    envelope: Envelope, candidates: Sequence[PublicKey], needed: int
) -> dict[bytes, PublicKey]:
    """Distinct candidate keys with a valid signature over the PAE (stops once `needed`).

    keyids are hints only: the hinted key is tried first, then every other candidate not yet
    counted. A repeated signature is skipped; a key counts once however many signatures or
    keyids it appears under. Work is at most (signatures * candidates) verifications.
    """
    message = envelope.pae()
    by_keyid = {key.keyid: key for key in candidates}
    counted: dict[bytes, PublicKey] = {}
    tried: set[bytes] = set()
    for signature in envelope.signatures:
        if len(counted) >= needed:
            break
        if signature.sig in tried:
            continue
        tried.add(signature.sig)
        hinted = by_keyid.get(signature.keyid)
        order = ([hinted] if hinted is not None else []) + [
            key for key in candidates if key is not hinted
        ]
        for key in order:
            if key.spki_der not in counted and key.verify(signature.sig, message):
                counted[key.spki_der] = key
                break
    return counted


def _require(envelope: Envelope, candidates: Sequence[PublicKey], needed: int, who: str) -> None:
    unique = list({key.spki_der: key for key in candidates}.values())
    counted = _distinct_signers(envelope, unique, needed)
    if len(counted) < needed:
        raise VerificationError(
            TRUST_ROOT_SIGNATURE_THRESHOLD,
            f"signed trust root: {len(counted)} valid signature(s) from distinct {who}, "
            f"{needed} needed",
        )


def _pinned_keys(document: object, pinned: set[str]) -> list[PublicKey]:
    """Keys in an unvalidated document's rootKeys whose recomputed keyid is pinned (bounded)."""
    section = document.get("rootKeys") if isinstance(document, dict) else None
    entries = section.get("keys") if isinstance(section, dict) else None
    found: list[PublicKey] = []
    if not isinstance(entries, list):
        return found
    for entry in entries[:MAX_ROOT_KEYS]:
        pem = entry.get("publicKey") if isinstance(entry, dict) else None
        if not isinstance(pem, str) or len(pem) > 64 * 1024:
            continue
        try:
            key = PublicKey.from_pem(pem.encode("ascii"), source="rootKeys")
        except (KeyFormatError, UnicodeEncodeError, ValueError):
            continue
        if key.keyid in pinned:
            found.append(key)
    return found


def verify_signed_trust_root(
    envelope: bytes | str | Envelope,
    *,
    pinned_root_keyids: Sequence[str] | None = None,
    pinned_threshold: int | None = None,
    previous: TrustRoot | None = None,
    now: datetime | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> TrustRoot:
    """Check a DSSE-signed trust root and return it, or raise VerificationError with a code.

    Anchors (at least one; every one given must hold):
    - `previous`, the last trust root accepted: a threshold of its root keys must have signed
      (checked over the PAE before the payload is parsed); the version may not go back
      (TRUST_ROOT_ROLLBACK), and the same version must be the same document
      (TRUST_ROOT_VERSION_CONFLICT).
    - `pinned_root_keyids`: root keys listed in the new document whose keyids are pinned must
      sign, at least `pinned_threshold` of them (default: every pinned key) and never fewer than
      the document's own root threshold; the threshold in the payload alone is not trusted.
    In every case a threshold of the document's own root keys must have signed too, and an
    expired trust root is refused.
    """
    if pinned_root_keyids is None and previous is None:
        raise ConfigError(
            "verifying a signed trust root needs pinned root keyids or a previous one"
        )
    pinned: set[str] | None = None
    if pinned_root_keyids is not None:
        if isinstance(pinned_root_keyids, str):
            raise ConfigError("pinned_root_keyids must be a sequence of keyids, not one string")
        pinned = set(pinned_root_keyids)
        bad = [k for k in pinned if not isinstance(k, str) or not _KEYID.fullmatch(k)]
        if bad or not pinned:
            raise ConfigError(
                "pinned root keyids must be 64 lower-case hex digits (SHA-256 of the SPKI), "
                f"at least one; got {_clip(repr(bad or list(pinned_root_keyids)), 120)}"
            )
        if pinned_threshold is not None and (
            type(pinned_threshold) is not int or not 1 <= pinned_threshold <= len(pinned)
        ):
            raise ConfigError(f"pinned_threshold must be from 1 to {len(pinned)}")
    moment = _aware(datetime.now(UTC) if now is None else now, "now")

    parsed = _envelope(envelope, limits)
    if parsed.payload_type != MEDIA_TYPE:
        raise VerificationError(
            TRUST_ROOT_PAYLOAD_TYPE,
            f"signed trust root: payloadType {_clip(repr(parsed.payload_type), 120)} is not "
            f"{MEDIA_TYPE}",
        )
    if previous is not None:
        if not previous.root.keys:
            raise VerificationError(
                TRUST_ROOT_SIGNATURE_THRESHOLD,
                f"the previous trust root (version {previous.version}) lists no root keys, so "
                "no update can be authenticated against it",
            )
        _require(
            parsed,
            previous.root.keys,
            previous.root.threshold,
            f"root keys of the previous trust root (version {previous.version})",
        )
    bounded = dataclasses.replace(
        limits, max_json_bytes=min(limits.max_json_bytes, MAX_TRUST_ROOT_BYTES)
    )
    try:
        document = loads_strict(
            parsed.payload, what="trust root", limits=bounded, error=TrustRootError
        )
    except TrustRootError as exc:
        raise VerificationError(TRUST_ROOT_MALFORMED, f"signed trust root: {exc}") from None
    if pinned is not None:
        # Authenticate before any schema work: the pinned keys, found by recomputing keyids
        # from the key material in rootKeys, must have signed these bytes.
        pinned_needed = len(pinned) if pinned_threshold is None else pinned_threshold
        _require(parsed, _pinned_keys(document, pinned), pinned_needed, "pinned root keys")
    try:
        root = _load_document(document, allow_incomplete=False)
    except TrustRootError as exc:
        raise VerificationError(TRUST_ROOT_MALFORMED, f"signed trust root: {exc}") from None
    if pinned is not None:
        candidates = [key for key in root.root.keys if key.keyid in pinned]
        needed = max(
            root.root.threshold, len(pinned) if pinned_threshold is None else pinned_threshold
        )
        _require(parsed, candidates, needed, "pinned root keys")
    if not root.root.keys:
        raise VerificationError(
            TRUST_ROOT_SIGNATURE_THRESHOLD,
            "signed trust root lists no root keys (rootKeys), so it cannot vouch for itself",
        )
    _require(parsed, root.root.keys, root.root.threshold, "root keys of the trust root itself")
    if previous is not None:
        if root.version < previous.version:
            raise VerificationError(
                TRUST_ROOT_ROLLBACK,
                f"signed trust root version {root.version} is older than version "
                f"{previous.version} already accepted",
            )
        if root.version == previous.version and dump_trust_root(root) != dump_trust_root(previous):
            raise VerificationError(
                TRUST_ROOT_VERSION_CONFLICT,
                f"signed trust root version {root.version} differs from the version "
                f"{previous.version} already accepted",
            )
    if moment > root.expires:
        raise VerificationError(
            TRUST_ROOT_EXPIRED,
            f"trust root version {root.version} expired at {format_time(root.expires)}",
        )
    return root


def verify_trust_root_chain(
    envelopes: Iterable[bytes | str | Envelope],
    *,
    pinned_root_keyids: Sequence[str] | None = None,
    pinned_threshold: int | None = None,
    previous: TrustRoot | None = None,
    now: datetime | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> TrustRoot:
    """Walk signed trust roots oldest first, each vouched for by the one before (root-key rotation).

    The first is anchored by the pins and/or `previous`; every later one by its predecessor.
    As in TUF, only the last must be unexpired (intermediate versions may have lapsed).
    """
    moment = _aware(datetime.now(UTC) if now is None else now, "now")
    items = list(envelopes)
    if not items:
        raise ConfigError("no signed trust roots given")
    current = previous
    for index, item in enumerate(items):
        last = index == len(items) - 1
        current = verify_signed_trust_root(
            item,
            pinned_root_keyids=pinned_root_keyids if index == 0 else None,
            pinned_threshold=pinned_threshold if index == 0 else None,
            previous=current,
            # Intermediate versions are never refused as expired.
            now=moment if last else datetime.min.replace(tzinfo=UTC),
            limits=limits,
        )
    assert current is not None
    return current
