"""`trust-root countersign` and `trust-root diff`, through `dssesign.cli.trust_sign`'s own
`register_subcommands` (wired into `dssesign trust-root` separately)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dssesign import trust as tr
from dssesign.audit import read_records
from dssesign.cli.common import Parser
from dssesign.cli.trust_sign import register_subcommands
from dssesign.core.dsse import Envelope
from dssesign.errors import DssesignError, VerificationError
from dssesign.profiles.software import SoftwareSigner, write_keypair
from dssesign.trust import TrustRoot
from tests.conftest import signer_for

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SLSA = "https://slsa.dev/provenance/v1"


@dataclass
class Run:
    code: int
    out: str
    err: str


def parser() -> argparse.ArgumentParser:
    top = Parser(prog="dssesign trust-root")
    top.add_argument("--json", action="store_true", default=False)
    sub = top.add_subparsers(dest="trust_command", required=True, parser_class=Parser)
    register_subcommands(sub)
    return top


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> Run:
    """As `dssesign.cli.main` runs a handler: errors become one line and an exit code."""
    args = parser().parse_args([str(a) for a in argv])
    try:
        code = args.handler(args)
    except VerificationError as exc:
        print(f"error: verification failed [{exc.code}]: {exc}", file=sys.stderr)
        code = exc.exit_code
    except DssesignError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = exc.exit_code
    captured = capsys.readouterr()
    return Run(code, captured.out, captured.err)


def root_key(index: int) -> SoftwareSigner:
    return signer_for("ed25519", 400 + index)


def signing_key(index: int) -> SoftwareSigner:
    return signer_for("ed25519", 410 + index)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("DSSESIGN_"):
            monkeypatch.delenv(name)


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    """Key files: root0..root2 (the root keys) and signer0 (a trusted signing key)."""
    made = {}
    for name, signer in (
        *((f"root{i}", root_key(i)) for i in range(3)),
        ("signer0", signing_key(0)),
    ):
        write_keypair(signer, tmp_path / name, password=None)
        made[name] = tmp_path / f"{name}.key"
    return made


def v1() -> TrustRoot:
    root = tr.init_trust_root(threshold=1, now=NOW)
    root = tr.add_key(root, signing_key(0).public_key, label="ci")
    return tr.set_root_keys(root, [root_key(i).public_key for i in range(3)], threshold=2)


def v2() -> TrustRoot:
    root = tr.add_key(v1(), signing_key(1).public_key, label="release", predicate_types=[SLSA])
    return tr.set_policy(root, threshold=2)


def write_signed(path: Path, root: TrustRoot, *signers: SoftwareSigner) -> bytes:
    data = tr.sign_trust_root(root, list(signers)).to_json() + b"\n"
    path.write_bytes(data)
    return data


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


PINS = [root_key(i).keyid for i in range(3)]


# --- countersign ---------------------------------------------------------------------------


def test_countersign_in_place_reaches_the_threshold(
    tmp_path: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    signed = tmp_path / "v2.signed.json"
    before = write_signed(signed, v2(), root_key(0))
    with pytest.raises(VerificationError):
        tr.verify_signed_trust_root(signed.read_bytes(), previous=v1(), now=NOW)

    result = run(capsys, "countersign", signed, "--key", keys["root1"])
    assert result.code == 0, result
    # Said before any key was loaded: what is countersigned and who signed so far.
    assert f"trust root version {v2().version}" in result.err
    assert f"signature 1: root key {root_key(0).keyid}" in result.err
    assert "root keys: 1 of threshold 2 (NOT met)" in result.err
    assert "trust-root diff OLD" in result.err
    # And what was signed.
    assert f"countersigned trust root version {v2().version}" in result.out
    assert f"by {root_key(1).keyid}" in result.out
    assert "root keys: 2 of threshold 2 (met)" in result.out

    after = Envelope.from_json(signed.read_bytes())
    first = Envelope.from_json(before)
    assert after.payload == first.payload and after.signatures[0] == first.signatures[0]
    assert [s.keyid for s in after.signatures] == [root_key(0).keyid, root_key(1).keyid]
    assert tr.verify_signed_trust_root(signed.read_bytes(), previous=v1(), now=NOW) == v2()
    assert leftovers(tmp_path) == []


def test_countersign_to_out_leaves_the_input_and_reports_json(
    tmp_path: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    signed, out = tmp_path / "v2.signed.json", tmp_path / "v2.both.json"
    before = write_signed(signed, v2(), root_key(0))
    result = run(capsys, "countersign", signed, "--key", keys["root2"], "--out", out, "--json")
    assert result.code == 0, result
    assert signed.read_bytes() == before
    report = json.loads(result.out)
    assert report["file"] == str(out) and report["version"] == v2().version
    assert report["added"] == [root_key(2).keyid]
    assert report["rootKeys"] == {"counted": 2, "threshold": 2, "met": True}
    assert [s["rootKey"] for s in report["signatures"]] == [root_key(0).keyid, root_key(2).keyid]
    accepted = tr.verify_signed_trust_root(
        out.read_bytes(), pinned_root_keyids=PINS, pinned_threshold=2, now=NOW
    )
    assert accepted == v2()


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("root0", "already signed this trust root: signature 1"),
        ("signer0", "is not a root key of trust root version"),
    ],
)
def test_a_refused_countersign_leaves_no_output(
    tmp_path: Path,
    keys: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    key: str,
    message: str,
) -> None:
    signed, out = tmp_path / "v2.signed.json", tmp_path / "out.json"
    before = write_signed(signed, v2(), root_key(0))
    extras: list[list[str | Path]] = [[], ["--out", out]]
    for extra in extras:
        result = run(capsys, "countersign", signed, "--key", keys[key], *extra)
        assert result.code == 2, result
        assert message in result.err
        assert result.out == ""
        assert signed.read_bytes() == before
        assert not out.exists()
        assert leftovers(tmp_path) == []
        assert not (tmp_path / "out.json.lock").exists()


def test_a_countersign_that_fails_to_sign_leaves_no_output(
    tmp_path: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A key file that does not load, and the same key given twice, after the output was
    staged: nothing is written."""
    signed, out = tmp_path / "v2.signed.json", tmp_path / "out.json"
    before = write_signed(signed, v2(), root_key(0))
    missing = run(capsys, "countersign", signed, "--key", tmp_path / "nope.key", "--out", out)
    assert missing.code == 2, missing
    twice = run(
        capsys, "countersign", signed, "--key", keys["root1"], "--key", keys["root1"], "--out", out
    )
    assert twice.code == 2 and "given twice" in twice.err
    assert signed.read_bytes() == before and not out.exists() and leftovers(tmp_path) == []


def test_countersign_refuses_a_plain_trust_root_and_writes_nothing(
    tmp_path: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    plain = tmp_path / "v2.json"
    tr.save_trust_root(plain, v2())
    before = plain.read_bytes()
    result = run(capsys, "countersign", plain, "--key", keys["root1"])
    assert result.code == 2, result
    assert plain.read_bytes() == before and leftovers(tmp_path) == []


def test_countersign_with_previous_reports_both_thresholds_and_is_audited(
    tmp_path: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    old = tmp_path / "v1.signed.json"
    write_signed(old, v1(), root_key(0), root_key(1))
    # v3 hands the root over to a new root key; v1's root keys must vouch for it.
    new_root = signer_for("ed25519", 420)
    v3 = tr.set_root_keys(v2(), [new_root.public_key], threshold=1)
    signed = tmp_path / "v3.signed.json"
    write_signed(signed, v3, new_root)
    log = tmp_path / "audit.log"
    refused = run(capsys, "countersign", signed, "--key", keys["root0"])
    assert refused.code == 2 and "is not a root key" in refused.err
    result = run(
        capsys,
        "countersign",
        signed,
        "--previous",
        old,
        "--key",
        keys["root0"],
        "--key",
        keys["root1"],
        "--audit-log",
        log,
        "--json",
    )
    assert result.code == 0, result
    report = json.loads(result.out)
    assert report["previousRootKeys"] == {"counted": 2, "threshold": 2, "met": True}
    assert report["met"] is True
    assert tr.verify_signed_trust_root(signed.read_bytes(), previous=v1(), now=NOW) == v3
    (record,) = read_records(log)
    assert record["change"] == "countersign"
    assert record["keyids"] == [root_key(0).keyid, root_key(1).keyid]
    assert record["trustRootVersion"] == v3.version


# --- diff ------------------------------------------------------------------------------------


def _diff_files(tmp_path: Path) -> tuple[Path, Path]:
    old, new = tmp_path / "v1.json", tmp_path / "v2.signed.json"
    tr.save_trust_root(old, v1())
    write_signed(new, v2(), root_key(0))
    return old, new


def test_diff_text_shows_the_added_key_the_policy_and_the_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = _diff_files(tmp_path)
    result = run(capsys, "diff", old, new)
    assert result.code == 0, result
    lines = result.out.splitlines()
    assert lines[0].startswith(f"old: {old}: version {v1().version}") and "plain" in lines[0]
    assert "DSSE-signed, 1 signature(s) NOT verified" in lines[1]
    assert f"  ~ $.version: {v1().version} -> {v2().version}" in lines
    assert any(
        line.startswith(f"  + $.keys[keyid={signing_key(1).keyid}]: added") for line in lines
    )
    assert "  ~ $.policy.threshold: 1 -> 2" in lines
    assert "rootKeys: unchanged" in lines and "sigstore: absent" in lines
    assert any(line.startswith("note: NEW is DSSE-signed") for line in lines)


def test_diff_json_is_machine_readable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old, new = _diff_files(tmp_path)
    result = run(capsys, "diff", old, new, "--json")
    assert result.code == 0, result
    report = json.loads(result.out)
    assert (report["oldFile"], report["newFile"]) == (str(old), str(new))
    assert report["signaturesVerified"] is False and report["new"]["signed"] is True
    assert report["sections"]["keys"] == "changed" and report["sections"]["policy"] == "changed"
    changes = {c["path"]: c for c in report["changes"]}
    assert changes["$.version"]["new"] == v2().version
    assert changes[f"$.keys[keyid={signing_key(1).keyid}]"]["new"]["label"] == "release"
    assert changes["$.policy.threshold"] == {
        "section": "policy",
        "path": "$.policy.threshold",
        "change": "changed",
        "old": 1,
        "new": 2,
    }


def test_diff_refuses_a_file_that_is_not_a_trust_root(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, _ = _diff_files(tmp_path)
    junk = tmp_path / "junk.json"
    junk.write_text('{"hello": 1}')
    result = run(capsys, "diff", old, junk)
    assert result.code == 2 and result.out == ""
    assert "junk.json" in result.err


def test_a_writer_that_does_not_lock_is_detected_not_overwritten(
    tmp_path: Path,
    keys: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dssesign.cli import signing

    signed = tmp_path / "v2.signed.json"
    write_signed(signed, v2(), root_key(0))
    meanwhile = write_signed(tmp_path / "other.json", v2(), root_key(2))
    load = signing.load_signers

    def load_while_someone_writes(args: argparse.Namespace) -> list[object]:
        signed.write_bytes(meanwhile)  # another holder's signature, written without the lock
        return list(load(args))

    monkeypatch.setattr(signing, "load_signers", load_while_someone_writes)
    result = run(capsys, "countersign", signed, "--key", keys["root1"])
    assert result.code == 1 and "changed by another process" in result.err
    assert signed.read_bytes() == meanwhile and leftovers(tmp_path) == []
