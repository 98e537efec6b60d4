"""Countersign and merge in the library: bytes kept, keys counted once, new bundles only."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from dssesign.audit import signing_fields
from dssesign.core.dsse import Envelope, Signature, pae
from dssesign.errors import ConfigError, EnvelopeError
from dssesign.limits import Limits
from dssesign.sign.bundles import keyed_bundle, public_key_hint
from dssesign.sign.countersign import (
    appended_bundles,
    check_countersigners,
    signature_bundle_names,
)
from dssesign.sign.merge import (
    bundle_holds,
    find_bundle,
    merge_detailed,
    merge_envelopes,
    merged_bundles,
)
from dssesign.sign.multisign import MultiProfileSigner, SigningContext, SigningRecord
from dssesign.sign.signer import Signer
from tests.conftest import signer_for
from tests.unit.sign.test_bundles import FakeKeyless

PAYLOAD_TYPE = "application/vnd.in-toto+json"
#: Deliberately not canonical JSON: countersign must sign these bytes, never a re-encoding.
PAYLOAD = b'{ "predicateType": "x",\n  "_type": "https://in-toto.io/Statement/v1", "subject": [] }'

A, B, C = signer_for("ed25519"), signer_for("ecdsa-p256"), signer_for("ecdsa-p384")


def _signed(*signers: Signer, payload: bytes = PAYLOAD) -> Envelope:
    return MultiProfileSigner(list(signers)).sign(payload, PAYLOAD_TYPE)


def _verifies(envelope: Envelope, *signers: Signer) -> bool:
    message = pae(envelope.payload_type, envelope.payload)
    return all(
        s.public_key.verify(sig.sig, message)
        for s, sig in zip(signers, envelope.signatures, strict=True)
    )


# --- countersign -----------------------------------------------------------------------------


def test_countersign_appends_and_keeps_every_byte() -> None:
    first = _signed(A)
    result = MultiProfileSigner([B, C]).countersign(first)
    envelope = result.envelope
    assert envelope.payload == PAYLOAD  # the non-canonical bytes, untouched
    assert envelope.payload_type == PAYLOAD_TYPE
    assert envelope.signatures[0] == first.signatures[0]
    assert [s.keyid for s in envelope.signatures] == [A.keyid, B.keyid, C.keyid]
    assert _verifies(envelope, A, B, C)
    # The result describes the new signatures only, the envelope is whole.
    assert result.first == 1 and result.signers == (B, C)
    assert [sig.keyid for _, sig in result.pairs()] == [B.keyid, C.keyid]
    assert result.made().signatures == envelope.signatures[1:]
    # A second countersign appends after the first one, in order.
    again = MultiProfileSigner([signer_for("ed25519", 1)]).countersign(envelope).envelope
    assert again.signatures[:3] == envelope.signatures
    assert json.loads(again.to_json())["payload"] == base64.b64encode(PAYLOAD).decode()


def test_countersign_refuses_a_key_that_signed_under_its_keyid() -> None:
    first = _signed(A, B)
    with pytest.raises(ConfigError, match=r"already signed .*signature 2, same keyid"):
        MultiProfileSigner([C, B]).countersign(first)


@pytest.mark.parametrize("keyid", ["", "someone-elses-keyid", "ab" * 32])
def test_countersign_refuses_the_same_key_under_another_keyid(keyid: str) -> None:
    signature = A.sign(pae(PAYLOAD_TYPE, PAYLOAD))
    first = Envelope(PAYLOAD, PAYLOAD_TYPE, (Signature(sig=signature, keyid=keyid),))
    records: list[SigningRecord] = []
    signer = MultiProfileSigner([A], hooks=[records.append])
    with pytest.raises(ConfigError, match="same public key, under another keyid"):
        signer.countersign(first)
    assert records == []  # refused before anything was signed or recorded


def test_countersign_keeps_within_the_signature_limit() -> None:
    first = _signed(A, B)
    with pytest.raises(ConfigError, match="max_signatures"):
        check_countersigners(first, [C], limits=Limits(max_signatures=2))
    check_countersigners(first, [C], limits=Limits(max_signatures=3))


def test_countersign_is_recorded_as_its_own_event() -> None:
    records: list[SigningRecord] = []
    MultiProfileSigner([B], hooks=[records.append]).countersign(_signed(A))
    assert [signing_fields(r)["event"] for r in records] == ["countersign"]
    context = SigningContext(actor="reviewer")  # event "sign": countersign says otherwise
    MultiProfileSigner([C], hooks=[records.append]).countersign(_signed(A), context=context)
    assert signing_fields(records[-1])["event"] == "countersign"
    assert signing_fields(records[-1])["actor"] == "reviewer"
    MultiProfileSigner([C], hooks=[records.append]).sign(PAYLOAD, PAYLOAD_TYPE)
    assert signing_fields(records[-1])["event"] == "sign"


def test_bundles_only_for_the_appended_signatures() -> None:
    first = _signed(A)
    result = MultiProfileSigner([B, C]).countersign(first)
    files = appended_bundles(result, "release")
    assert [f.name for f in files] == [
        f"release.{B.keyid[:16]}.sigstore.json",
        f"release.{C.keyid[:16]}.sigstore.json",
    ]
    for item, signer, signature in zip(files, (B, C), result.envelope.signatures[1:], strict=True):
        bundle = json.loads(item.data)
        assert bundle["verificationMaterial"]["publicKey"]["hint"] == public_key_hint(
            signer.public_key
        )
        inner = bundle["dsseEnvelope"]
        assert base64.b64decode(inner["payload"]) == PAYLOAD
        assert [base64.b64decode(s["sig"]) for s in inner["signatures"]] == [signature.sig]


def test_keyless_bundles_are_numbered_among_every_keyless_signature() -> None:
    first = MultiProfileSigner([FakeKeyless(0), A]).sign(PAYLOAD, PAYLOAD_TYPE)
    assert first.signatures[0].keyid == ""
    result = MultiProfileSigner([FakeKeyless(1), B]).countersign(first)
    names = [f.name for f in appended_bundles(result, "env")]
    assert names == ["env.keyless-2.sigstore.json", f"env.{B.keyid[:16]}.sigstore.json"]


def test_signature_bundle_names() -> None:
    sigs = (
        Signature(b"1", "0123456789abcdef" + "0" * 48),
        Signature(b"2", ""),
        Signature(b"3", "../../etc/passwd"),
        Signature(b"4", ""),
    )
    names = signature_bundle_names(Envelope(b"p", "t", sigs), "s")
    assert names == [
        "s.0123456789abcdef.sigstore.json",
        "s.keyless-1.sigstore.json",
        None,  # a keyid that cannot name a file names none
        "s.keyless-2.sigstore.json",
    ]
    twins = (Signature(b"1", "a" * 16 + "1" * 48), Signature(b"2", "a" * 16 + "2" * 48))
    full = signature_bundle_names(Envelope(b"p", "t", twins), "s")
    assert full == [f"s.{s.keyid}.sigstore.json" for s in twins]


# --- merge -----------------------------------------------------------------------------------


def test_merge_is_the_union_in_argument_order() -> None:
    one, two, three = _signed(A), _signed(B, C), _signed(signer_for("ed25519", 1))
    merged = merge_envelopes([one, two, three])
    assert merged.payload == PAYLOAD and merged.payload_type == PAYLOAD_TYPE
    assert merged.signatures == one.signatures + two.signatures + three.signatures
    assert _verifies(merged, A, B, C, signer_for("ed25519", 1))


def test_merge_keeps_a_signature_once_and_never_drops_one_for_a_keyid() -> None:
    one = _signed(A, B)
    # Junk under B's keyid, listed before B's real signature: an equal keyid proves nothing,
    # so B's real signature must survive the merge (and the junk is kept, and fails verify).
    c_sig = C.sign(pae(PAYLOAD_TYPE, PAYLOAD))
    junk_first = Envelope(
        PAYLOAD, PAYLOAD_TYPE, (Signature(b"other bytes", B.keyid), Signature(c_sig, C.keyid))
    )
    countersigned = MultiProfileSigner([C]).countersign(one).envelope  # same bytes as `one`
    result = merge_detailed([junk_first, one, countersigned])
    sigs = result.envelope.signatures
    assert [s.keyid for s in sigs] == [B.keyid, C.keyid, A.keyid, B.keyid]
    assert one.signatures[1] in sigs  # B's real signature is kept
    assert result.dropped == ((2, 0), (2, 1), (2, 2))
    message = pae(PAYLOAD_TYPE, PAYLOAD)
    assert all(any(k.public_key.verify(x.sig, message) for x in sigs) for k in (A, B, C))
    # Identical signature bytes under another keyid are the same signature too.
    renamed = Envelope(PAYLOAD, PAYLOAD_TYPE, (Signature(one.signatures[0].sig, "other"),))
    assert merge_envelopes([one, renamed]).signatures == one.signatures


def test_merge_refuses_another_payload_type() -> None:
    other = MultiProfileSigner([B]).sign(PAYLOAD, "application/json")
    with pytest.raises(EnvelopeError, match=r"b\.json has payloadType 'application/json'"):
        merge_detailed([_signed(A), other], names=["a.json", "b.json"])


@pytest.mark.parametrize(
    "payload",
    [
        PAYLOAD + b"\n",  # whitespace
        b'{"_type":"https://in-toto.io/Statement/v1","predicateType":"x","subject":[]}',  # JCS
        b'{"subject": [], "_type": "https://in-toto.io/Statement/v1", "predicateType": "x"}',
    ],
    ids=["whitespace", "canonical", "key-order"],
)
def test_merge_refuses_the_same_json_re_encoded(payload: bytes) -> None:
    assert json.loads(payload) == json.loads(PAYLOAD)
    with pytest.raises(EnvelopeError, match="the payload of envelope 2 differs"):
        merge_envelopes([_signed(A), _signed(B, payload=payload)])


def test_merge_takes_a_base64_spelling_of_the_same_bytes_and_writes_it_standard() -> None:
    payload = b"\xfb\xff\xbf" + PAYLOAD  # standard base64 of it has '+' and '/'
    one, two = _signed(A, payload=payload), _signed(B, payload=payload)
    data = two.to_dict()
    data["payload"] = base64.urlsafe_b64encode(payload).decode()
    assert data["payload"] != two.to_dict()["payload"]
    variant = Envelope.from_json(json.dumps(data))
    merged = merge_envelopes([one, variant])
    assert json.loads(merged.to_json())["payload"] == base64.b64encode(payload).decode()
    assert _verifies(merged, A, B)
    # A spelling with non-zero padding bits is not read as the same bytes: it is refused.
    loose = dict(data, payload="YWJ=")  # "YWI=" is b"ab"; "J" sets a padding bit
    with pytest.raises(EnvelopeError, match="non-canonical"):
        Envelope.from_json(json.dumps(loose))


def test_merge_bounds() -> None:
    with pytest.raises(EnvelopeError, match="no envelopes"):
        merge_envelopes([])
    with pytest.raises(EnvelopeError, match="max_signatures"):
        merge_envelopes([_signed(A), _signed(B)], limits=Limits(max_signatures=1))


def test_merged_bundles_are_found_checked_and_renamed(tmp_path: Path) -> None:
    one, two = _signed(A), _signed(B)
    left, right, extra = tmp_path / "left", tmp_path / "right", tmp_path / "extra"
    for d in (left, right, extra):
        d.mkdir()

    def bundle(envelope: Envelope, signer: Signer) -> bytes:
        sig = envelope.signatures[0].sig
        made = keyed_bundle(PAYLOAD, PAYLOAD_TYPE, sig, signer.public_key)
        return json.dumps(made).encode()

    (left / f"a.{A.keyid[:16]}.sigstore.json").write_bytes(bundle(one, A))
    # Beside b.json a file by the right name holds another signature: passed over...
    (right / f"b.{B.keyid[:16]}.sigstore.json").write_bytes(bundle(one, A))
    # ...for the one in the extra directory that holds it.
    (extra / f"b.{B.keyid[:16]}.sigstore.json").write_bytes(bundle(two, B))
    result = merge_detailed([one, two])
    inputs = [(left / "a.json", one), (right / "b.json", two)]
    found = merged_bundles(result, inputs, "m", extra)
    assert [f.name for f in found.files] == [
        f"m.{A.keyid[:16]}.sigstore.json",
        f"m.{B.keyid[:16]}.sigstore.json",
    ]
    assert found.sources == (
        left / f"a.{A.keyid[:16]}.sigstore.json",
        extra / f"b.{B.keyid[:16]}.sigstore.json",
    )
    assert found.missing == ()
    assert all(
        bundle_holds(f.data, result.envelope, s.sig)
        for f, s in zip(found.files, result.envelope.signatures, strict=True)
    )
    without_extra = merged_bundles(result, inputs, "m")
    assert without_extra.missing == (1,)
    assert find_bundle(right / "b.json", two, 0) is None


def test_bundle_holds_is_strict() -> None:
    one = _signed(A)
    good = json.dumps(keyed_bundle(PAYLOAD, PAYLOAD_TYPE, one.signatures[0].sig, A.public_key))
    assert bundle_holds(good.encode(), one, one.signatures[0].sig)
    assert not bundle_holds(good.encode(), one, b"other")
    assert not bundle_holds(b"[]", one, one.signatures[0].sig)
    assert not bundle_holds(b"{", one, one.signatures[0].sig)
    other = json.loads(good)
    other["dsseEnvelope"]["payloadType"] = "text/plain"
    assert not bundle_holds(json.dumps(other).encode(), one, one.signatures[0].sig)


def test_one_key_under_two_keyids_is_kept_by_merge_and_counted_once_by_verify() -> None:
    """merge cannot see that two keyids name one key (documented); the verifier counts it once."""
    from datetime import UTC, datetime, timedelta

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from dssesign.errors import VerificationError
    from dssesign.trust import Policy, TrustedKey, TrustRoot
    from dssesign.verify import verify

    payload = json.dumps(
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "a", "digest": {"sha256": "0" * 64}}],
            "predicateType": "https://example.com/x",
            "predicate": {},
        }
    ).encode()
    one = _signed(B, payload=payload)
    # B signs again with randomized ECDSA: other signature bytes; given under another keyid.
    private = B._private_key
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    again = private.sign(pae(PAYLOAD_TYPE, payload), ec.ECDSA(hashes.SHA256()))
    assert again != one.signatures[0].sig
    other = Envelope(payload, PAYLOAD_TYPE, (Signature(again, "a-second-name"),))
    merged = merge_envelopes([one, other])
    assert len(merged.signatures) == 2
    root = TrustRoot(
        version=1,
        expires=datetime.now(UTC).replace(microsecond=0) + timedelta(days=1),
        keys=(TrustedKey(B.public_key),),
        policy=Policy(threshold=2),
    )
    with pytest.raises(VerificationError) as caught:
        verify(merged, root)
    assert caught.value.code == "THRESHOLD_NOT_MET"
    # And countersign refuses that key outright: its earlier signature verifies under it.
    with pytest.raises(ConfigError, match="same public key"):
        MultiProfileSigner([B]).countersign(other)
