"""Reference parsing the network key profiles (awskms, hashivault) share: one set of rules."""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import parse_qsl

from ..errors import ConfigError


def clip(text: str, limit: int = 120) -> str:
    """`text` cut to `limit` characters, so an echoed input cannot flood an error line."""
    return text if len(text) <= limit else text[:limit] + "…"


def query_params(
    query: str, known: Collection[str], *, where: str, noun: str = "parameter"
) -> dict[str, str]:
    """A reference's query as a dict: an unknown or repeated parameter is a ConfigError."""
    params: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in known:
            raise ConfigError(
                f"{where}: unknown {noun} {clip(name)!r} (known: {', '.join(sorted(known))})"
            )
        if name in params:
            raise ConfigError(f"{where}: {noun} {name!r} given twice")
        params[name] = value
    return params


def seconds(text: str, *, what: str, maximum: float) -> float:
    """A timeout in seconds, in (0, maximum]; `what` names where it came from."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= maximum:
        raise ConfigError(f"{what} must be a number of seconds in (0, {maximum:g}]")
    return value
