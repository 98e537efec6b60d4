"""`dssesign trust-root ...` and `dssesign verify` end to end, in real subprocesses."""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import FIXTURES
from tests.unit.cli.test_cli import (
    ARTIFACT,
    ATTEST_SLSA,
    PROVENANCE,
    Run,
    assert_one_line_error,
    dssesign,
)

PASSWORD = {"DSSESIGN_KEY_PASSWORD": "pw"}


def _in_days(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three keys, a trust root for them (2 of 3), and an envelope signed by all three."""
    d = tmp_path_factory.mktemp("verify")
    for alg in ("ed25519", "ecdsa-p256", "ml-dsa-65"):
        assert dssesign("keygen", "--algorithm", alg, "--out", d / alg, env=PASSWORD).code == 0
    root = d / "root.json"
    assert dssesign("trust-root", "init", "--out", root, "--threshold", "2").code == 0
    for alg in ("ed25519", "ecdsa-p256", "ml-dsa-65"):
        run = dssesign(
            "trust-root", "add-key", root, "--public-key", d / f"{alg}.pub", "--label", alg
        )
        assert run.code == 0, run
    envelope = d / "env.json"
    run = dssesign(
        "attest",
        *ATTEST_SLSA,
        "--key",
        d / "ed25519.key",
        "--key",
        d / "ecdsa-p256.key",
        "--key",
        d / "ml-dsa-65.key",
        "--out",
        envelope,
        env=PASSWORD,
    )
    assert run.code == 0, run
    return {"dir": d, "root": root, "envelope": envelope}


def _verify(setup: dict[str, Path], *args: str | Path, root: Path | None = None) -> Run:
    return dssesign("verify", "--trust-root", root or setup["root"], *args)


def test_verify_ok_with_artifact_and_type(setup: dict[str, Path]) -> None:
    run = _verify(setup, "--artifact", ARTIFACT, "--type", "slsaprovenance1", setup["envelope"])
    assert run.code == 0, run
    assert run.out.startswith("OK: verified https://slsa.dev/provenance/v1: 3 distinct")


def test_json_report_on_success_and_failure(setup: dict[str, Path]) -> None:
    run = _verify(setup, "--json", "--digest", f"sha256:{'0' * 64}", setup["envelope"])
    assert run.code == 1
    report = json.loads(run.out)
    assert report["ok"] is False and report["code"] == "SUBJECT_MISMATCH"
    assert set(report) == {
        "schemaVersion",
        "ok",
        "code",
        "message",
        "predicateType",
        "subjectsMatched",
        "keysCounted",
        "identitiesCounted",
        "warnings",
        "signatures",
        "roles",
    }
    assert report["schemaVersion"] == 1 and len(report["signatures"]) == 3
    run = _verify(setup, "--json", setup["envelope"])
    report = json.loads(run.out)
    assert report["ok"] is True and len(report["keysCounted"]) == 3


def test_tampered_envelope_fails_with_exit_1(setup: dict[str, Path], tmp_path: Path) -> None:
    data = json.loads(setup["envelope"].read_text())
    payload = base64.b64decode(data["payload"]).replace(b"hello-1.0", b"hello-6.6")
    data["payload"] = base64.b64encode(payload).decode()
    tampered = tmp_path / "t.json"
    tampered.write_text(json.dumps(data))
    run = _verify(setup, tampered)
    assert run.code == 1
    assert run.err.startswith("error: verification failed [NO_VALID_SIGNATURE]")


def test_wrong_type_fails(setup: dict[str, Path]) -> None:
    run = _verify(setup, "--type", "vsa", setup["envelope"])
    assert run.code == 1 and "PREDICATE_TYPE_MISMATCH" in run.err


def test_revocation_and_verification_time(setup: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "root.json"
    root.write_bytes(setup["root"].read_bytes())
    keyids = [
        json.loads(
            dssesign("public-key", "--key", setup["dir"] / f"{a}.key", "--json", env=PASSWORD).out
        )["keyid"]
        for a in ("ed25519", "ecdsa-p256")
    ]
    for keyid in keyids:
        run = dssesign(
            "trust-root", "revoke", root, "--keyid", keyid, "--at", _in_days(10), "--reason", "test"
        )
        assert run.code == 0, run
    # Before the revocations the envelope verifies; after them one key is left: below 2.
    assert _verify(setup, "--at", _in_days(5), setup["envelope"], root=root).code == 0
    run = _verify(setup, "--at", _in_days(20), setup["envelope"], root=root)
    assert run.code == 1 and "KEY_REVOKED" in run.err


def test_policy_changes_bump_version(setup: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "root.json"
    root.write_bytes(setup["root"].read_bytes())
    before = json.loads(root.read_text())["version"]
    run = dssesign(
        "trust-root", "set-policy", root, "--threshold", "2", "--hybrid", "and", "--json"
    )
    assert run.code == 0, run
    assert json.loads(run.out)["version"] == before + 1
    assert _verify(setup, setup["envelope"], root=root).code == 0
    shown = json.loads(dssesign("trust-root", "show", root, "--json").out)
    assert shown["policy"]["threshold"] == 2 and shown["policy"]["hybrid"] == "and"


def test_rotation_handover(setup: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "root.json"
    root.write_bytes(setup["root"].read_bytes())
    assert dssesign("keygen", "--algorithm", "ecdsa-p384", "--out", tmp_path / "new").code == 0
    run = dssesign(
        "trust-root",
        "rotate",
        root,
        "--from-key",
        setup["dir"] / "ed25519.key",
        "--to-public-key",
        tmp_path / "new.pub",
        "--transition-days",
        "30",
        env=PASSWORD,
    )
    assert run.code == 0, run
    rotated = json.loads(root.read_text())
    assert len(rotated["rotations"]) == 1 and len(rotated["keys"]) == 4
    run = dssesign(
        "sign", "--payload", PROVENANCE, "--payload-type", "x/y", "--key", tmp_path / "new.key"
    )
    assert run.code == 0, run
    assert _verify(setup, setup["envelope"], root=root).code == 0


def test_signed_trust_root_needs_pins(setup: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "root.json"
    root.write_bytes(setup["root"].read_bytes())
    run = dssesign(
        "trust-root",
        "set-root-keys",
        root,
        "--public-key",
        setup["dir"] / "ed25519.pub",
        "--threshold",
        "1",
    )
    assert run.code == 0, run
    signed = tmp_path / "root.signed.json"
    run = dssesign(
        "trust-root",
        "sign",
        root,
        "--key",
        setup["dir"] / "ed25519.key",
        "--out",
        signed,
        env=PASSWORD,
    )
    assert run.code == 0, run
    assert_one_line_error(_verify(setup, setup["envelope"], root=signed), "--root-keyid")
    keyid = json.loads(
        dssesign("public-key", "--key", setup["dir"] / "ed25519.key", "--json", env=PASSWORD).out
    )["keyid"]
    run = _verify(setup, "--root-keyid", keyid, setup["envelope"], root=signed)
    assert run.code == 0, run
    run = _verify(setup, "--root-keyid", "00" * 32, setup["envelope"], root=signed)
    assert run.code == 1, run


def test_many_envelopes_in_a_directory(setup: dict[str, Path], tmp_path: Path) -> None:
    envelopes = tmp_path / "many"
    envelopes.mkdir()
    good = setup["envelope"].read_bytes()
    for i in range(70):  # enough to take the multi-process path
        (envelopes / f"{i:03d}.json").write_bytes(good)
    bad = json.loads(good)
    bad["payloadType"] = "application/json"
    (envelopes / "999-bad.json").write_text(json.dumps(bad))
    run = _verify(setup, "--jobs", "2", envelopes)
    assert run.code == 1
    assert "70 of 71 envelopes verified" in run.out
    assert "999-bad.json: [UNSUPPORTED_PAYLOAD_TYPE]" in run.out
    run = _verify(setup, "--json", "--jobs", "2", envelopes)
    reports = json.loads(run.out)
    assert len(reports) == 71 and sum(r["ok"] for r in reports) == 70


def test_an_unreadable_envelope_among_several_is_reported_and_the_others_verified(
    setup: dict[str, Path], tmp_path: Path
) -> None:
    missing = tmp_path / "missing.json"
    run = _verify(setup, "--json", setup["envelope"], missing)
    assert run.code != 0
    reports = json.loads(run.out)
    assert [r["ok"] for r in reports] == [True, False]
    assert reports[1]["code"] == "UNREADABLE"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--trust-root", "/nonexistent.json", "x.json"], "/nonexistent.json"),
        (["--trust-root", str(PROVENANCE), "x.json"], "trust root"),
        (["--trust-root", str(FIXTURES / "dsse"), "x.json"], "directory"),
    ],
)
def test_bad_trust_root_is_exit_2(args: list[str], fragment: str) -> None:
    assert_one_line_error(dssesign("verify", *args), fragment)


def test_bad_times_and_missing_envelope(setup: dict[str, Path]) -> None:
    assert_one_line_error(_verify(setup, "--at", "yesterday", setup["envelope"]), "--at")
    assert_one_line_error(_verify(setup, "/nonexistent-envelope.json"), "nonexistent")


def test_init_refuses_to_overwrite(setup: dict[str, Path]) -> None:
    assert_one_line_error(dssesign("trust-root", "init", "--out", setup["root"]), "exists")


def test_no_network_needed(setup: dict[str, Path]) -> None:
    env = {
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "no_proxy": "",
        "PATH": os.environ["PATH"],
    }
    assert dssesign("verify", "--trust-root", setup["root"], setup["envelope"], env=env).code == 0


def test_signed_trust_root_updates_chain_and_never_roll_back(
    setup: dict[str, Path], tmp_path: Path
) -> None:
    root = tmp_path / "root.json"
    root.write_bytes(setup["root"].read_bytes())
    key = setup["dir"] / "ed25519.key"
    run = dssesign(
        "trust-root", "set-root-keys", root, "--public-key", setup["dir"] / "ed25519.pub"
    )
    assert run.code == 0, run
    old_signed = tmp_path / "v-old.json"
    assert (
        dssesign("trust-root", "sign", root, "--key", key, "--out", old_signed, env=PASSWORD).code
        == 0
    )
    old_plain = tmp_path / "v-old.plain.json"
    old_plain.write_bytes(root.read_bytes())
    assert dssesign("trust-root", "set-policy", root, "--threshold", "3").code == 0
    new_signed = tmp_path / "v-new.json"
    assert (
        dssesign("trust-root", "sign", root, "--key", key, "--out", new_signed, env=PASSWORD).code
        == 0
    )
    # The update chains from the root this site accepted before (kept plain or signed).
    for previous in (old_plain, old_signed):
        run = _verify(setup, "--previous-trust-root", previous, setup["envelope"], root=new_signed)
        assert run.code == 0, run
    # Handing the site the older version again is a rollback.
    run = _verify(setup, "--previous-trust-root", new_signed, setup["envelope"], root=old_signed)
    assert run.code == 1 and "TRUST_ROOT_ROLLBACK" in run.err, run


def test_verify_envelope_with_its_keyed_bundles(setup: dict[str, Path], tmp_path: Path) -> None:
    d = setup["dir"]
    envelope, bundles = tmp_path / "att.json", tmp_path / "bundles"
    keys = [arg for alg in ("ed25519", "ecdsa-p256") for arg in ("--key", d / f"{alg}.key")]
    run = dssesign(
        "attest", *ATTEST_SLSA, *keys, "--out", envelope, "--bundle-dir", bundles, env=PASSWORD
    )
    assert run.code == 0, run
    found = sorted(bundles.glob("*.sigstore.json"))
    assert len(found) == 2
    ok = dssesign("verify", "--json", "--trust-root", setup["root"], envelope, *found)
    assert ok.code == 0, ok
    report = json.loads(ok.out)
    assert len(report["keysCounted"]) == 2 and report["identitiesCounted"] == []
    # A bundle alone is an envelope of one signature: below the trust root's threshold of 2.
    alone = dssesign("verify", "--json", "--trust-root", setup["root"], found[0])
    assert alone.code == 1 and json.loads(alone.out)["code"] == "THRESHOLD_NOT_MET"
    # A bundle of another envelope (another subject) is refused, not ignored.
    artifact, elsewhere = tmp_path / "other.txt", tmp_path / "elsewhere"
    artifact.write_text("another artifact\n")
    run = dssesign(
        "attest",
        "--subject",
        artifact,
        "--predicate",
        PROVENANCE,
        "--type",
        "slsaprovenance1",
        *keys,
        "--out",
        tmp_path / "other.json",
        "--bundle-dir",
        elsewhere,
        env=PASSWORD,
    )
    assert run.code == 0, run
    stranger = sorted(elsewhere.glob("*.sigstore.json"))[0]
    other = dssesign("verify", "--trust-root", setup["root"], envelope, *found, stranger)
    assert other.code == 1 and "[BUNDLE_PAYLOAD_MISMATCH]" in other.err, other


def test_bundle_arguments_in_the_wrong_shape(setup: dict[str, Path], tmp_path: Path) -> None:
    envelope, bundles = tmp_path / "att.json", tmp_path / "bundles"
    key = setup["dir"] / "ed25519.key"
    run = dssesign(
        "attest",
        *ATTEST_SLSA,
        "--key",
        key,
        "--out",
        envelope,
        "--bundle-dir",
        bundles,
        env=PASSWORD,
    )
    assert run.code == 0, run
    (bundle,) = bundles.glob("*.sigstore.json")
    first = dssesign("verify", "--trust-root", setup["root"], bundle, envelope)
    assert_one_line_error(first, "one ENVELOPE followed by")
    two = dssesign("verify", "--trust-root", setup["root"], envelope, setup["envelope"], bundle)
    assert_one_line_error(two, "one ENVELOPE followed by")


def test_sigstore_trust_root_commands(tmp_path: Path) -> None:
    from dssesign.audit import read_records

    production = FIXTURES / "sigstore-conformance" / "production-trust-root" / "trusted_root.json"
    broken = (
        FIXTURES
        / "sigstore-conformance"
        / "assets"
        / "bundle-verify"
        / "trust-root-tlog-missing-validity-start_fail"
        / "trusted_root.json"
    )
    log = tmp_path / "audit.jsonl"
    env = {"DSSESIGN_AUDIT_LOG": str(log), "DSSESIGN_ACTOR": "ops"}
    root = tmp_path / "root.json"
    issuer = "https://token.actions.githubusercontent.com"
    assert dssesign("trust-root", "init", "--out", root, env=env).code == 0
    early = dssesign("trust-root", "add-identity", root, "--issuer", issuer, "--subject", "s")
    assert_one_line_error(early, "set-sigstore-root")
    assert_one_line_error(
        dssesign("trust-root", "set-sigstore-root", root, "--trusted-root", broken),
        "$.sigstore.trustedRoot",
        "validFor.start",
    )
    run = dssesign("trust-root", "set-sigstore-root", root, "--trusted-root", production, env=env)
    assert run.code == 0, run
    regexp = r"https://github\.com/acme/app/\.github/workflows/release\.yml@refs/tags/v.*"
    run = dssesign(
        "trust-root",
        "add-identity",
        root,
        "--issuer",
        issuer,
        "--subject-regexp",
        regexp,
        "--extension",
        "githubWorkflowRepository=acme/app",
        "--predicate-type",
        "https://slsa.dev/provenance/v1",
        "--label",
        "release",
        env=env,
    )
    assert run.code == 0, run
    for bad, fragment in [
        (["--subject-regexp", "a$b"], "only allowed at the end"),
        (["--subject-regexp", "(x)\\1"], "back-references"),
        (["--subject", "s", "--extension", "nope=1"], "not a known extension"),
        (["--subject", "s", "--extension", "novalue"], "NAME=VALUE"),
        (
            ["--subject-regexp", regexp, "--extension", "githubWorkflowRepository=acme/app"],
            "already listed",
        ),
    ]:
        refused = dssesign("trust-root", "add-identity", root, "--issuer", issuer, *bad)
        assert_one_line_error(refused, fragment)
    both = dssesign(
        "trust-root",
        "add-identity",
        root,
        "--issuer",
        issuer,
        "--subject",
        "a",
        "--subject-regexp",
        "b",
    )
    assert both.code == 2 and "not allowed with" in both.err
    shown = dssesign("trust-root", "show", root)
    assert shown.code == 0 and "identity " + issuer in shown.out and "(release)" in shown.out
    document = json.loads(root.read_text())
    assert document["version"] == 3
    assert document["sigstore"]["trustedRoot"] == json.loads(production.read_text())
    assert document["sigstore"]["identities"] == [
        {
            "issuer": issuer,
            "subjectRegExp": regexp,
            "extensions": {"githubWorkflowRepository": "acme/app"},
            "predicateTypes": ["https://slsa.dev/provenance/v1"],
            "label": "release",
        }
    ]
    records = read_records(log)
    assert [(r["event"], r.get("change")) for r in records] == [
        ("trust-root", "init"),
        ("trust-root", "set-sigstore-root"),
        ("trust-root", "add-identity"),
    ]
    assert [r["trustRootVersion"] for r in records] == [1, 2, 3]
    assert {r["actor"] for r in records} == {"ops"}
