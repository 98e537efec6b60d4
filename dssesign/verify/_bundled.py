"""Sigstore bundles: those given with an envelope, and a messageSignature bundle given alone.

`.bundles` (parsing, keyed and keyless checks) is imported only when a bundle is given.
"""

from __future__ import annotations

import dataclasses
import os
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING

from .. import trust as trustroot
from .._internal.text import clip, escape_controls
from ..codes import Code
from ..core.dsse import Envelope
from ..errors import DssesignError, VerificationError
from ..intoto.subjects import digest_file
from ..limits import Limits
from ..trust import SigstoreTrust, TrustRoot
from ._index import _Index
from ._keys import _state_at_times, _state_problem
from ._roles import _evaluate_roles
from ._run import _Run, _signature_reports, _Stop
from .result import CountedIdentity, MatchedSubject, VerificationResult

if TYPE_CHECKING:
    from ..timestamp.verify import VerifiedTime
    from ._x509 import CertificateSigner
    from .bundles import KeylessSigner, ParsedBundle

    _Signer = KeylessSigner | CertificateSigner


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
    now: datetime,
    limits: Limits,
) -> tuple[list[_Signer], dict[bytes, tuple[VerifiedTime, ...]]]:
    """Every bundle must belong to this envelope and verify; keyless signers, once each.

    Belonging: the bundle's DSSE payload and payloadType are the envelope's, byte for byte,
    and its signature is one of the envelope's signatures (a bundle for any other signature
    is refused, not ignored). A keyed bundle must verify under a trusted key (its key counts
    through the envelope's signature, once); a keyless bundle is verified offline against the
    trust root's Sigstore trusted root and identity rules.

    A keyed bundle's RFC 3161 tokens must each verify against the trust root's timestamp
    authorities (a bad token is an error, never skipped); the result maps that signature to its
    verified times. Keyless bundles' timestamps are sigstore-python's to judge.
    """
    if not bundles:
        return [], {}
    from . import bundles as bundle_verify  # noqa: PLC0415 - only when bundles are given

    signatures = {s.sig for s in envelope.signatures}
    # Where each signature sits in the envelope (the report's entries); a repeat is a duplicate.
    positions: dict[bytes, list[int]] = {}
    for position, entry in enumerate(envelope.signatures):
        positions.setdefault(entry.sig, []).append(position)
    trusted_keys = {c.public.spki_der for c in index.candidates}
    signers: dict[tuple[str, str], _Signer] = {}
    times: dict[bytes, tuple[VerifiedTime, ...]] = {}
    tokens_of: dict[bytes, set[bytes]] = {}
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
                if bundle.timestamps:
                    verified = _bounded_times(root, bundle, tokens_of, now)
                    times[bundle.signature] = times.get(bundle.signature, ()) + verified
                continue
            signer: _Signer
            if _judged_by_pki(bundle, root):
                signer = _verify_certified(run, root, bundle, tokens_of, now)
            else:
                signer = bundle_verify.verify_keyless(bundle, _keyless_trust(root))
        except VerificationError as exc:
            raise _bundle_stop(position, exc) from None
        identity = (signer.issuer, signer.subject)
        first, *repeats = positions[bundle.signature]  # the bundle's signature is one of them
        shown = clip(escape_controls(signer.subject), 120)
        if identity in signers or (
            # One certificate subject is one signer, whichever CA or rule it came through:
            # two certificates of one person (sibling CAs, rules in any order) count once.
            _is_certified(signer)
            and any(_is_certified(s) and s.subject == signer.subject for s in signers.values())
        ):
            run.warnings.append(
                f"bundle {position}: identity {shown} already counted; an identity counts once"
            )
            _note_keyless(run, identity, [first, *repeats], duplicate=True)
            continue
        if signer.spki_der in trusted_keys or any(
            signer.spki_der == s.spki_der or signer.signature == s.signature
            for s in signers.values()
        ):
            # One key or one signature is one signer, whatever certificates it comes with.
            run.warnings.append(
                f"bundle {position}: its certificate key or signature already counts "
                f"(as a trusted key or another identity); {shown} not counted"
            )
            continue
        signers[identity] = signer
        run.keyless_time[identity] = (
            "rfc3161"
            if bundle.timestamps
            else "tlog"
            if not _is_certified(signer)
            else run.time_source
        )
        _note_keyless(run, identity, [first], duplicate=False)
        _note_keyless(run, identity, repeats, duplicate=True)
    return list(signers.values()), times


def _bounded_times(
    root: TrustRoot, bundle: ParsedBundle, tokens_of: dict[bytes, set[bytes]], now: datetime
) -> tuple[VerifiedTime, ...]:
    """The bundle's verified token times, bounded per signature across all its bundles (not per
    bundle: 64 bundles of 32 replayed tokens would otherwise cost 2,048 CMS checks)."""
    from ..timestamp.verify import MAX_TIMESTAMPS  # noqa: PLC0415 - only with timestamps

    earlier = tokens_of.setdefault(bundle.signature, set())
    if earlier & set(bundle.timestamps) or (len(earlier) + len(bundle.timestamps) > MAX_TIMESTAMPS):
        raise VerificationError(
            Code.TOO_MANY_TIMESTAMPS,
            f"bundle: its signature's timestamps, over all its bundles, repeat "
            f"a token or exceed {MAX_TIMESTAMPS}",
        )
    earlier.update(bundle.timestamps)
    return _verified_times(root, bundle.timestamps, bundle.signature, now)


def _judged_by_pki(bundle: ParsedBundle, root: TrustRoot) -> bool:
    """A certificate bundle is the organisation PKI's when the trust root has one and either no
    Sigstore trust, or the leaf names one of its CAs as issuer, or it has no log entry (a
    Fulcio certificate always comes with one)."""
    if bundle.keyed or not bundle.certificates or root.pki is None:
        return False
    if root.sigstore is None or not bundle.tlog_kinds:
        return True
    from cryptography import x509  # noqa: PLC0415 - only for certificate bundles

    try:
        issuer = x509.load_der_x509_certificate(bundle.certificates[0]).issuer
    except ValueError:
        return True  # refused as malformed by the PKI path, with its code
    return any(a.certificate.subject == issuer for a in root.pki.authorities)


def _is_certified(signer: object) -> bool:
    return hasattr(signer, "signed_at")


def _verify_certified(
    run: _Run,
    root: TrustRoot,
    bundle: ParsedBundle,
    tokens_of: dict[bytes, set[bytes]],
    now: datetime,
) -> CertificateSigner:
    """A certificate bundle of the organisation PKI, judged at its earliest verified token
    time (its RFC 3161 timestamps, checked against the trust root's TSAs) or else `now`."""
    from ._x509 import verify_certificate  # noqa: PLC0415 - only for certificate bundles

    assert root.pki is not None
    signed_at = now
    if bundle.timestamps:
        signed_at = min(t.time for t in _bounded_times(root, bundle, tokens_of, now))
    return verify_certificate(
        bundle, root.pki, signed_at=signed_at, allow_stale_crl=run.allow_stale_crl
    )


def _note_keyless(
    run: _Run, identity: tuple[str, str], positions: list[int], *, duplicate: bool
) -> None:
    """Report-only: these envelope signatures are the keyless identity's (unless another
    signer already claimed them)."""
    for position in positions:
        if position in run.verified_by or position in run.keyless:
            continue
        run.keyless[position] = identity
        if duplicate:
            run.duplicates.add(position)


def _verified_times(
    root: TrustRoot, tokens: tuple[bytes, ...], signature: bytes, now: datetime
) -> tuple[VerifiedTime, ...]:
    """The tokens' verified times, or the VerificationError of the first one that fails."""
    from ..timestamp.authority import sigstore_authorities  # noqa: PLC0415 - as above
    from ..timestamp.verify import verify_tokens  # noqa: PLC0415 - only for timestamped bundles

    authorities = root.timestamp_authorities
    if root.sigstore is not None:
        try:
            keyless = root.keyless
            if keyless is not None:
                authorities += sigstore_authorities(keyless.trusted_root)
        except trustroot.TrustRootError as exc:
            raise _Stop(Code.TRUST_ROOT_INVALID, str(exc)) from None
    if not authorities:
        raise VerificationError(
            Code.TIMESTAMP_UNTRUSTED,
            "bundle: it carries RFC 3161 timestamps but the trust root names no timestamp "
            "authority (dssesign trust-root add-tsa)",
        )
    return verify_tokens(tokens, signature, authorities, now=now)


def _read_bundle(bundle: object, limits: Limits) -> tuple[bytes | str, ParsedBundle]:
    """The bundle given alone, parsed (either kind); the text is returned as bytes or str."""
    if isinstance(bundle, bytearray | memoryview):
        bundle = bytes(bundle)
    if not isinstance(bundle, bytes | str):
        raise _Stop(Code.INVALID_ARGUMENT, "bundle: expected JSON bytes or str")
    from . import bundles as bundle_verify  # noqa: PLC0415 - only when bundles are given

    try:
        return bundle, bundle_verify.parse_bundle(bundle, limits=limits)
    except VerificationError as exc:
        raise _bundle_stop(None, exc) from None


def _verify_message_bundle(
    run: _Run,
    parsed: ParsedBundle,
    trust_root: TrustRoot,
    index: _Index,
    *,
    now: datetime,
    artifact_list: tuple[object, ...],
    digest_specs: tuple[tuple[str, str, str], ...],
    predicate_type: object,
    require_timestamp: bool = False,
) -> VerificationResult:
    """A messageSignature bundle: its one artifact, its one signer, then the policy."""
    from . import bundles as bundle_verify  # noqa: PLC0415 - only when bundles are given

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
    run.envelope_keyids = ("",)
    identity_names: tuple[str, ...] = ()
    try:
        if parsed.keyed:
            key = bundle_verify.verify_keyed(
                parsed, [c.public for c in index.candidates], digest=digest
            )
            candidate = index.by_keyid[key.keyid]
            run.envelope_keyids = (candidate.keyid,)
            run.verified_by[0] = candidate.keyid
            counted = candidate.counted
            if parsed.timestamps:
                stamped = _verified_times(trust_root, parsed.timestamps, parsed.signature, now)
                moments = [t.time for t in stamped]
                problem = _state_at_times(run, trust_root, index, candidate, moments)
                counted = dataclasses.replace(counted, signed_at=min(moments))
                run.signed_at[candidate.keyid] = min(moments)
            elif require_timestamp or trust_root.policy.require_timestamp:
                run.excluded[candidate.keyid] = Code.TIMESTAMP_REQUIRED
                raise _Stop(
                    Code.TIMESTAMP_REQUIRED,
                    f"key {candidate.keyid[:16]}: the bundle carries no RFC 3161 timestamp",
                )
            else:
                problem = _state_problem(run, trust_root, index, candidate, now)
            if problem is not None:
                run.excluded[candidate.keyid] = problem[0]
                raise _Stop(*problem)
            if any(e.predicate_types for e in candidate.entries):
                run.excluded[candidate.keyid] = Code.PREDICATE_TYPE_NOT_ALLOWED
                raise _Stop(
                    Code.PREDICATE_TYPE_NOT_ALLOWED,
                    f"key {candidate.keyid[:16]} may only attest to its predicate types; a "
                    "messageSignature bundle has none",
                )
            run.keys_counted = (counted,)
            counted_keyid = candidate.keyid
            post_quantum = candidate.post_quantum
        elif _judged_by_pki(parsed, trust_root):
            raise VerificationError(
                Code.BUNDLE_UNSUPPORTED,
                "bundle: a messageSignature bundle with an organisation certificate is not "
                "supported; sign an in-toto Statement (dssesign attest) instead",
            )
        else:
            signer = bundle_verify.verify_keyless(parsed, _keyless_trust(trust_root), digest=digest)
            who = (signer.issuer, signer.subject)
            run.keyless[0] = who
            run.keyless_time[who] = "rfc3161" if parsed.timestamps else "tlog"
            untyped = [r for r in signer.rules if not r.predicate_types]
            identity_names = tuple(r.name for r in untyped if r.name is not None)
            rule = untyped[0] if untyped else None
            if rule is None:
                run.identities_excluded[who] = Code.PREDICATE_TYPE_NOT_ALLOWED
                raise _Stop(
                    Code.PREDICATE_TYPE_NOT_ALLOWED,
                    f"keyless identity {clip(escape_controls(signer.subject), 120)} may only "
                    "attest to its predicate "
                    "types; a messageSignature bundle has none",
                )
            run.identities_counted = (CountedIdentity(signer.issuer, signer.subject, rule.label),)
            run.identity_names[who] = identity_names
            counted_keyid = ""
            post_quantum = False
    except VerificationError as exc:
        raise _bundle_stop(None, exc) from None
    policy = trust_root.policy
    # The roles, tallied before any policy check can fail so the report shows them (what
    # hybrid pq-only would not count is left out of them).
    pq_only = policy.hybrid == "pq-only"
    roles_short = _evaluate_roles(
        run,
        trust_root,
        predicate_type="",
        keys=[counted_keyid] if counted_keyid and (post_quantum or not pq_only) else [],
        identities=() if pq_only else run.identities_counted,
        excluded=(),
    )
    run.policy_done = True
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
    if roles_short is not None:
        raise roles_short
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
        signatures=_signature_reports(run, None),
        roles=dict(run.roles),
    )
