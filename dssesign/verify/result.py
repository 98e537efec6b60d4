"""What a verification returns or raises: the result, the failure and the ``--json`` report.

Public: callers and the CLI read these; nothing here verifies anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, Literal

from ..codes import Code
from ..errors import VerificationError, VerificationFailure
from ..intoto.statement import STATEMENT_TYPE_V01

__all__ = [
    "REPORT_SCHEMA_VERSION",
    "CountedIdentity",
    "CountedKey",
    "MatchedSubject",
    "RoleReport",
    "SignatureReport",
    "SignatureStatus",
    "TimeSource",
    "VerificationFailure",
    "VerificationResult",
    "failure_report",
    "role_reports",
    "signature_reports",
]

#: ``schemaVersion`` of the ``--json`` report (`VerificationResult.to_dict`, `failure_report`).
REPORT_SCHEMA_VERSION: Final = 1

#: counted: its key or keyless identity counted toward the policy; verified-untrusted: it
#: verifies under a trusted key (or its bundle under an identity rule) that did not count
#: (`code` says why); invalid: it verifies under no trusted key and no bundle vouches for it.
SignatureStatus = Literal["counted", "verified-untrusted", "invalid"]
#: What the signature's key state was judged at: its RFC 3161 timestamps, the transparency log
#: (keyless), the current time, or the caller's verification time (`at`, `--at`).
TimeSource = Literal["rfc3161", "tlog", "now", "at"]


def _when(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
            entry["signedAt"] = _when(self.signed_at)
        return entry


@dataclass(frozen=True)
class CountedIdentity:
    """A signer named by a certificate whose bundle counted toward the policy: keyless (OIDC
    issuer + Fulcio certificate SAN) or an organisation certificate (`issuer` is then the
    name of the trust root's CA its identity rule names, `subject` the SAN or DN matched)."""

    issuer: str
    subject: str
    label: str | None = None
    kind: Literal["keyless", "certificate"] = "keyless"

    def to_dict(self) -> dict[str, object]:
        """One ``identitiesCounted`` entry of the ``--json`` report."""
        return {
            "issuer": self.issuer,
            "subject": self.subject,
            "label": self.label,
            "kind": self.kind,
        }


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
class SignatureReport:
    """What became of one signature of the envelope (one entry per signature, in order)."""

    index: int
    #: The trusted key it verifies under; else the keyid string the envelope gave it.
    keyid: str
    status: SignatureStatus
    #: Why it did not count (a `Code`); None when it counted.
    code: Code | None
    #: The roles its key or identity counted in (a rotated-in key's include its predecessor's).
    roles: tuple[str, ...] = ()
    #: The earliest verified RFC 3161 time it was judged at (None otherwise).
    signed_at: datetime | None = None
    time_source: TimeSource = "now"

    def to_dict(self) -> dict[str, object]:
        """One ``signatures`` entry of the ``--json`` report."""
        return {
            "index": self.index,
            "keyid": self.keyid,
            "status": self.status,
            "code": None if self.code is None else str(self.code),
            "roles": list(self.roles),
            "signedAt": None if self.signed_at is None else _when(self.signed_at),
            "timeSource": self.time_source,
        }


@dataclass(frozen=True)
class RoleReport:
    """One role of the trust root: its threshold, the distinct members that counted, met."""

    threshold: int
    counted: int
    met: bool

    def to_dict(self) -> dict[str, object]:
        """One ``roles`` entry of the ``--json`` report."""
        return {"threshold": self.threshold, "counted": self.counted, "met": self.met}


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
    #: Every signature of the envelope and what became of it.
    signatures: tuple[SignatureReport, ...] = ()
    #: Every role of the trust root, by name: threshold, distinct members counted, met.
    roles: Mapping[str, RoleReport] = field(default_factory=dict, hash=False)

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
            f"{_identities_phrase(self.identities_counted)} counted "
            f"(threshold {self.threshold}), {len(self.subjects_matched)} subject match(es)"
        )

    def to_dict(self) -> dict[str, object]:
        """The CLI's ``--json`` report; `failure_report` gives the same shape for a failure."""
        return {
            "schemaVersion": REPORT_SCHEMA_VERSION,
            "ok": True,
            "code": str(Code.OK),
            "message": self.message,
            "predicateType": self.predicate_type,
            "subjectsMatched": [s.to_dict() for s in self.subjects_matched],
            "keysCounted": [k.to_dict() for k in self.keys_counted],
            "identitiesCounted": [i.to_dict() for i in self.identities_counted],
            "warnings": list(self.warnings),
            "signatures": [s.to_dict() for s in self.signatures],
            "roles": {name: role.to_dict() for name, role in self.roles.items()},
        }


def _identities_phrase(identities: tuple[CountedIdentity, ...]) -> str:
    phrase = ""
    for kind in ("keyless", "certificate"):
        count = sum(1 for i in identities if i.kind == kind)
        if count:
            phrase += f" and {count} {kind} {'identity' if count == 1 else 'identities'}"
    return phrase


def signature_reports(error: VerificationError) -> tuple[SignatureReport, ...]:
    """The per-signature entries a failed `verify` learnt before it stopped (else none)."""
    found = getattr(error, "signatures", ())
    return found if isinstance(found, tuple) else ()


def role_reports(error: VerificationError) -> Mapping[str, RoleReport]:
    """The roles as a failed `verify` counted them (empty if it stopped before the policy)."""
    found = getattr(error, "roles", None)
    return found if isinstance(found, Mapping) else {}


def failure_report(error: VerificationError) -> dict[str, object]:
    """The ``--json`` report for a failure: the same keys as `VerificationResult.to_dict`."""
    failure = error if isinstance(error, VerificationFailure) else None
    return {
        "schemaVersion": REPORT_SCHEMA_VERSION,
        "ok": False,
        "code": str(error.code),
        "message": str(error),
        "predicateType": failure.predicate_type if failure else None,
        "subjectsMatched": [],
        "keysCounted": [k.to_dict() for k in failure.keys_counted] if failure else [],
        "identitiesCounted": ([i.to_dict() for i in failure.identities_counted] if failure else []),
        "warnings": list(failure.warnings) if failure else [],
        "signatures": [s.to_dict() for s in signature_reports(error)],
        "roles": {name: role.to_dict() for name, role in role_reports(error).items()},
    }
