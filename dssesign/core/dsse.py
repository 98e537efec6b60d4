"""DSSE: pre-authentication encoding and the JSON envelope, parsed strictly and within limits."""

from __future__ import annotations

import base64
import binascii
import json
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._internal.strict_json import loads_strict
from ..errors import EnvelopeError
from ..limits import DEFAULT_LIMITS, Limits, exceeded

_ENVELOPE_FIELDS = ("payload", "payloadType", "signatures")
_B64_VALUE = {
    c: i for i, c in enumerate(string.ascii_uppercase + string.ascii_lowercase + "0123456789+/")
}
_SIGNATURE_FIELDS = ("keyid", "sig")


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSEv1 SP LEN(type) SP type SP LEN(body) SP body, lengths in UTF-8 bytes."""
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)


def b64encode(data: bytes) -> str:
    """Standard padded base64: the one form dssesign writes (`b64decode` also reads URL-safe)."""
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str, *, what: str) -> bytes:
    """Standard or URL-safe base64, padded and canonical; anything looser is an error."""
    alphabet_std = "+" in text or "/" in text
    alphabet_url = "-" in text or "_" in text
    if alphabet_std and alphabet_url:
        raise EnvelopeError(f"{what}: mixes standard and URL-safe base64 alphabets")
    normalized = text.replace("-", "+").replace("_", "/") if alphabet_url else text
    try:
        # strict_mode refuses any character outside the alphabet (what b64decode's
        # validate=True does, without a copy of the text); non-ASCII text is a ValueError.
        data = binascii.a2b_base64(normalized, strict_mode=True)
    except ValueError:  # binascii.Error is one
        raise EnvelopeError(f"{what}: not valid base64") from None
    # b64decode(validate=True) still takes padding after a complete quantum ("AAAA=",
    # "AAAA==="): one byte string, many spellings, and a lookup of "=" below (a fuzz finding:
    # KeyError). Padded base64 is whole quanta.
    if len(normalized) % 4 or normalized.endswith("==="):
        raise EnvelopeError(f"{what}: not valid base64 (padding)")
    # Non-zero padding bits would give one byte string many spellings; only the last
    # character before the padding can carry them.
    if normalized.endswith("=="):
        spare = _B64_VALUE[normalized[-3]] & 0x0F
    elif normalized.endswith("="):
        spare = _B64_VALUE[normalized[-2]] & 0x03
    else:
        spare = 0
    if spare:
        raise EnvelopeError(f"{what}: non-canonical base64")
    return data


@dataclass(frozen=True)
class Signature:
    """One DSSE signature; `keyid` is an unauthenticated hint, `sig` the raw signature bytes."""

    sig: bytes
    keyid: str = ""

    def to_dict(self) -> dict[str, str]:
        """The DSSE JSON form: `sig` in standard base64, an empty `keyid` left out."""
        out = {"keyid": self.keyid} if self.keyid else {}
        out["sig"] = b64encode(self.sig)
        return out


@dataclass(frozen=True)
class Envelope:
    """A DSSE envelope: the payload bytes exactly as signed, their type, and N signatures."""

    payload: bytes
    payload_type: str
    signatures: tuple[Signature, ...] = field(default_factory=tuple)

    def pae(self) -> bytes:
        """The bytes every signature covers: `pae(payload_type, payload)`."""
        return pae(self.payload_type, self.payload)

    def to_dict(self) -> dict[str, Any]:
        """The DSSE JSON object: the payload in standard base64, the signatures in order."""
        return {
            "payload": b64encode(self.payload),
            "payloadType": self.payload_type,
            "signatures": [s.to_dict() for s in self.signatures],
        }

    def to_json(self) -> bytes:
        """Compact JSON, fields in a fixed order, as cosign and sigstore-python write it."""
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes | str, *, limits: Limits = DEFAULT_LIMITS) -> Envelope:
        """Parse untrusted JSON strictly and within `limits`; any fault is an `EnvelopeError`."""
        obj = loads_strict(data, what="envelope", limits=limits, error=EnvelopeError)
        return cls.from_dict(obj, limits=limits)

    @classmethod
    def from_dict(cls, obj: object, *, limits: Limits = DEFAULT_LIMITS) -> Envelope:
        """Validate every field's type and bound; unknown fields are ignored as DSSE requires."""
        if not isinstance(obj, Mapping):
            raise EnvelopeError("envelope: expected a JSON object")
        _refuse_case_variants(obj, _ENVELOPE_FIELDS, "envelope")
        for name in _ENVELOPE_FIELDS:
            if name not in obj:
                raise EnvelopeError(f"envelope: missing required field {name!r}")
        payload_b64 = obj["payload"]
        payload_type = obj["payloadType"]
        signatures = obj["signatures"]
        if not isinstance(payload_b64, str):
            raise EnvelopeError("envelope.payload: expected a string")
        if not isinstance(payload_type, str):
            raise EnvelopeError("envelope.payloadType: expected a string")
        if len(payload_type) > limits.max_payload_type_chars:
            raise EnvelopeError(
                f"envelope.payloadType: longer than {limits.max_payload_type_chars} characters"
            )
        if not isinstance(signatures, Sequence) or isinstance(signatures, str):
            raise EnvelopeError("envelope.signatures: expected a list")
        if len(signatures) > limits.max_signatures:
            raise EnvelopeError(
                f"envelope.signatures: {len(signatures)} signatures exceed "
                f"{exceeded('max_signatures', limits.max_signatures)}"
            )
        # Check the encoded size first so an oversized payload is never decoded.
        if len(payload_b64) > 4 * ((limits.max_payload_bytes + 2) // 3):
            raise EnvelopeError(
                f"envelope.payload: larger than "
                f"{exceeded('max_payload_bytes', limits.max_payload_bytes)}"
            )
        payload = b64decode(payload_b64, what="envelope.payload")
        parsed = tuple(
            _parse_signature(item, index, limits) for index, item in enumerate(signatures)
        )
        return cls(payload=payload, payload_type=payload_type, signatures=parsed)


def _parse_signature(item: object, index: int, limits: Limits) -> Signature:
    where = f"envelope.signatures[{index}]"
    if not isinstance(item, Mapping):
        raise EnvelopeError(f"{where}: expected an object")
    _refuse_case_variants(item, _SIGNATURE_FIELDS, where)
    if "sig" not in item:
        raise EnvelopeError(f"{where}: missing required field 'sig'")
    sig_b64 = item["sig"]
    keyid = item.get("keyid", "")
    if not isinstance(sig_b64, str):
        raise EnvelopeError(f"{where}.sig: expected a string")
    if not isinstance(keyid, str):
        raise EnvelopeError(f"{where}.keyid: expected a string")
    if len(keyid) > limits.max_keyid_chars:
        raise EnvelopeError(f"{where}.keyid: longer than {limits.max_keyid_chars} characters")
    if len(sig_b64) > 4 * ((limits.max_signature_bytes + 2) // 3):
        raise EnvelopeError(f"{where}.sig: larger than {limits.max_signature_bytes} bytes")
    return Signature(sig=b64decode(sig_b64, what=f"{where}.sig"), keyid=keyid)


def _refuse_case_variants(obj: Mapping[str, object], fields: Sequence[str], where: str) -> None:
    # Go's encoding/json matches members case-insensitively: {"payload", "Payload"} would be
    # read differently by another verifier (Go folds Unicode too: U+017F matches 's'), so a
    # case variant of a known field is refused.
    lowered = {name.casefold(): name for name in fields}
    for key in obj:
        canonical = lowered.get(key.casefold())
        if canonical is not None and key != canonical:
            raise EnvelopeError(f"{where}: field {key!r} is a case variant of {canonical!r}")
