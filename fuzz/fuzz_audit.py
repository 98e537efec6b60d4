"""Target `audit`: audit-log files (JSON lines: records and signed checkpoints).

The input is a log file, optionally followed by SIDECAR and the content of its checkpoint
sidecar (`LOG.checkpoint`). Each input is used four ways, on a file in a private directory:
1. `verify_log` with the audit key (every finding is a Problem in the report, never an
   exception), with the sidecar, and with the sidecar given as an outside checkpoint.
2. `read_records` (the listing `dssesign audit show` prints).
3. The writer's tail reader (`_read_tail`), which a writer runs on open to find the chain head.
4. A writer opening the log, appending a record and closing (which signs a checkpoint): a log
   that verified clean before must verify clean after.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from pathlib import Path

from dssesign import audit
from dssesign.audit import AuditLog, VerifyReport, read_records, verify_log

from ._common import ContractViolation, attempt, ed25519_signer, scratch_dir

NAME = "audit"
MAX_LEN = 16 * 1024
SIDECAR = b"\n\x1e\n"

DICTIONARY = (
    '"type"', '"record"', '"checkpoint"', '"seq"', '"prev"', '"time"', '"head"', '"keyid"',
    '"algorithm"', '"signature"', '"event"', '"actor"', '"result"', '"operationId"',
    '"errorCode"', '"tornBytes"', '"recovery"', "PKIX_ED25519", audit.GENESIS, "9007199254740991",
    "9007199254740993", "1e400", "\\ud800", "\\u2028", "\\u202e", "\n", "\r\n", SIDECAR.decode(),
)  # fmt: skip


@functools.cache
def _workdir() -> Path:
    return scratch_dir(NAME)


def _write(path: Path, data: bytes | None) -> None:
    if data is None:
        path.unlink(missing_ok=True)
    else:
        path.write_bytes(data)


def _verify(path: Path, checkpoint: bytes | None = None, *, sidecar: bool) -> VerifyReport:
    report = verify_log(
        path, [ed25519_signer(7).public_key], checkpoint=checkpoint, use_sidecar=sidecar
    )
    for problem in report.problems:
        if not problem.message.strip():
            raise ContractViolation("empty-message", f"a {problem.kind} finding with no message")
    return report


def check(data: bytes) -> None:
    log_bytes, separator, sidecar_bytes = data.partition(SIDECAR)
    sidecar: bytes | None = sidecar_bytes if separator else None
    path = _workdir() / "audit.log"
    sidecar_path = Path(f"{path}{audit.SIDECAR_SUFFIX}")
    _write(path, log_bytes)
    _write(sidecar_path, sidecar)
    before = _verify(path, sidecar=True)
    if sidecar is not None:
        _verify(path, sidecar, sidecar=False)
    attempt(lambda: read_records(path))
    fd = os.open(path, os.O_RDONLY)
    try:
        attempt(lambda: audit._read_tail(fd, len(log_bytes)))
    finally:
        os.close(fd)

    def append() -> None:
        signer = ed25519_signer(7)
        with AuditLog(path, checkpoint_signer=signer, actor="fuzz", lock_timeout=1) as log:
            log.append({"event": "sign", "result": "success"})

    if attempt(append) is None or not before.ok:
        return
    after = _verify(path, sidecar=True)
    if not after.ok:
        kinds = ", ".join(sorted(after.kinds()))
        raise ContractViolation("append-broke-log", f"a clean log has {kinds} after one append")


# --- seeds ------------------------------------------------------------------------------------


def seeds() -> Iterator[bytes]:
    path = _workdir() / "seed.log"
    sidecar_path = Path(f"{path}{audit.SIDECAR_SUFFIX}")
    for records, every in ((1, 1000), (3, 2), (6, 4)):
        path.unlink(missing_ok=True)
        sidecar_path.unlink(missing_ok=True)
        with AuditLog(
            path, checkpoint_signer=ed25519_signer(7), checkpoint_every=every, actor="ci@example"
        ) as log:
            for index in range(records):
                log.append({"event": "sign", "result": "success", "keyid": f"{index:064x}"})
        content = path.read_bytes()
        yield content
        yield content + SIDECAR + sidecar_path.read_bytes()
        yield content[: len(content) // 2]
        lines = content.splitlines(keepends=True)
        yield b"".join(lines[1:])
        yield b"".join(reversed(lines))
    path.unlink(missing_ok=True)
    sidecar_path.unlink(missing_ok=True)
    yield b""
    yield b"{}\n"
    yield b'{"type":"record","seq":1,"prev":"' + audit.GENESIS.encode() + b'"}\n'
