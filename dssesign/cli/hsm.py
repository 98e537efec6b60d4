"""`dssesign hsm keygen | list | public-key | csr`: PKCS#11 token keys (the PIN never in argv)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from .common import (
    Parser,
    add_json,
    add_new_key_output,
    add_public_key_command,
    planned_out,
    print_json,
    write_new_key,
    write_public_key,
)
from .csr import add_csr_options, run_csr

_URI_HELP = (
    "RFC 7512 reference, e.g. pkcs11:token=LABEL;object=KEY?pin-source=env:NAME "
    "(module: module-path=, else $DSSESIGN_PKCS11_MODULE, else SoftHSM2; "
    "PIN: pin-source=env:NAME|file:PATH, else $DSSESIGN_PKCS11_PIN)"
)


def register(commands: Any) -> None:
    """Add `hsm keygen`, `hsm list`, `hsm public-key` and `hsm csr`."""
    hsm = commands.add_parser("hsm", help="manage keys on a PKCS#11 token (HSM)")
    sub = hsm.add_subparsers(dest="hsm_command", required=True, parser_class=Parser)

    keygen = sub.add_parser(
        "keygen", help="create a non-extractable, sensitive key pair on the token"
    )
    keygen.add_argument("--uri", required=True, metavar="PKCS11_URI", help=_URI_HELP)
    keygen.add_argument(
        "--algorithm",
        required=True,
        help="ecdsa-p256, ecdsa-p384, ed25519, rsa-pss-3072 or rsa-pss-4096",
    )
    add_new_key_output(keygen)
    keygen.set_defaults(handler=_cmd_keygen)

    listing = sub.add_parser("list", help="list tokens and the key pairs on them")
    listing.add_argument(
        "--uri",
        default="pkcs11:",
        metavar="PKCS11_URI",
        help="restrict to token= and choose module-path=/pin-source= (default: all tokens)",
    )
    add_json(listing)
    listing.set_defaults(handler=_cmd_list)

    add_public_key_command(
        sub,
        summary="print or write a token key's SPKI PEM",
        metavar="PKCS11_URI",
        uri_help=_URI_HELP,
        handler=_cmd_public_key,
    )

    csr = sub.add_parser(
        "csr", help="write a CSR signed on the token, for a CA to certify the key it never sees"
    )
    csr.add_argument("--uri", required=True, metavar="PKCS11_URI", help=_URI_HELP)
    add_csr_options(csr)
    csr.set_defaults(handler=_cmd_csr)


def _cmd_keygen(args: argparse.Namespace) -> int:
    from ..core.keys import get_algorithm
    from ..profiles import pkcs11

    algorithm = get_algorithm(args.algorithm)
    uri = pkcs11.parse_uri(args.uri)
    with planned_out(args) as outputs:  # a bad --out never costs a key on the token
        public, key_id = pkcs11.generate_keypair(uri, algorithm)
        info = {
            "keyid": public.keyid,
            "algorithm": algorithm.name,
            "token": uri.token,
            "label": uri.object,
            "id": key_id.hex(),
            "reference": dataclasses.replace(uri, id=key_id).describe(),
            "publicKey": public.pem,
        }
        write_new_key(args, public, info, outputs=outputs)
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from ..profiles import pkcs11

    tokens, keys = pkcs11.list_keys(args.uri)
    if args.json:
        print_json({"tokens": tokens, "keys": [k.to_dict() for k in keys]})
        return 0
    if not keys:
        print(f"no keys on {len(tokens)} token(s): {', '.join(tokens) or '-'}", file=sys.stderr)
        return 0
    print(f"{'TOKEN':<16} {'LABEL':<20} {'ID':<18} {'ALGORITHM':<26} {'KEYID':<64} FLAGS")
    for key in keys:
        extractable = "extractable" if key.extractable else "non-extractable"
        flags = f"{extractable},{'sensitive' if key.sensitive else 'not-sensitive'}"
        print(
            f"{key.token:<16} {key.label:<20} {key.id.hex()[:16]:<18} {key.algorithm:<26} "
            f"{key.keyid} {flags}"
        )
    return 0


def _cmd_public_key(args: argparse.Namespace) -> int:
    from ..profiles import pkcs11

    with planned_out(args) as outputs:
        public = pkcs11.read_public_key(args.uri)
        info = {"keyid": public.keyid, "algorithm": public.algorithm.name, "publicKey": public.pem}
        write_public_key(args, public, info, outputs=outputs)
    return 0


def _cmd_csr(args: argparse.Namespace) -> int:
    from ..profiles import pkcs11

    pkcs11.parse_uri(args.uri)  # a token key only: never a key file under `hsm`
    return run_csr(args, args.uri)
