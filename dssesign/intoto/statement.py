"""in-toto Statement v1: ResourceDescriptors, a strict validator, canonical bytes.

The validator is the single gate for both directions: what we sign (`build_statement`,
`statement_payload`) and what the verifier reads back (`parse_statement`). It follows
spec/v1 (statement.md, resource_descriptor.md, digest_set.md, field_types.md) and is stricter
where leniency has burnt other implementations:

* A key that only differs from a known field by case, ``_`` or ``-`` (``Subject``,
  ``predicate_type``, ``type``) is refused: Go's encoding/json matches field names
  case-insensitively and protojson also takes the proto names, so such a document can mean two
  things (in-toto/specification#74).
* Digest values of the digest_set.md algorithms must be lowercase hex of the right length, and an
  algorithm spelt differently from its standard name (``SHA256``, ``sha-256``) is refused rather
  than silently ignored as "unknown".
* Duplicate subjects are refused; see `validate_statement` for what counts as one.

Where we deliberately differ from the in_toto_attestation bindings: they require a non-empty
``predicate`` (the spec says it MAY be omitted) and do not check digest encodings.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from .._internal.strict_json import loads_strict, member_path
from ..core.canonical import canonicalize
from ..errors import StatementError
from ..limits import DEFAULT_LIMITS, Limits, exceeded

__all__ = [
    "KNOWN_DIGEST_ALGORITHMS",
    "PAYLOAD_TYPE",
    "STATEMENT_TYPE_V01",
    "STATEMENT_TYPE_V1",
    "ResourceDescriptor",
    "build_statement",
    "parse_statement",
    "statement_payload",
    "validate_statement",
]

STATEMENT_TYPE_V1: Final = "https://in-toto.io/Statement/v1"
STATEMENT_TYPE_V01: Final = "https://in-toto.io/Statement/v0.1"
PAYLOAD_TYPE: Final = "application/vnd.in-toto+json"

# --- digest algorithms (digest_set.md) ---------------------------------------------------------

#: Hex lengths of the fixed-size algorithms. gitX objects are SHA-1 or SHA-256 repositories;
#: dirHash is Go's h1 dirhash (SHA-256) in hex.
_FIXED_HEX: Final[Mapping[str, tuple[int, ...]]] = {
    "sha256": (64,),
    "sha224": (56,),
    "sha384": (96,),
    "sha512": (128,),
    "sha512_224": (56,),
    "sha512_256": (64,),
    "sha3_224": (56,),
    "sha3_256": (64,),
    "sha3_384": (96,),
    "sha3_512": (128,),
    "ripemd160": (40,),
    "sm3": (64,),
    # GOST R 34.11-94 is 256 bits; its successor Streebog is 256 or 512.
    "gost": (64, 128),
    "sha1": (40,),
    "md5": (32,),
    "dirHash": (64,),
    "gitCommit": (40, 64),
    "gitTree": (40, 64),
    "gitBlob": (40, 64),
    "gitTag": (40, 64),
}
#: Variable-output algorithms: any whole number of bytes up to this many hex digits (None: no cap).
_VARIABLE_HEX: Final[Mapping[str, int | None]] = {
    "shake128": None,
    "shake256": None,
    "blake2b": 128,
    "blake2s": 64,
}
KNOWN_DIGEST_ALGORITHMS: Final = frozenset(_FIXED_HEX) | frozenset(_VARIABLE_HEX)


def _fold(name: str) -> str:
    return name.casefold().replace("_", "").replace("-", "")


_ALGORITHM_BY_FOLD: Final = {_fold(name): name for name in KNOWN_DIGEST_ALGORITHMS}
_LOWER_HEX: Final = re.compile(r"[0-9a-f]+")

#: Algorithms `digest_file` computes: the digest_set.md names hashlib provides, minus the broken.
_COMPUTABLE: Final = frozenset(
    {
        "sha224",
        "sha256",
        "sha384",
        "sha512",
        "sha512_224",
        "sha512_256",
        "sha3_224",
        "sha3_256",
        "sha3_384",
        "sha3_512",
        "blake2b",
        "blake2s",
    }
)


def _hex_problem(algorithm: str, value: str) -> str | None:
    """Why `value` is not a valid `algorithm` digest, or None; unknown algorithms pass."""
    fixed = _FIXED_HEX.get(algorithm)
    if fixed is None and algorithm not in _VARIABLE_HEX:
        return None
    if not _LOWER_HEX.fullmatch(value):
        if re.fullmatch(r"[0-9a-fA-F]+", value):
            return "must be lowercase hex"
        return f"must be lowercase hex, got {_show(value)}"
    if fixed is not None:
        if len(value) not in fixed:
            want = " or ".join(str(n) for n in fixed)
            return f"expected {want} hex characters, got {len(value)}"
        return None
    cap = _VARIABLE_HEX[algorithm]
    if len(value) % 2 or (cap is not None and len(value) > cap):
        limit = f" and at most {cap}" if cap is not None else ""
        return f"expected an even number{limit} of hex characters, got {len(value)}"
    return None


# --- small helpers --------------------------------------------------------------------------


def _show(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    for kind, label in ((str, "string"), (int, "number"), (float, "number")):
        if isinstance(value, kind):
            return label
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def _expect(value: object, kind: type, label: str, path: str) -> None:
    if not isinstance(value, kind):
        raise StatementError(f"{path}: expected {label}, got {_json_type(value)}")


# RFC 3986 URI with a scheme; the rest may only use URI characters and %XX escapes.
_URI: Final = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*):(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})+"
)
_AUTHORITY: Final = re.compile(r"[^:]+://(?P<authority>[^/?#]*)")
_PERCENT: Final = re.compile(r"%[0-9A-Fa-f]{2}")


def _check_uri(value: object, path: str, what: str) -> None:
    """TypeURI / ResourceURI (field_types.md): absolute, scheme and authority lowercase."""
    _expect(value, str, f"a {what} string", path)
    assert isinstance(value, str)
    match = _URI.fullmatch(value)
    if match is None:
        raise StatementError(f"{path}: not an absolute URI with a scheme: {_show(value)}")
    authority = _AUTHORITY.match(value)
    host = _PERCENT.sub("", authority["authority"]) if authority else ""
    if match["scheme"] != match["scheme"].lower() or host != host.lower():
        raise StatementError(
            f"{path}: {what} must be case-normalized (scheme and authority in lowercase): "
            f"{_show(value)}"
        )


def _check_aliases(obj: Mapping[object, object], fields: Mapping[str, str], path: str) -> None:
    """Refuse keys another parser would read as one of `fields` (by case, `_` or `-`)."""
    for key in obj:
        if not isinstance(key, str):
            raise StatementError(f"{path}: member names must be strings, got {_show(key)}")
        known = fields.get(_fold(key))
        if known is not None and key != known:
            raise StatementError(
                f"{member_path(path, key)}: ambiguous member name; the field is spelt {known!r}"
            )


_STATEMENT_FIELDS: Final = {_fold(k): k for k in ("_type", "subject", "predicateType", "predicate")}
_DESCRIPTOR_FIELDS: Final = {
    _fold(k): k
    for k in ("name", "uri", "digest", "content", "downloadLocation", "mediaType", "annotations")
}
_BASE64: Final = re.compile(r"[A-Za-z0-9+/]*={0,2}|[A-Za-z0-9\-_]*={0,2}")


def _decode_content(value: str, path: str) -> bytes:
    """protobuf JSON `bytes`: standard or URL-safe base64, padding optional."""
    if not _BASE64.fullmatch(value) or len(value.rstrip("=")) % 4 == 1:
        raise StatementError(f"{path}: not valid base64")
    padded = value.rstrip("=")
    padded += "=" * (-len(padded) % 4)
    try:
        return base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except binascii.Error:  # pragma: no cover - the regex and length check rule this out
        raise StatementError(f"{path}: not valid base64") from None


def _check_digest_set(digest: object, path: str) -> None:
    _expect(digest, dict, "a DigestSet object", path)
    assert isinstance(digest, dict)
    for algorithm, value in digest.items():
        if not isinstance(algorithm, str):
            raise StatementError(f"{path}: algorithm names must be strings, got {_show(algorithm)}")
        where = member_path(path, algorithm)
        if not algorithm:
            raise StatementError(f"{where}: empty algorithm name")
        if algorithm not in KNOWN_DIGEST_ALGORITHMS:
            standard = _ALGORITHM_BY_FOLD.get(_fold(algorithm))
            if standard is not None:
                raise StatementError(
                    f"{where}: algorithm names are case-sensitive; write {standard!r}"
                )
        _expect(value, str, "a string", where)
        assert isinstance(value, str)
        if not value:
            raise StatementError(f"{where}: empty digest value")
        problem = _hex_problem(algorithm, value)
        if problem is not None:
            raise StatementError(f"{where}: {problem}")


def _check_descriptor(obj: object, path: str, *, subject: bool) -> None:
    if not isinstance(obj, dict):
        raise StatementError(f"{path}: expected a ResourceDescriptor object, got {_json_type(obj)}")
    _check_aliases(obj, _DESCRIPTOR_FIELDS, path)
    for key in ("name", "mediaType"):
        if key in obj:
            _expect(obj[key], str, "a string", f"{path}.{key}")
    for key in ("uri", "downloadLocation"):
        if key in obj:
            _check_uri(obj[key], f"{path}.{key}", "ResourceURI")
    if "digest" in obj:
        _check_digest_set(obj["digest"], f"{path}.digest")
    if "content" in obj:
        _expect(obj["content"], str, "a base64 string", f"{path}.content")
        _decode_content(obj["content"], f"{path}.content")
    if "annotations" in obj:
        annotations = obj["annotations"]
        _expect(annotations, dict, "an object", f"{path}.annotations")
        assert isinstance(annotations, dict)
        for key in annotations:
            if not isinstance(key, str):
                raise StatementError(
                    f"{path}.annotations: member names must be strings, got {_show(key)}"
                )
    if subject:
        if not obj.get("digest"):
            raise StatementError(f"{path}.digest: a subject must have a non-empty digest")
    elif not (obj.get("uri") or obj.get("digest") or obj.get("content")):
        raise StatementError(f"{path}: a ResourceDescriptor needs one of uri, digest or content")


def _check_duplicates(subjects: list[dict[str, object]]) -> None:
    """Named subjects: one entry per name. Unnamed ones ("_" counts as unnamed): no shared digest.

    The same digest under two different names is allowed: an artifact published under two
    file names is matched by digest either way, and name-based policies need both entries.
    """
    names: dict[str, int] = {}
    uris: dict[str, int] = {}
    unnamed: dict[tuple[str, str], int] = {}
    for index, subject in enumerate(subjects):
        path = f"$.subject[{index}]"
        name = subject.get("name")
        if isinstance(name, str) and name not in ("", "_"):
            first = names.setdefault(name, index)
            if first != index:
                raise StatementError(
                    f"{path}.name: duplicate subject name {_show(name)} (also $.subject[{first}])"
                )
        else:
            digest = subject.get("digest")
            assert isinstance(digest, dict)
            for pair in digest.items():
                first = unnamed.setdefault(pair, index)
                if first != index:
                    raise StatementError(
                        f"{member_path(path + '.digest', pair[0])}: duplicate subject: same digest "
                        f"and no name as $.subject[{first}]"
                    )
        uri = subject.get("uri")
        if isinstance(uri, str):
            first = uris.setdefault(uri, index)
            if first != index:
                raise StatementError(
                    f"{path}.uri: duplicate subject uri {_show(uri)} (also $.subject[{first}])"
                )


# --- ResourceDescriptor -----------------------------------------------------------------------


@dataclass(frozen=True)
class ResourceDescriptor:
    """One artifact (resource_descriptor.md). None or empty means "unset" and is not emitted."""

    name: str | None = None
    uri: str | None = None
    digest: Mapping[str, str] = field(default_factory=dict)
    content: bytes | None = None
    download_location: str | None = None
    media_type: str | None = None
    annotations: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Copies behind read-only views, so a frozen descriptor cannot change under a caller.
        object.__setattr__(self, "digest", MappingProxyType(dict(self.digest)))
        object.__setattr__(self, "annotations", MappingProxyType(dict(self.annotations)))

    def __hash__(self) -> int:
        # Annotations may hold unhashable JSON values; equal descriptors still hash equal.
        return hash(
            (
                self.name,
                self.uri,
                tuple(sorted(self.digest.items())),
                self.content,
                self.download_location,
                self.media_type,
            )
        )

    def to_dict(self) -> dict[str, object]:
        """The JSON form: camelCase names, spec field order, unset fields left out."""
        out: dict[str, object] = {}
        if self.name is not None:
            out["name"] = self.name
        if self.uri is not None:
            out["uri"] = self.uri
        if self.digest:
            out["digest"] = dict(self.digest)
        if self.content is not None:
            out["content"] = base64.b64encode(self.content).decode("ascii")
        if self.download_location is not None:
            out["downloadLocation"] = self.download_location
        if self.media_type is not None:
            out["mediaType"] = self.media_type
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    @classmethod
    def from_dict(cls, obj: object, *, path: str = "$") -> ResourceDescriptor:
        """Validate and load the JSON form; unknown members are ignored, as the spec asks."""
        _check_descriptor(obj, path, subject=False)
        assert isinstance(obj, dict)
        content = obj.get("content")
        annotations = obj.get("annotations")
        return cls(
            name=obj.get("name"),
            uri=obj.get("uri"),
            digest=obj.get("digest", {}),
            content=_decode_content(content, f"{path}.content") if content is not None else None,
            download_location=obj.get("downloadLocation"),
            media_type=obj.get("mediaType"),
            annotations=annotations if annotations is not None else {},
        )


# --- Statement --------------------------------------------------------------------------------


def validate_statement(
    obj: object, *, allow_v01: bool = False, limits: Limits = DEFAULT_LIMITS
) -> None:
    """Raise `StatementError`, naming the JSON path, unless `obj` is a spec-valid Statement.

    Duplicate subjects are refused: two subjects with the same name (other than unset, "" or
    "_"), two unnamed subjects sharing any digest (DigestSets match if ANY entry matches), or
    two with the same uri. The same digest under different names is allowed. Unknown members
    are ignored (spec parsing rules), except near-spellings of known ones.
    """
    if not isinstance(obj, dict):
        raise StatementError(f"$: a Statement must be a JSON object, got {_json_type(obj)}")
    _check_aliases(obj, _STATEMENT_FIELDS, "$")
    if "_type" not in obj:
        raise StatementError("$._type: required")
    statement_type = obj["_type"]
    _expect(statement_type, str, "a string", "$._type")
    accepted = (STATEMENT_TYPE_V1, STATEMENT_TYPE_V01) if allow_v01 else (STATEMENT_TYPE_V1,)
    if statement_type not in accepted:
        raise StatementError(
            f"$._type: unsupported Statement type {_show(statement_type)}; "
            f"expected {' or '.join(accepted)}"
        )

    if "subject" not in obj:
        raise StatementError("$.subject: required")
    subjects = obj["subject"]
    _expect(subjects, list, "an array", "$.subject")
    assert isinstance(subjects, list)
    if not subjects:
        raise StatementError("$.subject: at least one subject is required")
    if len(subjects) > limits.max_subjects:
        raise StatementError(
            f"$.subject: {len(subjects)} subjects exceed "
            f"{exceeded('max_subjects', limits.max_subjects)}"
        )
    for index, subject in enumerate(subjects):
        _check_descriptor(subject, f"$.subject[{index}]", subject=True)
    _check_duplicates(subjects)

    if "predicateType" not in obj:
        raise StatementError("$.predicateType: required")
    _check_uri(obj["predicateType"], "$.predicateType", "TypeURI")
    if "predicate" in obj:
        _expect(obj["predicate"], dict, "an object", "$.predicate")


def build_statement(
    subjects: Sequence[ResourceDescriptor], predicate_type: str, predicate: object
) -> dict[str, object]:
    """A validated v1 Statement; `predicate` None leaves it out (the spec: unset == empty)."""
    if isinstance(subjects, str | bytes) or not isinstance(subjects, Sequence):
        raise StatementError("$.subject: expected a sequence of ResourceDescriptor")
    entries: list[dict[str, object]] = []
    for index, subject in enumerate(subjects):
        if not isinstance(subject, ResourceDescriptor):
            raise StatementError(
                f"$.subject[{index}]: expected a ResourceDescriptor, got {type(subject).__name__}"
            )
        entries.append(subject.to_dict())
    statement: dict[str, object] = {
        "_type": STATEMENT_TYPE_V1,
        "subject": entries,
        "predicateType": predicate_type,
    }
    if predicate is not None:
        if isinstance(predicate, Mapping) and not isinstance(predicate, dict):
            predicate = dict(predicate)
        statement["predicate"] = predicate
    validate_statement(statement)
    return statement


def statement_payload(statement: Mapping[str, object]) -> bytes:
    """The bytes to sign: a validated v1 Statement in RFC 8785 form, so every signer agrees."""
    obj = statement if isinstance(statement, dict) else dict(statement)
    validate_statement(obj)
    return canonicalize(obj)


def parse_statement(
    payload: bytes, *, allow_v01: bool = True, limits: Limits = DEFAULT_LIMITS
) -> dict[str, object]:
    """A verified payload back to a Statement: strict JSON (no duplicate members), validated."""
    obj = loads_strict(payload, what="statement", limits=limits, error=StatementError)
    validate_statement(obj, allow_v01=allow_v01, limits=limits)
    assert isinstance(obj, dict)
    return obj
