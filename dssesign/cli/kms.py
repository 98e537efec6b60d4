"""`dssesign kms create-key | public-key | csr`: bootstrap AWS KMS keys, pin or certify them.

Credentials come from boto3's standard chain (environment, profile, web identity, role); no
option takes one.
"""

from __future__ import annotations

import argparse
from typing import Any

from .common import (
    Parser,
    add_new_key_output,
    add_public_key_command,
    planned_out,
    write_new_key,
    write_public_key,
)
from .csr import add_csr_options, run_csr

_URI_HELP = (
    "awskms://[HOST:PORT]/KEY (KEY: key id, alias/NAME or key ARN; empty HOST: the default "
    "endpoint, HOST:PORT: http://HOST:PORT); optional ?timeout=S&max-attempts=N&region=R"
)


def register(commands: Any) -> None:
    """Add `kms create-key`, `kms public-key` and `kms csr`."""
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
    add_new_key_output(create)
    create.set_defaults(handler=_cmd_create_key)

    add_public_key_command(
        sub,
        summary="print or write a KMS key's SPKI PEM and keyid",
        metavar="AWSKMS_URI",
        uri_help=_URI_HELP,
        handler=_cmd_public_key,
    )

    csr = sub.add_parser(
        "csr", help="write a CSR signed in KMS, for a CA to certify the key that never leaves it"
    )
    csr.add_argument("--key", required=True, metavar="AWSKMS_URI", help=_URI_HELP)
    add_csr_options(csr)
    csr.set_defaults(handler=_cmd_csr)


def _cmd_create_key(args: argparse.Namespace) -> int:
    from ..profiles import awskms

    spec = awskms.key_spec(args.key_spec)
    with planned_out(args) as outputs:  # a bad --out never costs a KMS key
        created = awskms.create_key(args.uri, spec, alias=args.alias)
        public = created.key.public_key
        info = {
            "keyid": public.keyid,
            "algorithm": public.algorithm.name,
            "keySpec": spec.name,
            "keyId": created.key_id,
            "keyArn": created.arn,
            "alias": created.alias,
            "reference": created.reference,
            "publicKey": public.pem,
        }
        write_new_key(args, public, info, created.reference, outputs=outputs)
    return 0


def _cmd_public_key(args: argparse.Namespace) -> int:
    from ..profiles import awskms

    with planned_out(args) as outputs:
        public, key = awskms.read_public_key(args.uri)
        info = {
            "keyid": public.keyid,
            "algorithm": public.algorithm.name,
            "keySpec": key.spec.name,
            "keyArn": key.arn,
            "publicKey": public.pem,
        }
        write_public_key(args, public, info, key.spec.name, key.arn, outputs=outputs)
    return 0


def _cmd_csr(args: argparse.Namespace) -> int:
    from ..profiles import awskms

    awskms.parse_uri(args.key)  # a KMS key only: never a key file under `kms`
    return run_csr(args, args.key)
