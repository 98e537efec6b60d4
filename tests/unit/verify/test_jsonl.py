"""JSON Lines of attestations (`.intoto.jsonl`): read strictly and within bounds, verified line
by line (envelope lines with their bundles, Sigstore bundle lines alone)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from dssesign.codes import Code
from dssesign.core.dsse import Envelope
from dssesign.errors import InputError, VerificationError
from dssesign.limits import LIMITS_ENV, Limits
from dssesign.sign.bundles import bundle_json, keyed_bundle
from dssesign.trust import TrustRoot
from dssesign.verify import (
    JsonlLine,
    LineOutcome,
    jsonl_passed,
    read_jsonl,
    verify_jsonl,
)
from dssesign.verify.jsonl import is_jsonl_name
from tests.conftest import signer_for
from tests.unit.verify.test_verify import (
    ARTIFACT,
    ARTIFACT_SHA256,
    NOW,
    OTHER_SHA256,
    make_root,
    payload_of,
    sign_payload,
    statement,
)

SIGNERS = (signer_for("ed25519"), signer_for("ecdsa-p256"))
THIRD = signer_for("ecdsa-p256", 1)


def _statement(run: int) -> dict[str, object]:
    body = statement()
    body["predicate"] = {"buildDefinition": {"buildType": f"https://example.com/build/v{run}"}}
    return body


def _envelope(run: int) -> Envelope:
    return sign_payload(SIGNERS, payload_of(_statement(run)))


def _jsonl(envelopes: list[Envelope], end: bytes = b"\n", last: bytes = b"\n") -> bytes:
    return end.join(e.to_json() for e in envelopes) + last


def _root(threshold: int = 2) -> TrustRoot:
    return make_root(SIGNERS, threshold=threshold)


def _bundles(envelope: Envelope) -> list[bytes]:
    return [
        bundle_json(keyed_bundle(envelope.payload, envelope.payload_type, s.sig, signer.public_key))
        for s, signer in zip(envelope.signatures, SIGNERS, strict=True)
    ]


def _third_bundle(envelope: Envelope) -> bytes:
    signature = envelope.signatures[1].sig
    return bundle_json(
        keyed_bundle(envelope.payload, envelope.payload_type, signature, THIRD.public_key)
    )


def _tampered(envelope: Envelope) -> Envelope:
    changed = payload_of({**_statement(0), "predicate": {"forged": True}})
    return Envelope(changed, envelope.payload_type, envelope.signatures)


def _refused(data: bytes, fragment: str, limits: Limits | None = None) -> str:
    with pytest.raises(InputError) as info:
        read_jsonl(data, limits=limits or Limits())
    message = str(info.value)
    assert fragment in message, message
    return message


# --- reading ---------------------------------------------------------------------------------


def test_names_select_json_lines() -> None:
    assert is_jsonl_name("build.intoto.jsonl") and is_jsonl_name(Path("/a/sha256:ab.jsonl"))
    assert not is_jsonl_name(".jsonl") and not is_jsonl_name("a.json")
    assert not is_jsonl_name("a.jsonl.json") and not is_jsonl_name("a.JSONL")


@pytest.mark.parametrize(
    ("end", "last"),
    [(b"\n", b"\n"), (b"\r\n", b"\r\n"), (b"\n", b""), (b"\r\n", b""), (b"\r\n", b"\n")],
    ids=["lf", "crlf", "lf-no-final", "crlf-no-final", "mixed"],
)
def test_lf_crlf_and_one_final_line_end_are_read(end: bytes, last: bytes) -> None:
    envelopes = [_envelope(1), _envelope(2), _envelope(3)]
    lines = read_jsonl(_jsonl(envelopes, end, last))
    assert [line.number for line in lines] == [1, 2, 3]
    assert all(isinstance(line, JsonlLine) and line.kind == "envelope" for line in lines)
    assert [line.envelope for line in lines] == envelopes
    assert [line.data for line in lines] == [e.to_json() for e in envelopes]
    assert not any(line.keyless for line in lines)


@pytest.mark.parametrize(
    ("data", "line"),
    [
        (b"ENV\n\nENV\n", 2),  # a blank line in the middle
        (b"ENV\n\n", 2),  # two line ends after the last line
        (b"ENV\r\n\r\n", 2),
        (b"ENV\n   \nENV", 2),  # only spaces
        (b"\nENV\n", 1),
        (b"\n", 1),
    ],
)
def test_a_blank_line_is_refused_naming_it(data: bytes, line: int) -> None:
    data = data.replace(b"ENV", _envelope(1).to_json())
    _refused(data, f"line {line}: blank")


def test_an_empty_file_is_refused() -> None:
    _refused(b"", "empty")


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        (b"not json", "not valid JSON"),
        (b'{"payload": "e30=", "payload": "e30="}', "duplicate"),
        (b"[1, 2]", "not a JSON object"),
        (b"42", "not a JSON object"),
        (b'{"hello": "world"}', "neither a DSSE envelope nor a Sigstore bundle"),
        (b'{"payload": 1, "payloadType": "x", "signatures": []}', "neither a DSSE envelope"),
        (
            b'{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json"}',
            "not a usable Sigstore bundle: BUNDLE_MALFORMED",
        ),
        (b'{"mediaType": "text/plain", "a": 1}', "neither a DSSE envelope"),
        (b"\xef\xbb\xbf{}", "byte order mark"),
        (b"\xff\xfe", "line 2"),
    ],
)
def test_a_line_that_is_neither_envelope_nor_bundle_is_refused_naming_it(
    bad: bytes, fragment: str
) -> None:
    good = _envelope(1).to_json()
    message = _refused(good + b"\n" + bad + b"\n" + good + b"\n", "line 2: ")
    assert fragment in message, message


def test_a_message_signature_bundle_line_is_refused() -> None:
    bundle = {
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"publicKey": {"hint": "x"}, "tlogEntries": []},
        "messageSignature": {
            "messageDigest": {
                "algorithm": "SHA2_256",
                "digest": base64.b64encode(b"a" * 32).decode(),
            },
            "signature": base64.b64encode(b"sig").decode(),
        },
    }
    _refused(json.dumps(bundle).encode(), "line 1: a messageSignature Sigstore bundle")


def test_bounds_are_named_and_checked_before_parsing() -> None:
    line = _envelope(1).to_json()
    data = _jsonl([_envelope(1)] * 3)
    # An over-long line, named (its neighbours fit).
    padded = json.loads(line)
    padded["padding"] = "x" * (len(line) + 10)  # DSSE ignores unknown fields
    long_line = json.dumps(padded).encode()
    limits = Limits(max_json_bytes=len(line) + 5)
    message = _refused(line + b"\n" + long_line + b"\n", "line 2: ", limits)
    assert "Limits.max_json_bytes" in message and f"{LIMITS_ENV}=max_json_bytes=N" in message
    # Too many lines, too many bytes: refused before any line is parsed.
    junk = b"x\n" * 4
    assert "Limits.max_jsonl_lines" in _refused(junk, "4 lines", Limits(max_jsonl_lines=3))
    _refused(data, "Limits.max_jsonl_bytes", Limits(max_jsonl_bytes=len(data) - 1))
    assert len(read_jsonl(data, limits=Limits(max_jsonl_lines=3, max_jsonl_bytes=len(data)))) == 3


def test_envelopes_only_refuses_bundle_lines() -> None:
    envelope = _envelope(1)
    data = envelope.to_json() + b"\n" + _bundles(envelope)[0]
    assert [line.kind for line in read_jsonl(data)] == ["envelope", "bundle"]
    with pytest.raises(InputError, match="line 2: a Sigstore bundle, not a DSSE envelope"):
        read_jsonl(data, envelopes_only=True)


def test_str_input_and_bad_types() -> None:
    data = _jsonl([_envelope(1)])
    assert len(read_jsonl(data.decode())) == 1
    with pytest.raises(InputError):
        read_jsonl(42)  # type: ignore[arg-type]


# --- verifying -------------------------------------------------------------------------------


def test_every_line_verifies_and_reports_like_verify_json() -> None:
    data = _jsonl([_envelope(1), _envelope(2)])
    outcomes = verify_jsonl(data, _root(), at=NOW, digests=[f"sha256:{ARTIFACT_SHA256}"])
    assert [o.line.number for o in outcomes] == [1, 2]
    assert all(isinstance(o, LineOutcome) and o.ok and o.code == "OK" for o in outcomes)
    assert jsonl_passed(outcomes) and jsonl_passed(outcomes, any_line=True)
    entry = outcomes[0].to_dict()
    assert entry["line"] == 1 and entry["kind"] == "envelope" and entry["bundles"] == 0
    assert entry["predicateType"] == "https://slsa.dev/provenance/v1"
    assert entry["code"] == "OK" and entry["ok"] is True
    assert "schemaVersion" not in entry
    signatures = entry["signatures"]
    assert isinstance(signatures, list) and [s["status"] for s in signatures] == ["counted"] * 2
    assert outcomes[0].predicate_type == "https://slsa.dev/provenance/v1"
    assert outcomes[0].exit_code == 0


def test_a_tampered_line_fails_that_line_only() -> None:
    data = _jsonl([_envelope(1), _tampered(_envelope(2)), _envelope(3)], b"\r\n", b"\r\n")
    outcomes = verify_jsonl(data, _root(), at=NOW)
    assert [o.ok for o in outcomes] == [True, False, True]
    bad = outcomes[1]
    assert bad.code == str(Code.NO_VALID_SIGNATURE) and bad.exit_code == 1
    assert bad.predicate_type is None  # never read from an unverified payload
    entry = bad.to_dict()
    assert entry["line"] == 2 and entry["ok"] is False
    assert [s["status"] for s in entry["signatures"]] == ["invalid", "invalid"]  # type: ignore[attr-defined]
    assert not jsonl_passed(outcomes)
    assert jsonl_passed(outcomes, any_line=True)
    every_bad = verify_jsonl(_jsonl([_tampered(_envelope(1))]), _root(), at=NOW)
    assert not jsonl_passed(every_bad, any_line=True)


def test_an_unreadable_file_verifies_nothing() -> None:
    data = _envelope(1).to_json() + b"\n\n" + _envelope(2).to_json()
    with pytest.raises(InputError, match="line 2: blank"):
        verify_jsonl(data, _root(), at=NOW)


def test_bundles_go_to_the_line_they_belong_to() -> None:
    first, second = _envelope(1), _envelope(2)
    # Threshold 2 of keys that the bundles vouch for; the envelope signatures alone do it too,
    # so check the count of bundles each line got, and that a bad bundle fails its own line.
    bundles = _bundles(second) + _bundles(first)[:1]
    outcomes = verify_jsonl(_jsonl([first, second]), _root(), bundles=bundles, at=NOW)
    assert [(o.ok, o.bundles) for o in outcomes] == [(True, 1), (True, 2)]

    # Same payload on two lines, signed by other keys: the bundle goes to the line that holds
    # its signature.
    again = sign_payload([SIGNERS[0], THIRD], first.payload)
    root = make_root([*SIGNERS, THIRD], threshold=2)
    outcomes = verify_jsonl(_jsonl([first, again]), root, bundles=[_third_bundle(again)], at=NOW)
    assert [(o.ok, o.bundles) for o in outcomes] == [(True, 0), (True, 1)]


def test_a_bundle_for_no_line_fails_the_whole_file() -> None:
    first, other = _envelope(1), _envelope(9)
    with pytest.raises(VerificationError) as info:
        verify_jsonl(_jsonl([first]), _root(), bundles=_bundles(other), at=NOW)
    assert info.value.code == Code.BUNDLE_PAYLOAD_MISMATCH
    assert "bundle 1: belongs to no envelope line" in str(info.value)
    with pytest.raises(VerificationError) as info:
        verify_jsonl(_jsonl([first]), _root(), bundles=[b"{}"], at=NOW)
    assert info.value.code == Code.BUNDLE_MALFORMED
    with pytest.raises(VerificationError) as info:
        verify_jsonl(_jsonl([first]), _root(), bundles=[b"{}"] * 65, at=NOW)
    assert info.value.code == Code.TOO_MANY_BUNDLES


def test_a_bundle_with_another_signature_of_the_payload_fails_its_line() -> None:
    first = _envelope(1)
    again = sign_payload([SIGNERS[0], THIRD], first.payload)  # a signature no line holds
    root = make_root([*SIGNERS, THIRD], threshold=2)
    outcomes = verify_jsonl(_jsonl([first]), root, bundles=[_third_bundle(again)], at=NOW)
    assert not outcomes[0].ok and outcomes[0].bundles == 1
    assert outcomes[0].code == str(Code.BUNDLE_SIGNATURE_MISMATCH)


def test_lines_of_sigstore_bundles_verify_alone() -> None:
    first, second = _envelope(1), _envelope(2)
    data = b"\n".join([*_bundles(first), *_bundles(second)])  # each bundle already ends in \n
    data = data.replace(b"\n\n", b"\n")
    lines = read_jsonl(data)
    assert [line.kind for line in lines] == ["bundle"] * 4
    assert lines[0].bundle is not None and lines[0].bundle.keyed
    outcomes = verify_jsonl(data, _root(threshold=1), at=NOW)
    assert all(o.ok for o in outcomes), [o.to_dict() for o in outcomes]
    assert outcomes[0].to_dict()["kind"] == "bundle"
    # One key's bundle cannot meet a threshold of two: every line fails, none is unreadable.
    outcomes = verify_jsonl(data, _root(threshold=2), at=NOW)
    assert not any(o.ok for o in outcomes)
    assert {o.code for o in outcomes} == {str(Code.THRESHOLD_NOT_MET)}


def test_mixed_envelope_and_bundle_lines() -> None:
    first, second = _envelope(1), _envelope(2)
    data = first.to_json() + b"\n" + _bundles(second)[0]
    outcomes = verify_jsonl(data, _root(threshold=1), at=NOW)
    assert [(o.line.kind, o.ok) for o in outcomes] == [("envelope", True), ("bundle", True)]


def test_artifacts_and_digests_apply_to_every_line(tmp_path: Path) -> None:
    artifact = tmp_path / "payments-api.tar.gz"
    artifact.write_bytes(ARTIFACT)
    unrelated = _envelope(3)
    unrelated = sign_payload(
        SIGNERS,
        payload_of(statement(subjects=[{"name": "x", "digest": {"sha256": OTHER_SHA256}}])),
    )
    data = _jsonl([_envelope(1), unrelated])
    outcomes = verify_jsonl(data, _root(), artifacts=[artifact], at=NOW)
    assert [o.ok for o in outcomes] == [True, False]
    assert outcomes[1].code == str(Code.SUBJECT_MISMATCH)
    matched = outcomes[0].to_dict()["subjectsMatched"]
    assert matched == [
        {
            "name": "payments-api.tar.gz",
            "digest": f"sha256:{ARTIFACT_SHA256}",
            "artifact": f"sha256:{ARTIFACT_SHA256}",
        }
    ]
    # An unreadable artifact: each line says so with its own code.
    outcomes = verify_jsonl(data, _root(), artifacts=[tmp_path / "missing"], at=NOW)
    assert {o.code for o in outcomes} == {str(Code.ARTIFACT_UNREADABLE)}
    # A bad digest argument makes every line's request unusable (exit 2).
    outcomes = verify_jsonl(data, _root(), digests=["sha256:nothex"], at=NOW)
    assert {o.exit_code for o in outcomes} == {2}


def test_verifying_json_lines_loads_nothing_of_the_signing_side(tmp_path: Path) -> None:
    from dssesign import trust as tr

    envelope = _envelope(1)
    jsonl = tmp_path / "a.intoto.jsonl"
    jsonl.write_bytes(_jsonl([envelope, _envelope(2)]) + _bundles(envelope)[0])
    root = tmp_path / "root.json"
    root.write_bytes(tr.dump_trust_root(_root(threshold=1)))
    bundle = tmp_path / "b.json"
    bundle.write_bytes(_bundles(envelope)[1])
    script = f"""
import sys
from datetime import datetime, UTC
from pathlib import Path
from dssesign.trust import read_trust_root
from dssesign.verify import verify_jsonl, jsonl_passed
root = read_trust_root({str(root)!r})
outcomes = verify_jsonl(Path({str(jsonl)!r}).read_bytes(), root,
                        bundles=[Path({str(bundle)!r}).read_bytes()],
                        at=datetime(2026, 6, 1, 12, tzinfo=UTC))
assert jsonl_passed(outcomes), [o.to_dict() for o in outcomes]
print("\\n".join(sorted(m for m in sys.modules if m.startswith("dssesign"))))
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    loaded = run.stdout.split()
    assert "dssesign.verify.jsonl" in loaded and "dssesign.verify.bundles" in loaded
    signing = [
        name
        for name in loaded
        if name.startswith(("dssesign.sign", "dssesign.profiles", "dssesign.cli", "dssesign.kit"))
        or name in {"dssesign.audit", "dssesign.metrics"}
    ]
    assert signing == [], signing
