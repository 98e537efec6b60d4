"""`dssesign csr`: a PKCS#10 request signed by any key, so a CA certifies the key where it lives.

`hsm csr` and `kms csr` are this command on their own references: they share `add_csr_options`
and `run_csr`. Secrets (passphrase, PIN, tokens) come from files or the environment only.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .common import add_json, add_password, emit, planned_out, print_json
from .signing import signer_options

if TYPE_CHECKING:
    from ..sign.signer import SignerOptions

#: Version of the `--json` report.
SCHEMA_VERSION = 1


def register(commands: Any) -> None:
    """Add `csr --key REF --subject DN`."""
    csr = commands.add_parser(
        "csr", help="write a PKCS#10 certificate signing request signed by a key"
    )
    csr.add_argument(
        "--key",
        required=True,
        metavar="REF",
        help="key reference (PATH, file://PATH, pkcs11:..., awskms://..., hashivault://...)",
    )
    add_csr_options(csr)
    add_password(csr)
    csr.set_defaults(handler=_cmd_csr)


def add_csr_options(parser: argparse.ArgumentParser) -> None:
    """--subject, --out and --json: what `run_csr` reads."""
    parser.add_argument(
        "--subject",
        required=True,
        dest="subject_dn",  # not `subject`: command_inputs reads that as artifact files
        metavar="DN",
        help="the certificate's subject in RFC 4514 form, e.g. 'CN=release signing,O=Example,C=DE'",
    )
    parser.add_argument("--out", metavar="FILE", help="write the CSR (PEM) here (default: stdout)")
    add_json(parser)


def run_csr(args: argparse.Namespace, ref: str, options: SignerOptions | None = None) -> int:
    """Load the key `ref` names, have it sign a CSR for --subject, write the PEM.

    The DN and --out are checked before the key is loaded (no PIN try, no KMS call for a
    typo); --out is written atomically and only after the CSR's signature verified.
    """
    from ..sign.csr import build_csr, parse_subject
    from ..sign.signer import load_signer

    parse_subject(args.subject_dn)
    with planned_out(args) as outputs:
        signer = load_signer(ref, options)
        try:
            pem = build_csr(signer, args.subject_dn)
        finally:
            close = getattr(signer, "close", None)
            if callable(close):
                close()  # a token session is logged out now, not at interpreter exit
        if args.out:
            emit(pem, args.out, outputs=outputs)
    public = signer.public_key
    if args.json:
        print_json(
            {
                "schemaVersion": SCHEMA_VERSION,
                "keyid": public.keyid,
                "algorithm": public.algorithm.name,
                "subject": args.subject_dn,
                "out": args.out,
                "csr": pem.decode("ascii"),
            }
        )
    elif args.out:
        print(public.keyid)
    else:
        emit(pem, None)
    return 0


def _cmd_csr(args: argparse.Namespace) -> int:
    if args.key == "keyless":
        raise ConfigError(
            "--key keyless: a keyless key lives for one signature; a CSR needs a lasting key"
        )
    return run_csr(args, args.key, signer_options(args))
