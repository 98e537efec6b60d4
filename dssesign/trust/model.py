"""The trust-root model: frozen dataclasses, keyids always recomputed from key material."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING

from ..core.keys import PublicKey

if TYPE_CHECKING:  # the verifier loads trust roots and nothing of the signing stack
    from ..timestamp.authority import TimestampAuthority
    from .pki import CertificateIdentity, OrganisationPKI

from ._common import MEDIA_TYPE, MEDIA_TYPE_V2, HybridMode
from .identity import IdentityRule, SigstoreTrust, _parse_sigstore

# --- model -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Revocation:
    """The key stops counting from `time` on (inclusive); `reason` is shown when it is refused."""

    time: datetime
    reason: str = ""


@dataclass(frozen=True)
class TrustedKey:
    """One signing key; `keyid` is always recomputed from `public_key` on load."""

    public_key: PublicKey
    label: str | None = None
    #: Validity window, both ends inclusive; None leaves that side open.
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    #: Predicate type URIs this key may attest to; empty means any.
    predicate_types: tuple[str, ...] = ()
    revocation: Revocation | None = None

    @property
    def keyid(self) -> str:
        """keyid of `public_key`, recomputed: a keyid written in the document is never trusted."""
        return self.public_key.keyid

    def valid_at(self, moment: datetime) -> bool:
        """Inside [validFrom, validUntil] (inclusive, like sigstore's `validFor`)."""
        return (self.valid_from is None or self.valid_from <= moment) and (
            self.valid_until is None or moment <= self.valid_until
        )

    def revoked_at(self, moment: datetime) -> bool:
        """Revoked from the revocation time on (inclusive)."""
        return self.revocation is not None and self.revocation.time <= moment

    def usable_at(self, moment: datetime) -> bool:
        """Valid and not revoked at `moment`, as a rotation's old key must be."""
        return self.valid_at(moment) and not self.revoked_at(moment)

    def allows(self, predicate_type: str) -> bool:
        """May this key attest to `predicate_type`? (exact string match; empty list: any)."""
        return not self.predicate_types or predicate_type in self.predicate_types


@dataclass(frozen=True)
class Role:
    """A named group of signing keys (by keyid) and keyless identities (by their unique name),
    with its own threshold: how many distinct members must count for the role to be met.

    A key brought in by rotation belongs to the roles of the key it replaced (and of that
    key's predecessors); a key and the keys rotated from it are one member of a role.
    """

    name: str
    threshold: int
    keyids: tuple[str, ...] = ()
    #: Names of `sigstore.identities` rules (`IdentityRule.name`).
    identities: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        """How many members the role lists (keys and identities)."""
        return len(self.keyids) + len(self.identities)


@dataclass(frozen=True)
class TypePolicy:
    """Threshold and required keyids for one predicate type, overriding `Policy`'s for it."""

    threshold: int
    required_keyids: tuple[str, ...] = ()
    #: Every counted signature of this type needs a verified RFC 3161 timestamp.
    require_timestamp: bool = False
    #: Roles that must be met (all of them, or one with `any_role`); empty: the global ones.
    required_roles: tuple[str, ...] = ()
    any_role: bool = False


@dataclass(frozen=True)
class Policy:
    """How many distinct trusted keys must sign, which must, per-type overrides, hybrid mode."""

    #: k: distinct trusted keys whose signatures must verify.
    threshold: int = 1
    required_keyids: tuple[str, ...] = ()
    #: predicate type URI -> policy overriding threshold/required keyids for that type.
    per_type: Mapping[str, TypePolicy] = field(default_factory=dict)
    hybrid: HybridMode = "off"
    #: Every counted signature needs a verified RFC 3161 timestamp (a type may require it too).
    require_timestamp: bool = False
    #: Roles that must be met: all of them, or any one with `any_role`.
    required_roles: tuple[str, ...] = ()
    any_role: bool = False

    def for_type(self, predicate_type: str) -> TypePolicy:
        """The threshold, required keyids, timestamp rule and required roles that apply to
        `predicate_type`.

        A per-type entry replaces the threshold and required keyids; its `required_roles`
        (with its `any_role`) replace the global ones, and without any it keeps the global
        ones; a global timestamp requirement holds for every type.
        """
        found = self.per_type.get(predicate_type)
        if found is None:
            return TypePolicy(
                self.threshold,
                self.required_keyids,
                self.require_timestamp,
                self.required_roles,
                self.any_role,
            )
        # A global timestamp requirement holds for every type: a per-type entry only adds to it.
        stamped = found.require_timestamp or self.require_timestamp
        inherit_roles = bool(self.required_roles) and not found.required_roles
        if stamped == found.require_timestamp and not inherit_roles:
            return found
        return dataclasses.replace(
            found,
            require_timestamp=stamped,
            required_roles=self.required_roles if inherit_roles else found.required_roles,
            any_role=self.any_role if inherit_roles else found.any_role,
        )


@dataclass(frozen=True)
class RotationEvent:
    """The old key's signature over the handover to the new key; both count until the deadline."""

    from_keyid: str
    to_keyid: str
    time: datetime
    transition_deadline: datetime
    #: Signature by the old key over PAE(HANDOVER_PAYLOAD_TYPE, handover_payload(...)).
    handover_signature: bytes


@dataclass(frozen=True)
class RootKeys:
    """Keys allowed to sign the trust root itself, and how many must."""

    keys: tuple[PublicKey, ...] = ()
    threshold: int = 1


@dataclass(frozen=True)
class TrustRoot:
    """A trust root: trusted keys, policy, rotations, root keys, keyless trust and timestamp
    authorities; verification refuses it after `expires`."""

    version: int
    expires: datetime
    keys: tuple[TrustedKey, ...]
    policy: Policy
    rotations: tuple[RotationEvent, ...] = ()
    root: RootKeys = field(default_factory=RootKeys)
    #: Sigstore keyless trust (trusted root + identity rules) as JSON values, read-only; the
    #: checked model of it is `keyless`.
    sigstore: Mapping[str, object] | None = None
    #: RFC 3161 timestamp authorities whose tokens date signatures (names unique).
    timestamp_authorities: tuple[TimestampAuthority, ...] = ()
    #: Named groups of keys and identities with their own thresholds (names unique).
    roles: tuple[Role, ...] = ()
    #: Organisation CAs, certificate identities and CRLs (the `pki` section), if any.
    pki: OrganisationPKI | None = None

    @cached_property
    def keyless(self) -> SigstoreTrust | None:
        """The `sigstore` section parsed (None without one); TrustRootError if it is invalid."""
        return None if self.sigstore is None else _parse_sigstore(self.sigstore)

    @cached_property
    def _by_keyid(self) -> dict[str, TrustedKey]:
        return {k.keyid: k for k in self.keys}

    def key(self, keyid: str) -> TrustedKey | None:
        """The trusted signing key with this keyid, if any."""
        return self._by_keyid.get(keyid)

    @cached_property
    def _rotations_by_target(self) -> dict[str, RotationEvent]:
        found: dict[str, RotationEvent] = {}
        for event in self.rotations:
            found.setdefault(event.to_keyid, event)
        return found

    @cached_property
    def _rotations_by_source(self) -> dict[str, RotationEvent]:
        found: dict[str, RotationEvent] = {}
        for event in self.rotations:
            found.setdefault(event.from_keyid, event)
        return found

    def rotation_to(self, keyid: str) -> RotationEvent | None:
        """The rotation that introduced `keyid` (its handover must verify for it to count)."""
        return self._rotations_by_target.get(keyid)

    def rotation_from(self, keyid: str) -> RotationEvent | None:
        """The rotation that retires `keyid` (it counts until that event's deadline)."""
        return self._rotations_by_source.get(keyid)

    def successors(self, keyid: str) -> tuple[str, ...]:
        """Keys `keyid` was rotated to, in order (A→B→C gives (B, C)); the chain is acyclic."""
        chain: list[str] = []
        event = self.rotation_from(keyid)
        while event is not None and len(chain) < len(self.rotations):
            chain.append(event.to_keyid)
            event = self.rotation_from(event.to_keyid)
        return tuple(chain)

    def predecessors(self, keyid: str) -> tuple[str, ...]:
        """Keys `keyid` was rotated from, nearest first (A→B→C gives (B, A) for C), following
        `rotation_to`; bounded by the number of rotations, so a cycle cannot loop."""
        chain: list[str] = []
        event = self.rotation_to(keyid)
        while event is not None and len(chain) < len(self.rotations):
            if event.from_keyid == keyid or event.from_keyid in chain:
                break  # a cycle (the loader refuses one): stop
            chain.append(event.from_keyid)
            event = self.rotation_to(event.from_keyid)
        return tuple(chain)

    def certificate_identities(self) -> tuple[CertificateIdentity, ...]:
        """The `pki` section's identity rules (none without one)."""
        return self.pki.identities if self.pki is not None else ()

    def all_identities(self) -> tuple[IdentityRule | CertificateIdentity, ...]:
        """Every identity rule a role may list: keyless ones, then certificate ones."""
        keyless = self.keyless.identities if self.keyless is not None else ()
        return (*keyless, *self.certificate_identities())

    def role(self, name: str) -> Role | None:
        """The role with this name, if any."""
        return next((r for r in self.roles if r.name == name), None)

    def roles_of_key(self, keyid: str) -> tuple[str, ...]:
        """Names of the roles `keyid` belongs to: those listing it, or a key it was rotated
        from (a rotated-in key inherits its predecessors' roles), in the trust root's order."""
        lineage = {keyid, *self.predecessors(keyid)}
        return tuple(r.name for r in self.roles if lineage.intersection(r.keyids))

    @property
    def media_type(self) -> str:
        """The format this trust root is written in: v2 when it uses v2 sections, else v1."""
        uses_v2 = bool(
            self.timestamp_authorities
            or self.pki is not None
            or self.roles
            or self.policy.require_timestamp
            or self.policy.required_roles
            or any(p.require_timestamp or p.required_roles for p in self.policy.per_type.values())
            or (self.keyless is not None and any(r.name for r in self.keyless.identities))
        )
        return MEDIA_TYPE_V2 if uses_v2 else MEDIA_TYPE
