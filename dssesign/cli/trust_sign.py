"""`dssesign trust-root countersign` and `trust-root diff`: trust-root updates under dual control.

An update needs M of N root keys, whose holders sign at different times and on different
machines: one signs (`trust-root sign`), the others review what changed against the version
it supersedes (`trust-root diff OLD NEW`) and add their signatures (`trust-root countersign`).
The library functions are `dssesign.trust.signed.countersign_trust_root` and
`dssesign.trust.diff.diff_trust_roots` (docs/trust-root.md).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import sys
from typing import TYPE_CHECKING, Any

from .._internal.fileio import OutputSet, read_bounded
from .._internal.text import escape_controls
from .audit import audit_log, record_trust_not_published, write_trust_record
from .common import add_json, add_password, command_inputs, print_json
from .trust_update import add_update_options

if TYPE_CHECKING:
    from ..trust import TrustRoot
    from ..trust.signed import RootSignatures

__all__ = ["cmd_countersign", "cmd_diff", "register_subcommands"]


def register_subcommands(sub: Any) -> None:
    """Add `countersign` and `diff` to the `trust-root` subparsers."""
    countersign = sub.add_parser(
        "countersign",
        help="add root-key signatures to a DSSE-signed trust root (M of N, at different times)",
    )
    countersign.add_argument("file", metavar="FILE", help="the DSSE-signed trust root")
    countersign.add_argument(
        "--key",
        action="append",
        required=True,
        metavar="REF",
        help="a root key of the trust root (or of --previous) that has not signed yet; repeatable",
    )
    countersign.add_argument(
        "--out", metavar="FILE", help="write the envelope here (default: replace FILE)"
    )
    countersign.add_argument(
        "--previous",
        metavar="OLD",
        help="the version this one supersedes (plain or signed; read for its root keys, which "
        "may then countersign too, and which signed so far is reported)",
    )
    add_password(countersign)
    add_update_options(countersign)
    countersign.set_defaults(handler=cmd_countersign)

    diff = sub.add_parser(
        "diff",
        help="what changed from OLD to NEW (each plain or DSSE-signed; signatures not verified)",
    )
    diff.add_argument("old", metavar="OLD")
    diff.add_argument("new", metavar="NEW")
    add_json(diff)
    diff.set_defaults(handler=cmd_diff)


def _read(path: str, what: str) -> bytes:
    from ..trust import MAX_TRUST_ROOT_BYTES

    return read_bounded(path, limit=MAX_TRUST_ROOT_BYTES, what=what)


def cmd_diff(args: argparse.Namespace) -> int:
    """Print what changed from OLD to NEW; exit 0 whether or not anything did."""
    from ..trust.diff import diff_trust_roots, read_diff_side

    old = read_diff_side(_read(args.old, "OLD trust root"), what=f"OLD {args.old}")
    new = read_diff_side(_read(args.new, "NEW trust root"), what=f"NEW {args.new}")
    diff = diff_trust_roots(old, new)
    if getattr(args, "json", False):
        print_json({"oldFile": args.old, "newFile": args.new, **diff.to_json()})
    else:
        for line in diff.lines(args.old, args.new):
            print(line)
    return 0


def _read_previous(path: str) -> TrustRoot:
    """The version being superseded, plain or as its envelope (payload read, not verified)."""
    from .._internal.strict_json import loads_strict
    from ..core.dsse import Envelope
    from ..trust import load_trust_root

    data = _read(path, "previous trust root")
    document = loads_strict(data, what=f"previous trust root {path}")
    if isinstance(document, dict) and "payloadType" in document:
        data = Envelope.from_dict(document).payload
    return load_trust_root(data)


def _same_file(left: str, right: str) -> bool:
    try:
        return os.path.samefile(left, right)
    except OSError:
        return os.path.realpath(left) == os.path.realpath(right)


def cmd_countersign(args: argparse.Namespace) -> int:
    """Countersign FILE with every --key, under FILE's update lock when it is replaced.

    Order: the audit log opened; in place, FILE's update lock taken; the output staged; the envelope
    read and shown (stderr) before any key is loaded; the keys loaded; the signatures made
    and verified; in place, FILE checked unchanged since it was read; the record committed;
    only then the envelope renamed into place. Any failure leaves no output.
    """
    import uuid

    from .._internal.lock import ConcurrentUpdateError, locked
    from ..trust.signed import countersign_trust_root, root_signatures
    from .signing import load_signers

    out = args.out or args.file
    in_place = _same_file(out, args.file)
    with audit_log(args) as audit:
        # In place, FILE's update lock (FILE.lock, as every trust-root change takes) keeps two
        # holders countersigning at once from dropping each other's signature.
        guard = (
            locked(out, timeout=args.timeout, what=f"signed trust root {out}")
            if in_place
            else contextlib.nullcontext()
        )
        with guard, OutputSet(command_inputs(args)) as outputs:
            if not in_place:
                outputs.add_input("the signed trust root", args.file)
            if args.previous:
                outputs.add_input("--previous", args.previous)
            outputs.add(out, what="--out" if args.out else "the signed trust root")
            data = _read(args.file, "signed trust root")
            previous = _read_previous(args.previous) if args.previous else None
            before = root_signatures(data, previous=previous)
            _announce(args.file, before)
            signers = load_signers(args)
            envelope = countersign_trust_root(before.envelope, signers, previous=previous)
            after = root_signatures(envelope, previous=previous)
            body = envelope.to_json() + b"\n"
            outputs.write(out, body)
            if in_place and _read(args.file, "signed trust root") != data:
                raise ConcurrentUpdateError(
                    f"signed trust root {args.file} was changed by another process while it "
                    "was countersigned; nothing was written (run the command again)"
                )
            keyids = [signer.public_key.keyid for signer in signers]
            if audit is None:
                outputs.publish()
            else:
                operation_id = str(uuid.uuid4())
                version = after.root.version
                write_trust_record(
                    audit,
                    "countersign",
                    version=version,
                    operation_id=operation_id,
                    data=envelope.payload,
                    keyids=keyids,
                )
                try:
                    audit.commit()
                    outputs.publish()
                except BaseException as exc:
                    record_trust_not_published(
                        audit, "countersign", exc, version=version, operation_id=operation_id
                    )
                    raise
    _report(args, out, after, keyids)
    return 0


def _payload_digest(summary: RootSignatures) -> str:
    return "sha256:" + hashlib.sha256(summary.envelope.payload).hexdigest()


def _announce(path: str, before: RootSignatures) -> None:
    """On stderr, before any key is loaded: what is about to be countersigned, who signed."""
    from datetime import UTC, datetime

    from ..trust import format_time

    root = before.root
    print(
        f"countersigning {escape_controls(path)}: trust root version {root.version}, expires "
        f"{format_time(root.expires)}, payload {_payload_digest(before)}",
        file=sys.stderr,
    )
    for line in _signature_lines(before):
        print(f"  {line}", file=sys.stderr)
    if root.expires < datetime.now(UTC):
        print(f"warning: this trust root expired at {format_time(root.expires)}", file=sys.stderr)
    print(
        f"  (review the change first: dssesign trust-root diff OLD {escape_controls(path)})",
        file=sys.stderr,
    )


def _signature_lines(summary: RootSignatures) -> list[str]:
    lines = []
    for index, (signature, keyid) in enumerate(
        zip(summary.envelope.signatures, summary.signers, strict=True), 1
    ):
        if keyid is None:
            hint = escape_controls(signature.keyid[:80]) or "(none)"
            lines.append(f"signature {index}: verifies under no root key (keyid hint {hint})")
        else:
            lines.append(f"signature {index}: root key {keyid}")
    lines.append(f"root keys: {_count(summary.counted, summary.threshold)}")
    if summary.previous_threshold is not None:
        counted = summary.previous_counted or 0
        lines.append(
            f"root keys of the previous version: {_count(counted, summary.previous_threshold)}"
        )
    return lines


def _count(counted: int, threshold: int) -> str:
    return f"{counted} of threshold {threshold} ({'met' if counted >= threshold else 'NOT met'})"


def _report(args: argparse.Namespace, out: str, after: RootSignatures, added: list[str]) -> None:
    if getattr(args, "json", False):
        result: dict[str, Any] = {
            "file": out,
            "version": after.root.version,
            "payloadSha256": _payload_digest(after).removeprefix("sha256:"),
            "added": added,
            "signatures": [
                {"index": index, "keyid": signature.keyid, "rootKey": keyid}
                for index, (signature, keyid) in enumerate(
                    zip(after.envelope.signatures, after.signers, strict=True), 1
                )
            ],
            "rootKeys": {
                "counted": after.counted,
                "threshold": after.threshold,
                "met": after.counted >= after.threshold,
            },
            "met": after.met,
        }
        if after.previous_threshold is not None:
            counted = after.previous_counted or 0
            result["previousRootKeys"] = {
                "counted": counted,
                "threshold": after.previous_threshold,
                "met": counted >= after.previous_threshold,
            }
        print_json(result)
        return
    print(
        f"{escape_controls(out)}: countersigned trust root version {after.root.version} "
        f"(payload {_payload_digest(after)}) by {', '.join(added)}"
    )
    for line in _signature_lines(after):
        print(f"  {line}")
