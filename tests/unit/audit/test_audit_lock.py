"""Locks with a bounded wait: the audit log's flock, the `_lock` helpers, commit before publish."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from dssesign._internal import lock as _lock
from dssesign.audit import AuditError, AuditLog, Durability, read_records, verify_log
from dssesign.errors import InputError
from tests.conftest import signer_for

AUDIT_KEY = signer_for("ed25519", 7)

_HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()  # hold the lock until the test closes our stdin (or kills us)
"""


@contextmanager
def held_by_another_process(path: Path) -> Iterator[None]:
    """An exclusive flock on `path`, held by a separate process for the block."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "locked"
        yield
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "audit.log"


# --- the audit log's lock ---------------------------------------------------------------------


def test_an_append_gives_up_after_the_lock_timeout(log_path: Path) -> None:
    with AuditLog(log_path, checkpoint_signer=AUDIT_KEY, lock_timeout=0.3) as log:
        log.append({"event": "test", "n": 1})
        size = log_path.stat().st_size
        with held_by_another_process(log_path):
            started = time.monotonic()
            with pytest.raises(AuditError, match=r"held its lock for more than 0\.3s"):
                log.append({"event": "test", "n": 2})
            assert 0.25 < time.monotonic() - started < 5
            assert log_path.stat().st_size == size  # nothing half-written
        log.append({"event": "test", "n": 3})  # released: the writer carries on
    assert [r["n"] for r in read_records(log_path)] == [1, 3]
    assert verify_log(log_path, [AUDIT_KEY.public_key]).ok


def test_close_gives_up_after_the_lock_timeout_and_still_closes(log_path: Path) -> None:
    log = AuditLog(log_path, checkpoint_signer=AUDIT_KEY, lock_timeout=0.2)
    log.append({"event": "test"})
    with held_by_another_process(log_path), pytest.raises(AuditError, match="lock"):
        log.close()  # the closing checkpoint needs the lock
    with pytest.raises(AuditError, match="closed"):
        log.append({"event": "late"})


def test_a_zero_timeout_tries_once_and_none_waits(log_path: Path) -> None:
    holder = os.open(log_path, os.O_RDWR | os.O_CREAT)
    try:
        import fcntl

        fcntl.flock(holder, fcntl.LOCK_EX)  # another open file description: it conflicts
        with AuditLog(log_path, lock_timeout=0) as log, pytest.raises(AuditError, match="lock"):
            log.append({"event": "test"})
        release = threading.Timer(0.3, fcntl.flock, (holder, fcntl.LOCK_UN))
        release.start()
        started = time.monotonic()
        with AuditLog(log_path, lock_timeout=None) as log:
            log.append({"event": "waited"})
        assert time.monotonic() - started >= 0.25
        release.join()
    finally:
        os.close(holder)
    assert [r["event"] for r in read_records(log_path)] == ["waited"]


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "5", True])
def test_a_bad_lock_timeout_is_refused(log_path: Path, bad: object) -> None:
    with pytest.raises(AuditError, match="lock timeout"):
        AuditLog(log_path, lock_timeout=bad)  # type: ignore[arg-type]


def test_the_default_lock_timeout_is_bounded(log_path: Path) -> None:
    with AuditLog(log_path) as log:
        assert log.lock_timeout == _lock.DEFAULT_LOCK_TIMEOUT


# --- commit, check_writable, record_publish_failure ---------------------------------------------


def test_commit_checkpoints_now_and_keeps_the_log_open(log_path: Path) -> None:
    log = AuditLog(log_path, checkpoint_signer=AUDIT_KEY)
    log.append({"event": "test", "n": 1})
    checkpoint = log.commit()
    assert checkpoint is not None and checkpoint.seq == 1
    sidecar = json.loads(log.sidecar.read_bytes())
    assert sidecar["seq"] == 1 and sidecar["head"] == log.head[1]
    size = log_path.stat().st_size
    assert log.commit() is None  # nothing new: no second checkpoint
    log.close()  # right after a commit: writes nothing more
    assert log_path.stat().st_size == size
    assert verify_log(log_path, [AUDIT_KEY.public_key]).ok


@pytest.mark.parametrize("durability", ["fsync", "group"])
def test_commit_makes_records_durable_without_an_audit_key(
    log_path: Path, durability: Durability, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dssesign.audit import writer as audit

    synced: list[int] = []
    real = audit._fdatasync

    def counting(fd: int) -> None:
        synced.append(fd)
        real(fd)

    monkeypatch.setattr(audit, "_fdatasync", counting)
    with AuditLog(log_path, durability=durability, group_interval=60) as log:
        log.append({"event": "test"})
        synced.clear()
        assert log.commit() is None
        assert synced, "commit must fdatasync even when group commit already counted the record"


def test_commit_on_a_closed_log_fails(log_path: Path) -> None:
    log = AuditLog(log_path)
    log.close()
    with pytest.raises(AuditError, match="closed"):
        log.commit()


def test_commit_reports_a_checkpoint_that_cannot_be_signed(log_path: Path) -> None:
    class Broken:
        reference = "broken://"
        in_process = False
        exportable = False
        keyid = AUDIT_KEY.keyid
        algorithm = AUDIT_KEY.algorithm
        public_key = AUDIT_KEY.public_key

        def sign(self, data: bytes) -> bytes:
            raise RuntimeError("hsm offline")

    log = AuditLog(log_path, checkpoint_signer=Broken())
    log.append({"event": "test"})
    with pytest.raises(AuditError, match="checkpoint"):
        log.commit()
    with pytest.raises(AuditError):
        log.close()


def test_check_writable_refuses_a_checkpoint_that_could_not_be_written(log_path: Path) -> None:
    Path(f"{log_path}.checkpoint").mkdir()
    with AuditLog(log_path) as log:
        log.check_writable()  # no audit key: no checkpoint to write
    log = AuditLog(log_path, checkpoint_signer=AUDIT_KEY)
    try:
        with pytest.raises(AuditError, match="is a directory"):
            log.check_writable()
    finally:
        log.close()
    assert not list(log_path.parent.glob(".audit.log.checkpoint.*"))


def test_record_publish_failure(log_path: Path) -> None:
    with AuditLog(log_path, actor="ci") as log:
        log.record_publish_failure(operation_id="op-1", error_code="publish:InputError")
    (record,) = read_records(log_path)
    assert record["event"] == "publish" and record["result"] == "failure"
    assert record["operationId"] == "op-1" and record["errorCode"] == "publish:InputError"
    assert record["actor"] == "ci"


# --- the _lock helpers ------------------------------------------------------------------------


def test_flock_within_returns_false_in_time(tmp_path: Path) -> None:
    path = tmp_path / "f"
    with held_by_another_process(path):
        fd = os.open(path, os.O_RDONLY)
        try:
            started = time.monotonic()
            assert _lock.flock_within(fd, 0.2) is False
            assert 0.15 < time.monotonic() - started < 5
            assert _lock.flock_within(fd, 0) is False
        finally:
            os.close(fd)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert _lock.flock_within(fd, 0) is True
    finally:
        os.close(fd)


def test_the_update_lock_survives_an_atomic_rename_of_the_file(tmp_path: Path) -> None:
    """The lock is a sidecar: replacing the file's inode does not release or split it."""
    target = tmp_path / "root.json"
    target.write_text("v1")
    with _lock.locked(target, timeout=1, what="trust root"):
        replacement = tmp_path / ".root.json.tmp"
        replacement.write_text("v2")
        os.replace(replacement, target)
        with (
            pytest.raises(_lock.LockTimeoutError, match="nothing was changed"),
            _lock.locked(target, timeout=0.1, what="trust root"),
        ):
            pass
    with _lock.locked(target, timeout=0, what="trust root"):
        pass
    assert (tmp_path / "root.json.lock").exists()


def test_every_spelling_of_a_path_shares_one_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "d").mkdir()
    target = tmp_path / "d" / "root.json"
    target.write_text("{}")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    monkeypatch.chdir(tmp_path)
    expected = (tmp_path / "d" / "root.json.lock").resolve()
    for spelling in ("d/root.json", "./d/../d/root.json", str(target), "link.json"):
        assert _lock.lock_path(spelling) == expected, spelling


def test_a_symlinked_lock_file_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (tmp_path / "root.json.lock").symlink_to(victim)
    with (
        pytest.raises(InputError, match="lock file"),
        _lock.locked(tmp_path / "root.json", timeout=0, what="trust root"),
    ):
        pass
    assert victim.read_text() == "keep"


def test_a_lock_file_that_cannot_be_created_is_an_input_error(tmp_path: Path) -> None:
    with (
        pytest.raises(InputError, match="cannot create the lock file"),
        _lock.locked(tmp_path / "missing" / "root.json", timeout=0, what="trust root"),
    ):
        pass


@pytest.mark.parametrize("bad", [-0.5, float("nan"), float("inf")])
def test_a_bad_timeout_is_refused(bad: float, tmp_path: Path) -> None:
    with pytest.raises(ValueError), _lock.locked(tmp_path / "x", timeout=bad, what="x"):
        pass
