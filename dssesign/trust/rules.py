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
    MAX_KEYS,
    MAX_ROOT_KEYS,
    MAX_ROTATIONS,
    MAX_THRESHOLD,
    MAX_TIMESTAMP_AUTHORITIES,
    _check_text,
    _check_time,
    _check_type_uri,
    _check_type_uris,
    _clip,
    _fail,
    format_time,
)
from .model import RootKeys, RotationEvent, TrustedKey, TrustRoot, TypePolicy


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
    if complete:
        _validate_reachable(root)


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
    rules = root.keyless.identities if root.keyless is not None else ()
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
