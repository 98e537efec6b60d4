"""Pieces every `dssesign` subcommand shares: argparse setup, secrets, output."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, NoReturn

from .._internal.fileio import NamedPath, OutputSet, read_bounded
from ..errors import ConfigError, InputError

if TYPE_CHECKING:
    from ..core.keys import PublicKey

AUDIT_LOG_ENV = "DSSESIGN_AUDIT_LOG"
AUDIT_KEY_ENV = "DSSESIGN_AUDIT_KEY"
PASSWORD_ENV = "DSSESIGN_KEY_PASSWORD"  # noqa: S105 - the variable's name, not a secret
_MAX_SECRET_FILE = 4096


class Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one `error:` line and exit 2."""

    def error(self, message: str) -> NoReturn:
        """Exit 2 with one `error:` line pointing at --help, instead of argparse's usage dump."""
        self.exit(2, f"error: {message} (see '{self.prog} --help')\n")


def add_json(parser: argparse.ArgumentParser) -> None:
    """`--json` after the subcommand; unset when absent, so a top-level `--json` still holds."""
    parser.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output"
    )


def add_password(parser: argparse.ArgumentParser) -> None:
    """`--password-file`; `password(args)` reads it, else `$DSSESIGN_KEY_PASSWORD`."""
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


def env_secret(name: str) -> bytes | None:
    """A secret from environment variable `name`: None when unset.

    Set but empty is refused (an empty passphrase would write an unencrypted key while the
    user asked for one), and so is text that is not UTF-8; neither error shows the value.
    """
    value = os.environ.get(name)
    if value is None:
        return None
    if not value:
        raise ConfigError(f"{name} is set but empty: set a passphrase, or unset it to use none")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:  # argv/environ bytes that are not UTF-8 arrive as surrogates
        raise InputError(f"{name}: not valid UTF-8") from None


def password(args: argparse.Namespace) -> bytes | None:
    """The key passphrase from --password-file or the environment; never from argv.

    An unset `DSSESIGN_KEY_PASSWORD` (and no --password-file) is no passphrase; an empty one,
    or an empty --password-file, is refused rather than taken for "no passphrase".
    """
    if getattr(args, "password_file", None):
        data = read_bounded(args.password_file, limit=_MAX_SECRET_FILE, what="password file")
        secret = data.removesuffix(b"\n").removesuffix(b"\r")
        if not secret:
            raise ConfigError(
                f"password file {args.password_file} is empty: an empty passphrase is refused"
            )
        return secret
    return env_secret(PASSWORD_ENV)


def emit(
    data: bytes, out: str | None, *, outputs: OutputSet | None = None, what: str = "--out"
) -> None:
    """Write to `out` (atomically, by the rules of `_fileio`), or to stdout; newline-terminated.

    `outputs`: the command's output set, where `out` was added before any work; it is
    published here.
    """
    data = data if data.endswith(b"\n") else data + b"\n"
    if out:
        if outputs is None:
            outputs = OutputSet()
        with outputs:
            if out not in outputs:
                outputs.add(out, what=what)
            outputs.write(out, data)
            outputs.publish()
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()


#: Options whose values are files (or key references naming files) a command reads.
_INPUT_OPTIONS = (
    ("key", "--key"),
    ("uri", "--uri"),
    ("password_file", "--password-file"),
    ("identity_token_file", "--identity-token-file"),
    ("trust_config", "--trust-config"),
    ("statement", "--statement"),
    ("predicate", "--predicate"),
    ("payload", "--payload"),
    ("audit_key", "--audit-key"),
)


def command_inputs(args: argparse.Namespace) -> list[NamedPath]:
    """Every file a command reads, by option: what no output of it may overwrite.

    Key references count by the files they name (a key file; a pkcs11 module or PIN file);
    the audit log and its checkpoint count too, whether given or from the environment.
    """
    inputs: list[NamedPath] = []
    for attribute, option in _INPUT_OPTIONS:
        value = getattr(args, attribute, None)
        for item in value if isinstance(value, list) else [value]:
            if not item:
                continue
            if attribute in ("key", "uri", "audit_key"):
                inputs.extend((option, path) for path in reference_paths(str(item)))
            else:
                inputs.append((option, str(item)))
    for subject in getattr(args, "subject", None) or []:
        if os.path.exists(subject):  # else a digest such as sha256:HEX
            inputs.append(("--subject", subject))
    audit_key = os.environ.get(AUDIT_KEY_ENV)
    if audit_key and not getattr(args, "audit_key", None):
        inputs.extend((f"${AUDIT_KEY_ENV}", path) for path in reference_paths(audit_key))
    log = getattr(args, "audit_log", None) or os.environ.get(AUDIT_LOG_ENV)
    if log and hasattr(args, "audit_log"):
        inputs.append(("the audit log", log))
        inputs.append(("the audit log's checkpoint", f"{log}.checkpoint"))
    return inputs


def reference_paths(ref: str) -> list[str]:
    """The local files a key reference reads: a software key's file; a pkcs11 URI's module
    and PIN file. None for network and keyless references (or one that does not parse)."""
    import re

    if ref.lower().startswith("pkcs11:"):
        from ..profiles import pkcs11

        try:
            uri = pkcs11.parse_uri(ref)
        except ConfigError:  # loading reports it; here it names no file
            return []
        paths = [uri.module_path] if uri.module_path else []
        source = uri.pin_source or ""
        if source.startswith("file:") or source.startswith("/"):
            from urllib.parse import unquote

            path = unquote(source.removeprefix("file:"))
            paths.append(path[2:] if path.startswith("//") else path)
        return paths
    match = re.match(r"^([a-z][a-z0-9+.-]*):", ref)
    if ref == "keyless" or (match and match.group(1) != "file" and not os.path.exists(ref)):
        return []
    from ..profiles.software import path_of_reference

    return [str(path_of_reference(ref))]


def planned_out(args: argparse.Namespace, *, what: str = "--out") -> OutputSet:
    """The command's output set with --out (if given) checked now, before any work: not an
    input of the command, not a directory, in a directory it can write to."""
    outputs = OutputSet(command_inputs(args))
    out = getattr(args, "out", None)
    if out:
        try:
            outputs.add(out, what=what)
        except BaseException:
            outputs.discard()
            raise
    return outputs


def print_json(obj: object) -> None:
    """JSON on stdout; text that is not valid Unicode (a non-UTF-8 file name) is \\u-escaped,
    so --json reports whatever text mode would (never a crash instead of a verdict)."""
    text = json.dumps(obj, indent=2, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(obj, indent=2, ensure_ascii=True)
    print(text)


def write_new_key(
    args: argparse.Namespace,
    public: PublicKey,
    info: Mapping[str, object],
    *lines: str,
    outputs: OutputSet | None = None,
) -> None:
    """A key-creating command's output: the PEM also to --out; `info` (--json) or keyid+PEM.

    `outputs`: from `planned_out`, called before the key was created (so a bad --out never
    costs a key); published here.
    """
    if args.out:
        emit(public.pem.encode("ascii"), args.out, outputs=outputs or planned_out(args))
    if args.json:
        print_json(info)
    else:
        print(public.keyid)
        for line in lines:
            print(line)
        print(public.pem, end="")


def write_public_key(
    args: argparse.Namespace,
    public: PublicKey,
    info: Mapping[str, object],
    *details: str,
    outputs: OutputSet | None = None,
) -> None:
    """A `public-key` command's output: the PEM to --out, else to stdout under a keyid comment.

    With --out, stdout gets only the keyid (to pin); with --json, `info`. `outputs`: as for
    `write_new_key`.
    """
    if args.out:
        emit(public.pem.encode("ascii"), args.out, outputs=outputs or planned_out(args))
    if args.json:
        print_json(info)
    elif args.out:
        print(public.keyid)
    else:
        print(f"# keyid {public.keyid} ({', '.join((public.algorithm.name, *details))})")
        print(public.pem, end="")


#: Below this a progress bar would only flicker.
PROGRESS_MIN_BYTES = 64 * 1024 * 1024


@contextlib.contextmanager
def file_progress(path: str) -> Iterator[Callable[[int, int | None], None] | None]:
    """A progress callback drawing a bar on stderr while `path` is hashed, or None.

    Only on a terminal and for files of 64 MiB or more; the library draws nothing itself.
    """
    try:
        size = os.stat(path).st_size
    except OSError:
        size = 0
    if size < PROGRESS_MIN_BYTES or not sys.stderr.isatty():
        yield None
        return
    # rich.progress costs ~0.1 s to import; only files big enough for a bar pay for it.
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from .._internal.text import escape_controls

    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(f"digest {escape_controls(os.path.basename(path))}", total=size)

        def advance(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        yield advance
