"""`dssesign countersign`: dual control, a signature added later by someone else.

Appends signatures to an envelope signed earlier, checked first against a trust root with
--trust-root, else described on stderr. The payload is never re-encoded: what was signed
stays byte for byte what is signed. See docs/dual-control.md (and `cli.merge`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import sys
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .._internal.fileio import NamedPath, OutputSet, read_bounded
from .._internal.text import escape_controls
from ..errors import ConfigError, EnvelopeError, InputError, VerificationError
from ..limits import DEFAULT_LIMITS
from .audit import add_audit_options
from .common import add_json, command_inputs, print_json
from .signing import (
    _attach_certificates,
    _bundle_dir,
    _certificates,
    _load_signers_audited,
    add_signing,
)

if TYPE_CHECKING:
    from pathlib import Path

    from ..audit import AuditLog
    from ..core.dsse import Envelope
    from ..sign.multisign import SigningContext
    from ..sign.signer import Signer
    from ..sign.timestamps import Timestamping
    from ..trust import TrustRoot

#: Version of the --json reports of countersign and merge.
SCHEMA_VERSION = 1
#: Subjects listed on stderr before the rest are summed up.
_SHOWN_SUBJECTS = 10


def register(commands: Any) -> None:
    """Add `countersign`."""
    countersign = commands.add_parser(
        "countersign",
        help="append signatures to an existing DSSE envelope (dual control)",
        description="Append one signature per --key to ENVELOPE: the payload stays byte for "
        "byte as it was, the earlier signatures stay in order, a key that already signed is "
        "refused. Written to --out (never in place).",
    )
    countersign.add_argument("envelope", metavar="ENVELOPE")
    add_signing(
        countersign,
        out_required=True,
        trust_root_help="first check that every existing signature verifies under a key or "
        "keyless identity of this trust root (its policy need not be met yet) and that the "
        "Statement matches --type/--artifact/--digest; refuse otherwise. With --tsa it also "
        "judges the tokens",
    )
    countersign.add_argument(
        "--existing-bundle",
        action="append",
        default=[],
        metavar="FILE",
        help="with --trust-root: a Sigstore bundle of an existing signature (a keyless one "
        "verifies only with its bundle); repeatable",
    )
    countersign.add_argument(
        "--type", dest="predicate_type", metavar="TYPE", help="with --trust-root: required type"
    )
    countersign.add_argument(
        "--artifact",
        action="append",
        default=[],
        metavar="PATH",
        help="with --trust-root: a file whose SHA-256 must match a subject; repeatable",
    )
    countersign.add_argument(
        "--digest",
        action="append",
        default=[],
        metavar="ALG:HEX",
        help="with --trust-root: a digest that must match a subject; repeatable",
    )
    add_audit_options(countersign)
    add_json(countersign)
    countersign.set_defaults(handler=_cmd_countersign)


def planned_with(args: argparse.Namespace, extra: Iterable[NamedPath]) -> OutputSet:
    """`common.planned_out` for commands that also read positional files: --out checked now."""
    outputs = OutputSet([*command_inputs(args), *extra])
    try:
        outputs.add(args.out, what="--out")
    except BaseException:
        outputs.discard()
        raise
    return outputs


def read_envelope(path: str) -> Envelope:
    """An envelope file, read strictly and within the default limits; errors name the file."""
    from ..core.dsse import Envelope

    data = read_bounded(path, limit=DEFAULT_LIMITS.max_json_bytes, what="envelope")
    try:
        return Envelope.from_json(data, limits=DEFAULT_LIMITS)
    except EnvelopeError as exc:
        raise EnvelopeError(f"{path}: {exc}") from None


# --- countersign -----------------------------------------------------------------------------


def _cmd_countersign(args: argparse.Namespace) -> int:
    from ..sign.countersign import check_countersigners
    from ..sign.multisign import envelope_keyid
    from .audit import audit_log, signing_context

    checks = args.predicate_type is not None or args.artifact or args.digest
    if (checks or args.existing_bundle) and not args.trust_root:
        raise ConfigError("--type, --artifact, --digest and --existing-bundle need --trust-root")
    if args.tsa and not args.bundle_dir:
        raise ConfigError("--tsa needs --bundle-dir: a signature's timestamps travel in its bundle")
    if args.tsa and not args.trust_root:
        raise ConfigError("--tsa needs --trust-root: its timestamp authorities judge the tokens")
    operation_id = signing_context(args).operation_id  # a bad --operation-id stops us here
    extra: list[NamedPath] = [("ENVELOPE", args.envelope), ("--trust-root", args.trust_root)]
    extra += [("--artifact", a) for a in args.artifact]
    extra += [("--existing-bundle", b) for b in args.existing_bundle]
    with planned_with(args, extra) as outputs:
        envelope = read_envelope(args.envelope)
        root = None
        if args.trust_root:
            from .verify import load_trust_root_arg

            root = load_trust_root_arg(args.trust_root, args.root_keyid)
            statement = _check_existing(args, envelope, root)
        else:
            statement = _read_statement(args.envelope, envelope)
        bundle_dir = _bundle_dir(args, outputs)
        timestamping = _timestamping(args, root)
        certificates = _certificates(args, outputs, bundle_dir)
        with audit_log(args) as audit:
            signers = _load_signers_audited(args, audit, operation_id)
            signers = _attach_certificates(signers, certificates)
            # A key that signed already is refused before anything is said or signed.
            check_countersigners(envelope, signers, [envelope_keyid(s) for s in signers])
            if root is None:
                _describe_existing(args.envelope, envelope, statement)
            context = dataclasses.replace(
                signing_context(args, statement), operation_id=operation_id, event="countersign"
            )
            code = _countersign_and_emit(
                args,
                outputs,
                audit,
                signers=signers,
                envelope=envelope,
                context=context,
                bundle_dir=bundle_dir,
                timestamping=timestamping,
            )
        return code


def _timestamping(args: argparse.Namespace, root: TrustRoot | None) -> Timestamping | None:
    if not args.tsa or root is None:
        return None
    from ..sign.timestamps import Timestamping

    return Timestamping(tuple(args.tsa), root.timestamp_authorities, timeout=args.tsa_timeout)


def _check_existing(
    args: argparse.Namespace, envelope: Envelope, root: TrustRoot
) -> dict[str, Any] | None:
    """Every existing signature verifies under a key or identity of `root`, and the Statement
    matches --type/--artifact/--digest; returns the Statement. Raises VerificationFailure.

    The trust root's policy is replaced by one that needs exactly as many distinct keys and
    identities as the envelope has signatures: met only when every signature counted (so no
    signature is unverified, and no key signed twice), whatever the real policy (roles,
    required keys, hybrid mode) still needs; the countersignature is for that.
    """
    from ..codes import Code
    from ..errors import VerificationFailure
    from ..trust import Policy
    from ..verify import verify

    predicate_type = None
    if args.predicate_type is not None:
        from ..intoto.predicates import resolve_predicate_type

        predicate_type = resolve_predicate_type(args.predicate_type)
    bundles = [
        read_bounded(path, limit=DEFAULT_LIMITS.max_json_bytes, what="--existing-bundle")
        for path in args.existing_bundle
    ]
    count = len(envelope.signatures)
    relaxed = dataclasses.replace(root, policy=Policy(threshold=max(1, count)))
    where = f"--trust-root {args.trust_root}"
    try:
        result = verify(
            envelope,
            relaxed,
            bundles=bundles,
            artifacts=args.artifact,
            digests=args.digest,
            predicate_type=predicate_type,
        )
    except VerificationError as exc:
        detail = str(exc)
        if exc.code == Code.THRESHOLD_NOT_MET:
            unverified = [w for w in getattr(exc, "warnings", ()) if w.startswith("signature ")]
            detail = (
                f"not every one of the {count} existing signature(s) verifies under a distinct "
                f"key or identity of {where}" + (f": {unverified[0]}" if unverified else "")
            )
        raise VerificationFailure(exc.code, f"countersign refused: {detail}") from None
    counted = len(result.keys_counted) + len(result.identities_counted)
    if counted != count:  # the policy above makes this impossible; never sign on a doubt
        raise VerificationFailure(
            Code.THRESHOLD_NOT_MET,
            f"countersign refused: {counted} of {count} existing signatures verify under {where}",
        )
    return dict(result.statement)


def _read_statement(path: str, envelope: Envelope) -> dict[str, Any] | None:
    """The Statement of an in-toto payload (None for another payload type).

    One that is not a valid Statement is refused: nobody should countersign what they cannot
    read.
    """
    from ..intoto.statement import PAYLOAD_TYPE, parse_statement

    if envelope.payload_type != PAYLOAD_TYPE:
        return None
    try:
        return parse_statement(envelope.payload, allow_v01=True)
    except InputError as exc:
        raise InputError(f"{path}: payload: {exc}") from None


def _describe_existing(path: str, envelope: Envelope, statement: Mapping[str, Any] | None) -> None:
    """Say on stderr what is about to be countersigned (no --trust-root checked it)."""
    lines = [
        f"countersigning {path} (existing signatures not checked: no --trust-root)",
        f"  payloadType {envelope.payload_type} ({len(envelope.payload)} bytes, sha256 "
        f"{hashlib.sha256(envelope.payload).hexdigest()})",
    ]
    if statement is not None:
        lines.append(f"  predicateType {statement.get('predicateType')}")
        listed = statement.get("subject")
        subjects = [s for s in listed if isinstance(s, Mapping)] if isinstance(listed, list) else []
        for subject in subjects[:_SHOWN_SUBJECTS]:
            digest = subject.get("digest")
            pairs = sorted(digest.items()) if isinstance(digest, Mapping) else []
            digests = " ".join(f"{k}:{v}" for k, v in pairs)
            lines.append(f"  subject {subject.get('name', '(unnamed)')} {digests}")
        if len(subjects) > _SHOWN_SUBJECTS:
            lines.append(f"  ... and {len(subjects) - _SHOWN_SUBJECTS} more subjects")
    signed = [s.keyid or "(no keyid: keyless or another tool)" for s in envelope.signatures]
    lines.append(f"  signed so far by {len(signed)}: " + (", ".join(signed) or "nobody"))
    for line in lines:
        print(escape_controls(line), file=sys.stderr)


def _countersign_and_emit(
    args: argparse.Namespace,
    outputs: OutputSet,
    audit: AuditLog | None,
    *,
    signers: list[Signer],
    envelope: Envelope,
    context: SigningContext,
    bundle_dir: Path | None,
    timestamping: Timestamping | None,
) -> int:
    """Countersign, commit the audit records, then publish the envelope and its new bundles."""
    from ..core.dsse import Signature
    from ..sign.bundles import bundle_stem, write_bundles
    from ..sign.countersign import appended_bundles, signature_bundle_names
    from ..sign.multisign import MultiProfileSigner, envelope_keyid
    from .sign import _is_stdout, _signature_summary, certificate_line

    stem = bundle_stem(args.out)
    if bundle_dir is not None:  # each bundle file checked before anything is signed
        planned = envelope.signatures + tuple(
            Signature(sig=b"", keyid=envelope_keyid(s)) for s in signers
        )
        names = signature_bundle_names(dataclasses.replace(envelope, signatures=planned), stem)
        for name in names[len(envelope.signatures) :]:
            if name is not None:
                outputs.check(bundle_dir / name, what="bundle")
    signer = MultiProfileSigner(
        signers,
        threshold=args.threshold,
        timeout=args.timeout,
        audit=audit,
        timestamps=timestamping,
    )
    result = signer.countersign(envelope, context=context)
    added = [_signature_summary(s, sig.keyid) for s, sig in result.pairs()]
    try:
        if bundle_dir is not None:
            written = write_bundles(bundle_dir, appended_bundles(result, stem), outputs)
            for item, path in zip(added, written, strict=True):
                item["bundle"] = str(path)
        outputs.write(args.out, result.envelope.to_json() + b"\n")
        if audit is not None:
            audit.commit()  # durable before anything is published: no record, no envelope
        outputs.publish()
    except BaseException as exc:
        if audit is not None:
            with contextlib.suppress(Exception):
                audit.record_publish_failure(
                    operation_id=context.operation_id,
                    error_code=f"not-published:{type(exc).__name__}",
                )
        raise
    total = len(result.envelope.signatures)
    if args.json:
        print_json(
            {
                "schemaVersion": SCHEMA_VERSION,
                "out": args.out,
                "payloadType": envelope.payload_type,
                "payloadSha256": hashlib.sha256(envelope.payload).hexdigest(),
                "trustRootChecked": bool(args.trust_root),
                "existing": [s.keyid for s in envelope.signatures],
                "added": added,
                "signatures": total,
            }
        )
        return 0
    stream = sys.stderr if _is_stdout(args.out) else sys.stdout
    print(
        f"countersigned {escape_controls(envelope.payload_type)}: {len(added)} new "
        f"signature(s), {total} in all -> {escape_controls(args.out)}",
        file=stream,
    )
    for item in added:
        keyid = item["keyid"] or f"(keyless) {item.get('identity', '')} {item.get('issuer', '')}"
        line = f"  {item['algorithm']:<26} {keyid}  {item['key']}"
        print(escape_controls(line), file=stream)
        certificate = certificate_line(item)
        if certificate is not None:
            print(certificate, file=stream)
        if "bundle" in item:
            print(f"    bundle -> {escape_controls(item['bundle'])}", file=stream)
    return 0
