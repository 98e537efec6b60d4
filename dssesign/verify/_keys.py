"""Which trusted keys count: signatures checked over the PAE, then each key's state at a time.

The work is bounded (length filters, a budget of blind attempts); the time is a parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from ..codes import Code
from ..core.dsse import Signature
from ..trust import TrustRoot
from ._index import _broken_link, _Candidate, _Index
from ._run import _Run, _when

#: When several keys were dropped, the code reported is the most serious reason.
_EXCLUSION_ORDER: Final = (
    Code.KEY_REVOKED,
    Code.ROTATION_UNVERIFIED,
    Code.KEY_ROTATED_OUT,
    Code.KEY_EXPIRED,
    Code.KEY_NOT_YET_VALID,
    Code.TIMESTAMP_REQUIRED,
    Code.PREDICATE_TYPE_NOT_ALLOWED,
)
#: Crypto attempts for signatures without a usable keyid hint (at least 8 per trusted key):
#: bounds the work an envelope of junk signatures can cause at ~0.1-0.3 s.
_BLIND_ATTEMPTS: Final = 1024
#: Report-only attempts: un-hinted signatures that added no key, tried against accepted keys to
#: report them as repeats (SIGNATURE_DUPLICATE) rather than invalid.
_REPORT_ATTEMPTS: Final = 256


def _accepted_keys(
    run: _Run, index: _Index, signatures: Sequence[Signature], message: bytes
) -> list[_Candidate]:
    """Distinct trusted keys with a valid signature, in first-signature order.

    A keyid naming a trusted key restricts that signature to that key (so a mislabelled
    signature does not count); an empty or unknown keyid is tried against every key not yet
    accepted, within a budget of blind attempts (then skipped: fewer keys count, never more).
    The keyid never decides which key counted: only a verifying signature does.

    For the report, `run.verified_by` records the key each signature verifies under, and a
    further signature of a key already accepted is checked (once, against that key: it is
    still only one key) and marked in `run.duplicates`; un-hinted ones left over are tried
    against the accepted keys within a separate, smaller budget.
    """
    accepted: dict[int, _Candidate] = {}
    everyone = index.candidates
    budget = max(_BLIND_ATTEMPTS, 8 * len(everyone))
    run.envelope_keyids = tuple(s.keyid for s in signatures)
    for position, signature in enumerate(signatures):
        sig = signature.sig
        size = len(sig)
        named = index.by_keyid.get(signature.keyid) if signature.keyid else None
        if named is not None:
            if named.min_sig <= size <= named.max_sig and named.check(sig, message):
                run.verified_by[position] = named.keyid
                if id(named) in accepted:
                    run.duplicates.add(position)  # that key already counts: it adds nothing
                else:
                    accepted[id(named)] = named
                    run.signatures[named.keyid] = sig
            else:
                run.warnings.append(
                    f"signature {position}: does not verify under the key its keyid names "
                    f"({named.keyid[:16]})"
                )
            continue
        if signature.keyid:
            run.warnings.append(
                f"signature {position}: keyid {signature.keyid[:24]!r} names no trusted key; "
                "tried against every trusted key"
            )
        for candidate in everyone:
            if id(candidate) in accepted or not candidate.min_sig <= size <= candidate.max_sig:
                continue
            if budget <= 0:
                run.warnings.append(
                    f"signature {position}: skipped, the budget of blind verification "
                    "attempts is spent"
                )
                break
            budget -= 1
            if candidate.check(sig, message):
                accepted[id(candidate)] = candidate
                run.signatures[candidate.keyid] = sig
                run.verified_by[position] = candidate.keyid
                break
    _classify_repeats(run, index, signatures, message, list(accepted.values()))
    return list(accepted.values())


def _classify_repeats(
    run: _Run,
    index: _Index,
    signatures: Sequence[Signature],
    message: bytes,
    accepted: Sequence[_Candidate],
) -> None:
    """Report-only: an un-hinted signature that added no key may be a repeat of an accepted
    key's; try those keys (never others) within `_REPORT_ATTEMPTS`. Counts nothing."""
    budget = _REPORT_ATTEMPTS
    for position, signature in enumerate(signatures):
        if position in run.verified_by or (signature.keyid and signature.keyid in index.by_keyid):
            continue
        size = len(signature.sig)
        for candidate in accepted:
            if not candidate.min_sig <= size <= candidate.max_sig:
                continue
            if budget <= 0:
                return
            budget -= 1
            if candidate.check(signature.sig, message):
                run.verified_by[position] = candidate.keyid
                run.duplicates.add(position)
                break


def _state_problem(
    run: _Run, root: TrustRoot, index: _Index, candidate: _Candidate, now: datetime
) -> tuple[Code, str] | None:
    """Why `candidate` does not count at `now` (validity, revocation, rotation), or None.

    Windows follow the trust-root model (`TrustedKey.valid_at`, `revoked_at`): validFrom and
    validUntil both inclusive, revoked from the revocation time on. A key listed twice must be
    acceptable under every entry: the stricter reading wins.
    """
    short = candidate.keyid[:16]
    for entry in candidate.entries:
        revocation = entry.revocation
        if revocation is not None and entry.revoked_at(now):
            reason = f" ({revocation.reason})" if revocation.reason else ""
            return Code.KEY_REVOKED, f"key {short} was revoked at {_when(revocation.time)}{reason}"
    broken = _broken_link(root, index, candidate.keyid)
    if broken is not None:
        return (
            Code.ROTATION_UNVERIFIED,
            f"key {short} was introduced by rotation, but the handover "
            f"{broken.from_keyid[:16]} -> {broken.to_keyid[:16]}"
            + (" in its rotation chain" if broken.to_keyid != candidate.keyid else "")
            + " does not verify",
        )
    for event in index.rotations_to.get(candidate.keyid, ()):
        if now < event.time:
            return (
                Code.KEY_NOT_YET_VALID,
                f"key {short} is trusted from its rotation at {_when(event.time)}",
            )
    for event in index.rotations_from.get(candidate.keyid, ()):
        if now > event.transition_deadline:
            return (
                Code.KEY_ROTATED_OUT,
                f"key {short} was rotated to {event.to_keyid[:16]}; its transition ended at "
                f"{_when(event.transition_deadline)}",
            )
    for entry in candidate.entries:
        if not entry.valid_at(now):
            if entry.valid_from is not None and now < entry.valid_from:
                return (
                    Code.KEY_NOT_YET_VALID,
                    f"key {short} is valid from {_when(entry.valid_from)}, after {_when(now)}",
                )
            return (
                Code.KEY_EXPIRED,
                f"key {short} was valid until {_when(entry.valid_until or now)}, before "
                f"{_when(now)}",
            )
        if entry.revocation is not None:
            run.warnings.append(
                f"key {short} is revoked from {_when(entry.revocation.time)}, after the "
                "verification time"
            )
    return None


def _state_at_times(
    run: _Run,
    root: TrustRoot,
    index: _Index,
    candidate: _Candidate,
    times: Sequence[datetime],
) -> tuple[Code, str] | None:
    """Why `candidate` does not count at one of its signature's verified timestamp times.

    A timestamped signature is judged when it was made, not now: at every token time the key
    must be valid, unrevoked (a time at or after the revocation is refused), inside its
    rotation window. The verification time (`--at`) does not move it.
    """
    for moment in times:
        problem = _state_problem(run, root, index, candidate, moment)
        if problem is not None:
            code, message = problem
            return code, f"{message} (judged at its RFC 3161 timestamp {_when(moment)})"
    return None


@dataclass(frozen=True)
class _Exclusion:
    """A trusted key whose signature verified but which does not count, and why."""

    code: Code
    keyid: str
    message: str


def _worst(excluded: Sequence[_Exclusion]) -> tuple[Code, str]:
    ranked = sorted(excluded, key=lambda item: _EXCLUSION_ORDER.index(item.code))
    return ranked[0].code, "; ".join(item.message for item in ranked)
