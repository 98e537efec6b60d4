"""The trust-root model: frozen dataclasses, keyids always recomputed from key material."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING

from ..core.keys import PublicKey

if TYPE_CHECKING:  # the verifier loads trust roots and nothing of the signing stack
    from ..timestamp.authority import TimestampAuthority

from ._common import MEDIA_TYPE, HybridMode
from .identity import SigstoreTrust, _parse_sigstore

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
class TypePolicy:
    """Threshold and required keyids for one predicate type, overriding `Policy`'s for it."""

    threshold: int
    required_keyids: tuple[str, ...] = ()
    #: Every counted signature of this type needs a verified RFC 3161 timestamp.
    require_timestamp: bool = False


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

    def for_type(self, predicate_type: str) -> TypePolicy:
        """The threshold, required keyids and timestamp rule that apply to `predicate_type`."""
        found = self.per_type.get(predicate_type)
        if found is None:
            return TypePolicy(self.threshold, self.required_keyids, self.require_timestamp)
        if self.require_timestamp and not found.require_timestamp:
            # A global requirement holds for every type: a per-type entry only adds to it.
            return TypePolicy(found.threshold, found.required_keyids, require_timestamp=True)
        return found


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

    @property
    def media_type(self) -> str:
        """The trust-root format this model represents: always `MEDIA_TYPE`."""
        return MEDIA_TYPE
