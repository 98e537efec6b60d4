"""The `dssesign` command: exit 0 success, 1 verification or signing failed, 2 bad input."""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn

from . import __version__
from ._fileio import atomic_write, read_bounded
from ._json import loads_strict
from .dsse import Envelope
from .errors import ConfigError, DssesignError, InputError, PredicateError
from .keys import ALGORITHMS, get_algorithm
from .limits import DEFAULT_LIMITS
from .multisign import MultiProfileSigner
from .predicates import known_predicate_types, prepare_predicate
from .profiles import software
from .signer import Signer, SignerOptions, load_signer
from .statement import (
    PAYLOAD_TYPE,
    ResourceDescriptor,
    build_statement,
    parse_subject_arg,
    statement_payload,
    validate_statement,
)

PASSWORD_ENV = "DSSESIGN_KEY_PASSWORD"  # noqa: S105 - the variable's name, not a secret
_MAX_SECRET_FILE = 4096


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one `error:` line and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see '{self.prog} --help')\n")


def _add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
    )


def _add_password(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--password-file",
        metavar="FILE",
        help=f"file holding the key passphrase (default: ${PASSWORD_ENV})",
    )


def _add_signing(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--key",
        action="append",
        required=True,
        metavar="REF",
        help="key reference (PATH, file://PATH, or a profile's scheme); repeat for N signatures",
    )
    parser.add_argument(
        "--threshold",
        type=int,
        metavar="K",
        help="succeed when at least K keys sign (default: all must sign)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="per-signer time limit (default: 60)",
    )
    parser.add_argument("--out", metavar="FILE", help="write the envelope here (default: stdout)")
    _add_password(parser)


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
            "--statement",
            metavar="FILE",
            help="a complete in-toto Statement instead of --subject/--predicate",
        )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dssesign", description=__doc__)
    parser.add_argument("--version", action="version", version=f"dssesign {__version__}")
    parser.add_argument(
        "--json", action="store_true", default=False, help="machine-readable output"
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

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
    _add_password(keygen)
    _add_json(keygen)

    attest = commands.add_parser(
        "attest", help="build an in-toto Statement and sign it into a DSSE envelope"
    )
    _add_statement_inputs(attest, allow_statement=True)
    _add_signing(attest)
    _add_json(attest)

    sign = commands.add_parser("sign", help="sign any payload into a DSSE envelope")
    sign.add_argument("--payload", required=True, metavar="FILE")
    sign.add_argument("--payload-type", required=True, metavar="TYPE")
    _add_signing(sign)
    _add_json(sign)

    statement = commands.add_parser(
        "statement", help="print the in-toto Statement without signing it"
    )
    _add_statement_inputs(statement, allow_statement=False)
    statement.add_argument("--out", metavar="FILE", help="write here (default: stdout)")
    _add_json(statement)

    public_key = commands.add_parser("public-key", help="print a key's keyid and SPKI PEM")
    public_key.add_argument("--key", required=True, metavar="REF")
    public_key.add_argument("--out", metavar="FILE", help="write the PEM here")
    _add_password(public_key)
    _add_json(public_key)

    types = commands.add_parser("predicate-types", help="list the predicate short names and URIs")
    _add_json(types)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        handler = _HANDLERS[args.command]
        return handler(args)
    except DssesignError as exc:
        _report(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: still one line, never an accept
        _report(exc, prefix="internal error: ")
        return 2


def _report(exc: BaseException, *, prefix: str = "") -> None:
    if os.environ.get("DSSESIGN_DEBUG") == "1":
        traceback.print_exc()
    text = " ".join(str(exc).split()) or type(exc).__name__
    print(f"error: {prefix}{text}", file=sys.stderr)


# --- inputs ---------------------------------------------------------------------------------


def _read_secret_file(path: str) -> bytes:
    data = read_bounded(path, limit=_MAX_SECRET_FILE, what="password file")
    return data.removesuffix(b"\n").removesuffix(b"\r")


def _password(args: argparse.Namespace) -> bytes | None:
    if getattr(args, "password_file", None):
        return _read_secret_file(args.password_file) or None
    from_env = os.environ.get(PASSWORD_ENV)
    return from_env.encode("utf-8") if from_env else None


def _load_signers(args: argparse.Namespace) -> list[Signer]:
    options = SignerOptions(password=_password(args))
    return [load_signer(ref, options) for ref in args.key]


def _statement_from_args(args: argparse.Namespace) -> dict[str, Any]:
    if getattr(args, "statement", None):
        if args.subject or args.predicate or args.predicate_type:
            raise ConfigError(
                "--statement cannot be combined with --subject, --predicate or --type"
            )
        raw = read_bounded(args.statement, limit=DEFAULT_LIMITS.max_json_bytes, what="statement")
        statement = loads_strict(raw, what=f"statement {args.statement}")
        validate_statement(statement)
        if not isinstance(statement, dict):  # pragma: no cover - validate_statement checks
            raise InputError("statement: expected a JSON object")
        return statement
    if not args.subject:
        raise ConfigError("no subjects: give at least one --subject")
    if not args.predicate or not args.predicate_type:
        raise ConfigError("give --predicate FILE and --type TYPE (or --statement FILE)")
    raw = read_bounded(args.predicate, limit=DEFAULT_LIMITS.max_json_bytes, what="predicate")
    try:
        type_uri, predicate = prepare_predicate(args.predicate_type, raw)
    except PredicateError as exc:
        raise PredicateError(f"predicate {args.predicate}: {exc}", exc.path) from None
    return {"_type": None, "predicateType": type_uri, "predicate": predicate}


def _finish_statement(args: argparse.Namespace, partial: dict[str, Any]) -> dict[str, Any]:
    if partial.get("_type") is not None:
        return partial
    subjects: list[ResourceDescriptor] = [
        parse_subject_arg(arg, sha512=args.sha512) for arg in args.subject
    ]
    return build_statement(subjects, partial["predicateType"], partial["predicate"])


# --- output ---------------------------------------------------------------------------------


def _emit(data: bytes, out: str | None) -> None:
    if out:
        atomic_write(out, data if data.endswith(b"\n") else data + b"\n")
    else:
        sys.stdout.buffer.write(data if data.endswith(b"\n") else data + b"\n")
        sys.stdout.flush()


def _print_json(obj: object) -> None:
    print(json.dumps(obj, indent=2, sort_keys=False))


def _envelope_summary(envelope: Envelope, signers: Sequence[Signer]) -> dict[str, Any]:
    by_keyid = {s.keyid: s for s in signers}
    return {
        "payloadType": envelope.payload_type,
        "payloadBytes": len(envelope.payload),
        "signatures": [
            {
                "keyid": sig.keyid,
                "algorithm": by_keyid[sig.keyid].algorithm.name,
                "key": getattr(by_keyid[sig.keyid], "reference", ""),
            }
            for sig in envelope.signatures
        ],
    }


def _sign_and_emit(
    args: argparse.Namespace, signers: list[Signer], payload: bytes, payload_type: str
) -> int:
    signer = MultiProfileSigner(signers, threshold=args.threshold, timeout=args.timeout)
    envelope = signer.sign(payload, payload_type)
    summary = _envelope_summary(envelope, signers)
    if args.json:
        if args.out:
            _emit(envelope.to_json(), args.out)
            summary["out"] = args.out
        else:
            summary["envelope"] = envelope.to_dict()
        _print_json(summary)
        return 0
    _emit(envelope.to_json(), args.out)
    stream = sys.stdout if args.out else sys.stderr
    where = args.out or "stdout"
    print(
        f"signed {payload_type} ({len(payload)} bytes) with {len(envelope.signatures)} "
        f"of {len(signers)} keys -> {where}",
        file=stream,
    )
    for item in summary["signatures"]:
        print(f"  {item['algorithm']:<26} {item['keyid']}  {item['key']}", file=stream)
    return 0


# --- commands -------------------------------------------------------------------------------


def _cmd_keygen(args: argparse.Namespace) -> int:
    algorithm = get_algorithm(args.algorithm)
    password = _password(args)
    signer = software.generate(algorithm)
    key_path, pub_path = software.write_keypair(
        signer, args.out, password=password, force=args.force
    )
    if args.json:
        _print_json(
            {
                "keyid": signer.keyid,
                "algorithm": algorithm.name,
                "privateKey": str(key_path),
                "publicKey": str(pub_path),
                "encrypted": password is not None,
            }
        )
    else:
        print(signer.keyid)
    if password is None:
        print(
            f"warning: {key_path} is not encrypted "
            f"(set {PASSWORD_ENV} or --password-file to encrypt it)",
            file=sys.stderr,
        )
    return 0


def _cmd_attest(args: argparse.Namespace) -> int:
    partial = _statement_from_args(args)  # refuse a bad predicate before touching any key
    signers = _load_signers(args)
    statement = _finish_statement(args, partial)
    return _sign_and_emit(args, signers, statement_payload(statement), PAYLOAD_TYPE)


def _cmd_sign(args: argparse.Namespace) -> int:
    if not args.payload_type:
        raise ConfigError("--payload-type must not be empty")
    payload = read_bounded(args.payload, limit=DEFAULT_LIMITS.max_payload_bytes, what="payload")
    signers = _load_signers(args)
    return _sign_and_emit(args, signers, payload, args.payload_type)


def _cmd_statement(args: argparse.Namespace) -> int:
    statement = _finish_statement(args, _statement_from_args(args))
    payload = statement_payload(statement)
    if args.json and not args.out:
        _print_json(statement)
    else:
        _emit(payload, args.out)
    return 0


def _cmd_public_key(args: argparse.Namespace) -> int:
    signer = load_signer(args.key, SignerOptions(password=_password(args)))
    pem = signer.public_key.pem
    if args.out:
        atomic_write(args.out, pem.encode("ascii"))
    if args.json:
        _print_json({"keyid": signer.keyid, "algorithm": signer.algorithm.name, "publicKey": pem})
    elif not args.out:
        print(f"# keyid {signer.keyid} ({signer.algorithm.name})")
        print(pem, end="")
    else:
        print(signer.keyid)
    return 0


def _cmd_predicate_types(args: argparse.Namespace) -> int:
    types = known_predicate_types()
    if args.json:
        _print_json([{"uri": t.uri, "shortNames": list(t.short_names)} for t in types])
    else:
        for t in types:
            print(f"{', '.join(t.short_names) or '-':<32} {t.uri}")
    return 0


_HANDLERS = {
    "keygen": _cmd_keygen,
    "attest": _cmd_attest,
    "sign": _cmd_sign,
    "statement": _cmd_statement,
    "public-key": _cmd_public_key,
    "predicate-types": _cmd_predicate_types,
}


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
