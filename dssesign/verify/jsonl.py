"""JSON Lines of attestations (``.intoto.jsonl``): read strictly and within `Limits`, then
verified line by line.

The in-toto attestation bundle format: one JSON document per line, each a DSSE envelope (what
`dssesign attest --out FILE.intoto.jsonl` writes, and SLSA generators) or a Sigstore bundle with
a dsseEnvelope (what GitHub's ``gh attestation download`` writes). The two may be mixed.

Reading (`read_jsonl`) is all or nothing, and linear: the file within
``Limits.max_jsonl_bytes``, at most ``Limits.max_jsonl_lines`` lines, each line within
``Limits.max_json_bytes``; lines end in LF or CRLF, and one line end after the last line is
allowed (none is too). Any other blank line, or a line that is not a DSSE envelope or a DSSE
Sigstore bundle, is an `InputError` naming the line (1-based): an unreadable file is never
half verified.

Verifying (`verify_jsonl`) gives each line its own verdict, a `LineOutcome`: an envelope line
with the given bundles that belong to it (same payload and payloadType; among lines with the
same payload, the one that holds the bundle's signature), a bundle line as `verify_bundle`.
Whether the file as a whole passes is the caller's rule (`jsonl_passed`: every line, or with
``any_line`` at least one).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Final, Literal

from .._internal.strict_json import loads_strict
from ..codes import Code
from ..core.dsse import Envelope
from ..errors import DssesignError, InputError, VerificationError
from ..intoto.subjects import digest_file
from ..limits import DEFAULT_LIMITS, Limits, exceeded
from ..trust import TrustRoot
from .envelope import verify, verify_bundle
from .result import VerificationResult, failure_report

if TYPE_CHECKING:
    from .bundles import ParsedBundle

__all__ = [
    "JSONL_SUFFIX",
    "JsonlLine",
    "LineKind",
    "LineOutcome",
    "is_jsonl_name",
    "jsonl_passed",
    "read_jsonl",
    "verify_jsonl",
]

#: The file-name ending that selects JSON Lines (``.intoto.jsonl``, ``sha256:HEX.jsonl``).
JSONL_SUFFIX: Final = ".jsonl"

#: What a line holds: a DSSE envelope, or a Sigstore bundle (with a dsseEnvelope).
LineKind = Literal["envelope", "bundle"]


def is_jsonl_name(name: str | os.PathLike[str]) -> bool:
    """A file name that selects JSON Lines: it ends in ``.jsonl`` (and is more than that)."""
    base = os.path.basename(os.fspath(name))
    return base.endswith(JSONL_SUFFIX) and len(base) > len(JSONL_SUFFIX)


@dataclass(frozen=True)
class JsonlLine:
    """One line, read and checked for shape only (nothing here is verified yet)."""

    #: 1-based line number in the file.
    number: int
    kind: LineKind
    #: The line's JSON, without its line end.
    data: bytes
    #: The envelope line, or the bundle's dsseEnvelope (one signature), parsed.
    envelope: Envelope
    #: A bundle line, parsed; None for an envelope line.
    bundle: ParsedBundle | None = None

    @property
    def keyless(self) -> bool:
        """A bundle line with a certificate (verifying it may need sigstore-python)."""
        return self.bundle is not None and not self.bundle.keyed


def _split(data: bytes, limits: Limits) -> list[bytes]:
    """The lines of `data` without their ends; bounded before anything is split or parsed."""
    if len(data) > limits.max_jsonl_bytes:
        raise InputError(
            f"{len(data)} bytes exceed {exceeded('max_jsonl_bytes', limits.max_jsonl_bytes)}"
        )
    if not data:
        raise InputError("empty: no lines")
    ends = data.count(b"\n")
    count = ends if data.endswith(b"\n") else ends + 1
    if count > limits.max_jsonl_lines:
        raise InputError(
            f"{count} lines exceed {exceeded('max_jsonl_lines', limits.max_jsonl_lines)}"
        )
    lines = data.split(b"\n")
    if data.endswith(b"\n"):
        lines.pop()  # the one line end allowed after the last line
    return [line[:-1] if line.endswith(b"\r") else line for line in lines]


def read_jsonl(
    data: bytes | str, *, limits: Limits = DEFAULT_LIMITS, envelopes_only: bool = False
) -> list[JsonlLine]:
    """Every line of a JSON Lines file of attestations, or `InputError` naming the first bad one.

    `envelopes_only` refuses bundle lines (a file `attest --append` adds envelopes to).
    """
    if isinstance(data, str):
        try:
            data = data.encode("utf-8")
        except UnicodeEncodeError:
            raise InputError("not valid Unicode text") from None
    if isinstance(data, bytearray | memoryview):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise InputError("expected the file's bytes")
    lines: list[JsonlLine] = []
    for number, text in enumerate(_split(data, limits), 1):
        line = _read_line(number, text, limits)
        if envelopes_only and line.kind != "envelope":
            raise InputError(f"line {number}: a Sigstore bundle, not a DSSE envelope")
        lines.append(line)
    return lines


#: Members only a Sigstore bundle has: an envelope line holding any of them is refused.
_BUNDLE_MEMBERS: Final = frozenset(
    {"mediaType", "verificationMaterial", "dsseEnvelope", "messageSignature"}
)


_ENVELOPE_MEMBERS: Final = frozenset({"payload", "payloadType", "signatures"})


def _read_line(number: int, text: bytes, limits: Limits) -> JsonlLine:
    where = f"line {number}"
    if not text.strip(b" \t\r"):
        raise InputError(f"{where}: blank (only the last line may end the file)")
    if len(text) > limits.max_json_bytes:
        raise InputError(
            f"{where}: {len(text)} bytes exceed {exceeded('max_json_bytes', limits.max_json_bytes)}"
        )
    document = loads_strict(text, what=where, limits=limits)
    if not isinstance(document, dict):
        raise InputError(f"{where}: not a JSON object (a DSSE envelope or a Sigstore bundle)")
    if "mediaType" in document:
        from . import bundles as bundle_verify  # noqa: PLC0415 - only for lines that may be bundles

        if bundle_verify.is_bundle_document(document):
            try:
                parsed = bundle_verify.parse_bundle(text, limits=limits)
            except VerificationError as exc:
                raise InputError(
                    f"{where}: not a usable Sigstore bundle: {exc.code}: {exc}"
                ) from None
            if parsed.envelope is None:
                raise InputError(
                    f"{where}: a messageSignature Sigstore bundle signs an artifact, not an "
                    "attestation (a line must hold a dsseEnvelope)"
                )
            return JsonlLine(number, "bundle", text, parsed.envelope, parsed)
    if _BUNDLE_MEMBERS.intersection(document) and _ENVELOPE_MEMBERS.intersection(document):
        # Both at once: tools that read it as a bundle would see another envelope than the
        # one verified here. A line is one or the other.
        raise InputError(
            f"{where}: holds both DSSE envelope and Sigstore bundle members (a line is one of "
            "the two)"
        )
    try:
        envelope = Envelope.from_dict(document, limits=limits)
    except DssesignError as exc:
        raise InputError(
            f"{where}: neither a DSSE envelope nor a Sigstore bundle ({exc})"
        ) from None
    return JsonlLine(number, "envelope", text, envelope)


@dataclass(frozen=True)
class LineOutcome:
    """The verdict on one line: its result, or the failure `verify` raised."""

    line: JsonlLine
    #: How many of the given bundles were verified with this (envelope) line.
    bundles: int
    result: VerificationResult | None
    failure: VerificationError | None

    @property
    def ok(self) -> bool:
        """The line verified."""
        return self.result is not None

    @property
    def code(self) -> str:
        """``OK``, or the failure's code."""
        return str(Code.OK) if self.failure is None else str(self.failure.code)

    @property
    def exit_code(self) -> int:
        """0, 1 (did not verify) or 2 (the request was unusable for this line)."""
        return 0 if self.failure is None else self.failure.exit_code

    @property
    def predicate_type(self) -> str | None:
        """The verified Statement's predicateType (a failure knows it only if it got that far)."""
        value = self.report()["predicateType"]
        return value if isinstance(value, str) else None

    def report(self) -> dict[str, object]:
        """The ``verify --json`` report of this line (`VerificationResult.to_dict` or
        `failure_report`)."""
        if self.result is not None:
            return self.result.to_dict()
        assert self.failure is not None
        return failure_report(self.failure)

    def to_dict(self) -> dict[str, object]:
        """One ``lines`` entry: line number, kind, bundles, and the line's report."""
        report = self.report()
        report.pop("schemaVersion", None)  # the file's report carries it once
        return {"line": self.line.number, "kind": self.line.kind, "bundles": self.bundles, **report}


def jsonl_passed(outcomes: Sequence[LineOutcome], *, any_line: bool = False) -> bool:
    """Every line verified; with `any_line`, at least one did."""
    if any_line:
        return any(outcome.ok for outcome in outcomes)
    return bool(outcomes) and all(outcome.ok for outcome in outcomes)


def verify_jsonl(
    data: bytes | str,
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
) -> list[LineOutcome]:
    """Verify every line of a JSON Lines file of attestations; one `LineOutcome` per line.

    The file is read whole first (`read_jsonl`: `InputError` naming the line for an unreadable
    one, before any line is verified). `bundles` are Sigstore bundles of envelope lines'
    signatures, each given to the line(s) it belongs to; one that belongs to no line is a
    `VerificationError` (BUNDLE_PAYLOAD_MISMATCH, or its parse failure). The other arguments
    are `verify`'s, applied to every line: each line must name every artifact and digest.
    """
    lines = read_jsonl(data, limits=limits)
    given = _assign(lines, bundles, limits) if bundles else {}
    if len(lines) > 1:
        digests, artifacts = _hash_once(digests, artifacts)
    outcomes = []
    for index, line in enumerate(lines):
        mine = given.get(index, [])
        try:
            if line.kind == "bundle":
                result = verify_bundle(
                    line.data,
                    trust_root,
                    artifacts=artifacts,
                    digests=digests,
                    predicate_type=predicate_type,
                    at=at,
                    require_timestamp=require_timestamp,
                    allow_stale_crl=allow_stale_crl,
                    limits=limits,
                )
            else:
                result = verify(
                    line.envelope,
                    trust_root,
                    bundles=mine,
                    artifacts=artifacts,
                    digests=digests,
                    predicate_type=predicate_type,
                    at=at,
                    require_timestamp=require_timestamp,
                    allow_stale_crl=allow_stale_crl,
                    limits=limits,
                )
        except VerificationError as exc:
            outcomes.append(LineOutcome(line, len(mine), None, exc))
        else:
            outcomes.append(LineOutcome(line, len(mine), result, None))
    return outcomes


def _assign(
    lines: Sequence[JsonlLine], bundles: Sequence[bytes | str], limits: Limits
) -> dict[int, list[bytes | str]]:
    """Line index -> the bundles that belong to that envelope line."""
    if isinstance(bundles, str | bytes) or not isinstance(bundles, Sequence):
        raise VerificationError(Code.INVALID_ARGUMENT, "bundles: expected a sequence of bundles")
    envelope_lines = sum(1 for line in lines if line.kind == "envelope")
    limit = limits.max_signatures * max(1, envelope_lines)
    if len(bundles) > limit:
        raise VerificationError(
            Code.TOO_MANY_BUNDLES,
            f"{len(bundles)} bundles exceed the limit of {limit} "
            f"({limits.max_signatures} per envelope line)",
        )
    from . import bundles as bundle_verify  # noqa: PLC0415 - only when bundles are given

    by_payload: dict[tuple[str, bytes], list[int]] = {}
    for index, line in enumerate(lines):
        if line.kind == "envelope":
            by_payload.setdefault(_payload_key(line.envelope), []).append(index)
    assigned: dict[int, list[bytes | str]] = {}
    for position, bundle in enumerate(bundles, 1):
        if not isinstance(bundle, bytes | str):
            raise VerificationError(
                Code.INVALID_ARGUMENT, f"bundle {position}: expected JSON bytes or str"
            )
        try:
            parsed = bundle_verify.parse_bundle(bundle, limits=limits)
        except VerificationError as exc:
            raise VerificationError(exc.code, f"bundle {position}: {exc}") from None
        owners = [] if parsed.envelope is None else by_payload.get(_payload_key(parsed.envelope))
        if not owners:
            raise VerificationError(
                Code.BUNDLE_PAYLOAD_MISMATCH,
                f"bundle {position}: belongs to no envelope line (no line has its payload and "
                "payloadType)",
            )
        signature = parsed.signature
        holding = [
            i for i in owners if any(s.sig == signature for s in lines[i].envelope.signatures)
        ]
        # A bundle for a signature no line holds goes to the lines of its payload, whose
        # verification then refuses it (never silently dropped).
        for index in holding or owners:
            assigned.setdefault(index, []).append(bundle)
    return assigned


def _payload_key(envelope: Envelope) -> tuple[str, bytes]:
    return envelope.payload_type, hashlib.sha256(envelope.payload).digest()


def _hash_once(
    digests: Sequence[str], artifacts: Sequence[str | os.PathLike[str]]
) -> tuple[Sequence[str], Sequence[str | os.PathLike[str]]]:
    """Artifacts hashed once for all lines (as ``sha256:HEX`` digests), not once per line.

    Anything unusual (not paths, unreadable) is left to each line's `verify`, which reports it
    with its own code.
    """
    if isinstance(artifacts, str | bytes) or not isinstance(artifacts, Sequence):
        return digests, artifacts
    if not artifacts or isinstance(digests, str | bytes) or not isinstance(digests, Sequence):
        return digests, artifacts
    hashed = []
    for artifact in artifacts:
        if not isinstance(artifact, str | os.PathLike):
            return digests, artifacts
        try:
            hashed.append(f"sha256:{digest_file(artifact)['sha256']}")
        except (DssesignError, OSError, ValueError):
            return digests, artifacts
    return (*digests, *hashed), ()
