"""Reading the caller's inputs strictly and within `Limits`: arguments, envelope, Statement.

Each refusal here is a `_Stop` with the code the caller sees.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from .._internal.strict_json import loads_strict
from ..codes import Code
from ..core.dsse import Envelope, Signature
from ..errors import DssesignError, EnvelopeError, InputError
from ..intoto.statement import parse_statement
from ..intoto.subjects import subject_from_digest
from ..limits import Limits, exceeded
from ._run import _Stop


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


def _read_statement(payload: bytes, limits: Limits) -> dict[str, object]:
    try:
        return parse_statement(payload, allow_v01=True, limits=limits)
    except DssesignError as exc:
        raise _Stop(Code.INVALID_STATEMENT, f"payload: {exc}") from None
