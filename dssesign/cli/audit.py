"""`dssesign audit verify | show`, and the `--audit-log` options of `attest` and `sign`."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .common import (
    AUDIT_KEY_ENV,
    AUDIT_LOG_ENV,
    PASSWORD_ENV,
    Parser,
    add_json,
    env_secret,
    password,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ..audit import AuditLog
    from ..sign.multisign import SigningContext

AUDIT_PASSWORD_ENV = "DSSESIGN_AUDIT_KEY_PASSWORD"  # noqa: S105 - a variable's name
ACTOR_ENV = "DSSESIGN_ACTOR"


def register(commands: Any) -> None:
    """Add `audit verify` and `audit show`."""
    audit = commands.add_parser("audit", help="verify or list a signing audit log")
    sub = audit.add_subparsers(dest="audit_command", required=True, parser_class=Parser)

    verify = sub.add_parser(
        "verify", help="check the hash chain and the signed checkpoints of an audit log"
    )
    verify.add_argument("log", metavar="LOG")
    verify.add_argument(
        "--key",
        action="append",
        required=True,
        metavar="PUB",
        help="audit public key (PEM or DER) whose checkpoints count; repeatable",
    )
    verify.add_argument(
        "--checkpoint",
        metavar="FILE",
        help="the newest checkpoint, kept outside the log (default: LOG.checkpoint)",
    )
    add_json(verify)
    verify.set_defaults(handler=_cmd_verify)

    show = sub.add_parser("show", help="list the records of an audit log")
    show.add_argument("log", metavar="LOG")
    show.add_argument("--since", metavar="TIME", help="only records at or after this UTC time")
    show.add_argument("--keyid", metavar="ID", help="only records of this keyid (or prefix)")
    add_json(show)
    show.set_defaults(handler=_cmd_show)


def _add_log_options(parser: argparse.ArgumentParser, *, records: str, actor: str) -> Any:
    """The options every audited command shares; returns the group for command-specific ones."""
    group = parser.add_argument_group("audit")
    group.add_argument(
        "--audit-log",
        metavar="FILE",
        help=f"append a record of {records} to this log (default: ${AUDIT_LOG_ENV})",
    )
    group.add_argument(
        "--audit-key",
        metavar="REF",
        help=f"key that signs the log's checkpoints (default: ${AUDIT_KEY_ENV}; "
        f"passphrase: ${AUDIT_PASSWORD_ENV}, else the signing passphrase)",
    )
    group.add_argument(
        "--actor", metavar="NAME", help=f"{actor} (default: ${ACTOR_ENV}, else the OS user)"
    )
    return group


def add_audit_options(parser: argparse.ArgumentParser) -> None:
    """`--audit-log FILE [--audit-key REF] [--actor A] [--tenant T] ...` for a signing command."""
    group = _add_log_options(parser, records="every signature", actor="who signs")
    group.add_argument(
        "--audit-durability",
        choices=("fsync", "group"),
        default="fsync",
        help="fsync every record (default) or group commit",
    )
    group.add_argument("--tenant", metavar="NAME", help="tenant the signature is made for")
    group.add_argument(
        "--operation-id", metavar="UUID", help="operation id to record (default: a new UUID)"
    )


@contextlib.contextmanager
def audit_log(args: argparse.Namespace) -> Iterator[AuditLog | None]:
    """`open_audit_log`, closed when the block ends: on success a failing close is the error;
    after a failure the close is best effort, so the error that stopped the command is shown."""
    audit = open_audit_log(args)
    try:
        yield audit
    except BaseException:
        if audit is not None:
            with contextlib.suppress(Exception):
                audit.close()
        raise
    if audit is not None:
        audit.close()


def open_audit_log(args: argparse.Namespace) -> AuditLog | None:
    """The audit sink the options (or the environment) ask for; None without `--audit-log`.

    Opened for writing, its checkpoint sidecar checked writable (`AuditLog.check_writable`) and
    the audit key loaded, so call it before any other work: an audit log that cannot be
    written stops the command before anything is signed or changed. A lock another process
    holds on the log is waited for at most `--timeout` seconds (when the command has one).
    """
    from .._internal.lock import DEFAULT_LOCK_TIMEOUT, check_timeout
    from ..audit import AuditLog, default_actor
    from ..sign.signer import SignerOptions, load_signer

    path = getattr(args, "audit_log", None) or os.environ.get(AUDIT_LOG_ENV)
    key = getattr(args, "audit_key", None) or os.environ.get(AUDIT_KEY_ENV)
    if not path:
        if getattr(args, "audit_key", None):
            raise ConfigError("--audit-key needs --audit-log (or $DSSESIGN_AUDIT_LOG)")
        return None
    checkpoint_signer = None
    if key:
        options = SignerOptions(password=env_secret(AUDIT_PASSWORD_ENV) or password(args))
        checkpoint_signer = load_signer(key, options)
    timeout = getattr(args, "timeout", None)
    try:
        check_timeout(timeout)
    except ValueError as exc:
        raise ConfigError(f"--timeout {timeout}: {exc}") from None
    log = AuditLog(
        path,
        durability=getattr(args, "audit_durability", "fsync"),
        checkpoint_signer=checkpoint_signer,
        actor=getattr(args, "actor", None) or default_actor(),
        tenant=getattr(args, "tenant", None),
        lock_timeout=DEFAULT_LOCK_TIMEOUT if timeout is None else timeout,
    )
    try:
        log.check_writable()
    except BaseException:
        log.close()  # nothing appended: no checkpoint, just the descriptor
        raise
    return log


def signing_context(
    args: argparse.Namespace, statement: dict[str, Any] | None = None
) -> SigningContext:
    """Operation id, actor, tenant and, for a Statement, its subject digests and predicateType."""
    import uuid

    from ..audit import default_actor
    from ..sign.multisign import SigningContext

    operation_id = getattr(args, "operation_id", None)
    if operation_id:
        try:
            operation_id = str(uuid.UUID(operation_id))
        except ValueError:
            raise ConfigError(f"--operation-id {operation_id!r} is not a UUID") from None
    digests: tuple[dict[str, str], ...] = ()
    predicate_type = None
    if statement is not None:
        digests = tuple(
            {str(k): str(v) for k, v in subject.get("digest", {}).items()}
            for subject in statement.get("subject", [])
            if isinstance(subject, dict)
        )
        raw_type = statement.get("predicateType")
        predicate_type = raw_type if isinstance(raw_type, str) else None
    return SigningContext(
        operation_id=operation_id or str(uuid.uuid4()),
        actor=getattr(args, "actor", None) or default_actor(),
        tenant=getattr(args, "tenant", None),
        subject_digests=digests,
        predicate_type=predicate_type,
        predicate_validated=not getattr(args, "no_validate", False),
    )


def record_load_failure(
    args: argparse.Namespace,
    reference: str,
    exc: BaseException,
    *,
    log: AuditLog | None = None,
    operation_id: str | None = None,
) -> None:
    """Record a key that failed to load (best effort: the load error is what the user sees).

    `log`: an audit log the command opened already (left open); else the one the options name,
    opened and closed here. The reference is recorded in its allow-listed form
    (`dssesign.sign.signer.redacted_reference`): a refused reference's PIN-like attributes never
    reach the log.
    """
    from ..audit import AuditError, profile_of
    from ..sign.signer import redacted_reference

    own = log is None
    if log is None:
        try:
            log = open_audit_log(args)
        except Exception:  # the audit key itself may be what fails; the original error wins
            return
        if log is None:
            return
    context = signing_context(args)
    reference = redacted_reference(reference)
    fields = {
        "event": "sign",
        "operationId": operation_id or context.operation_id,
        "actor": context.actor,
        "tenant": context.tenant,
        "profile": profile_of(reference),
        "keyRef": reference,
        "result": "failure",
        "errorCode": f"key-load:{type(exc).__name__}",
    }
    try:
        if own:
            with log:
                log.append(fields)
        else:
            log.append(fields)
    except AuditError:
        return


def add_trust_audit_options(parser: argparse.ArgumentParser) -> Any:
    """`--audit-log FILE [--audit-key REF] [--actor A]` for a trust-root command; returns the
    option group."""
    return _add_log_options(parser, records="this change", actor="who changes it")


def write_trust_record(
    log: AuditLog,
    change: str,
    *,
    version: int,
    operation_id: str,
    data: bytes | None = None,
    keyids: tuple[str, ...] | list[str] = (),
    rotation: tuple[str, str] | None = None,
    signer_reference: str | None = None,
) -> None:
    """Record one trust-root change (or, with `rotation=(from, to)`, a rotation). `data`: the
    trust root's new bytes, whose SHA-256 the record carries.

    Call it, then `AuditLog.commit`, *before* the change is published, so that an audit log
    that cannot record stops the change (no audit, no change); if the commit or the publishing
    fails after all, `record_trust_not_published`."""
    import hashlib

    digest = hashlib.sha256(data).hexdigest() if data is not None else None
    if rotation is not None:
        log.record_rotation(
            from_keyid=rotation[0],
            to_keyid=rotation[1],
            version=version,
            signer_reference=signer_reference,
            operation_id=operation_id,
        )
    else:
        log.record_trust_root_change(
            change,
            version=version,
            keyids=list(keyids),
            file_sha256=digest,
            operation_id=operation_id,
        )


def record_trust_not_published(
    log: AuditLog,
    change: str,
    exc: BaseException,
    *,
    version: int,
    operation_id: str,
    rotation: tuple[str, str] | None = None,
) -> None:
    """Best effort, after `write_trust_record`: the change it recorded was not published after
    all. A failure record under the same operation id (`errorCode` ``not-published:<Type>``);
    the error that stopped the change is what the user sees, so this one never raises."""
    from ..audit import AuditError

    code = f"not-published:{type(exc).__name__}"
    try:
        if rotation is not None:
            log.record_rotation(
                from_keyid=rotation[0],
                to_keyid=rotation[1],
                version=version,
                operation_id=operation_id,
                result="failure",
                error_code=code,
            )
        else:
            log.record_trust_root_change(
                change,
                version=version,
                operation_id=operation_id,
                result="failure",
                error_code=code,
            )
        log.commit()
    except AuditError:
        return


def record_trust_change(
    args: argparse.Namespace,
    change: str,
    *,
    version: int,
    path: str,
    keyids: tuple[str, ...] | list[str] = (),
    rotation: tuple[str, str] | None = None,
    signer_reference: str | None = None,
) -> None:
    """Open the log the options or the environment name (nothing without one) and record one
    change of the trust root at `path` as it is now (`write_trust_record`).

    For a library caller recording after the fact; the `trust-root` commands record through an
    open log before they publish (`_cli_trust`), so that an unwritable log stops the change.
    """
    import uuid

    from .._internal.fileio import read_bounded
    from ..errors import InputError
    from ..trust import MAX_TRUST_ROOT_BYTES

    log = open_audit_log(args)
    if log is None:
        return
    try:
        data: bytes | None = read_bounded(path, limit=MAX_TRUST_ROOT_BYTES, what="trust root")
    except InputError:
        data = None
    with log:
        write_trust_record(
            log,
            change,
            version=version,
            operation_id=str(uuid.uuid4()),
            data=data,
            keyids=keyids,
            rotation=rotation,
            signer_reference=signer_reference,
        )


def _cmd_verify(args: argparse.Namespace) -> int:
    from .._internal.fileio import read_bounded
    from .._internal.text import escape_controls
    from ..audit import printable_json, verify_log
    from ..core.keys import load_public_key

    keys = [
        load_public_key(read_bounded(p, limit=1 << 20, what="audit key"), source=p)
        for p in args.key
    ]
    outside = (
        read_bounded(args.checkpoint, limit=1 << 20, what="checkpoint") if args.checkpoint else None
    )
    report = verify_log(args.log, keys, checkpoint=outside)
    if getattr(args, "json", False):
        print(printable_json(report.to_dict()))
        return 0 if report.ok else 1
    if report.ok:
        print(
            f"audit log OK: {report.records} records (1..{report.last_seq}), "
            f"{report.checkpoints} checkpoints, signed through record {report.anchored_seq}"
            + (f", {report.unanchored} after the last checkpoint" if report.unanchored else "")
        )
        print(f"  head {escape_controls(report.head)}")
        return 0
    print(
        f"audit log FAILED: {len(report.problems)} problem(s); records verified through "
        f"{report.valid_through}",
        file=sys.stderr,
    )
    for problem in report.problems:
        # The messages quote what a line holds: escaped again here, whoever built them.
        print(f"  [{problem.kind}] {escape_controls(problem.message)}", file=sys.stderr)
    return 1


def _parse_since(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--since {text!r} is not an ISO 8601 / RFC 3339 time") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _cell(value: object) -> str:
    """One field of a record as printable text: a signer wrote it, so no control character,
    bidi override or line separator reaches the terminal, and no type makes the row fail."""
    import json

    from .._internal.text import escape_controls

    if value is None:
        return "-"
    return escape_controls(
        value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    )


def _row(r: dict[str, Any]) -> str:
    key = _cell(r.get("keyid") or r.get("toKeyid"))[:16]
    what = _cell(r.get("event", "?"))
    if what == "trust-root":
        what = f"trust-root:{_cell(r.get('change', '?'))}"
    extra = "".join(
        f" {label}={_cell(r[name])}"
        for name, label in (("tenant", "tenant"), ("keyRef", "key"))
        if name in r
    )
    return (
        f"{_cell(r.get('seq')):>6} {_cell(r.get('time', ''))} {what:<20} "
        f"{_cell(r.get('result')):<8} {key:<16} {_cell(r.get('algorithm')):<26} "
        f"{_cell(r.get('actor'))} {_cell(r.get('operationId'))}{extra}"
        + (f" [{_cell(r['errorCode'])}]" if "errorCode" in r else "")
    )


def _cmd_show(args: argparse.Namespace) -> int:
    from .._internal.text import escape_controls
    from ..audit import Entry, printable_json, read_records

    since = _parse_since(args.since) if args.since else None
    skipped: list[Entry] = []
    records = read_records(args.log, since=since, keyid=args.keyid, on_skip=skipped.append)
    if getattr(args, "json", False):
        print(printable_json(records))
    else:
        for record in records:
            print(_row(record))
    if skipped:
        # Same in text and --json: the listing is what is sound; the rest is named, not shown.
        numbers = ", ".join(str(entry.line) for entry in skipped[:10])
        more = f" and {len(skipped) - 10} more" if len(skipped) > 10 else ""
        print(
            f"warning: {len(skipped)} line(s) of {escape_controls(args.log)} are not valid records "
            f"and are not listed (line {numbers}{more}); see 'dssesign audit verify'",
            file=sys.stderr,
        )
    return 0


__all__ = [
    "ACTOR_ENV",
    "AUDIT_LOG_ENV",
    "PASSWORD_ENV",
    "add_audit_options",
    "add_trust_audit_options",
    "audit_log",
    "open_audit_log",
    "record_load_failure",
    "record_trust_change",
    "record_trust_not_published",
    "register",
    "signing_context",
    "write_trust_record",
]
