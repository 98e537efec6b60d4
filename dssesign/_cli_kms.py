"""`dssesign kms create-key | public-key`: bootstrap AWS KMS signing keys and pin them.

Credentials come from boto3's standard chain (environment, profile, web identity, role); no
option takes one.
"""

from __future__ import annotations

import argparse
from typing import Any

from ._cli_common import Parser, add_json, print_json
from ._fileio import atomic_write

_URI_HELP = (
    "awskms://[HOST:PORT]/KEY (KEY: key id, alias/NAME or key ARN; empty HOST: the default "
    "endpoint, HOST:PORT: http://HOST:PORT); optional ?timeout=S&max-attempts=N&region=R"
)


def register(commands: Any) -> None:
    kms = commands.add_parser("kms", help="manage signing keys in AWS KMS")
    sub = kms.add_subparsers(dest="kms_command", required=True, parser_class=Parser)

    create = sub.add_parser(
        "create-key", help="create an asymmetric SIGN_VERIFY key (the private key stays in KMS)"
    )
    create.add_argument(
        "--uri",
        required=True,
        metavar="AWSKMS_URI",
        help="awskms://[HOST:PORT]/ or awskms://[HOST:PORT]/alias/NAME (region: ?region=, "
        "else AWS_REGION / AWS_DEFAULT_REGION / the profile)",
    )
    create.add_argument(
        "--key-spec",
        required=True,
        metavar="SPEC",
        help="ECC_NIST_P256, ECC_NIST_P384, RSA_3072 or RSA_4096 "
        "(or ecdsa-p256, ecdsa-p384, rsa-pss-3072, rsa-pss-4096)",
    )
    create.add_argument("--alias", metavar="NAME", help="also create alias/NAME for the key")
    create.add_argument("--out", metavar="FILE", help="also write the SPKI PEM here")
    add_json(create)
    create.set_defaults(handler=_cmd_create_key)

    public = sub.add_parser("public-key", help="print or write a KMS key's SPKI PEM and keyid")
    public.add_argument("--uri", required=True, metavar="AWSKMS_URI", help=_URI_HELP)
    public.add_argument("--out", metavar="FILE", help="write the PEM here")
    add_json(public)
    public.set_defaults(handler=_cmd_public_key)


def _cmd_create_key(args: argparse.Namespace) -> int:
    from .profiles import awskms

    spec = awskms.key_spec(args.key_spec)
    created = awskms.create_key(args.uri, spec, alias=args.alias)
    public = created.key.public_key
    if args.out:
        atomic_write(args.out, public.pem.encode("ascii"))
    if args.json:
        print_json(
            {
                "keyid": public.keyid,
                "algorithm": public.algorithm.name,
                "keySpec": spec.name,
                "keyId": created.key_id,
                "keyArn": created.arn,
                "alias": created.alias,
                "reference": created.reference,
                "publicKey": public.pem,
            }
        )
    else:
        print(public.keyid)
        print(created.reference)
        print(public.pem, end="")
    return 0


def _cmd_public_key(args: argparse.Namespace) -> int:
    from .profiles import awskms

    public, key = awskms.read_public_key(args.uri)
    if args.out:
        atomic_write(args.out, public.pem.encode("ascii"))
    if args.json:
        print_json(
            {
                "keyid": public.keyid,
                "algorithm": public.algorithm.name,
                "keySpec": key.spec.name,
                "keyArn": key.arn,
                "publicKey": public.pem,
            }
        )
    elif args.out:
        print(public.keyid)
    else:
        print(f"# keyid {public.keyid} ({public.algorithm.name}, {key.spec.name}, {key.arn})")
        print(public.pem, end="")
    return 0
