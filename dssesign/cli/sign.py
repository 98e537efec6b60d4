"""`dssesign keygen | attest | sign | statement | public-key | predicate-types`."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .._internal.fileio import read_bounded
from .._internal.text import escape_controls
from ..errors import ConfigError, InputError, PredicateError
from ..limits import DEFAULT_LIMITS
from .audit import add_audit_options
from .common import (
    PASSWORD_ENV,
    add_json,
    add_password,
    command_inputs,
    emit,
    password,
    planned_out,
    print_json,
    write_public_key,
)
from .sign_jsonl import JsonlOut, existing_lines, jsonl_content, plan_jsonl
from .signing import (
    _attach_certificates,
    _bundle_dir,
    _certificates,
    _load_signers_audited,
    _timestamping,
    add_signing,
)

if TYPE_CHECKING:
    from pathlib import Path

    from .._internal.fileio import OutputSet
    from ..audit import AuditLog
    from ..intoto.statement import ResourceDescriptor
    from ..sign.multisign import SigningContext, SigningResult
    from ..sign.signer import Signer
    from ..sign.timestamps import Timestamping
    from .oci import ImageAttach


def register(commands: Any) -> None:
    """Add `keygen`, `attest`, `sign`, `statement`, `public-key` and `predicate-types`."""
    from ..core.keys import ALGORITHMS

    keygen = commands.add_parser("keygen", help="generate a software key pair")
    keygen.add_argument(
        "--algorithm",
        required=True,
        help="one of: " + ", ".join(a.cli_name for a in ALGORITHMS.values()),
    )
    keygen.add_argument(
        "--out", required=True, metavar="PREFIX", help="writes PREFIX.key and PREFIX.pub"
    )
    keygen.add_argument("--force", action="store_true", help="overwrite existing files")
    add_password(keygen)
    add_json(keygen)
    keygen.set_defaults(handler=_cmd_keygen)

    attest = commands.add_parser(
        "attest", help="build an in-toto Statement and sign it into a DSSE envelope"
    )
    _add_statement_inputs(attest, allow_statement=True)
    add_signing(attest)
    _add_append(attest)
    add_audit_options(attest)
    from .oci import add_image_option
    from .remote import add_server_options

    add_server_options(attest)
    add_image_option(
        attest,
        legacy=True,
        help_text="attach the attestation to this image in its registry once signed (and make "
        "the image its subject when no --subject or --statement is given)",
    )
    add_json(attest)
    attest.set_defaults(handler=_cmd_attest)

    sign = commands.add_parser("sign", help="sign any payload into a DSSE envelope")
    sign.add_argument("--payload", required=True, metavar="FILE")
    sign.add_argument("--payload-type", required=True, metavar="TYPE")
    add_signing(sign)
    _add_append(sign)
    add_audit_options(sign)
    add_server_options(sign)
    add_json(sign)
    sign.set_defaults(handler=_cmd_sign)

    statement = commands.add_parser(
        "statement", help="print the in-toto Statement without signing it"
    )
    _add_statement_inputs(statement, allow_statement=False)
    statement.add_argument("--out", metavar="FILE", help="write here (default: stdout)")
    add_json(statement)
    statement.set_defaults(handler=_cmd_statement)

    public_key = commands.add_parser("public-key", help="print a key's keyid and SPKI PEM")
    public_key.add_argument("--key", required=True, metavar="REF")
    public_key.add_argument("--out", metavar="FILE", help="write the PEM here")
    add_password(public_key)
    add_json(public_key)
    public_key.set_defaults(handler=_cmd_public_key)

    types = commands.add_parser("predicate-types", help="list the predicate short names and URIs")
    add_json(types)
    types.set_defaults(handler=_cmd_predicate_types)


def _add_append(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--append",
        action="store_true",
        help="add the envelope as one more line of --out FILE.jsonl (JSON Lines: one envelope "
        "per line; the file is locked, checked, and replaced atomically); without it a .jsonl "
        "--out is written with one line",
    )


def _add_statement_inputs(parser: argparse.ArgumentParser, *, allow_statement: bool) -> None:
    parser.add_argument(
        "--subject",
        action="append",
        default=[],
        metavar="PATH|ALG:HEX",
        help="artifact file to digest, or a digest such as sha256:HEX; repeatable",
    )
    parser.add_argument(
        "--sha512", action="store_true", help="also record SHA-512 of subject files"
    )
    parser.add_argument("--predicate", metavar="FILE", help="predicate document")
    parser.add_argument(
        "--type",
        dest="predicate_type",
        metavar="TYPE",
        help="predicate type: a cosign short name (slsaprovenance1, cyclonedx, spdxjson, openvex, "
        "vsa, test-result, custom, ...) or a URI",
    )
    if allow_statement:
        parser.add_argument(
            "--no-validate",
            action="store_true",
            help="sign a known predicate type without its schema check (the Statement is still "
            "validated); said on stderr and recorded in the audit log",
        )
        parser.add_argument(
            "--statement",
            metavar="FILE",
            help="a complete in-toto Statement instead of --subject/--predicate",
        )


def _statement_from_args(args: argparse.Namespace) -> dict[str, Any]:
    from .._internal.strict_json import loads_strict
    from ..intoto.predicates import prepare_predicate
    from ..intoto.statement import validate_statement

    if getattr(args, "statement", None):
        if args.subject or args.predicate or args.predicate_type:
            raise ConfigError(
                "--statement cannot be combined with --subject, --predicate or --type"
            )
        raw = read_bounded(args.statement, limit=DEFAULT_LIMITS.max_json_bytes, what="statement")
        statement = loads_strict(raw, what=f"statement {args.statement}")
        validate_statement(statement)
        assert isinstance(statement, dict)  # validate_statement refuses anything else
        return statement
    if not args.subject and not getattr(args, "image", None):
        raise ConfigError("no subjects: give at least one --subject")
    if not args.predicate or not args.predicate_type:
        raise ConfigError("give --predicate FILE and --type TYPE (or --statement FILE)")
    raw = read_bounded(args.predicate, limit=DEFAULT_LIMITS.max_json_bytes, what="predicate")
    validate = not getattr(args, "no_validate", False)
    try:
        type_uri, predicate = prepare_predicate(args.predicate_type, raw, validate=validate)
    except PredicateError as exc:
        raise PredicateError(f"predicate {args.predicate}: {exc}", exc.path) from None
    if not validate:
        print(
            f"warning: --no-validate: the {escape_controls(type_uri)} predicate in "
            f"{escape_controls(args.predicate)} was not checked against its schema",
            file=sys.stderr,
        )
    return {"_type": None, "predicateType": type_uri, "predicate": predicate}


def _finish_statement(
    args: argparse.Namespace, partial: dict[str, Any], extra: Sequence[ResourceDescriptor] = ()
) -> dict[str, Any]:
    from ..intoto.statement import build_statement
    from ..intoto.subjects import parse_subject_arg

    if partial.get("_type") is not None:
        return partial
    from .common import file_progress

    subjects = list(extra)
    for arg in args.subject:
        with file_progress(arg) as progress:
            subjects.append(parse_subject_arg(arg, sha512=args.sha512, progress=progress))
    return build_statement(subjects, partial["predicateType"], partial["predicate"])


def _envelope_summary(result: SigningResult) -> dict[str, Any]:
    envelope = result.envelope
    return {
        "payloadType": envelope.payload_type,
        "payloadBytes": len(envelope.payload),
        "signatures": [_signature_summary(signer, sig.keyid) for signer, sig in result.pairs()],
    }


def _signature_summary(signer: Signer, keyid: str) -> dict[str, Any]:
    from ..sign.bundles import is_keyless
    from ..sign.certified import CertifiedSigner
    from ..sign.multisign import is_exportable

    item: dict[str, Any] = {
        "keyid": keyid,
        "algorithm": signer.algorithm.name,
        "key": getattr(signer, "reference", ""),
        "exportable": is_exportable(signer),
    }
    if is_keyless(signer):
        # The certificate's identity and OIDC issuer: public, and what a verifier will match.
        item["identity"] = str(getattr(signer, "identity", ""))
        item["issuer"] = str(getattr(signer, "issuer", ""))
    elif isinstance(signer, CertifiedSigner):
        # The organisation certificate its bundle carries: public, what a verifier will judge.
        item["certificate"] = {"sha256": signer.fingerprint, "subject": signer.subject}
    return item


def certificate_line(item: dict[str, Any]) -> str | None:
    """The text summary's line for a signature's certificate (escaped); None without one."""
    certificate = item.get("certificate")
    if not certificate:
        return None
    return escape_controls(
        f"    certificate {certificate['subject']} (sha256 {certificate['sha256']})"
    )


def _sign_and_emit(
    args: argparse.Namespace,
    outputs: OutputSet,
    audit: AuditLog | None,
    *,
    signers: list[Signer],
    payload: bytes,
    payload_type: str,
    context: SigningContext,
    bundle_dir: Path | None = None,
    timestamping: Timestamping | None = None,
    jsonl: JsonlOut | None = None,
    image: ImageAttach | None = None,
) -> int:
    """Sign, commit the audit records, then publish every output at once.

    --out was checked (and its temp file made) before any key was loaded; each bundle file is
    checked here before anything is signed. Nothing is published before the audit records are
    durable; an output that cannot be published after all is recorded as such. A JSON Lines
    --out (`jsonl`) gets its bundles named by payload too; with --append its lock is held from
    reading the lines there to publishing the file with one more.
    """
    from .._internal.lock import locked
    from ..sign.bundles import bundle_names, bundle_stem, bundles_for, write_bundles
    from ..sign.multisign import MultiProfileSigner

    stem = bundle_stem(args.out)
    if bundle_dir is not None:
        tagged = payload if jsonl is not None else None
        for name in bundle_names(signers, stem, payload=tagged):
            outputs.check(bundle_dir / name, what="bundle")
    signer = MultiProfileSigner(
        signers,
        threshold=args.threshold,
        timeout=args.timeout,
        audit=audit,
        timestamps=timestamping,
    )
    result = signer.sign_detailed(payload, payload_type, context=context)
    envelope = result.envelope
    summary = _envelope_summary(result)
    if getattr(args, "no_validate", False):
        summary["predicateValidated"] = False
    try:
        if bundle_dir is not None:
            # All built (keyless ones checked against their signature) and staged with the
            # envelope; published together: an envelope on disk means its bundles are there.
            files = bundles_for(
                envelope, result.signers, stem, result.timestamps, per_payload=jsonl is not None
            )
            written = write_bundles(bundle_dir, files, outputs)
            for item, path in zip(summary["signatures"], written, strict=True):
                item["bundle"] = str(path)
            if timestamping is not None:
                from ..sign.timestamps import token_time

                for item, tokens in zip(summary["signatures"], result.timestamps, strict=True):
                    item["timestamps"] = [
                        token_time(token)[0].strftime("%Y-%m-%dT%H:%M:%SZ") for token in tokens
                    ]
        appending = jsonl is not None and jsonl.append
        with locked(args.out, what="--out") if appending else contextlib.nullcontext():
            if args.out:
                data = envelope.to_json() + b"\n"
                if jsonl is not None:
                    data, summary["line"] = jsonl_content(jsonl, envelope)
                outputs.write(args.out, data)
                if appending:
                    outputs.append_target(args.out)
            if audit is not None:
                # Durable and checkpointed once everything is staged: no record, no envelope,
                # and after the record only the renames can still fail.
                audit.commit()
            outputs.publish()
    except BaseException as exc:
        if audit is not None:
            with contextlib.suppress(Exception):
                audit.record_publish_failure(
                    operation_id=context.operation_id,
                    error_code=f"not-published:{type(exc).__name__}",
                )
        raise
    if not args.out and not args.json:
        emit(envelope.to_json(), None)
    if image is not None and args.json:  # after the audit record and the files
        summary["attached"] = image.attach(result, stream=None)
    if args.json:
        if args.out:
            summary["out"] = args.out
        else:
            summary["envelope"] = envelope.to_dict()
        print_json(summary)
        return 0
    # The summary goes where the envelope does not: stdout unless the envelope went there.
    stream = sys.stdout if args.out and not _is_stdout(args.out) else sys.stderr
    print(
        escape_controls(
            f"signed {payload_type} ({len(payload)} bytes) with {len(envelope.signatures)} "
            f"of {len(signers)} keys -> {args.out or 'stdout'}"
            + (f" (line {summary['line']})" if "line" in summary else "")
        ),
        file=stream,
    )
    for item in summary["signatures"]:
        keyid = item["keyid"] or f"(keyless) {item.get('identity', '')} {item.get('issuer', '')}"
        marks = "  [exportable]" if item["exportable"] else ""
        line = f"  {item['algorithm']:<26} {keyid}  {item['key']}{marks}"
        print(escape_controls(line), file=stream)
        certificate = certificate_line(item)
        if certificate is not None:
            print(certificate, file=stream)
        if "bundle" in item:
            print(f"    bundle -> {escape_controls(item['bundle'])}", file=stream)
        for moment in item.get("timestamps", []):
            print(f"    timestamped at {moment}", file=stream)
    if image is not None:  # after the audit record and the files: a failure here loses nothing
        image.attach(result, stream=stream)
    return 0


def _is_stdout(path: str) -> bool:
    """`path` is this process's standard output (`/dev/stdout`, `/dev/fd/1`, its terminal)."""
    import os

    try:
        here, there = os.stat(path), os.fstat(sys.stdout.fileno())
    except (OSError, ValueError):
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _signing_command(
    args: argparse.Namespace,
    payload_of: Callable[[list[Signer]], tuple[bytes, str, dict[str, Any] | None]],
) -> int:
    """The frame of `attest` and `sign`: outputs checked, audit log opened, keys loaded, then
    `payload_of(signers)` -> (payload, payloadType, Statement or None) signed and published.

    Every check that needs no key comes first; a failure anywhere leaves no output behind.
    """
    from .audit import audit_log, signing_context

    operation_id = signing_context(args).operation_id  # a bad --operation-id stops us here
    jsonl = plan_jsonl(args)
    with planned_out(args) as outputs:
        if jsonl is not None and jsonl.append:
            jsonl = dataclasses.replace(jsonl, checked=existing_lines(jsonl.path, None))
        bundle_dir = _bundle_dir(args, outputs)
        timestamping = _timestamping(args, bundle_dir)
        certificates = _certificates(args, outputs, bundle_dir)
        with audit_log(args) as audit:
            signers = _load_signers_audited(args, audit, operation_id)
            # Each --certificate matched to its key before anything is signed.
            signers = _attach_certificates(signers, certificates)
            payload, payload_type, statement = payload_of(signers)
            context = dataclasses.replace(
                signing_context(args, statement), operation_id=operation_id
            )
            image = getattr(args, "image_attach", None)
            code = _sign_and_emit(
                args,
                outputs,
                audit,
                signers=signers,
                payload=payload,
                payload_type=payload_type,
                context=context,
                bundle_dir=bundle_dir,
                timestamping=timestamping,
                jsonl=jsonl,
                image=image,
            )
        return code


def _cmd_keygen(args: argparse.Namespace) -> int:
    from ..core.keys import get_algorithm
    from ..profiles import software

    algorithm = get_algorithm(args.algorithm)
    passphrase = password(args)
    signer = software.generate(algorithm)
    key_path, pub_path = software.write_keypair(
        signer, args.out, password=passphrase, force=args.force, inputs=command_inputs(args)
    )
    if args.json:
        print_json(
            {
                "keyid": signer.keyid,
                "algorithm": algorithm.name,
                "privateKey": str(key_path),
                "publicKey": str(pub_path),
                "encrypted": passphrase is not None,
            }
        )
    else:
        print(signer.keyid)
    if passphrase is None:
        print(
            f"warning: {key_path} is not encrypted "
            f"(set {PASSWORD_ENV} or --password-file to encrypt it)",
            file=sys.stderr,
        )
    return 0


def _cmd_attest(args: argparse.Namespace) -> int:
    from ..intoto.statement import PAYLOAD_TYPE, statement_payload

    partial = _statement_from_args(args)  # refuse a bad predicate before touching any key
    if args.server:
        from .remote import remote_sign

        def built() -> tuple[bytes, str, dict[str, Any] | None]:
            statement = _finish_statement(args, partial)
            return statement_payload(statement), PAYLOAD_TYPE, statement

        return remote_sign(args, built)
    extra: list[ResourceDescriptor] = []
    if args.image is not None:
        from .oci import plan_image_attach

        # The registry reached and the image resolved before any key is used.
        args.image_attach = plan_image_attach(args)
        if not args.subject and partial.get("_type") is None:
            extra.append(args.image_attach.subject())

    def payload_of(signers: list[Signer]) -> tuple[bytes, str, dict[str, Any] | None]:
        statement = _finish_statement(args, partial, extra)
        if args.image is not None:
            args.image_attach.check(statement)
        return statement_payload(statement), PAYLOAD_TYPE, statement

    return _signing_command(args, payload_of)


def _cmd_sign(args: argparse.Namespace) -> int:
    payload_type = args.payload_type
    if not payload_type:
        raise ConfigError("--payload-type must not be empty")
    if not payload_type.isprintable():
        # argv bytes that are not UTF-8 arrive as lone surrogates (not printable); the PAE
        # needs real UTF-8 text, and a control character has no business in a media type.
        raise ConfigError("--payload-type must be printable UTF-8 text")
    limit = DEFAULT_LIMITS.max_payload_type_chars
    if len(payload_type) > limit:
        raise ConfigError(
            f"--payload-type is {len(payload_type)} characters; verifiers refuse more than {limit}"
        )
    payload = read_bounded(args.payload, limit=DEFAULT_LIMITS.max_payload_bytes, what="payload")
    statement = _check_in_toto_payload(payload, payload_type, args.payload)
    if args.server:
        from .remote import remote_sign

        return remote_sign(args, lambda: (payload, payload_type, statement))
    return _signing_command(args, lambda signers: (payload, payload_type, statement))


def _check_in_toto_payload(payload: bytes, payload_type: str, source: str) -> dict[str, Any] | None:
    """An in-toto payload is held to what the verifier reads back: strict JSON (no duplicate
    members, bounded size and depth) and a valid Statement. Returns it (for the audit record).

    A payload type that only differs from the in-toto one by case or parameters is refused:
    other verifiers may take it for in-toto, ours would not.
    """
    from ..intoto.statement import PAYLOAD_TYPE, parse_statement

    if payload_type != PAYLOAD_TYPE:
        base = payload_type.split(";", 1)[0].strip().lower()
        if base == PAYLOAD_TYPE:
            raise ConfigError(
                f"--payload-type {payload_type!r}: write the in-toto type exactly as "
                f"{PAYLOAD_TYPE} (verifiers compare it byte for byte)"
            )
        return None
    try:
        return parse_statement(payload, allow_v01=True)
    except InputError as exc:
        raise type(exc)(f"payload {source}: {exc}") from None


def _cmd_statement(args: argparse.Namespace) -> int:
    from ..intoto.statement import statement_payload

    with planned_out(args) as outputs:
        statement = _finish_statement(args, _statement_from_args(args))
        payload = statement_payload(statement)
        if args.json and not args.out:
            print_json(statement)
        else:
            emit(payload, args.out, outputs=outputs)
    return 0


def _cmd_public_key(args: argparse.Namespace) -> int:
    from ..sign.signer import SignerOptions, load_signer

    with planned_out(args) as outputs:
        public = load_signer(args.key, SignerOptions(password=password(args))).public_key
        info = {"keyid": public.keyid, "algorithm": public.algorithm.name, "publicKey": public.pem}
        write_public_key(args, public, info, outputs=outputs)
    return 0


def _cmd_predicate_types(args: argparse.Namespace) -> int:
    from ..intoto.predicates import known_predicate_types

    types = known_predicate_types()
    if args.json:
        print_json([{"uri": t.uri, "shortNames": list(t.short_names)} for t in types])
    else:
        for t in types:
            print(f"{', '.join(t.short_names) or '-':<32} {t.uri}")
    return 0
