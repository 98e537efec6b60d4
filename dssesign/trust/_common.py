"""Constants, the error helper, times and field checks every trust-root module shares."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Final, Literal, get_args

from .._internal.text import clip
from ..codes import Code
from ..errors import (
    ConfigError,
    TrustRootError,
)

if TYPE_CHECKING:  # the verifier loads trust roots and nothing of the signing stack
    pass


MEDIA_TYPE: Final = "application/vnd.dssesign.trust-root.v1+json"
#: A trust root that uses a section or field v1 did not have (timestamp authorities, roles,
#: their policy fields, identity names) is written as v2, so a v1 reader refuses it rather
#: than verifying without rules it cannot see. v1 files keep loading.
MEDIA_TYPE_V2: Final = "application/vnd.dssesign.trust-root.v2+json"
MEDIA_TYPES: Final = (MEDIA_TYPE, MEDIA_TYPE_V2)
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
#: RFC 3161 timestamp authorities in one trust root (each chain: at most 8 certificates).
MAX_TIMESTAMP_AUTHORITIES: Final = 32
#: Roles in one trust root, members (keys + identities) of one role, required roles per policy.
MAX_ROLES: Final = 64
MAX_ROLE_MEMBERS: Final = 256
#: A role's or an identity's name (like a TSA's): how commands and roles refer to it.
MAX_NAME_CHARS: Final = 128
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
    # A path quotes member names, which an input chooses: keep the one-line error short.
    shown = clip(path)
    return TrustRootError(f"trust root {shown}: {message}", shown)


_clip = clip


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


# --- semantic rules (shared by the loader and every management operation) ------------------

_TYPE_URI: Final = re.compile(r"[a-z][a-z0-9+.-]*:[!-~]+")
_KEYID: Final = re.compile(r"[0-9a-f]{64}")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
#: Names are shown in reports and messages: no control, line-separator or bidi characters.
_NAME_UNSAFE: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")


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


def _check_name(value: object, path: str) -> str:
    """A role's or an identity's name: 1-128 characters, none of them control or bidi."""
    if not isinstance(value, str) or not value:
        raise _fail(path, "must be a non-empty string")
    if len(value) > MAX_NAME_CHARS:
        raise _fail(path, f"longer than {MAX_NAME_CHARS} characters")
    if _NAME_UNSAFE.search(value):
        raise _fail(path, "contains control or reordering characters")
    return value


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
