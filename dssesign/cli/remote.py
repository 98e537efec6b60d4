"""`attest --server URL --token-file F` and `sign --server ...`: sign through `dssesign serve`.

The Statement is built and validated here as always (subject files are hashed where they
are); only the signature comes from the service, whose keys `--key NAME` names and whose TSAs
`--tsa NAME` names. The outputs are the same files, named the same way, as local signing
writes; nothing is written if the service refuses.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from .._internal.fileio import read_bounded
from .._internal.text import escape_controls
from ..errors import ConfigError
from .common import emit, planned_out, print_json

_MAX_TOKEN_FILE = 16 * 1024
#: Options of local signing that mean nothing to a service (it owns keys, time and audit).
_LOCAL_ONLY = (
    ("certificate", "--certificate"),
    ("certificate_chain", "--certificate-chain"),
    ("trust_root", "--trust-root"),
    ("identity_token_file", "--identity-token-file"),
    ("threshold", "--threshold"),
    ("append", "--append"),
    ("image", "--image"),
    ("audit_log", "--audit-log"),
)


def add_server_options(parser: argparse.ArgumentParser) -> None:
    """--server and --token-file (the token is read from the file: never argv)."""
    parser.add_argument(
        "--server",
        metavar="URL",
        help="sign through this `dssesign serve` instead of local keys: --key then names the "
        "service's keys and --tsa its timestamp authorities",
    )
    parser.add_argument(
        "--token-file",
        metavar="FILE",
        help="with --server: the bearer token (a JWT from your identity provider)",
    )


def remote_sign(
    args: argparse.Namespace, payload_of: Callable[[], tuple[bytes, str, dict[str, Any] | None]]
) -> int:
    """Sign `payload_of()` through the service and write the same outputs local signing does."""
    from ..serve.client import ServiceClient
    from ..sign.bundles import bundle_stem
    from ..sign.countersign import signature_bundle_names
    from .signing import _bundle_dir

    for attribute, option in _LOCAL_ONLY:
        if getattr(args, attribute, None):
            raise ConfigError(f"{option} is not used with --server (the service owns it)")
    if not args.token_file:
        raise ConfigError("--server needs --token-file FILE (the bearer token; never in argv)")
    token = read_bounded(args.token_file, limit=_MAX_TOKEN_FILE, what="--token-file")
    try:
        text = token.decode("ascii").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"--token-file {args.token_file}: not ASCII text") from None
    client = ServiceClient(args.server, text, timeout_s=args.timeout)
    with planned_out(args) as outputs:
        bundle_dir = _bundle_dir(args, outputs)
        payload, payload_type, _ = payload_of()
        signed = client.sign(payload, payload_type, args.key, getattr(args, "tsa", None) or ())
        stem = bundle_stem(args.out)
        written: list[str] = []
        if bundle_dir is not None:
            names = signature_bundle_names(signed.envelope, stem)
            for index, (name, bundle) in enumerate(zip(names, signed.bundles, strict=True)):
                target = bundle_dir / (name or f"{stem}.signature-{index + 1}.sigstore.json")
                outputs.add(target, what="bundle")
                outputs.write(target, bundle)
                written.append(str(target))
        if args.out:
            outputs.write(args.out, signed.envelope.to_json() + b"\n")
        outputs.publish()
    if not args.out and not args.json:
        emit(signed.envelope.to_json(), None)
    if args.json:
        summary: dict[str, Any] = {"server": args.server, "keys": list(signed.keys)}
        summary["bundles"] = written
        if args.out:
            summary["out"] = args.out
        else:
            summary["envelope"] = signed.envelope.to_dict()
        print_json(summary)
        return 0
    stream = sys.stdout if args.out else sys.stderr
    print(
        escape_controls(
            f"signed {payload_type} ({len(payload)} bytes) by {args.server} with "
            f"{len(signed.envelope.signatures)} keys -> {args.out or 'stdout'}"
        ),
        file=stream,
    )
    for key, path in zip(signed.keys, written or [""] * len(signed.keys), strict=False):
        line = f"  {key.get('name', '?')}  {key.get('keyid', '')}"
        print(escape_controls(line + (f"  bundle -> {path}" if path else "")), file=stream)
    return 0
