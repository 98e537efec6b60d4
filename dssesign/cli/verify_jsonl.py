"""`dssesign verify FILE.jsonl [BUNDLE...]`: every line of a JSON Lines file of attestations.

Selected by the file name (``.jsonl``, as ``.intoto.jsonl`` and ``gh attestation download``
name them). Lines are DSSE envelopes (verified with the given Sigstore bundles that belong to
them) or Sigstore bundles (verified alone), see `dssesign.verify.jsonl`. One report line per
line; the command passes when every line does, or with ``--any-line`` when one does. An
unreadable file (a blank line inside, a line too long, a line that is neither) is exit 2 and
names the line; nothing is verified then.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from .._internal.fileio import read_bounded
from .._internal.text import escape_controls as safe
from ..errors import ConfigError, InputError, VerificationError
from .common import print_json

if TYPE_CHECKING:
    from ..trust import TrustRoot
    from ..verify.jsonl import LineOutcome
    from .verify_vsa import VsaStep

__all__ = ["add_options", "verify_jsonl_arguments"]

_BUNDLE_POSITION = re.compile(r"bundle (\d+): ")


def add_options(parser: argparse.ArgumentParser) -> None:
    """`verify`'s options for JSON Lines files."""
    parser.add_argument(
        "--any-line",
        action="store_true",
        help="for a .jsonl file: pass when at least one line verifies (default: every line "
        "must); an unreadable line still fails the command",
    )


def verify_jsonl_arguments(
    args: argparse.Namespace,
    root: TrustRoot,
    predicate_type: str | None,
    at: datetime | None,
    vsa: VsaStep | None = None,
) -> int | None:
    """Verify a .jsonl file named among the arguments (with bundles); None when none is.

    Exit code: 0 passed, 1 a line (or the file, with --any-line every line) failed, 2 the file
    or a bundle argument is unusable, or a line's request is (a bad --digest, ...).
    """
    from ..verify.jsonl import is_jsonl_name

    arguments: Sequence[str] = args.envelopes
    named = [a for a in arguments if is_jsonl_name(a)]
    if not named:
        if getattr(args, "any_line", False):
            raise ConfigError("--any-line is for a .jsonl file (JSON Lines of attestations)")
        return None
    if len(named) > 1 or arguments[0] != named[0]:
        raise ConfigError(
            "give one FILE.jsonl followed by Sigstore BUNDLE files of its lines' signatures "
            "(verify one .jsonl file per command)"
        )
    path = named[0]
    bundle_paths = list(arguments[1:])
    try:
        data, bundles, outcomes = _verify(
            path, bundle_paths, root, args=args, predicate_type=predicate_type, at=at
        )
    except (InputError, VerificationError) as exc:
        message = _bundle_named(str(exc), path, bundle_paths)
        if isinstance(exc, VerificationError):
            code = str(exc.code)
        else:
            from ..codes import Code

            code = str(Code.UNREADABLE)
        if args.json:
            print_json(
                _file_report(
                    path, ok=False, code=code, message=message, any_line=bool(args.any_line)
                )
            )
            return exc.exit_code
        if isinstance(exc, VerificationError):
            print(f"error: verification failed [{code}]: {safe(message)}", file=sys.stderr)
            return exc.exit_code
        raise type(exc)(message) from None
    if vsa is not None:  # --emit-vsa: the file (and its bundles) as the summary's inputs
        vsa.add_jsonl(
            path,
            data,
            [outcome.result for outcome in outcomes],
            list(zip(bundle_paths, bundles, strict=True)),
        )
    return _report(path, outcomes, any_line=bool(args.any_line), json_output=args.json)


def _verify(
    path: str,
    bundle_paths: list[str],
    root: TrustRoot,
    *,
    args: argparse.Namespace,
    predicate_type: str | None,
    at: datetime | None,
) -> tuple[bytes, list[bytes], list[LineOutcome]]:
    """The file's bytes, the bundles' bytes and each line's outcome."""
    from ..limits import DEFAULT_LIMITS
    from ..verify.jsonl import verify_jsonl

    if Path(path).is_dir():
        raise ConfigError(f"{path}: is a directory (name the .jsonl file)")
    data = read_bounded(path, limit=DEFAULT_LIMITS.max_jsonl_bytes, what="jsonl")
    bundles = [_read_bundle(p, position) for position, p in enumerate(bundle_paths, 1)]
    try:
        outcomes = verify_jsonl(
            data,
            root,
            bundles=bundles,
            artifacts=tuple(args.artifact),
            digests=tuple(args.digest),
            predicate_type=predicate_type,
            at=at,
            require_timestamp=args.require_timestamp,
            allow_stale_crl=args.allow_stale_crl,
        )
    except VerificationError as exc:
        raise VerificationError(exc.code, f"{path}: {exc}") from None
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    return data, bundles, outcomes


def _read_bundle(path: str, position: int) -> bytes:
    """A BUNDLE argument after the .jsonl file: a Sigstore bundle file (ConfigError otherwise)."""
    from .._internal.strict_json import loads_strict
    from ..limits import DEFAULT_LIMITS
    from ..verify.bundles import is_bundle_document

    if Path(path).is_dir():
        raise ConfigError(f"bundle {path}: is a directory (bundles are named as files)")
    data = read_bounded(path, limit=DEFAULT_LIMITS.max_json_bytes, what="bundle")
    try:
        bundle = is_bundle_document(loads_strict(data, what="bundle"))
    except InputError:
        # Unparseable: a bundle if it names a bundle media type (the verifier says what is wrong).
        bundle = b"application/vnd.dev.sigstore.bundle" in data
    if not bundle:
        raise ConfigError(
            f"{path} (argument {position + 1}) is not a Sigstore bundle: give one FILE.jsonl "
            "followed by Sigstore BUNDLE files of its lines' signatures"
        )
    return data


def _bundle_named(message: str, path: str, bundle_paths: list[str]) -> str:
    """ "PATH: bundle 2: ..." from the library, with the bundle's file name for its position."""
    prefix = f"{path}: "
    match = _BUNDLE_POSITION.match(message, len(prefix)) if message.startswith(prefix) else None
    if match is None or not 1 <= int(match.group(1)) <= len(bundle_paths):
        return message
    named = f"bundle {bundle_paths[int(match.group(1)) - 1]}: "
    return prefix + named + message[match.end() :]


def _file_report(
    path: str,
    *,
    ok: bool,
    code: str,
    message: str,
    any_line: bool,
    lines: list[dict[str, object]] | None = None,
) -> dict[str, object]:
    from ..verify import REPORT_SCHEMA_VERSION

    return {
        "schemaVersion": REPORT_SCHEMA_VERSION,
        "ok": ok,
        "code": code,
        "message": message,
        "file": path,
        "anyLine": any_line,
        "lines": lines or [],
    }


def _report(path: str, outcomes: list[LineOutcome], *, any_line: bool, json_output: bool) -> int:
    from ..codes import Code
    from ..verify.jsonl import jsonl_passed

    passed = jsonl_passed(outcomes, any_line=any_line)
    verified = sum(1 for outcome in outcomes if outcome.ok)
    failed = [outcome for outcome in outcomes if not outcome.ok]
    usage = any(outcome.exit_code == 2 for outcome in outcomes)
    code = 2 if usage else 0 if passed else 1
    summary = f"{verified} of {len(outcomes)} line(s) verified"
    if any_line and passed and failed:
        summary += " (--any-line)"
    if failed and code:
        first = failed[0]
        summary += f"; line {first.line.number} failed: {first.report()['message']}"
    top = str(Code.OK) if code == 0 else failed[0].code if failed else str(Code.INTERNAL)
    if json_output:
        print_json(
            _file_report(
                path,
                ok=code == 0,
                code=top,
                message=summary,
                any_line=any_line,
                lines=[outcome.to_dict() for outcome in outcomes],
            )
        )
        return code
    for outcome in outcomes:
        print(_text_line(outcome))
    verdict = "OK" if code == 0 else "FAILED"
    print(safe(f"{verdict}: {verified} of {len(outcomes)} line(s) of {path} verified"))
    return code


def _text_line(outcome: LineOutcome) -> str:
    """One line per jsonl line: number, verdict and code, predicate type, message; escaped."""
    verdict = "PASS" if outcome.ok else "FAIL"
    extra = " (a bundle)" if outcome.line.kind == "bundle" else ""
    if outcome.bundles:
        extra += f" with {outcome.bundles} bundle(s)"
    text = (
        f"line {outcome.line.number}: {verdict} [{outcome.code}] "
        f"{outcome.predicate_type or '-'}{extra}: {outcome.report()['message']}"
    )
    return safe(text)
