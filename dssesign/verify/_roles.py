"""Roles: the distinct counted keys and identities each role got, and the role requirement.

Called from the policy step (`_policy._apply_policy`) with what counted there, so only keys
and identities that survived validity, revocation, rotation, timestamps, predicate types and
the hybrid mode count in a role. A role counts distinct members: a key counts once however
many signatures it made, and a key brought in by rotation belongs to the roles of the keys it
was rotated from (`TrustRoot.rotation_to`, followed back) and is one member with them, so an
old and a new key of one chain count once in a role. A key may count in several roles; a
key of role A never counts for role B unless B lists it (or its predecessor).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..codes import Code
from ..trust import Role, TrustRoot
from ._keys import _Exclusion
from ._run import _Run, _Stop
from .result import CountedIdentity, RoleReport


def _check_roles(root: TrustRoot, known_keyids: set[str]) -> None:
    """Step 1: refuse roles and role requirements that would fail open or mean nothing."""
    roles = root.roles
    if not isinstance(roles, tuple | list):
        raise _Stop(Code.TRUST_ROOT_INVALID, "trust root: roles must be a sequence")
    names: set[str] = set()
    for role in roles:
        if (
            not isinstance(role, Role)
            or not isinstance(role.name, str)
            or role.name in names
            or not isinstance(role.keyids, tuple | list)
            or not isinstance(role.identities, tuple | list)
        ):
            raise _Stop(Code.TRUST_ROOT_INVALID, "trust root: a role is no Role or repeats a name")
        names.add(role.name)
        threshold = role.threshold
        if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
            raise _Stop(
                Code.TRUST_ROOT_INVALID,
                f"trust root: role {role.name[:64]!r} threshold {threshold!r} must be at least 1",
            )
        for keyid in role.keyids:
            if keyid not in known_keyids:
                raise _Stop(
                    Code.TRUST_ROOT_INVALID,
                    f"trust root: role {role.name[:64]!r} lists {str(keyid)[:16]}, not a "
                    "trusted key",
                )
    policy = root.policy
    scopes = [("", policy.required_roles, policy.any_role)]
    scopes += [(f" for {t}", p.required_roles, p.any_role) for t, p in policy.per_type.items()]
    for scope, required, any_role in scopes:
        if not isinstance(required, tuple | list) or not isinstance(any_role, bool):
            raise _Stop(Code.TRUST_ROOT_INVALID, f"trust root: required roles{scope} not a list")
        for name in required:
            if name not in names:
                raise _Stop(
                    Code.TRUST_ROOT_INVALID,
                    f"trust root: required role{scope} {str(name)[:64]!r} is not a role",
                )


def _lineage(root: TrustRoot, keyid: str) -> str:
    before = root.predecessors(keyid)
    return before[-1] if before else keyid


def _evaluate_roles(
    run: _Run,
    root: TrustRoot,
    *,
    predicate_type: str,
    keys: Sequence[str],
    identities: Sequence[CountedIdentity],
    excluded: Sequence[_Exclusion],
) -> _Stop | None:
    """Tally every role into `run.roles` (and the roles each key and identity counted in);
    return the failure if the roles the policy requires for `predicate_type` are not met."""
    if not root.roles:
        # Nothing to tally, and nothing can be required: a policy may only name roles the
        # trust root defines (`_check_roles`, step 1). The common case costs no role work.
        run.roles = {}
        return None
    chains: dict[str, set[str]] = {role.name: set() for role in root.roles}
    members: dict[str, list[str]] = {role.name: [] for role in root.roles}
    for keyid in keys:
        names = root.roles_of_key(keyid)
        if not names:
            continue
        run.key_roles[keyid] = names
        chain = _lineage(root, keyid)
        for name in names:
            if chain in chains[name]:
                run.warnings.append(
                    f"role {name[:64]!r}: key {keyid[:16]} is rotated from a key that already "
                    "counted in it (one member)"
                )
                continue
            chains[name].add(chain)
            members[name].append(f"key {keyid[:16]}")
    signers: dict[str, set[tuple[str, str]]] = {role.name: set() for role in root.roles}
    for identity in identities:
        who = (identity.issuer, identity.subject)
        rules = set(run.identity_names.get(who, ()))
        names = tuple(role.name for role in root.roles if rules.intersection(role.identities))
        if not names:
            continue
        run.identity_roles[who] = names
        for name in names:
            if who not in signers[name]:
                signers[name].add(who)
                members[name].append(f"identity {identity.subject[:80]}")
    run.roles = {
        role.name: RoleReport(
            threshold=role.threshold,
            counted=len(chains[role.name]) + len(signers[role.name]),
            met=len(chains[role.name]) + len(signers[role.name]) >= role.threshold,
        )
        for role in root.roles
    }
    rule = root.policy.for_type(predicate_type)
    required = tuple(rule.required_roles)
    if not required:
        return None
    short = [name for name in required if not run.roles[name].met]
    if not short or (rule.any_role and len(short) < len(required)):
        return None

    def tally(name: str) -> str:
        got = run.roles[name]
        who = ", ".join(members[name]) or "none"
        why = [
            item.message
            for item in excluded
            if item.keyid and name in root.roles_of_key(item.keyid)
        ]
        dropped = f"; not counted: {'; '.join(why)}" if why else ""
        return (
            f"role {name[:64]!r} is short: {got.counted} distinct member(s) counted ({who}), "
            f"threshold {got.threshold}{dropped}"
        )

    if rule.any_role:
        message = "no required role is met (any one would do): " + " | ".join(
            tally(name) for name in required
        )
    else:
        message = " | ".join(tally(name) for name in short)
    return _Stop(Code.ROLE_POLICY_NOT_MET, message)
