"""Management operations: each returns a new TrustRoot with version + 1, checked."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..core.canonical import MAX_SAFE_INTEGER
from ..core.keys import PublicKey
from ..errors import (
    ConfigError,
    TrustRootError,
    VerificationError,
)

if TYPE_CHECKING:  # the verifier loads trust roots and nothing of the signing stack
    from ..timestamp.authority import TimestampAuthority

from ._common import HybridMode, _clip, _fail, _now, _whole_seconds, format_time
from .identity import IdentityRule, _parse_sigstore
from .model import Policy, Revocation, Role, RootKeys, TrustedKey, TrustRoot, TypePolicy
from .rules import _validate

# --- management operations (each returns a new TrustRoot, version + 1) ----------------------


def _bump(current: TrustRoot, **changes: Any) -> TrustRoot:
    if current.version >= MAX_SAFE_INTEGER:
        raise TrustRootError("trust root version cannot be increased any further", "$.version")
    updated = dataclasses.replace(current, version=current.version + 1, **changes)
    _validate(updated, complete=False)
    return updated


def init_trust_root(
    *, threshold: int = 1, expires_days: int = 365, now: datetime | None = None
) -> TrustRoot:
    """A new, empty trust root (version 1); add keys next. It verifies nothing until then."""
    if type(expires_days) is not int or expires_days < 1:
        raise ConfigError("expires_days must be a positive number of days")
    root = TrustRoot(
        version=1,
        expires=_now(now) + timedelta(days=expires_days),
        keys=(),
        policy=Policy(threshold=threshold),
    )
    _validate(root, complete=False)
    return root


def set_expires(root: TrustRoot, expires: datetime) -> TrustRoot:
    """Move the expiry (rounded down to whole seconds)."""
    return _bump(root, expires=_whole_seconds(expires, "expires"))


def add_key(
    root: TrustRoot,
    public_key: PublicKey,
    *,
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
    predicate_types: Sequence[str] = (),
    label: str | None = None,
) -> TrustRoot:
    """Trust one more signing key. A key already present (same SPKI) is refused."""
    if not isinstance(public_key, PublicKey):
        raise ConfigError("public_key must be a dssesign.core.keys.PublicKey")
    if isinstance(predicate_types, str):
        raise ConfigError("predicate_types must be a sequence of URIs, not one string")
    key = TrustedKey(
        public_key=public_key,
        label=label,
        valid_from=(
            None if valid_from is None else _whole_seconds(valid_from, "valid_from", round_up=True)
        ),
        valid_until=None if valid_until is None else _whole_seconds(valid_until, "valid_until"),
        predicate_types=tuple(predicate_types),
    )
    return _bump(root, keys=(*root.keys, key))


def _key_index(root: TrustRoot, keyid: str) -> int:
    for index, key in enumerate(root.keys):
        if key.keyid == keyid:
            return index
    raise TrustRootError(f"trust root has no key with keyid {keyid!r}", "$.keys")


def revoke_key(
    root: TrustRoot, keyid: str, *, at: datetime | None = None, reason: str = ""
) -> TrustRoot:
    """Revoke a key from `at` (default now) on; signatures it makes count nowhere after that."""
    index = _key_index(root, keyid)
    key = root.keys[index]
    if key.revocation is not None:
        raise TrustRootError(
            f"key {keyid} is already revoked (since {format_time(key.revocation.time)})",
            f"$.keys[{index}].revoked",
        )
    revoked = dataclasses.replace(key, revocation=Revocation(_now(at), reason))
    keys = (*root.keys[:index], revoked, *root.keys[index + 1 :])
    return _bump(root, keys=keys)


def set_policy(
    root: TrustRoot,
    *,
    threshold: int | None = None,
    required_keyids: Sequence[str] | None = None,
    for_type: str | None = None,
    hybrid: HybridMode | None = None,
    require_timestamp: bool | None = None,
    required_roles: Sequence[str] | None = None,
    any_role: bool | None = None,
) -> TrustRoot:
    """Change the threshold / required keyids / timestamp rule / required roles (globally, or
    for one predicate type) or hybrid.

    `required_keyids=()` clears the requirement; None leaves it as it is. A new per-type entry
    needs a threshold. The hybrid mode is global. `require_timestamp` True makes every counted
    signature (of `for_type`, or of every type) need a verified RFC 3161 timestamp; False drops
    that rule (a global True still holds for every type); None leaves it. `required_roles`
    names roles that must be met, all of them, or any one with `any_role=True` (`any_role`
    None leaves the mode as it is); `()` clears them (for a type: it then inherits the global
    ones). Every role requirement is applied together with the threshold and required keys.
    """
    if (
        threshold is None
        and required_keyids is None
        and hybrid is None
        and require_timestamp is None
        and required_roles is None
        and any_role is None
    ):
        raise ConfigError("set_policy: nothing to change")
    if require_timestamp is not None and type(require_timestamp) is not bool:
        raise ConfigError("require_timestamp must be True, False or None")
    if any_role is not None and type(any_role) is not bool:
        raise ConfigError("any_role must be True, False or None")
    if isinstance(required_keyids, str):
        raise ConfigError("required_keyids must be a sequence of keyids, not one string")
    if isinstance(required_roles, str):
        raise ConfigError("required_roles must be a sequence of role names, not one string")
    required = None if required_keyids is None else tuple(required_keyids)
    roles = None if required_roles is None else tuple(required_roles)
    for name in roles or ():
        if root.role(name) is None:
            raise TrustRootError(
                f"trust root has no role named {_clip(repr(name), 80)} "
                "(dssesign trust-root add-role)",
                "$.roles",
            )
    policy = root.policy
    if for_type is None:
        policy = dataclasses.replace(
            policy,
            threshold=policy.threshold if threshold is None else threshold,
            required_keyids=policy.required_keyids if required is None else required,
            hybrid=policy.hybrid if hybrid is None else hybrid,
            require_timestamp=(
                policy.require_timestamp if require_timestamp is None else require_timestamp
            ),
            **_role_change(policy.required_roles, policy.any_role, roles, any_role),
        )
    else:
        if hybrid is not None:
            raise ConfigError("the hybrid mode applies to the whole trust root, not one type")
        current = policy.per_type.get(for_type)
        if current is None:
            if threshold is None:
                raise ConfigError(
                    f"a new policy for {for_type} needs a threshold (--threshold N); it then "
                    "replaces the global threshold and required keyids for that type"
                )
            current = TypePolicy(threshold=threshold)
        updated = TypePolicy(
            threshold=current.threshold if threshold is None else threshold,
            required_keyids=current.required_keyids if required is None else required,
            require_timestamp=(
                current.require_timestamp if require_timestamp is None else require_timestamp
            ),
            **_role_change(current.required_roles, current.any_role, roles, any_role),
        )
        policy = dataclasses.replace(policy, per_type={**policy.per_type, for_type: updated})
    return _bump(root, policy=policy)


def _role_change(
    current: tuple[str, ...],
    current_any: bool,
    roles: tuple[str, ...] | None,
    any_role: bool | None,
) -> dict[str, Any]:
    """The required roles and their mode after `set_policy`: no roles, no mode."""
    wanted = current if roles is None else roles
    if any_role and not wanted:
        raise ConfigError("any_role needs required roles (--require-role NAME)")
    mode = current_any if any_role is None else any_role
    return {"required_roles": wanted, "any_role": bool(wanted) and mode}


def add_role(
    root: TrustRoot,
    name: str,
    *,
    threshold: int,
    keyids: Sequence[str] = (),
    identities: Sequence[str] = (),
) -> TrustRoot:
    """Add a role: a named group of keys (by keyid) and keyless identities (by name) of which
    `threshold` distinct members must count when a policy requires it.

    Names are unique; every keyid must be a key of the trust root and every identity name a
    named identity rule; the threshold is 1 to the number of members.
    """
    if isinstance(keyids, str) or isinstance(identities, str):
        raise ConfigError("keyids and identities must be sequences, not one string")
    for index, listed in enumerate(root.roles):
        if listed.name == name:
            raise _fail(
                f"$.roles[{index}].name",
                f"a role named {_clip(repr(name), 80)} is already listed (names are unique)",
            )
    role = Role(name=name, threshold=threshold, keyids=tuple(keyids), identities=tuple(identities))
    if not role.size:
        raise ConfigError(f"role {_clip(repr(name), 80)}: give at least one keyid or identity")
    return _bump(root, roles=(*root.roles, role))


def unset_type_policy(root: TrustRoot, predicate_type: str) -> TrustRoot:
    """Drop the per-type policy for `predicate_type`; the global policy applies to it again."""
    if predicate_type not in root.policy.per_type:
        raise TrustRootError(f"no per-type policy for {predicate_type}", "$.policy.perType")
    per_type = {k: v for k, v in root.policy.per_type.items() if k != predicate_type}
    return _bump(root, policy=dataclasses.replace(root.policy, per_type=per_type))


def set_root_keys(
    root: TrustRoot, public_keys: Sequence[PublicKey], *, threshold: int
) -> TrustRoot:
    """Replace the keys allowed to sign the trust root itself (k of n of them must)."""
    keys = tuple(public_keys)
    if not keys:
        raise ConfigError("set_root_keys: give at least one root key")
    return _bump(root, root=RootKeys(keys=keys, threshold=threshold))


def set_sigstore_root(root: TrustRoot, trusted_root: Mapping[str, Any]) -> TrustRoot:
    """Embed (or replace) the Sigstore trusted_root.json; identity rules are kept.

    Beyond the outline the schema checks, the document is parsed with sigstore-python when the
    `sigstore` extra is installed (the parser verification will use), so a trusted root that
    could never verify anything is refused here rather than at verification time.
    """
    if not isinstance(trusted_root, Mapping):
        raise ConfigError("trusted_root must be a JSON object (a parsed trusted_root.json)")
    document = json.loads(json.dumps(trusted_root))  # a private, plain-JSON copy
    identities = list(root.keyless.identities) if root.keyless is not None else []
    section = {"trustedRoot": document, "identities": [r.to_json() for r in identities]}
    _parse_sigstore(section)  # the outline first, for a clear message
    from .sigstore_root import check_trusted_root  # noqa: PLC0415 - imports sigstore lazily

    try:
        check_trusted_root(document)
    except VerificationError as exc:
        raise _fail("$.sigstore.trustedRoot", str(exc)) from None
    return _bump(root, sigstore=section)


def add_identity(
    root: TrustRoot,
    *,
    issuer: str,
    subject: str | None = None,
    subject_regexp: str | None = None,
    extensions: Mapping[str, str] | None = None,
    predicate_types: Sequence[str] = (),
    label: str | None = None,
    name: str | None = None,
) -> TrustRoot:
    """Trust keyless signatures by one identity (OIDC issuer + SAN, exact or regexp).

    `name`, unique among the identities, is how roles refer to it (`add_role(identities=...)`).
    """
    if root.keyless is None:
        raise TrustRootError(
            "the trust root has no Sigstore trusted root yet; set it first "
            "(dssesign trust-root set-sigstore-root FILE --trusted-root trusted_root.json)",
            "$.sigstore",
        )
    if isinstance(predicate_types, str):
        raise ConfigError("predicate_types must be a sequence of URIs, not one string")
    rule = IdentityRule(
        issuer=issuer,
        subject=subject,
        subject_regexp=subject_regexp,
        extensions=dict(extensions or {}),
        predicate_types=tuple(predicate_types),
        label=label,
        name=name,
    )
    entries = [r.to_json() for r in root.keyless.identities] + [rule.to_json()]
    section = {"trustedRoot": root.keyless.trusted_root, "identities": entries}
    return _bump(root, sigstore=section)


# --- RFC 3161 timestamp authorities ----------------------------------------------------------


def _authority_index(root: TrustRoot, name: str) -> int:
    for index, authority in enumerate(root.timestamp_authorities):
        if authority.name == name:
            return index
    raise TrustRootError(
        f"trust root has no timestamp authority named {_clip(repr(name), 80)}",
        "$.timestampAuthorities",
    )


def add_timestamp_authority(root: TrustRoot, authority: TimestampAuthority) -> TrustRoot:
    """Trust one more RFC 3161 TSA. A name already listed, or the same TSA certificate under
    another name, is refused (TrustRootError naming the path)."""
    # Imported only here: a trust root without TSAs never loads X.509 parsing.
    from ..timestamp.authority import TimestampAuthority  # noqa: PLC0415 - lazy, see above

    if not isinstance(authority, TimestampAuthority):
        raise ConfigError("authority must be a dssesign.timestamp.TimestampAuthority")
    for index, listed in enumerate(root.timestamp_authorities):
        if listed.name == authority.name:
            raise _fail(
                f"$.timestampAuthorities[{index}].name",
                f"a timestamp authority named {_clip(repr(authority.name), 80)} is already "
                "listed (names are unique)",
            )
        if listed.chain_der[0] == authority.chain_der[0]:
            # Under two names, revoking one of them would leave the TSA trusted.
            raise _fail(
                f"$.timestampAuthorities[{index}].certificateChain[0]",
                f"the TSA certificate of {_clip(repr(authority.name), 80)} is already listed "
                f"as {_clip(repr(listed.name), 80)}",
            )
    return _bump(root, timestamp_authorities=(*root.timestamp_authorities, authority))


def revoke_timestamp_authority(root: TrustRoot, name: str, at: datetime | None = None) -> TrustRoot:
    """Revoke the TSA `name` from `at` (default now, rounded down to whole seconds) on: its
    tokens dated at or after `at` are refused, earlier ones still count."""
    index = _authority_index(root, name)
    authority = root.timestamp_authorities[index]
    if authority.revoked_at is not None:
        raise _fail(
            f"$.timestampAuthorities[{index}].revokedAt",
            f"timestamp authority {_clip(repr(name), 80)} is already revoked "
            f"(since {format_time(authority.revoked_at)})",
        )
    revoked = dataclasses.replace(authority, revoked_at=_now(at))
    authorities = root.timestamp_authorities
    return _bump(
        root, timestamp_authorities=(*authorities[:index], revoked, *authorities[index + 1 :])
    )
