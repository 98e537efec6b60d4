"""`.intoto.jsonl` with securesystemslib, an independent DSSE implementation, both ways.

A JSON Lines file built line by line the way GitHub-style tooling does (each line one DSSE
envelope, signed by securesystemslib's own PAE code, compact JSON, LF) verifies line by line
with `verify_jsonl`; and securesystemslib verifies every line `dssesign attest --append` wrote.
"""

from __future__ import annotations

import json
from pathlib import Path

from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.signer import CryptoSigner, Key, SSlibKey

from dssesign.codes import Code
from dssesign.intoto.statement import PAYLOAD_TYPE
from dssesign.sign.multisign import MultiProfileSigner
from dssesign.verify import jsonl_passed, read_jsonl, verify_jsonl
from tests.conftest import signer_for
from tests.unit.interop.test_securesystemslib_signed import (
    _private_key,
    _root,
    _spki_keyid,
    _their_signer,
)
from tests.unit.verify.test_verify import NOW, payload_of, statement

NAMES = ["ed25519", "ecdsa-p256"]


def _their_line(run: int, signers: list[CryptoSigner]) -> bytes:
    body = statement()
    body["predicate"] = {"buildDefinition": {"buildType": f"https://example.com/run/{run}"}}
    envelope = SslibEnvelope(payload=payload_of(body), payload_type=PAYLOAD_TYPE, signatures={})
    for signer in signers:
        envelope.sign(signer)
    return json.dumps(envelope.to_dict(), separators=(",", ":")).encode()


def _their_jsonl(runs: int = 3) -> bytes:
    signers = [_their_signer(name) for name in NAMES]
    return b"".join(_their_line(run, signers) + b"\n" for run in range(runs))


def test_their_jsonl_verifies_line_by_line() -> None:
    outcomes = verify_jsonl(_their_jsonl(), _root(NAMES, 2), at=NOW)
    assert [o.line.number for o in outcomes] == [1, 2, 3]
    assert all(o.ok for o in outcomes), [o.to_dict() for o in outcomes]
    for outcome in outcomes:
        assert outcome.result is not None
        assert {k.keyid for k in outcome.result.keys_counted} == {_spki_keyid(n) for n in NAMES}
        assert outcome.predicate_type == statement()["predicateType"]


def test_their_jsonl_with_one_line_signed_by_an_untrusted_key() -> None:
    lines = _their_jsonl().splitlines()
    stranger = CryptoSigner.generate_ed25519()
    lines[1] = _their_line(1, [stranger])
    data = b"\r\n".join(lines) + b"\r\n"
    outcomes = verify_jsonl(data, _root(NAMES, 1), at=NOW)
    assert [o.ok for o in outcomes] == [True, False, True]
    assert outcomes[1].code == str(Code.NO_VALID_SIGNATURE)
    assert not jsonl_passed(outcomes) and jsonl_passed(outcomes, any_line=True)


def test_securesystemslib_verifies_every_line_we_append(tmp_path: Path) -> None:
    # Lines written by `attest --append` (through the library pieces it uses), read back one
    # by one by securesystemslib: the file format is plain DSSE JSON per line.
    signers = [signer_for("ed25519"), signer_for("ecdsa-p256")]
    multi = MultiProfileSigner(signers)
    out = tmp_path / "ours.intoto.jsonl"
    with out.open("wb") as handle:
        for run in range(3):
            body = statement()
            body["predicate"] = {"run": run}
            handle.write(multi.sign(payload_of(body), PAYLOAD_TYPE).to_json() + b"\n")
    keys: list[Key] = [
        SSlibKey.from_crypto(s.public_key.key, keyid=s.keyid, scheme=scheme)
        for s, scheme in zip(signers, ("ed25519", "ecdsa-sha2-nistp256"), strict=True)
    ]
    lines = read_jsonl(out.read_bytes())
    assert len(lines) == 3
    for line in lines:
        theirs = SslibEnvelope.from_dict(json.loads(line.data))
        assert set(theirs.verify(keys, threshold=2)) == {s.keyid for s in signers}


def test_their_keyid_scheme_is_only_a_hint_in_jsonl_too() -> None:
    signer = CryptoSigner(_private_key("ecdsa-p256"))  # securesystemslib's own keyid
    data = _their_line(0, [signer]) + b"\n" + _their_line(1, [signer])
    outcomes = verify_jsonl(data, _root(["ecdsa-p256"], 1), at=NOW)
    assert all(o.ok for o in outcomes)
