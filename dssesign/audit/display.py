"""Printing what a signer wrote: every control or reordering character escaped."""

from __future__ import annotations

import json
import re
from typing import Any, Final

from .._internal.text import escape_controls

# --- display ---------------------------------------------------------------------------------

# What `escape_controls` shows escaped (controls, bidi overrides/isolates, line separators, BOM)
# and lone surrogates, less C0, which json.dumps escapes itself: these appear only inside strings.
_UNPRINTABLE_IN_JSON: Final = re.compile(
    "[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ud800-\udfff]"
)


def printable_json(value: Any) -> str:
    """Indented JSON of `value` that is safe for a terminal: a character a terminal would obey or
    reorder by becomes a ``\\uXXXX`` escape (the same string to a JSON reader), so a field a
    signer wrote cannot erase, hide or forge output; other non-ASCII text stays readable."""
    text = json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False)
    return _UNPRINTABLE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _excerpt(text: str, limit: int = 200) -> str:
    """Escaped and bounded: attacker-chosen text quoted in a finding's message."""
    return escape_controls(text[:limit]) + ("..." if len(text) > limit else "")
