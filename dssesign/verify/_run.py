"""The state of one verification and the internal failure that carries a code to the boundary.

Every step raises `_Stop`; `_failure` turns it into the public `VerificationFailure`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..codes import Code
from .result import CountedIdentity, CountedKey, VerificationFailure


class _Stop(Exception):
    """Internal: a failure with its code, turned into `VerificationFailure` at the boundary."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = code


def _when(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _Run:
    """State of one verification, so a failure can report what was learnt before it."""

    warnings: list[str] = field(default_factory=list)
    predicate_type: str | None = None
    keys_counted: tuple[CountedKey, ...] = ()
    identities_counted: tuple[CountedIdentity, ...] = ()
    #: keyid -> the signature bytes that made that trusted key count (its bundle's tokens date it).
    signatures: dict[str, bytes] = field(default_factory=dict)


def _describe(exc: Exception) -> str:
    try:
        lines = str(exc).splitlines()
    except Exception:  # an exception whose __str__ fails must not escape either
        lines = []
    return f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__


def _failure(run: _Run, code: Code, message: str) -> VerificationFailure:
    return VerificationFailure(
        code,
        message,
        predicate_type=run.predicate_type,
        keys_counted=run.keys_counted,
        warnings=tuple(run.warnings),
        identities_counted=run.identities_counted,
    )
