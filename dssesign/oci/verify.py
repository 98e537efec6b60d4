"""Verify an image's attestations: group what was found by payload, verify each group offline.

Bundles (and legacy envelopes) whose DSSE payloads and payload types are byte-identical are one
attestation signed several times: their signatures are merged into one envelope, verified with
those bundles against the trust root, and the Statement must name the image digest as a
subject. The image passes when one group passes. The registry only said where to look.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from .._internal.strict_json import loads_strict
from ..codes import Code
from ..core.dsse import Envelope, Signature
from ..errors import DssesignError, VerificationError
from ..limits import DEFAULT_LIMITS, Limits
from ..trust import TrustRoot
from ..verify import VerificationFailure, VerificationResult, failure_report, verify
from .discover import Candidate, Discovery, Problem
from .image import Target
from .layout import BUNDLE_MEDIA_TYPE, CERTIFICATE, RFC3161_TIMESTAMP

__all__ = ["Group", "GroupOutcome", "ImageVerification", "group_candidates", "verify_image"]


@dataclass(frozen=True)
class Member:
    """One candidate of a group: its envelope as found, and its bundle (if any)."""

    index: int  # into the candidates
    envelope: Envelope
    bundle: bytes | None


@dataclass
class Group:
    """One payload and every signature found for it, with the bundles that carry them.

    Keyids are hints a registry can forge: a signature keeps one only when every source that
    carries it names the same key (a bundle's base64 key hint read as hex), else none, so the
    verifier tries every trusted key (bounded) rather than the one a hint points at.
    """

    payload_type: str
    payload: bytes
    members: list[Member] = field(default_factory=list)
    signatures: list[Signature] = field(default_factory=list)
    #: Signature bytes -> the bundle that carries it (the first found), in the order found.
    bundle_of: dict[bytes, bytes] = field(default_factory=dict)
    #: For each member (candidate index): the envelope signature indexes it brought.
    member_signatures: dict[int, list[int]] = field(default_factory=dict)

    @property
    def envelope(self) -> Envelope:
        """The payload with every signature found for it, in the order found."""
        return Envelope(self.payload, self.payload_type, tuple(self.signatures))

    @property
    def bundles(self) -> list[bytes]:
        """One bundle per bundled signature, as `verify` takes them."""
        return list(self.bundle_of.values())

    @property
    def payload_sha256(self) -> str:
        """Names the group in reports and file names."""
        return hashlib.sha256(self.payload).hexdigest()

    def merge(self, members: Sequence[Member], limits: Limits) -> list[str]:
        """Build signatures and bundles from `members`; what did not fit, as messages."""
        self.signatures, self.bundle_of, self.member_signatures = [], {}, {}
        keyids: dict[bytes, set[str]] = {}
        position: dict[bytes, int] = {}
        dropped: list[str] = []
        for member in members:
            brought: list[int] = []
            for found in member.envelope.signatures:
                keyids.setdefault(found.sig, set()).add(_hex_keyid(found.keyid))
                if found.sig not in position:
                    if len(position) >= limits.max_signatures:
                        dropped.append(f"more than {limits.max_signatures} signatures")
                        break
                    position[found.sig] = len(position)
                brought.append(position[found.sig])
            if member.bundle is not None:
                signature = member.envelope.signatures[0].sig
                if signature in position:
                    self.bundle_of.setdefault(signature, member.bundle)
            self.member_signatures[member.index] = brought
        for sig in position:
            names = keyids[sig]  # a source without a keyid does not vouch for another's
            self.signatures.append(Signature(sig, names.pop() if len(names) == 1 else ""))
        return dropped


@dataclass(frozen=True)
class GroupOutcome:
    """One group's verification: the `verify --json` report of its merged envelope."""

    group: Group
    ok: bool
    code: Code
    report: dict[str, Any]  # verify --json's report for this group's envelope
    exit_code: int


@dataclass(frozen=True)
class ImageVerification:
    """Every group's outcome; `passed` when one group verified."""

    target: Target
    discovery: Discovery
    candidates: tuple[Candidate, ...]
    outcomes: tuple[GroupOutcome, ...]
    problems: tuple[Problem, ...]

    @property
    def passed(self) -> bool:
        """One group verified (of the requested type, with the image as subject)."""
        return any(o.ok for o in self.outcomes)

    @property
    def code(self) -> Code:
        """OK, NO_ATTESTATIONS, or the first group's failure code."""
        if self.passed:
            return Code.OK
        if not self.outcomes:
            return Code.NO_ATTESTATIONS
        return self.outcomes[0].code

    @property
    def exit_code(self) -> int:
        """0 when passed; else the worst group's (1, or 2 for an unusable request)."""
        if self.passed:
            return 0
        return max((o.exit_code for o in self.outcomes), default=1)

    def to_dict(self) -> dict[str, Any]:
        """The ``verify --image --json`` report."""
        attestations = []
        for index, candidate in enumerate(self.candidates):
            entry: dict[str, Any] = {
                "source": candidate.source,
                "manifest": candidate.manifest_digest,
                "layer": candidate.layer_digest,
                "kind": candidate.kind,
                "group": None,
                "signatures": [],
            }
            for number, outcome in enumerate(self.outcomes):
                if index in outcome.group.member_signatures:
                    entry["group"] = number
                    wanted = set(outcome.group.member_signatures[index])
                    entry["signatures"] = [
                        s for s in outcome.report.get("signatures", []) if s.get("index") in wanted
                    ]
            attestations.append(entry)
        return {
            "image": str(self.target.ref),
            "digest": self.target.digest,
            "referrers": self.discovery.referrers_source,
            "ok": self.passed,
            "code": str(self.code),
            "attestations": attestations,
            "groups": [
                {"payloadSha256": o.group.payload_sha256, **o.report} for o in self.outcomes
            ],
            "problems": [
                {"source": p.source, "digest": p.digest, "code": str(p.code), "message": p.message}
                for p in self.problems
            ],
        }


def group_candidates(
    candidates: Sequence[Candidate], limits: Limits = DEFAULT_LIMITS
) -> tuple[list[Group], list[Problem]]:
    """Group by exact (payloadType, payload); unusable candidates become problems."""
    groups: dict[tuple[str, bytes], Group] = {}
    problems: list[Problem] = []
    for index, candidate in enumerate(candidates):
        try:
            envelope, bundle = _read(candidate, limits)
        except DssesignError as exc:
            fallback = (
                Code.BUNDLE_MALFORMED if candidate.kind == "bundle" else Code.MALFORMED_ENVELOPE
            )
            code = getattr(exc, "code", fallback)
            problems.append(Problem(candidate.source, candidate.layer_digest, Code(code), str(exc)))
            continue
        group = groups.setdefault(
            (envelope.payload_type, envelope.payload),
            Group(envelope.payload_type, envelope.payload),
        )
        group.members.append(Member(index, envelope, bundle))
    for group in groups.values():
        source = candidates[group.members[0].index].source
        for message in group.merge(group.members, limits):
            problems.append(
                Problem(source, group.payload_sha256, Code.TOO_MANY_SIGNATURES, message)
            )
    return list(groups.values()), problems


def verify_image(
    target: Target,
    discovery: Discovery,
    trust_root: TrustRoot,
    *,
    predicate_type: str | None = None,
    at: datetime | None = None,
    require_timestamp: bool = False,
    allow_stale_crl: bool = False,
    limits: Limits = DEFAULT_LIMITS,
) -> ImageVerification:
    """Verify every group of `discovery` against `trust_root`, the image digest as subject.

    A group that fails is checked member by member: anyone who can push to the repository can
    add a bundle of a public payload with a junk signature, and must not be able to fail the
    honest ones that way. Members that count no signer alone are dropped (and reported); the
    rest are merged and verified again.
    """
    groups, problems = group_candidates(discovery.candidates, limits)

    def check(envelope: Envelope, bundles: Sequence[bytes]) -> VerificationResult:
        return verify(
            envelope,
            trust_root,
            bundles=bundles,
            digests=(target.digest,),
            predicate_type=predicate_type,
            at=at,
            require_timestamp=require_timestamp,
            allow_stale_crl=allow_stale_crl,
            limits=limits,
        )

    def attempt(group: Group) -> GroupOutcome:
        try:
            result = check(group.envelope, group.bundles)
        except VerificationError as exc:
            return GroupOutcome(group, False, exc.code, failure_report(exc), exc.exit_code)
        return GroupOutcome(group, True, Code.OK, result.to_dict(), 0)

    outcomes: list[GroupOutcome] = []
    for group in groups:
        outcome = attempt(group)
        if outcome.ok or len(group.members) == 1:
            outcomes.append(outcome)
            continue
        kept: list[Member] = []
        for member in group.members:
            try:
                check(_unhinted(member.envelope), [member.bundle] if member.bundle else [])
            except VerificationError as exc:
                if isinstance(exc, VerificationFailure) and (
                    exc.keys_counted or exc.identities_counted
                ):
                    kept.append(member)  # a signer counted; the policy needs the others
                    continue
                candidate = discovery.candidates[member.index]
                problems.append(
                    Problem(
                        candidate.source,
                        candidate.layer_digest,
                        exc.code,
                        f"left out of its attestation ({group.payload_sha256[:16]}): {exc}",
                    )
                )
            else:
                kept.append(member)
        if kept and len(kept) < len(group.members):
            group.merge(kept, limits)
            outcome = attempt(group)
        outcomes.append(outcome)
    return ImageVerification(
        target,
        discovery,
        discovery.candidates,
        tuple(outcomes),
        (*discovery.problems, *problems),
    )


def _unhinted(envelope: Envelope) -> Envelope:
    """The envelope with keyids kept only where they are dssesign-style (hex) hints."""
    signatures = tuple(Signature(s.sig, _hex_keyid(s.keyid)) for s in envelope.signatures)
    return Envelope(envelope.payload, envelope.payload_type, signatures)


def _read(candidate: Candidate, limits: Limits) -> tuple[Envelope, bytes | None]:
    """The DSSE envelope a candidate carries, and the bundle to verify it with (if any)."""
    if candidate.kind == "envelope":
        envelope = Envelope.from_json(candidate.data, limits=limits)
        return envelope, _legacy_bundle(envelope, candidate)
    document = loads_strict(candidate.data, what=f"bundle {candidate.layer_digest}", limits=limits)
    dsse = document.get("dsseEnvelope") if isinstance(document, dict) else None
    if dsse is None:
        raise VerificationError(
            Code.BUNDLE_UNSUPPORTED,
            f"bundle {candidate.layer_digest} carries no DSSE envelope (a messageSignature "
            "bundle is not an attestation)",
        )
    envelope = Envelope.from_dict(dsse, limits=limits)
    if len(envelope.signatures) != 1:
        raise VerificationError(
            Code.BUNDLE_MALFORMED,
            f"bundle {candidate.layer_digest} has {len(envelope.signatures)} signatures, not one",
        )
    return envelope, candidate.data


def _legacy_bundle(envelope: Envelope, candidate: Candidate) -> bytes | None:
    """A v0.3 bundle from cosign's legacy certificate / RFC 3161 annotations, when present.

    cosign writes one signature per ``.att`` layer; its certificate and timestamp live in the
    layer's annotations. Only a single-signature envelope with a certificate gets one.
    """
    pem = candidate.annotations.get(CERTIFICATE)
    if not pem or len(envelope.signatures) != 1:
        return None
    try:
        der = x509.load_pem_x509_certificate(pem.encode("ascii")).public_bytes(Encoding.DER)
    except (ValueError, UnicodeEncodeError):
        raise VerificationError(
            Code.BUNDLE_MALFORMED,
            f"legacy layer {candidate.layer_digest}: its certificate annotation is not a PEM "
            "certificate",
        ) from None
    material: dict[str, Any] = {"certificate": {"rawBytes": base64.b64encode(der).decode()}}
    material["tlogEntries"] = []
    stamp = candidate.annotations.get(RFC3161_TIMESTAMP)
    if stamp:
        token = loads_strict(stamp, what=f"legacy layer {candidate.layer_digest} timestamp")
        signed = token.get("SignedRFC3161Timestamp") if isinstance(token, dict) else None
        if not isinstance(signed, str):
            raise VerificationError(
                Code.BUNDLE_MALFORMED,
                f"legacy layer {candidate.layer_digest}: its RFC 3161 annotation has no "
                "SignedRFC3161Timestamp",
            )
        material["timestampVerificationData"] = {"rfc3161Timestamps": [{"signedTimestamp": signed}]}
    bundle = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": material,
        "dsseEnvelope": envelope.to_dict(),
    }
    return json.dumps(bundle, separators=(",", ":")).encode()


def _hex_keyid(keyid: str) -> str:
    """A keyid as dssesign writes it (64 hex digits): bundles written by dssesign and cosign
    carry the key hint in base64 instead. Only a hint either way; an unknown form is kept."""
    if len(keyid) == 44 and keyid.endswith("="):
        try:
            raw = base64.b64decode(keyid, validate=True)
        except ValueError:
            return keyid
        if len(raw) == 32:
            return raw.hex()
    return keyid
