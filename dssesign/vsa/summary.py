"""SLSA Verification Summary Attestations (VSA v1) of what `verify` decided.

`VerifiedInput.of` records one verified file (an envelope or a Sigstore bundle): its name, the
SHA-256 of its bytes and its outcome (a `VerificationResult`, or None for a failure).
`build_vsa` turns the inputs and a `VsaRequest` into an in-toto Statement v1 with a
``https://slsa.dev/verification_summary/v1`` predicate, validated against the VSA schema the
project ships; `emit_vsa` signs it like any other attestation (`sign.attest`).

The verdict is never the caller's to choose: ``PASSED`` only when there is at least one input
and every input verified, ``FAILED`` (with ``verifiedLevels: ["FAILED"]``) otherwise. The
subjects of a PASSED summary are what verified (the artifact digests that matched, else the
verified Statements' subjects); a FAILED one names only the digests asked about, never a
subject read from an envelope that did not verify.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal

from .. import __version__
from ..core.canonical import canonicalize
from ..errors import ConfigError, InputError, PredicateError
from ..intoto.predicates import VSA_URI, validate_predicate
from ..intoto.statement import ResourceDescriptor, build_statement
from ..intoto.subjects import subject_from_digest
from ..limits import DEFAULT_LIMITS
from ..verify.result import VerificationResult

if TYPE_CHECKING:
    from ..sign.attest import AttestResult
    from ..sign.multisign import RecordHook, SigningContext
    from ..sign.signer import Signer, SignerOptions
    from ..sign.timestamps import Timestamping

__all__ = [
    "DEFAULT_VERIFIER_ID",
    "FAILED_LEVEL",
    "MAX_INPUTS",
    "VSA_URI",
    "Verdict",
    "VerifiedInput",
    "VsaRequest",
    "build_vsa",
    "emit_vsa",
    "verification_result",
]

#: ``verifier.id`` unless the caller names its own verifier.
DEFAULT_VERIFIER_ID: Final = f"https://github.com/dssesign/dssesign/verify@{__version__}"
#: Inputs one summary may name: its payload must stay far below `Limits.max_payload_bytes`
#: (about 150 bytes per input attestation), or `dssesign verify` could not read it back.
MAX_INPUTS: Final = 100_000
#: The `verifiedLevels` of a FAILED summary (verification_summary.md: "or FAILED if policy
#: verification failed"); never a level a caller may claim.
FAILED_LEVEL: Final = "FAILED"

Verdict = Literal["PASSED", "FAILED"]


@dataclass(frozen=True)
class VerifiedInput:
    """One file `verify` judged: its name as given, the SHA-256 of its bytes, the outcome.

    Make it with `of`. `subjects` (JSON objects) are what a passed input vouches for: the
    artifact digests that matched (with the matched subject's name), else its Statement's
    subjects; empty for a failure. `sha256` is None for a file that could not be read (it is
    then left out of ``inputAttestations``: it was not used). Plain data, so it travels from a
    worker process.
    """

    name: str
    sha256: str | None
    passed: bool
    subjects: tuple[dict[str, Any], ...] = field(default=(), hash=False)

    @classmethod
    def of(cls, name: str, data: bytes | None, result: VerificationResult | None) -> VerifiedInput:
        """`name` verified from `data` (its exact bytes) with `result` (None: it failed)."""
        sha256 = None if data is None else hashlib.sha256(data).hexdigest()
        if not isinstance(result, VerificationResult):
            return cls(name, sha256, passed=False)
        subjects: list[dict[str, Any]] = []
        if result.subjects_matched:
            for matched in result.subjects_matched:
                algorithm, _, value = matched.digest.partition(":")
                named = {"name": matched.name} if matched.name is not None else {}
                subjects.append({**named, "digest": {algorithm: value}})
        else:
            listed = result.statement.get("subject")
            for subject in listed if isinstance(listed, list) else []:
                # Only the fields the spec defines: the summary repeats no unknown member.
                subjects.append(ResourceDescriptor.from_dict(subject).to_dict())
        return cls(name, sha256, passed=True, subjects=tuple(subjects))


@dataclass(frozen=True)
class VsaRequest:
    """What a summary says besides the verdict; checked against the VSA schema when made.

    `policy_uri` and `policy_sha256` name the policy verified against: for dssesign the trust
    root (its URI, and the SHA-256 of its file's bytes as read). `digests` are the ``ALG:HEX``
    digests verification was asked to match (``--digest``, and each ``--artifact`` hashed):
    the subjects of a FAILED summary, which has no other subject it could trust.
    `verified_levels` (one per SLSA track) are claimed only by a PASSED summary.
    """

    resource_uri: str
    policy_uri: str
    policy_sha256: str
    verifier_id: str = DEFAULT_VERIFIER_ID
    verified_levels: tuple[str, ...] = ()
    digests: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "verified_levels", tuple(self.verified_levels))
        object.__setattr__(self, "digests", tuple(self.digests))
        if FAILED_LEVEL in self.verified_levels:
            index = self.verified_levels.index(FAILED_LEVEL)
            raise PredicateError(
                f"$.verifiedLevels[{index}]: FAILED is what a failed verification's summary "
                "says, never a level to claim",
                f"$.verifiedLevels[{index}]",
            )
        for spec in self.digests:
            if not isinstance(spec, str):
                raise ConfigError("digests: expected ALG:HEX strings")
            subject_from_digest(spec)
        # Every field through the schema now, on a stand-in input: a bad URI or level is
        # refused before anything is verified or signed.
        _predicate(self, "PASSED", (), datetime.now(UTC))

    def subjects_requested(self) -> list[dict[str, Any]]:
        """The requested digests as unnamed subjects, one per distinct digest."""
        return _distinct(subject_from_digest(spec).to_dict() for spec in self.digests)


def verification_result(inputs: Sequence[VerifiedInput]) -> Verdict:
    """PASSED when there is an input and every one passed; otherwise FAILED."""
    if inputs and all(item.passed is True for item in inputs):
        return "PASSED"
    return "FAILED"


def build_vsa(
    inputs: Sequence[VerifiedInput],
    request: VsaRequest,
    *,
    time_verified: datetime | None = None,
) -> dict[str, Any]:
    """The in-toto Statement v1 of a SLSA VSA v1 for `inputs`, validated, ready to sign.

    `time_verified` (timezone-aware; default: now) is written as RFC 3339 UTC, whole seconds.
    Raises ConfigError when there is nothing to summarise (no input; a FAILED summary without
    `request.digests`; subjects that cannot share one Statement) or the payload would be too
    large for a verifier to read back; PredicateError/StatementError if a field is invalid.
    """
    if isinstance(inputs, str | bytes) or not isinstance(inputs, Sequence):
        raise ConfigError("inputs: expected a sequence of VerifiedInput")
    if not inputs:
        raise ConfigError("a verification summary needs at least one verified input")
    if len(inputs) > MAX_INPUTS:
        raise ConfigError(
            f"{len(inputs)} inputs: one verification summary names at most {MAX_INPUTS}"
        )
    for item in inputs:
        if not isinstance(item, VerifiedInput):
            raise ConfigError(f"inputs: expected VerifiedInput, got {type(item).__name__}")
    verdict = verification_result(inputs)
    if verdict == "PASSED":
        subjects = _distinct(subject for item in inputs for subject in item.subjects)
    else:
        subjects = request.subjects_requested()
        if not subjects:
            raise ConfigError(
                "a FAILED verification summary names the artifacts that were asked about: give "
                "their digests (--artifact / --digest); subjects are never taken from an "
                "envelope that did not verify"
            )
    moment = time_verified if time_verified is not None else datetime.now(UTC)
    if moment.utcoffset() is None:
        raise ConfigError("time_verified: must be a timezone-aware datetime")
    predicate = _predicate(request, verdict, inputs, moment)
    descriptors = [
        ResourceDescriptor.from_dict(s, path=f"$.subject[{i}]") for i, s in enumerate(subjects)
    ]
    try:
        statement = build_statement(descriptors, VSA_URI, predicate)
    except InputError as exc:
        if "duplicate subject" not in str(exc):
            raise
        raise ConfigError(
            f"the verified subjects cannot share one summary ({exc}): name the artifacts with "
            "--artifact or --digest"
        ) from None
    size = len(canonicalize(statement))
    if size > DEFAULT_LIMITS.max_payload_bytes:
        raise ConfigError(
            f"the verification summary would be {size} bytes, more than a verifier reads "
            f"({DEFAULT_LIMITS.max_payload_bytes}): summarise fewer envelopes at a time"
        )
    return statement


def emit_vsa(
    statement: Mapping[str, Any],
    *,
    keys: Sequence[str | Signer],
    options: SignerOptions | None = None,
    threshold: int | None = None,
    timeout: float = 60.0,
    bundle_stem: str = "vsa",
    audit: RecordHook | None = None,
    context: SigningContext | None = None,
    timestamps: Timestamping | None = None,
) -> AttestResult:
    """Sign a `build_vsa` Statement into a DSSE envelope (and one Sigstore bundle per signature).

    The predicate is validated against the VSA schema again and every signature verified
    before it is emitted (`dssesign.sign.attest`); `keys`, `options`, `threshold`, `timeout`,
    `audit`, `context` and `timestamps` mean what they mean there.
    """
    from ..sign.attest import attest  # noqa: PLC0415 - the signing stack, only to sign

    if statement.get("predicateType") != VSA_URI:
        raise ConfigError(f"emit_vsa signs a {VSA_URI} Statement (build it with build_vsa)")
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise ConfigError("emit_vsa: the Statement has no subject")
    descriptors = [
        ResourceDescriptor.from_dict(s, path=f"$.subject[{i}]") for i, s in enumerate(subjects)
    ]
    return attest(
        descriptors,
        statement.get("predicate"),
        VSA_URI,
        keys=keys,
        options=options,
        threshold=threshold,
        timeout=timeout,
        bundle_stem=bundle_stem,
        audit=audit,
        context=context,
        timestamps=timestamps,
    )


def _predicate(
    request: VsaRequest, verdict: Verdict, inputs: Sequence[VerifiedInput], moment: datetime
) -> dict[str, Any]:
    """The VSA predicate, validated against the shipped schema and its one-level-per-track rule."""
    when = moment.astimezone(UTC)
    predicate: dict[str, Any] = {
        "verifier": {"id": request.verifier_id, "version": {"dssesign": __version__}},
        "timeVerified": (
            f"{when.year:04d}-{when.month:02d}-{when.day:02d}"
            f"T{when.hour:02d}:{when.minute:02d}:{when.second:02d}Z"
        ),
        "resourceUri": request.resource_uri,
        "policy": {"uri": request.policy_uri, "digest": {"sha256": request.policy_sha256}},
        "inputAttestations": [
            {"name": item.name, "digest": {"sha256": item.sha256}}
            for item in inputs
            if item.sha256 is not None
        ],
        "verificationResult": verdict,
        "verifiedLevels": list(request.verified_levels) if verdict == "PASSED" else [FAILED_LEVEL],
    }
    validate_predicate(VSA_URI, predicate)
    return predicate


def _distinct(subjects: Any) -> list[dict[str, Any]]:
    """Each subject once (equal JSON objects are the same subject), first seen first."""
    seen: set[bytes] = set()
    out: list[dict[str, Any]] = []
    for subject in subjects:
        key = canonicalize(subject)
        if key not in seen:
            seen.add(key)
            out.append(subject)
    return out
