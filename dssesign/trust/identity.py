"""Keyless identity rules and the `sigstore` section: the embedded trusted root and who counts."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from .._internal.strict_json import member_path
from .._internal.subject_regexp import SubjectPattern, compile_subject_regexp
from ..core.canonical import canonicalize

if TYPE_CHECKING:  # the verifier loads trust roots and nothing of the signing stack
    pass

from ._common import (
    MAX_IDENTITIES,
    MAX_REGEXP_CHARS,
    MAX_SUBJECT_CHARS,
    SIGSTORE_EXTENSIONS,
    _check_name,
    _check_text,
    _check_type_uris,
    _clip,
    _fail,
)


def subject_matches(subject: str | None, subject_regexp: str | None, san: object) -> bool:
    """An identity rule's subject test, keyless or certificate: `san` equals `subject`, or
    (at most MAX_SUBJECT_CHARS long) `subject_regexp` matches all of it with RE2."""
    if not isinstance(san, str):
        return False
    if subject is not None:
        return san == subject
    if subject_regexp is None or len(san) > MAX_SUBJECT_CHARS:
        return False
    try:
        pattern = compile_subject_regexp(subject_regexp)
    except ValueError:  # refused on load; a rule built in memory with one matches nothing
        return False
    return pattern.matches(san)


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
    #: Unique name roles refer to the identity by (`trust-root add-identity --name`).
    name: str | None = None

    def matches_subject(self, san: str) -> bool:
        """Does `san` satisfy this rule's subject (exact or whole-string regexp)?"""
        return subject_matches(self.subject, self.subject_regexp, san)

    def allows(self, predicate_type: str) -> bool:
        """May this identity attest to `predicate_type`? (exact string match; empty list: any)."""
        return not self.predicate_types or predicate_type in self.predicate_types

    def describe(self) -> str:
        """Short human form for messages: the name, else the label, else issuer and subject."""
        if self.name:
            return self.name
        if self.label:
            return self.label
        return f"{self.issuer} {self.shown_subject}"

    @property
    def shown_subject(self) -> str:
        """The exact subject, or `~` and the subjectRegExp."""
        return self.subject if self.subject is not None else f"~{self.subject_regexp}"

    def to_json(self) -> dict[str, Any]:
        """The rule as an entry of `sigstore.identities` in a trust root; unset fields left out."""
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
        if self.name is not None:
            entry["name"] = self.name
        return entry


@dataclass(frozen=True)
class SigstoreTrust:
    """The parsed `sigstore` section: the embedded trusted_root.json and the identity rules."""

    #: The Sigstore trusted root exactly as embedded (JSON values; treat as read-only).
    trusted_root: Mapping[str, Any]
    identities: tuple[IdentityRule, ...]

    def identity(self, name: str) -> IdentityRule | None:
        """The identity rule with this name, if any."""
        return next((rule for rule in self.identities if rule.name == name), None)


# --- the sigstore section --------------------------------------------------------------------

_TRUSTED_ROOT_MEDIA_TYPE: Final = re.compile(
    r"application/vnd\.dev\.sigstore\.trustedroot(\+json;version=0\.1|\.v0\.[0-9]+\+json)"
)
_IDENTITY_FIELDS: Final = frozenset(
    {"issuer", "subject", "subjectRegExp", "extensions", "predicateTypes", "label", "name"}
)
_TRUSTED_ROOT_LISTS: Final = ("tlogs", "ctlogs", "certificateAuthorities", "timestampAuthorities")


def check_subject_regexp(text: str) -> SubjectPattern:
    """Compile a subjectRegExp to match whole SANs with RE2 (raises ValueError if refused).

    At most MAX_REGEXP_CHARS characters of Python regular-expression syntax. RE2 matches in
    time linear in the SAN whatever the expression, so no shape is refused for speed; what RE2
    cannot do or would read unlike Python is (back-references, look-around, ``$`` before the
    end, ``\\b``...: see `dssesign._internal.subject_regexp`).
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
    name = entry.get("name")
    if name is not None:
        _check_name(name, f"{path}.name")
    return IdentityRule(
        issuer=issuer,
        subject=subject,
        subject_regexp=regexp,
        extensions=MappingProxyType(extensions),
        predicate_types=predicate_types,
        label=label,
        name=name,
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
    names: dict[str, int] = {}
    for index, entry in enumerate(identities):
        path = f"$.sigstore.identities[{index}]"
        rule = _parse_identity(entry, path)
        if rule.name is not None:
            if rule.name in names:
                raise _fail(
                    f"{path}.name",
                    f"{_clip(repr(rule.name), 80)} is already the name of "
                    f"$.sigstore.identities[{names[rule.name]}] (names are unique)",
                )
            names[rule.name] = index
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
