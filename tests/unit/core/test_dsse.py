from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from dssesign.core.dsse import Envelope, Signature, b64decode, pae
from dssesign.core.keys import load_public_key
from dssesign.errors import EnvelopeError
from dssesign.limits import Limits
from tests.conftest import dsse_vectors


@pytest.mark.parametrize("vector", dsse_vectors()["pae"], ids=lambda v: v["name"])
def test_pae_vectors(vector: dict[str, str]) -> None:
    body = base64.b64decode(vector["body_b64"])
    assert pae(vector["payloadType"], body) == bytes.fromhex(vector["pae_hex"])


def test_pae_counts_utf8_bytes_not_code_points() -> None:
    # Several implementations used len(str); a non-ASCII type must count bytes.
    assert pae("tÿpe", b"\xe0\xb2\xa0") == "DSSEv1 5 tÿpe 3 ".encode() + b"\xe0\xb2\xa0"


def test_official_ecdsa_vector_verifies() -> None:
    vector = dsse_vectors()["ecdsa_p256_official"]
    envelope = Envelope.from_dict(vector["envelope"])
    raw = base64.b64decode(vector["sig_raw_rs_b64"])
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    assert base64.b64encode(der).decode() == vector["same_sig_as_DER_b64"]
    key = load_public_key(vector["public_key_pem"].encode())
    assert key.keyid == vector["public_key_spki_sha256_hex"]
    assert key.verify(der, envelope.pae())
    # The spec vector's raw r||s form is not what PKIX verifiers take: it must not verify.
    assert not key.verify(raw, envelope.pae())


def test_ed25519_vector_round_trip() -> None:
    vector = dsse_vectors()["ed25519_generated"]
    envelope = Envelope.from_dict(vector["envelope"])
    assert envelope.payload == vector["statement_json_utf8"].encode()
    assert envelope.pae() == base64.b64decode(vector["pae_b64"])
    key = load_public_key(vector["public_key_pem"].encode())
    assert key.verify(envelope.signatures[0].sig, envelope.pae())
    for case in vector["cases"]:
        parsed = Envelope.from_dict(case["envelope"])
        valid = [key.verify(s.sig, parsed.pae()) for s in parsed.signatures]
        if case["expect"] == "accept":
            assert all(valid) and parsed.payload == envelope.payload, case["name"]
        elif case["expect"] == "reject":
            assert not any(valid), case["name"]
        else:  # the same signature twice: two valid signatures, one key
            assert valid == [True, True]
            assert len({s.sig for s in parsed.signatures}) == 1


def test_to_json_shape_and_round_trip() -> None:
    envelope = Envelope(b"hello", "text/plain", (Signature(b"\x01\x02", "k1"), Signature(b"\x03")))
    data = json.loads(envelope.to_json())
    assert list(data) == ["payload", "payloadType", "signatures"]
    assert data["signatures"] == [{"keyid": "k1", "sig": "AQI="}, {"sig": "Aw=="}]
    assert Envelope.from_json(envelope.to_json()) == envelope


def test_standard_base64_out_urlsafe_in() -> None:
    payload = b"\xfb\xff\xfe" * 5  # encodes with + and / in standard base64
    envelope = Envelope(payload, "t", (Signature(b"\xfb\xef\xff"),))
    text = envelope.to_json().decode()
    assert "+" in text or "/" in text
    urlsafe = text.replace("+", "-").replace("/", "_")
    assert Envelope.from_json(urlsafe) == envelope


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("YWJj", None),
        ("YWI=", None),
        ("YWI", "not valid base64"),  # unpadded
        ("YW J", "not valid base64"),
        ("YWJ=", "non-canonical"),  # padding bits set
        ("+-==", "mixes"),
        ("ÿÿÿÿ", "not valid base64"),
    ],
)
def test_b64decode_strictness(text: str, message: str | None) -> None:
    if message is None:
        assert b64decode(text, what="x") == base64.b64decode(text)
    else:
        with pytest.raises(EnvelopeError, match=message):
            b64decode(text, what="x")


def _envelope(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"payload": "aGk=", "payloadType": "t", "signatures": [{"sig": "AQI="}]}
    base.update(overrides)
    return base


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("[]", "expected a JSON object"),
        ('{"payloadType": "t", "signatures": []}', "missing required field 'payload'"),
        ('{"payload": "aGk=", "signatures": []}', "missing required field 'payloadType'"),
        ('{"payload": "aGk=", "payloadType": "t"}', "missing required field 'signatures'"),
        ('{"payload": 1, "payloadType": "t", "signatures": []}', "payload: expected a string"),
        ('{"payload": "aGk=", "payloadType": null, "signatures": []}', "payloadType: expected"),
        ('{"payload": "aGk=", "payloadType": "t", "signatures": {}}', "expected a list"),
        ('{"payload": "aGk=", "payloadType": "t", "signatures": [1]}', "expected an object"),
        (
            '{"payload": "aGk=", "payloadType": "t", "signatures": [{}]}',
            "missing required field 'sig'",
        ),
        ('{"payload": "aGk=", "payloadType": "t", "signatures": [{"sig": 5}]}', "sig: expected"),
        (
            '{"payload": "aGk=", "payloadType": "t", "signatures": [{"sig": "", "keyid": 1}]}',
            "keyid: expected",
        ),
        (
            '{"payload": "aGk=", "payload": "aGk=", "payloadType": "t", "signatures": []}',
            "duplicate",
        ),
        (
            '{"payload": "aGk=", "Payload": "aGk=", "payloadType": "t", "signatures": []}',
            "case variant",
        ),
        (
            '{"payload": "aGk=", "payloadType": "t", "signatures": [], "\\u017fignatures": []}',
            "case variant",
        ),
        (
            '{"payload": "aGk=", "payloadType": "t", "signatures": [{"sig": "", "KEYID": "x"}]}',
            "case",
        ),
        ('{"payload": "aGk=", "payloadType": "t", "signatures": [], "x": NaN}', "not valid JSON"),
        ('{"payload": "aGk=", "payloadType": "t", "signatures": [] ', "not valid JSON"),
        ("\ufeff{}", "byte order mark"),
    ],
)
def test_strict_parse_errors(document: str, message: str) -> None:
    with pytest.raises(EnvelopeError, match=message):
        Envelope.from_json(document.encode())


def test_unknown_fields_are_ignored_as_dsse_requires() -> None:
    envelope = Envelope.from_dict(_envelope(extra=1, signatures=[{"sig": "AQI=", "note": "x"}]))
    assert envelope.payload == b"hi"


def test_unset_keyid_equals_empty() -> None:
    assert Envelope.from_dict(_envelope()).signatures[0].keyid == ""


def test_limits() -> None:
    small = Limits(
        max_payload_bytes=4,
        max_signatures=2,
        max_signature_bytes=3,
        max_keyid_chars=3,
        max_payload_type_chars=2,
        max_json_depth=3,
        max_json_bytes=400,
    )
    Envelope.from_dict(_envelope(payload="YWJjZA=="), limits=small)
    with pytest.raises(EnvelopeError, match="larger than the limit"):
        Envelope.from_dict(_envelope(payload="YWJjZGVmZ2g="), limits=small)
    with pytest.raises(EnvelopeError, match="exceed the limit of 2"):
        Envelope.from_dict(_envelope(signatures=[{"sig": ""}] * 3), limits=small)
    with pytest.raises(EnvelopeError, match="larger than 3 bytes"):
        Envelope.from_dict(_envelope(signatures=[{"sig": "AQIDBAUG"}]), limits=small)
    with pytest.raises(EnvelopeError, match="keyid: longer"):
        Envelope.from_dict(_envelope(signatures=[{"sig": "", "keyid": "abcd"}]), limits=small)
    with pytest.raises(EnvelopeError, match="payloadType: longer"):
        Envelope.from_dict(_envelope(payloadType="abc"), limits=small)
    with pytest.raises(EnvelopeError, match="nested deeper"):
        Envelope.from_json(json.dumps(_envelope(x=[[[1]]])), limits=small)
    with pytest.raises(EnvelopeError, match="exceeds the limit"):
        Envelope.from_json(json.dumps(_envelope(x="a" * 400)), limits=small)


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    with pytest.raises(EnvelopeError, match="nested deeper"):
        Envelope.from_json(b"[" * 100_000 + b"]" * 100_000)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["payload", "payloadType", "signatures", "sig", "keyid", "x"]),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(_json_values)
def test_any_json_value_parses_or_raises_envelope_error(value: object) -> None:
    try:
        envelope = Envelope.from_dict(value)
    except EnvelopeError:
        return
    assert isinstance(envelope.payload, bytes)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_parse_or_raise_envelope_error(data: bytes) -> None:
    with contextlib.suppress(EnvelopeError):
        Envelope.from_json(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64), st.text(max_size=16), st.lists(st.binary(max_size=16), max_size=3))
def test_serialize_parse_round_trip(payload: bytes, payload_type: str, sigs: list[bytes]) -> None:
    envelope = Envelope(
        payload, payload_type, tuple(Signature(s, f"k{i}") for i, s in enumerate(sigs))
    )
    assert Envelope.from_json(envelope.to_json()) == envelope
