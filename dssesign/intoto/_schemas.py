"""Predicate JSON Schemas: where they live, how they compile, and their failures as errors.

One fixed set of format checks (RFC 3339 date-time, URI, IRI) whatever jsonschema extras are
installed, and failures that name the JSON path: what `predicates` validates every type with.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable, Mapping
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from .._internal.schema import CompiledSchema, FormatCheck, SchemaFailure
from .._internal.strict_json import json_path
from .._internal.text import clip
from ..errors import PredicateError

_MAX_MESSAGE = 300

#: Raises PredicateError if ``predicate`` (already known to be a JSON object) breaks the type.
PredicateValidator = Callable[[str, dict[str, Any]], None]


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


# --- formats --------------------------------------------------------------------------------

_DATE_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]+)?"
    r"(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))"
)
_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def is_rfc3339_date_time(value: str) -> bool:
    """RFC 3339 section 5.6 ``date-time``, with real calendar days and leap seconds at 23:59 UTC."""
    match = _DATE_TIME.fullmatch(value)
    if match is None:
        return False
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    if not 1 <= month <= 12:
        return False
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    days = 29 if month == 2 and leap else _DAYS_IN_MONTH[month - 1]
    if not 1 <= day <= days or hour > 23 or minute > 59 or second > 60:
        return False
    offset = 0
    if match.group(7):
        off_hour, off_minute = int(match.group(8)), int(match.group(9))
        if off_hour > 23 or off_minute > 59:
            return False
        offset = (off_hour * 60 + off_minute) * (1 if match.group(7) == "+" else -1)
    # A leap second can only be the last second of a UTC day.
    return second < 60 or (hour * 60 + minute - offset) % 1440 == 1439


_URI_CHARS = r"A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%"
_URI = re.compile(rf"[A-Za-z][A-Za-z0-9+.\-]*:[{_URI_CHARS}]*")
_IRI = re.compile(rf"[A-Za-z][A-Za-z0-9+.\-]*:(?:[{_URI_CHARS}]|[^\x00-\x9f\s])*")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _is_uri(value: str) -> bool:
    return _URI.fullmatch(value) is not None and _BAD_PERCENT.search(value) is None


def _is_iri(value: str) -> bool:
    return _IRI.fullmatch(value) is not None and _BAD_PERCENT.search(value) is None


#: The format checks dssesign asserts, the same whatever else is installed: these three, plus
#: jsonschema-rs's compiled-in checks for the other format names (email, uuid, ...). jsonschema's
#: own "date-time" and "uri" checks silently pass unless optional packages are importable, and
#: its "iri-reference" becomes an Earley parser when rfc3987-syntax is.
FORMAT_CHECKS: Final[Mapping[str, FormatCheck]] = MappingProxyType(
    {"date-time": is_rfc3339_date_time, "uri": _is_uri, "iri": _is_iri}
)


# --- schema files ---------------------------------------------------------------------------

_SCHEMA_SUFFIX = ".schema.json"
_ANCHOR_SCHEMA = "intoto-v1-fields.schema.json"


def _schema_search_path() -> list[Traversable]:
    """The wheel's ``dssesign/_predicates`` first, then ``<repo>/predicates`` (editable/source)."""
    return [
        resources.files("dssesign").joinpath("_predicates"),
        Path(__file__).resolve().parents[2] / "predicates",
    ]


@functools.cache
def _schema_dir() -> Traversable:
    searched = _schema_search_path()
    for candidate in searched:
        if candidate.is_dir() and candidate.joinpath(_ANCHOR_SCHEMA).is_file():
            return candidate
    # A packaging bug: fail closed rather than sign unvalidated predicates.
    raise RuntimeError("predicate schemas not found in " + ", ".join(str(c) for c in searched))


@functools.cache
def _bundled_schemas() -> dict[str, dict[str, Any]]:
    schemas: dict[str, dict[str, Any]] = {}
    for entry in _schema_dir().iterdir():
        if entry.name.endswith(_SCHEMA_SUFFIX):
            schemas[entry.name] = json.loads(entry.read_text(encoding="utf-8"))
    return schemas


@functools.cache
def _schema_registry() -> dict[str, dict[str, Any]]:
    """Every bundled schema by ``$id``, so predicate schemas can $ref the in-toto field types."""
    return {schema["$id"]: schema for schema in _bundled_schemas().values()}


def _compile(schema: Mapping[str, Any]) -> CompiledSchema:
    return CompiledSchema(schema, resources=_schema_registry(), formats=FORMAT_CHECKS)


@functools.cache
def _bundled(name: str) -> CompiledSchema:
    return _compile(_bundled_schemas()[name])


def _drop_nulls(value: Any) -> Any:
    """A copy without null-valued members: SLSA says unset, null and empty mean the same."""
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _check_schema(contents: Mapping[str, Any]) -> None:
    """Refuse a user-supplied schema that is not valid draft 2020-12 (by its metaschema)."""
    import jsonschema_rs  # noqa: PLC0415 - compiled extension, loaded with the first schema

    try:
        jsonschema_rs.meta.validate(dict(contents))
    except jsonschema_rs.ValidationError as exc:
        raise ValueError(f"not a valid JSON Schema: {exc.message}") from None


def json_schema_validator(
    schema: Mapping[str, Any] | str | os.PathLike[str], *, null_means_unset: bool = False
) -> PredicateValidator:
    """A validator for ``register_predicate_type`` from a JSON Schema (draft 2020-12) or its path.

    The schema may $ref ``urn:dssesign:schema:intoto-v1-fields#/$defs/ResourceDescriptor`` and
    the other in-toto field types. It is compiled on first use, with the formats of
    `FORMAT_CHECKS` asserted, and validates in time linear in the predicate (jsonschema-rs).
    """

    @functools.cache
    def compiled() -> CompiledSchema:
        if isinstance(schema, Mapping):
            contents: dict[str, Any] = dict(schema)
        else:
            contents = json.loads(Path(schema).read_text(encoding="utf-8"))
        _check_schema(contents)
        return _compile(contents)

    def validate(type_uri: str, predicate: dict[str, Any]) -> None:
        instance = _drop_nulls(predicate) if null_means_unset else predicate
        _raise_failure(compiled().best_failure(instance))

    return validate


def _bundled_validator(
    name: str,
    *,
    null_means_unset: bool = False,
    extra: Callable[[dict[str, Any]], None] | None = None,
) -> PredicateValidator:
    def validate(type_uri: str, predicate: dict[str, Any]) -> None:
        instance = _drop_nulls(predicate) if null_means_unset else predicate
        _raise_failure(_bundled(name).best_failure(instance))
        if extra is not None:
            extra(instance)

    return validate


# --- jsonschema errors -> PredicateError ----------------------------------------------------


def _clip(text: str) -> str:
    return clip(text, _MAX_MESSAGE)


def _scalar_repr(value: object) -> str:
    if isinstance(value, str | int | float | bool) or value is None:
        return _clip(json.dumps(value))
    return _json_kind(value)


def _to_predicate_error(failure: SchemaFailure) -> PredicateError:
    elements: list[object] = list(failure.path)
    message = _keyword_message(failure)
    for holder, path in failure.frames:  # a schema's own "errorMessage" beats the wording
        custom = holder.get("errorMessage")
        if isinstance(custom, str):
            elements = list(path)
            message = custom
            if path == failure.path and not isinstance(failure.instance, dict | list):
                message += f", got {_scalar_repr(failure.instance)}"
            break
    else:
        if failure.keyword == "required" and isinstance(failure.instance, dict):
            required = failure.value if isinstance(failure.value, list) else []
            missing = [p for p in required if p not in failure.instance]
            if missing:  # name the missing member in the path, not just its parent
                elements.append(missing[0])
    path_text = json_path(elements)
    return PredicateError(f"{path_text}: {_clip(message)}", path_text)


def _keyword_message(failure: SchemaFailure) -> str:
    """dssesign's wording for a failed keyword (stable whatever the validator's own wording)."""
    value, instance = failure.value, failure.instance
    shown = repr(instance)
    if len(shown) > 60:
        shown = _json_kind(instance)  # name a long value's kind instead of quoting it whole
    keyword = failure.keyword
    if keyword == "required" and isinstance(instance, dict) and isinstance(value, list):
        missing = [name for name in value if name not in instance]
        if missing:
            return f"{missing[0]!r} is a required property"
    if keyword == "additionalProperties" and isinstance(instance, dict):
        allowed = failure.holder.get("properties", {})
        extra = [name for name in instance if name not in allowed]
        if extra:
            return f"Additional properties are not allowed ({extra[0]!r} was unexpected)"
    simple = {
        "enum": f"{shown} is not one of {value!r}",
        "const": f"{value!r} was expected",
        "type": f"{shown} is not of type {value!r}",
        "pattern": f"{shown} does not match {value!r}",
        "format": f"{shown} is not a {value!r}",
        "minimum": f"{shown} is less than the minimum of {value!r}",
        "maximum": f"{shown} is greater than the maximum of {value!r}",
        "exclusiveMinimum": f"{shown} is less than or equal to the minimum of {value!r}",
        "exclusiveMaximum": f"{shown} is greater than or equal to the maximum of {value!r}",
        "uniqueItems": f"{shown} has non-unique elements",
        "maxItems": f"{shown} is too long",
        "maxLength": f"{shown} is too long",
        "maxProperties": f"{shown} has too many properties",
    }
    if keyword in ("minItems", "minLength", "minProperties"):
        return f"{shown} should be non-empty" if value == 1 else f"{shown} is too short"
    return simple.get(keyword, failure.message)


def _raise_failure(failure: SchemaFailure | None) -> None:
    if failure is not None:
        raise _to_predicate_error(failure)
