"""`dssesign trust-root add-role`, `set-policy --require-role/--any-role/--clear-roles`,
`add-identity --name`, `show`, and what `dssesign verify` says about roles, in real processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dssesign.trust import read_trust_root
from tests.conftest import FIXTURES, signer_for
from tests.unit.cli.test_cli import Run, assert_one_line_error, dssesign
from tests.unit.verify.test_verify import signed

SIGNERS = [signer_for("ed25519", i) for i in range(4)]
A, B, C, D = SIGNERS
TRUSTED_ROOT = FIXTURES / "sigstore-conformance" / "production-trust-root" / "trusted_root.json"


def _ok(run: Run) -> Run:
    assert run.code == 0, run
    return run


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A trust root with keys A, B, C, D (threshold 1)."""
    path = tmp_path / "root.json"
    _ok(dssesign("trust-root", "init", "--out", path))
    for index, signer in enumerate(SIGNERS):
        pem = tmp_path / f"{index}.pub"
        pem.write_text(signer.public_key.pem)
        _ok(dssesign("trust-root", "add-key", path, "--public-key", pem, "--label", f"k{index}"))
    return path


def _teams(root: Path) -> None:
    run = _ok(
        dssesign(
            "trust-root",
            "add-role",
            root,
            "--name",
            "build",
            "--keyid",
            A.keyid,
            "--threshold",
            "1",
        )
    )
    assert run.out == f"{root}: added role build (threshold 1 of 1 member) (version 6)\n"
    review = ["--keyid", B.keyid, "--keyid", C.keyid, "--keyid", D.keyid]
    _ok(dssesign("trust-root", "add-role", root, "--name", "review", *review, "--threshold", "2"))
    _ok(
        dssesign(
            "trust-root", "set-policy", root, "--require-role", "build", "--require-role", "review"
        )
    )


def test_add_role_show_and_set_policy_round_trip(root: Path) -> None:
    _teams(root)
    loaded = read_trust_root(root)
    assert [(r.name, r.threshold, r.keyids) for r in loaded.roles] == [
        ("build", 1, (A.keyid,)),
        ("review", 2, (B.keyid, C.keyid, D.keyid)),
    ]
    assert loaded.policy.required_roles == ("build", "review") and not loaded.policy.any_role
    shown = _ok(dssesign("trust-root", "show", root)).out
    assert "hybrid off, roles: all of build, review\n" in shown
    assert "role build: threshold 1 of 1\n" in shown
    assert f"    key {A.keyid} (k0)\n" in shown
    assert "role review: threshold 2 of 3\n" in shown
    as_json = json.loads(_ok(dssesign("trust-root", "show", "--json", root)).out)
    assert as_json["roles"][1] == {
        "name": "review",
        "threshold": 2,
        "keyids": [B.keyid, C.keyid, D.keyid],
    }
    assert as_json["policy"]["requiredRoles"] == ["build", "review"]
    # Any one of them, then for one type only, then none.
    _ok(dssesign("trust-root", "set-policy", root, "--any-role"))
    assert read_trust_root(root).policy.any_role is True
    assert "roles: any of build, review" in _ok(dssesign("trust-root", "show", root)).out
    slsa = "https://slsa.dev/provenance/v1"
    _ok(
        dssesign(
            "trust-root",
            "set-policy",
            root,
            "--for-type",
            slsa,
            "--threshold",
            "2",
            "--require-role",
            "review",
        )
    )
    policy = read_trust_root(root).policy
    assert policy.per_type[slsa].required_roles == ("review",)
    assert (
        f"  for {slsa}: threshold 2, roles: all of review\n"
        in _ok(dssesign("trust-root", "show", root)).out
    )
    _ok(dssesign("trust-root", "set-policy", root, "--clear-roles"))
    policy = read_trust_root(root).policy
    assert policy.required_roles == () and policy.any_role is False
    assert "requiredRoles" not in json.loads(root.read_text())["policy"]


def test_add_role_refusals_are_one_line_and_change_nothing(root: Path) -> None:
    _teams(root)
    before = root.read_bytes()
    cases = [
        (["--name", "build", "--keyid", B.keyid, "--threshold", "1"], "names are unique"),
        (["--name", "qa", "--keyid", "ab" * 32, "--threshold", "1"], "is not a key in $.keys"),
        (["--name", "qa", "--keyid", B.keyid, "--threshold", "2"], "from 1 to 1"),
        (["--name", "qa", "--identity", "ci", "--threshold", "1"], "names no identity"),
        (["--name", "qa", "--threshold", "1"], "at least one --keyid or --identity"),
    ]
    for options, fragment in cases:
        assert_one_line_error(dssesign("trust-root", "add-role", root, *options), fragment)
    assert_one_line_error(
        dssesign("trust-root", "set-policy", root, "--require-role", "qa"), "no role named 'qa'"
    )
    assert_one_line_error(
        dssesign("trust-root", "set-policy", root, "--clear-roles", "--any-role"), "contradicts"
    )
    assert root.read_bytes() == before


def test_identities_by_name_in_a_role(root: Path) -> None:
    _ok(dssesign("trust-root", "set-sigstore-root", root, "--trusted-root", TRUSTED_ROOT))
    issuer = "https://token.actions.githubusercontent.com"
    workflow = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1"
    run = _ok(
        dssesign(
            "trust-root",
            "add-identity",
            root,
            "--issuer",
            issuer,
            "--subject",
            workflow,
            "--name",
            "release-workflow",
        )
    )
    assert "as release-workflow" in run.out
    _ok(
        dssesign(
            "trust-root",
            "add-role",
            root,
            "--name",
            "build",
            "--identity",
            "release-workflow",
            "--keyid",
            A.keyid,
            "--threshold",
            "1",
        )
    )
    shown = _ok(dssesign("trust-root", "show", root)).out
    assert f"identity {issuer} {workflow} [release-workflow]\n" in shown
    assert f"    identity release-workflow ({issuer} {workflow})\n" in shown
    loaded = read_trust_root(root)
    assert loaded.roles[0].identities == ("release-workflow",)


def test_verify_says_which_role_was_short(root: Path, tmp_path: Path) -> None:
    _teams(root)
    envelope = tmp_path / "env.json"
    envelope.write_bytes(signed([A, B]))
    run = dssesign("verify", "--trust-root", root, envelope)
    assert run.code == 1, run
    lines = run.err.splitlines()
    assert lines[0] == (
        "error: verification failed [ROLE_POLICY_NOT_MET]: role 'review' is short: 1 distinct "
        f"member(s) counted (key {B.keyid[:16]}), threshold 2"
    )
    assert lines[1:] == [
        "  role build: 1 of 1 counted, met",
        "  role review: 1 of 2 counted, not met",
    ]
    report = json.loads(dssesign("verify", "--json", "--trust-root", root, envelope).out)
    assert report["code"] == "ROLE_POLICY_NOT_MET" and report["schemaVersion"] == 1
    assert report["roles"]["review"] == {"threshold": 2, "counted": 1, "met": False}
    assert [(s["keyid"], s["status"], s["roles"]) for s in report["signatures"]] == [
        (A.keyid, "counted", ["build"]),
        (B.keyid, "counted", ["review"]),
    ]
    envelope.write_bytes(signed([A, B, D]))
    run = _ok(dssesign("verify", "--trust-root", root, envelope))
    assert "  role review: 2 of 2 counted, met\n" in run.out
