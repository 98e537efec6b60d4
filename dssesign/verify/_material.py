"""A bundle's verificationMaterial, read for shape: key hint, log entry kinds, certificates and
RFC 3161 tokens, each bounded (nothing here is verified; `bundles` and `_x509` judge them)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from ..codes import Code
from ..core.dsse import b64decode
from ..errors import InputError, VerificationError
from ..timestamp.verify import MAX_TIMESTAMPS, MAX_TOKEN_BYTES

_MATERIAL_FIELDS: Final = frozenset(
    {"publicKey", "x509CertificateChain", "certificate", "tlogEntries", "timestampVerificationData"}
)
_KEY_MATERIAL: Final = ("publicKey", "x509CertificateChain", "certificate")
_MAX_TLOG_ENTRIES: Final = 8
#: base64 characters of the largest token `timestamp.verify` reads.
_MAX_TOKEN_CHARS: Final = 4 * ((MAX_TOKEN_BYTES + 2) // 3)


def _error(code: Code, message: str) -> VerificationError:
    return VerificationError(code, message)


#: Certificates a v0.1/v0.2 chain may carry (leaf, intermediates): bounds chain building.
_MAX_BUNDLE_CERTIFICATES: Final = 8
_MAX_CERTIFICATE_CHARS: Final = 4 * ((64 * 1024 + 2) // 3)


def _certificates(material: Mapping[str, Any]) -> tuple[bytes, ...]:
    """The DER certificates of `certificate` (v0.3) or `x509CertificateChain` (v0.1/v0.2),
    bounded in number and size; shape only (the verifier judges them)."""
    where = "bundle.verificationMaterial"
    if "certificate" in material:
        entries: object = [material["certificate"]]
        where += ".certificate"
    elif "x509CertificateChain" in material:
        chain = material["x509CertificateChain"]
        entries = chain.get("certificates") if isinstance(chain, dict) else None
        where += ".x509CertificateChain.certificates"
        if not isinstance(entries, list) or not 1 <= len(entries) <= _MAX_BUNDLE_CERTIFICATES:
            raise _error(
                Code.BUNDLE_MALFORMED,
                f"{where}: expected a list of 1 to {_MAX_BUNDLE_CERTIFICATES} certificates",
            )
    else:
        return ()
    assert isinstance(entries, list)
    found: list[bytes] = []
    for index, entry in enumerate(entries):
        raw = entry.get("rawBytes") if isinstance(entry, dict) else None
        if (
            not isinstance(raw, str)
            or not raw
            or len(raw) > _MAX_CERTIFICATE_CHARS
            or set(entry) != {"rawBytes"}
        ):
            raise _error(
                Code.BUNDLE_MALFORMED,
                f"{where}[{index}]: expected {{rawBytes: base64 DER}} of at most 64 KiB",
            )
        try:
            found.append(b64decode(raw, what=f"{where}[{index}].rawBytes"))
        except InputError as exc:
            raise _error(Code.BUNDLE_MALFORMED, str(exc)) from None
    return tuple(found)


def _timestamps(data: object) -> tuple[bytes, ...]:
    """timestampVerificationData.rfc3161Timestamps[].signedTimestamp, bounded, as DER bytes."""
    where = "bundle.verificationMaterial.timestampVerificationData"
    if data is None:
        return ()
    if not isinstance(data, dict) or set(data) - {"rfc3161Timestamps"}:
        raise _error(Code.BUNDLE_MALFORMED, f"{where}: expected an object of rfc3161Timestamps")
    entries = data.get("rfc3161Timestamps", [])
    if not isinstance(entries, list):
        raise _error(Code.BUNDLE_MALFORMED, f"{where}.rfc3161Timestamps: expected a list")
    if len(entries) > MAX_TIMESTAMPS:
        raise _error(
            Code.TOO_MANY_TIMESTAMPS,
            f"{where}: {len(entries)} timestamps, more than {MAX_TIMESTAMPS}",
        )
    tokens: list[bytes] = []
    for index, entry in enumerate(entries):
        text = entry.get("signedTimestamp") if isinstance(entry, dict) else None
        if (
            not isinstance(entry, dict)
            or set(entry) != {"signedTimestamp"}
            or not isinstance(text, str)
            or len(text) > _MAX_TOKEN_CHARS
        ):
            raise _error(
                Code.BUNDLE_MALFORMED,
                f"{where}.rfc3161Timestamps[{index}]: expected {{signedTimestamp: base64}} of at "
                f"most {MAX_TOKEN_BYTES} bytes",
            )
        try:
            tokens.append(b64decode(text, what=f"{where}.rfc3161Timestamps[{index}]"))
        except InputError as exc:
            raise _error(Code.BUNDLE_MALFORMED, str(exc)) from None
    return tuple(tokens)


def _material(material: Mapping[str, Any], version: str) -> tuple[str | None, tuple[str, ...]]:
    where = "bundle.verificationMaterial"
    unknown = sorted(set(material) - _MATERIAL_FIELDS)
    if unknown:
        raise _error(Code.BUNDLE_MALFORMED, f"{where}: unknown field {unknown[0][:80]!r}")
    present = [name for name in _KEY_MATERIAL if name in material]
    if len(present) != 1:
        raise _error(
            Code.BUNDLE_MALFORMED,
            f"{where}: needs exactly one of publicKey, x509CertificateChain and certificate",
        )
    if version == "0.3" and present[0] == "x509CertificateChain":
        raise _error(
            Code.BUNDLE_MALFORMED, f"{where}: a v0.3 bundle carries `certificate`, not a chain"
        )
    if version != "0.3" and present[0] == "certificate":
        raise _error(
            Code.BUNDLE_MALFORMED,
            f"{where}: `certificate` is new in bundle v0.3; a v{version} bundle carries "
            "x509CertificateChain",
        )
    key_hint = None
    if present[0] == "publicKey":
        public_key = material["publicKey"]
        hint = public_key.get("hint", "") if isinstance(public_key, dict) else None
        if not isinstance(hint, str) or len(hint) > 512:
            raise _error(Code.BUNDLE_MALFORMED, f"{where}.publicKey.hint: expected a short string")
        key_hint = hint
    entries = material.get("tlogEntries", [])
    if not isinstance(entries, list) or len(entries) > _MAX_TLOG_ENTRIES:
        raise _error(
            Code.BUNDLE_MALFORMED,
            f"{where}.tlogEntries: expected a list of at most {_MAX_TLOG_ENTRIES}",
        )
    kinds: list[str] = []
    for index, entry in enumerate(entries):
        kind_version = entry.get("kindVersion") if isinstance(entry, dict) else None
        if not isinstance(kind_version, dict) or not all(
            isinstance(kind_version.get(k), str) for k in ("kind", "version")
        ):
            raise _error(
                Code.BUNDLE_MALFORMED,
                f"{where}.tlogEntries[{index}].kindVersion: missing or invalid",
            )
        kinds.append(f"{kind_version['kind'][:40]}/{kind_version['version'][:20]}")
    return key_hint, tuple(kinds)
