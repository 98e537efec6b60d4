"""The audit log: records, the chain, checkpoints, durability, recovery and every tamper finding."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dssesign.audit import (
    GENESIS,
    AuditError,
    AuditLog,
    read_records,
    redact_reference,
    verify_log,
)
from dssesign.audit import records as audit_records
from dssesign.audit import writer as audit_writer
from dssesign.core.canonical import canonicalize
from dssesign.errors import CanonicalizationError, SigningError
from dssesign.profiles.software import load_key_file, write_keypair
from dssesign.sign.multisign import MultiProfileSigner, SigningContext
from dssesign.sign.signer import SignerOptions, load_signer
from tests.conftest import DelegatingSigner, signer_for

AUDIT_KEY = signer_for("ed25519", 7)
AUDIT_PUB = AUDIT_KEY.public_key
PASSPHRASE = b"audit-test passphrase 7f3c9a"
PIN = "pin-4711-secret"
SUBJECT = {"sha256": "ab" * 32}
PREDICATE = "https://slsa.dev/provenance/v1"


class _Failing(DelegatingSigner):
    """A signer whose backend throws, with a secret in its reference and its error text."""

    in_process = True

    def __init__(self) -> None:
        super().__init__(
            signer_for("ecdsa-p256", 3),
            f"pkcs11:token=ci;object=k1;pin-value={PIN}?module-path=/x.so&pin-value={PIN}",
        )

    def sign(self, data: bytes) -> bytes:
        raise RuntimeError(f"token refused PIN {PIN}")


def _write(path: Path, count: int, *, every: int = 1000, **options: Any) -> list[str]:
    hashes = []
    with AuditLog(path, checkpoint_signer=AUDIT_KEY, checkpoint_every=every, **options) as log:
        for i in range(count):
            hashes.append(log.append({"event": "test", "n": i}))
    return hashes


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in _lines(path) if b'"type":"record"' in line]


def _rewrite(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(lines))


def _record_line_index(path: Path, seq: int) -> int:
    for index, line in enumerate(_lines(path)):
        obj = json.loads(line)
        if obj["type"] == "record" and obj["seq"] == seq:
            return index
    raise AssertionError(seq)


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "audit.log"


# --- records ---------------------------------------------------------------------------------


def test_signing_records_carry_the_operation_and_chain(log_path: Path) -> None:
    context = SigningContext(
        actor="alice", tenant="acme", subject_digests=(SUBJECT,), predicate_type=PREDICATE
    )
    signers = [signer_for("ed25519"), signer_for("ecdsa-p256")]
    with AuditLog(log_path, checkpoint_signer=AUDIT_KEY) as log:
        MultiProfileSigner(signers, audit=log).sign(b"payload", "text/plain", context=context)
    first, second = _records(log_path)
    assert first["seq"] == 1 and second["seq"] == 2
    assert first["prev"] == GENESIS
    assert second["prev"] == audit_records._hash(first)
    for record, signer in zip((first, second), signers, strict=True):
        assert record["event"] == "sign"
        assert record["operationId"] == context.operation_id
        assert record["actor"] == "alice" and record["tenant"] == "acme"
        assert record["keyid"] == signer.keyid
        assert record["algorithm"] == signer.algorithm.name
        assert record["profile"] == "software"
        assert record["payloadType"] == "text/plain"
        assert record["payloadSha256"] == (
            "239f59ed55e737c77147cf55ad0c1b030b6d7ee748a7426952f9b852d5a935e5"
        )
        assert record["subjectDigests"] == [SUBJECT]
        assert record["predicateType"] == PREDICATE
        assert record["result"] == "success"
        assert record["time"].endswith("Z")
    assert verify_log(log_path, [AUDIT_PUB]).ok


def test_record_hash_is_sha256_of_rfc8785(log_path: Path) -> None:
    hashes = _write(log_path, 2)
    records = _records(log_path)
    assert hashes[0] == hashlib.sha256(canonicalize(records[0])).hexdigest()
    assert records[1]["prev"] == hashes[0]


def test_every_line_is_rfc8785(log_path: Path) -> None:
    with AuditLog(log_path, checkpoint_signer=AUDIT_KEY) as log:
        note = 'ctl \x00\x1f\x7f \u2028 é 😀 "q" \\'
        log.append({"event": "t", "note": note, "n": -(2**53 - 1)})
        log.append({"event": "t", "ratio": 1e-7, "big": 2**40})  # takes canonicalize
        with pytest.raises(CanonicalizationError):
            log.append({"event": "t", "big": 2**53})
        log.append({"event": "t", "nested": [{"a": ["b", {"c": 1}]}], "ok": True})
    for line in _lines(log_path):
        assert line[:-1] == canonicalize(json.loads(line))
    assert verify_log(log_path, [AUDIT_PUB]).ok


def test_operation_id_is_shared_within_a_call_and_fresh_per_call(log_path: Path) -> None:
    with AuditLog(log_path, actor="bob") as log:
        multi = MultiProfileSigner([signer_for("ed25519"), signer_for("ecdsa-p256")], audit=log)
        multi.sign(b"a", "t")
        multi.sign(b"b", "t")
    ids = [r["operationId"] for r in _records(log_path)]
    assert ids[0] == ids[1] != ids[2] == ids[3]
    assert all(r["actor"] == "bob" for r in _records(log_path))


def test_default_actor_comes_from_the_environment(
    log_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DSSESIGN_ACTOR", "ci-bot")
    with AuditLog(log_path, tenant="t1") as log:
        MultiProfileSigner([signer_for("ed25519")], audit=log).sign(b"a", "t")
    (record,) = _records(log_path)
    assert record["actor"] == "ci-bot" and record["tenant"] == "t1"


def test_failures_are_recorded_with_a_code_and_no_secret(log_path: Path) -> None:
    with AuditLog(log_path) as log:
        multi = MultiProfileSigner([signer_for("ed25519"), _Failing()], threshold=1, audit=log)
        multi.sign(b"a", "t")
        with pytest.raises(SigningError):
            MultiProfileSigner([_Failing()], audit=log).sign(b"a", "t")
    records = _records(log_path)
    assert [r["result"] for r in records] == ["success", "failure", "failure"]
    assert records[1]["errorCode"] == "exception:RuntimeError"
    assert records[1]["profile"] == "pkcs11"
    assert records[1]["keyRef"] == "pkcs11:token=ci;object=k1?module-path=/x.so"
    assert PIN not in log_path.read_text()


def test_an_audit_log_that_cannot_write_stops_the_signature(log_path: Path) -> None:
    log = AuditLog(log_path)
    log.close()
    with pytest.raises(SigningError, match="hook failed"):
        MultiProfileSigner([signer_for("ed25519")], audit=log).sign(b"a", "t")


def test_trust_root_and_rotation_records(log_path: Path) -> None:
    old, new = signer_for("ed25519", 1), signer_for("ed25519", 2)
    with AuditLog(log_path, actor="ops", checkpoint_signer=AUDIT_KEY) as log:
        log.record_trust_root_change("add-key", version=2, keyids=[old.keyid])
        log.record_rotation(
            from_keyid=old.keyid,
            to_keyid=new.keyid,
            version=3,
            signer_reference=f"pkcs11:object=old?pin-source=/run/pin&slot-id=1&pin-value={PIN}",
        )
    change, rotation = _records(log_path)
    assert change["event"] == "trust-root" and change["change"] == "add-key"
    assert change["keyids"] == [old.keyid] and change["actor"] == "ops"
    assert rotation["event"] == "rotation" and rotation["toKeyid"] == new.keyid
    assert rotation["keyRef"] == "pkcs11:object=old?slot-id=1"
    assert PIN not in log_path.read_text()
    assert verify_log(log_path, [AUDIT_PUB]).ok


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("key.pem", "key.pem"),
        ("file:///keys/a.pem", "file:///keys/a.pem"),
        ("pkcs11:token=t;object=k?pin-value=1234", "pkcs11:token=t;object=k"),
        ("pkcs11:token=t;pin-value=1234;object=k", "pkcs11:token=t;object=k"),
        (
            "pkcs11:object=k?module-path=/usr/lib/softhsm.so&pin-source=file:/p",
            "pkcs11:object=k?module-path=/usr/lib/softhsm.so",
        ),
        (
            "awskms://user:pw@host:4566/alias/k?token=abc&region=eu",
            "awskms://host:4566/alias/k?region=eu",
        ),
        ("hashivault://key?x-vault-token=s.abc", "hashivault://key"),
        ("keyless", "keyless"),
        ("hashivault://u:p@[::1]:bad/k", "hashivault://[::1]:bad/k"),
        ("C:\\keys\\a.pem", "C:\\keys\\a.pem"),
    ],
)
def test_redact_reference(reference: str, expected: str) -> None:
    assert redact_reference(reference) == expected


def test_no_record_holds_a_passphrase_pin_or_payload(tmp_path: Path) -> None:
    """Sign through every path the suite uses with secrets; scan every record for them."""
    from dssesign import metrics

    key = signer_for("ecdsa-p384", 5)
    write_keypair(key, tmp_path / "enc", password=PASSPHRASE)
    loaded = load_signer(str(tmp_path / "enc.key"), SignerOptions(password=PASSPHRASE))
    assert load_key_file(tmp_path / "enc.key", password=PASSPHRASE).keyid == key.keyid
    payload = b'{"secret-payload-marker": "do not log me"}'
    log_lines: list[str] = []
    log_path = tmp_path / "audit.log"
    with AuditLog(log_path, checkpoint_signer=AUDIT_KEY, checkpoint_every=2) as log:
        multi = MultiProfileSigner(
            [loaded, _Failing()],
            threshold=1,
            audit=log,
            hooks=[metrics.signing_hook(emit=log_lines.append)],
        )
        for _ in range(3):
            multi.sign(payload, "application/json")
    text = log_path.read_text() + (tmp_path / "audit.log.checkpoint").read_text()
    text += "\n".join(log_lines)
    assert len(log_lines) == 6
    for secret in (PASSPHRASE.decode(), PIN, "secret-payload-marker", "do not log me"):
        assert secret not in text
    for record in _records(log_path):
        assert set(record) <= {
            "type", "seq", "time", "prev", "event", "operationId", "actor", "tenant", "profile",
            "keyRef", "keyid", "algorithm", "payloadType", "payloadSha256", "subjectDigests",
            "predicateType", "result", "errorCode", "durationUs", "signatureSha256",
        }  # fmt: skip


# --- durability, checkpoints and restart -----------------------------------------------------


def test_fsync_per_record_and_group_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(audit_writer, "_fdatasync", calls.append)
    _write(tmp_path / "a.log", 20, durability="fsync")
    per_record = len(calls)
    calls.clear()
    _write(tmp_path / "b.log", 20, durability="group", group_size=8, group_interval=3600)
    grouped = len(calls)
    assert per_record >= 20
    assert grouped <= 5  # two full batches, the close, the checkpoint
    assert verify_log(tmp_path / "b.log", [AUDIT_PUB]).ok


def test_a_failed_background_sync_fails_the_next_append(
    log_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(audit_writer, "_fdatasync", broken)
    log = AuditLog(log_path, durability="group", group_size=1, group_interval=0.01)
    multi = MultiProfileSigner([signer_for("ed25519")], audit=log)
    multi.sign(b"a", "t")  # written; its sync fails in the background
    deadline = time.monotonic() + 5
    while log._flush_error is None and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(SigningError, match="Input/output error"):
        multi.sign(b"b", "t")
    monkeypatch.setattr(audit_writer, "_fdatasync", lambda fd: None)
    with pytest.raises(AuditError, match="Input/output error"):
        log.close()


class _RemoteSigner(DelegatingSigner):
    """A non-software profile (HSM, KMS): only the Signer protocol, out of process."""

    in_process = False

    def __init__(self) -> None:
        super().__init__(signer_for("ecdsa-p384", 9), "awskms:///alias/audit?region=eu-west-1")


def test_checkpoints_through_any_signing_profile(log_path: Path) -> None:
    remote = _RemoteSigner()
    with AuditLog(log_path, checkpoint_signer=remote, checkpoint_every=2) as log:
        for i in range(3):
            log.append({"event": "test", "n": i})
    report = verify_log(log_path, [remote.public_key])
    assert report.ok and report.checkpoints == 2
    assert not verify_log(log_path, [AUDIT_PUB]).ok


def test_checkpoints_every_n_and_on_close(log_path: Path) -> None:
    _write(log_path, 7, every=3)
    kinds = [json.loads(line)["type"] for line in _lines(log_path)]
    assert kinds.count("checkpoint") == 3  # after 3, after 6, on close at 7
    report = verify_log(log_path, [AUDIT_PUB])
    assert report.ok and report.checkpoints == 3 and report.anchored_seq == 7
    sidecar = json.loads((log_path.parent / "audit.log.checkpoint").read_text())
    assert sidecar["seq"] == 7


def test_restart_continues_the_chain(log_path: Path) -> None:
    first = _write(log_path, 3)
    _write(log_path, 2)
    records = _records(log_path)
    assert [r["seq"] for r in records] == [1, 2, 3, 4, 5]
    assert records[3]["prev"] == first[-1]
    assert verify_log(log_path, [AUDIT_PUB]).ok


def test_two_writers_in_one_process_interleave_into_one_chain(log_path: Path) -> None:
    a = AuditLog(log_path, checkpoint_signer=AUDIT_KEY)
    b = AuditLog(log_path, checkpoint_signer=AUDIT_KEY)
    for i in range(5):
        a.append({"event": "test", "n": i})
        b.append({"event": "test", "n": i})
    a.close()
    b.close()
    assert [r["seq"] for r in _records(log_path)] == list(range(1, 11))
    assert verify_log(log_path, [AUDIT_PUB]).ok


def test_threads_share_one_writer(log_path: Path) -> None:
    with AuditLog(log_path, checkpoint_signer=AUDIT_KEY, durability="group") as log:
        threads = [
            threading.Thread(target=lambda: [log.append({"event": "t"}) for _ in range(50)])
            for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    report = verify_log(log_path, [AUDIT_PUB])
    assert report.ok and report.last_seq == 200


def test_a_torn_final_line_is_reported_then_recovered(log_path: Path) -> None:
    _write(log_path, 3)
    with log_path.open("ab") as handle:
        handle.write(b'{"type":"record","seq":4,"time":"2026-')
    report = verify_log(log_path, [AUDIT_PUB])
    assert report.kinds() == {"torn-final-line"}
    assert report.last_seq == 3 and report.valid_through == 3
    _write(log_path, 1)
    records = _records(log_path)
    assert records[3]["event"] == "recovery" and records[3]["tornBytes"] == 38
    assert records[4]["seq"] == 5
    assert verify_log(log_path, [AUDIT_PUB]).ok


def test_read_records_filters(log_path: Path) -> None:
    with AuditLog(log_path) as log:
        MultiProfileSigner([signer_for("ed25519"), signer_for("ecdsa-p256")], audit=log).sign(
            b"a", "t"
        )
    ed = signer_for("ed25519").keyid
    assert [r["keyid"] for r in read_records(log_path, keyid=ed[:12])] == [ed]
    future = datetime.now(UTC) + timedelta(hours=1)
    assert read_records(log_path, since=future) == []
    assert len(read_records(log_path, since=datetime.now(UTC) - timedelta(hours=1))) == 2


def test_bad_options_are_refused(log_path: Path) -> None:
    with pytest.raises(AuditError):
        AuditLog(log_path, durability="never")  # type: ignore[arg-type]
    with pytest.raises(AuditError):
        AuditLog(log_path, checkpoint_every=0)
    with AuditLog(log_path) as log, pytest.raises(AuditError, match="set by the log"):
        log.append({"seq": 9})


# --- tampering -------------------------------------------------------------------------------


@pytest.fixture
def written(log_path: Path) -> Iterator[Path]:
    _write(log_path, 6, every=1000)  # one checkpoint, at 6, on close
    assert verify_log(log_path, [AUDIT_PUB]).ok
    yield log_path


def test_an_edited_record_is_found(written: Path) -> None:
    lines = _lines(written)
    index = _record_line_index(written, 3)
    lines[index] = lines[index].replace(b'"n":2', b'"n":9')
    _rewrite(written, lines)
    report = verify_log(written, [AUDIT_PUB])
    assert "edited" in report.kinds()
    assert [p.seq for p in report.problems if p.kind == "edited"] == [3]
    assert report.valid_through == 2


def test_a_deleted_record_is_found(written: Path) -> None:
    lines = _lines(written)
    del lines[_record_line_index(written, 4)]
    _rewrite(written, lines)
    report = verify_log(written, [AUDIT_PUB])
    assert "deleted" in report.kinds()
    assert [p.seq for p in report.problems if p.kind == "deleted"] == [4]


def test_an_inserted_record_is_found(written: Path) -> None:
    lines = _lines(written)
    genuine = json.loads(lines[_record_line_index(written, 3)])
    forged = {**genuine, "n": 99}  # same seq and prev: chains from record 2, nothing chains to it
    lines.insert(_record_line_index(written, 3), canonicalize(forged) + b"\n")
    _rewrite(written, lines)
    report = verify_log(written, [AUDIT_PUB])
    assert report.kinds() == {"inserted"}
    (problem,) = report.problems
    assert problem.seq == 3 and problem.line == 3


def test_a_replayed_record_is_found(written: Path) -> None:
    lines = _lines(written)
    lines.insert(4, lines[_record_line_index(written, 2)])
    _rewrite(written, lines)
    assert "inserted" in verify_log(written, [AUDIT_PUB]).kinds()


def test_a_forged_huge_sequence_number_is_cheap_to_report(written: Path) -> None:
    lines = _lines(written)
    forged = {**json.loads(lines[_record_line_index(written, 3)]), "seq": 10**15}
    lines.insert(_record_line_index(written, 3), canonicalize(forged) + b"\n")
    _rewrite(written, lines)
    report = verify_log(written, [AUDIT_PUB])
    assert {"deleted", "reordered"} <= report.kinds()
    assert report.valid_through == 2


def test_reordered_records_are_found(written: Path) -> None:
    lines = _lines(written)
    i, j = _record_line_index(written, 3), _record_line_index(written, 4)
    lines[i], lines[j] = lines[j], lines[i]
    _rewrite(written, lines)
    report = verify_log(written, [AUDIT_PUB])
    assert report.kinds() == {"reordered"}


def test_a_rewritten_chain_fails_the_checkpoint(written: Path) -> None:
    # Recompute every hash after an edit, as an attacker without the audit key can.
    records = _records(written)
    records[1]["n"] = 42
    prev = GENESIS
    out = []
    for record in records:
        record["prev"] = prev
        prev = audit_records._hash(record)
        out.append(canonicalize(record) + b"\n")
    checkpoints = [line for line in _lines(written) if b'"type":"checkpoint"' in line]
    _rewrite(written, out + checkpoints)
    report = verify_log(written, [AUDIT_PUB])
    assert report.kinds() == {"checkpoint-mismatch"}


def test_truncation_behind_the_last_checkpoint_is_found(written: Path) -> None:
    lines = _lines(written)
    _rewrite(written, lines[: _record_line_index(written, 4)])  # cut records 4..6 and the cp
    report = verify_log(written, [AUDIT_PUB])
    assert "truncated" in report.kinds()  # the sidecar still has checkpoint 6
    assert report.last_seq == 3
    # Without the sidecar, only a checkpoint kept elsewhere can tell.
    sidecar = written.parent / "audit.log.checkpoint"
    kept = sidecar.read_bytes()
    sidecar.unlink()
    assert "no-checkpoint" in verify_log(written, [AUDIT_PUB]).kinds()
    assert "truncated" in verify_log(written, [AUDIT_PUB], checkpoint=kept).kinds()


def test_a_writer_refuses_to_extend_a_truncated_log(written: Path) -> None:
    lines = _lines(written)
    _rewrite(written, lines[: _record_line_index(written, 4)])
    with pytest.raises(AuditError, match="truncated or rewritten"), AuditLog(written) as log:
        log.append({"event": "test"})
    assert "truncated" in verify_log(written, [AUDIT_PUB]).kinds()  # the evidence is intact


def test_a_bad_checkpoint_signature_is_found(written: Path) -> None:
    lines = _lines(written)
    index = next(i for i, line in enumerate(lines) if b'"type":"checkpoint"' in line)
    checkpoint = json.loads(lines[index])
    checkpoint["time"] = "2000-01-01T00:00:00.000000Z"
    lines[index] = canonicalize(checkpoint) + b"\n"
    _rewrite(written, lines)
    report = verify_log(written, [AUDIT_PUB], use_sidecar=False)
    assert report.kinds() == {"bad-checkpoint-signature"}


def test_a_checkpoint_by_another_key_does_not_count(written: Path) -> None:
    report = verify_log(written, [signer_for("ed25519", 8).public_key])
    assert "unknown-checkpoint-key" in report.kinds()
    assert not report.ok


def test_a_corrupt_line_in_the_middle_is_found(written: Path) -> None:
    lines = _lines(written)
    lines[2] = b"not json\n"
    _rewrite(written, lines)
    report = verify_log(written, [AUDIT_PUB])
    assert "corrupt-line" in report.kinds()


def test_a_writer_refuses_a_log_ending_in_garbage(log_path: Path) -> None:
    _write(log_path, 2)
    with log_path.open("ab") as handle:
        handle.write(b"garbage\n")
    with pytest.raises(AuditError, match="corrupt"), AuditLog(log_path) as log:
        log.append({"event": "test"})


# --- metrics and log lines -------------------------------------------------------------------


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Any:
    from prometheus_client import CollectorRegistry

    from dssesign import metrics

    monkeypatch.setattr(metrics, "_metrics", None)
    monkeypatch.setattr(metrics, "_tried", False)
    fresh = CollectorRegistry()
    assert metrics.configure(fresh)
    return fresh


def test_signing_metrics(registry: Any) -> None:
    from dssesign import metrics

    lines: list[str] = []
    multi = MultiProfileSigner(
        [signer_for("ed25519"), _Failing()],
        threshold=1,
        hooks=[metrics.signing_hook(emit=lines.append)],
    )
    multi.sign(b"a", "t")
    multi.sign(b"b", "t")
    ok = {"profile": "software", "algorithm": "PKIX_ED25519", "result": "success"}
    assert registry.get_sample_value("dssesign_sign_total", ok) == 2
    failed = {"profile": "pkcs11", "algorithm": "PKIX_ECDSA_P256_SHA_256", "result": "failure"}
    assert registry.get_sample_value("dssesign_sign_total", failed) == 2
    assert registry.get_sample_value("dssesign_sign_seconds_count", {"profile": "software"}) == 2
    metrics.count_verify("failed", "signature-invalid")
    labels = {"result": "failed", "code": "signature-invalid"}
    assert registry.get_sample_value("dssesign_verify_total", labels) == 1
    first = json.loads(lines[0])
    assert set(first) <= metrics.LOG_FIELDS
    assert first["operationId"] and first["keyid"] == signer_for("ed25519").keyid
    assert PIN not in "".join(lines)


def test_metrics_are_no_ops_without_prometheus_client(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from dssesign import metrics

    monkeypatch.setattr(metrics, "_metrics", None)
    monkeypatch.setattr(metrics, "_tried", False)
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    assert not metrics.enabled()
    metrics.observe_sign("software", "PKIX_ED25519", "success", 0.1)
    metrics.count_verify("ok")
    MultiProfileSigner([signer_for("ed25519")], hooks=[metrics.signing_hook()]).sign(b"a", "t")


def test_log_lines_carry_allowed_fields_only() -> None:
    from dssesign import metrics

    line = metrics.log_event("sign", keyid="k", payloadSha256="00" * 32)
    assert json.loads(line) == {"event": "sign", "keyid": "k", "payloadSha256": "00" * 32}
    with pytest.raises(ValueError, match="not allowed"):
        metrics.log_event("sign", payload="secret")
    with pytest.raises(ValueError, match="scalar"):
        metrics.log_event("sign", keyid=["x"])
