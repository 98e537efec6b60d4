"""`dssesign vault create-key | public-key`: transit keys in Vault / OpenBao (no token in argv)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from .common import (
    Parser,
    add_new_key_output,
    add_public_key_command,
    planned_out,
    write_new_key,
    write_public_key,
)

if TYPE_CHECKING:
    from ..core.keys import PublicKey
    from ..profiles.vault import VaultRef

_URI_HELP = (
    "transit key reference, e.g. hashivault://NAME (latest version) or hashivault://NAME?version=N "
    "(server and token: $VAULT_ADDR/$VAULT_TOKEN or $BAO_ADDR/$BAO_TOKEN; mount: "
    "$DSSESIGN_VAULT_TRANSIT_PATH or $TRANSIT_SECRET_ENGINE_PATH, default transit)"
)


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add `vault create-key` and `vault public-key`."""
    vault = commands.add_parser("vault", help="manage signing keys in Vault / OpenBao transit")
    sub = vault.add_subparsers(dest="vault_command", required=True, parser_class=Parser)

    create = sub.add_parser(
        "create-key", help="create a non-exportable transit signing key and print its public key"
    )
    create.add_argument("--uri", required=True, metavar="HASHIVAULT_URI", help=_URI_HELP)
    create.add_argument(
        "--key-type",
        required=True,
        metavar="TYPE",
        help="ecdsa-p256, ecdsa-p384, ed25519, rsa-3072 or rsa-4096",
    )
    add_new_key_output(create)
    create.set_defaults(handler=_cmd_create_key)

    add_public_key_command(
        sub,
        summary="print or write one key version's SPKI PEM (to pin in a trust root)",
        metavar="HASHIVAULT_URI",
        uri_help=_URI_HELP,
        handler=_cmd_public_key,
    )


def _cmd_create_key(args: argparse.Namespace) -> int:
    from ..profiles import vault

    ref = vault.parse_reference(args.uri)
    with planned_out(args) as outputs:  # a bad --out never costs a transit key
        key, public = vault.create_key(ref, args.key_type)
        info = _describe(key.name, key.key_type, key.latest_version, public, ref)
        write_new_key(args, public, info, outputs=outputs)
    return 0


def _cmd_public_key(args: argparse.Namespace) -> int:
    from ..profiles import vault

    ref = vault.parse_reference(args.uri)
    with planned_out(args) as outputs:
        key, version, public = vault.read_public_key(ref)
        info = _describe(key.name, key.key_type, version, public, ref)
        info["latestVersion"] = key.latest_version
        write_public_key(args, public, info, f"{key.name} version {version}", outputs=outputs)
    return 0


def _describe(
    name: str, key_type: str, version: int, public: PublicKey, ref: VaultRef
) -> dict[str, Any]:
    return {
        "keyid": public.keyid,
        "algorithm": public.algorithm.name,
        "name": name,
        "keyType": key_type,
        "version": version,
        "reference": ref.describe(version),
        "publicKey": public.pem,
    }
