"""The trust root as the verifier uses it: distinct keys and rotation links, built once per root.

A `TrustRoot` is frozen, so its index is cached by identity; handover checks are kept in it.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, rsa

from .. import trust as trustroot
from ..codes import Code
from ..core.keys import PublicKey
from ..trust import RotationEvent, TrustedKey, TrustRoot
from ._run import _Stop
from .result import CountedKey

_INDEX_CACHE: dict[int, tuple[weakref.ref[TrustRoot], _Index]] = {}
_INDEX_LOCK = threading.Lock()
_INDEX_CACHE_SIZE: Final = 32


def _signature_lengths(public: PublicKey) -> tuple[int, int]:
    """Byte lengths a valid signature can have: anything else is skipped without crypto."""
    key = public.key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return (64, 64)
    if isinstance(key, mldsa.MLDSA65PublicKey):
        return (3309, 3309)
    if isinstance(key, rsa.RSAPublicKey):
        size = (key.key_size + 7) // 8
        return (size, size)
    if isinstance(key, ec.EllipticCurvePublicKey):
        # DER SEQUENCE of two INTEGERs, each at most one byte longer than the field.
        field_bytes = (key.curve.key_size + 7) // 8
        return (8, 2 + 2 * (2 + field_bytes + 1))
    return (1, 1 << 30)  # pragma: no cover - PublicKey only holds the allow-listed types


@dataclass(frozen=True, eq=False)
class _Candidate:
    """One distinct public key of the trust root, with every entry that lists it."""

    public: PublicKey
    entries: tuple[TrustedKey, ...]
    keyid: str
    algorithm: str
    post_quantum: bool
    label: str | None
    check: Callable[[bytes, bytes], bool]
    min_sig: int
    max_sig: int
    #: What the result reports when this key counts (built once per trust root).
    counted: CountedKey


@dataclass(frozen=True, eq=False)
class _Index:
    candidates: tuple[_Candidate, ...]
    by_keyid: Mapping[str, _Candidate]
    #: keyids listed by more than one trust-root entry (loading refuses that; we count once).
    listed_twice: tuple[str, ...]
    rotations_to: Mapping[str, tuple[RotationEvent, ...]]
    rotations_from: Mapping[str, tuple[RotationEvent, ...]]
    #: Handover results, filled lazily; an event is checked once per trust root.
    handovers: dict[int, bool] = field(default_factory=dict)


def _index_for(root: TrustRoot) -> _Index:
    """Per-root key index, cached by identity: TrustRoot and its keys are frozen."""
    key = id(root)
    cached = _INDEX_CACHE.get(key)
    if cached is not None and cached[0]() is root:
        return cached[1]
    index = _build_index(root)
    if not isinstance(root.keys, tuple) or not isinstance(root.rotations, tuple):
        return index  # a mutable sequence could change under a cached index
    with _INDEX_LOCK:
        if len(_INDEX_CACHE) >= _INDEX_CACHE_SIZE:
            _INDEX_CACHE.clear()
        _INDEX_CACHE[key] = (weakref.ref(root), index)
    return index


def _require_aware(times: Sequence[datetime | None], where: str) -> None:
    # A naive time cannot be compared with the verification time: refuse it, do not guess.
    for moment in times:
        if moment is not None and (not isinstance(moment, datetime) or moment.utcoffset() is None):
            raise _Stop(Code.TRUST_ROOT_INVALID, f"trust root: {where} has a time without a zone")


def _build_index(root: TrustRoot) -> _Index:
    _require_aware([root.expires], "expires")
    if not isinstance(root.keys, tuple | list) or not isinstance(root.rotations, tuple | list):
        raise _Stop(Code.TRUST_ROOT_INVALID, "trust root: keys and rotations must be sequences")
    grouped: dict[bytes, list[TrustedKey]] = {}
    for position, entry in enumerate(root.keys):
        if not isinstance(entry, TrustedKey) or not isinstance(entry.public_key, PublicKey):
            raise _Stop(
                Code.TRUST_ROOT_INVALID, f"trust root: keys[{position}] is not a TrustedKey"
            )
        times = [entry.valid_from, entry.valid_until]
        if entry.revocation is not None:
            times.append(entry.revocation.time)
        _require_aware(times, f"keys[{position}]")
        grouped.setdefault(entry.public_key.spki_der, []).append(entry)
    candidates: list[_Candidate] = []
    listed_twice: list[str] = []
    for entries in grouped.values():
        public = entries[0].public_key
        if len(entries) > 1:
            listed_twice.append(public.keyid)
        labels = [e.label for e in entries if e.label]
        label = labels[0] if labels else None
        low, high = _signature_lengths(public)
        candidates.append(
            _Candidate(
                public=public,
                entries=tuple(entries),
                keyid=public.keyid,
                algorithm=public.algorithm.name,
                post_quantum=public.algorithm.post_quantum,
                label=label,
                check=public.verify,
                min_sig=low,
                max_sig=high,
                counted=CountedKey(public.keyid, public.algorithm.name, label),
            )
        )
    rotations_to: dict[str, list[RotationEvent]] = {}
    rotations_from: dict[str, list[RotationEvent]] = {}
    for position, event in enumerate(root.rotations):
        if not isinstance(event, RotationEvent):
            raise _Stop(
                Code.TRUST_ROOT_INVALID, f"trust root: rotations[{position}] is not a RotationEvent"
            )
        _require_aware([event.time, event.transition_deadline], f"rotations[{position}]")
        rotations_to.setdefault(event.to_keyid, []).append(event)
        rotations_from.setdefault(event.from_keyid, []).append(event)
    return _Index(
        candidates=tuple(candidates),
        by_keyid={c.keyid: c for c in candidates},
        listed_twice=tuple(listed_twice),
        rotations_to={k: tuple(v) for k, v in rotations_to.items()},
        rotations_from={k: tuple(v) for k, v in rotations_from.items()},
    )


def _broken_link(root: TrustRoot, index: _Index, keyid: str) -> RotationEvent | None:
    """The first handover that fails on the way from `keyid` back to directly trusted keys.

    A rotated-in key is only as trusted as its whole chain (A -> B -> C: a forged A -> B
    leaves C untrusted too). Every event into a key is followed, so an in-memory trust root
    listing two introductions of one key needs both to hold; the walk is bounded and
    fail-closed on a cycle.
    """
    pending = [keyid]
    seen: set[str] = set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        for event in index.rotations_to.get(current, ()):
            if not _handover_verifies(root, index, event):
                return event
            if event.from_keyid in seen:  # a cycle vouches for nothing
                return event
            pending.append(event.from_keyid)
    return None


def _handover_verifies(root: TrustRoot, index: _Index, event: RotationEvent) -> bool:
    """`trustroot.verify_handover`, fail-closed: raising or anything but True means no."""
    known = index.handovers.get(id(event))
    if known is not None:
        return known
    try:
        verdict = trustroot.verify_handover(root, event) is True
    except Exception:
        verdict = False
    index.handovers[id(event)] = verdict
    return verdict
