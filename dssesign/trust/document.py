"""JSON <-> model: the strict loader and the canonical (RFC 8785) writer."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import os
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .._internal.fileio import atomic_write, read_bounded
from .._internal.strict_json import loads_strict
from ..core.canonical import canonicalize
from ..core.keys import PublicKey
from ..errors import (
    KeyFormatError,
    TrustRootError,
)
from ..limits import DEFAULT_LIMITS, Limits

if TYPE_CHECKING:  # the verifier loads trust roots and nothing of the signing stack
    from ..timestamp.authority import TimestampAuthority
    from .pki import OrganisationPKI

from ._common import (
    MAX_TRUST_ROOT_BYTES,
    MEDIA_TYPE,
    MEDIA_TYPE_V2,
    _fail,
    format_time,
    parse_time,
)
from .model import (
    Policy,
    Revocation,
    Role,
    RootKeys,
    RotationEvent,
    TrustedKey,
    TrustRoot,
    TypePolicy,
)
from .rules import _validate
from .schema import _check_array_sizes, _schema_check

# --- JSON -> model ---------------------------------------------------------------------------


def load_trust_root(
    data: bytes | str, *, allow_incomplete: bool = False, limits: Limits = DEFAULT_LIMITS
) -> TrustRoot:
    """Parse and check a trust-root document; raise TrustRootError naming the JSON path.

    Strict JSON (duplicate members refused), then the schema (unknown fields refused), then the
    semantic rules: keyids recomputed from the keys, no key twice, algorithms matching keys,
    keyid references resolving, time order, thresholds reachable. `allow_incomplete` accepts
    a trust root still being assembled (a threshold higher than the keys that could meet it),
    for the management commands; verifiers never set it.
    """
    bounded = dataclasses.replace(
        limits, max_json_bytes=min(limits.max_json_bytes, MAX_TRUST_ROOT_BYTES)
    )
    document = loads_strict(data, what="trust root", limits=bounded, error=TrustRootError)
    return _load_document(document, allow_incomplete=allow_incomplete)


def _load_document(document: object, *, allow_incomplete: bool) -> TrustRoot:
    _check_array_sizes(document)
    _schema_check(document)
    assert isinstance(document, dict)  # the schema's "type": "object"
    if document["mediaType"] == MEDIA_TYPE and _uses_v2(document):
        raise _fail(
            "$.mediaType",
            f"this trust root uses sections that are new in v2 ({', '.join(_uses_v2(document))}): "
            f"its mediaType must be {MEDIA_TYPE_V2}",
        )
    root = _from_json(document)
    _validate(root, complete=not allow_incomplete)
    return root


def read_trust_root(path: str | os.PathLike[str], *, allow_incomplete: bool = False) -> TrustRoot:
    """`load_trust_root` on a file, read with a size bound."""
    data = read_bounded(path, limit=MAX_TRUST_ROOT_BYTES, what="trust root")
    return load_trust_root(data, allow_incomplete=allow_incomplete)


def _public_key(entry: Mapping[str, Any], path: str, seen: dict[bytes, str]) -> PublicKey:
    """Load one key entry: canonical PEM, allow-listed algorithm, no duplicate, keyid matches."""
    pem: str = entry["publicKey"]
    try:
        key = PublicKey.from_pem(pem.encode("ascii"), source=f"{path}.publicKey")
    except KeyFormatError as exc:
        raise _fail(f"{path}.publicKey", str(exc).removeprefix(f"{path}.publicKey: ")) from None
    if key.pem != pem:
        raise _fail(
            f"{path}.publicKey",
            "not in canonical PEM form (one SubjectPublicKeyInfo block, 64-character lines, "
            "LF line ends, final newline); re-export the key with dssesign",
        )
    if key.spki_der in seen:
        raise _fail(f"{path}.publicKey", f"the same key is already listed at {seen[key.spki_der]}")
    seen[key.spki_der] = path
    if entry["algorithm"] != key.algorithm.name:
        raise _fail(
            f"{path}.algorithm",
            f"{json.dumps(entry['algorithm'])} does not match the key, which is "
            f"{key.algorithm.name}",
        )
    if entry["keyid"] != key.keyid:
        raise _fail(
            f"{path}.keyid",
            f"{entry['keyid']} does not match the key (SHA-256 of its SPKI is {key.keyid})",
        )
    return key


def _from_json(document: Mapping[str, Any]) -> TrustRoot:
    seen: dict[bytes, str] = {}
    keys = []
    for index, entry in enumerate(document["keys"]):
        path = f"$.keys[{index}]"
        public_key = _public_key(entry, path, seen)
        revocation = None
        if "revoked" in entry:
            revocation = Revocation(
                time=parse_time(entry["revoked"]["time"], what=f"{path}.revoked.time"),
                reason=entry["revoked"]["reason"],
            )
        keys.append(
            TrustedKey(
                public_key=public_key,
                label=entry.get("label"),
                valid_from=_optional_time(entry, "validFrom", path),
                valid_until=_optional_time(entry, "validUntil", path),
                predicate_types=tuple(entry.get("predicateTypes", ())),
                revocation=revocation,
            )
        )
    policy_doc = document["policy"]
    policy = Policy(
        threshold=policy_doc["threshold"],
        required_keyids=tuple(policy_doc.get("requiredKeyids", ())),
        per_type={
            uri: TypePolicy(
                threshold=entry["threshold"],
                required_keyids=tuple(entry.get("requiredKeyids", ())),
                require_timestamp=entry.get("requireTimestamp", False),
                required_roles=tuple(entry.get("requiredRoles", ())),
                any_role=entry.get("anyRole", False),
            )
            for uri, entry in policy_doc.get("perType", {}).items()
        },
        hybrid=policy_doc["hybrid"],
        require_timestamp=policy_doc.get("requireTimestamp", False),
        required_roles=tuple(policy_doc.get("requiredRoles", ())),
        any_role=policy_doc.get("anyRole", False),
    )
    rotations = []
    for index, entry in enumerate(document["rotations"]):
        path = f"$.rotations[{index}]"
        rotations.append(
            RotationEvent(
                from_keyid=entry["fromKeyid"],
                to_keyid=entry["toKeyid"],
                time=parse_time(entry["time"], what=f"{path}.time"),
                transition_deadline=parse_time(
                    entry["transitionDeadline"], what=f"{path}.transitionDeadline"
                ),
                handover_signature=_b64decode(
                    entry["handoverSignature"], f"{path}.handoverSignature"
                ),
            )
        )
    root_keys = RootKeys()
    if "rootKeys" in document:
        root_seen: dict[bytes, str] = {}
        root_keys = RootKeys(
            keys=tuple(
                _public_key(entry, f"$.rootKeys.keys[{index}]", root_seen)
                for index, entry in enumerate(document["rootKeys"]["keys"])
            ),
            threshold=document["rootKeys"]["threshold"],
        )
    return TrustRoot(
        version=document["version"],
        expires=parse_time(document["expires"], what="$.expires"),
        keys=tuple(keys),
        policy=policy,
        rotations=tuple(rotations),
        root=root_keys,
        sigstore=document.get("sigstore"),
        timestamp_authorities=_timestamp_authorities(document),
        pki=_pki(document),
        roles=tuple(
            Role(
                name=entry["name"],
                threshold=entry["threshold"],
                keyids=tuple(entry.get("keyids", ())),
                identities=tuple(entry.get("identities", ())),
            )
            for entry in document.get("roles", ())
        ),
    )


def _pki(document: Mapping[str, Any]) -> OrganisationPKI | None:
    """The `pki` section; a trust root without one imports nothing for it."""
    section = document.get("pki")
    if section is None:
        return None
    from .pki import parse_pki  # noqa: PLC0415 - X.509 parsing only when the section is there

    return parse_pki(section)


def _timestamp_authorities(document: Mapping[str, Any]) -> tuple[TimestampAuthority, ...]:
    """The `timestampAuthorities` section; a trust root without one imports nothing for it."""
    entries = document.get("timestampAuthorities")
    if entries is None:
        return ()
    # Only a trust root that lists TSAs pays for importing X.509 parsing (verify start-up).
    from ..timestamp.authority import TimestampAuthority  # noqa: PLC0415 - lazy, see above

    authorities = []
    for index, entry in enumerate(entries):
        path = f"$.timestampAuthorities[{index}]"
        authority = TimestampAuthority.from_dict(entry, path)
        written = authority.to_dict()["certificateChain"]
        for position, pem in enumerate(entry["certificateChain"]):
            if pem != written[position]:
                raise _fail(
                    f"{path}.certificateChain[{position}]",
                    "not in canonical PEM form (one CERTIFICATE block, 64-character lines, "
                    "LF line ends, final newline); re-export it, e.g. openssl x509 -outform PEM",
                )
        authorities.append(authority)
    return tuple(authorities)


def _optional_time(entry: Mapping[str, Any], name: str, path: str) -> datetime | None:
    return parse_time(entry[name], what=f"{path}.{name}") if name in entry else None


def _b64decode(text: str, path: str) -> bytes:
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise _fail(path, "not valid base64") from None
    if base64.b64encode(data).decode("ascii") != text:
        raise _fail(path, "non-canonical base64 (use standard, padded base64)")
    return data


# --- model -> JSON ---------------------------------------------------------------------------


def _key_entry(key: PublicKey) -> dict[str, Any]:
    return {"keyid": key.keyid, "algorithm": key.algorithm.name, "publicKey": key.pem}


def to_json(root: TrustRoot) -> dict[str, Any]:
    """The JSON object form of `root` (what `dump_trust_root` canonicalizes)."""
    keys = []
    for key in root.keys:
        entry = _key_entry(key.public_key)
        if key.label is not None:
            entry["label"] = key.label
        if key.valid_from is not None:
            entry["validFrom"] = format_time(key.valid_from)
        if key.valid_until is not None:
            entry["validUntil"] = format_time(key.valid_until)
        if key.predicate_types:
            entry["predicateTypes"] = list(key.predicate_types)
        if key.revocation is not None:
            entry["revoked"] = {
                "time": format_time(key.revocation.time),
                "reason": key.revocation.reason,
            }
        keys.append(entry)
    policy: dict[str, Any] = {"threshold": root.policy.threshold, "hybrid": root.policy.hybrid}
    if root.policy.required_keyids:
        policy["requiredKeyids"] = list(root.policy.required_keyids)
    if root.policy.per_type:
        per_type: dict[str, Any] = {}
        for uri, type_policy in root.policy.per_type.items():
            per_type[uri] = {"threshold": type_policy.threshold}
            if type_policy.required_keyids:
                per_type[uri]["requiredKeyids"] = list(type_policy.required_keyids)
            if type_policy.require_timestamp:
                per_type[uri]["requireTimestamp"] = True
            _role_requirement(per_type[uri], type_policy.required_roles, type_policy.any_role)
        policy["perType"] = per_type
    if root.policy.require_timestamp:
        policy["requireTimestamp"] = True
    _role_requirement(policy, root.policy.required_roles, root.policy.any_role)
    document: dict[str, Any] = {
        "mediaType": MEDIA_TYPE,
        "version": root.version,
        "expires": format_time(root.expires),
        "keys": keys,
        "policy": policy,
        "rotations": [
            {
                "fromKeyid": event.from_keyid,
                "toKeyid": event.to_keyid,
                "time": format_time(event.time),
                "transitionDeadline": format_time(event.transition_deadline),
                "handoverSignature": base64.b64encode(event.handover_signature).decode("ascii"),
            }
            for event in root.rotations
        ],
    }
    if root.root.keys:
        document["rootKeys"] = {
            "threshold": root.root.threshold,
            "keys": [_key_entry(key) for key in root.root.keys],
        }
    if root.sigstore is not None:
        document["sigstore"] = root.sigstore
    if root.timestamp_authorities:
        document["timestampAuthorities"] = [a.to_dict() for a in root.timestamp_authorities]
    if root.roles:
        document["roles"] = [_role_entry(role) for role in root.roles]
    if root.pki is not None:
        document["pki"] = root.pki.to_dict()
    if _uses_v2(document):
        document["mediaType"] = MEDIA_TYPE_V2
    return document


def _uses_v2(document: Mapping[str, Any]) -> list[str]:
    """The v2 sections and fields a trust-root document uses (none: it is a v1 document)."""
    found = [name for name in ("timestampAuthorities", "roles", "pki") if name in document]
    policy = document.get("policy")
    entries = [policy] if isinstance(policy, Mapping) else []
    per_type = policy.get("perType") if isinstance(policy, Mapping) else None
    if isinstance(per_type, Mapping):
        entries += [entry for entry in per_type.values() if isinstance(entry, Mapping)]
    for field in ("requireTimestamp", "requiredRoles", "anyRole"):
        if any(field in entry for entry in entries):
            found.append(f"policy {field}")
    sigstore = document.get("sigstore")
    identities = sigstore.get("identities") if isinstance(sigstore, Mapping) else None
    if isinstance(identities, list) and any(
        isinstance(rule, Mapping) and "name" in rule for rule in identities
    ):
        found.append("identity names")
    return found


def _role_requirement(entry: dict[str, Any], roles: tuple[str, ...], any_role: bool) -> None:
    """`requiredRoles` (and `anyRole` when true) into a policy entry; nothing when unset, so a
    trust root without roles is written exactly as before."""
    if roles:
        entry["requiredRoles"] = list(roles)
    if any_role:
        entry["anyRole"] = True


def _role_entry(role: Role) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": role.name, "threshold": role.threshold}
    if role.keyids:
        entry["keyids"] = list(role.keyids)
    if role.identities:
        entry["identities"] = list(role.identities)
    return entry


def dump_trust_root(root: TrustRoot, *, allow_incomplete: bool = True) -> bytes:
    """RFC 8785 canonical JSON; `load_trust_root` of it gives back an equal TrustRoot."""
    _validate(root, complete=not allow_incomplete)
    return canonicalize(to_json(root))


def save_trust_root(path: str | os.PathLike[str], root: TrustRoot) -> None:
    """Write `root` atomically (temp file, fsync, rename): a failure leaves the old file."""
    atomic_write(path, dump_trust_root(root))
