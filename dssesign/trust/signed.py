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
    MEDIA_TYPES,
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
    # The payloadType is the document's own mediaType (v1, or v2 when it uses v2 sections).
    media_type = root.media_type
    message = pae(media_type, payload)
    if not signers:
        raise ConfigError("sign_trust_root: give at least one root key")
    seen: set[bytes] = set()
    signatures: list[Signature] = []
    for signer in signers:
        public = signer.public_key
        if public.spki_der in seen:
            raise ConfigError(f"key {public.keyid[:16]} is given twice")
        seen.add(public.spki_der)
        signatures.append(_sign_checked(signer, message))
    return Envelope(payload, media_type, tuple(signatures))


def _sign_checked(signer: Signer, message: bytes) -> Signature:
    """One root key's signature over `message`, verified with its public key before it is kept."""
    public = signer.public_key
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
    return Signature(sig=signature, keyid=public.keyid)


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
    if parsed.payload_type not in MEDIA_TYPES:
        raise VerificationError(
            TRUST_ROOT_PAYLOAD_TYPE,
            f"signed trust root: payloadType {_clip(repr(parsed.payload_type), 120)} is not "
            f"{' or '.join(MEDIA_TYPES)}",
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
    if document.get("mediaType") != parsed.payload_type:
        # The signed payloadType says which format the signers vouched for: the same one.
        raise VerificationError(
            TRUST_ROOT_PAYLOAD_TYPE,
            f"signed trust root: payloadType {parsed.payload_type} is not the document's "
            f"mediaType {_clip(repr(document.get('mediaType')), 80)}",
        )
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


# --- dual control: root-key signatures added at different times -----------------------------


@dataclasses.dataclass(frozen=True)
class RootSignatures:
    """Who has signed a signed trust root so far: for display and planning, never a verdict.

    `signers[i]` is the keyid of the root key (of this trust root, or of `previous`) that
    signature i verifies under, or None when it verifies under none of them. The counts are of
    distinct keys, as verification counts them. Accepting the trust root is still
    `verify_signed_trust_root`'s job (pins or the previous version, rollback, expiry).
    """

    root: TrustRoot
    envelope: Envelope
    signers: tuple[str | None, ...]
    #: Distinct root keys of the trust root itself with a valid signature.
    counted: int
    #: The same for the root keys of `previous`, when one was given.
    previous_counted: int | None = None
    previous_threshold: int | None = None

    @property
    def threshold(self) -> int:
        """The trust root's own root threshold."""
        return self.root.root.threshold

    @property
    def met(self) -> bool:
        """Both thresholds (its own, and the previous version's if given) are reached."""
        return self.counted >= self.threshold and (
            self.previous_threshold is None
            or (self.previous_counted or 0) >= self.previous_threshold
        )


def _read_signed(envelope: bytes | str | Envelope, limits: Limits) -> tuple[Envelope, TrustRoot]:
    """The envelope and its trust root, parsed strictly but not verified (InputError family)."""
    if isinstance(envelope, Envelope):
        parsed = envelope
        if len(parsed.signatures) > limits.max_signatures:
            raise InputError(
                f"signed trust root: {len(parsed.signatures)} signatures exceed the limit of "
                f"{limits.max_signatures}"
            )
    elif isinstance(envelope, bytes | str):
        parsed = Envelope.from_json(envelope, limits=limits)
    else:
        raise ConfigError("envelope must be bytes, str or an Envelope")
    if parsed.payload_type not in MEDIA_TYPES:
        raise TrustRootError(
            f"signed trust root: payloadType {_clip(repr(parsed.payload_type), 120)} is not "
            f"{' or '.join(MEDIA_TYPES)}",
            "$.payloadType",
        )
    bounded = dataclasses.replace(
        limits, max_json_bytes=min(limits.max_json_bytes, MAX_TRUST_ROOT_BYTES)
    )
    document = loads_strict(parsed.payload, what="trust root", limits=bounded, error=TrustRootError)
    root = _load_document(document, allow_incomplete=False)
    if document.get("mediaType") != parsed.payload_type:
        raise TrustRootError(
            f"signed trust root: payloadType {parsed.payload_type} is not the document's "
            f"mediaType {_clip(repr(document.get('mediaType')), 80)}",
            "$.payloadType",
        )
    return parsed, root


def _attribute(envelope: Envelope, candidates: Sequence[PublicKey]) -> tuple[str | None, ...]:
    """Per signature, the keyid of the candidate it verifies under (hint first), or None."""
    message = envelope.pae()
    by_keyid = {key.keyid: key for key in candidates}
    found: list[str | None] = []
    for signature in envelope.signatures:
        hinted = by_keyid.get(signature.keyid)
        order = ([hinted] if hinted is not None else []) + [
            key for key in candidates if key is not hinted
        ]
        found.append(next((k.keyid for k in order if k.verify(signature.sig, message)), None))
    return tuple(found)


def _distinct(keys: Iterable[PublicKey]) -> list[PublicKey]:
    return list({key.spki_der: key for key in keys}.values())


def root_signatures(
    envelope: bytes | str | Envelope,
    *,
    previous: TrustRoot | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> RootSignatures:
    """Which root keys signed this trust root so far (its own, and `previous`'s if given).

    Reads the envelope without accepting it: what a countersigning operator is shown.
    """
    parsed, root = _read_signed(envelope, limits)
    candidates = _distinct([*root.root.keys, *(previous.root.keys if previous is not None else ())])
    signers = _attribute(parsed, candidates)
    own = {key.keyid for key in root.root.keys}
    counted = len({keyid for keyid in signers if keyid in own})
    if previous is None:
        return RootSignatures(root, parsed, signers, counted)
    before = {key.keyid for key in previous.root.keys}
    return RootSignatures(
        root,
        parsed,
        signers,
        counted,
        previous_counted=len({keyid for keyid in signers if keyid in before}),
        previous_threshold=previous.root.threshold,
    )


def countersign_trust_root(
    envelope: bytes | str | Envelope,
    signers: Sequence[Signer],
    *,
    previous: TrustRoot | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> Envelope:
    """Add root-key signatures to a signed trust root: M of N root keys, signing at different times.

    The payload and payloadType stay byte for byte; the existing signatures stay, in order; one
    new signature per signer is appended, each verified with its public key before it is kept.
    Every signer must be a root key of the trust root (or, with `previous`, of the version it
    replaces, whose root keys must vouch for an update). Refused before anything is signed
    (ConfigError): no signer, a key given twice, a key that is not a root key, a key that
    already signed — found by verifying every existing signature with the key, since keyids
    are only hints — or more signatures than `limits.max_signatures`. A payload that is not a
    complete trust root, or whose handovers do not verify, is refused like `sign_trust_root`
    refuses it (TrustRootError). The existing signatures are not judged: verify the result
    with `verify_signed_trust_root`.
    """
    parsed, root = _read_signed(envelope, limits)
    if not signers:
        raise ConfigError("countersign_trust_root: give at least one root key")
    if previous is not None and previous.version >= root.version:
        raise ConfigError(
            f"the previous trust root (version {previous.version}) is not older than the one "
            f"being countersigned (version {root.version})"
        )
    allowed = {key.spki_der for key in root.root.keys}
    if previous is not None:
        allowed |= {key.spki_der for key in previous.root.keys}
    if not allowed:
        raise TrustRootError(
            "the signed trust root lists no root keys (rootKeys), so no countersignature can count",
            "$.rootKeys",
        )
    broken = failed_handovers(root)
    if broken:
        raise TrustRootError(
            f"rotation {broken[0].from_keyid[:16]}… → {broken[0].to_keyid[:16]}…: the handover "
            "signature does not verify; refusing to sign",
            "$.rotations",
        )
    total = len(parsed.signatures) + len(signers)
    if total > limits.max_signatures:
        raise ConfigError(
            f"countersigning would make {total} signatures, over the limit of "
            f"{limits.max_signatures}"
        )
    message = parsed.pae()
    seen: set[bytes] = set()
    for signer in signers:
        public = signer.public_key
        if public.spki_der in seen:
            raise ConfigError(f"key {public.keyid} is given twice")
        seen.add(public.spki_der)
        if public.spki_der not in allowed:
            whose = f"trust root version {root.version}"
            if previous is not None:
                whose += f" nor of the previous version {previous.version}"
            raise ConfigError(f"key {public.keyid} is not a root key of {whose}; refusing to sign")
        for index, signature in enumerate(parsed.signatures):
            if public.verify(signature.sig, message):
                hint = (
                    ""
                    if signature.keyid == public.keyid
                    else f" (under keyid {_clip(repr(signature.keyid), 80)})"
                )
                raise ConfigError(
                    f"key {public.keyid} already signed this trust root: signature "
                    f"{index + 1}{hint}; a key counts once"
                )
    added = tuple(_sign_checked(signer, message) for signer in signers)
    return Envelope(parsed.payload, parsed.payload_type, parsed.signatures + added)
