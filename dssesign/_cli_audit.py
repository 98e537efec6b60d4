"""`dssesign audit verify | show`, and the `--audit-log` options of `attest` and `sign`."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ._cli_common import PASSWORD_ENV, Parser, add_json, password, print_json
from .errors import ConfigError

if TYPE_CHECKING:
    from .audit import AuditLog
    from .multisign import SigningContext

AUDIT_LOG_ENV = "DSSESIGN_AUDIT_LOG"
AUDIT_KEY_ENV = "DSSESIGN_AUDIT_KEY"
AUDIT_PASSWORD_ENV = "DSSESIGN_AUDIT_KEY_PASSWORD"  # noqa: S105 - a variable's name
ACTOR_ENV = "DSSESIGN_ACTOR"


def register(commands: Any) -> None:
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


def open_audit_log(args: argparse.Namespace) -> AuditLog | None:
    """The audit sink the options (or the environment) ask for; None without `--audit-log`."""
    from .audit import AuditLog, default_actor
    from .signer import SignerOptions, load_signer

    path = getattr(args, "audit_log", None) or os.environ.get(AUDIT_LOG_ENV)
    key = getattr(args, "audit_key", None) or os.environ.get(AUDIT_KEY_ENV)
    if not path:
        if getattr(args, "audit_key", None):
            raise ConfigError("--audit-key needs --audit-log (or $DSSESIGN_AUDIT_LOG)")
        return None
    checkpoint_signer = None
    if key:
        secret = os.environ.get(AUDIT_PASSWORD_ENV)
        options = SignerOptions(password=secret.encode("utf-8") if secret else password(args))
        checkpoint_signer = load_signer(key, options)
    return AuditLog(
        path,
        durability=getattr(args, "audit_durability", "fsync"),
        checkpoint_signer=checkpoint_signer,
        actor=getattr(args, "actor", None) or default_actor(),
        tenant=getattr(args, "tenant", None),
    )


def signing_context(
    args: argparse.Namespace, statement: dict[str, Any] | None = None
) -> SigningContext:
    """Operation id, actor, tenant and, for a Statement, its subject digests and predicateType."""
    import uuid

    from .audit import default_actor
    from .multisign import SigningContext

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
    )


def record_load_failure(args: argparse.Namespace, reference: str, exc: BaseException) -> None:
    """Record a key that failed to load (best effort: the load error is what the user sees)."""
    from .audit import AuditError, profile_of, redact_reference

    try:
        log = open_audit_log(args)
    except Exception:  # the audit key itself may be what fails; the original error wins
        return
    if log is None:
        return
    context = signing_context(args)
    reference = redact_reference(reference)
    try:
        with log:
            log.append(
                {
                    "event": "sign",
                    "operationId": context.operation_id,
                    "actor": context.actor,
                    "tenant": context.tenant,
                    "profile": profile_of(reference),
                    "keyRef": reference,
                    "result": "failure",
                    "errorCode": f"key-load:{type(exc).__name__}",
                }
            )
    except AuditError:
        return


def add_trust_audit_options(parser: argparse.ArgumentParser) -> None:
    """`--audit-log FILE [--audit-key REF] [--actor A]` for a trust-root command."""
    _add_log_options(parser, records="this change", actor="who changes it")


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
    """Append one trust-root change (or, with `rotation=(from, to)`, a rotation) to the log the
    options or the environment name; nothing without one. Call it after the file is saved."""
    import hashlib
    from pathlib import Path

    log = open_audit_log(args)
    if log is None:
        return
    try:
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        digest = None
    with log:
        if rotation is not None:
            log.record_rotation(
                from_keyid=rotation[0],
                to_keyid=rotation[1],
                version=version,
                signer_reference=signer_reference,
            )
        else:
            log.record_trust_root_change(
                change, version=version, keyids=list(keyids), file_sha256=digest
            )


def _cmd_verify(args: argparse.Namespace) -> int:
    from ._fileio import read_bounded
    from .audit import verify_log
    from .keys import load_public_key

    keys = [
        load_public_key(read_bounded(p, limit=1 << 20, what="audit key"), source=p)
        for p in args.key
    ]
    outside = (
        read_bounded(args.checkpoint, limit=1 << 20, what="checkpoint") if args.checkpoint else None
    )
    report = verify_log(args.log, keys, checkpoint=outside)
    if getattr(args, "json", False):
        print_json(report.to_dict())
        return 0 if report.ok else 1
    if report.ok:
        print(
            f"audit log OK: {report.records} records (1..{report.last_seq}), "
            f"{report.checkpoints} checkpoints, signed through record {report.anchored_seq}"
            + (f", {report.unanchored} after the last checkpoint" if report.unanchored else "")
        )
        print(f"  head {report.head}")
        return 0
    print(
        f"audit log FAILED: {len(report.problems)} problem(s); records verified through "
        f"{report.valid_through}",
        file=sys.stderr,
    )
    for problem in report.problems:
        print(f"  [{problem.kind}] {problem.message}", file=sys.stderr)
    return 1


def _parse_since(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--since {text!r} is not an ISO 8601 / RFC 3339 time") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _cmd_show(args: argparse.Namespace) -> int:
    from .audit import read_records

    since = _parse_since(args.since) if args.since else None
    records = read_records(args.log, since=since, keyid=args.keyid)
    if getattr(args, "json", False):
        print_json(records)
        return 0
    for r in records:
        key = str(r.get("keyid") or r.get("toKeyid") or "-")[:16]
        what = r.get("event", "?")
        if what == "trust-root":
            what = f"trust-root:{r.get('change', '?')}"
        print(
            f"{r['seq']:>6} {r.get('time', '')} {what:<20} {r.get('result', '-'):<8} "
            f"{key:<16} {r.get('algorithm', '-'):<26} {r.get('actor', '-')} "
            f"{r.get('operationId', '-')}" + (f" [{r['errorCode']}]" if "errorCode" in r else "")
        )
    return 0


__all__ = [
    "ACTOR_ENV",
    "AUDIT_LOG_ENV",
    "PASSWORD_ENV",
    "add_audit_options",
    "add_trust_audit_options",
    "open_audit_log",
    "record_load_failure",
    "record_trust_change",
    "register",
    "signing_context",
]
