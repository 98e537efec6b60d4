"""Offline verifier: a DSSE envelope of an in-toto Statement against a trust-root bundle.

The order of checks is the defence; each step only runs on what the previous one vouched for:

1. arguments and the trust root itself (expired at the verification time, or a policy that
   would fail open such as a threshold below 1, is refused);
2. the envelope, parsed strictly and within `Limits` (too many signatures is refused before
   any signature is decoded, so 20,000 junk signatures cost one JSON parse);
3. the payloadType, which must be exactly ``application/vnd.in-toto+json``;
4. every signature over the PAE, before a byte of the payload is parsed. keyids are only
   hints: a keyid naming a trusted key is tried against that key alone, an empty or unknown
   keyid against every trusted key; a key already accepted is never tried again. Signatures
   whose length cannot fit a key's algorithm cost no crypto, and blind (un-hinted) attempts
   have a budget, so the work is bounded whatever the envelope holds. Sigstore bundles given
   with the envelope are verified here too (`bundle_verify`): each must carry the envelope's
   payload and payloadType byte for byte and one of its signatures, and verify offline;
5. key state at the verification time (validity window with both ends inclusive and revocation
   from its time on, as `trustroot.TrustedKey` defines them; rotation handovers via
   `trustroot.verify_handover`); the payload is parsed only if a key valid at that time signed;
6. the Statement (v1, or v0.1 as cosign's ``attest-blob`` writes it), the requested
   predicateType, and each key's allowed predicate types;
7. the policy: the threshold counts distinct public keys (SPKI DER), never signatures or keyid
   strings, plus distinct keyless identities (issuer + subject); required keyids; the hybrid
   post-quantum mode;
8. artifacts and digests, last, so hashing large files is only spent on a valid attestation.

Every failure is one `VerificationError` with a stable `code` (see `CODES`); any other
exception inside is turned into code ``INTERNAL``, so no input can crash a caller into
accepting.
"""

from __future__ import annotations

import hmac
import os
import sys
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, rsa

from . import trust as trustroot
from ._json import loads_strict
from .codes import CODES, Code
from .dsse import Envelope, Signature, pae
from .errors import DssesignError, EnvelopeError, InputError, VerificationError
from .keys import PublicKey
from .limits import DEFAULT_LIMITS, Limits, exceeded
from .statement import (
    PAYLOAD_TYPE,
    STATEMENT_TYPE_V01,
    digest_file,
    parse_statement,
    subject_from_digest,
)
from .trust import RotationEvent, SigstoreTrust, TrustedKey, TrustRoot

if TYPE_CHECKING:
    from .bundle_verify import KeylessSigner as _Signer

__all__ = [
    "CODES",
    "Code",
    "CountedIdentity",
    "CountedKey",
    "MatchedSubject",
    "VerificationFailure",
    "VerificationResult",
    "failure_report",
    "verify",
    "verify_bundle",
]


#: When several keys were dropped, the code reported is the most serious reason.
_EXCLUSION_ORDER: Final = (
    Code.KEY_REVOKED,
    Code.ROTATION_UNVERIFIED,
    Code.KEY_ROTATED_OUT,
    Code.KEY_EXPIRED,
    Code.KEY_NOT_YET_VALID,
    Code.PREDICATE_TYPE_NOT_ALLOWED,
)
_HYBRID_MODES: Final = frozenset({"off", "or", "and", "pq-only"})
#: Failures of the caller's request, not of the attestation: the CLI exits 2 for them.
_USAGE_CODES: Final = frozenset({Code.INVALID_ARGUMENT, Code.ARTIFACT_UNREADABLE})
#: Crypto attempts for signatures without a usable keyid hint (at least 8 per trusted key):
#: bounds the work an envelope of junk signatures can cause at ~0.1-0.3 s.
_BLIND_ATTEMPTS: Final = 1024


# --- results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CountedKey:
    """A trusted key whose signature counted toward the policy."""

    keyid: str
    algorithm: str
    label: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {"keyid": self.keyid, "algorithm": self.algorithm, "label": self.label}


@dataclass(frozen=True)
class CountedIdentity:
    """A keyless signer (OIDC issuer + certificate SAN) whose bundle counted toward the policy."""

    issuer: str
    subject: str
    label: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {"issuer": self.issuer, "subject": self.subject, "label": self.label}


@dataclass(frozen=True)
class MatchedSubject:
    """One `--artifact`/`--digest` and the subject it matched."""

    #: The subject's name (None when the subject is unnamed).
    name: str | None
    #: ``alg:hex`` that matched.
    digest: str
    #: The artifact path or the ``--digest`` argument as given.
    artifact: str

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "digest": self.digest, "artifact": self.artifact}


@dataclass(frozen=True)
class VerificationResult:
    """What verified: the Statement's type, the keys that counted and the subjects matched.

    `payload` is the exact byte string the signatures cover; use it (or `statement`, parsed
    from it) rather than re-reading the envelope (DSSE: never re-parse after verification).
    """

    predicate_type: str
    statement_type: str
    keys_counted: tuple[CountedKey, ...]
    subjects_matched: tuple[MatchedSubject, ...]
    warnings: tuple[str, ...]
    threshold: int
    payload: bytes = field(repr=False)
    statement: Mapping[str, object] = field(repr=False, compare=False)
    identities_counted: tuple[CountedIdentity, ...] = ()

    @property
    def ok(self) -> bool:
        return True

    @property
    def code(self) -> str:
        return str(Code.OK)

    @property
    def message(self) -> str:
        count = len(self.keys_counted)
        noun = "key" if count == 1 else "keys"
        legacy = " (legacy Statement v0.1)" if self.statement_type == STATEMENT_TYPE_V01 else ""
        what = self.predicate_type or "a messageSignature bundle"
        return (
            f"verified {what}{legacy}: {count} distinct trusted {noun}"
            f"{_identities_phrase(len(self.identities_counted))} counted "
            f"(threshold {self.threshold}), {len(self.subjects_matched)} subject match(es)"
        )

    def to_dict(self) -> dict[str, object]:
        """The CLI's ``--json`` report; `failure_report` gives the same shape for a failure."""
        return {
            "ok": True,
            "code": str(Code.OK),
            "message": self.message,
            "predicateType": self.predicate_type,
            "subjectsMatched": [s.to_dict() for s in self.subjects_matched],
            "keysCounted": [k.to_dict() for k in self.keys_counted],
            "identitiesCounted": [i.to_dict() for i in self.identities_counted],
            "warnings": list(self.warnings),
        }


def _identities_phrase(count: int) -> str:
    if not count:
        return ""
    return f" and {count} keyless {'identity' if count == 1 else 'identities'}"


class VerificationFailure(VerificationError):
    """The one exception `verify` raises; carries what was learnt before failing, for reports."""

    def __init__(
        self,
        code: Code,
        message: str,
        *,
        predicate_type: str | None = None,
        keys_counted: tuple[CountedKey, ...] = (),
        warnings: tuple[str, ...] = (),
        identities_counted: tuple[CountedIdentity, ...] = (),
    ) -> None:
        super().__init__(code, message)
        if self.code in _USAGE_CODES:
            self.exit_code = 2  # the request itself is unusable: bad usage or unreadable input
        self.predicate_type = predicate_type
        self.keys_counted = keys_counted
        self.identities_counted = identities_counted
        self.warnings = warnings


def failure_report(error: VerificationError) -> dict[str, object]:
    """The ``--json`` report for a failure: the same keys as `VerificationResult.to_dict`."""
    failure = error if isinstance(error, VerificationFailure) else None
    return {
        "ok": False,
        "code": str(error.code),
        "message": str(error),
        "predicateType": failure.predicate_type if failure else None,
        "subjectsMatched": [],
        "keysCounted": [k.to_dict() for k in failure.keys_counted] if failure else [],
        "identitiesCounted": ([i.to_dict() for i in failure.identities_counted] if failure else []),
        "warnings": list(failure.warnings) if failure else [],
    }


# --- the trust-root index (built once per TrustRoot object) -------------------------------------


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


_INDEX_CACHE: dict[int, tuple[weakref.ref[TrustRoot], _Index]] = {}
_INDEX_LOCK = threading.Lock()
_INDEX_CACHE_SIZE: Final = 32


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


# --- the verifier ---------------------------------------------------------------------------------


class _Stop(Exception):
    """Internal: a failure with its code, turned into `VerificationFailure` at the boundary."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = code


def _when(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _Run:
    """State of one verification, so a failure can report what was learnt before it."""

    warnings: list[str] = field(default_factory=list)
    predicate_type: str | None = None
    keys_counted: tuple[CountedKey, ...] = ()
    identities_counted: tuple[CountedIdentity, ...] = ()


def verify(
    envelope: bytes | str | Envelope,
    trust_root: TrustRoot,
    *,
    bundles: Sequence[bytes | str] = (),
    artifacts: Sequence[str | os.PathLike[str]] = (),
    digests: Sequence[str] = (),
    predicate_type: str | None = None,
    at: datetime | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> VerificationResult:
    """Verify `envelope` against `trust_root`; return the result or raise `VerificationFailure`.

    `envelope` is the envelope JSON (bytes or str) or an already parsed `Envelope`. `bundles`
    are Sigstore bundle JSON texts for signatures of this envelope (one signature each): each
    must carry the envelope's exact payload and payloadType and one of its signatures, and
    verify offline; a keyless one counts once per distinct identity (issuer + subject). `at`
    is the verification time for trusted keys (timezone-aware; default now; keyless
    signatures take their time from the transparency log / timestamps). Each of `artifacts`
    (files, hashed with SHA-256) and `digests` (``alg:hex``) must match at least one subject.
    `predicate_type`, if given, must equal the Statement's. No other exception type escapes.
    """
    run = _Run()
    return _guarded(
        run,
        lambda: _verify(
            run,
            envelope,
            trust_root,
            bundles=bundles,
            artifacts=artifacts,
            digests=digests,
            predicate_type=predicate_type,
            at=at,
            limits=limits,
        ),
    )


def verify_bundle(
    bundle: bytes | str,
    trust_root: TrustRoot,
    *,
    artifacts: Sequence[str | os.PathLike[str]] = (),
    digests: Sequence[str] = (),
    predicate_type: str | None = None,
    at: datetime | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> VerificationResult:
    """Verify a Sigstore bundle on its own (``dssesign verify BUNDLE``).

    A dsseEnvelope bundle is an envelope of one signature: `verify(envelope, bundles=[bundle])`.
    A messageSignature bundle signs one artifact: exactly one of `artifacts` / `digests`
    (``sha256:HEX``) names it; its SHA-256 must equal the bundle's messageDigest and the
    signature must verify over it. There is no Statement, so no predicate type: signers whose
    trust is limited to predicate types do not count, and `predicate_type` fails.
    """
    run = _Run()
    return _guarded(
        run,
        lambda: _verify_bundle_alone(
            run,
            bundle,
            trust_root,
            artifacts=artifacts,
            digests=digests,
            predicate_type=predicate_type,
            at=at,
            limits=limits,
        ),
    )


def _guarded(run: _Run, work: Callable[[], VerificationResult]) -> VerificationResult:
    """Run one verification: every failure becomes one VerificationFailure; count verdicts."""
    try:
        result = work()
    except _Stop as stop:
        error: VerificationFailure = _failure(run, stop.code, str(stop))
    except VerificationError as exc:
        error = _failure(run, exc.code, str(exc))
    except Exception as exc:
        error = _failure(run, Code.INTERNAL, f"internal error ({_describe(exc)})")
    else:
        metrics = _metrics()
        if metrics is not None:  # a service that called metrics.configure() counts verdicts
            metrics.count_verify("ok")
        return result
    metrics = _metrics()
    if metrics is not None:
        metrics.count_verify("failed", str(error.code))
    raise error


def _metrics() -> Any:
    """dssesign.metrics if a caller configured it, else None.

    Never imported from here: metrics belongs to the signing side (it imports multisign), and
    the verifier loads nothing of it. A process that configured metrics has imported it.
    """
    module = sys.modules.get("dssesign.metrics")
    return module if module is not None and module.active() else None


def _describe(exc: Exception) -> str:
    try:
        lines = str(exc).splitlines()
    except Exception:  # an exception whose __str__ fails must not escape either
        lines = []
    return f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__


def _failure(run: _Run, code: Code, message: str) -> VerificationFailure:
    return VerificationFailure(
        code,
        message,
        predicate_type=run.predicate_type,
        keys_counted=run.keys_counted,
        warnings=tuple(run.warnings),
        identities_counted=run.identities_counted,
    )


def _verify(
    run: _Run,
    envelope: object,
    root: object,
    *,
    bundles: object,
    artifacts: object,
    digests: object,
    predicate_type: object,
    at: object,
    limits: object,
) -> VerificationResult:
    # 1. The request and the trust root.
    now, artifact_list, digest_specs, root, index = _request(
        root,
        artifacts=artifacts,
        digests=digests,
        predicate_type=predicate_type,
        at=at,
        limits=limits,
    )
    assert isinstance(limits, Limits)
    bundle_list = _sequence_arg(bundles, "bundles")
    if len(bundle_list) > limits.max_signatures:
        raise _Stop(
            Code.TOO_MANY_BUNDLES,
            f"{len(bundle_list)} bundles exceed the limit of {limits.max_signatures}",
        )

    # 2-3. The envelope, strictly, then its payloadType before anything is trusted.
    parsed = _read_envelope(envelope, limits)
    if parsed.payload_type != PAYLOAD_TYPE:
        raise _Stop(
            Code.UNSUPPORTED_PAYLOAD_TYPE,
            f"payloadType {parsed.payload_type[:100]!r} is not {PAYLOAD_TYPE!r}",
        )
    if not parsed.signatures:
        raise _Stop(Code.NO_SIGNATURES, "the envelope has no signatures")

    # 4. Signatures over the PAE, before the payload is parsed; then the bundles.
    accepted = _accepted_keys(run, index, parsed.signatures, pae(PAYLOAD_TYPE, parsed.payload))
    if index.listed_twice:
        run.warnings.append(
            "trust root lists a key more than once (counted once): "
            + ", ".join(k[:16] for k in index.listed_twice)
        )
    identities = _verify_bundles(run, root, index, parsed, bundle_list, limits=limits)
    if not accepted and not identities:
        raise _Stop(
            Code.NO_VALID_SIGNATURE,
            f"none of the {len(parsed.signatures)} signature(s) verifies under any of the "
            f"{len(index.candidates)} trusted key(s)",
        )
    return _finish(
        run,
        root,
        index,
        now=now,
        payload=parsed.payload,
        accepted=accepted,
        identities=identities,
        predicate_type=predicate_type,
        artifact_list=artifact_list,
        digest_specs=digest_specs,
        limits=limits,
    )


def _request(
    root: object,
    *,
    artifacts: object,
    digests: object,
    predicate_type: object,
    at: object,
    limits: object,
) -> tuple[datetime, tuple[object, ...], tuple[tuple[str, str, str], ...], TrustRoot, _Index]:
    """Step 1: the caller's arguments and the trust root (usable, unexpired)."""
    if not isinstance(limits, Limits):
        raise _Stop(Code.INVALID_ARGUMENT, "limits: expected a Limits")
    if at is None:
        now = datetime.now(UTC)
    elif isinstance(at, datetime):
        if at.tzinfo is None or at.utcoffset() is None:
            raise _Stop(Code.INVALID_ARGUMENT, "at: a verification time must be timezone-aware")
        now = at.astimezone(UTC)
    else:
        raise _Stop(Code.INVALID_ARGUMENT, "at: expected a datetime")
    if predicate_type is not None and not isinstance(predicate_type, str):
        raise _Stop(Code.INVALID_ARGUMENT, "predicate_type: expected a string")
    artifact_list = _sequence_arg(artifacts, "artifacts")
    digest_specs = _digest_args(_sequence_arg(digests, "digests"))
    if not isinstance(root, TrustRoot):
        raise _Stop(Code.INVALID_ARGUMENT, "trust_root: expected a TrustRoot")
    index = _index_for(root)
    _check_policy(root, index)
    if now > root.expires:
        raise _Stop(
            Code.TRUST_ROOT_EXPIRED,
            f"trust root version {root.version} expired at {_when(root.expires)}",
        )
    return now, artifact_list, digest_specs, root, index


def _finish(
    run: _Run,
    root: TrustRoot,
    index: _Index,
    *,
    now: datetime,
    payload: bytes,
    accepted: list[_Candidate],
    identities: list[_Signer],
    predicate_type: object,
    artifact_list: tuple[object, ...],
    digest_specs: tuple[tuple[str, str, str], ...],
    limits: Limits,
) -> VerificationResult:
    """Steps 5-8, once signatures (keys and keyless bundles) have verified over the payload."""
    # 5. Key state at the verification time; parse only what a valid key or identity signed.
    excluded: list[_Exclusion] = []
    valid: list[_Candidate] = []
    for candidate in accepted:
        reason = _state_problem(run, root, index, candidate, now)
        if reason is None:
            valid.append(candidate)
        else:
            excluded.append(_Exclusion(reason[0], candidate.keyid, reason[1]))
            run.warnings.append(f"not counted: {reason[1]}")
    if not valid and not identities:
        raise _Stop(*_worst(excluded))

    # 6. The Statement, the requested type, each key's allowed types.
    statement = _read_statement(payload, limits)
    statement_type = str(statement["_type"])
    actual_type = str(statement["predicateType"])
    run.predicate_type = actual_type
    if statement_type == STATEMENT_TYPE_V01:
        run.warnings.append("legacy in-toto Statement v0.1 (as written by cosign attest-blob)")
    if predicate_type is not None and predicate_type != actual_type:
        raise _Stop(
            Code.PREDICATE_TYPE_MISMATCH,
            f"the Statement's predicateType is {actual_type!r}, not the requested "
            f"{predicate_type!r}",
        )
    eligible: list[_Candidate] = []
    for candidate in valid:
        if all(
            not e.predicate_types or actual_type in e.predicate_types for e in candidate.entries
        ):
            eligible.append(candidate)
        else:
            message = f"key {candidate.keyid[:16]} may not attest to {actual_type}"
            excluded.append(_Exclusion(Code.PREDICATE_TYPE_NOT_ALLOWED, candidate.keyid, message))
            run.warnings.append(f"not counted: {message}")
    signers: list[CountedIdentity] = []
    for signer in identities:
        rule = next((r for r in signer.rules if r.allows(actual_type)), None)
        if rule is not None:
            signers.append(CountedIdentity(signer.issuer, signer.subject, rule.label))
        else:
            message = f"keyless identity {signer.subject[:120]} may not attest to {actual_type}"
            excluded.append(_Exclusion(Code.PREDICATE_TYPE_NOT_ALLOWED, "", message))
            run.warnings.append(f"not counted: {message}")

    # 7. The policy.
    threshold = _apply_policy(
        run,
        root,
        index,
        predicate_type=actual_type,
        eligible=eligible,
        excluded=excluded,
        identities=signers,
    )

    # 8. Artifacts and digests.
    subjects = statement["subject"]
    if not isinstance(subjects, list):  # pragma: no cover - validate_statement guarantees it
        raise _Stop(Code.INVALID_STATEMENT, "payload: subject is not a list")
    matched = _match_subjects(subjects, artifact_list, digest_specs)
    if not artifact_list and not digest_specs:
        run.warnings.append("no artifact or digest given: subjects were not checked")
    return VerificationResult(
        predicate_type=actual_type,
        statement_type=statement_type,
        keys_counted=run.keys_counted,
        subjects_matched=matched,
        warnings=tuple(run.warnings),
        threshold=threshold,
        payload=payload,
        statement=statement,
        identities_counted=run.identities_counted,
    )


# --- Sigstore bundles ---------------------------------------------------------------------------


def _bundle_stop(position: int | None, exc: VerificationError) -> _Stop:
    where = "bundle" if position is None else f"bundle {position}"
    text = str(exc).removeprefix("bundle: ")
    code = Code(exc.code) if exc.code in Code.__members__ else Code.INTERNAL
    return _Stop(code, f"{where}: {text}")


def _keyless_trust(root: TrustRoot) -> SigstoreTrust:
    try:
        trust = root.keyless
    except trustroot.TrustRootError as exc:
        raise _Stop(Code.TRUST_ROOT_INVALID, str(exc)) from None
    if trust is None:
        raise _Stop(
            Code.SIGSTORE_NOT_CONFIGURED,
            "a keyless bundle was given but the trust root has no sigstore section "
            "(dssesign trust-root set-sigstore-root / add-identity)",
        )
    return trust


def _verify_bundles(
    run: _Run,
    root: TrustRoot,
    index: _Index,
    envelope: Envelope,
    bundles: tuple[object, ...],
    *,
    limits: Limits,
) -> list[_Signer]:
    """Every bundle must belong to this envelope and verify; keyless signers, once each.

    Belonging: the bundle's DSSE payload and payloadType are the envelope's, byte for byte,
    and its signature is one of the envelope's signatures (a bundle for any other signature
    is refused, not ignored). A keyed bundle must verify under a trusted key (its key counts
    through the envelope's signature, once); a keyless bundle is verified offline against the
    trust root's Sigstore trusted root and identity rules.
    """
    if not bundles:
        return []
    from . import bundle_verify  # noqa: PLC0415 - only when bundles are given

    signatures = {s.sig for s in envelope.signatures}
    trusted_keys = {c.public.spki_der for c in index.candidates}
    signers: dict[tuple[str, str], _Signer] = {}
    for position, item in enumerate(bundles):
        data = bytes(item) if isinstance(item, bytearray | memoryview) else item
        if not isinstance(data, bytes | str):
            raise _Stop(Code.INVALID_ARGUMENT, f"bundles[{position}]: expected JSON bytes or str")
        try:
            bundle = bundle_verify.parse_bundle(data, limits=limits)
            if bundle.envelope is None:
                raise _Stop(
                    Code.BUNDLE_PAYLOAD_MISMATCH,
                    f"bundle {position}: a messageSignature bundle signs an artifact, not this "
                    "envelope's payload",
                )
            if (
                bundle.envelope.payload_type != envelope.payload_type
                or bundle.envelope.payload != envelope.payload
            ):
                raise _Stop(
                    Code.BUNDLE_PAYLOAD_MISMATCH,
                    f"bundle {position}: its DSSE payload/payloadType is not byte-identical to "
                    "the envelope's",
                )
            if bundle.signature not in signatures:
                raise _Stop(
                    Code.BUNDLE_SIGNATURE_MISMATCH,
                    f"bundle {position}: its signature is not one of the envelope's signatures",
                )
            if bundle.keyed:
                bundle_verify.verify_keyed(bundle, [c.public for c in index.candidates])
                continue
            signer = bundle_verify.verify_keyless(bundle, _keyless_trust(root))
        except VerificationError as exc:
            raise _bundle_stop(position, exc) from None
        identity = (signer.issuer, signer.subject)
        if identity in signers:
            run.warnings.append(
                f"bundle {position}: keyless identity {signer.subject[:120]} already counted; "
                "an identity counts once"
            )
            continue
        if signer.spki_der in trusted_keys or any(
            signer.spki_der == s.spki_der or signer.signature == s.signature
            for s in signers.values()
        ):
            # One key or one signature is one signer, whatever certificates it comes with.
            run.warnings.append(
                f"bundle {position}: its certificate key or signature already counts "
                f"(as a trusted key or another identity); {signer.subject[:120]} not counted"
            )
            continue
        signers[identity] = signer
    return list(signers.values())


def _verify_bundle_alone(
    run: _Run,
    bundle: object,
    root: object,
    *,
    artifacts: object,
    digests: object,
    predicate_type: object,
    at: object,
    limits: object,
) -> VerificationResult:
    now, artifact_list, digest_specs, trust_root, index = _request(
        root,
        artifacts=artifacts,
        digests=digests,
        predicate_type=predicate_type,
        at=at,
        limits=limits,
    )
    assert isinstance(limits, Limits)
    if isinstance(bundle, bytearray | memoryview):
        bundle = bytes(bundle)
    if not isinstance(bundle, bytes | str):
        raise _Stop(Code.INVALID_ARGUMENT, "bundle: expected JSON bytes or str")
    from . import bundle_verify  # noqa: PLC0415 - only when bundles are given

    try:
        parsed = bundle_verify.parse_bundle(bundle, limits=limits)
    except VerificationError as exc:
        raise _bundle_stop(None, exc) from None
    if parsed.envelope is not None:
        return _verify(
            run,
            parsed.envelope,
            trust_root,
            bundles=(bundle,),
            artifacts=artifact_list,
            digests=[spec for _, _, spec in digest_specs],
            predicate_type=predicate_type,
            at=now,
            limits=limits,
        )
    if predicate_type is not None:
        raise _Stop(
            Code.PREDICATE_TYPE_MISMATCH,
            "a messageSignature bundle has no Statement, so no predicate type to require",
        )
    if len(artifact_list) + len(digest_specs) != 1:
        raise _Stop(
            Code.INVALID_ARGUMENT,
            "a messageSignature bundle signs one artifact: give exactly one --artifact or "
            "--digest sha256:HEX",
        )
    if artifact_list:
        artifact = artifact_list[0]
        if not isinstance(artifact, str | os.PathLike):
            raise _Stop(Code.INVALID_ARGUMENT, "artifacts: expected file paths")
        label = os.fsdecode(artifact)
        try:
            hex_digest = digest_file(artifact, algorithms=("sha256",))["sha256"]
        except DssesignError as exc:
            raise _Stop(Code.ARTIFACT_UNREADABLE, str(exc)) from None
    else:
        algorithm, hex_digest, label = digest_specs[0]
        if algorithm != "sha256":
            raise _Stop(
                Code.INVALID_ARGUMENT,
                f"digest {label[:80]!r}: a messageSignature bundle signs a sha256 digest",
            )
    digest = bytes.fromhex(hex_digest)
    try:
        if parsed.keyed:
            key = bundle_verify.verify_keyed(
                parsed, [c.public for c in index.candidates], digest=digest
            )
            candidate = index.by_keyid[key.keyid]
            problem = _state_problem(run, trust_root, index, candidate, now)
            if problem is not None:
                raise _Stop(*problem)
            if any(e.predicate_types for e in candidate.entries):
                raise _Stop(
                    Code.PREDICATE_TYPE_NOT_ALLOWED,
                    f"key {candidate.keyid[:16]} may only attest to its predicate types; a "
                    "messageSignature bundle has none",
                )
            run.keys_counted = (candidate.counted,)
            counted_keyid = candidate.keyid
            post_quantum = candidate.post_quantum
        else:
            signer = bundle_verify.verify_keyless(parsed, _keyless_trust(trust_root), digest=digest)
            rule = next((r for r in signer.rules if not r.predicate_types), None)
            if rule is None:
                raise _Stop(
                    Code.PREDICATE_TYPE_NOT_ALLOWED,
                    f"keyless identity {signer.subject[:120]} may only attest to its predicate "
                    "types; a messageSignature bundle has none",
                )
            run.identities_counted = (CountedIdentity(signer.issuer, signer.subject, rule.label),)
            counted_keyid = ""
            post_quantum = False
    except VerificationError as exc:
        raise _bundle_stop(None, exc) from None
    policy = trust_root.policy
    if policy.hybrid == "pq-only" and not post_quantum:
        raise _Stop(Code.HYBRID_POLICY_NOT_MET, "hybrid mode pq-only: the signature is classical")
    if policy.hybrid == "and":
        raise _Stop(
            Code.HYBRID_POLICY_NOT_MET,
            "hybrid mode and: a messageSignature bundle carries one signature, not a classical "
            "and an ML-DSA one",
        )
    if policy.threshold > 1:
        raise _Stop(
            Code.THRESHOLD_NOT_MET,
            f"a messageSignature bundle carries one signature; the threshold is {policy.threshold}",
        )
    missing = [k for k in policy.required_keyids if k != counted_keyid]
    if missing:
        raise _Stop(
            Code.REQUIRED_KEY_MISSING,
            "required key(s) did not count: " + ", ".join(k[:16] for k in missing),
        )
    return VerificationResult(
        predicate_type="",
        statement_type="",
        keys_counted=run.keys_counted,
        subjects_matched=(MatchedSubject(None, f"sha256:{hex_digest}", label),),
        warnings=tuple(run.warnings),
        threshold=policy.threshold,
        payload=b"",
        statement=MappingProxyType({}),
        identities_counted=run.identities_counted,
    )


def _sequence_arg(value: object, name: str) -> tuple[object, ...]:
    if type(value) is tuple:  # the common case, without the ABC checks below
        return value
    if isinstance(value, str | bytes | os.PathLike) or not isinstance(value, Sequence):
        raise _Stop(Code.INVALID_ARGUMENT, f"{name}: expected a sequence of values")
    return tuple(value)


def _digest_args(specs: tuple[object, ...]) -> tuple[tuple[str, str, str], ...]:
    """``alg:hex`` arguments as (algorithm, hex, original); md5 is never accepted."""
    out: list[tuple[str, str, str]] = []
    for spec in specs:
        if not isinstance(spec, str):
            raise _Stop(Code.INVALID_ARGUMENT, "digests: expected strings like sha256:HEX")
        try:
            descriptor = subject_from_digest(spec)
        except InputError as exc:
            raise _Stop(Code.INVALID_ARGUMENT, str(exc)) from None
        ((algorithm, value),) = descriptor.digest.items()
        if algorithm == "md5":
            raise _Stop(Code.INVALID_ARGUMENT, f"digest {spec[:80]!r}: md5 is not accepted")
        out.append((algorithm, value, spec))
    return tuple(out)


def _read_envelope(envelope: object, limits: Limits) -> Envelope:
    """Strict parse; too many signatures or too large is refused before decoding anything."""
    if isinstance(envelope, Envelope):
        return _check_envelope_object(envelope, limits)
    if isinstance(envelope, bytearray | memoryview):
        envelope = bytes(envelope)
    if isinstance(envelope, str):
        try:
            envelope = envelope.encode("utf-8")
        except UnicodeEncodeError:
            raise _Stop(Code.MALFORMED_ENVELOPE, "envelope: not encodable as UTF-8") from None
    if not isinstance(envelope, bytes):
        raise _Stop(Code.INVALID_ARGUMENT, "envelope: expected bytes, str or an Envelope")
    if len(envelope) > limits.max_json_bytes:
        raise _Stop(
            Code.ENVELOPE_TOO_LARGE,
            f"envelope: {len(envelope)} bytes exceed "
            f"{exceeded('max_json_bytes', limits.max_json_bytes)}",
        )
    try:
        obj = loads_strict(envelope, what="envelope", limits=limits, error=EnvelopeError)
    except InputError as exc:
        raise _Stop(Code.MALFORMED_ENVELOPE, str(exc)) from None
    if isinstance(obj, dict):
        signatures = obj.get("signatures")
        if isinstance(signatures, list) and len(signatures) > limits.max_signatures:
            raise _Stop(
                Code.TOO_MANY_SIGNATURES,
                f"envelope: {len(signatures)} signatures exceed "
                f"{exceeded('max_signatures', limits.max_signatures)}",
            )
        payload = obj.get("payload")
        if isinstance(payload, str) and len(payload) > 4 * ((limits.max_payload_bytes + 2) // 3):
            raise _Stop(
                Code.ENVELOPE_TOO_LARGE,
                f"envelope.payload: larger than "
                f"{exceeded('max_payload_bytes', limits.max_payload_bytes)}",
            )
    try:
        return Envelope.from_dict(obj, limits=limits)
    except InputError as exc:
        raise _Stop(Code.MALFORMED_ENVELOPE, str(exc)) from None


def _check_envelope_object(envelope: Envelope, limits: Limits) -> Envelope:
    """An `Envelope` built in memory gets the same bounds as one read from JSON."""
    if not isinstance(envelope.payload, bytes) or not isinstance(envelope.payload_type, str):
        raise _Stop(Code.MALFORMED_ENVELOPE, "envelope: payload must be bytes, payloadType str")
    if not isinstance(envelope.signatures, tuple | list):
        raise _Stop(Code.MALFORMED_ENVELOPE, "envelope: signatures must be a sequence")
    if len(envelope.signatures) > limits.max_signatures:
        raise _Stop(
            Code.TOO_MANY_SIGNATURES,
            f"envelope: {len(envelope.signatures)} signatures exceed "
            f"{exceeded('max_signatures', limits.max_signatures)}",
        )
    if len(envelope.payload) > limits.max_payload_bytes:
        raise _Stop(
            Code.ENVELOPE_TOO_LARGE,
            f"envelope.payload: larger than "
            f"{exceeded('max_payload_bytes', limits.max_payload_bytes)}",
        )
    if len(envelope.payload_type) > limits.max_payload_type_chars:
        raise _Stop(Code.MALFORMED_ENVELOPE, "envelope.payloadType: too long")
    for position, signature in enumerate(envelope.signatures):
        if (
            not isinstance(signature, Signature)
            or not isinstance(signature.sig, bytes)
            or not isinstance(signature.keyid, str)
            or len(signature.sig) > limits.max_signature_bytes
            or len(signature.keyid) > limits.max_keyid_chars
        ):
            raise _Stop(
                Code.MALFORMED_ENVELOPE,
                f"envelope.signatures[{position}]: not a Signature within the limits",
            )
    return envelope


def _accepted_keys(
    run: _Run, index: _Index, signatures: Sequence[Signature], message: bytes
) -> list[_Candidate]:
    """Distinct trusted keys with a valid signature, in first-signature order.

    A keyid naming a trusted key restricts that signature to that key (so a mislabelled
    signature does not count); an empty or unknown keyid is tried against every key not yet
    accepted, within a budget of blind attempts (then skipped: fewer keys count, never more).
    The keyid never decides which key counted: only a verifying signature does.
    """
    accepted: dict[int, _Candidate] = {}
    everyone = index.candidates
    budget = max(_BLIND_ATTEMPTS, 8 * len(everyone))
    for position, signature in enumerate(signatures):
        sig = signature.sig
        size = len(sig)
        named = index.by_keyid.get(signature.keyid) if signature.keyid else None
        if named is not None:
            if id(named) in accepted:
                continue  # that key already counts; a second signature adds nothing
            if named.min_sig <= size <= named.max_sig and named.check(sig, message):
                accepted[id(named)] = named
            else:
                run.warnings.append(
                    f"signature {position}: does not verify under the key its keyid names "
                    f"({named.keyid[:16]})"
                )
            continue
        if signature.keyid:
            run.warnings.append(
                f"signature {position}: keyid {signature.keyid[:24]!r} names no trusted key; "
                "tried against every trusted key"
            )
        for candidate in everyone:
            if id(candidate) in accepted or not candidate.min_sig <= size <= candidate.max_sig:
                continue
            if budget <= 0:
                run.warnings.append(
                    f"signature {position}: skipped, the budget of blind verification "
                    "attempts is spent"
                )
                break
            budget -= 1
            if candidate.check(sig, message):
                accepted[id(candidate)] = candidate
                break
    return list(accepted.values())


def _state_problem(
    run: _Run, root: TrustRoot, index: _Index, candidate: _Candidate, now: datetime
) -> tuple[Code, str] | None:
    """Why `candidate` does not count at `now` (validity, revocation, rotation), or None.

    Windows follow the trust-root model (`TrustedKey.valid_at`, `revoked_at`): validFrom and
    validUntil both inclusive, revoked from the revocation time on. A key listed twice must be
    acceptable under every entry: the stricter reading wins.
    """
    short = candidate.keyid[:16]
    for entry in candidate.entries:
        revocation = entry.revocation
        if revocation is not None and entry.revoked_at(now):
            reason = f" ({revocation.reason})" if revocation.reason else ""
            return Code.KEY_REVOKED, f"key {short} was revoked at {_when(revocation.time)}{reason}"
    broken = _broken_link(root, index, candidate.keyid)
    if broken is not None:
        return (
            Code.ROTATION_UNVERIFIED,
            f"key {short} was introduced by rotation, but the handover "
            f"{broken.from_keyid[:16]} -> {broken.to_keyid[:16]}"
            + (" in its rotation chain" if broken.to_keyid != candidate.keyid else "")
            + " does not verify",
        )
    for event in index.rotations_to.get(candidate.keyid, ()):
        if now < event.time:
            return (
                Code.KEY_NOT_YET_VALID,
                f"key {short} is trusted from its rotation at {_when(event.time)}",
            )
    for event in index.rotations_from.get(candidate.keyid, ()):
        if now > event.transition_deadline:
            return (
                Code.KEY_ROTATED_OUT,
                f"key {short} was rotated to {event.to_keyid[:16]}; its transition ended at "
                f"{_when(event.transition_deadline)}",
            )
    for entry in candidate.entries:
        if not entry.valid_at(now):
            if entry.valid_from is not None and now < entry.valid_from:
                return (
                    Code.KEY_NOT_YET_VALID,
                    f"key {short} is valid from {_when(entry.valid_from)}, after {_when(now)}",
                )
            return (
                Code.KEY_EXPIRED,
                f"key {short} was valid until {_when(entry.valid_until or now)}, before "
                f"{_when(now)}",
            )
        if entry.revocation is not None:
            run.warnings.append(
                f"key {short} is revoked from {_when(entry.revocation.time)}, after the "
                "verification time"
            )
    return None


@dataclass(frozen=True)
class _Exclusion:
    """A trusted key whose signature verified but which does not count, and why."""

    code: Code
    keyid: str
    message: str


def _worst(excluded: Sequence[_Exclusion]) -> tuple[Code, str]:
    ranked = sorted(excluded, key=lambda item: _EXCLUSION_ORDER.index(item.code))
    return ranked[0].code, "; ".join(item.message for item in ranked)


def _read_statement(payload: bytes, limits: Limits) -> dict[str, object]:
    try:
        return parse_statement(payload, allow_v01=True, limits=limits)
    except DssesignError as exc:
        raise _Stop(Code.INVALID_STATEMENT, f"payload: {exc}") from None


def _check_policy(root: TrustRoot, index: _Index) -> None:
    """Refuse a policy that would fail open or can never mean what it says, before any work."""
    policy = root.policy
    if not isinstance(policy, trustroot.Policy):
        raise _Stop(Code.TRUST_ROOT_INVALID, "trust root: policy is not a Policy")
    if policy.hybrid not in _HYBRID_MODES:
        raise _Stop(Code.TRUST_ROOT_INVALID, f"trust root: unknown hybrid mode {policy.hybrid!r}")
    rules: list[tuple[str, object, object]] = [("", policy.threshold, policy.required_keyids)]
    for predicate_type, rule in policy.per_type.items():
        if not isinstance(rule, trustroot.TypePolicy):
            raise _Stop(Code.TRUST_ROOT_INVALID, "trust root: per-type policy is not a TypePolicy")
        rules.append((f" for {predicate_type}", rule.threshold, rule.required_keyids))
    for scope, threshold, required in rules:
        if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
            raise _Stop(
                Code.TRUST_ROOT_INVALID,
                f"trust root: threshold{scope} {threshold!r} must be at least 1",
            )
        if not isinstance(required, tuple | list):
            raise _Stop(Code.TRUST_ROOT_INVALID, f"trust root: required keyids{scope} not a list")
        for keyid in required:
            if keyid not in index.by_keyid:
                raise _Stop(
                    Code.TRUST_ROOT_INVALID,
                    f"trust root: required keyid{scope} {str(keyid)[:16]} is not a trusted key",
                )


def _apply_policy(
    run: _Run,
    root: TrustRoot,
    index: _Index,
    *,
    predicate_type: str,
    eligible: list[_Candidate],
    excluded: list[_Exclusion],
    identities: Sequence[CountedIdentity] = (),
) -> int:
    """Threshold of distinct keys and keyless identities, required keyids, hybrid mode.

    A keyless identity (its certificate key is ECDSA) counts like one classical key: toward
    the threshold in modes off/or/and, not at all in pq-only. Sets `run.keys_counted` and
    `run.identities_counted`.
    """
    policy = root.policy
    per_type = policy.per_type.get(predicate_type) if policy.per_type else None
    threshold = per_type.threshold if per_type is not None else policy.threshold
    required = per_type.required_keyids if per_type is not None else policy.required_keyids
    hybrid = policy.hybrid

    classical = [c for c in eligible if not c.post_quantum]
    quantum = [c for c in eligible if c.post_quantum]
    if hybrid == "pq-only":
        counted, toward = quantum, quantum
        if classical:
            run.warnings.append(
                f"hybrid mode pq-only: {len(classical)} classical signature(s) not counted"
            )
    elif hybrid == "and":
        counted, toward = classical + quantum, classical
    else:
        counted, toward = eligible, eligible
    run.keys_counted = tuple(c.counted for c in counted)
    signers = tuple(identities) if hybrid != "pq-only" else ()
    if identities and not signers:
        run.warnings.append(
            f"hybrid mode pq-only: {len(identities)} keyless identity signature(s) not counted"
        )
    run.identities_counted = signers
    total = len(toward) + len(signers)
    who = "distinct trusted key(s)" + (" and keyless identities" if signers else "")

    scope = f" for {predicate_type}" if per_type is not None else ""
    if total < threshold:
        if hybrid in ("and", "pq-only") and len(eligible) + len(identities) >= threshold:
            kind = "classical" if hybrid == "and" else "ML-DSA"
            raise _Stop(
                Code.HYBRID_POLICY_NOT_MET,
                f"hybrid mode {hybrid}: {total} distinct {kind} key(s) counted, "
                f"threshold{scope} is {threshold}",
            )
        if excluded:
            code, detail = _worst(excluded)
            raise _Stop(
                code,
                f"{total} {who} counted, threshold{scope} is {threshold}: {detail}",
            )
        raise _Stop(
            Code.THRESHOLD_NOT_MET,
            f"{total} {who} counted, threshold{scope} is {threshold}",
        )
    if hybrid == "and" and not quantum:
        raise _Stop(
            Code.HYBRID_POLICY_NOT_MET,
            "hybrid mode and: no ML-DSA signature from a trusted key verifies",
        )
    counted_ids = {c.keyid for c in counted}
    missing = [k for k in required if k not in counted_ids]
    if missing:
        # If the required key signed but was dropped, its reason is the more useful code.
        reasons = [item for item in excluded if item.keyid in missing]
        code, detail = _worst(reasons) if reasons else (Code.REQUIRED_KEY_MISSING, "")
        raise _Stop(
            code,
            "required key(s) did not count: "
            + ", ".join(k[:16] for k in missing)
            + (f": {detail}" if detail else ""),
        )
    return threshold


def _match_subjects(
    subjects: list[Any],
    artifacts: tuple[object, ...],
    digests: tuple[tuple[str, str, str], ...],
) -> tuple[MatchedSubject, ...]:
    """Each artifact and digest must equal some subject's digest (constant-time compare)."""
    wanted: list[tuple[str, str, str]] = list(digests)
    for artifact in artifacts:
        if not isinstance(artifact, str | os.PathLike):
            raise _Stop(Code.INVALID_ARGUMENT, "artifacts: expected file paths")
        label = os.fsdecode(artifact)
        try:
            value = digest_file(artifact, algorithms=("sha256",))["sha256"]
        except DssesignError as exc:
            raise _Stop(Code.ARTIFACT_UNREADABLE, str(exc)) from None
        wanted.append(("sha256", value, label))
    matched: list[MatchedSubject] = []
    for algorithm, value, label in wanted:
        expected = value.encode("ascii")
        hits = [
            subject
            for subject in subjects
            if isinstance(subject.get("digest"), dict)
            and isinstance(subject["digest"].get(algorithm), str)
            and hmac.compare_digest(
                subject["digest"][algorithm].encode("utf-8", "surrogatepass"), expected
            )
        ]
        if not hits:
            raise _Stop(
                Code.SUBJECT_MISMATCH,
                f"{label[:200]}: {algorithm}:{value} matches no subject of the Statement",
            )
        matched.extend(
            MatchedSubject(
                name=subject.get("name") if isinstance(subject.get("name"), str) else None,
                digest=f"{algorithm}:{value}",
                artifact=label,
            )
            for subject in hits
        )
    return tuple(matched)
