"""RFC 8785 canonicalization: the cyberphone vectors, the ES6 number file, every refusal, UTF-16
key order, and hypothesis against the `rfc8785` package and against our own exact path."""

from __future__ import annotations

import copy
import json
import struct
from collections import OrderedDict
from decimal import Decimal
from enum import IntEnum
from functools import cache
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from dssesign.core import canonical
from dssesign.core.canonical import MAX_SAFE_INTEGER, canonicalize
from dssesign.errors import CanonicalizationError, InputError
from dssesign.limits import DEFAULT_LIMITS
from tests.conftest import FIXTURES

JCS = FIXTURES / "jcs"
VECTOR_NAMES = ("arrays", "french", "structures", "unicode", "values", "weird")


def reference(value: object) -> bytes:
    """The `rfc8785` package (pure Python, independent of us)."""
    out: bytes = rfc8785.dumps(value)  # type: ignore[arg-type]
    return out


def exact(value: object) -> bytes:
    """Our slow path alone: the fast path must agree with it byte for byte."""
    return canonical._Exact().run(value)


def nested(depth: int, leaf: object = 1) -> object:
    """`depth` containers, alternating list and dict, around `leaf`."""
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


# -- the cyberphone/json-canonicalization vectors ---------------------------------------------


@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_testdata_pairs(name: str) -> None:
    value = json.loads((JCS / "testdata" / "input" / f"{name}.json").read_text(encoding="utf-8"))
    expected = (JCS / "testdata" / "output" / f"{name}.json").read_bytes()
    hex_text = (JCS / "testdata" / "outhex" / f"{name}.txt").read_text()
    assert bytes.fromhex("".join(hex_text.split())) == expected
    assert canonicalize(value) == expected
    assert exact(value) == expected


@cache
def es6_lines() -> list[tuple[int, str, str]]:
    path = JCS / "es6testfile-first10000.txt"
    lines = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        ieee_hex, expected = line.split(",")
        lines.append((number, ieee_hex, expected))
    return lines


def test_es6_number_file_has_all_lines() -> None:
    assert len(es6_lines()) == 10_000


def test_es6_numbers() -> None:
    """Each IEEE-754 value, alone, inside containers (the fast path's inline and called levels)
    and through the exact path, must print as ES6 Number.prototype.toString does."""
    failures = []
    for number, ieee_hex, expected in es6_lines():
        x = struct.unpack(">d", bytes.fromhex(ieee_hex.zfill(16)))[0]
        want = expected.encode()
        got = (
            canonicalize(x),
            canonicalize({"a": [{"b": x}], "c": x}),
            exact(x),
        )
        if got != (want, b'{"a":[{"b":' + want + b'}],"c":' + want + b"}", want):
            failures.append(f"line {number} ({ieee_hex},{expected}): got {got!r}")
    assert not failures, f"{len(failures)} ES6 number mismatches, first: {failures[:5]}"


# -- documented number forms and string escapes -----------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1e21, "1e+21"),
        (1e-7, "1e-7"),
        (100.0, "100"),
        (-0.0, "0"),
        (0.0, "0"),
        (1e16, "10000000000000000"),
        (1e20, "100000000000000000000"),
        (4.2e-05, "0.000042"),
        (1e-6, "0.000001"),
        (1.5e-9, "1.5e-9"),
        (1e-10, "1e-10"),
        (0.0001, "0.0001"),
        (123.456, "123.456"),
        (2.0**53, "9007199254740992"),
        (-(2.0**60), "-1152921504606847000"),  # shortest digits, zero-padded
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (MAX_SAFE_INTEGER, "9007199254740991"),
        (-MAX_SAFE_INTEGER, "-9007199254740991"),
        (True, "true"),
        (None, "null"),
    ],
)
def test_number_and_literal_forms(value: object, text: str) -> None:
    for wrapped, expected in ((value, text), ([value, {"x": value}], f'[{text},{{"x":{text}}}]')):
        assert canonicalize(wrapped) == expected.encode()
        assert reference(wrapped) == expected.encode()


def test_string_escapes_match_es6() -> None:
    # ES6 JSON.stringify: short escapes for \b \t \n \f \r, lowercase \u00xx for other controls,
    # and nothing else escaped: not "/", not U+007F, not U+2028/U+2029, not non-ASCII.
    chars = "".join(chr(c) for c in range(0x80)) + "\u0080\u00ff\u2028\u2029\ufeff\uffff\U0010ffff"
    out = canonicalize({"s": chars})
    assert out == reference({"s": chars}) == exact({"s": chars})
    text = out.decode()
    assert "\\b\\t\\n\\u000b\\f\\r\\u000e" in text
    assert "\\u001f" in text and "\\u001F" not in text
    assert ' !\\"#' in text and "./0" in text and "[\\\\]" in text
    assert "~\x7f\x80" in text and "\u2028\u2029" in text


# -- refusals ---------------------------------------------------------------------------------


def refused(value: object) -> str:
    with pytest.raises(CanonicalizationError) as info:
        canonicalize(value)
    assert isinstance(info.value, InputError)
    return str(info.value)


@pytest.mark.parametrize(
    ("value", "what", "path"),
    [
        ({"predicate": {"items": [1, 2, 3, float("nan")]}}, "NaN", "$.predicate.items[3]"),
        (float("nan"), "NaN", "at $:"),
        ({"a": [float("inf")]}, "Infinity", "$.a[0]"),
        ({"a": float("-inf")}, "-Infinity", "$.a"),
        ([1.5, {"x": (float("inf"),)}], "Infinity", "$[1].x[0]"),
    ],
)
def test_nan_and_infinity_refused(value: object, what: str, path: str) -> None:
    message = refused(value)
    assert f"cannot canonicalize {what} " in message and path in message


@pytest.mark.parametrize(
    ("value", "path", "code_point"),
    [
        ({"s": "ok\ud800x"}, "$.s", "U+D800"),
        ({"s": "\udfff"}, "$.s", "U+DFFF"),
        ([["a", "b\udc00"]], "$[0][1]", "U+DC00"),
        ({"k\ud83d": 1}, '$["k\\ud83d"]', "U+D83D"),
        # Next to floats the fast path rewrites (placeholders in its output):
        ({"a": 1e-7, "b": "\ud8001e-7\ud800"}, "$.b", "U+D800"),
        ({"a": 1e-7, "b": "\ud800"}, "$.b", "U+D800"),
        ({"b": ["\ud800", 1e-7, "\ud800"]}, "$.b[0]", "U+D800"),
        ({"a": [2e-7, 1e-7], "\ud800": 0}, '$["\\ud800"]', "U+D800"),
    ],
)
def test_lone_surrogates_refused(value: object, path: str, code_point: str) -> None:
    message = refused(value)
    assert f"lone surrogate {code_point}" in message and f"at {path}:" in message
    assert "UTF-8" in message


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({"n": 2**53}, "$.n"),
        ({"n": -(2**53)}, "$.n"),
        ([0, [10**30]], "$[1][0]"),
        (2**64, "$"),
    ],
)
def test_integers_beyond_safe_range_refused(value: object, path: str) -> None:
    message = refused(value)
    assert "integer" in message and "I-JSON safe range" in message and "2^53 - 1" in message
    assert f"at {path}:" in message


def test_safe_integer_bounds_accepted() -> None:
    assert canonicalize([MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER]) == (
        b"[9007199254740991,-9007199254740991]"
    )


@pytest.mark.parametrize(
    ("value", "key", "path"),
    [
        ({1: "a"}, "object key 1 (int)", "$"),
        ({"m": {"a": 1, 2: "b"}}, "object key 2 (int)", "$.m"),
        ({"m": [{None: 1}]}, "object key None (NoneType)", "$.m[0]"),
        ({"m": {True: 1, 1.5: 2}}, "object key True (bool)", "$.m"),
        ({"m": {("a",): 1}}, "object key ('a',) (tuple)", "$.m"),
    ],
)
def test_non_str_keys_refused_not_stringified(value: object, key: str, path: str) -> None:
    message = refused(value)
    assert key in message and f"at {path}:" in message and "not converted" in message


@pytest.mark.parametrize(
    ("value", "type_name", "path"),
    [
        ({"x": {1, 2}}, "set", "$.x"),
        ({"x": [b"ab"]}, "bytes", "$.x[0]"),
        ({"x": object()}, "object", "$.x"),
        ([Decimal("1.5")], "Decimal", "$[0]"),
        ({"x": frozenset()}, "frozenset", "$.x"),
        (1j, "complex", "$"),
    ],
)
def test_unsupported_types_refused(value: object, type_name: str, path: str) -> None:
    message = refused(value)
    assert f"a value of type {type_name} at {path}:" in message


def test_depth_limit() -> None:
    limit = DEFAULT_LIMITS.max_json_depth
    assert limit == 64
    leaves: tuple[object, ...] = (1, 1e-7, [], {})
    for depth in (limit - 1, limit):
        for leaf in leaves:
            value = (
                nested(depth - 1, leaf) if isinstance(leaf, list | dict) else nested(depth, leaf)
            )
            assert canonicalize(value) == reference(value)
    for leaf in leaves:
        too_deep = nested(limit, leaf) if isinstance(leaf, list | dict) else nested(limit + 1, leaf)
        message = refused(too_deep)
        assert f"nested deeper than {limit}" in message and ".k[0].k[0]" in message
    shifted = [nested(limit, 1)]  # the same, one level lower: the other inline/call parity
    assert f"nested deeper than {limit}" in refused(shifted)


def chain(kinds: str, leaf: object = 1) -> object:
    """Containers from the root inwards: d(ict), l(ist) or t(uple), around `leaf`."""
    value = leaf
    for kind in reversed(kinds):
        value = {"k": value} if kind == "d" else [value] if kind == "l" else (value,)
    return value


@pytest.mark.parametrize("head", ["l", "lt", "d"])
@pytest.mark.parametrize("last", ["dd", "dl", "ld", "ll", "dt", "lt"])
def test_depth_limit_for_every_kind_and_position(head: str, last: str) -> None:
    # The fast path scans every other level inline and a tuple below the root shifts which levels
    # those are: the 64th (accepted) and 65th (refused) container are tried in both positions,
    # for every kind of parent and child.
    limit = DEFAULT_LIMITS.max_json_depth
    body = (head + "dl" * limit)[: limit - 1]
    ok = chain(body[:-1] + last)
    assert canonicalize(ok) == reference(ok)
    for leaf in (1, 1e-7):
        assert f"nested deeper than {limit}" in refused(chain(body + last, leaf))


def test_cycle_is_refused_as_too_deep() -> None:
    loop: list[object] = []
    loop.append(loop)
    assert "nested deeper than" in refused(loop)


# -- key order --------------------------------------------------------------------------------


def test_keys_sorted_by_utf16_code_units_not_code_points() -> None:
    # U+10000 is D800 DC00 in UTF-16: it sorts before U+E000 and U+FFFF there, after them in
    # code point order (what Python's sort, and json.dumps(sort_keys=True), would do).
    value = {"\uffff": 3, "\U00010000": 1, "\ue000": 2, "a": 0}
    expected = '{"a":0,"\U00010000":1,"\ue000":2,"\uffff":3}'.encode()
    assert canonicalize(value) == expected == reference(value)
    assert canonicalize({"x": [value]}) == b'{"x":[' + expected + b"]}"


@pytest.mark.parametrize(
    "value",
    [
        {"\U0001f600": "a", "z": "\U0001f601", "\u00e9": ["b"]},  # no U+E000..U+FFFF at all
        {"a": "\U0001f600", "\u00e9": ["\ue000", "\uffff"]},  # non-BMP only in values
    ],
)
def test_non_bmp_without_order_conflict_stays_on_the_fast_path(
    value: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Code point and UTF-16 orders agree here, so the C encoder's order is already right.
    expected = reference(value)
    monkeypatch.setattr(canonical, "_Exact", None)  # any detour to the exact path would fail
    assert canonicalize(value) == expected


# -- odd but valid input ----------------------------------------------------------------------


class Level(IntEnum):
    THREE = 3


class Tag(str):
    pass


def test_subclasses_and_tuples_serialize_as_their_json_types() -> None:
    value = OrderedDict(
        [("b", (1, 2.5, (100.0,))), ("a", Level.THREE), (Tag("t"), Tag("v")), ("f", 1e-7)]
    )
    expected = b'{"a":3,"b":[1,2.5,[100]],"f":1e-7,"t":"v"}'
    assert canonicalize(value) == expected == reference(value)


def test_float_placeholder_digits_in_the_data() -> None:
    # The fast path stands in for 1e-7 with an int whose digits start with a fixed prefix; the same
    # digits inside a string must neither be rewritten nor confuse the swap.
    prefix = canonical._TOKEN_PREFIX.decode()
    for text in (prefix, prefix + "0000000000", "x" + prefix + "0000000001y"):
        value = {"a": 1e-7, "s": text, "t": [text, 2e-7]}
        assert canonicalize(value) == reference(value)
        assert canonicalize(value).count(prefix.encode()) == 2


def test_input_is_not_modified() -> None:
    value: dict[str, Any] = {
        "a": [1e-7, {"b": 100.0, "c": (2e-8, [3e20])}],
        "d": {"e": -0.0, "f": "x"},
    }
    before = copy.deepcopy(value)
    inner = value["a"][1]
    assert canonicalize(value) == (
        b'{"a":[1e-7,{"b":100,"c":[2e-8,[300000000000000000000]]}],"d":{"e":0,"f":"x"}}'
    )
    assert value == before and value["a"][1] is inner
    assert value["d"]["e"] == 0.0 and str(value["d"]["e"]) == "-0.0"


def test_bench_statements_take_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # The speed target is measured on these: a silent detour to the exact path would be a miss.
    from bench._statements import bench_statements

    statements = bench_statements()
    expected = [reference(s) for s in statements]
    monkeypatch.setattr(canonical, "_Exact", None)
    assert [canonicalize(s) for s in statements] == expected


def test_statement_shaped_document() -> None:
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "a.tar.gz", "digest": {"sha256": "ab" * 32}}],
        "predicateType": "https://example.com/p/v1",
        "predicate": {"score": 0.93, "ratio": 100.0, "tiny": 3e-6, "n": 7, "ok": True},
    }
    assert canonicalize(statement) == reference(statement) == exact(statement)


# -- hypothesis -------------------------------------------------------------------------------

# Floats: anything finite, plus the forms where repr() and ES6 part ways.
FLOATS = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(
    [0.0, -0.0, 100.0, 1e16, 1e20, 1e21, 2.0**53, 1e-4, 9.9e-5, 4.2e-05, 1e-7, 1.5e-9, 1e-10]
)
INTS = st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
# Keys mixing characters whose UTF-16 and code point orders differ.
KEYS = st.text(
    st.characters(codec="utf-8")
    | st.sampled_from(["\ue000", "\uffff", "\U00010000", "\U0001f600", "a"]),
    max_size=4,
)
SCALARS = st.none() | st.booleans() | INTS | FLOATS | st.text(max_size=12)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(KEYS, children, max_size=5)
        | st.lists(children, max_size=3).map(tuple)
    ),
    max_leaves=30,
)


def jcs_loads(data: bytes) -> Any:
    """Parse canonical JSON the I-JSON way: every number is a double, so an integer literal beyond
    2^53 (ES6 prints large doubles as digits) is read back as a float."""

    def number(text: str) -> int | float:
        n = int(text)
        return n if -MAX_SAFE_INTEGER <= n <= MAX_SAFE_INTEGER else float(text)

    return json.loads(data, parse_int=number)


def same_json(a: object, b: object) -> bool:
    """Equal as JSON data: numbers by value (100.0 == 100, -0.0 == 0), tuples as lists."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b) if isinstance(a, float) or isinstance(b, float) else a == b
    if isinstance(a, list | tuple):
        return (
            isinstance(b, list)
            and len(a) == len(b)
            and all(same_json(x, y) for x, y in zip(a, b, strict=True))
        )
    if isinstance(a, dict):
        return (
            isinstance(b, dict) and a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
        )
    return type(a) is type(b) and a == b


@settings(max_examples=400, deadline=None)
@given(JSON_VALUES)
def test_same_bytes_as_rfc8785_package(value: object) -> None:
    assert canonicalize(value) == reference(value)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_fast_path_equals_exact_path(value: object) -> None:
    assert canonicalize(value) == exact(value)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_round_trip_and_fixed_point(value: object) -> None:
    out = canonicalize(value)
    assert same_json(value, json.loads(out))
    # Plain json.loads reads 1e20's "100000000000000000000" as an int beyond 2^53, which we
    # refuse; read as I-JSON (numbers are doubles), the output is a fixed point.
    assert canonicalize(jcs_loads(out)) == out


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(KEYS, INTS, min_size=2, max_size=8))
def test_key_order_is_utf16(value: dict[str, int]) -> None:
    keys = list(json.loads(canonicalize(value)))
    assert keys == sorted(value, key=lambda k: k.encode("utf-16-be"))
