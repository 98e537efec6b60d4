"""Pieces every `dssesign` subcommand shares: argparse setup, secrets, output."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn

from ._fileio import atomic_write, read_bounded

if TYPE_CHECKING:
    from .keys import PublicKey

PASSWORD_ENV = "DSSESIGN_KEY_PASSWORD"  # noqa: S105 - the variable's name, not a secret
_MAX_SECRET_FILE = 4096


class Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one `error:` line and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see '{self.prog} --help')\n")


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
    )


def add_password(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--password-file",
        metavar="FILE",
        help=f"file holding the key passphrase (default: ${PASSWORD_ENV})",
    )


def add_new_key_output(parser: argparse.ArgumentParser) -> None:
    """The options `write_new_key` reads: --out and --json."""
    parser.add_argument("--out", metavar="FILE", help="also write the SPKI PEM here")
    add_json(parser)


def add_public_key_command(
    sub: Any,
    *,
    summary: str,
    metavar: str,
    uri_help: str,
    handler: Callable[[argparse.Namespace], int],
) -> None:
    """`public-key --uri REF [--out FILE] [--json]`: the options `write_public_key` reads."""
    public = sub.add_parser("public-key", help=summary)
    public.add_argument("--uri", required=True, metavar=metavar, help=uri_help)
    public.add_argument("--out", metavar="FILE", help="write the PEM here")
    add_json(public)
    public.set_defaults(handler=handler)


def password(args: argparse.Namespace) -> bytes | None:
    """The key passphrase from --password-file or the environment; never from argv."""
    if getattr(args, "password_file", None):
        data = read_bounded(args.password_file, limit=_MAX_SECRET_FILE, what="password file")
        return data.removesuffix(b"\n").removesuffix(b"\r") or None
    from_env = os.environ.get(PASSWORD_ENV)
    return from_env.encode("utf-8") if from_env else None


def emit(data: bytes, out: str | None) -> None:
    """Write to `out` atomically, or to stdout; always newline-terminated."""
    data = data if data.endswith(b"\n") else data + b"\n"
    if out:
        atomic_write(out, data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()


def print_json(obj: object) -> None:
    print(json.dumps(obj, indent=2, ensure_ascii=False))


def write_new_key(
    args: argparse.Namespace, public: PublicKey, info: Mapping[str, object], *lines: str
) -> None:
    """A key-creating command's output: the PEM also to --out; `info` (--json) or keyid+PEM."""
    if args.out:
        atomic_write(args.out, public.pem.encode("ascii"))
    if args.json:
        print_json(info)
    else:
        print(public.keyid)
        for line in lines:
            print(line)
        print(public.pem, end="")


def write_public_key(
    args: argparse.Namespace, public: PublicKey, info: Mapping[str, object], *details: str
) -> None:
    """A `public-key` command's output: the PEM to --out, else to stdout under a keyid comment.

    With --out, stdout gets only the keyid (to pin); with --json, `info`.
    """
    if args.out:
        atomic_write(args.out, public.pem.encode("ascii"))
    if args.json:
        print_json(info)
    elif args.out:
        print(public.keyid)
    else:
        print(f"# keyid {public.keyid} ({', '.join((public.algorithm.name, *details))})")
        print(public.pem, end="")
