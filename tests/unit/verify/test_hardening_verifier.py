"""Regression tests for the verifier-side hardening findings (issue 11, items 1, 2, 6, 7).

Each test builds its hostile input itself; the outside red team's own cases are kept aside.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dssesign import trust as tr
from dssesign.core.dsse import Envelope, Signature, pae
from dssesign.errors import VerificationError
from dssesign.intoto.statement import PAYLOAD_TYPE
from dssesign.trust import TrustRoot
from dssesign.trust import document as trust_document
from dssesign.verify import Code, VerificationFailure, verify
from tests.conftest import signer_for

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SLSA = "https://slsa.dev/provenance/v1"
DIGEST = "a" * 64


def _statement(**predicate: Any) -> bytes:
    document = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "app.tar.gz", "digest": {"sha256": DIGEST}}],
        "predicateType": "https://example.com/custom/v1",
        "predicate": predicate or {"ok": True},
    }
    return json.dumps(document, separators=(",", ":")).encode()


def _envelope(payload: bytes, *indexes: int) -> bytes:
    message = pae(PAYLOAD_TYPE, payload)
    signatures = tuple(
        Signature(sig=signer_for("ed25519", i).sign(message), keyid=signer_for("ed25519", i).keyid)
        for i in indexes
    )
    return Envelope(payload, PAYLOAD_TYPE, signatures).to_json()


def _code(envelope: bytes | str, root: TrustRoot, **kwargs: Any) -> str:
    with pytest.raises(VerificationFailure) as info:
        verify(envelope, root, **kwargs)
    return str(info.value.code)


# --- 1. rotation chains ------------------------------------------------------------------------


def _chain_root(*, forge_first: bool) -> TrustRoot:
    """Key 0 -> key 2 -> key 3; with `forge_first`, the 0 -> 2 handover is signed by key 7."""
    root = tr.init_trust_root(threshold=1, now=NOW)
    root = tr.add_key(root, signer_for("ed25519", 0).public_key, label="a")
    root = tr.rotate_key(
        root, signer_for("ed25519", 0), signer_for("ed25519", 2).public_key, now=NOW
    )
    root = tr.rotate_key(
        root,
        signer_for("ed25519", 2),
        signer_for("ed25519", 3).public_key,
        now=NOW + timedelta(days=1),
    )
    if not forge_first:
        return root
    first = root.rotations[0]
    payload = tr.handover_payload(
        first.from_keyid,
        signer_for("ed25519", 2).public_key,
        time=first.time,
        transition_deadline=first.transition_deadline,
    )
    forged = dataclasses.replace(
        first,
        handover_signature=signer_for("ed25519", 7).sign(pae(tr.HANDOVER_PAYLOAD_TYPE, payload)),
    )
    document = json.loads(
        tr.dump_trust_root(dataclasses.replace(root, rotations=(forged, root.rotations[1])))
    )
    # Through the loader, as a file would arrive: it loads, the broken link only stops counting.
    return tr.load_trust_root(json.dumps(document).encode())


def test_a_key_after_a_forged_link_in_its_rotation_chain_does_not_count() -> None:
    root = _chain_root(forge_first=True)
    at = NOW + timedelta(days=2)
    envelope = _envelope(_statement(), 3)
    with pytest.raises(VerificationFailure) as info:
        verify(envelope, root, at=at)
    assert info.value.code == Code.ROTATION_UNVERIFIED
    first = root.rotations[0]
    assert f"{first.from_keyid[:16]} -> {first.to_keyid[:16]}" in str(info.value)
    # The middle key is refused the same way, and the chain problem names the earlier link.
    assert _code(_envelope(_statement(), 2), root, at=at) == Code.ROTATION_UNVERIFIED
    assert tr.rotation_chain_problem(root, signer_for("ed25519", 3).keyid) is not None
    assert "earlier in its rotation chain" in str(
        tr.rotation_chain_problem(root, signer_for("ed25519", 3).keyid)
    )
    assert tr.failed_handovers(root) == root.rotations


def test_an_intact_rotation_chain_still_counts() -> None:
    root = _chain_root(forge_first=False)
    result = verify(_envelope(_statement(), 3), root, at=NOW + timedelta(days=2))
    assert [k.keyid for k in result.keys_counted] == [signer_for("ed25519", 3).keyid]
    assert tr.failed_handovers(root) == ()


def test_trust_root_show_flags_every_link_after_a_broken_one(tmp_path: Path) -> None:
    from dssesign.cli import main

    path = tmp_path / "root.json"
    path.write_bytes(tr.dump_trust_root(_chain_root(forge_first=True)))
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert main(["trust-root", "show", str(path)]) == 0
    shown = err.getvalue()
    assert shown.count("will not count") == 2, shown
    assert "earlier in its rotation chain" in shown


# --- 2. no expensive work before authentication; linear validation ----------------------------


def _signed_root_document(**extra: Any) -> dict[str, Any]:
    root = tr.init_trust_root(threshold=1, now=NOW)
    root = tr.add_key(root, signer_for("ed25519", 0).public_key)
    root = tr.set_root_keys(root, [signer_for("ed25519", 10).public_key], threshold=1)
    document: dict[str, Any] = json.loads(tr.dump_trust_root(root))
    document.update(extra)
    return document


def _junk_signed(document: dict[str, Any]) -> bytes:
    payload = json.dumps(document).encode()
    junk = Signature(sig=b"\x01" * 64, keyid=signer_for("ed25519", 10).keyid)
    return Envelope(payload, tr.MEDIA_TYPE, (junk,)).to_json()


def test_a_junk_signed_trust_root_is_refused_before_any_schema_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """85 KiB of objects that jsonschema's uniqueItems would compare pairwise, junk signature."""
    document = _signed_root_document()
    document["keys"] = [{"keyid": f"{i:064x}", "x": i} for i in range(1200)]
    envelope = _junk_signed(document)
    assert len(envelope) > 85 * 1024

    def no_schema(_: object) -> None:
        raise AssertionError("the schema ran before the signatures were checked")

    monkeypatch.setattr(trust_document, "_schema_check", no_schema)
    with pytest.raises(VerificationError) as info:
        tr.verify_signed_trust_root(
            envelope, pinned_root_keyids=[signer_for("ed25519", 10).keyid], now=NOW
        )
    assert info.value.code == tr.TRUST_ROOT_SIGNATURE_THRESHOLD


def test_arrays_are_bounded_before_the_schema_and_duplicates_are_still_found() -> None:
    document = _signed_root_document()
    document["keys"] = [{"keyid": f"{i:064x}"} for i in range(5000)]
    with pytest.raises(tr.TrustRootError, match=r"\$\.keys: 5000 items exceed the limit of 256"):
        tr.load_trust_root(json.dumps(document).encode())
    # uniqueItems (linear in jsonschema-rs) still refuses a repeated predicate type.
    document = _signed_root_document()
    document["keys"][0]["predicateTypes"] = [SLSA, SLSA]
    with pytest.raises(tr.TrustRootError, match="predicateTypes: has duplicate items"):
        tr.load_trust_root(json.dumps(document).encode())


def test_a_signed_trust_root_still_verifies_with_pins() -> None:
    document = _signed_root_document()
    payload = json.dumps(document).encode()
    signer = signer_for("ed25519", 10)
    envelope = Envelope(
        payload, tr.MEDIA_TYPE, (Signature(signer.sign(pae(tr.MEDIA_TYPE, payload)), signer.keyid),)
    )
    root = tr.verify_signed_trust_root(
        envelope.to_json(), pinned_root_keyids=[signer.keyid], now=NOW
    )
    assert root.version == document["version"]


# --- 6. I-JSON everywhere --------------------------------------------------------------------


def _root() -> TrustRoot:
    root = tr.init_trust_root(threshold=1, now=NOW)
    return tr.add_key(root, signer_for("ed25519", 0).public_key)


def test_a_number_overflowing_to_infinity_in_a_payload_is_an_invalid_statement() -> None:
    payload = _statement().replace(b'{"ok":true}', b'{"n":1e400}')
    assert b"1e400" in payload
    assert _code(_envelope(payload, 0), _root(), at=NOW) == Code.INVALID_STATEMENT
    negative = _statement().replace(b'{"ok":true}', b'{"n":-1E+999}')
    assert _code(_envelope(negative, 0), _root(), at=NOW) == Code.INVALID_STATEMENT


def test_a_lone_surrogate_in_a_payload_is_an_invalid_statement_in_text_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    payload = _statement().replace(b'"app.tar.gz"', b'"app\\ud800.tar.gz"')
    envelope = _envelope(payload, 0)
    assert _code(envelope, _root(), at=NOW) == Code.INVALID_STATEMENT
    # A correctly paired escape is fine.
    paired = _statement().replace(b'"app.tar.gz"', b'"app\\ud83d\\ude00.tar.gz"')
    verify(_envelope(paired, 0), _root(), at=NOW)
    # The CLI's verdict is the same in text and --json mode, and --json prints a report.
    from dssesign.cli import main

    (tmp_path / "env.json").write_bytes(envelope)
    (tmp_path / "root.json").write_bytes(tr.dump_trust_root(_root()))
    base = ["verify", "--trust-root", str(tmp_path / "root.json"), "--at", "2026-01-01T00:00:00Z"]
    assert main([*base, str(tmp_path / "env.json")]) == 1
    capsys.readouterr()
    assert main(["--json", *base, str(tmp_path / "env.json")]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["code"] == "INVALID_STATEMENT"


def test_a_lone_surrogate_in_an_envelope_trust_root_or_bundle_gets_its_parsers_code() -> None:
    envelope = (
        '{"payload":"e30=","payloadType":"application/vnd.in-toto+json\ud800","signatures":[]}'
    )
    assert _code(envelope, _root(), at=NOW) == Code.MALFORMED_ENVELOPE
    escaped = envelope.replace("\ud800", "\\ud800").encode()
    assert _code(escaped, _root(), at=NOW) == Code.MALFORMED_ENVELOPE
    overflow = b'{"payload":"e30=","payloadType":"x","signatures":[],"n":1e999}'
    assert _code(overflow, _root(), at=NOW) == Code.MALFORMED_ENVELOPE
    document = json.loads(tr.dump_trust_root(_root()))
    document["keys"][0]["label"] = "ci\ud800"
    with pytest.raises(tr.TrustRootError, match="lone surrogate"):
        tr.load_trust_root(json.dumps(document))
    with pytest.raises(tr.TrustRootError, match="lone surrogate"):
        tr.load_trust_root(json.dumps(document).encode())
    document["keys"][0]["label"] = "ci"
    document["version"] = 1e400
    with pytest.raises(tr.TrustRootError, match="out of range"):
        tr.load_trust_root(json.dumps(document).replace("Infinity", "1e400").encode())


# --- 7. codes say what happened --------------------------------------------------------------


def test_a_str_bundle_with_a_lone_surrogate_is_bundle_malformed() -> None:
    bundle = '{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json\ud800"}'
    assert (
        _code(_envelope(_statement(), 0), _root(), bundles=[bundle], at=NOW)
        == Code.BUNDLE_MALFORMED
    )


def test_more_bundles_than_the_limit_is_too_many_bundles_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dssesign.cli import main
    from dssesign.limits import DEFAULT_LIMITS

    envelope = Envelope.from_json(_envelope(_statement(), 0))
    (tmp_path / "root.json").write_bytes(tr.dump_trust_root(_root()))
    (tmp_path / "env.json").write_bytes(envelope.to_json())
    one = {
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"publicKey": {"hint": ""}},
        "dsseEnvelope": {
            "payload": base64.b64encode(envelope.payload).decode(),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(envelope.signatures[0].sig).decode()}],
        },
    }
    names = []
    for i in range(DEFAULT_LIMITS.max_signatures + 1):
        path = tmp_path / f"b{i}.sigstore.json"
        path.write_text(json.dumps(one))
        names.append(str(path))
    args = ["verify", "--trust-root", str(tmp_path / "root.json"), "--at", "2026-01-01T00:00:00Z"]
    assert main(["--json", *args, str(tmp_path / "env.json"), *names]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["code"] == "TOO_MANY_BUNDLES"
    assert main([*args, str(tmp_path / "env.json"), *names]) == 1
    assert "TOO_MANY_BUNDLES" in capsys.readouterr().err


# --- one validator, independent of what else is installed --------------------------------------


def test_validation_never_imports_jsonschema_or_its_format_extras(tmp_path: Path) -> None:
    """Trust roots and predicates run on jsonschema-rs: jsonschema's format module (38 Earley
    grammars once rfc3987-syntax is installed) is never imported, so neither speed nor verdicts
    depend on the environment."""
    import subprocess
    import sys

    root = tmp_path / "root.json"
    root.write_bytes(tr.dump_trust_root(_root()))
    fixtures = Path(__file__).resolve().parents[3] / "fixtures" / "predicates"
    script = f"""
import sys
from dssesign.trust import read_trust_root
from dssesign.intoto.predicates import prepare_predicate
read_trust_root({str(root)!r})
for name, kind in (("cyclonedx-1.6.json", "cyclonedx"), ("slsa-provenance-v1.json",
        "slsaprovenance1"), ("openvex.json", "openvex")):
    prepare_predicate(kind, open({str(fixtures)!r} + "/" + name, "rb").read())
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("jsonschema", "rfc3987_syntax",
    "lark", "referencing"))
print(",".join(loaded))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "", out
