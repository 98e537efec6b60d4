"""`dssesign countersign --tsa URL --trust-root ROOT --bundle-dir D` end to end (issue 15).

A signs with `attest` (no timestamp), B countersigns later through the local OpenSSL TSA
(tests/tsa.py); `verify` then judges each signature at its own time: B's at its RFC 3161 time,
A's now, and `--require-timestamp` refuses A's untimestamped signature.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from dssesign.core.dsse import Envelope
from dssesign.profiles.software import write_keypair
from tests.conftest import signer_for
from tests.tsa import Tsa
from tests.unit.cli.test_cli import ATTEST_SLSA, dssesign

A, B = signer_for("ecdsa-p256", 34), signer_for("ed25519", 34)


def _tokens(bundle: Path) -> list[dict[str, str]]:
    material = json.loads(bundle.read_bytes())["verificationMaterial"]
    tokens: list[dict[str, str]] = material.get("timestampVerificationData", {}).get(
        "rfc3161Timestamps", []
    )
    return tokens


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, tsa: Tsa) -> dict[str, Any]:
    """Keys A and B, a trust root with both (threshold 2) and the TSA; env.json signed by A,
    env2.json countersigned by B with a token."""
    d = tmp_path_factory.mktemp("countersign-tsa")
    pems = {}
    for name, signer in (("a", A), ("b", B)):
        _, pems[name] = write_keypair(signer, d / name, password=None)
    root = d / "root.json"
    chain = d / "tsa-chain.pem"
    chain.write_bytes(tsa.chain_pem)
    for step in (
        ("init", "--out", root),
        ("add-key", root, "--public-key", pems["a"]),
        ("add-key", root, "--public-key", pems["b"]),
        ("add-tsa", root, "--certificate-chain", chain, "--name", "t"),
        # Both signatures are needed: so A's, when it does not count, fails the verification.
        ("set-policy", root, "--threshold", "2"),
    ):
        done = dssesign("trust-root", *step)
        assert done.code == 0, done
    env, env2 = d / "env.json", d / "env2.json"
    run = dssesign(
        "attest", *ATTEST_SLSA, "--key", d / "a.key", "--bundle-dir", d / "d1", "--out", env
    )
    assert run.code == 0, run
    requests = tsa.requests
    run = dssesign(
        "countersign",
        env,
        "--key",
        d / "b.key",
        "--tsa",
        tsa.url,
        "--trust-root",
        root,
        "--bundle-dir",
        d / "d2",
        "--out",
        env2,
        "--json",
    )
    assert run.code == 0, run
    assert tsa.requests > requests  # the TSA was really asked
    return {
        "dir": d,
        "root": root,
        "env": env,
        "env2": env2,
        "bundle_a": d / "d1" / f"env.{A.keyid[:16]}.sigstore.json",
        "bundle_b": d / "d2" / f"env2.{B.keyid[:16]}.sigstore.json",
        "summary": json.loads(run.out),
    }


def test_countersign_with_tsa_appends_a_timestamped_bundle(world: dict[str, Any]) -> None:
    before = Envelope.from_json(world["env"].read_bytes())
    after = Envelope.from_json(world["env2"].read_bytes())
    assert after.payload == before.payload and after.payload_type == before.payload_type
    assert after.signatures[0] == before.signatures[0]
    assert [s.keyid for s in after.signatures] == [A.keyid, B.keyid]
    (added,) = world["summary"]["added"]
    assert Path(added["bundle"]) == world["bundle_b"]
    assert sorted(world["bundle_b"].parent.iterdir()) == [world["bundle_b"]]
    # B's bundle: the appended signature with one RFC 3161 token; A's (attest, no --tsa): none.
    assert len(_tokens(world["bundle_b"])) == 1
    assert _tokens(world["bundle_a"]) == []
    dsse = json.loads(world["bundle_b"].read_bytes())["dsseEnvelope"]
    assert [base64.b64decode(s["sig"]) for s in dsse["signatures"]] == [after.signatures[1].sig]


def test_verify_reports_each_signatures_time_source(world: dict[str, Any]) -> None:
    run = dssesign(
        "verify", "--trust-root", world["root"], world["env2"], world["bundle_b"], "--json"
    )
    assert run.code == 0, run
    report = json.loads(run.out)
    assert report["ok"] is True and report["code"] == "OK"
    first, second = report["signatures"]
    assert (first["index"], first["keyid"], first["status"]) == (0, A.keyid, "counted")
    assert first["timeSource"] == "now" and first["signedAt"] is None
    assert (second["index"], second["keyid"], second["status"]) == (1, B.keyid, "counted")
    assert second["timeSource"] == "rfc3161" and second["signedAt"]


def test_require_timestamp_refuses_the_untimestamped_first_signature(
    world: dict[str, Any],
) -> None:
    run = dssesign(
        "verify",
        "--trust-root",
        world["root"],
        "--require-timestamp",
        world["env2"],
        world["bundle_a"],
        world["bundle_b"],
        "--json",
    )
    assert run.code == 1, run
    report = json.loads(run.out)
    assert report["ok"] is False and report["code"] == "TIMESTAMP_REQUIRED"
    first, second = report["signatures"]
    assert (first["keyid"], first["code"]) == (A.keyid, "TIMESTAMP_REQUIRED")
    assert first["status"] != "counted"
    assert (second["keyid"], second["status"], second["timeSource"]) == (
        B.keyid,
        "counted",
        "rfc3161",
    )
    # The failure report names B's signing time too, as a success would.
    (counted,) = report["keysCounted"]
    assert counted["keyid"] == B.keyid and counted["signedAt"] == second["signedAt"]
    # Without --require-timestamp the same inputs verify: A's missing token is the reason.
    plain = dssesign(
        "verify", "--trust-root", world["root"], world["env2"], world["bundle_a"], world["bundle_b"]
    )
    assert plain.code == 0, plain


def test_countersign_refuses_a_token_with_another_nonce(
    world: dict[str, Any], tsa: Tsa, tmp_path: Path
) -> None:
    wrong = tsa.make_tsa(behaviour="wrong-nonce")
    root = tmp_path / "root.json"
    root.write_bytes(world["root"].read_bytes())
    chain = tmp_path / "wrong-chain.pem"
    chain.write_bytes(wrong.chain_pem)
    done = dssesign("trust-root", "add-tsa", root, "--certificate-chain", chain, "--name", "w")
    assert done.code == 0, done
    out, bundles = tmp_path / "env2.json", tmp_path / "bundles"
    run = dssesign(
        "countersign",
        world["env"],
        "--key",
        world["dir"] / "b.key",
        "--tsa",
        wrong.url,
        "--trust-root",
        root,
        "--bundle-dir",
        bundles,
        "--out",
        out,
    )
    assert run.code == 1, run
    assert "nonce" in run.err and "Traceback" not in run.err
    assert wrong.requests >= 1  # it was asked, and its answer refused
    assert not out.exists()
    assert not bundles.exists() or not any(bundles.iterdir())
