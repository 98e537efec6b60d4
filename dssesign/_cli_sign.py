"""`dssesign keygen | attest | sign | statement | public-key | predicate-types`."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from ._cli_audit import add_audit_options
from ._cli_common import (
    PASSWORD_ENV,
    add_json,
    add_password,
    emit,
    password,
    print_json,
    write_public_key,
)
from ._fileio import read_bounded
from .errors import ConfigError, InputError, PredicateError
from .limits import DEFAULT_LIMITS

if TYPE_CHECKING:
    from pathlib import Path

    from .multisign import SigningResult
    from .signer import Signer, SignerOptions

#: Environment variable the keyless profile reads the OIDC identity token from.
OIDC_TOKEN_ENV = "DSSESIGN_OIDC_TOKEN"  # noqa: S105 - the variable's name, not a secret
_MAX_TOKEN_FILE = 64 * 1024


def register(commands: Any) -> None:
    from .keys import ALGORITHMS

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
    add_audit_options(attest)
    add_json(attest)
    attest.set_defaults(handler=_cmd_attest)

    sign = commands.add_parser("sign", help="sign any payload into a DSSE envelope")
    sign.add_argument("--payload", required=True, metavar="FILE")
    sign.add_argument("--payload-type", required=True, metavar="TYPE")
    add_signing(sign)
    add_audit_options(sign)
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


def add_signing(parser: argparse.ArgumentParser, *, out: bool = True) -> None:
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
    if out:
        parser.add_argument(
            "--out", metavar="FILE", help="write the envelope here (default: stdout)"
        )
        parser.add_argument(
            "--bundle-dir",
            metavar="DIR",
            help="also write one Sigstore bundle (v0.3) per signature here: "
            "STEM.<keyid16>.sigstore.json, keyless: STEM.keyless-<n>.sigstore.json "
            "(STEM: the --out name without .json, else 'envelope')",
        )
    add_password(parser)
    parser.add_argument(
        "--identity-token-file",
        metavar="FILE",
        help=f"OIDC identity token for --key keyless (default: ${OIDC_TOKEN_ENV}, "
        "then ambient CI credentials)",
    )
    parser.add_argument(
        "--trust-config",
        metavar="FILE",
        help="Sigstore ClientTrustConfig JSON naming the instance for --key keyless "
        "(default: $DSSESIGN_SIGSTORE_TRUST_CONFIG, then the public-good instance)",
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
            "--statement",
            metavar="FILE",
            help="a complete in-toto Statement instead of --subject/--predicate",
        )


def signer_options(args: argparse.Namespace) -> SignerOptions:
    """Secrets and instance settings for the key loaders, from files or the environment."""
    from pathlib import Path

    from .signer import SignerOptions

    token = None
    token_file = getattr(args, "identity_token_file", None)
    if token_file:
        raw = read_bounded(token_file, limit=_MAX_TOKEN_FILE, what="identity token file")
        try:
            token = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            raise InputError(f"identity token file {token_file}: not ASCII text") from None
        if not token:
            raise InputError(f"identity token file {token_file}: empty")
    trust_config = getattr(args, "trust_config", None)
    if trust_config and not Path(trust_config).is_file():
        raise InputError(f"trust config {trust_config}: no such file")
    # Without --identity-token-file the keyless loader reads $DSSESIGN_OIDC_TOKEN itself.
    return SignerOptions(
        password=password(args),
        identity_token=token,
        trust_config=Path(trust_config) if trust_config else None,
    )


def load_signers(args: argparse.Namespace) -> list[Signer]:
    from .signer import load_signer

    options = signer_options(args)
    return [load_signer(ref, options) for ref in args.key]


def _load_signers_audited(args: argparse.Namespace) -> list[Signer]:
    """`load_signers`, recording a key that fails to load in the audit log (if one is set)."""
    from ._cli_audit import record_load_failure
    from .signer import load_signer

    options = signer_options(args)
    signers = []
    for ref in args.key:
        try:
            signers.append(load_signer(ref, options))
        except Exception as exc:
            record_load_failure(args, ref, exc)
            raise
    return signers


def _statement_from_args(args: argparse.Namespace) -> dict[str, Any]:
    from ._json import loads_strict
    from .predicates import prepare_predicate
    from .statement import validate_statement

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
    from .statement import build_statement, parse_subject_arg

    if partial.get("_type") is not None:
        return partial
    subjects = [parse_subject_arg(arg, sha512=args.sha512) for arg in args.subject]
    return build_statement(subjects, partial["predicateType"], partial["predicate"])


def _envelope_summary(result: SigningResult) -> dict[str, Any]:
    envelope = result.envelope
    return {
        "payloadType": envelope.payload_type,
        "payloadBytes": len(envelope.payload),
        "signatures": [_signature_summary(signer, sig.keyid) for signer, sig in result.pairs()],
    }


def _signature_summary(signer: Signer, keyid: str) -> dict[str, Any]:
    from .bundles import is_keyless

    item = {
        "keyid": keyid,
        "algorithm": signer.algorithm.name,
        "key": getattr(signer, "reference", ""),
    }
    if is_keyless(signer):
        # The certificate's identity and OIDC issuer: public, and what a verifier will match.
        item["identity"] = str(getattr(signer, "identity", ""))
        item["issuer"] = str(getattr(signer, "issuer", ""))
    return item


def _sign_and_emit(
    args: argparse.Namespace,
    signers: list[Signer],
    payload: bytes,
    payload_type: str,
    statement: dict[str, Any] | None = None,
    *,
    bundle_dir: Path | None = None,
) -> int:
    from ._cli_audit import open_audit_log, signing_context
    from .bundles import bundle_stem, bundles_for, write_bundles
    from .multisign import MultiProfileSigner

    context = signing_context(args, statement)
    audit = open_audit_log(args)
    try:
        signer = MultiProfileSigner(
            signers, threshold=args.threshold, timeout=args.timeout, audit=audit
        )
        result = signer.sign_detailed(payload, payload_type, context=context)
    finally:
        if audit is not None:
            audit.close()  # the closing checkpoint; a failure here stops the envelope
    envelope = result.envelope
    summary = _envelope_summary(result)
    if bundle_dir is not None:
        # All built (keyless ones checked against their signature) before any is written, and
        # written before the envelope: an envelope on disk means its bundles are there too.
        files = bundles_for(envelope, result.signers, bundle_stem(args.out))
        written = write_bundles(bundle_dir, files)
        for item, path in zip(summary["signatures"], written, strict=True):
            item["bundle"] = str(path)
    if args.out or not args.json:
        emit(envelope.to_json(), args.out)
    if args.json:
        if args.out:
            summary["out"] = args.out
        else:
            summary["envelope"] = envelope.to_dict()
        print_json(summary)
        return 0
    stream = sys.stdout if args.out else sys.stderr
    print(
        f"signed {payload_type} ({len(payload)} bytes) with {len(envelope.signatures)} "
        f"of {len(signers)} keys -> {args.out or 'stdout'}",
        file=stream,
    )
    for item in summary["signatures"]:
        keyid = item["keyid"] or f"(keyless) {item.get('identity', '')} {item.get('issuer', '')}"
        print(f"  {item['algorithm']:<26} {keyid}  {item['key']}", file=stream)
        if "bundle" in item:
            print(f"    bundle -> {item['bundle']}", file=stream)
    return 0


def _bundle_dir(args: argparse.Namespace) -> Path | None:
    """--bundle-dir, created now: before any key is loaded (keyless loading costs a certificate)."""
    if not getattr(args, "bundle_dir", None):
        return None
    from .bundles import prepare_bundle_dir

    return prepare_bundle_dir(args.bundle_dir)


def _cmd_keygen(args: argparse.Namespace) -> int:
    from .keys import get_algorithm
    from .profiles import software

    algorithm = get_algorithm(args.algorithm)
    passphrase = password(args)
    signer = software.generate(algorithm)
    key_path, pub_path = software.write_keypair(
        signer, args.out, password=passphrase, force=args.force
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
    from .statement import PAYLOAD_TYPE, statement_payload

    partial = _statement_from_args(args)  # refuse a bad predicate before touching any key
    bundle_dir = _bundle_dir(args)
    signers = _load_signers_audited(args)
    statement = _finish_statement(args, partial)
    payload = statement_payload(statement)
    return _sign_and_emit(args, signers, payload, PAYLOAD_TYPE, statement, bundle_dir=bundle_dir)


def _cmd_sign(args: argparse.Namespace) -> int:
    if not args.payload_type:
        raise ConfigError("--payload-type must not be empty")
    if not args.payload_type.isprintable():
        # argv bytes that are not UTF-8 arrive as lone surrogates (not printable); the PAE
        # needs real UTF-8 text, and a control character has no business in a media type.
        raise ConfigError("--payload-type must be printable UTF-8 text")
    payload = read_bounded(args.payload, limit=DEFAULT_LIMITS.max_payload_bytes, what="payload")
    bundle_dir = _bundle_dir(args)
    signers = _load_signers_audited(args)
    return _sign_and_emit(args, signers, payload, args.payload_type, bundle_dir=bundle_dir)


def _cmd_statement(args: argparse.Namespace) -> int:
    from .statement import statement_payload

    statement = _finish_statement(args, _statement_from_args(args))
    payload = statement_payload(statement)
    if args.json and not args.out:
        print_json(statement)
    else:
        emit(payload, args.out)
    return 0


def _cmd_public_key(args: argparse.Namespace) -> int:
    from .signer import SignerOptions, load_signer

    public = load_signer(args.key, SignerOptions(password=password(args))).public_key
    info = {"keyid": public.keyid, "algorithm": public.algorithm.name, "publicKey": public.pem}
    write_public_key(args, public, info)
    return 0


def _cmd_predicate_types(args: argparse.Namespace) -> int:
    from .predicates import known_predicate_types

    types = known_predicate_types()
    if args.json:
        print_json([{"uri": t.uri, "shortNames": list(t.short_names)} for t in types])
    else:
        for t in types:
            print(f"{', '.join(t.short_names) or '-':<32} {t.uri}")
    return 0
