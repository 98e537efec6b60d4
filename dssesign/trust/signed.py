"""DSSE-signed trust roots: root-key thresholds, pins, chained updates, rollback protection."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from .._internal.strict_json import loads_strict
from ..core.dsse import Envelope, Signature, pae
from ..core.keys import PublicKey
from ..errors import (
    ConfigError,
    InputError,
    KeyFormatError,
    SigningError,
    TrustRootError,
    VerificationError,
)
from ..limits import DEFAULT_LIMITS, Limits

if TYPE_CHECKING:  # the verifier loads trust roots and nothing of the signing stack
    from ..sign.signer import Signer

from ._common import (
    _KEYID,
    MAX_ROOT_KEYS,
    MAX_TRUST_ROOT_BYTES,
    MEDIA_TYPE,
    TRUST_ROOT_EXPIRED,
    TRUST_ROOT_MALFORMED,
    TRUST_ROOT_PAYLOAD_TYPE,
    TRUST_ROOT_ROLLBACK,
    TRUST_ROOT_SIGNATURE_THRESHOLD,
    TRUST_ROOT_VERSION_CONFLICT,
    _aware,
    _clip,
    format_time,
)
from .document import _load_document, dump_trust_root
from .model import TrustRoot
from .rotation import failed_handovers

# --- signed trust roots ---------------------------------------------------------------------


def sign_trust_root(root: TrustRoot, signers: Sequence[Signer]) -> Envelope:
    """DSSE-sign the canonical trust root with every signer (root keys, or the previous ones).

    Refuses an incomplete trust root, or one with a handover that does not verify.
    """
    payload = dump_trust_root(root, allow_incomplete=False)
    broken = failed_handovers(root)
    if broken:
        raise TrustRootError(
            f"rotation {broken[0].from_keyid[:16]}… → {broken[0].to_keyid[:16]}…: the handover "
            "signature does not verify; refusing to sign",
            "$.rotations",
        )
    # Root keys are few and sign once: one after the other, each checked before it is kept
    # (the trust-root layer uses the Signer protocol, never the signing stack).
    message = pae(MEDIA_TYPE, payload)
    if not signers:
        raise ConfigError("sign_trust_root: give at least one root key")
    seen: set[bytes] = set()
    signatures: list[Signature] = []
    for signer in signers:
        public = signer.public_key
        if public.spki_der in seen:
            raise ConfigError(f"key {public.keyid[:16]} is given twice")
        seen.add(public.spki_der)
        try:
            signature = signer.sign(message)
        except Exception as exc:
            raise SigningError(
                f"signing the trust root with key {public.keyid[:16]} failed: "
                f"{' '.join(str(exc).split())[:200] or type(exc).__name__}"
            ) from exc
        if not isinstance(signature, bytes) or not public.verify(signature, message):
            raise SigningError(
                f"key {public.keyid[:16]} produced a signature that does not verify with its "
                "public key; refusing to emit it"
            )
        signatures.append(Signature(sig=signature, keyid=public.keyid))
    return Envelope(payload, MEDIA_TYPE, tuple(signatures))


def _envelope(envelope: bytes | str | Envelope, limits: Limits) -> Envelope:
    if isinstance(envelope, Envelope):
        if len(envelope.signatures) > limits.max_signatures:
            raise VerificationError(
                TRUST_ROOT_MALFORMED,
                f"signed trust root: {len(envelope.signatures)} signatures exceed the limit of "
                f"{limits.max_signatures}",
            )
        return envelope
    if not isinstance(envelope, bytes | str):
        raise ConfigError("envelope must be bytes, str or an Envelope")
    try:
        return Envelope.from_json(envelope, limits=limits)
    except InputError as exc:
        raise VerificationError(TRUST_ROOT_MALFORMED, f"signed trust root: {exc}") from None


def _distinct_signers(
    envelope: Envelope, candidates: Sequence[PublicKey], needed: int
) -> dict[bytes, PublicKey]:
    """Distinct candidate keys with a valid signature over the PAE (stops once `needed`).

    keyids are hints only: the hinted key is tried first, then every other candidate not yet
    counted. A repeated signature is skipped; a key counts once however many signatures or
    keyids it appears under. Work is at most (signatures * candidates) verifications.
    """
    message = envelope.pae()
    by_keyid = {key.keyid: key for key in candidates}
    counted: dict[bytes, PublicKey] = {}
    tried: set[bytes] = set()
    for signature in envelope.signatures:
        if len(counted) >= needed:
            break
        if signature.sig in tried:
            continue
        tried.add(signature.sig)
        hinted = by_keyid.get(signature.keyid)
        order = ([hinted] if hinted is not None else []) + [
            key for key in candidates if key is not hinted
        ]
        for key in order:
            if key.spki_der not in counted and key.verify(signature.sig, message):
                counted[key.spki_der] = key
                break
    return counted


def _require(envelope: Envelope, candidates: Sequence[PublicKey], needed: int, who: str) -> None:
    unique = list({key.spki_der: key for key in candidates}.values())
    counted = _distinct_signers(envelope, unique, needed)
    if len(counted) < needed:
        raise VerificationError(
            TRUST_ROOT_SIGNATURE_THRESHOLD,
            f"signed trust root: {len(counted)} valid signature(s) from distinct {who}, "
            f"{needed} needed",
        )


def _pinned_keys(document: object, pinned: set[str]) -> list[PublicKey]:
    """Keys in an unvalidated document's rootKeys whose recomputed keyid is pinned (bounded)."""
    section = document.get("rootKeys") if isinstance(document, dict) else None
    entries = section.get("keys") if isinstance(section, dict) else None
    found: list[PublicKey] = []
    if not isinstance(entries, list):
        return found
    for entry in entries[:MAX_ROOT_KEYS]:
        pem = entry.get("publicKey") if isinstance(entry, dict) else None
        if not isinstance(pem, str) or len(pem) > 64 * 1024:
            continue
        try:
            key = PublicKey.from_pem(pem.encode("ascii"), source="rootKeys")
        except (KeyFormatError, UnicodeEncodeError, ValueError):
            continue
        if key.keyid in pinned:
            found.append(key)
    return found


def verify_signed_trust_root(
    envelope: bytes | str | Envelope,
    *,
    pinned_root_keyids: Sequence[str] | None = None,
    pinned_threshold: int | None = None,
    previous: TrustRoot | None = None,
    now: datetime | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> TrustRoot:
    """Check a DSSE-signed trust root and return it, or raise VerificationError with a code.

    Anchors (at least one; every one given must hold):
    - `previous`, the last trust root accepted: a threshold of its root keys must have signed
      (checked over the PAE before the payload is parsed); the version may not go back
      (TRUST_ROOT_ROLLBACK), and the same version must be the same document
      (TRUST_ROOT_VERSION_CONFLICT).
    - `pinned_root_keyids`: root keys listed in the new document whose keyids are pinned must
      sign, at least `pinned_threshold` of them (default: every pinned key) and never fewer than
      the document's own root threshold; the threshold in the payload alone is not trusted.
    In every case a threshold of the document's own root keys must have signed too, and an
    expired trust root is refused.
    """
    if pinned_root_keyids is None and previous is None:
        raise ConfigError(
            "verifying a signed trust root needs pinned root keyids or a previous one"
        )
    pinned: set[str] | None = None
    if pinned_root_keyids is not None:
        if isinstance(pinned_root_keyids, str):
            raise ConfigError("pinned_root_keyids must be a sequence of keyids, not one string")
        pinned = set(pinned_root_keyids)
        bad = [k for k in pinned if not isinstance(k, str) or not _KEYID.fullmatch(k)]
        if bad or not pinned:
            raise ConfigError(
                "pinned root keyids must be 64 lower-case hex digits (SHA-256 of the SPKI), "
                f"at least one; got {_clip(repr(bad or list(pinned_root_keyids)), 120)}"
            )
        if pinned_threshold is not None and (
            type(pinned_threshold) is not int or not 1 <= pinned_threshold <= len(pinned)
        ):
            raise ConfigError(f"pinned_threshold must be from 1 to {len(pinned)}")
    moment = _aware(datetime.now(UTC) if now is None else now, "now")

    parsed = _envelope(envelope, limits)
    if parsed.payload_type != MEDIA_TYPE:
        raise VerificationError(
            TRUST_ROOT_PAYLOAD_TYPE,
            f"signed trust root: payloadType {_clip(repr(parsed.payload_type), 120)} is not "
            f"{MEDIA_TYPE}",
        )
    if previous is not None:
        if not previous.root.keys:
            raise VerificationError(
                TRUST_ROOT_SIGNATURE_THRESHOLD,
                f"the previous trust root (version {previous.version}) lists no root keys, so "
                "no update can be authenticated against it",
            )
        _require(
            parsed,
            previous.root.keys,
            previous.root.threshold,
            f"root keys of the previous trust root (version {previous.version})",
        )
    bounded = dataclasses.replace(
        limits, max_json_bytes=min(limits.max_json_bytes, MAX_TRUST_ROOT_BYTES)
    )
    try:
        document = loads_strict(
            parsed.payload, what="trust root", limits=bounded, error=TrustRootError
        )
    except TrustRootError as exc:
        raise VerificationError(TRUST_ROOT_MALFORMED, f"signed trust root: {exc}") from None
    if pinned is not None:
        # Authenticate before any schema work: the pinned keys, found by recomputing keyids
        # from the key material in rootKeys, must have signed these bytes.
        pinned_needed = len(pinned) if pinned_threshold is None else pinned_threshold
        _require(parsed, _pinned_keys(document, pinned), pinned_needed, "pinned root keys")
    try:
        root = _load_document(document, allow_incomplete=False)
    except TrustRootError as exc:
        raise VerificationError(TRUST_ROOT_MALFORMED, f"signed trust root: {exc}") from None
    if pinned is not None:
        candidates = [key for key in root.root.keys if key.keyid in pinned]
        needed = max(
            root.root.threshold, len(pinned) if pinned_threshold is None else pinned_threshold
        )
        _require(parsed, candidates, needed, "pinned root keys")
    if not root.root.keys:
        raise VerificationError(
            TRUST_ROOT_SIGNATURE_THRESHOLD,
            "signed trust root lists no root keys (rootKeys), so it cannot vouch for itself",
        )
    _require(parsed, root.root.keys, root.root.threshold, "root keys of the trust root itself")
    if previous is not None:
        if root.version < previous.version:
            raise VerificationError(
                TRUST_ROOT_ROLLBACK,
                f"signed trust root version {root.version} is older than version "
                f"{previous.version} already accepted",
            )
        if root.version == previous.version and dump_trust_root(root) != dump_trust_root(previous):
            raise VerificationError(
                TRUST_ROOT_VERSION_CONFLICT,
                f"signed trust root version {root.version} differs from the version "
                f"{previous.version} already accepted",
            )
    if moment > root.expires:
        raise VerificationError(
            TRUST_ROOT_EXPIRED,
            f"trust root version {root.version} expired at {format_time(root.expires)}",
        )
    return root


def verify_trust_root_chain(
    envelopes: Iterable[bytes | str | Envelope],
    *,
    pinned_root_keyids: Sequence[str] | None = None,
    pinned_threshold: int | None = None,
    previous: TrustRoot | None = None,
    now: datetime | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> TrustRoot:
    """Walk signed trust roots oldest first, each vouched for by the one before (root-key rotation).

    The first is anchored by the pins and/or `previous`; every later one by its predecessor.
    As in TUF, only the last must be unexpired (intermediate versions may have lapsed).
    """
    moment = _aware(datetime.now(UTC) if now is None else now, "now")
    items = list(envelopes)
    if not items:
        raise ConfigError("no signed trust roots given")
    current = previous
    for index, item in enumerate(items):
        last = index == len(items) - 1
        current = verify_signed_trust_root(
            item,
            pinned_root_keyids=pinned_root_keyids if index == 0 else None,
            pinned_threshold=pinned_threshold if index == 0 else None,
            previous=current,
            # Intermediate versions are never refused as expired.
            now=moment if last else datetime.min.replace(tzinfo=UTC),
            limits=limits,
        )
    assert current is not None
    return current
