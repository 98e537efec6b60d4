"""The trust root's policy: refused up front if it would fail open, then applied to what counted.

Also the last step, matching artifacts and digests to the Statement's subjects.
"""

from __future__ import annotations

import dataclasses
import hmac
import os
from collections.abc import Sequence
from typing import Any, Final

from .. import trust as trustroot
from ..codes import Code
from ..errors import DssesignError
from ..intoto.subjects import digest_file
from ..trust import TrustRoot
from ._index import _Candidate, _Index
from ._keys import _Exclusion, _worst
from ._roles import _check_roles, _evaluate_roles, _lineage
from ._run import _Run, _Stop
from .result import CountedIdentity, MatchedSubject

_HYBRID_MODES: Final = frozenset({"off", "or", "and", "pq-only"})


def _check_policy(root: TrustRoot, index: _Index) -> None:
    """Refuse a policy that would fail open or can never mean what it says, before any work."""
    policy = root.policy
    if not isinstance(policy, trustroot.Policy):
        raise _Stop(Code.TRUST_ROOT_INVALID, "trust root: policy is not a Policy")
    if policy.hybrid not in _HYBRID_MODES:
        raise _Stop(Code.TRUST_ROOT_INVALID, f"trust root: unknown hybrid mode {policy.hybrid!r}")
    rules: list[tuple[str, object, object]] = [("", policy.threshold, policy.required_keyids)]
    for predicate_type, rule in policy.per_type.items():
        if not isinstance(rule, trustroot.TypePolicy):
            raise _Stop(Code.TRUST_ROOT_INVALID, "trust root: per-type policy is not a TypePolicy")
        rules.append((f" for {predicate_type}", rule.threshold, rule.required_keyids))
    for scope, threshold, required in rules:
        if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
            raise _Stop(
                Code.TRUST_ROOT_INVALID,
                f"trust root: threshold{scope} {threshold!r} must be at least 1",
            )
        if not isinstance(required, tuple | list):
            raise _Stop(Code.TRUST_ROOT_INVALID, f"trust root: required keyids{scope} not a list")
        for keyid in required:
            if keyid not in index.by_keyid:
                raise _Stop(
                    Code.TRUST_ROOT_INVALID,
                    f"trust root: required keyid{scope} {str(keyid)[:16]} is not a trusted key",
                )
    _check_roles(root, set(index.by_keyid))


def _apply_policy(
    run: _Run,
    root: TrustRoot,
    index: _Index,
    *,
    predicate_type: str,
    eligible: list[_Candidate],
    excluded: list[_Exclusion],
    identities: Sequence[CountedIdentity] = (),
) -> int:
    """Threshold of distinct keys and keyless identities, required keyids, hybrid mode, and
    the roles the policy requires (`_roles`), all of which must hold.

    A keyless identity (its certificate key is ECDSA) counts like one classical key: toward
    the threshold in modes off/or/and, not at all in pq-only. Sets `run.keys_counted`,
    `run.identities_counted` and the role tallies (`run.roles`), before any check can fail.
    """
    policy = root.policy
    per_type = policy.per_type.get(predicate_type) if policy.per_type else None
    threshold = per_type.threshold if per_type is not None else policy.threshold
    required = per_type.required_keyids if per_type is not None else policy.required_keyids
    hybrid = policy.hybrid

    classical = [c for c in eligible if not c.post_quantum]
    quantum = [c for c in eligible if c.post_quantum]
    if hybrid == "pq-only":
        counted, toward = quantum, quantum
        if classical:
            run.warnings.append(
                f"hybrid mode pq-only: {len(classical)} classical signature(s) not counted"
            )
            run.excluded.update((c.keyid, Code.HYBRID_POLICY_NOT_MET) for c in classical)
    elif hybrid == "and":
        counted, toward = classical + quantum, classical
    else:
        counted, toward = eligible, eligible
    # Each with its signing time (set on the run by step 5): reported on failure as on success.
    run.keys_counted = tuple(
        dataclasses.replace(c.counted, signed_at=run.signed_at[c.keyid])
        if c.keyid in run.signed_at
        else c.counted
        for c in counted
    )
    signers = tuple(identities) if hybrid != "pq-only" else ()
    if identities and not signers:
        run.warnings.append(
            f"hybrid mode pq-only: {len(identities)} keyless identity signature(s) not counted"
        )
        run.identities_excluded.update(
            ((i.issuer, i.subject), Code.HYBRID_POLICY_NOT_MET) for i in identities
        )
    run.identities_counted = signers
    roles_short = _evaluate_roles(
        run,
        root,
        predicate_type=predicate_type,
        keys=[c.keyid for c in counted],
        identities=signers,
        excluded=excluded,
    )
    run.policy_done = True
    # A key and the keys rotated from it are one signer: during a transition both verify, but
    # one holder with the old and the new key must not meet a threshold of two.
    total = len({_lineage(root, c.keyid) for c in toward}) + len(signers)
    who = "distinct trusted key(s)" + (" and keyless identities" if signers else "")

    scope = f" for {predicate_type}" if per_type is not None else ""
    if total < threshold:
        if hybrid in ("and", "pq-only") and len(eligible) + len(identities) >= threshold:
            kind = "classical" if hybrid == "and" else "ML-DSA"
            raise _Stop(
                Code.HYBRID_POLICY_NOT_MET,
                f"hybrid mode {hybrid}: {total} distinct {kind} key(s) counted, "
                f"threshold{scope} is {threshold}",
            )
        if excluded:
            code, detail = _worst(excluded)
            raise _Stop(
                code,
                f"{total} {who} counted, threshold{scope} is {threshold}: {detail}",
            )
        raise _Stop(
            Code.THRESHOLD_NOT_MET,
            f"{total} {who} counted, threshold{scope} is {threshold}",
        )
    if hybrid == "and" and not quantum:
        raise _Stop(
            Code.HYBRID_POLICY_NOT_MET,
            "hybrid mode and: no ML-DSA signature from a trusted key verifies",
        )
    counted_ids = {c.keyid for c in counted}
    missing = [k for k in required if k not in counted_ids]
    if missing:
        # If the required key signed but was dropped, its reason is the more useful code.
        reasons = [item for item in excluded if item.keyid in missing]
        code, detail = _worst(reasons) if reasons else (Code.REQUIRED_KEY_MISSING, "")
        raise _Stop(
            code,
            "required key(s) did not count: "
            + ", ".join(k[:16] for k in missing)
            + (f": {detail}" if detail else ""),
        )
    if roles_short is not None:
        raise roles_short
    return threshold


def _match_subjects(
    subjects: list[Any],
    artifacts: tuple[object, ...],
    digests: tuple[tuple[str, str, str], ...],
) -> tuple[MatchedSubject, ...]:
    """Each artifact and digest must equal some subject's digest (constant-time compare)."""
    wanted: list[tuple[str, str, str]] = list(digests)
    for artifact in artifacts:
        if not isinstance(artifact, str | os.PathLike):
            raise _Stop(Code.INVALID_ARGUMENT, "artifacts: expected file paths")
        label = os.fsdecode(artifact)
        try:
            value = digest_file(artifact, algorithms=("sha256",))["sha256"]
        except DssesignError as exc:
            raise _Stop(Code.ARTIFACT_UNREADABLE, str(exc)) from None
        wanted.append(("sha256", value, label))
    matched: list[MatchedSubject] = []
    for algorithm, value, label in wanted:
        expected = value.encode("ascii")
        hits = [
            subject
            for subject in subjects
            if isinstance(subject.get("digest"), dict)
            and isinstance(subject["digest"].get(algorithm), str)
            and hmac.compare_digest(
                subject["digest"][algorithm].encode("utf-8", "surrogatepass"), expected
            )
        ]
        if not hits:
            raise _Stop(
                Code.SUBJECT_MISMATCH,
                f"{label[:200]}: {algorithm}:{value} matches no subject of the Statement",
            )
        matched.extend(
            MatchedSubject(
                name=subject.get("name") if isinstance(subject.get("name"), str) else None,
                digest=f"{algorithm}:{value}",
                artifact=label,
            )
            for subject in hits
        )
    return tuple(matched)
