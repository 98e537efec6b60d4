"""`dssesign trust-root ...` under concurrency and failure: no lost update, no audit no change.

Real processes race on one trust root (six `add-key` at once; `revoke` against `add-key`), a
lock held by another process must be given up on after --timeout, and an audit log that cannot
record must leave every trust-root output (the file, `init --out`, `sign --out`) untouched.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dssesign.audit import read_records, verify_log
from dssesign.core.keys import PublicKey
from dssesign.profiles.software import write_keypair
from dssesign.trust import (
    add_key,
    dump_trust_root,
    init_trust_root,
    load_trust_root,
    read_trust_root,
    save_trust_root,
    set_root_keys,
    set_sigstore_root,
)
from tests.conftest import FIXTURES, signer_for
from tests.unit.audit.test_audit_lock import held_by_another_process
from tests.unit.cli.test_cli import ARTIFACT, ATTEST_SLSA, Run, dssesign

PRODUCTION = FIXTURES / "sigstore-conformance" / "production-trust-root" / "trusted_root.json"
ISSUER = "https://token.actions.githubusercontent.com"
_VERSION = re.compile(r"\(version (\d+)\)")


def _popen(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DSSESIGN_")}
    environment.update(env or {})
    return subprocess.Popen(
        [sys.executable, "-m", "dssesign", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )


def _finish(proc: subprocess.Popen[str]) -> Run:
    out, err = proc.communicate(timeout=120)
    return Run(proc.returncode, out, err)


def _version(run: Run) -> int:
    match = _VERSION.search(run.out)
    assert match, run
    return int(match.group(1))


def _keys(directory: Path, count: int, *, first: int = 100) -> list[tuple[Path, PublicKey]]:
    """`count` distinct Ed25519 key pairs written (unencrypted) into `directory`."""
    made = []
    for i in range(count):
        signer = signer_for("ed25519", first + i)
        prefix = directory / f"k{first + i}"
        write_keypair(signer, prefix, password=None)
        made.append((Path(f"{prefix}.pub"), signer.public_key))
    return made


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


# --- finding 1: no lost update ---------------------------------------------------------------


def test_six_parallel_add_keys_keep_every_key_with_distinct_versions(tmp_path: Path) -> None:
    keys = _keys(tmp_path, 6)
    audit_key = tmp_path / "audit"
    write_keypair(signer_for("ed25519", 99), audit_key, password=None)
    root = tmp_path / "root.json"
    log = tmp_path / "audit.log"
    env = {"DSSESIGN_AUDIT_LOG": str(log), "DSSESIGN_AUDIT_KEY": f"{audit_key}.key"}
    assert dssesign("trust-root", "init", "--out", root, env=env).code == 0

    procs = [_popen("trust-root", "add-key", root, "--public-key", pub, env=env) for pub, _ in keys]
    runs = [_finish(p) for p in procs]

    assert all(run.code == 0 for run in runs), runs
    assert sorted(_version(run) for run in runs) == [2, 3, 4, 5, 6, 7]
    final = read_trust_root(root, allow_incomplete=True)
    assert final.version == 7
    assert {k.keyid for k in final.keys} == {public.keyid for _, public in keys}
    # One record per change, each naming its own version, the last one this very file.
    records = read_records(log)
    assert [r["trustRootVersion"] for r in records] == [1, 2, 3, 4, 5, 6, 7]
    assert records[-1]["trustRootSha256"] == hashlib.sha256(root.read_bytes()).hexdigest()
    report = verify_log(log, [signer_for("ed25519", 99).public_key])
    assert report.ok, report.problems
    assert _leftovers(tmp_path) == []


def test_a_revoke_racing_an_add_key_is_never_lost(tmp_path: Path) -> None:
    rounds = 5
    keys = _keys(tmp_path, rounds + 1)
    first_pub, first_key = keys[0]
    root = tmp_path / "root.json"
    save_trust_root(root, add_key(init_trust_root(), first_key))
    expected_version = 2
    for round_ in range(rounds):
        # Revoke the key the previous round added (a compromised key) while another is added.
        revoked = keys[round_][1].keyid
        added_pub, added = keys[round_ + 1]
        racers = [
            _popen("trust-root", "revoke", root, "--keyid", revoked, "--reason", "compromised"),
            _popen("trust-root", "add-key", root, "--public-key", added_pub),
        ]
        runs = [_finish(p) for p in racers]
        assert all(run.code == 0 for run in runs), (round_, runs)
        versions = sorted(_version(run) for run in runs)
        assert versions == [expected_version + 1, expected_version + 2], (round_, runs)
        expected_version += 2
        current = read_trust_root(root, allow_incomplete=True)
        assert current.version == expected_version
        by_id = {k.keyid: k for k in current.keys}
        assert by_id[revoked].revocation is not None, f"round {round_}: the revocation was lost"
        assert added.keyid in by_id, f"round {round_}: the added key was lost"
    assert first_pub.exists()


# --- bounded waits ---------------------------------------------------------------------------


def test_a_held_trust_root_lock_is_given_up_on_after_the_timeout(tmp_path: Path) -> None:
    ((pub, _),) = _keys(tmp_path, 1)
    root = tmp_path / "root.json"
    log = tmp_path / "audit.log"
    save_trust_root(root, init_trust_root())
    before = root.read_bytes()
    with held_by_another_process(Path(f"{root}.lock")):
        started = time.monotonic()
        run = dssesign(
            "trust-root",
            "add-key",
            root,
            "--public-key",
            pub,
            "--audit-log",
            log,
            "--timeout",
            "0.5",
        )
        elapsed = time.monotonic() - started
    assert run.code == 1, run
    assert "another process has held its lock" in run.err and "nothing was changed" in run.err
    assert "Traceback" not in run.err
    assert elapsed < 20
    assert root.read_bytes() == before
    assert read_records(log) == []  # waited for nothing, recorded nothing
    # Released: the same command goes through.
    assert dssesign("trust-root", "add-key", root, "--public-key", pub).code == 0


def test_a_held_audit_log_lock_is_given_up_on_and_changes_nothing(tmp_path: Path) -> None:
    ((pub, _),) = _keys(tmp_path, 1)
    root = tmp_path / "root.json"
    log = tmp_path / "audit.log"
    save_trust_root(root, init_trust_root())
    before = root.read_bytes()
    with held_by_another_process(log):
        run = dssesign(
            "trust-root",
            "add-key",
            root,
            "--public-key",
            pub,
            "--audit-log",
            log,
            "--timeout",
            "0.5",
        )
    assert run.code == 1, run
    assert "audit log" in run.err and "held its lock for more than 0.5s" in run.err
    assert root.read_bytes() == before
    assert _leftovers(tmp_path) == []


def test_attest_obeys_timeout_on_a_held_audit_log_lock(tmp_path: Path) -> None:
    key = tmp_path / "signing"
    write_keypair(signer_for("ed25519", 98), key, password=None)
    log = tmp_path / "audit.log"
    out = tmp_path / "env.json"
    with held_by_another_process(log):
        started = time.monotonic()
        run = dssesign(
            "attest",
            *ATTEST_SLSA,
            "--key",
            f"{key}.key",
            "--out",
            out,
            "--audit-log",
            log,
            "--timeout",
            "0.5",
        )
        elapsed = time.monotonic() - started
    assert run.code == 1, run
    assert "held its lock" in run.err
    assert elapsed < 30
    assert not out.exists()
    assert ARTIFACT.exists()


@pytest.mark.parametrize("bad", ["-1", "nan", "inf", "soon"])
def test_a_bad_timeout_is_a_usage_error(tmp_path: Path, bad: str) -> None:
    root = tmp_path / "root.json"
    run = dssesign("trust-root", "init", "--out", root, "--timeout", bad)
    assert run.code == 2, run
    assert "--timeout" in run.err
    assert not root.exists()


# --- finding 2: no audit, no change, for every trust-root operation ---------------------------


class Setup:
    """A complete trust root (a signing key, a root key, a Sigstore trusted root) and the files
    every trust-root command of the table below needs."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.root = directory / "root.json"
        old = signer_for("ed25519", 120)
        root_key = signer_for("ed25519", 121)
        new = signer_for("ecdsa-p256", 122)
        for name, signer in (("old", old), ("rootkey", root_key), ("new", new)):
            write_keypair(signer, directory / name, password=None)
        self.old, self.root_key, self.new = old, root_key, new
        trusted = json.loads(PRODUCTION.read_bytes())
        document = set_sigstore_root(
            set_root_keys(
                add_key(init_trust_root(), old.public_key), [root_key.public_key], threshold=1
            ),
            trusted,
        )
        save_trust_root(self.root, document)
        self.audit_key = directory / "auditkey"
        write_keypair(signer_for("ed25519", 123), self.audit_key, password=None)


#: name -> (argv after `trust-root`, the file the command would create, or None)
COMMANDS: dict[str, Callable[[Setup], tuple[list[str | Path], Path | None]]] = {
    "init": lambda s: (["init", "--out", s.dir / "fresh.json"], s.dir / "fresh.json"),
    "add-key": lambda s: (["add-key", s.root, "--public-key", s.dir / "new.pub"], None),
    "revoke": lambda s: (["revoke", s.root, "--keyid", s.old.keyid], None),
    "set-policy": lambda s: (["set-policy", s.root, "--threshold", "1"], None),
    "rotate": lambda s: (
        ["rotate", s.root, "--from-key", s.dir / "old.key", "--to-public-key", s.dir / "new.pub"],
        None,
    ),
    "set-root-keys": lambda s: (["set-root-keys", s.root, "--public-key", s.dir / "new.pub"], None),
    "set-sigstore-root": lambda s: (
        ["set-sigstore-root", s.root, "--trusted-root", PRODUCTION],
        None,
    ),
    "add-identity": lambda s: (
        ["add-identity", s.root, "--issuer", ISSUER, "--subject", "x"],
        None,
    ),
    "sign": lambda s: (
        ["sign", s.root, "--key", s.dir / "rootkey.key", "--out", s.dir / "signed.json"],
        s.dir / "signed.json",
    ),
}


def _corrupt_tail(setup: Setup) -> tuple[Path, list[str | Path]]:
    """A log that opens fine but takes no record: it ends in a line that is not a record."""
    log = setup.dir / "audit.log"
    log.write_bytes(b'{"not": "a record"\n')
    return log, ["--audit-log", log]


def _checkpoint_is_a_directory(setup: Setup) -> tuple[Path, list[str | Path]]:
    """A log whose signed checkpoint could never be written: refused before any work."""
    log = setup.dir / "audit.log"
    log.write_bytes(b"")
    Path(f"{log}.checkpoint").mkdir()
    return log, ["--audit-log", log, "--audit-key", f"{setup.audit_key}.key"]


BROKEN_LOGS = {
    "corrupt-tail": _corrupt_tail,
    "checkpoint-is-a-directory": _checkpoint_is_a_directory,
}


@pytest.mark.parametrize("broken", sorted(BROKEN_LOGS))
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_no_audit_no_change(tmp_path: Path, command: str, broken: str) -> None:
    setup = Setup(tmp_path)
    argv, created = COMMANDS[command](setup)
    log, audit_options = BROKEN_LOGS[broken](setup)
    before = setup.root.read_bytes()
    log_before = log.read_bytes()

    run = dssesign("trust-root", *argv, *audit_options)

    assert run.code == 1, run
    assert "audit" in run.err and "Traceback" not in run.err
    assert setup.root.read_bytes() == before, "the trust root changed with no audit record"
    assert created is None or not created.exists(), f"{created} was written with no audit record"
    assert log.read_bytes() == log_before
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_operation_is_recorded_before_it_is_published(tmp_path: Path, command: str) -> None:
    setup = Setup(tmp_path)
    argv, created = COMMANDS[command](setup)
    log = tmp_path / "audit.log"
    before = setup.root.read_bytes()

    run = dssesign(
        "trust-root",
        *argv,
        "--audit-log",
        log,
        "--audit-key",
        f"{setup.audit_key}.key",
        "--actor",
        "ops",
    )

    assert run.code == 0, run
    (record,) = read_records(log)
    assert record["actor"] == "ops" and record["result"] == "success"
    report = verify_log(log, [signer_for("ed25519", 123).public_key])
    assert report.ok and report.anchored_seq == 1, report.problems
    if command == "rotate":
        assert record["event"] == "rotation"
        assert (record["fromKeyid"], record["toKeyid"]) == (setup.old.keyid, setup.new.keyid)
        assert record["trustRootVersion"] == read_trust_root(setup.root).version
    elif command == "sign":
        assert record["event"] == "trust-root" and record["change"] == "sign"
        assert record["keyids"] == [setup.root_key.keyid]
        assert record["trustRootVersion"] == load_trust_root(before).version
        assert record["trustRootSha256"] == hashlib.sha256(before).hexdigest()
        assert created is not None and created.exists()
    else:
        assert record["event"] == "trust-root" and record["change"] == command
        written = created if command == "init" else setup.root
        assert written is not None
        data = written.read_bytes()
        assert record["trustRootSha256"] == hashlib.sha256(data).hexdigest()
        assert record["trustRootVersion"] == load_trust_root(data, allow_incomplete=True).version


def test_trust_root_sign_to_stdout_is_recorded(tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    log = tmp_path / "audit.log"
    run = dssesign(
        "trust-root", "sign", setup.root, "--key", tmp_path / "rootkey.key", "--audit-log", log
    )
    assert run.code == 0, run
    assert json.loads(run.out)["payloadType"].startswith("application/vnd.dssesign.trust-root")
    (record,) = read_records(log)
    assert record["change"] == "sign"


# --- in process: failures after the record, and a writer that does not lock ------------------


def _main(argv: list[str | Path]) -> int:
    from dssesign.cli import main

    return main([str(a) for a in argv])


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("DSSESIGN_"):
            monkeypatch.delenv(name)


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize("command", ["add-key", "rotate", "sign"])
def test_a_publish_that_fails_after_the_record_is_recorded_too(
    tmp_path: Path, command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dssesign._internal.fileio import OutputSet
    from dssesign.errors import InputError

    setup = Setup(tmp_path)
    argv, created = COMMANDS[command](setup)
    log = tmp_path / "audit.log"
    before = setup.root.read_bytes()

    def refuse(self: OutputSet) -> None:
        raise InputError("cannot write: simulated rename failure")

    monkeypatch.setattr(OutputSet, "publish", refuse)
    assert _main(["trust-root", *argv, "--audit-log", log]) == 2

    assert setup.root.read_bytes() == before
    assert created is None or not created.exists()
    success, failure = read_records(log)
    assert success["result"] == "success" and failure["result"] == "failure"
    assert failure["errorCode"] == "not-published:InputError"
    assert failure["operationId"] == success["operationId"]
    assert failure["event"] == success["event"]
    assert _leftovers(tmp_path) == []


@pytest.mark.usefixtures("clean_env")
def test_a_checkpoint_that_fails_after_the_record_publishes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dssesign.audit import AuditError, AuditLog

    setup = Setup(tmp_path)
    log = tmp_path / "audit.log"
    before = setup.root.read_bytes()

    def offline(self: AuditLog) -> None:
        raise AuditError("signing the audit checkpoint failed (RuntimeError)")

    monkeypatch.setattr(AuditLog, "commit", offline)
    argv, _ = COMMANDS["revoke"](setup)
    assert _main(["trust-root", *argv, "--audit-log", log]) == 1
    assert setup.root.read_bytes() == before
    assert [r["result"] for r in read_records(log)] == ["success", "failure"]


@pytest.mark.usefixtures("clean_env")
def test_a_writer_that_does_not_lock_is_detected_not_overwritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from dssesign import trust as trustroot

    setup = Setup(tmp_path)
    log = tmp_path / "audit.log"
    theirs = add_key(read_trust_root(setup.root, allow_incomplete=True), setup.new.public_key)
    real_revoke = trustroot.revoke_key

    def revoke_while_someone_writes(*args: object, **kwargs: object) -> object:
        save_trust_root(setup.root, theirs)  # an old dssesign, or a hand edit, without the lock
        return real_revoke(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(trustroot, "revoke_key", revoke_while_someone_writes)
    argv, _ = COMMANDS["revoke"](setup)
    assert _main(["trust-root", *argv, "--audit-log", log]) == 1
    assert "changed by another process" in capsys.readouterr().err
    assert setup.root.read_bytes() == dump_trust_root(theirs)  # kept, not lost
    assert read_records(log) == []
