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
5. key state (validity window with both ends inclusive and revocation from its time on, as
   `trustroot.TrustedKey` defines them; rotation handovers via `trustroot.verify_handover`) at
   the verification time, or, for a signature whose keyed bundle carries RFC 3161 timestamps
   (verified in step 4), at every token time; the payload is parsed only if a key valid at
   its time signed;
6. the Statement (v1, or v0.1 as cosign's ``attest-blob`` writes it), the requested
   predicateType, and each key's allowed predicate types;
7. the policy: the threshold counts distinct public keys (SPKI DER), never signatures or keyid
   strings, plus distinct keyless identities (issuer + subject); required keyids; the hybrid
   post-quantum mode; the roles it requires (`_roles`: each counts the distinct keys and
   identities of step 7 that belong to it, a rotated-in key in its predecessor's roles);
8. artifacts and digests, last, so hashing large files is only spent on a valid attestation.

Every failure is one `VerificationError` with a stable `code` (see `CODES`); any other
exception inside is turned into code ``INTERNAL``, so no input can crash a caller into
accepting.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from .._internal.text import clip, escape_controls
from ..codes import Code
from ..core.dsse import Envelope, pae
from ..errors import VerificationError
from ..intoto.statement import PAYLOAD_TYPE, STATEMENT_TYPE_V01
from ..limits import DEFAULT_LIMITS, Limits
from ..trust import TrustRoot
from ._bundled import _read_bundle, _verify_bundles, _verify_message_bundle
from ._index import _Candidate, _Index, _index_for
from ._inputs import _digest_args, _read_envelope, _read_statement, _sequence_arg
from ._keys import _accepted_keys, _Exclusion, _state_at_times, _state_problem, _worst
from ._policy import _apply_policy, _check_policy, _match_subjects
from ._run import _describe, _failure, _Run, _signature_reports, _Stop, _when
from .result import CountedIdentity, VerificationFailure, VerificationResult

if TYPE_CHECKING:
    from ..timestamp.verify import VerifiedTime
    from ._x509 import CertificateSigner
    from .bundles import KeylessSigner

    _Signer = KeylessSigner | CertificateSigner

__all__ = ["verify", "verify_bundle"]


def verify(
    envelope: bytes | str | Envelope,
    trust_root: TrustRoot,
    *,
    bundles: Sequence[bytes | str] = (),
    artifacts: Sequence[str | os.PathLike[str]] = (),
    digests: Sequence[str] = (),
    predicate_type: str | None = None,
    at: datetime | None = None,
    require_timestamp: bool = False,
    allow_stale_crl: bool = False,
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
    `predicate_type`, if given, must equal the Statement's. A keyed bundle's RFC 3161
    timestamps (verified against the trust root's timestamp authorities) make its signature's
    key state judged at the token times instead of `at`; `require_timestamp` (or the trust
    root's policy) refuses a counted key whose signature has none (TIMESTAMP_REQUIRED). No other
    exception type escapes.

    Roles the policy requires (`TrustRoot.roles`) must each be met by distinct counted keys
    and identities (ROLE_POLICY_NOT_MET). The result, and a failure (`failure_report`), list
    every signature and every role (`signatures`, `roles`).

    A bundle carrying a certificate from the trust root's organisation PKI (`pki`) counts as
    its certificate identity, its chain judged at its timestamp (else `at` / now);
    `allow_stale_crl` accepts a carried CRL whose nextUpdate is before that time.
    """
    run = _Run(time_source="now" if at is None else "at", allow_stale_crl=allow_stale_crl is True)
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
            require_timestamp=require_timestamp,
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
    require_timestamp: bool = False,
    allow_stale_crl: bool = False,
    limits: Limits = DEFAULT_LIMITS,
) -> VerificationResult:
    """Verify a Sigstore bundle on its own (``dssesign verify BUNDLE``).

    A dsseEnvelope bundle is an envelope of one signature: `verify(envelope, bundles=[bundle])`.
    A messageSignature bundle signs one artifact: exactly one of `artifacts` / `digests`
    (``sha256:HEX``) names it; its SHA-256 must equal the bundle's messageDigest and the
    signature must verify over it. There is no Statement, so no predicate type: signers whose
    trust is limited to predicate types do not count, and `predicate_type` fails.
    """
    run = _Run(time_source="now" if at is None else "at", allow_stale_crl=allow_stale_crl is True)
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
            require_timestamp=require_timestamp,
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
    require_timestamp: object = False,
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
    if not isinstance(require_timestamp, bool):
        raise _Stop(Code.INVALID_ARGUMENT, "require_timestamp: expected a bool")
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
    identities, times = _verify_bundles(
        run, root, index, parsed, bundle_list, now=now, limits=limits
    )
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
        times=times,
        require_timestamp=require_timestamp,
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
    times: Mapping[bytes, tuple[VerifiedTime, ...]],
    require_timestamp: bool,
    predicate_type: object,
    artifact_list: tuple[object, ...],
    digest_specs: tuple[tuple[str, str, str], ...],
    limits: Limits,
) -> VerificationResult:
    """Steps 5-8, once signatures (keys and keyless bundles) have verified over the payload."""
    # 5. Key state: at its signature's verified timestamp times if it has any, else at the
    # verification time; parse only what a valid key or identity signed.
    excluded: list[_Exclusion] = []
    valid: list[_Candidate] = []
    signed_at: dict[str, datetime] = {}
    for candidate in accepted:
        stamped = times.get(run.signatures[candidate.keyid], ())
        if stamped:
            moments = [t.time for t in stamped]
            reason = _state_at_times(run, root, index, candidate, moments)
            signed_at[candidate.keyid] = min(moments)
        else:
            reason = _state_problem(run, root, index, candidate, now)
        if reason is None:
            valid.append(candidate)
        else:
            excluded.append(_Exclusion(reason[0], candidate.keyid, reason[1]))
            run.excluded[candidate.keyid] = reason[0]
            run.warnings.append(f"not counted: {reason[1]}")
    run.signed_at = signed_at
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
    needs_time = require_timestamp or root.policy.for_type(actual_type).require_timestamp
    eligible: list[_Candidate] = []
    for candidate in valid:
        if not all(
            not e.predicate_types or actual_type in e.predicate_types for e in candidate.entries
        ):
            message = f"key {candidate.keyid[:16]} may not attest to {actual_type}"
            excluded.append(_Exclusion(Code.PREDICATE_TYPE_NOT_ALLOWED, candidate.keyid, message))
            run.excluded[candidate.keyid] = Code.PREDICATE_TYPE_NOT_ALLOWED
            run.warnings.append(f"not counted: {message}")
        elif needs_time and candidate.keyid not in signed_at:
            message = (
                f"key {candidate.keyid[:16]}: its signature carries no verified RFC 3161 "
                "timestamp, which "
                + ("--require-timestamp" if require_timestamp else "the trust root's policy")
                + " requires"
            )
            excluded.append(_Exclusion(Code.TIMESTAMP_REQUIRED, candidate.keyid, message))
            run.excluded[candidate.keyid] = Code.TIMESTAMP_REQUIRED
            run.warnings.append(f"not counted: {message}")
        else:
            eligible.append(candidate)
    signers: list[CountedIdentity] = []
    for signer in identities:
        allowed = [r for r in signer.rules if r.allows(actual_type)]
        who = (signer.issuer, signer.subject)
        if allowed and needs_time and run.keyless_time.get(who) not in ("rfc3161", "tlog"):
            message = (
                f"certificate identity {clip(escape_controls(signer.subject), 120)}: its signature "
                "carries no verified "
                "RFC 3161 timestamp, which "
                + ("--require-timestamp" if require_timestamp else "the trust root's policy")
                + " requires"
            )
            excluded.append(_Exclusion(Code.TIMESTAMP_REQUIRED, "", message))
            run.identities_excluded[who] = Code.TIMESTAMP_REQUIRED
            run.warnings.append(f"not counted: {message}")
        elif allowed:
            kind: Literal["keyless", "certificate"] = (
                "certificate" if hasattr(signer, "signed_at") else "keyless"
            )
            signers.append(
                CountedIdentity(signer.issuer, signer.subject, allowed[0].label, kind=kind)
            )
            run.identity_names[signer.issuer, signer.subject] = tuple(
                r.name for r in allowed if r.name is not None
            )
        else:
            shown = clip(escape_controls(signer.subject), 120)
            message = f"identity {shown} may not attest to {escape_controls(actual_type)}"
            excluded.append(_Exclusion(Code.PREDICATE_TYPE_NOT_ALLOWED, "", message))
            run.identities_excluded[signer.issuer, signer.subject] = Code.PREDICATE_TYPE_NOT_ALLOWED
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
    if actual_type == VSA_TYPE:
        _check_vsa_passed(statement)

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
        signatures=_signature_reports(run, None),
        roles=dict(run.roles),
    )


#: The SLSA VSA v1 predicate type (`intoto.predicates.VSA_URI`; not imported from there:
#: the verifier loads no schema machinery).
VSA_TYPE = "https://slsa.dev/verification_summary/v1"


def _check_vsa_passed(statement: Mapping[str, Any]) -> None:
    """An authentic verification summary that does not say PASSED is a refusal, never an OK:
    a gate that checks `verify --type vsa` must not admit what the verifier failed."""
    predicate = statement.get("predicate")
    verdict = predicate.get("verificationResult") if isinstance(predicate, Mapping) else None
    if verdict != "PASSED":
        shown = clip(escape_controls(repr(verdict)), 40)
        raise _Stop(
            Code.VSA_NOT_PASSED,
            f"the verification summary is authentic but its verificationResult is {shown}, "
            "not PASSED",
        )


def _verify_bundle_alone(
    run: _Run,
    bundle: object,
    root: object,
    *,
    artifacts: object,
    digests: object,
    predicate_type: object,
    at: object,
    require_timestamp: object = False,
    limits: object,
) -> VerificationResult:
    """A dsseEnvelope bundle is `_verify` of its envelope; a messageSignature one signs one file."""
    now, artifact_list, digest_specs, trust_root, index = _request(
        root,
        artifacts=artifacts,
        digests=digests,
        predicate_type=predicate_type,
        at=at,
        limits=limits,
    )
    assert isinstance(limits, Limits)
    bundle, parsed = _read_bundle(bundle, limits)
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
            require_timestamp=require_timestamp,
            limits=limits,
        )
    if not isinstance(require_timestamp, bool):
        raise _Stop(Code.INVALID_ARGUMENT, "require_timestamp: expected a bool")
    return _verify_message_bundle(
        run,
        parsed,
        trust_root,
        index,
        now=now,
        artifact_list=artifact_list,
        digest_specs=digest_specs,
        predicate_type=predicate_type,
        require_timestamp=require_timestamp,
    )
