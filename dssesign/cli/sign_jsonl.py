"""`attest|sign --out FILE.jsonl [--append]`: one compact envelope per line (JSON Lines)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._internal.fileio import read_bounded
from ..errors import ConfigError, InputError
from ..limits import DEFAULT_LIMITS

if TYPE_CHECKING:
    from ..core.dsse import Envelope


@dataclass(frozen=True)
class JsonlOut:
    """--out FILE.jsonl: one compact envelope per line, LF; with --append, one more line."""

    path: str
    append: bool
    #: With --append: the file's bytes as checked before signing (b"": absent or empty).
    checked: bytes = b""


def plan_jsonl(args: argparse.Namespace) -> JsonlOut | None:
    """A JSON Lines --out (by its .jsonl name), or None; --append without one is bad usage."""
    from ..verify.jsonl import is_jsonl_name

    out = getattr(args, "out", None)
    append = bool(getattr(args, "append", False))
    if not out or not is_jsonl_name(out):
        if append:
            raise ConfigError("--append needs --out FILE.jsonl (JSON Lines: one envelope per line)")
        return None
    return JsonlOut(out, append)


def existing_lines(path: str, known: bytes | None) -> bytes:
    """The bytes of an --append target (b"" if it does not exist yet), checked to be DSSE
    envelope lines with room for one more; not checked again when they are `known` ones."""
    import os
    import stat

    from ..limits import exceeded
    from ..verify.jsonl import read_jsonl

    try:
        info = os.stat(path)
    except FileNotFoundError:
        return b""
    except OSError as exc:
        raise InputError(f"--out {path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"--append: --out {path} is not a regular file")
    data = read_bounded(path, limit=DEFAULT_LIMITS.max_jsonl_bytes, what="--out")
    if data and data != known:
        try:
            lines = read_jsonl(data, envelopes_only=True)
        except InputError as exc:
            raise InputError(f"--append: --out {path}: {exc}") from None
        if len(lines) >= DEFAULT_LIMITS.max_jsonl_lines:
            raise InputError(
                f"--append: --out {path} holds {len(lines)} lines; one more exceeds "
                + exceeded("max_jsonl_lines", DEFAULT_LIMITS.max_jsonl_lines)
            )
    return data


def jsonl_content(plan: JsonlOut, envelope: Envelope) -> tuple[bytes, int]:
    """The whole new file and the number of its new line. With --append (under the lock) the
    lines there now, checked again if they changed since, then this one, ending as they do.

    A payload already in the file is refused: its line's bundles would have the same names
    (they are named by payload and key), and a file of attestations holds each one once.
    """
    line = envelope.to_json()
    if not plan.append:
        return line + b"\n", 1
    from ..limits import exceeded
    from ..verify.jsonl import read_jsonl

    data = existing_lines(plan.path, plan.checked)
    if data:
        for existing in read_jsonl(data, envelopes_only=True):
            if existing.envelope is not None and (
                existing.envelope.payload == envelope.payload
                and existing.envelope.payload_type == envelope.payload_type
            ):
                raise InputError(
                    f"--append: line {existing.number} of --out {plan.path} already holds this "
                    "payload; a JSON Lines file holds each attestation once (and its bundles "
                    "would take the same names)"
                )
    end = b"\r\n" if data.split(b"\n", 1)[0].endswith(b"\r") else b"\n"
    if data and not data.endswith(b"\n"):
        data += end
    content = data + line + end
    if len(content) > DEFAULT_LIMITS.max_jsonl_bytes:
        raise InputError(
            f"--append: --out {plan.path} would be {len(content)} bytes, more than "
            + exceeded("max_jsonl_bytes", DEFAULT_LIMITS.max_jsonl_bytes)
        )
    return content, data.count(b"\n") + 1
