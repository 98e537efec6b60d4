"""Strict JSON reading shared by every parser: bounded, no duplicate members, no NaN."""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Iterable
from typing import Any, NoReturn

from ..errors import InputError
from ..limits import DEFAULT_LIMITS, Limits, exceeded

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


#: A member name longer than this is shown clipped in a path: an input chooses its names, and
#: an error stays one readable line.
_MAX_SHOWN_NAME = 80


def member_path(path: str, key: str) -> str:
    """JSON path of member `key` under `path`: `$.a.b`, or `$.a["odd key"]`."""
    if len(key) > _MAX_SHOWN_NAME:
        return f"{path}[{json.dumps(key[:_MAX_SHOWN_NAME])}...]"
    if _IDENTIFIER.fullmatch(key):
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key)}]"


def json_path(elements: Iterable[object]) -> str:
    """`$.a[3]["odd key"]` from the keys and indexes leading to a value, for error messages."""
    path = "$"
    for element in elements:
        path = f"{path}[{element}]" if isinstance(element, int) else member_path(path, str(element))
    return path


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    # I-JSON (RFC 7493): 1e400 would be read as infinity, which no other parser agrees on.
    value = float(text)
    if value in (math.inf, -math.inf):
        raise ValueError(f"number {text[:40]} is out of range for a double (I-JSON)")
    return value


#: I-JSON (RFC 7493 section 2.2): integers beyond +-(2^53 - 1) mean different numbers to
#: parsers that read them as doubles, so a signed document may not carry them.
_MAX_EXACT_INTEGER = 2**53 - 1


def _exact_int(text: str) -> int | float:
    """An integer every parser reads alike: within +-(2^53 - 1), or exactly a double.

    Beyond 2^53 - 1 a double-based parser rounds, so an integer no double holds exactly
    (9007199254740993) means different numbers to different verifiers: refused. One a double
    holds exactly (1e20 written out, as RFC 8785 writes such a float) is that double.
    """
    value = int(text)
    if len(text) > 15 and not -_MAX_EXACT_INTEGER <= value <= _MAX_EXACT_INTEGER:
        try:
            as_double = float(value)
        except OverflowError:
            as_double = math.inf
        if as_double != value:
            raise ValueError(
                f"integer {text[:40]} is beyond 2^53 - 1 and no double holds it exactly, "
                "which I-JSON forbids"
            )
        return as_double
    return value


#: A \uD800-\uDFFF escape: the only way a lone surrogate gets into text decoded from UTF-8.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_lone_surrogate(value: Any) -> bool:
    """Any string (member name or value) holding an unpaired surrogate; iterative walk."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if _SURROGATE.search(node):
                return True
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def _pairs_no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        # Parser differentials on duplicate members let one signature mean two things.
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate member {key!r}")
            seen.add(key)
    return obj


_local = threading.local()


def _decoder() -> json.JSONDecoder:
    # json.loads(..., object_pairs_hook=...) builds a new decoder per call, which cost more
    # than parsing a typical Statement; one per thread is reused instead.
    decoder: json.JSONDecoder | None = getattr(_local, "decoder", None)
    if decoder is None:
        decoder = json.JSONDecoder(
            object_pairs_hook=_pairs_no_duplicates,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
            parse_int=_exact_int,
        )
        _local.decoder = decoder
    return decoder


def _longest_array(value: Any) -> int:
    longest = 0
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(child for child in node.values() if isinstance(child, dict | list))
        elif isinstance(node, list):
            longest = max(longest, len(node))
            stack.extend(child for child in node if isinstance(child, dict | list))
    return longest


def _depth_exceeds(value: Any, max_depth: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def loads_strict(
    data: bytes | str,
    *,
    what: str,
    limits: Limits = DEFAULT_LIMITS,
    error: type[InputError] = InputError,
) -> Any:
    """Parse untrusted JSON; raise `error` naming `what` on anything we would not sign or trust."""
    if isinstance(data, str):
        try:
            size = len(data.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise error(
                f"{what}: a lone surrogate (U+{ord(data[exc.start]):04X} at character "
                f"{exc.start}) is not valid Unicode text (I-JSON)"
            ) from None
    else:
        size = len(data)
    if size > limits.max_json_bytes:
        raise error(
            f"{what}: {size} bytes exceeds {exceeded('max_json_bytes', limits.max_json_bytes)}"
        )
    if isinstance(data, bytes):
        if data.startswith(b"\xef\xbb\xbf"):
            raise error(f"{what}: a UTF-8 byte order mark is not allowed in JSON")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise error(f"{what}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    else:
        text = data
    try:
        value = _decoder().decode(text)
    except RecursionError:
        raise error(
            f"{what}: JSON nested deeper than {exceeded('max_json_depth', limits.max_json_depth)}"
        ) from None
    except json.JSONDecodeError as exc:
        raise error(
            f"{what}: not valid JSON: {exc.msg} (line {exc.lineno} column {exc.colno})"
        ) from None
    except ValueError as exc:
        raise error(f"{what}: not valid JSON: {exc}") from None
    # Escaped lone surrogates ("\\ud800") decode to text no UTF-8 writer can emit; only a
    # document with such an escape pays for the walk.
    # (`in` is a memchr: a document without a backslash skips the regular expression too.)
    if "\\" in text and _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(value):
        raise error(f"{what}: a \\u escape leaves a lone surrogate, which I-JSON forbids")
    # An array cannot hold more items than the document has commas: a cheap count first.
    if text.count(",") >= limits.max_array_items:
        longest = _longest_array(value)
        if longest > limits.max_array_items:
            raise error(
                f"{what}: an array of {longest} items exceeds "
                f"{exceeded('max_array_items', limits.max_array_items)}"
            )
    # Depth cannot exceed the number of opening brackets, so most documents skip the walk.
    brackets = text.count("[") + text.count("{")
    if brackets > limits.max_json_depth and _depth_exceeds(value, limits.max_json_depth):
        raise error(
            f"{what}: JSON nested deeper than {exceeded('max_json_depth', limits.max_json_depth)}"
        )
    return value
