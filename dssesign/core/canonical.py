"""RFC 8785 (JCS) canonical JSON: the exact bytes a DSSE payload is signed over.

Speed comes from letting the C encoder of :mod:`json` serialize: with sorted keys, no spaces and
``ensure_ascii=False`` its output already is JCS (its string escapes are those of ES6
``JSON.stringify``) but for three things, which one Python scan checks or rewrites first:

* Floats. ``float.__repr__`` gives the same shortest round-trip digits as ES6, laid out
  differently (``100.0``, ``1e+16``, ``1e-07``). Integral floats below 2^53 become ints; any other
  float whose layout differs becomes a placeholder int beyond 2^53 (which valid input cannot hold)
  that is swapped for its ES6 text in the output bytes, with a count that sends any coincidence
  with the data to the exact path (see `_untoken`). Only the containers on the way from the root
  to such a float are copied; the input is never modified.
* Key order. JCS sorts by UTF-16 code units, the C encoder by code points; the two differ only
  between a character beyond U+FFFF and one in U+E000..U+FFFF, so a document with both and a
  key beyond U+FFFF (rare) takes the exact path.
* Validation: str keys, the I-JSON integer range, depth, types; NaN and the infinities are refused
  by the encoder (``allow_nan=False``), lone surrogates by the strict UTF-8 encode.

Whatever the fast path does not take goes to `_Exact`, a plain recursive serializer that tracks
the JSON path: it names the problem and where it is, and still serializes odd-but-valid input
(non-BMP keys, subclasses of the JSON types) right.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from operator import length_hint
from typing import Any, Final

from .._internal.strict_json import json_path
from ..errors import CanonicalizationError
from ..limits import DEFAULT_LIMITS

__all__ = ["MAX_SAFE_INTEGER", "canonicalize"]

#: I-JSON (RFC 7493) safe integer bound: beyond it a JSON number loses precision in a double.
MAX_SAFE_INTEGER: Final = 2**53 - 1

_MIN_SAFE: Final = -MAX_SAFE_INTEGER
_MAX_DEPTH: Final = DEFAULT_LIMITS.max_json_depth
_TWO_53: Final = 2.0**53
# Placeholders for floats whose ES6 text is not their repr(): ints beyond 2^53, which valid input
# cannot hold, all starting with the same 19 digits; the 10 digits after those index the text.
_TOKEN_PREFIX: Final = b"7305186294107352918"
_TOKEN_BASE: Final = int(_TOKEN_PREFIX) * 10**10
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
_NON_BMP: Final = re.compile("[\U00010000-\U0010ffff]")
_NON_BMP_UTF8: Final = re.compile(b"[\xf0-\xf4]")
_ESCAPE: Final = re.compile('[\\x00-\\x1f"\\\\]')
_ESCAPES: Final = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
} | {chr(c): f"\\u{c:04x}" for c in range(0x20) if chr(c) not in "\b\f\n\r\t"}


class _Bail(Exception):
    """The fast path cannot take this value; the exact serializer decides (and names the error)."""


def _no_default(value: object) -> object:
    raise TypeError(type(value).__name__)


def _make_dumps() -> Callable[[object], str]:
    """The C encoder set up for JCS, built once (JSONEncoder.encode rebuilds it on every call)."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is not None:
        # markers=None: no cycle check. The scan bounds the depth first, so no cycle gets here.
        encoder = make(
            None, _no_default, json.encoder.encode_basestring, None, ":", ",", True, False, False
        )
        join = "".join

        def dumps(value: object) -> str:
            return join(encoder(value, 0))

        return dumps
    return json.JSONEncoder(
        ensure_ascii=False,
        check_circular=False,
        allow_nan=False,
        sort_keys=True,
        separators=(",", ":"),
        default=_no_default,
    ).encode


_dumps_c: Final = _make_dumps()


def canonicalize(value: object) -> bytes:
    """RFC 8785 canonical UTF-8 bytes of `value`: dict (str keys), list, tuple, str, int, float,
    bool, None.

    Raises CanonicalizationError naming the problem and its JSON path (``$.a.b[3]``) for NaN and
    the infinities, lone surrogates, integers beyond +/-(2^53 - 1), non-str keys, other types,
    and nesting deeper than ``DEFAULT_LIMITS.max_json_depth``.
    """
    texts: list[bytes] = []
    try:
        t = type(value)
        if t is dict:
            rewritten = _scan_dict(value, 1, texts)
        elif t is list:
            rewritten = _scan_list(value, 1, texts)
        else:
            rewritten = _scan_value(value, 1, texts)
        text = _dumps_c(value if rewritten is None else rewritten)
        out = text.encode("utf-8")  # strict: a lone surrogate raises
        if texts:
            out = _untoken(out, texts)
    except (_Bail, UnicodeEncodeError, ValueError, TypeError, RecursionError):
        return _Exact().run(value)
    # Code point order (the C encoder's) and UTF-16 order (JCS's) differ only between a character
    # beyond U+FFFF and one in U+E000..U+FFFF (UTF-8 lead bytes F0..F4 and EE..EF): unless the
    # output holds both, no two keys can sort differently.
    if (
        not text.isascii()
        and (b"\xee" in out or b"\xef" in out)
        and _NON_BMP_UTF8.search(out)
        and _has_non_bmp_key(value)
    ):
        return _Exact().run(value)
    return out


def _untoken(out: bytes, texts: list[bytes]) -> bytes:
    """Put the ES6 texts in place of the placeholder ints.

    Every placeholder is in the output once, so a prefix count above len(texts) means the
    digits also occur in the data (a string): then the exact path takes over.
    """
    parts = out.split(_TOKEN_PREFIX)
    if len(parts) != len(texts) + 1:
        raise _Bail
    pieces = [parts[0]]
    for part in parts[1:]:
        pieces.append(texts[int(part[:10])])
        pieces.append(part[10:])
    return b"".join(pieces)


def _has_non_bmp_key(value: object) -> bool:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if any(isinstance(k, str) and _NON_BMP.search(k) for k in node):
                return True
            stack.extend(node.values())
        elif isinstance(node, list | tuple):
            stack.extend(node)
    return False


# The scan: the only per-node Python work, so it is written for speed. Scalars are handled inline,
# the commonest types tested first, and each child container is scanned inline too (the same
# dispatch, repeated), so only grandchildren cost a call: most containers in a statement sit near
# the leaves, and this saves about a fifth. A scan returns None when its container can be
# serialized as it is, else a copy with floats substituted (only containers on the way to such a
# float are copied). The float test in the dispatch passes the floats whose repr() already is the
# ES6 text; it also passes the infinities, which the C encoder then refuses (allow_nan=False).


def _scan_value(v: Any, depth: int, texts: list[bytes]) -> object:
    """Any value at `depth`; the rare cases (top level, floats needing a new form, tuples)."""
    t = type(v)
    if t is dict:
        return _scan_dict(v, depth, texts)
    if t is list or t is tuple:
        return _scan_list(v, depth, texts)
    if t is float:
        if v.is_integer():
            if -_TWO_53 < v < _TWO_53:
                return int(v)  # exact, and prints as ES6 does ("100"; "0" for -0.0)
        elif (v >= 1e-4 or v <= -1e-4) and math.isfinite(v):
            return None  # repr is already plain decimal notation, as in ES6
        texts.append(_es6_number(v).encode())  # raises _Bail on NaN and the infinities
        return _TOKEN_BASE + len(texts) - 1
    if t is str or t is bool or v is None:
        return None
    if t is int and _MIN_SAFE <= v <= MAX_SAFE_INTEGER:
        return None
    raise _Bail


def _scan_dict(d: Any, depth: int, texts: list[bytes]) -> object:
    # _scan_dict and _scan_list inline one level of their children by hand (the twin blocks
    # below): a call per nested container was a third of the walk's time on real statements,
    # and the walk is what stands between us and the benchmark's 4x over rfc8785. Keep the two
    # bodies in step; tests/test_canonical.py checks both paths against the exact serializer.
    if depth > _MAX_DEPTH:
        raise _Bail
    out: dict[str, object] | None = None
    for k, v in d.items():
        if type(k) is not str:
            raise _Bail
        t = type(v)
        if t is str:
            continue
        if t is dict:
            if depth >= _MAX_DEPTH:
                raise _Bail
            inner_out: Any = None
            for k2, w in v.items():
                if type(k2) is not str:
                    raise _Bail
                u = type(w)
                if u is str:
                    continue
                if u is dict:
                    new = _scan_dict(w, depth + 2, texts)
                elif u is list:
                    new = _scan_list(w, depth + 2, texts)
                elif u is int:
                    if _MIN_SAFE <= w <= MAX_SAFE_INTEGER:
                        continue
                    raise _Bail
                elif (
                    u is bool
                    or w is None
                    or (u is float and (w >= 1e-4 or w <= -1e-4) and not w.is_integer())
                ):
                    continue
                else:
                    new = _scan_value(w, depth + 2, texts)
                if new is not None:
                    if inner_out is None:
                        inner_out = dict(v)
                    inner_out[k2] = new
            if inner_out is None:
                continue
            new = inner_out
        elif t is list:
            if depth >= _MAX_DEPTH:
                raise _Bail
            inner_out = None
            for w in (it2 := iter(v)):
                u = type(w)
                if u is str:
                    continue
                if u is dict:
                    new = _scan_dict(w, depth + 2, texts)
                elif u is list:
                    new = _scan_list(w, depth + 2, texts)
                elif u is int:
                    if _MIN_SAFE <= w <= MAX_SAFE_INTEGER:
                        continue
                    raise _Bail
                elif (
                    u is bool
                    or w is None
                    or (u is float and (w >= 1e-4 or w <= -1e-4) and not w.is_integer())
                ):
                    continue
                else:
                    new = _scan_value(w, depth + 2, texts)
                if new is not None:
                    if inner_out is None:
                        inner_out = list(v)
                    inner_out[len(v) - length_hint(it2) - 1] = new
            if inner_out is None:
                continue
            new = inner_out
        elif t is int:
            if _MIN_SAFE <= v <= MAX_SAFE_INTEGER:
                continue
            raise _Bail
        elif (
            t is bool
            or v is None
            or (t is float and (v >= 1e-4 or v <= -1e-4) and not v.is_integer())
        ):
            continue
        else:
            new = _scan_value(v, depth + 1, texts)
            if new is None:
                continue
        if out is None:
            out = dict(d)
        out[k] = new
    return out


def _scan_list(a: Any, depth: int, texts: list[bytes]) -> object:
    if depth > _MAX_DEPTH:
        raise _Bail
    out: list[object] | None = None
    for v in (it := iter(a)):
        t = type(v)
        if t is str:
            continue
        if t is dict:
            if depth >= _MAX_DEPTH:
                raise _Bail
            inner_out: Any = None
            for k2, w in v.items():
                if type(k2) is not str:
                    raise _Bail
                u = type(w)
                if u is str:
                    continue
                if u is dict:
                    new = _scan_dict(w, depth + 2, texts)
                elif u is list:
                    new = _scan_list(w, depth + 2, texts)
                elif u is int:
                    if _MIN_SAFE <= w <= MAX_SAFE_INTEGER:
                        continue
                    raise _Bail
                elif (
                    u is bool
                    or w is None
                    or (u is float and (w >= 1e-4 or w <= -1e-4) and not w.is_integer())
                ):
                    continue
                else:
                    new = _scan_value(w, depth + 2, texts)
                if new is not None:
                    if inner_out is None:
                        inner_out = dict(v)
                    inner_out[k2] = new
            if inner_out is None:
                continue
            new = inner_out
        elif t is list:
            if depth >= _MAX_DEPTH:
                raise _Bail
            inner_out = None
            for w in (it2 := iter(v)):
                u = type(w)
                if u is str:
                    continue
                if u is dict:
                    new = _scan_dict(w, depth + 2, texts)
                elif u is list:
                    new = _scan_list(w, depth + 2, texts)
                elif u is int:
                    if _MIN_SAFE <= w <= MAX_SAFE_INTEGER:
                        continue
                    raise _Bail
                elif (
                    u is bool
                    or w is None
                    or (u is float and (w >= 1e-4 or w <= -1e-4) and not w.is_integer())
                ):
                    continue
                else:
                    new = _scan_value(w, depth + 2, texts)
                if new is not None:
                    if inner_out is None:
                        inner_out = list(v)
                    inner_out[len(v) - length_hint(it2) - 1] = new
            if inner_out is None:
                continue
            new = inner_out
        elif t is int:
            if _MIN_SAFE <= v <= MAX_SAFE_INTEGER:
                continue
            raise _Bail
        elif (
            t is bool
            or v is None
            or (t is float and (v >= 1e-4 or v <= -1e-4) and not v.is_integer())
        ):
            continue
        else:
            new = _scan_value(v, depth + 1, texts)
            if new is None:
                continue
        if out is None:
            out = list(a)
        out[len(a) - length_hint(it) - 1] = new
    return out


def _es6_number(x: float) -> str:
    """ES6 Number.prototype.toString(x), built from the shortest round-trip digits of repr()."""
    if not math.isfinite(x):
        raise _Bail
    if x == 0:
        return "0"
    sign = ""
    r = repr(x)
    if r[0] == "-":
        sign, r = "-", r[1:]
    mantissa, _, exp = r.partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = whole + frac
    stripped = digits.lstrip("0")
    # x = 0.<s> * 10**n, s the significant digits; k = len(s) as in the ES6 algorithm.
    n = len(whole) + (int(exp) if exp else 0) - (len(digits) - len(stripped))
    s = stripped.rstrip("0")
    k = len(s)
    if k <= n <= 21:
        return sign + s + "0" * (n - k)
    if 0 < n <= 21:
        return sign + s[:n] + "." + s[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * -n + s
    e = n - 1
    exponent = f"e+{e}" if e > 0 else f"e-{-e}"
    if k == 1:
        return sign + s + exponent
    return sign + s[0] + "." + s[1:] + exponent


def _utf16_key(key: str) -> bytes:
    return key.encode("utf-16-be")


class _Exact:
    """Plain recursive JCS serializer that tracks the JSON path: the reference the fast path must
    equal, the error reporter, and the way through for odd-but-valid input."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.path: list[str | int] = []

    def run(self, value: object) -> bytes:
        self.value(value, 0)
        return "".join(self.parts).encode("utf-8")

    def fail(self, what: str, why: str) -> CanonicalizationError:
        return CanonicalizationError(f"cannot canonicalize {what} at {json_path(self.path)}: {why}")

    def value(self, v: object, depth: int) -> None:
        if v is None:
            self.parts.append("null")
        elif v is True:
            self.parts.append("true")
        elif v is False:
            self.parts.append("false")
        elif isinstance(v, str):
            self.string(v, "a string")
        elif isinstance(v, int):
            if not _MIN_SAFE <= v <= MAX_SAFE_INTEGER:
                raise self.fail(
                    f"integer {v}",
                    "it is outside the I-JSON safe range +/-(2^53 - 1) (RFC 7493), where JSON "
                    "numbers lose precision; encode it as a string",
                )
            self.parts.append(int.__repr__(v))
        elif isinstance(v, float):
            x = float(v)
            if math.isnan(x):
                raise self.fail("NaN", "JSON has no NaN")
            if math.isinf(x):
                raise self.fail("-Infinity" if x < 0 else "Infinity", "JSON has no infinities")
            self.parts.append(_es6_number(x))
        elif isinstance(v, list | tuple):
            self.enter(depth)
            self.parts.append("[")
            for i, item in enumerate(v):
                if i:
                    self.parts.append(",")
                self.path.append(i)
                self.value(item, depth + 1)
                self.path.pop()
            self.parts.append("]")
        elif isinstance(v, dict):
            self.enter(depth)
            for key in v:
                if not isinstance(key, str):
                    raise self.fail(
                        f"object key {key!r} ({type(key).__name__})",
                        "JSON object keys are strings, and other types are not converted",
                    )
                self.path.append(key)
                self.check_surrogates(key, "an object key")
                self.path.pop()
            self.parts.append("{")
            for i, key in enumerate(sorted(v, key=_utf16_key)):
                if i:
                    self.parts.append(",")
                self.path.append(key)
                self.string(key, "an object key")
                self.parts.append(":")
                self.value(v[key], depth + 1)
                self.path.pop()
            self.parts.append("}")
        else:
            raise self.fail(
                f"a value of type {type(v).__name__}",
                "only dict, list, tuple, str, int, float, bool and None have a JSON form",
            )

    def enter(self, depth: int) -> None:
        if depth >= _MAX_DEPTH:
            raise self.fail(
                "a container",
                f"it is nested deeper than {_MAX_DEPTH} levels (Limits.max_json_depth)",
            )

    def check_surrogates(self, s: str, what: str) -> None:
        m = _SURROGATE.search(s)
        if m:
            raise self.fail(
                f"lone surrogate U+{ord(m.group()):04X} in {what} (character {m.start()})",
                "it has no UTF-8 encoding",
            )

    def string(self, s: str, what: str) -> None:
        self.check_surrogates(s, what)
        self.parts.append('"' + _ESCAPE.sub(_escape, s) + '"')


def _escape(m: re.Match[str]) -> str:
    return _ESCAPES[m.group()]
