"""Key-rotation handovers: the old key signs the new one; a chain counts if every link holds."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ..core.canonical import canonicalize
from ..core.dsse import pae
from ..core.keys import PublicKey
from ..errors import (
    CanonicalizationError,
    ConfigError,
    SigningError,
    TrustRootError,
)

if TYPE_CHECKING:  # the verifier loads trust roots and nothing of the signing stack
    from ..sign.signer import Signer

from ._common import HANDOVER_PAYLOAD_TYPE, _now, format_time
from .edit import _bump, _key_index
from .model import RotationEvent, TrustedKey, TrustRoot


def handover_payload(
    from_keyid: str, to_public_key: PublicKey, *, time: datetime, transition_deadline: datetime
) -> bytes:
    """Canonical JSON the old key signs: who hands over to which key material, when, until when."""
    return canonicalize(
        {
            "fromKeyid": from_keyid,
            "toKeyid": to_public_key.keyid,
            "toPublicKey": to_public_key.pem,
            "time": format_time(time),
            "transitionDeadline": format_time(transition_deadline),
        }
    )


def rotate_key(
    root: TrustRoot,
    from_signer: Signer,
    to_public_key: PublicKey,
    *,
    transition_days: int = 30,
    now: datetime | None = None,
    label: str | None = None,
) -> TrustRoot:
    """Hand one key's role over to a new key, signed by the old key (which may live in a KMS).

    The new key is appended with validFrom = now, the old key's label (unless `label` is given)
    and predicate types; the old key's validUntil becomes the transition deadline (or stays, if
    already earlier), so both count until then. The RotationEvent records the handover.
    """
    moment = _now(now)
    if type(transition_days) is not int or transition_days < 0:
        raise ConfigError("transition_days must be a whole number of days, 0 or more")
    old_public = from_signer.public_key
    index = _key_index(root, old_public.keyid)
    old = root.keys[index]
    if not old.usable_at(moment):
        raise TrustRootError(
            f"key {old.keyid} is revoked or outside its validity at {format_time(moment)}; "
            "it cannot hand over",
            f"$.keys[{index}]",
        )
    if root.rotation_from(old.keyid) is not None:
        raise TrustRootError(f"key {old.keyid} was already rotated", "$.rotations")
    if not isinstance(to_public_key, PublicKey):
        raise ConfigError("to_public_key must be a dssesign.core.keys.PublicKey")
    if root.key(to_public_key.keyid) is not None:
        raise TrustRootError(f"key {to_public_key.keyid} is already in the trust root", "$.keys")
    deadline = moment + timedelta(days=transition_days)
    message = pae(
        HANDOVER_PAYLOAD_TYPE,
        handover_payload(old.keyid, to_public_key, time=moment, transition_deadline=deadline),
    )
    try:
        signature = from_signer.sign(message)
    except Exception as exc:
        raise SigningError(f"signing the key handover failed: {exc}") from exc
    if not isinstance(signature, bytes) or not old.public_key.verify(signature, message):
        raise SigningError("the handover signature does not verify with the old key")
    retired = dataclasses.replace(
        old,
        valid_until=deadline if old.valid_until is None else min(old.valid_until, deadline),
    )
    successor = TrustedKey(
        public_key=to_public_key,
        label=old.label if label is None else label,
        valid_from=moment,
        predicate_types=old.predicate_types,
    )
    event = RotationEvent(
        from_keyid=old.keyid,
        to_keyid=to_public_key.keyid,
        time=moment,
        transition_deadline=deadline,
        handover_signature=signature,
    )
    keys = (*root.keys[:index], retired, *root.keys[index + 1 :], successor)
    return _bump(root, keys=keys, rotations=(*root.rotations, event))


def verify_handover(root: TrustRoot, event: RotationEvent) -> bool:
    """True only if the old key, usable at the rotation time, signed this exact handover.

    The payload is rebuilt from the trust root (old keyid, the new key's SPKI, both times), so
    changing any of them, or the key material under the new keyid, breaks the signature.
    """
    old = root.key(event.from_keyid)
    new = root.key(event.to_keyid)
    if old is None or new is None or old is new:
        return False
    if not old.usable_at(event.time):
        return False
    try:
        payload = handover_payload(
            old.keyid,
            new.public_key,
            time=event.time,
            transition_deadline=event.transition_deadline,
        )
    except (CanonicalizationError, ValueError, OverflowError):
        return False
    return old.public_key.verify(event.handover_signature, pae(HANDOVER_PAYLOAD_TYPE, payload))


def rotation_chain_problem(root: TrustRoot, keyid: str) -> str | None:
    """Why `keyid` is not vouched for by its chain of handovers, or None.

    A key brought in by rotation counts only if every handover back to a key the trust root
    trusts directly verifies: in A -> B -> C with a forged A -> B, C is as untrusted as B, even
    though B, as listed, signed the B -> C handover.
    """
    current = keyid
    for _ in range(len(root.rotations) + 1):
        event = root.rotation_to(current)
        if event is None:
            return None
        if not verify_handover(root, event):
            link = f"{event.from_keyid[:16]} -> {event.to_keyid[:16]}"
            if current == keyid:
                return f"its handover {link} does not verify"
            return f"the handover {link} earlier in its rotation chain does not verify"
        current = event.from_keyid
    return "its rotation chain does not end at a directly trusted key"


def failed_handovers(root: TrustRoot) -> tuple[RotationEvent, ...]:
    """Rotation events whose new key will not count: the handover, or one before it, fails."""
    return tuple(event for event in root.rotations if rotation_chain_problem(root, event.to_keyid))
