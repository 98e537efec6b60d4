"""Sign one payload with several profiles at once into one multi-signature DSSE envelope."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from .._internal.workers import Workers
from ..codes import SignFailure
from ..core.dsse import Envelope, Signature, pae
from ..errors import ConfigError, SigningError
from .bundles import is_keyless
from .certified import CertifiedSigner
from .countersign import check_countersigners
from .signer import Signer

if TYPE_CHECKING:
    from .timestamps import Timestamping


@dataclass(frozen=True)
class SigningContext:
    """Who asked for one signing operation and about what; copied into every record of it.

    Holds no secret: digests and names only. `operation_id` is a fresh UUID unless given.
    """

    operation_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    actor: str | None = None
    tenant: str | None = None
    #: The Statement's subject digests, e.g. ({"sha256": "ab12..."},).
    subject_digests: tuple[Mapping[str, str], ...] = ()
    predicate_type: str | None = None
    #: False when the predicate was signed without its schema check (attest --no-validate).
    predicate_validated: bool = True
    #: The audit record's ``event``: "sign", or "countersign" for signatures appended later,
    #: so a second person's signature shows as its own event in the log.
    event: str = "sign"


@dataclass(frozen=True)
class SigningRecord:
    """What happened for one signer on one payload; holds no secret and no signature bytes."""

    time: datetime
    keyid: str
    algorithm: str
    reference: str
    payload_type: str
    payload_sha256: str
    ok: bool
    duration_seconds: float
    signature_sha256: str | None = None
    error: str | None = None
    #: Why it failed, as a stable code (`codes.SignFailure`, or ``exception:<Type>``), set where
    #: the failure happened: never recovered from `error`'s text.
    error_code: str | None = None
    #: The operation this record belongs to (one per `sign` call, shared by its N records).
    context: SigningContext | None = None
    #: The key can leave its device (Vault `allow-exportable`, PKCS#11 `allow-extractable`).
    exportable: bool = False
    #: The RFC 3161 timestamps the signature went out with: TSA URL, time and serial each.
    timestamps: tuple[Mapping[str, str], ...] = ()
    #: SHA-256 of the organisation certificate (DER) the key signed under (`--certificate`).
    certificate_sha256: str | None = None


RecordHook = Callable[[SigningRecord], None]

#: Threads for signers that wait on a device or the network, shared by every instance.
_WORKERS = Workers(name="dssesign-sign")


@dataclass(frozen=True)
class SigningResult:
    """The envelope and, for each signature this operation made, the signer that made it.

    Callers that emit more than the envelope (Sigstore bundles, per-signature summaries) need
    the signer behind each signature: a keyless signer holds the bundle for its signature, and
    its envelope keyid is "" so the keyid cannot find it.

    After `countersign`, `envelope` is the whole envelope (earlier signatures first) while
    `signers` and `timestamps` describe only the appended signatures, which start at `first`:
    `signers[i]` made `envelope.signatures[first + i]`. Build bundles from `made()` (only the
    new signatures); the earlier signatures' bundles are wherever their signing put them.
    """

    envelope: Envelope
    signers: tuple[Signer, ...]
    #: Each made signature's verified RFC 3161 tokens (DER), in order; empty without --tsa.
    timestamps: tuple[tuple[bytes, ...], ...] = ()
    #: Index in `envelope.signatures` of the first signature this operation made.
    first: int = 0

    def pairs(self) -> tuple[tuple[Signer, Signature], ...]:
        """Each signature this operation made with the signer that made it, in envelope order."""
        made = self.envelope.signatures[self.first :]
        return tuple(zip(self.signers, made, strict=True))

    def made(self) -> Envelope:
        """The envelope with only the signatures this operation made (what `bundles_for` takes)."""
        if not self.first:
            return self.envelope
        return dataclasses.replace(self.envelope, signatures=self.envelope.signatures[self.first :])


def envelope_keyid(signer: Signer) -> str:
    """The keyid a signer's signature carries in the envelope.

    A certificate-bound signer (Sigstore keyless: it has `bundle_for`) signs with an ephemeral
    key no trust root lists, so its keyid is "" as cosign writes it; the verifier finds its
    identity in the bundle's certificate. Every other signer uses its key's keyid.
    """
    return "" if is_keyless(signer) else signer.keyid


@dataclass
class _Outcome:
    signature: bytes | None = None
    error: str | None = None
    code: str | None = None
    duration: float = 0.0
    tokens: tuple[bytes, ...] = ()
    stamps: tuple[Mapping[str, str], ...] = ()


class MultiProfileSigner:
    """Signs with N signers concurrently; emits only signatures that verify, in the given order.

    `threshold=None` is the `all` policy; an integer k needs at least k signatures.
    In-process signers (software keys) run on the caller's thread; the others (HSM, KMS,
    keyless) each run on a pooled daemon thread and get `timeout` seconds.
    """

    def __init__(
        self,
        signers: Sequence[Signer],
        *,
        threshold: int | None = None,
        timeout: float = 60.0,
        hooks: Sequence[RecordHook] = (),
        audit: RecordHook | None = None,
        timestamps: Timestamping | None = None,
    ) -> None:
        if not signers:
            raise ConfigError("no signers given")
        seen: dict[bytes, int] = {}
        for index, signer in enumerate(signers):
            spki = signer.public_key.spki_der
            if spki in seen:
                raise ConfigError(
                    f"the same key was given twice (signers {seen[spki] + 1} and {index + 1}, "
                    f"keyid {signer.keyid})"
                )
            seen[spki] = index
            if signer.keyid != signer.public_key.keyid:
                raise ConfigError(
                    f"signer {index + 1} reports keyid {signer.keyid} for another key"
                )
        if threshold is not None and not 1 <= threshold <= len(signers):
            raise ConfigError(f"threshold {threshold} must be between 1 and {len(signers)}")
        if timeout <= 0:
            raise ConfigError("timeout must be positive")
        self._signers = tuple(signers)
        # `is_keyless` is a runtime Protocol check that cost about an Ed25519 signature when it
        # ran per signature; what a signer is does not change, so it runs once here.
        self._keyids = tuple(envelope_keyid(signer) for signer in self._signers)
        self._threshold = len(signers) if threshold is None else threshold
        self._timeout = timeout
        self._timestamps = timestamps
        # The audit sink (e.g. dssesign.audit.AuditLog) runs first; like any hook it fails closed.
        self._hooks = ([audit] if audit is not None else []) + list(hooks)

    @property
    def signers(self) -> tuple[Signer, ...]:
        """The signers as given, in order, including any that fail to sign."""
        return self._signers

    @property
    def threshold(self) -> int:
        """How many signatures `sign` needs: the number of signers under the `all` policy."""
        return self._threshold

    def add_hook(self, hook: RecordHook) -> None:
        """Pass every later record to `hook` too; a hook that raises fails the operation."""
        self._hooks.append(hook)

    def sign(
        self, payload: bytes, payload_type: str, *, context: SigningContext | None = None
    ) -> Envelope:
        """Return the envelope, or raise one SigningError naming every signer that failed.

        `context` (operation id, actor, tenant, subjects) goes into every hook record; without
        one, each call gets a fresh operation id.
        """
        return self.sign_detailed(payload, payload_type, context=context).envelope

    def sign_detailed(
        self, payload: bytes, payload_type: str, *, context: SigningContext | None = None
    ) -> SigningResult:
        """`sign`, also naming the signer behind each emitted signature."""
        message = pae(payload_type, payload)
        outcomes = [_Outcome() for _ in self._signers]
        waiting: list[tuple[int, threading.Event]] = []
        deadline = time.monotonic() + self._timeout  # each backend's clock starts now
        for index, signer in enumerate(self._signers):
            if not getattr(signer, "in_process", False):
                done = threading.Event()
                _WORKERS.submit(functools.partial(_run, signer, message, outcomes[index], done))
                waiting.append((index, done))
        for index, signer in enumerate(self._signers):
            if getattr(signer, "in_process", False):
                _run(signer, message, outcomes[index])
        for index, done in waiting:
            if not done.wait(max(0.0, deadline - time.monotonic())):
                # The worker may still finish later; it writes to the outcome replaced here.
                outcomes[index] = _Outcome(
                    error=f"timed out after {self._timeout:g}s", code=SignFailure.TIMEOUT
                )
        if self._timestamps is not None:
            self._stamp(self._timestamps, outcomes)
        return self._finish(payload, payload_type, outcomes, context)

    def countersign(
        self, envelope: Envelope, *, context: SigningContext | None = None
    ) -> SigningResult:
        """Append this signer's signatures to `envelope`: dual control, one person at a time.

        The payload and payloadType are signed exactly as they are (never re-encoded) and the
        earlier signatures stay, in order. A key that already signed is refused before anything
        is signed (`countersign.check_countersigners`). The result describes only the new
        signatures (see `SigningResult`); its audit records are "countersign" events.
        """
        check_countersigners(envelope, self._signers, self._keyids)
        context = dataclasses.replace(context or SigningContext(), event="countersign")
        added = self.sign_detailed(envelope.payload, envelope.payload_type, context=context)
        whole = dataclasses.replace(
            envelope, signatures=envelope.signatures + added.envelope.signatures
        )
        return dataclasses.replace(added, envelope=whole, first=len(envelope.signatures))

    def _stamp(self, timestamping: Timestamping, outcomes: list[_Outcome]) -> None:
        """Every verified signature of a keyed signer gets its tokens, all TSAs at once.

        A signature whose tokens do not all come back verified fails like a signer that failed:
        it is never emitted with a token that did not verify, or without one. Keyless signatures
        carry their own time evidence (the transparency log's) and are left as they are.
        """
        todo = [
            (outcome, outcome.signature)
            for outcome, keyid in zip(outcomes, self._keyids, strict=True)
            if outcome.signature is not None and keyid
        ]
        if not todo:
            return
        answers = timestamping.stamp([signature for _, signature in todo])
        for (outcome, _), answer in zip(todo, answers, strict=True):
            if isinstance(answer, SigningError):
                outcome.signature = None
                outcome.error = f"timestamp: {answer}"
                outcome.code = SignFailure.TIMESTAMP
            else:
                outcome.tokens = answer
                outcome.stamps = timestamping.describe(answer)

    def _finish(
        self,
        payload: bytes,
        payload_type: str,
        outcomes: list[_Outcome],
        context: SigningContext | None,
    ) -> SigningResult:
        pairs = list(zip(self._signers, outcomes, strict=True))
        if self._hooks:
            context = context if context is not None else SigningContext()
            for record in _records(pairs, payload, payload_type, context):
                for hook in self._hooks:
                    try:
                        hook(record)
                    except Exception as exc:
                        # An audit trail that cannot record must stop the signature going out.
                        raise SigningError(f"signing record hook failed: {exc}") from exc
        signed = [
            (signer, keyid, outcome)
            for (signer, outcome), keyid in zip(pairs, self._keyids, strict=True)
            if outcome.signature is not None
        ]
        signatures = tuple(
            Signature(sig=outcome.signature, keyid=keyid)
            for _, keyid, outcome in signed
            if outcome.signature is not None
        )
        if len(signatures) < self._threshold:
            failures = "; ".join(
                f"{_describe(signer)} ({signer.keyid[:12]}): {outcome.error}"
                for signer, outcome in pairs
                if outcome.signature is None
            )
            policy = (
                "all" if self._threshold == len(self._signers) else f"at least {self._threshold}"
            )
            raise SigningError(
                f"signing policy '{policy}' not met: {len(signatures)} of {len(self._signers)} "
                f"signed; {failures}"
            )
        envelope = Envelope(payload=payload, payload_type=payload_type, signatures=signatures)
        return SigningResult(
            envelope=envelope,
            signers=tuple(signer for signer, _, _ in signed),
            timestamps=(
                tuple(outcome.tokens for _, _, outcome in signed)
                if self._timestamps is not None
                else ()
            ),
        )


def _records(
    pairs: list[tuple[Signer, _Outcome]],
    payload: bytes,
    payload_type: str,
    context: SigningContext,
) -> list[SigningRecord]:
    payload_sha256 = hashlib.sha256(payload).hexdigest()
    now = datetime.now(UTC)
    return [
        SigningRecord(
            time=now,
            keyid=signer.keyid,
            algorithm=signer.algorithm.name,
            reference=_describe(signer),
            payload_type=payload_type,
            payload_sha256=payload_sha256,
            ok=outcome.signature is not None,
            duration_seconds=outcome.duration,
            signature_sha256=(
                hashlib.sha256(outcome.signature).hexdigest() if outcome.signature else None
            ),
            error=outcome.error,
            error_code=outcome.code,
            context=context,
            exportable=is_exportable(signer),
            timestamps=outcome.stamps,
            certificate_sha256=(
                signer.fingerprint if isinstance(signer, CertifiedSigner) else None
            ),
        )
        for signer, outcome in pairs
    ]


def _run(
    signer: Signer, message: bytes, outcome: _Outcome, done: threading.Event | None = None
) -> None:
    start = time.perf_counter()
    try:
        signature = signer.sign(message)
        if not isinstance(signature, bytes):
            outcome.error = f"backend returned {type(signature).__name__}, not bytes"
            outcome.code = SignFailure.BAD_OUTPUT
        elif not signer.public_key.verify(signature, message):
            # A faulty backend (or a wrong key behind a reference) never reaches the envelope.
            outcome.error = "produced a signature that does not verify with its public key"
            outcome.code = SignFailure.INVALID_SIGNATURE
        else:
            outcome.signature = signature
    except Exception as exc:
        outcome.error = _one_line(exc)
        outcome.code = f"exception:{type(exc).__name__}"
    finally:
        outcome.duration = time.perf_counter() - start
        if done is not None:
            done.set()


def is_exportable(signer: object) -> bool:
    """A signer whose private key can leave its device: the profile sets `exportable = True`
    (a Vault key used with `allow-exportable=true`, a PKCS#11 key with `allow-extractable`)."""
    return getattr(signer, "exportable", False) is True


def _describe(signer: Signer) -> str:
    reference = getattr(signer, "reference", None)
    return reference if isinstance(reference, str) else type(signer).__name__


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
