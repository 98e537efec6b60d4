"""Predicate types: cosign's ``--type`` names, the predicate each puts in a Statement, validation.

Every predicate is resolved and validated here before any key is loaded, so a malformed
predicate is refused instead of signed. The JSON Schemas live in ``predicates/`` at the
repository root (``dssesign/_predicates`` in a wheel) and are written from the specs; CycloneDX
and SPDX documents are checked with their ecosystems' own libraries (``dssesign[sbom]``).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .._internal.schema import CompiledSchema
from .._internal.strict_json import loads_strict
from ..errors import InputError, MissingDependencyError, PredicateError
from ._schemas import (
    FORMAT_CHECKS,
    PredicateValidator,
    _bundled,
    _bundled_validator,
    _json_kind,
    _raise_failure,
    _scalar_repr,
    is_rfc3339_date_time,
    json_schema_validator,
)

__all__ = [
    "CUSTOM_URI",
    "CYCLONEDX_URI",
    "LINK_URI",
    "OPENVEX_URI",
    "SLSA_PROVENANCE_V02_URI",
    "SLSA_PROVENANCE_V1_URI",
    "SPDX_URI",
    "TEST_RESULT_URI",
    "VSA_URI",
    "VULN_URI",
    "PredicateType",
    "PredicateValidator",
    "RawPredicateBuilder",
    "is_rfc3339_date_time",
    "json_schema_validator",
    "known_predicate_types",
    "lookup_predicate_type",
    "prepare_predicate",
    "register_predicate_type",
    "resolve_predicate_type",
    "validate_predicate",
]

CUSTOM_URI = "https://cosign.sigstore.dev/attestation/v1"
VULN_URI = "https://cosign.sigstore.dev/attestation/vuln/v1"
SLSA_PROVENANCE_V02_URI = "https://slsa.dev/provenance/v0.2"
SLSA_PROVENANCE_V1_URI = "https://slsa.dev/provenance/v1"
SPDX_URI = "https://spdx.dev/Document"
CYCLONEDX_URI = "https://cyclonedx.org/bom"
LINK_URI = "https://in-toto.io/Link/v1"
OPENVEX_URI = "https://openvex.dev/ns"
VSA_URI = "https://slsa.dev/verification_summary/v1"
TEST_RESULT_URI = "https://in-toto.io/attestation/test-result/v0.1"

#: Builds the predicate from the raw file bytes instead of parsing them as JSON.
RawPredicateBuilder = Callable[[bytes, datetime], object]


# --- the registry ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PredicateType:
    """A predicate type: its URI, the ``--type`` names for it, and how its predicates are checked.

    ``validator`` None accepts any JSON object (in-toto predicates are objects). ``aliases`` are
    further predicateType URIs checked the same way (e.g. a version-pinned URI). ``from_file``
    replaces JSON parsing of the predicate file, as cosign's ``custom`` type does.
    """

    uri: str
    short_names: tuple[str, ...] = ()
    validator: PredicateValidator | None = None
    title: str = ""
    aliases: tuple[str, ...] = ()
    from_file: RawPredicateBuilder | None = None

    def __post_init__(self) -> None:
        # Tolerate lists from callers; the registry relies on hashable, immutable tuples.
        object.__setattr__(self, "short_names", tuple(self.short_names))
        object.__setattr__(self, "aliases", tuple(self.aliases))

    @property
    def uris(self) -> tuple[str, ...]:
        """`uri`, then the `aliases`: every predicateType URI checked as this type."""
        return (self.uri, *self.aliases)


_SHORT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class _Registry:
    """Short name and URI lookup over the registered types, in registration order."""

    def __init__(self, types: Iterable[PredicateType] = ()) -> None:
        self._types: list[PredicateType] = []
        self._by_short: dict[str, PredicateType] = {}
        self._by_uri: dict[str, PredicateType] = {}
        for ptype in types:
            self.add(ptype)

    def copy(self) -> _Registry:
        return _Registry(self._types)

    def types(self) -> tuple[PredicateType, ...]:
        return tuple(self._types)

    def by_short(self, name: str) -> PredicateType | None:
        return self._by_short.get(name)

    def by_uri(self, uri: str) -> PredicateType | None:
        return self._by_uri.get(uri)

    def add(self, ptype: PredicateType, *, replace: bool = False) -> None:
        for uri in ptype.uris:
            problem = _type_uri_problem(uri)
            if problem:
                raise ValueError(f"predicate type URI {uri!r}: {problem}")
        for name in ptype.short_names:
            if not _SHORT_NAME.fullmatch(name):
                raise ValueError(f"predicate short name {name!r}: letters, digits, '.', '_', '-'")
        clashes = {self._by_uri[u] for u in ptype.uris if u in self._by_uri}
        clashes |= {self._by_short[n] for n in ptype.short_names if n in self._by_short}
        if clashes and not replace:
            taken = ", ".join(sorted(t.uri for t in clashes))
            raise ValueError(f"predicate type {ptype.uri} clashes with registered {taken}")
        for old in clashes:
            self._types.remove(old)
        self._types.append(ptype)
        self._reindex()

    def _reindex(self) -> None:
        self._by_short = {n: t for t in self._types for n in t.short_names}
        self._by_uri = {u: t for t in self._types for u in t.uris}


def register_predicate_type(ptype: PredicateType, *, replace: bool = False) -> PredicateType:
    """Add a predicate type (e.g. from a plugin); ``replace`` drops any type it clashes with."""
    _REGISTRY.add(ptype, replace=replace)
    return ptype


def known_predicate_types() -> tuple[PredicateType, ...]:
    """Every registered type, for ``predicate-types`` and ``--help``."""
    return _REGISTRY.types()


def lookup_predicate_type(uri: str) -> PredicateType | None:
    """The registered type whose URI or alias is ``uri``; None for a URI nobody registered."""
    return _REGISTRY.by_uri(uri)


# --- --type resolution ----------------------------------------------------------------------

_URI_WITH_AUTHORITY = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]+)(.*)", re.DOTALL)
_URN = re.compile(r"urn:[A-Za-z0-9][A-Za-z0-9-]{0,31}:.+", re.DOTALL)
_MAX_TYPE_URI = 2048


def _type_uri_problem(value: str) -> str | None:
    """Why ``value`` is not an absolute in-toto TypeURI, or None if it is one."""
    if not value:
        return "empty"
    if len(value) > _MAX_TYPE_URI:
        return f"longer than {_MAX_TYPE_URI} characters"
    if any(not 0x21 <= ord(ch) <= 0x7E for ch in value):
        return "a URI may not contain spaces, control or non-ASCII characters"
    if value[:4].lower() == "urn:":
        if not value.startswith("urn:"):
            return "the scheme must be lowercase (in-toto TypeURI is case-normalized)"
        return None if _URN.fullmatch(value) else "not a valid urn: (urn:<nid>:<nss>)"
    match = _URI_WITH_AUTHORITY.fullmatch(value)
    if match is None:
        return "not an absolute URI with a scheme and authority (scheme://host/...) or a urn:"
    scheme, authority = match.group(1), match.group(2)
    if scheme != scheme.lower() or authority != authority.lower():
        # TypeURI: "the scheme and authority MUST be in lowercase" (RFC 3986 section 6.2.2.1).
        return "the scheme and authority must be lowercase (in-toto TypeURI is case-normalized)"
    return None


def resolve_predicate_type(type_: str) -> str:
    """Map a cosign ``--type`` short name to its URI as cosign does; absolute URIs pass as is."""
    ptype = _REGISTRY.by_short(type_)
    if ptype is not None:
        return ptype.uri
    problem = _type_uri_problem(type_)
    if problem is None:
        return type_
    names = ", ".join(n for t in _REGISTRY.types() for n in t.short_names)
    if ":" in type_:
        raise InputError(f"predicate type {type_!r}: {problem}")
    raise InputError(
        f"unknown predicate type {type_!r}: use one of {names}, "
        "or an absolute URI such as https://example.com/my-predicate/v1"
    )


# --- building and validating predicates ------------------------------------------------------


def prepare_predicate(
    type_: str, raw: bytes, *, timestamp: datetime | None = None, validate: bool = True
) -> tuple[str, object]:
    """Turn ``--type`` and the predicate file's bytes into (predicateType, predicate), or refuse.

    ``timestamp`` (default: now) is only used by types that stamp the predicate, i.e. cosign's
    ``custom`` wrapper. Every other type must be a JSON object that passes its validation;
    ``validate=False`` (``attest --no-validate``) skips the type's schema and rules, never the
    strict JSON reading or the JSON-object check.
    """
    uri = resolve_predicate_type(type_)
    ptype = _REGISTRY.by_uri(uri)
    if ptype is not None and ptype.from_file is not None:
        return uri, ptype.from_file(raw, timestamp if timestamp is not None else datetime.now(UTC))
    try:
        predicate = loads_strict(raw, what="predicate file")
    except InputError as exc:
        detail = str(exc).removeprefix("predicate file: ")
        if not detail.startswith("not valid JSON") and "exceeds the limit" not in detail:
            detail = f"not valid JSON: {detail}"  # e.g. not UTF-8 or a byte order mark
        raise InputError(
            f"predicate file: {detail} (--type {type_} needs a JSON object; "
            "only --type custom wraps other content)"
        ) from None
    if validate:
        validate_predicate(uri, predicate)
    elif not isinstance(predicate, dict):
        raise PredicateError(f"$: a predicate must be a JSON object, not {_json_kind(predicate)}")
    return uri, predicate


def validate_predicate(type_uri: str, predicate: object) -> None:
    """Refuse ``predicate`` if it is not a JSON object or breaks its type's rules.

    Raises PredicateError naming the failing JSON path. URIs nobody registered accept any object.
    """
    if not isinstance(predicate, dict):
        raise PredicateError(f"$: a predicate must be a JSON object, not {_json_kind(predicate)}")
    ptype = _REGISTRY.by_uri(type_uri)
    if ptype is None or ptype.validator is None:
        return
    try:
        ptype.validator(type_uri, predicate)
    except RecursionError:
        raise PredicateError("$: predicate nested too deeply to validate") from None


# --- cosign's custom wrapper ----------------------------------------------------------------


def _go_rfc3339_utc(moment: datetime) -> str:
    """Go's ``t.UTC().Format(time.RFC3339)``: whole seconds (truncated), 4-digit year, 'Z'."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("timestamp must be timezone-aware")
    t = moment.astimezone(UTC)
    return f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}Z"


def _cosign_custom_predicate(raw: bytes, timestamp: datetime) -> dict[str, str]:
    """cosign's ``{"Data": string(file), "Timestamp": RFC 3339 UTC}``; the file need not be JSON."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        # cosign (structpb.NewStruct) refuses invalid UTF-8 too; silently replacing bytes would
        # sign something other than the file.
        raise InputError(
            f"predicate file: not UTF-8 text (byte {exc.start}); --type custom embeds the file "
            "as a JSON string"
        ) from None
    return {"Data": text, "Timestamp": _go_rfc3339_utc(timestamp)}


# --- SLSA VSA: one level per track ----------------------------------------------------------

_SLSA_TRACK_LEVEL = re.compile(r"SLSA_([A-Z0-9_]+?)_LEVEL_([0-9]+|UNEVALUATED)")


def _check_vsa_levels(predicate: dict[str, Any]) -> None:
    """verification_summary.md: "Users MUST NOT include more than one level per SLSA track"."""
    first: dict[str, str] = {}
    for index, level in enumerate(predicate.get("verifiedLevels", ())):
        match = _SLSA_TRACK_LEVEL.fullmatch(level)
        if match is None:
            continue
        track = match.group(1)
        if track in first:
            path = f"$.verifiedLevels[{index}]"
            raise PredicateError(
                f"{path}: more than one level for the SLSA {track} track "
                f"({first[track]} and {level}); the VSA spec allows one per track",
                path,
            )
        first[track] = level


# --- CycloneDX (cyclonedx-python-lib) -------------------------------------------------------

_CYCLONEDX_VERSIONS = ("1.2", "1.3", "1.4", "1.5", "1.6", "1.7")
_SPEC_VERSION = re.compile(r"[0-9]+\.[0-9]+")


_CYCLONEDX_BASE = "http://cyclonedx.org/schema/"


@functools.cache
def _cyclonedx_schema(spec_version: str) -> CompiledSchema | None:
    """The official CycloneDX JSON schema (strict form) for ``spec_version``, from the library.

    cyclonedx-python-lib ships the schemas; its own validator runs them through jsonschema
    (quadratic uniqueItems, environment-dependent formats), so dssesign compiles the same
    files with its own validator instead.
    """
    try:
        from cyclonedx.schema import SchemaVersion, _res  # noqa: PLC0415 - optional extra
    except ImportError:
        raise MissingDependencyError(
            "validating a CycloneDX predicate", "cyclonedx-python-lib", "sbom"
        ) from None
    try:
        version = SchemaVersion.from_version(spec_version)
    except ValueError:
        return None
    strict: Mapping[Any, str | None] = getattr(_res, "BOM_JSON_STRICT", {})
    schema_file = strict.get(version)
    if schema_file is None:
        return None
    try:
        resources = {
            _CYCLONEDX_BASE + Path(getattr(_res, name)).name: _read_json(getattr(_res, name))
            for name in ("SPDX_JSON", "JSF", "CRYPTOGRAPHY_DEFS")
            if hasattr(_res, name)
        }
        schema = _read_json(schema_file)
    except (OSError, ValueError) as exc:
        # The library changed its layout: refuse rather than skip the checks.
        raise InputError(
            f"this cyclonedx-python-lib version's JSON schemas cannot be read: {exc}"
        ) from None
    return CompiledSchema(schema, resources=resources, draft=7, formats=FORMAT_CHECKS)


def _read_json(path: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return loaded


def _validate_cyclonedx(type_uri: str, predicate: dict[str, Any]) -> None:
    if "specVersion" not in predicate:
        raise PredicateError("$.specVersion: 'specVersion' is a required property", "$.specVersion")
    spec = predicate["specVersion"]
    if not isinstance(spec, str) or not _SPEC_VERSION.fullmatch(spec):
        raise PredicateError(
            f'$.specVersion: must be a CycloneDX version such as "1.6", got {_scalar_repr(spec)}',
            "$.specVersion",
        )
    pinned = type_uri.removeprefix(CYCLONEDX_URI + "/v") if type_uri != CYCLONEDX_URI else spec
    if pinned != spec:
        raise PredicateError(
            f"$.specVersion: predicate type {type_uri} needs specVersion {pinned!r}, got {spec!r}",
            "$.specVersion",
        )
    schema = _cyclonedx_schema(spec)
    if schema is None:
        raise PredicateError(
            f"$.specVersion: CycloneDX {spec} has no JSON schema in the installed "
            "cyclonedx-python-lib",
            "$.specVersion",
        )
    _raise_failure(schema.best_failure(predicate))


# --- SPDX 2.x (spdx-tools) ------------------------------------------------------------------


def _validate_spdx(type_uri: str, predicate: dict[str, Any]) -> None:
    _raise_failure(_bundled("spdx-2-structure.schema.json").best_failure(predicate))
    pinned = type_uri.removeprefix(SPDX_URI + "/v")
    if type_uri != SPDX_URI and predicate["spdxVersion"] != f"SPDX-{pinned}":
        raise PredicateError(
            f"$.spdxVersion: predicate type {type_uri} needs 'SPDX-{pinned}', "
            f"got {_scalar_repr(predicate['spdxVersion'])}",
            "$.spdxVersion",
        )
    from . import _spdx  # noqa: PLC0415 - only for an SPDX predicate

    try:
        _spdx.require_license_library()
    except ImportError:
        raise MissingDependencyError(
            "validating an SPDX predicate", "license-expression", "sbom"
        ) from None
    _spdx.check_spdx(predicate)


# --- built-in types -------------------------------------------------------------------------

_BUILTIN_TYPES = (
    PredicateType(
        CUSTOM_URI,
        ("custom",),
        _bundled_validator("cosign-custom-v1.schema.json"),
        "cosign custom wrapper: {Data: file contents, Timestamp}",
        from_file=_cosign_custom_predicate,
    ),
    PredicateType(
        SLSA_PROVENANCE_V02_URI,
        ("slsaprovenance", "slsaprovenance02"),
        None,
        "SLSA Provenance v0.2 (JSON object check only)",
    ),
    PredicateType(
        SLSA_PROVENANCE_V1_URI,
        ("slsaprovenance1",),
        _bundled_validator("slsa-provenance-v1.schema.json", null_means_unset=True),
        "SLSA Build Provenance v1",
    ),
    PredicateType(
        SPDX_URI,
        ("spdx", "spdxjson"),
        _validate_spdx,
        "SPDX 2.2/2.3 JSON document (spdx-tools)",
        aliases=(SPDX_URI + "/v2.3",),
    ),
    PredicateType(
        CYCLONEDX_URI,
        ("cyclonedx",),
        _validate_cyclonedx,
        "CycloneDX JSON BOM (cyclonedx-python-lib)",
        aliases=tuple(f"{CYCLONEDX_URI}/v{v}" for v in _CYCLONEDX_VERSIONS),
    ),
    PredicateType(LINK_URI, ("link",), None, "in-toto Link (JSON object check only)"),
    PredicateType(VULN_URI, ("vuln",), None, "cosign vulnerability scan (JSON object check only)"),
    PredicateType(
        OPENVEX_URI,
        ("openvex",),
        _bundled_validator("openvex.schema.json"),
        "OpenVEX v0.2.0 document",
        aliases=(OPENVEX_URI + "/v0.2.0",),
    ),
    PredicateType(
        VSA_URI,
        ("vsa",),
        _bundled_validator(
            "slsa-vsa-v1.schema.json", null_means_unset=True, extra=_check_vsa_levels
        ),
        "SLSA Verification Summary v1",
    ),
    PredicateType(
        TEST_RESULT_URI,
        ("test-result",),
        _bundled_validator("test-result-v0.1.schema.json", null_means_unset=True),
        "in-toto Test Result v0.1",
    ),
)

_REGISTRY = _Registry(_BUILTIN_TYPES)
