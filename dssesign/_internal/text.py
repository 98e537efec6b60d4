"""Text that reaches a terminal: control characters shown, never obeyed."""

from __future__ import annotations

import re
from typing import Final

#: C0 and C1 controls, DEL, and the Unicode format characters that reorder or break lines
#: (bidi overrides and isolates, line/paragraph separators): a CR, an erase-line sequence or a
#: right-to-left override in a label must not hide or forge what a human reads.
_UNSAFE: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")
_NAMED: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def clip(text: str, limit: int = 200) -> str:
    """`text` cut to `limit` characters (ending in "..."): input quoted in an error stays short."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape_controls(text: object) -> str:
    """`text` with every control or reordering character as a visible escape (\\x1b, \\u202e).

    Lone surrogates (file names that are not UTF-8) become escapes too, so printing never
    fails on them.
    """
    shown = str(text)
    if _UNSAFE.search(shown):
        shown = _UNSAFE.sub(_escape, shown)
    try:
        shown.encode("utf-8")
    except UnicodeEncodeError:
        shown = shown.encode("utf-8", "backslashreplace").decode("utf-8")
    return shown
