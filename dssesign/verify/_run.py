"""The state of one verification and the internal failure that carries a code to the boundary.

Every step raises `_Stop`; `_failure` turns it into the public `VerificationFailure`. The steps
record on `_Run` what the report needs (which key each signature verifies under, why a key did
not count, the roles), so a failure reports every signature as far as it was judged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..codes import Code
from .result import (
    CountedIdentity,
    CountedKey,
    RoleReport,
    SignatureReport,
    SignatureStatus,
    TimeSource,
    VerificationFailure,
)

#: A keyless signer: (OIDC issuer, certificate SAN).
_Identity = tuple[str, str]


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
    #: What un-timestamped signatures are judged at: the current time, or the caller's `at`.
    time_source: TimeSource = "now"
    #: The keyid strings of the envelope's signatures, in order (one report entry each).
    envelope_keyids: tuple[str, ...] = ()
    #: signature index -> keyid of the trusted key it verifies under.
    verified_by: dict[int, str] = field(default_factory=dict)
    #: signature index -> the keyless identity its bundle verified.
    keyless: dict[int, _Identity] = field(default_factory=dict)
    #: Signatures by a key or identity that an earlier signature already brought in.
    duplicates: set[int] = field(default_factory=set)
    #: keyid -> why that key did not count; identity -> why it did not.
    excluded: dict[str, Code] = field(default_factory=dict)
    identities_excluded: dict[_Identity, Code] = field(default_factory=dict)
    #: keyid -> the earliest verified RFC 3161 time of its signature.
    signed_at: dict[str, datetime] = field(default_factory=dict)
    #: identity -> "tlog", or "rfc3161" when its bundle carries RFC 3161 timestamps.
    keyless_time: dict[_Identity, TimeSource] = field(default_factory=dict)
    #: identity -> names of the identity rules it matched that allow the predicate type.
    identity_names: dict[_Identity, tuple[str, ...]] = field(default_factory=dict)
    #: The roles each counted key and identity counted in; every role's tally.
    key_roles: dict[str, tuple[str, ...]] = field(default_factory=dict)
    identity_roles: dict[_Identity, tuple[str, ...]] = field(default_factory=dict)
    roles: dict[str, RoleReport] = field(default_factory=dict)
    #: Accept a carried CRL whose nextUpdate is before a certificate signature's signing time.
    allow_stale_crl: bool = False
    #: The policy step ran: a key neither counted nor excluded after it did not count for
    #: a reason the policy gave; before it, what stopped the verification is the reason.
    policy_done: bool = False


def _describe(exc: Exception) -> str:
    try:
        lines = str(exc).splitlines()
    except Exception:  # an exception whose __str__ fails must not escape either
        lines = []
    return f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__


def _signature_reports(run: _Run, failure: Code | None) -> tuple[SignatureReport, ...]:
    """One entry per envelope signature: counted, verified-untrusted (and why) or invalid."""
    counted_keys = {k.keyid for k in run.keys_counted}
    counted_ids = {(i.issuer, i.subject) for i in run.identities_counted}
    # Reached only for keys and identities that verified but neither counted nor were excluded:
    # the policy, or the failure that stopped the verification before it, kept them out.
    pending = Code.INTERNAL if failure is None else failure
    reports = []
    for index, given in enumerate(run.envelope_keyids):
        status: SignatureStatus = "verified-untrusted"
        code: Code | None = pending
        roles: tuple[str, ...] = ()
        signed_at = None
        source = run.time_source
        keyid = run.verified_by.get(index)
        identity = run.keyless.get(index)
        if keyid is not None:
            if keyid in counted_keys and index not in run.duplicates:
                status, code, roles = "counted", None, run.key_roles.get(keyid, ())
                signed_at = run.signed_at.get(keyid)
                source = "rfc3161" if signed_at is not None else source
            elif keyid in counted_keys:
                code = Code.SIGNATURE_DUPLICATE
            else:
                code = run.excluded.get(keyid, pending)
        elif identity is not None:
            keyid = given
            source = run.keyless_time.get(identity, "tlog")
            if identity in counted_ids and index not in run.duplicates:
                status, code = "counted", None
                roles = run.identity_roles.get(identity, ())
            elif identity in counted_ids:
                code = Code.SIGNATURE_DUPLICATE
            else:
                code = run.identities_excluded.get(identity, pending)
        else:
            keyid, status, code = given, "invalid", Code.NO_VALID_SIGNATURE
        reports.append(
            SignatureReport(
                index=index,
                keyid=keyid,
                status=status,
                code=code,
                roles=roles,
                signed_at=signed_at,
                time_source=source,
            )
        )
    return tuple(reports)


def _failure(run: _Run, code: Code, message: str) -> VerificationFailure:
    failure = VerificationFailure(
        code,
        message,
        predicate_type=run.predicate_type,
        keys_counted=run.keys_counted,
        warnings=tuple(run.warnings),
        identities_counted=run.identities_counted,
        signatures=_signature_reports(run, code),
        roles=dict(run.roles),
    )
    return failure
