"""What a verification returns or raises: the result, the failure and the ``--json`` report.

Public: callers and the CLI read these; nothing here verifies anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..codes import Code
from ..errors import VerificationError, VerificationFailure
from ..intoto.statement import STATEMENT_TYPE_V01

__all__ = [
    "CountedIdentity",
    "CountedKey",
    "MatchedSubject",
    "VerificationFailure",
    "VerificationResult",
    "failure_report",
]


@dataclass(frozen=True)
class CountedKey:
    """A trusted key whose signature counted toward the policy."""

    keyid: str
    algorithm: str
    label: str | None = None
    #: The earliest verified RFC 3161 time of its signature (None: no timestamp; judged at the
    #: verification time instead).
    signed_at: datetime | None = None

    def to_dict(self) -> dict[str, object]:
        """One ``keysCounted`` entry of the ``--json`` report (``signedAt`` when timestamped)."""
        entry: dict[str, object] = {
            "keyid": self.keyid,
            "algorithm": self.algorithm,
            "label": self.label,
        }
        if self.signed_at is not None:
            entry["signedAt"] = self.signed_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return entry


@dataclass(frozen=True)
class CountedIdentity:
    """A keyless signer (OIDC issuer + certificate SAN) whose bundle counted toward the policy."""

    issuer: str
    subject: str
    label: str | None = None

    def to_dict(self) -> dict[str, object]:
        """One ``identitiesCounted`` entry of the ``--json`` report."""
        return {"issuer": self.issuer, "subject": self.subject, "label": self.label}


@dataclass(frozen=True)
class MatchedSubject:
    """One `--artifact`/`--digest` and the subject it matched."""

    #: The subject's name (None when the subject is unnamed).
    name: str | None
    #: ``alg:hex`` that matched.
    digest: str
    #: The artifact path or the ``--digest`` argument as given.
    artifact: str

    def to_dict(self) -> dict[str, object]:
        """One ``subjectsMatched`` entry of the ``--json`` report."""
        return {"name": self.name, "digest": self.digest, "artifact": self.artifact}


@dataclass(frozen=True)
class VerificationResult:
    """What verified: the Statement's type, the keys that counted and the subjects matched.

    `payload` is the exact byte string the signatures cover; use it (or `statement`, parsed
    from it) rather than re-reading the envelope (DSSE: never re-parse after verification).
    """

    predicate_type: str
    statement_type: str
    keys_counted: tuple[CountedKey, ...]
    subjects_matched: tuple[MatchedSubject, ...]
    warnings: tuple[str, ...]
    threshold: int
    payload: bytes = field(repr=False)
    statement: Mapping[str, object] = field(repr=False, compare=False)
    identities_counted: tuple[CountedIdentity, ...] = ()

    @property
    def ok(self) -> bool:
        """Always True: a failed verification raises `VerificationFailure` instead."""
        return True

    @property
    def code(self) -> str:
        """Always ``OK`` (`Code.OK`), the code of a successful ``--json`` report."""
        return str(Code.OK)

    @property
    def message(self) -> str:
        """One line for people: what verified, what counted, how many subjects matched."""
        count = len(self.keys_counted)
        noun = "key" if count == 1 else "keys"
        legacy = " (legacy Statement v0.1)" if self.statement_type == STATEMENT_TYPE_V01 else ""
        what = self.predicate_type or "a messageSignature bundle"
        return (
            f"verified {what}{legacy}: {count} distinct trusted {noun}"
            f"{_identities_phrase(len(self.identities_counted))} counted "
            f"(threshold {self.threshold}), {len(self.subjects_matched)} subject match(es)"
        )

    def to_dict(self) -> dict[str, object]:
        """The CLI's ``--json`` report; `failure_report` gives the same shape for a failure."""
        return {
            "ok": True,
            "code": str(Code.OK),
            "message": self.message,
            "predicateType": self.predicate_type,
            "subjectsMatched": [s.to_dict() for s in self.subjects_matched],
            "keysCounted": [k.to_dict() for k in self.keys_counted],
            "identitiesCounted": [i.to_dict() for i in self.identities_counted],
            "warnings": list(self.warnings),
        }


def _identities_phrase(count: int) -> str:
    if not count:
        return ""
    return f" and {count} keyless {'identity' if count == 1 else 'identities'}"


def failure_report(error: VerificationError) -> dict[str, object]:
    """The ``--json`` report for a failure: the same keys as `VerificationResult.to_dict`."""
    failure = error if isinstance(error, VerificationFailure) else None
    return {
        "ok": False,
        "code": str(error.code),
        "message": str(error),
        "predicateType": failure.predicate_type if failure else None,
        "subjectsMatched": [],
        "keysCounted": [k.to_dict() for k in failure.keys_counted] if failure else [],
        "identitiesCounted": ([i.to_dict() for i in failure.identities_counted] if failure else []),
        "warnings": list(failure.warnings) if failure else [],
    }
