"""`dssesign verify --emit-vsa FILE --vsa-key REF ...`: a signed SLSA VSA of the verdict.

Most runs are in-process (`dssesign.cli.main`); the worker-pool path and the import check run
`dssesign` in a fresh process.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dssesign import trust as tr
from dssesign.cli import main
from dssesign.intoto.statement import ResourceDescriptor
from dssesign.profiles.software import write_keypair
from dssesign.sign.attest import attest
from dssesign.sign.bundles import write_bundles
from tests.conftest import FIXTURES, signer_for
from tests.unit.cli.test_cli import dssesign

ARTIFACT = FIXTURES / "artifacts" / "hello-1.0.tar.gz"
ARTIFACT_SHA256 = hashlib.sha256(ARTIFACT.read_bytes()).hexdigest()
PROVENANCE = json.loads((FIXTURES / "predicates" / "slsa-provenance-v1.json").read_text())
RESOURCE = "https://example.com/releases/hello-1.0.tar.gz"
VSA_TYPE = "https://slsa.dev/verification_summary/v1"
PASSWORD = "vsa key passphrase"


@dataclass
class Run:
    code: int
    out: str
    err: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Keys on disk (encrypted), a trust root trusting both, envelopes for the artifact."""
    d = tmp_path_factory.mktemp("vsa")
    signer, vsa_signer = signer_for("ed25519", 3), signer_for("ecdsa-p256", 3)
    write_keypair(signer, d / "signer", password=PASSWORD.encode())
    write_keypair(vsa_signer, d / "vsa", password=PASSWORD.encode())
    root = tr.init_trust_root(threshold=1, now=datetime.now(UTC) - timedelta(days=1))
    for key in (signer, vsa_signer):
        root = tr.add_key(root, key.public_key)
    (d / "root.json").write_bytes(tr.dump_trust_root(root))
    subject = ResourceDescriptor(name=ARTIFACT.name, digest={"sha256": ARTIFACT_SHA256})
    made = attest([subject], PROVENANCE, "slsaprovenance1", keys=[signer], bundle_stem="env")
    (d / "env.json").write_bytes(made.envelope.to_json())
    write_bundles(d, made.bundles)
    (d / "bundle.json").write_bytes(made.bundles[0].data)
    other = ResourceDescriptor(name="other.tar.gz", digest={"sha256": "ab" * 32})
    second = attest([subject, other], PROVENANCE, "slsaprovenance1", keys=[signer])
    (d / "env2.json").write_bytes(second.envelope.to_json())
    document = json.loads(made.envelope.to_json())
    payload = base64.b64decode(document["payload"]).replace(b"hello", b"HELLO")
    document["payload"] = base64.b64encode(payload).decode()
    (d / "tampered.json").write_text(json.dumps(document))
    return {
        "dir": d,
        "root": d / "root.json",
        "env": d / "env.json",
        "env2": d / "env2.json",
        "tampered": d / "tampered.json",
        "bundle": d / "bundle.json",
        "key": d / "vsa.key",
    }


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Any:
    """Run `dssesign` in-process, in `tmp_path`, with only the key passphrase in the env."""
    for name in list(os.environ):
        if name.startswith("DSSESIGN_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DSSESIGN_KEY_PASSWORD", PASSWORD)
    monkeypatch.chdir(tmp_path)

    def run(*args: str | Path) -> Run:
        capsys.readouterr()
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return run


def _vsa_args(world: dict[str, Path], out: str | Path = "vsa.json") -> list[str | Path]:
    return ["--emit-vsa", out, "--vsa-key", world["key"], "--resource-uri", RESOURCE]


def _verify(world: dict[str, Path], *args: str | Path) -> list[str | Path]:
    return ["verify", "--trust-root", world["root"], *args]


def _statement(path: Path) -> dict[str, Any]:
    envelope = json.loads(path.read_text())
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    statement: dict[str, Any] = json.loads(base64.b64decode(envelope["payload"]))
    return statement


def _one_line_error(run: Run, *fragments: str) -> None:
    assert run.code == 2, run
    lines = run.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), run.err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


# --- a passed verification ------------------------------------------------------------------


def test_passed_summary_fields_and_it_verifies_as_a_vsa(
    cli: Any, world: dict[str, Path], tmp_path: Path
) -> None:
    run = cli(
        *_verify(world, "--artifact", ARTIFACT, world["env"]),
        *_vsa_args(world),
        "--verified-level",
        "SLSA_BUILD_LEVEL_2",
    )
    assert run.code == 0, run
    assert run.out.startswith("OK: verified https://slsa.dev/provenance/v1")
    assert "verification summary (PASSED, 1 signature(s)) -> vsa.json" in run.err
    statement = _statement(tmp_path / "vsa.json")
    assert statement["predicateType"] == VSA_TYPE
    assert statement["subject"] == [
        {"name": "hello-1.0.tar.gz", "digest": {"sha256": ARTIFACT_SHA256}}
    ]
    predicate = statement["predicate"]
    assert predicate["verifier"]["id"] == "https://github.com/dssesign/dssesign/verify@0.1.0"
    assert predicate["resourceUri"] == RESOURCE
    assert predicate["policy"] == {
        "uri": world["root"].as_uri(),
        "digest": {"sha256": hashlib.sha256(world["root"].read_bytes()).hexdigest()},
    }
    assert predicate["inputAttestations"] == [
        {
            "name": str(world["env"]),
            "digest": {"sha256": hashlib.sha256(world["env"].read_bytes()).hexdigest()},
        }
    ]
    assert predicate["verificationResult"] == "PASSED"
    assert predicate["verifiedLevels"] == ["SLSA_BUILD_LEVEL_2"]
    stamp = datetime.strptime(predicate["timeVerified"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs(datetime.now(UTC) - stamp) < timedelta(minutes=5)
    # The summary verifies like any attestation: --type vsa, and its subject is the artifact.
    check = cli(*_verify(world, "--type", "vsa", "--artifact", ARTIFACT, tmp_path / "vsa.json"))
    assert check.code == 0, check
    assert check.out.startswith(f"OK: verified {VSA_TYPE}: 1 distinct trusted key")


def test_options_fill_their_fields(cli: Any, world: dict[str, Path], tmp_path: Path) -> None:
    run = cli(
        *_verify(world, world["env"]),
        *_vsa_args(world),
        "--vsa-verifier-id",
        "https://verifier.example.com/edge",
        "--policy-uri",
        "https://example.com/policies/release.json",
        "--verified-level",
        "SLSA_BUILD_LEVEL_3",
        "--verified-level",
        "SLSA_SOURCE_LEVEL_2",
    )
    assert run.code == 0, run
    statement = _statement(tmp_path / "vsa.json")
    predicate = statement["predicate"]
    assert predicate["verifier"]["id"] == "https://verifier.example.com/edge"
    assert predicate["policy"]["uri"] == "https://example.com/policies/release.json"
    assert (
        predicate["policy"]["digest"]["sha256"]
        == hashlib.sha256(world["root"].read_bytes()).hexdigest()
    )
    assert predicate["verifiedLevels"] == ["SLSA_BUILD_LEVEL_3", "SLSA_SOURCE_LEVEL_2"]
    # No --artifact: the verified Statement's subjects.
    assert statement["subject"] == [
        {"name": "hello-1.0.tar.gz", "digest": {"sha256": ARTIFACT_SHA256}}
    ]


def test_many_envelopes_pass_together(cli: Any, world: dict[str, Path], tmp_path: Path) -> None:
    run = cli(*_verify(world, "--digest", f"sha256:{ARTIFACT_SHA256}", world["env"], world["env2"]),
              *_vsa_args(world))  # fmt: skip
    assert run.code == 0, run
    statement = _statement(tmp_path / "vsa.json")
    assert statement["predicate"]["verificationResult"] == "PASSED"
    assert statement["subject"] == [
        {"name": "hello-1.0.tar.gz", "digest": {"sha256": ARTIFACT_SHA256}}
    ]
    names = [a["name"] for a in statement["predicate"]["inputAttestations"]]
    assert names == [str(world["env"]), str(world["env2"])]


def test_statement_subjects_are_deduplicated(
    cli: Any, world: dict[str, Path], tmp_path: Path
) -> None:
    run = cli(*_verify(world, world["env"], world["env2"]), *_vsa_args(world))
    assert run.code == 0, run
    assert [s["name"] for s in _statement(tmp_path / "vsa.json")["subject"]] == [
        "hello-1.0.tar.gz",
        "other.tar.gz",
    ]


def test_an_envelope_with_its_bundle_lists_both(
    cli: Any, world: dict[str, Path], tmp_path: Path
) -> None:
    bundles = sorted(world["dir"].glob("env.*.sigstore.json"))
    assert len(bundles) == 1
    run = cli(*_verify(world, world["env"], bundles[0]), *_vsa_args(world))
    assert run.code == 0, run
    inputs = _statement(tmp_path / "vsa.json")["predicate"]["inputAttestations"]
    assert [a["name"] for a in inputs] == [str(world["env"]), str(bundles[0])]
    assert inputs[1]["digest"]["sha256"] == hashlib.sha256(bundles[0].read_bytes()).hexdigest()
    run = cli(*_verify(world, "--artifact", ARTIFACT, world["bundle"]), *_vsa_args(world, "b.json"))
    assert run.code == 0, run
    assert _statement(tmp_path / "b.json")["predicate"]["inputAttestations"][0]["name"] == str(
        world["bundle"]
    )


def test_vsa_bundles_and_audit_log(cli: Any, world: dict[str, Path], tmp_path: Path) -> None:
    run = cli(
        *_verify(world, world["env"]),
        *_vsa_args(world, "out/app.vsa.json"),
        "--vsa-bundle-dir",
        "bundles",
        "--vsa-audit-log",
        "audit.log",
    )
    _one_line_error(run, "--emit-vsa", "no such directory")  # refused before any work
    assert not (tmp_path / "bundles").exists() and not (tmp_path / "audit.log").exists()
    (tmp_path / "out").mkdir()
    run = cli(
        *_verify(world, world["env"]),
        *_vsa_args(world, "out/app.vsa.json"),
        "--vsa-bundle-dir",
        "bundles",
        "--vsa-audit-log",
        "audit.log",
    )
    assert run.code == 0, run
    written = sorted((tmp_path / "bundles").iterdir())
    assert [p.name for p in written] == [
        f"app.vsa.{signer_for('ecdsa-p256', 3).keyid[:16]}.sigstore.json"
    ]
    check = cli(*_verify(world, "--type", "vsa", tmp_path / "out/app.vsa.json", written[0]))
    assert check.code == 0, check
    records = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    signed = [r for r in records if r.get("event") == "sign"]
    assert len(signed) == 1 and signed[0]["result"] == "success"
    assert signed[0]["predicateType"] == VSA_TYPE


def test_json_output_stays_the_verify_report(
    cli: Any, world: dict[str, Path], tmp_path: Path
) -> None:
    run = cli(*_verify(world, "--json", world["env"]), *_vsa_args(world))
    assert run.code == 0, run
    report = json.loads(run.out)
    assert report["ok"] is True and "_vsa" not in report
    run = cli(*_verify(world, "--json", world["env"], world["env2"]), *_vsa_args(world))
    reports = json.loads(run.out)
    assert [r["ok"] for r in reports] == [True, True]
    assert all("_vsa" not in r for r in reports)
    assert (tmp_path / "vsa.json").exists()


# --- a failed verification never yields PASSED -------------------------------------------------


@pytest.mark.parametrize(
    "case",
    ["tampered", "wrong-type", "one-of-many", "artifact-mismatch", "unreadable"],
)
def test_failed_verification_writes_nothing_by_default(
    cli: Any, world: dict[str, Path], tmp_path: Path, case: str
) -> None:
    args = _failing(world, case)
    run = cli(*_verify(world, *args), *_vsa_args(world))
    assert run.code in (1, 2), run
    assert not (tmp_path / "vsa.json").exists()
    assert list(tmp_path.iterdir()) == []  # no temp file either
    assert "no verification summary written" in run.err


@pytest.mark.parametrize(
    "case",
    ["tampered", "wrong-type", "one-of-many", "artifact-mismatch", "unreadable"],
)
def test_on_failure_the_summary_says_failed(
    cli: Any, world: dict[str, Path], tmp_path: Path, case: str
) -> None:
    args = _failing(world, case)
    if "--artifact" not in args and "--digest" not in args:
        args = ["--artifact", ARTIFACT, *args]
    run = cli(*_verify(world, *args), *_vsa_args(world), "--emit-vsa-on-failure",
              "--verified-level", "SLSA_BUILD_LEVEL_3")  # fmt: skip
    assert run.code in (1, 2), run  # verify's exit code, not the summary's
    statement = _statement(tmp_path / "vsa.json")
    predicate = statement["predicate"]
    assert predicate["verificationResult"] == "FAILED"
    assert predicate["verifiedLevels"] == ["FAILED"]
    # Only what was asked about, never a subject read from a payload that did not verify.
    for subject in statement["subject"]:
        assert "name" not in subject
    check = cli(*_verify(world, "--type", "vsa", tmp_path / "vsa.json"))
    # Authentic, but a FAILED summary never verifies as OK (a gate must not admit it).
    assert check.code == 1 and "VSA_NOT_PASSED" in check.err, check


def _failing(world: dict[str, Path], case: str) -> list[str | Path]:
    if case == "tampered":
        return [world["tampered"]]
    if case == "wrong-type":
        return ["--type", "vsa", world["env"]]
    if case == "one-of-many":
        return [world["env"], world["tampered"], world["env2"]]
    if case == "artifact-mismatch":
        return ["--digest", f"sha256:{'0' * 64}", world["env"]]
    return [world["env"], world["dir"] / "missing.json"]


def test_on_failure_lists_every_envelope(cli: Any, world: dict[str, Path], tmp_path: Path) -> None:
    run = cli(*_verify(world, "--artifact", ARTIFACT, world["env"], world["tampered"]),
              *_vsa_args(world), "--emit-vsa-on-failure")  # fmt: skip
    assert run.code == 1, run
    statement = _statement(tmp_path / "vsa.json")
    assert statement["subject"] == [{"digest": {"sha256": ARTIFACT_SHA256}}]
    inputs = statement["predicate"]["inputAttestations"]
    assert [a["name"] for a in inputs] == [str(world["env"]), str(world["tampered"])]


# --- bad usage: exit 2, one line, nothing written -------------------------------------------


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--at", "2026-01-01T00:00:00Z"], "--emit-vsa cannot be used with --at"),
        (["--resource-uri", "dist/app.tar.gz"], "--resource-uri: must be an absolute URI"),
        (["--vsa-verifier-id", "dssesign"], "--vsa-verifier-id: must be an absolute URI"),
        (["--policy-uri", "a b"], "--policy-uri: must be an absolute URI"),
        (
            ["--verified-level", "SLSA_BUILD_LEVEL_1", "--verified-level", "SLSA_BUILD_LEVEL_2"],
            "--verified-level: more than one level for the SLSA BUILD track",
        ),
        (["--verified-level", "FAILED"], "--verified-level: FAILED is what a failed"),
        (["--emit-vsa-on-failure"], "--emit-vsa-on-failure needs --artifact or --digest"),
        (["--vsa-tsa", "http://127.0.0.1:1/tsa"], "--vsa-tsa needs --vsa-bundle-dir"),
        (["--digest", "sha256:xyz"], "--digest"),
    ],
)
def test_bad_usage_is_refused_before_any_work(
    cli: Any, world: dict[str, Path], tmp_path: Path, extra: list[str], fragment: str
) -> None:
    run = cli(*_verify(world, world["env"]), *_vsa_args(world), *extra)
    _one_line_error(run, fragment)
    assert run.out == ""  # nothing was verified
    assert list(tmp_path.iterdir()) == []


def test_required_and_orphan_options(cli: Any, world: dict[str, Path], tmp_path: Path) -> None:
    run = cli(*_verify(world, world["env"]), "--emit-vsa", "v.json", "--resource-uri", RESOURCE)
    _one_line_error(run, "--emit-vsa needs --vsa-key")
    run = cli(*_verify(world, world["env"]), "--emit-vsa", "v.json", "--vsa-key", world["key"])
    _one_line_error(run, "--emit-vsa needs --resource-uri", "required by the spec")
    for orphan in (
        ["--vsa-key", world["key"]],
        ["--resource-uri", RESOURCE],
        ["--verified-level", "SLSA_BUILD_LEVEL_1"],
        ["--emit-vsa-on-failure"],
    ):
        run = cli(*_verify(world, world["env"]), *orphan)
        _one_line_error(run, "only used with --emit-vsa")
    assert list(tmp_path.iterdir()) == []


def test_the_output_is_never_an_input(cli: Any, world: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / "env.json"
    shutil.copy(world["env"], copy)
    before = copy.read_bytes()
    for target, what in ((copy, "an envelope"), (world["root"], "--trust-root"),
                         (world["key"], "--vsa-key"), (ARTIFACT, "--artifact")):  # fmt: skip
        args = ["--artifact", ARTIFACT, copy] if what == "--artifact" else [copy]
        run = cli(*_verify(world, *args), *_vsa_args(world, target))
        _one_line_error(run, "refusing to overwrite an input", what)
    assert copy.read_bytes() == before
    directory = tmp_path / "envelopes"
    directory.mkdir()
    shutil.copy(world["env"], directory / "a.json")
    run = cli(*_verify(world, directory), *_vsa_args(world, directory / "vsa.json"))
    _one_line_error(run, "refusing to overwrite an input")


def test_a_key_that_cannot_load_stops_before_verifying(
    cli: Any, world: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DSSESIGN_KEY_PASSWORD", "not the passphrase")
    run = cli(*_verify(world, world["env"]), *_vsa_args(world))
    assert run.code == 2 and "wrong passphrase" in run.err, run
    assert "not the passphrase" not in run.err
    assert run.out == ""
    assert list(tmp_path.iterdir()) == []
    monkeypatch.delenv("DSSESIGN_KEY_PASSWORD")
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    run = cli(*_verify(world, world["env"]), *_vsa_args(world), "--vsa-password-file", "pw")
    assert run.code == 0, run


# --- fresh processes ------------------------------------------------------------------------


def test_many_envelopes_through_the_worker_pool(world: dict[str, Path], tmp_path: Path) -> None:
    directory = tmp_path / "many"
    directory.mkdir()
    for index in range(64):  # the pool starts at 64 envelopes
        shutil.copy(world["env"], directory / f"e{index:02}.json")
    args = [*_verify(world, "--jobs", "2", "--artifact", ARTIFACT, directory)]
    run = dssesign(*args, *_vsa_args(world, tmp_path / "vsa.json"),
                   env={"DSSESIGN_KEY_PASSWORD": PASSWORD})  # fmt: skip
    assert run.code == 0, run
    statement = _statement(tmp_path / "vsa.json")
    assert statement["predicate"]["verificationResult"] == "PASSED"
    assert len(statement["predicate"]["inputAttestations"]) == 64
    shutil.copy(world["tampered"], directory / "e99.json")
    run = dssesign(*args, *_vsa_args(world, tmp_path / "vsa2.json"), "--emit-vsa-on-failure",
                   env={"DSSESIGN_KEY_PASSWORD": PASSWORD})  # fmt: skip
    assert run.code == 1, run
    predicate = _statement(tmp_path / "vsa2.json")["predicate"]
    assert predicate["verificationResult"] == "FAILED"
    assert len(predicate["inputAttestations"]) == 65


def test_plain_verify_loads_neither_vsa_nor_signing(world: dict[str, Path]) -> None:
    script = f"""
import sys
from dssesign.cli import main
code = main(["verify", "--trust-root", {str(world["root"])!r}, "--artifact", {str(ARTIFACT)!r},
             {str(world["env"])!r}])
assert code == 0, code
print("\\n".join(m for m in sys.modules if m.startswith("dssesign")))
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    loaded = run.stdout.split()
    assert "dssesign.verify.envelope" in loaded  # it really verified
    assert "dssesign.cli.verify_vsa" in loaded  # only the options
    unwanted = ("dssesign.vsa", "dssesign.sign", "dssesign.profiles", "dssesign.audit")
    assert [m for m in loaded if m.startswith(unwanted)] == []


# --- .intoto.jsonl -------------------------------------------------------------------------


def _jsonl(world: dict[str, Path], *names: str) -> Path:
    """A JSON Lines file of these envelopes (one compact line each)."""
    path = world["dir"] / ("-".join(names) + ".intoto.jsonl")
    lines = [
        json.dumps(json.loads(world[name].read_bytes()), separators=(",", ":")) for name in names
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_jsonl_file_is_one_input_passed_only_when_every_line_is(
    cli: Any, world: dict[str, Path], tmp_path: Path
) -> None:
    good = _jsonl(world, "env", "env2")
    run = cli(*_verify(world, good), *_vsa_args(world))
    assert run.code == 0, run
    predicate = _statement(tmp_path / "vsa.json")["predicate"]
    assert predicate["verificationResult"] == "PASSED"
    assert predicate["inputAttestations"] == [
        {"name": str(good), "digest": {"sha256": hashlib.sha256(good.read_bytes()).hexdigest()}}
    ]
    # One tampered line: --any-line lets the command pass, never the summary.
    mixed = _jsonl(world, "env", "tampered")
    (tmp_path / "mixed.json").write_text("an older summary")
    run = cli(*_verify(world, "--any-line", mixed), *_vsa_args(world, "mixed.json"))
    assert run.code == 1, run  # passed with --any-line, but no summary: never exit 0
    assert (tmp_path / "mixed.json").read_text() == "an older summary"
    run = cli(
        *_verify(world, "--any-line", "--artifact", ARTIFACT, mixed),
        *_vsa_args(world, "failed.json"),
        "--emit-vsa-on-failure",
    )
    assert run.code == 0, run
    assert _statement(tmp_path / "failed.json")["predicate"]["verificationResult"] == "FAILED"


def test_a_failed_summary_never_verifies_as_ok_nor_becomes_passed(
    cli: Any, world: dict[str, Path], tmp_path: Path
) -> None:
    """Red team: a FAILED summary is authentic, but `verify --type vsa` must refuse it, so a
    gate never admits it and a second summary of it is never PASSED."""
    from dssesign.intoto.predicates import VSA_URI
    from dssesign.verify.envelope import VSA_TYPE

    assert VSA_TYPE == VSA_URI
    run = cli(
        *_verify(world, "--artifact", ARTIFACT, world["tampered"]),
        *_vsa_args(world, "failed.json"),
        "--emit-vsa-on-failure",
    )
    assert run.code == 1, run
    assert _statement(tmp_path / "failed.json")["predicate"]["verificationResult"] == "FAILED"
    check = cli(*_verify(world, "--type", "vsa", "--json", tmp_path / "failed.json"))
    assert check.code == 1, check
    assert json.loads(check.out)["code"] == "VSA_NOT_PASSED"
    again = cli(
        *_verify(world, "--artifact", ARTIFACT, tmp_path / "failed.json"),
        *_vsa_args(world, "again.json"),
        "--verified-level",
        "SLSA_BUILD_LEVEL_3",
    )
    assert again.code == 1, again
    assert not (tmp_path / "again.json").exists()
