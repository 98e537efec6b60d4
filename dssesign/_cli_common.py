"""Pieces every `dssesign` subcommand shares: argparse setup, secrets, output."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import NoReturn

from ._fileio import atomic_write, read_bounded

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
