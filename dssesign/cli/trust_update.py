"""The read-modify-write every changing `dssesign trust-root ...` command is made of.

Every trust-root change is one read-modify-write under the file's update lock (`PATH.lock`,
bounded by --timeout), recorded in the audit log before the new file is renamed into place
(no audit, no change), and bumps `version`. `trust` and `trust_tsa` build their commands on it.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from .._internal.fileio import OutputSet, read_bounded
from .._internal.lock import DEFAULT_LOCK_TIMEOUT, ConcurrentUpdateError, locked
from ..errors import ConfigError
from .audit import (
    add_trust_audit_options,
    audit_log,
    record_trust_not_published,
    write_trust_record,
)
from .common import add_json, command_inputs, print_json

if TYPE_CHECKING:
    from ..audit import AuditLog
    from ..trust import TrustRoot


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number of seconds >= 0")
    return value


def add_update_options(parser: argparse.ArgumentParser) -> None:
    """--json, the audit options, and --timeout: what every command that writes shares."""
    add_json(parser)
    group = add_trust_audit_options(parser)
    group.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_LOCK_TIMEOUT,
        metavar="SECONDS",
        help="give up (exit 1, nothing changed) when another process holds the trust root's "
        f"or the audit log's lock for longer than this (default: {DEFAULT_LOCK_TIMEOUT:g})",
    )


def option_time(value: str | None, what: str) -> datetime | None:
    """A time option (--valid-from, --at...) in the trust root's one spelling; None if unset."""
    from ..trust import parse_time

    return parse_time(value, what=what) if value else None


def read_root(path: str) -> TrustRoot:
    """The trust root at `path`, possibly still being assembled (for show and the edits)."""
    from ..trust import read_trust_root

    return read_trust_root(path, allow_incomplete=True)


@dataclass(frozen=True)
class Change:
    """A computed change: the new trust root, and what to report and record about it."""

    root: TrustRoot
    what: str
    change: str
    keyids: tuple[str, ...] = ()
    #: (from, to) keyids: recorded as a rotation event instead of a trust-root change.
    rotation: tuple[str, str] | None = None
    signer_reference: str | None = None


def update(
    args: argparse.Namespace,
    path: str,
    make: Callable[[TrustRoot | None], Change],
    *,
    create: bool = False,
) -> int:
    """Read, change and write the trust root at `path` as one step no other update interleaves
    with; no audit, no change.

    In order: the audit log is opened (writable, its key loaded); the update lock
    (``PATH.lock``) is taken, waiting at most --timeout; the current file is read; the output
    is staged (a temp file beside it: can it be written?); `make` computes the change from what
    was read (None when `create`); the file is checked unchanged since it was read (a writer
    that does not lock); the change is recorded and the record committed (durable,
    checkpointed); only then is the new file renamed into place. Any failure before the rename
    leaves the file as it was; a failure after the record adds a `not-published` failure record.
    """
    import uuid

    from ..trust import MAX_TRUST_ROOT_BYTES, dump_trust_root, load_trust_root

    with audit_log(args) as audit, locked(path, timeout=args.timeout, what=f"trust root {path}"):
        before: bytes | None = None
        current: TrustRoot | None = None
        if create:
            if Path(path).exists() and not getattr(args, "force", False):
                raise ConfigError(f"{path} exists; refusing to overwrite it (use --force)")
        else:
            before = read_bounded(path, limit=MAX_TRUST_ROOT_BYTES, what="trust root")
            current = load_trust_root(before, allow_incomplete=True)
        with OutputSet(command_inputs(args)) as outputs:
            outputs.add(path, what="trust root")  # writable? (a temp file beside it)
            change = make(current)
            data = dump_trust_root(change.root)
            outputs.write(path, data)
            _check_unchanged(path, before, create=create)
            if audit is None:
                outputs.publish()
            else:
                _record_then_publish(audit, outputs, change, data, str(uuid.uuid4()))
    root = change.root
    if getattr(args, "json", False):
        print_json({"file": path, "version": root.version, "change": change.what})
    else:
        print(f"{path}: {change.what} (version {root.version})")
    return 0


def _check_unchanged(path: str, before: bytes | None, *, create: bool) -> None:
    """Compare-and-swap: refuse to publish over a file that is not the one the change was made
    from (a process that writes without taking the lock)."""
    from ..trust import MAX_TRUST_ROOT_BYTES

    if create:
        return
    now = read_bounded(path, limit=MAX_TRUST_ROOT_BYTES, what="trust root")
    if now != before:
        raise ConcurrentUpdateError(
            f"trust root {path} was changed by another process while this change was made; "
            "nothing was written (run the command again)"
        )


def _record_then_publish(
    audit: AuditLog, outputs: OutputSet, change: Change, data: bytes, operation_id: str
) -> None:
    version = change.root.version
    write_trust_record(
        audit,
        change.change,
        version=version,
        operation_id=operation_id,
        data=data,
        keyids=change.keyids,
        rotation=change.rotation,
        signer_reference=change.signer_reference,
    )
    # From here the log says the change was made: if it is not, say so under the same id.
    try:
        audit.commit()  # durable and checkpointed before the change is visible
        outputs.publish()
    except BaseException as exc:
        record_trust_not_published(
            audit,
            change.change,
            exc,
            version=version,
            operation_id=operation_id,
            rotation=change.rotation,
        )
        raise
