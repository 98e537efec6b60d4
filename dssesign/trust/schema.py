"""The published JSON Schema, run on jsonschema-rs after a linear bound on every array."""

from __future__ import annotations

import copy
import functools
import json
from importlib import resources
from typing import TYPE_CHECKING, Any, Final

from .._internal.schema import CompiledSchema, SchemaFailure
from .._internal.strict_json import json_path
from ..errors import (
    TrustRootError,
)

if TYPE_CHECKING:  # the verifier loads trust roots and nothing of the signing stack
    pass

from ._common import _clip, _fail

# --- schema ----------------------------------------------------------------------------------


def schema() -> dict[str, Any]:
    """The published JSON Schema (draft 2020-12) of trust-root v1, shipped in the package."""
    return copy.deepcopy(_schema())


@functools.cache
def _schema() -> dict[str, Any]:
    text = (
        resources.files("dssesign")
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
    if kind == "const" and value is True:  # a flag: requireTimestamp
        return "must be true (leave the field out instead of false)"
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
    if kind == "anyOf":  # the only anyOf: a role's members
        return "a role needs members: keyids, identities or both"
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
        defs["tsaText"]["pattern"]: "contains control or reordering characters",
        defs["certificate"]["pattern"]: (
            "is not one PEM certificate (a CERTIFICATE block, LF line ends, final newline)"
        ),
        defs["rotation"]["properties"]["handoverSignature"]["pattern"]: (
            "is not standard padded base64"
        ),
    }


def _schema_check(document: Any) -> None:
    error = _validator().best_failure(document)
    if error is not None:
        raise _schema_error(error)
