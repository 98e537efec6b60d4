"""The semantic rules every trust root obeys: shared by the loader and every management step."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from .._internal.strict_json import json_path
from ..core.canonical import MAX_SAFE_INTEGER, canonicalize
from ..core.keys import PublicKey
from ..errors import (
    CanonicalizationError,
)
from ..limits import DEFAULT_LIMITS

if TYPE_CHECKING:  # the verifier loads trust roots and nothing of the signing stack
    from ..timestamp.authority import TimestampAuthority

from ._common import (
    HYBRID_MODES,
    MAX_IDENTITIES,
    MAX_KEYS,
    MAX_ROLE_MEMBERS,
    MAX_ROLES,
    MAX_ROOT_KEYS,
    MAX_ROTATIONS,
    MAX_THRESHOLD,
    MAX_TIMESTAMP_AUTHORITIES,
    _check_name,
    _check_text,
    _check_time,
    _check_type_uri,
    _check_type_uris,
    _clip,
    _fail,
    format_time,
)
from .model import Role, RootKeys, RotationEvent, TrustedKey, TrustRoot, TypePolicy


def _check_threshold(value: object, path: str, maximum: int = MAX_THRESHOLD) -> int:
    if type(value) is not int or not 1 <= value <= maximum:
        raise _fail(path, f"must be an integer from 1 to {maximum}, got {value!r}")
    return value


def _check_required(keyids: object, path: str, root: TrustRoot, predicate_type: str | None) -> None:
    if not isinstance(keyids, tuple):
        raise _fail(path, "must be a tuple of keyids")
    if len(set(keyids)) != len(keyids):
        raise _fail(path, "lists a keyid twice")
    for index, keyid in enumerate(keyids):
        key = root.key(keyid) if isinstance(keyid, str) else None
        if key is None:
            raise _fail(f"{path}[{index}]", f"{_clip(repr(keyid), 80)} is not a key in $.keys")
        if predicate_type is not None and not key.allows(predicate_type):
            raise _fail(
                f"{path}[{index}]",
                f"key {keyid} is required for {predicate_type} but may not attest to it "
                "(its predicateTypes exclude it)",
            )


def _validate(root: TrustRoot, *, complete: bool) -> None:
    """Every rule the model must satisfy; raises TrustRootError with the JSON path."""
    if type(root.version) is not int or not 1 <= root.version <= MAX_SAFE_INTEGER:
        raise _fail("$.version", f"must be an integer from 1 to {MAX_SAFE_INTEGER}")
    _check_time(root.expires, "$.expires")
    if len(root.keys) > MAX_KEYS:
        raise _fail("$.keys", f"more than {MAX_KEYS} keys")
    seen: dict[bytes, int] = {}
    for index, key in enumerate(root.keys):
        _validate_key(key, f"$.keys[{index}]", seen, index)
    _validate_policy(root)
    _validate_rotations(root)
    _validate_root_keys(root.root)
    _validate_timestamp_authorities(root.timestamp_authorities)
    if root.sigstore is not None:
        if not isinstance(root.sigstore, dict):
            raise _fail("$.sigstore", "must be a JSON object")
        try:
            encoded = canonicalize(root.sigstore)
            # A float like 2.0**53 canonicalizes to an integer JSON cannot carry exactly.
            stable = canonicalize(json.loads(encoded)) == encoded
        except CanonicalizationError as exc:
            raise _fail("$.sigstore", str(exc)) from None
        if not stable:
            raise _fail("$.sigstore", "holds a number that does not survive canonical JSON")
        root.keyless  # noqa: B018 - parsed once here, kept for _validate_reachable and verify
    _validate_pki(root)
    _validate_roles(root)
    if complete:
        _validate_reachable(root)
        _validate_roles_reachable(root)


def _validate_pki(root: TrustRoot) -> None:
    """An in-memory `pki` section: the right type, identities naming listed CAs (`parse_pki`
    checked the chains and CRLs of one read from JSON; `trust.edit` builds through it too)."""
    if root.pki is None:
        return
    from .pki import OrganisationPKI  # noqa: PLC0415 - X.509 only when the section is there

    if not isinstance(root.pki, OrganisationPKI):
        raise _fail("$.pki", "must be an OrganisationPKI")
    names = {authority.name for authority in root.pki.authorities}
    if not names:
        raise _fail("$.pki.certificateAuthorities", "must list at least one CA")
    for index, rule in enumerate(root.pki.identities):
        if rule.ca not in names:
            raise _fail(f"$.pki.identities[{index}].ca", f"{rule.ca!r} names no listed CA")


def _validate_key(key: TrustedKey, path: str, seen: dict[bytes, int], index: int) -> None:
    if not isinstance(key, TrustedKey) or not isinstance(key.public_key, PublicKey):
        raise _fail(path, "must be a TrustedKey holding a PublicKey")
    spki = key.public_key.spki_der
    if spki in seen:
        raise _fail(f"{path}.publicKey", f"the same key is already listed at $.keys[{seen[spki]}]")
    seen[spki] = index
    if key.label is not None:
        _check_text(key.label, f"{path}.label", empty_ok=False, limit=256)
    if key.valid_from is not None:
        _check_time(key.valid_from, f"{path}.validFrom")
    if key.valid_until is not None:
        _check_time(key.valid_until, f"{path}.validUntil")
    if (
        key.valid_from is not None
        and key.valid_until is not None
        and key.valid_from >= key.valid_until
    ):
        raise _fail(
            f"{path}.validUntil",
            f"{format_time(key.valid_until)} is not after validFrom {format_time(key.valid_from)}",
        )
    if not isinstance(key.predicate_types, tuple) or len(key.predicate_types) > 64:
        raise _fail(f"{path}.predicateTypes", "must be a tuple of at most 64 URIs")
    _check_type_uris(key.predicate_types, f"{path}.predicateTypes")
    if key.revocation is not None:
        _check_time(key.revocation.time, f"{path}.revoked.time")
        _check_text(key.revocation.reason, f"{path}.revoked.reason", empty_ok=True, limit=1024)


def _check_flag(value: object, path: str) -> None:
    if type(value) is not bool:
        raise _fail(path, f"must be True or False, got {_clip(repr(value), 80)}")


def _validate_policy(root: TrustRoot) -> None:
    policy = root.policy
    _check_threshold(policy.threshold, "$.policy.threshold")
    _check_flag(policy.require_timestamp, "$.policy.requireTimestamp")
    _check_required(policy.required_keyids, "$.policy.requiredKeyids", root, None)
    if policy.hybrid not in HYBRID_MODES:
        raise _fail("$.policy.hybrid", f"{policy.hybrid!r} is not one of {', '.join(HYBRID_MODES)}")
    if len(policy.per_type) > 64:
        raise _fail("$.policy.perType", "more than 64 predicate types")
    for uri, type_policy in policy.per_type.items():
        _check_type_uri(uri, "$.policy.perType")
        path = json_path(["policy", "perType", uri])
        if not isinstance(type_policy, TypePolicy):
            raise _fail(path, "must be a TypePolicy")
        _check_threshold(type_policy.threshold, f"{path}.threshold")
        _check_flag(type_policy.require_timestamp, f"{path}.requireTimestamp")
        _check_required(type_policy.required_keyids, f"{path}.requiredKeyids", root, uri)


def _validate_rotations(root: TrustRoot) -> None:
    if len(root.rotations) > MAX_ROTATIONS:
        raise _fail("$.rotations", f"more than {MAX_ROTATIONS} rotations")
    sources: dict[str, int] = {}
    targets: dict[str, int] = {}
    for index, event in enumerate(root.rotations):
        path = f"$.rotations[{index}]"
        if not isinstance(event, RotationEvent):
            raise _fail(path, "must be a RotationEvent")
        for name, keyid in (("fromKeyid", event.from_keyid), ("toKeyid", event.to_keyid)):
            if not isinstance(keyid, str) or root.key(keyid) is None:
                raise _fail(f"{path}.{name}", f"{_clip(repr(keyid), 80)} is not a key in $.keys")
        if event.from_keyid == event.to_keyid:
            raise _fail(f"{path}.toKeyid", "a key cannot be rotated to itself")
        if event.from_keyid in sources:
            raise _fail(
                f"{path}.fromKeyid",
                f"this key was already rotated away at $.rotations[{sources[event.from_keyid]}]",
            )
        if event.to_keyid in targets:
            raise _fail(
                f"{path}.toKeyid",
                f"this key was already introduced at $.rotations[{targets[event.to_keyid]}]",
            )
        sources[event.from_keyid] = index
        targets[event.to_keyid] = index
        _check_time(event.time, f"{path}.time")
        _check_time(event.transition_deadline, f"{path}.transitionDeadline")
        if event.transition_deadline < event.time:
            raise _fail(f"{path}.transitionDeadline", "is before the rotation time")
        if not isinstance(event.handover_signature, bytes) or not event.handover_signature:
            raise _fail(f"{path}.handoverSignature", "must be non-empty signature bytes")
        if len(event.handover_signature) > DEFAULT_LIMITS.max_signature_bytes:
            raise _fail(f"{path}.handoverSignature", "larger than a signature can be")
        old = root.key(event.from_keyid)
        assert old is not None  # checked above
        if old.valid_until is None or old.valid_until > event.transition_deadline:
            old_index = root.keys.index(old)
            raise _fail(
                f"$.keys[{old_index}].validUntil",
                "a rotated-away key must stop being valid by its transition deadline "
                f"({format_time(event.transition_deadline)}, $.rotations[{index}])",
            )
    # With one rotation per source and per target, the events form paths and cycles; a cycle
    # would let two keys vouch for each other, so refuse it.
    for start, start_index in sources.items():
        keyid, steps = start, 0
        while keyid in sources and steps <= len(sources):
            keyid = root.rotations[sources[keyid]].to_keyid
            steps += 1
            if keyid == start:
                raise _fail(f"$.rotations[{start_index}]", "rotations form a cycle")


def _validate_timestamp_authorities(authorities: tuple[TimestampAuthority, ...]) -> None:
    """Names unique, no TSA certificate twice, sane windows, aware times (the entries checked
    their own chains and fields when they were made)."""
    if not isinstance(authorities, tuple):
        raise _fail("$.timestampAuthorities", "must be a tuple of TimestampAuthority")
    if not authorities:
        return
    if len(authorities) > MAX_TIMESTAMP_AUTHORITIES:
        raise _fail(
            "$.timestampAuthorities",
            f"more than {MAX_TIMESTAMP_AUTHORITIES} timestamp authorities",
        )
    # Imported only when there are TSAs: a trust root without them never loads X.509 code.
    from ..timestamp.authority import TimestampAuthority  # noqa: PLC0415 - lazy, see above

    names: dict[str, int] = {}
    leaves: dict[bytes, int] = {}
    for index, authority in enumerate(authorities):
        path = f"$.timestampAuthorities[{index}]"
        if not isinstance(authority, TimestampAuthority):
            raise _fail(path, "must be a TimestampAuthority")
        if authority.name in names:
            raise _fail(
                f"{path}.name",
                f"{_clip(repr(authority.name), 80)} is already the name of "
                f"$.timestampAuthorities[{names[authority.name]}] (names are unique)",
            )
        names[authority.name] = index
        # The same TSA certificate under two names would survive revoking one of them.
        leaf = authority.chain_der[0]
        if leaf in leaves:
            raise _fail(
                f"{path}.certificateChain[0]",
                f"this TSA certificate is already listed at $.timestampAuthorities[{leaves[leaf]}]",
            )
        leaves[leaf] = index
        for name, moment in (
            ("validFrom", authority.valid_from),
            ("validUntil", authority.valid_until),
            ("revokedAt", authority.revoked_at),
        ):
            if moment is not None:
                _check_time(moment, f"{path}.{name}")
        if (
            authority.valid_from is not None
            and authority.valid_until is not None
            and authority.valid_until < authority.valid_from
        ):
            raise _fail(
                f"{path}.validUntil",
                f"{format_time(authority.valid_until)} is before validFrom "
                f"{format_time(authority.valid_from)}",
            )


def _validate_root_keys(root_keys: RootKeys) -> None:
    if not isinstance(root_keys, RootKeys):
        raise _fail("$.rootKeys", "must be RootKeys")
    if not root_keys.keys:
        if root_keys.threshold != 1:
            raise _fail("$.rootKeys.threshold", "set without any root keys")
        return
    if len(root_keys.keys) > MAX_ROOT_KEYS:
        raise _fail("$.rootKeys.keys", f"more than {MAX_ROOT_KEYS} root keys")
    seen: dict[bytes, int] = {}
    for index, key in enumerate(root_keys.keys):
        if not isinstance(key, PublicKey):
            raise _fail(f"$.rootKeys.keys[{index}]", "must be a PublicKey")
        if key.spki_der in seen:
            raise _fail(
                f"$.rootKeys.keys[{index}].publicKey",
                f"the same key is already listed at $.rootKeys.keys[{seen[key.spki_der]}]",
            )
        seen[key.spki_der] = index
    _check_threshold(root_keys.threshold, "$.rootKeys.threshold", len(root_keys.keys))


def _validate_reachable(root: TrustRoot) -> None:
    """Refuse a policy no set of listed keys could ever meet (a typo that would fail closed)."""
    policy = root.policy
    checks: list[tuple[str, str | None, TypePolicy]] = [
        ("$.policy", None, TypePolicy(policy.threshold, policy.required_keyids))
    ]
    checks += [
        (json_path(["policy", "perType", uri]), uri, tp) for uri, tp in policy.per_type.items()
    ]
    rules = root.all_identities()
    for path, uri, type_policy in checks:
        eligible = [k for k in root.keys if uri is None or k.allows(uri)]
        # A keyless identity (an ECDSA certificate key) counts like one classical key.
        identities = sum(1 for rule in rules if uri is None or rule.allows(uri))
        classical = sum(not k.public_key.algorithm.post_quantum for k in eligible) + identities
        quantum = len(eligible) + identities - classical
        what = "keys" if uri is None else f"keys allowed for {uri}"
        if policy.hybrid == "pq-only":
            if quantum < type_policy.threshold:
                raise _fail(
                    f"{path}.threshold",
                    f"{type_policy.threshold} exceeds the {quantum} ML-DSA {what} "
                    "(hybrid 'pq-only' counts only post-quantum keys); add keys or lower it",
                )
            for keyid in type_policy.required_keyids:
                key = root.key(keyid)
                if key is not None and not key.public_key.algorithm.post_quantum:
                    raise _fail(
                        f"{path}.requiredKeyids",
                        f"{keyid} is a classical key, which hybrid 'pq-only' never counts",
                    )
        elif policy.hybrid == "and":
            if classical < type_policy.threshold or quantum < 1:
                raise _fail(
                    f"{path}.threshold",
                    f"hybrid 'and' needs {type_policy.threshold} classical {what} and at least "
                    f"one ML-DSA key; there are {classical} classical and {quantum} ML-DSA",
                )
        elif len(eligible) + identities < type_policy.threshold:
            extra = f" and {identities} keyless identities" if identities else ""
            raise _fail(
                f"{path}.threshold",
                f"{type_policy.threshold} exceeds the {len(eligible)} {what}{extra}; "
                "add keys or lower the threshold",
            )


# --- roles -----------------------------------------------------------------------------------


def _check_names(values: object, path: str, limit: int, what: str) -> tuple[str, ...]:
    if not isinstance(values, tuple) or len(values) > limit:
        raise _fail(path, f"must be a tuple of at most {limit} {what}")
    if len(set(values)) != len(values):
        raise _fail(path, f"lists a {what[:-1]} twice")
    return values


def _validate_roles(root: TrustRoot) -> None:
    """Names unique; every member exists; thresholds within the members; policy references."""
    roles = root.roles
    if not isinstance(roles, tuple) or len(roles) > MAX_ROLES:
        raise _fail("$.roles", f"must be a tuple of at most {MAX_ROLES} roles")
    identity_names: set[str] = set()
    for rule in root.all_identities():
        if rule.name is not None and rule.name in identity_names:
            raise _fail(
                "$.pki.identities",
                f"{_clip(repr(rule.name), 80)} names both a keyless and a certificate identity "
                "(roles refer to identities by name: names are unique across both)",
            )
        if rule.name is not None:
            identity_names.add(rule.name)
    names: dict[str, int] = {}
    for index, role in enumerate(roles):
        path = f"$.roles[{index}]"
        if not isinstance(role, Role):
            raise _fail(path, "must be a Role")
        _check_name(role.name, f"{path}.name")
        if role.name in names:
            raise _fail(
                f"{path}.name",
                f"{_clip(repr(role.name), 80)} is already the name of $.roles[{names[role.name]}] "
                "(names are unique)",
            )
        names[role.name] = index
        keyids = _check_names(role.keyids, f"{path}.keyids", MAX_ROLE_MEMBERS, "keyids")
        for position, keyid in enumerate(keyids):
            if not isinstance(keyid, str) or root.key(keyid) is None:
                raise _fail(
                    f"{path}.keyids[{position}]", f"{_clip(repr(keyid), 80)} is not a key in $.keys"
                )
        members = _check_names(role.identities, f"{path}.identities", MAX_IDENTITIES, "identities")
        for position, name in enumerate(members):
            if name not in identity_names:
                raise _fail(
                    f"{path}.identities[{position}]",
                    f"{_clip(repr(name), 80)} names no identity in $.sigstore.identities or "
                    "$.pki.identities (identities are named with add-identity --name)",
                )
        if not role.size:
            raise _fail(path, "a role needs members: keyids, identities or both")
        if role.size > MAX_ROLE_MEMBERS:
            raise _fail(path, f"more than {MAX_ROLE_MEMBERS} members")
        _check_threshold(role.threshold, f"{path}.threshold", role.size)
    policy = root.policy
    _check_role_requirement(policy.required_roles, policy.any_role, "$.policy", names)
    for uri, type_policy in policy.per_type.items():
        path = json_path(["policy", "perType", uri])
        _check_role_requirement(type_policy.required_roles, type_policy.any_role, path, names)


def _check_role_requirement(
    required: object, any_role: object, path: str, names: dict[str, int]
) -> None:
    _check_flag(any_role, f"{path}.anyRole")
    wanted = _check_names(required, f"{path}.requiredRoles", MAX_ROLES, "roles")
    for position, name in enumerate(wanted):
        if name not in names:
            raise _fail(
                f"{path}.requiredRoles[{position}]",
                f"{_clip(repr(name), 80)} is not a role in $.roles",
            )
    if any_role and not wanted:
        raise _fail(f"{path}.anyRole", "set without requiredRoles")


def _lineage(root: TrustRoot, keyid: str) -> str:
    """The first key of `keyid`'s rotation chain: a key and its successors are one member."""
    before = root.predecessors(keyid)
    return before[-1] if before else keyid


def _role_capacity(root: TrustRoot, role: Role, predicate_type: str | None) -> int:
    """How many distinct members of `role` could ever count for `predicate_type` (None: any):
    one per rotation chain among its keys (a key and the keys rotated from or to it are one
    member), in `pq-only` only ML-DSA keys, plus its identities allowed for the type (an
    identity counts as a classical signer). Validity and revocation are not considered."""
    hybrid = root.policy.hybrid
    identities = root.all_identities()
    chains: set[str] = set()
    for keyid in role.keyids:
        for member in (keyid, *root.successors(keyid)):
            key = root.key(member)
            if key is None or (predicate_type is not None and not key.allows(predicate_type)):
                continue
            if hybrid == "pq-only" and not key.public_key.algorithm.post_quantum:
                continue
            chains.add(_lineage(root, member))
    count = len(chains)
    if hybrid != "pq-only":
        by_name = {rule.name: rule for rule in identities if rule.name is not None}
        count += sum(
            1
            for name in role.identities
            if name in by_name and (predicate_type is None or by_name[name].allows(predicate_type))
        )
    return count


def _validate_roles_reachable(root: TrustRoot) -> None:
    """Refuse a role no set of its members could meet, and a role requirement no role could."""
    for index, role in enumerate(root.roles):
        capacity = _role_capacity(root, role, None)
        if capacity < role.threshold:
            raise _fail(
                f"$.roles[{index}].threshold",
                f"{role.threshold} exceeds the {capacity} distinct members of role "
                f"{_clip(repr(role.name), 80)} that could count (a key and the keys rotated "
                "from it are one member; hybrid pq-only counts only ML-DSA keys)",
            )
    policy = root.policy
    scopes: list[tuple[str, str | None]] = [("$.policy", None)]
    scopes += [(json_path(["policy", "perType", uri]), uri) for uri in policy.per_type]
    for scope, uri in scopes:
        path, required, any_role = scope, policy.required_roles, policy.any_role
        if uri is not None and policy.per_type[uri].required_roles:
            required, any_role = policy.per_type[uri].required_roles, policy.per_type[uri].any_role
        elif uri is not None:
            path = "$.policy"  # the global requirement, which this type inherits
        short = []
        for name in required:
            wanted = root.role(name)
            if wanted is not None and _role_capacity(root, wanted, uri) < wanted.threshold:
                short.append(name)
        if short and (not any_role or len(short) == len(required)):
            what = "any type" if uri is None else uri
            raise _fail(
                f"{path}.requiredRoles",
                f"role {_clip(repr(short[0]), 80)} can never be met for {what}: too few of its "
                "members may attest to it",
            )
