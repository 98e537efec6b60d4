"""`--audit-log` on attest/sign, `dssesign audit verify|show`, and the SIGKILL crash test."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from dssesign.audit import AuditLog, read_entries, verify_log
from dssesign.core.keys import load_public_key
from dssesign.profiles.software import load_key_file, write_keypair
from tests.conftest import signer_for
from tests.unit.cli.test_cli import ARTIFACT, ATTEST_SLSA, PASSWORD, dssesign

AUDIT_PASSWORD = "audit key passphrase 93b1"
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("audit-keys")
    write_keypair(signer_for("ed25519", 11), directory / "signing", password=PASSWORD.encode())
    write_keypair(signer_for("ecdsa-p256", 11), directory / "second", password=PASSWORD.encode())
    write_keypair(signer_for("ed25519", 12), directory / "audit", password=AUDIT_PASSWORD.encode())
    return {
        "signing": directory / "signing.key",
        "second": directory / "second.key",
        "audit": directory / "audit.key",
        "audit.pub": directory / "audit.pub",
    }


def _env(**extra: str) -> dict[str, str]:
    return {
        "DSSESIGN_KEY_PASSWORD": PASSWORD,
        "DSSESIGN_AUDIT_KEY_PASSWORD": AUDIT_PASSWORD,
        **extra,
    }


def _records(log: Path) -> list[dict[str, object]]:
    return [e.obj for e in read_entries(log) if e.obj and e.obj.get("type") == "record"]


def test_attest_with_an_audit_log_then_verify_and_show(
    keys: dict[str, Path], tmp_path: Path
) -> None:
    log = tmp_path / "audit.log"
    operation = "6f1c2a34-8d4e-4b1a-9c7e-0a1b2c3d4e5f"
    run = dssesign(
        "attest",
        *ATTEST_SLSA,
        "--key",
        keys["signing"],
        "--key",
        keys["second"],
        "--out",
        tmp_path / "env.json",
        "--audit-log",
        log,
        "--audit-key",
        keys["audit"],
        "--actor",
        "release-bot",
        "--tenant",
        "acme",
        "--operation-id",
        operation,
        env=_env(),
    )
    assert run.code == 0, run
    records = _records(log)
    assert len(records) == 2
    digest = hashlib.sha256(ARTIFACT.read_bytes()).hexdigest()
    for record in records:
        assert record["operationId"] == operation
        assert record["actor"] == "release-bot" and record["tenant"] == "acme"
        assert record["subjectDigests"] == [{"sha256": digest}]
        assert record["predicateType"] == "https://slsa.dev/provenance/v1"
        assert record["result"] == "success"
        assert record["keyRef"] == str(keys["signing"] if record is records[0] else keys["second"])

    verified = dssesign("audit", "verify", log, "--key", keys["audit.pub"])
    assert verified.code == 0, verified
    assert "audit log OK: 2 records" in verified.out
    as_json = dssesign("audit", "verify", log, "--key", keys["audit.pub"], "--json")
    report = json.loads(as_json.out)
    assert report["ok"] is True and report["anchoredSeq"] == 2

    keyid = load_key_file(keys["second"], password=PASSWORD.encode()).keyid
    shown = dssesign("audit", "show", log, "--keyid", keyid[:10], "--json")
    assert shown.code == 0, shown
    assert [r["keyid"] for r in json.loads(shown.out)] == [keyid]
    listed = dssesign("audit", "show", log, "--since", "2000-01-01T00:00:00Z")
    assert listed.code == 0 and len(listed.out.splitlines()) == 2
    later = dssesign("audit", "show", log, "--since", "2999-01-01T00:00:00Z")
    assert later.code == 0 and later.out == ""

    # No passphrase in any record, checkpoint or output of the run.
    text = log.read_text() + Path(f"{log}.checkpoint").read_text()
    for output in (run, verified, as_json, shown, listed):
        text += output.out + output.err
    assert PASSWORD not in text and AUDIT_PASSWORD not in text


def test_sign_takes_the_log_and_actor_from_the_environment(
    keys: dict[str, Path], tmp_path: Path
) -> None:
    log = tmp_path / "env.log"
    payload = tmp_path / "payload.txt"
    payload.write_text("hello")
    env = _env(
        DSSESIGN_AUDIT_LOG=str(log), DSSESIGN_ACTOR="ci", DSSESIGN_AUDIT_KEY=str(keys["audit"])
    )
    for _ in range(2):
        run = dssesign(
            "sign", "--payload", payload, "--payload-type", "text/plain", "--key", keys["signing"],
            "--out", tmp_path / "out.json", env=env,
        )  # fmt: skip
        assert run.code == 0, run
    records = _records(log)
    assert [r["seq"] for r in records] == [1, 2]
    assert {r["actor"] for r in records} == {"ci"}
    assert records[0]["operationId"] != records[1]["operationId"]
    assert records[0]["payloadSha256"] == hashlib.sha256(b"hello").hexdigest()
    assert verify_log(log, [load_public_key(keys["audit.pub"].read_bytes())]).ok


def test_a_key_that_fails_to_load_is_recorded(keys: dict[str, Path], tmp_path: Path) -> None:
    log = tmp_path / "fail.log"
    run = dssesign(
        "attest",
        *ATTEST_SLSA,
        "--key",
        keys["signing"],
        "--audit-log",
        log,
        env={"DSSESIGN_KEY_PASSWORD": "wrong passphrase xyz"},
    )
    assert run.code == 2, run
    (record,) = _records(log)
    assert record["result"] == "failure"
    assert str(record["errorCode"]).startswith("key-load:")
    assert "wrong passphrase xyz" not in log.read_text()


def test_audit_verify_reports_tampering(keys: dict[str, Path], tmp_path: Path) -> None:
    log = tmp_path / "t.log"
    with AuditLog(
        log, checkpoint_signer=load_key_file(keys["audit"], password=AUDIT_PASSWORD.encode())
    ) as audit:
        for i in range(4):
            audit.append({"event": "test", "n": i})
    lines = log.read_bytes().splitlines(keepends=True)
    del lines[1]
    log.write_bytes(b"".join(lines))
    run = dssesign("audit", "verify", log, "--key", keys["audit.pub"])
    assert run.code == 1
    assert "[deleted]" in run.err
    as_json = json.loads(dssesign("audit", "verify", log, "--key", keys["audit.pub"], "--json").out)
    assert as_json["ok"] is False
    assert "deleted" in {p["kind"] for p in as_json["problems"]}


def test_audit_key_without_a_log_is_refused(keys: dict[str, Path], tmp_path: Path) -> None:
    run = dssesign(
        "attest", *ATTEST_SLSA, "--key", keys["signing"], "--audit-key", keys["audit"], env=_env()
    )
    assert run.code == 2 and "--audit-key needs --audit-log" in run.err


# --- crash safety ----------------------------------------------------------------------------

WORKER = """
import sys
from dssesign.audit import AuditLog
from dssesign.sign.multisign import MultiProfileSigner, SigningContext
from dssesign.profiles.software import generate, load_key_file

log_path, audit_key, worker = sys.argv[1], sys.argv[2], sys.argv[3]
audit_signer = load_key_file(audit_key)
signer = generate("ed25519")
log = AuditLog(log_path, checkpoint_signer=audit_signer, checkpoint_every=7,
               durability="fsync" if int(worker) % 2 else "group", actor=f"worker-{worker}")
multi = MultiProfileSigner([signer], audit=log)
print("ready", flush=True)
n = 0
while True:
    multi.sign(b"payload %d" % n, "text/plain", context=SigningContext(actor=f"w{worker}"))
    n += 1
"""


def test_sigkill_four_concurrent_writers(tmp_path: Path) -> None:
    started = time.monotonic()
    audit_key = signer_for("ed25519", 13)
    write_keypair(audit_key, tmp_path / "audit", password=None)
    log = tmp_path / "crash.log"
    rng = random.Random(7)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSSESIGN_")}
    env["PYTHONPATH"] = str(ROOT)
    for _round in range(3):
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", WORKER, str(log), str(tmp_path / "audit.key"), str(i)],
                stdout=subprocess.PIPE,
                env=env,
            )
            for i in range(4)
        ]
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == b"ready"
        deadline = time.monotonic() + 0.2
        kills = sorted((rng.uniform(0.05, 0.6), index) for index in range(4))
        for delay, index in kills:
            time.sleep(max(0.0, deadline + delay - time.monotonic()))
            os.kill(procs[index].pid, signal.SIGKILL)
        for proc in procs:
            assert proc.wait(timeout=10) == -signal.SIGKILL
            if proc.stdout is not None:
                proc.stdout.close()

        # The survivor verifies up to its last complete record; no duplicate sequence numbers.
        report = verify_log(log, [audit_key.public_key])
        assert report.kinds() <= {"torn-final-line"}, report.problems
        assert report.valid_through == report.last_seq > 0
        seqs = [int(r["seq"]) for r in _records(log)]  # type: ignore[call-overload]
        assert not [s for s, c in Counter(seqs).items() if c > 1]
        assert seqs == list(range(1, len(seqs) + 1))

        # A restart continues the chain.
        with AuditLog(log, checkpoint_signer=audit_key) as restarted:
            restarted.append({"event": "restart"})
        after = verify_log(log, [audit_key.public_key])
        assert after.ok, after.problems
        assert after.last_seq > report.last_seq
    assert time.monotonic() - started < 30


def test_trust_root_changes_through_the_cli_helpers(
    keys: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import argparse

    from dssesign.cli.audit import add_trust_audit_options, record_trust_change
    from dssesign.trust import add_key, init_trust_root, save_trust_root

    monkeypatch.setenv("DSSESIGN_AUDIT_KEY_PASSWORD", AUDIT_PASSWORD)
    for name in ("DSSESIGN_AUDIT_LOG", "DSSESIGN_AUDIT_KEY", "DSSESIGN_ACTOR"):
        monkeypatch.delenv(name, raising=False)
    parser = argparse.ArgumentParser()
    add_trust_audit_options(parser)
    log = tmp_path / "trust.log"
    args = parser.parse_args(
        ["--audit-log", str(log), "--audit-key", str(keys["audit"]), "--actor", "ops"]
    )
    root_file = tmp_path / "root.json"
    old, new = signer_for("ed25519", 11), signer_for("ecdsa-p256", 11)
    root = add_key(init_trust_root(), old.public_key)
    save_trust_root(root_file, root)
    record_trust_change(
        args, "add-key", version=root.version, path=str(root_file), keyids=[old.keyid]
    )
    record_trust_change(
        args,
        "rotate",
        version=root.version + 1,
        path=str(root_file),
        rotation=(old.keyid, new.keyid),
        signer_reference=f"pkcs11:object=old?pin-value={PASSWORD}",
    )
    change, rotation = _records(log)
    assert change["event"] == "trust-root" and change["actor"] == "ops"
    assert change["trustRootSha256"] == hashlib.sha256(root_file.read_bytes()).hexdigest()
    assert rotation["event"] == "rotation" and rotation["keyRef"] == "pkcs11:object=old"
    assert PASSWORD not in log.read_text()
    assert verify_log(log, [load_public_key(keys["audit.pub"].read_bytes())]).ok
    # Without a log configured it does nothing.
    record_trust_change(parser.parse_args([]), "add-key", version=1, path=str(root_file))


def test_trust_root_changes_and_rotations_are_audited(tmp_path: Path) -> None:
    from dssesign.audit import read_records

    log = tmp_path / "audit.jsonl"
    env = {"DSSESIGN_AUDIT_LOG": str(log), "DSSESIGN_ACTOR": "release-admin"}
    old, new = tmp_path / "old", tmp_path / "new"
    write_keypair(signer_for("ed25519"), old, password=None)
    write_keypair(signer_for("ecdsa-p256"), new, password=None)
    root = tmp_path / "root.json"
    steps = [
        ("trust-root", "init", "--out", root),
        ("trust-root", "add-key", root, "--public-key", f"{old}.pub"),
        ("trust-root", "set-policy", root, "--threshold", "1"),
        ("trust-root", "rotate", root, "--from-key", f"{old}.key", "--to-public-key", f"{new}.pub"),
        ("trust-root", "revoke", root, "--keyid", signer_for("ed25519").keyid),
    ]
    for step in steps:
        run = dssesign(*step, env=env)
        assert run.code == 0, run
    records = read_records(log)
    assert [(r["event"], r.get("change")) for r in records] == [
        ("trust-root", "init"),
        ("trust-root", "add-key"),
        ("trust-root", "set-policy"),
        ("rotation", None),
        ("trust-root", "revoke"),
    ]
    assert {r["actor"] for r in records} == {"release-admin"}
    assert records[1]["keyids"] == [signer_for("ed25519").keyid]
    assert [r["trustRootVersion"] for r in records] == [1, 2, 3, 4, 5]
    report = verify_log(log, [])  # no audit key was set: a chain without signed checkpoints
    assert report.records == 5 and report.valid_through == 5
    assert report.kinds() <= {"no-checkpoint"}


def test_audit_commands_survive_a_hostile_log(keys: dict[str, Path], tmp_path: Path) -> None:
    """Through a real process (its stdout encoder): lines that are not I-JSON and fields with
    terminal controls give findings and escaped text, never a traceback or a forged row."""
    log = tmp_path / "hostile.log"
    signer = load_key_file(keys["audit"], password=AUDIT_PASSWORD.encode())
    with AuditLog(log, checkpoint_signer=signer) as audit:
        audit.append({"event": "test", "actor": "mallory\r\x1b[2K\u202eok", "n": 0})
        for i in range(1, 4):
            audit.append({"event": "test", "n": i})
    lines = log.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"n":1', b'"n":1e400')
    lines[2] = lines[2].replace(b'"n":2', b'"n":"\\ud800"')
    log.write_bytes(b"".join(lines))
    unsafe = ("\r", "\x1b", "\u202e", "\ud800")
    text = dssesign("audit", "verify", log, "--key", keys["audit.pub"])
    as_json = dssesign("audit", "verify", log, "--key", keys["audit.pub"], "--json")
    assert text.code == as_json.code == 1, (text, as_json)
    report = json.loads(as_json.out)
    assert [p["kind"] for p in report["problems"]] == ["malformed-record", "malformed-record"]
    assert text.err.count("[malformed-record]") == 2
    shown = dssesign("audit", "show", log)
    assert shown.code == 0 and len(shown.out.splitlines()) == 2  # records 1 and 4
    assert "mallory\\r\\x1b[2K\\u202eok" in shown.out
    assert "2 line(s)" in shown.err
    listed = dssesign("audit", "show", log, "--json")
    assert listed.code == 0 and [r["seq"] for r in json.loads(listed.out)] == [1, 4]
    for run in (text, as_json, shown, listed):
        assert "Traceback" not in run.err and "error:" not in run.err
        assert not any(char in run.out + run.err for char in unsafe)
