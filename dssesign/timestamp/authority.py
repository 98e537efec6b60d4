"""A trusted RFC 3161 timestamp authority: its certificate chain, window, label and revocation.

This is the trust root's `timestampAuthorities` entry as a value. The chain is checked once, on
construction (leaf first, each certificate issued by the next, the leaf a TSA certificate), so
the verifier can rely on it and a bad trust root fails where it is loaded, not at verify time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from ..errors import TrustRootError

__all__ = [
    "MAX_CHAIN_CERTIFICATES",
    "MAX_PEM_BYTES",
    "TimestampAuthority",
    "load_pem_chain",
    "sigstore_authorities",
]

#: Certificates in one TSA chain (leaf, intermediates, root): caps the chain-building work.
MAX_CHAIN_CERTIFICATES: Final = 8
#: Size of one PEM certificate (a 16384-bit RSA certificate is about 5 KiB).
MAX_PEM_BYTES: Final = 64 * 1024
#: Length of a TSA name or label.
MAX_NAME_CHARS: Final = 128

_FIELDS: Final = frozenset(
    {"name", "certificateChain", "validFrom", "validUntil", "label", "revokedAt"}
)
_TIME: Final = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})Z")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")
_PEM_BEGIN: Final = "-----BEGIN CERTIFICATE-----"


def _fail(path: str, message: str) -> TrustRootError:
    return TrustRootError(f"trust root {path}: {message}", path)


def _parse_time(value: object, path: str) -> datetime:
    """The trust root's one time spelling, ``YYYY-MM-DDTHH:MM:SSZ``."""
    match = _TIME.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise _fail(
            path, f"{str(value)[:40]!r} is not an RFC 3339 UTC time like 2026-01-31T12:00:00Z"
        )
    try:
        year, month, day, hour, minute, second = (int(g) for g in match.groups())
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError as exc:  # month 13, Feb 30, second 60
        raise _fail(path, f"{value!r} is not a valid time ({exc})") from None


def _format_time(moment: datetime) -> str:
    t = moment.astimezone(UTC)
    return f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}Z"


def _check_text(value: object, path: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_NAME_CHARS:
        raise _fail(path, f"must be a non-empty string of at most {MAX_NAME_CHARS} characters")
    if _CONTROL.search(value):
        raise _fail(path, "must not contain control or reordering characters")
    return value


def _check_time(value: object, path: str) -> None:
    if value is None:
        return
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise _fail(path, "must be a timezone-aware datetime")
    if value.microsecond:
        raise _fail(path, "must be whole seconds (the format has no fractions)")


def load_pem_chain(
    data: str | bytes, path: str = "$.certificateChain"
) -> tuple[x509.Certificate, ...]:
    """Certificates from PEM text (a `--certificate-chain` file), bounded, leaf first."""
    text = data.decode("ascii", "replace") if isinstance(data, bytes) else data
    if not isinstance(text, str):
        raise _fail(path, "must be PEM text")
    count = text.count(_PEM_BEGIN)
    if not 1 <= count <= MAX_CHAIN_CERTIFICATES:
        raise _fail(path, f"must hold 1 to {MAX_CHAIN_CERTIFICATES} PEM certificates, not {count}")
    if len(text) > MAX_PEM_BYTES * count:
        raise _fail(path, f"is larger than {MAX_PEM_BYTES} bytes per certificate")
    try:
        return tuple(x509.load_pem_x509_certificates(text.encode("ascii")))
    except (ValueError, UnicodeEncodeError) as exc:
        raise _fail(path, f"is not PEM certificates ({exc})") from None


def _load_one_pem(value: object, path: str) -> x509.Certificate:
    if not isinstance(value, str) or len(value) > MAX_PEM_BYTES:
        raise _fail(path, f"must be one PEM certificate of at most {MAX_PEM_BYTES} bytes")
    if value.count(_PEM_BEGIN) != 1:
        raise _fail(path, "must hold exactly one PEM certificate")
    try:
        return x509.load_pem_x509_certificate(value.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise _fail(path, f"is not a PEM certificate ({exc})") from None


def _check_chain(chain: object, path: str) -> None:
    if not isinstance(chain, tuple) or not 1 <= len(chain) <= MAX_CHAIN_CERTIFICATES:
        raise _fail(path, f"must be a tuple of 1 to {MAX_CHAIN_CERTIFICATES} certificates")
    if not all(isinstance(c, x509.Certificate) for c in chain):
        raise _fail(path, "must hold x509.Certificate objects")
    if len(set(chain)) != len(chain):
        raise _fail(path, "holds the same certificate twice")
    try:
        eku = chain[0].extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        eku = None
    except ValueError as exc:  # a malformed extension
        raise _fail(f"{path}[0]", f"has unreadable extensions ({exc})") from None
    if eku is None or ExtendedKeyUsageOID.TIME_STAMPING not in eku.value:
        raise _fail(f"{path}[0]", "the first certificate must be the TSA's (timeStamping EKU)")
    for index, (child, issuer) in enumerate(itertools.pairwise(chain)):
        try:
            child.verify_directly_issued_by(issuer)
        except (ValueError, TypeError) as exc:
            raise _fail(
                f"{path}[{index}]", f"is not issued by the next certificate in the chain ({exc})"
            ) from None
        except Exception as exc:  # InvalidSignature: a wrong order or a forged link
            raise _fail(
                f"{path}[{index}]",
                f"is not signed by the next certificate in the chain ({type(exc).__name__})",
            ) from None


@dataclass(frozen=True)
class TimestampAuthority:
    """One trusted TSA; its tokens count only inside [valid_from, valid_until] (inclusive).

    A token whose time is at or after `revoked_at` is refused; one before it still counts, as
    trust roots treat key revocation.
    """

    name: str
    #: Leaf (the TSA certificate) first, then intermediates, then the anchor.
    chain: tuple[x509.Certificate, ...]
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    label: str | None = None
    revoked_at: datetime | None = None

    def __post_init__(self) -> None:
        _check_text(self.name, "$.name")
        if self.label is not None:
            _check_text(self.label, "$.label")
        _check_chain(self.chain, "$.certificateChain")
        _check_time(self.valid_from, "$.validFrom")
        _check_time(self.valid_until, "$.validUntil")
        _check_time(self.revoked_at, "$.revokedAt")
        if (
            self.valid_from is not None
            and self.valid_until is not None
            and self.valid_until < self.valid_from
        ):
            raise _fail("$.validUntil", "is before validFrom")

    @property
    def certificate(self) -> x509.Certificate:
        """The TSA certificate (the chain's leaf)."""
        return self.chain[0]

    @cached_property
    def chain_der(self) -> tuple[bytes, ...]:
        """The chain's certificates as DER, in chain order."""
        return tuple(c.public_bytes(Encoding.DER) for c in self.chain)

    @cached_property
    def cache_key(self) -> bytes:
        """SHA-256 over the chain: what the verifier caches chain validation under."""
        digest = hashlib.sha256()
        for der in self.chain_der:
            digest.update(len(der).to_bytes(4, "big") + der)
        return digest.digest()

    def covers(self, moment: datetime) -> bool:
        """Inside the trust-root window at `moment` (both ends inclusive)."""
        return (self.valid_from is None or self.valid_from <= moment) and (
            self.valid_until is None or moment <= self.valid_until
        )

    def revoked_by(self, moment: datetime) -> bool:
        """Revoked at or before `moment`."""
        return self.revoked_at is not None and self.revoked_at <= moment

    def to_dict(self) -> dict[str, Any]:
        """The trust-root JSON form; unset optional fields are left out."""
        entry: dict[str, Any] = {
            "name": self.name,
            "certificateChain": [c.public_bytes(Encoding.PEM).decode("ascii") for c in self.chain],
        }
        if self.valid_from is not None:
            entry["validFrom"] = _format_time(self.valid_from)
        if self.valid_until is not None:
            entry["validUntil"] = _format_time(self.valid_until)
        if self.label is not None:
            entry["label"] = self.label
        if self.revoked_at is not None:
            entry["revokedAt"] = _format_time(self.revoked_at)
        return entry

    @classmethod
    def from_dict(cls, entry: object, path: str = "$") -> TimestampAuthority:
        """One `timestampAuthorities` entry, strictly: unknown fields and wrong types refused."""
        if not isinstance(entry, Mapping):
            raise _fail(path, "must be an object")
        unknown = sorted(str(k)[:40] for k in entry if k not in _FIELDS)
        if unknown:
            raise _fail(path, f"unknown field(s) {', '.join(unknown)}")
        for required in ("name", "certificateChain"):
            if required not in entry:
                raise _fail(f"{path}.{required}", "is required")
        pems = entry["certificateChain"]
        if not isinstance(pems, list) or not 1 <= len(pems) <= MAX_CHAIN_CERTIFICATES:
            raise _fail(
                f"{path}.certificateChain",
                f"must be a list of 1 to {MAX_CHAIN_CERTIFICATES} PEM certificates",
            )
        chain = tuple(
            _load_one_pem(pem, f"{path}.certificateChain[{i}]") for i, pem in enumerate(pems)
        )
        times = {
            field: _parse_time(entry[field], f"{path}.{field}") if field in entry else None
            for field in ("validFrom", "validUntil", "revokedAt")
        }
        try:
            return cls(
                name=_check_text(entry["name"], f"{path}.name"),
                chain=chain,
                valid_from=times["validFrom"],
                valid_until=times["validUntil"],
                label=_check_text(entry["label"], f"{path}.label") if "label" in entry else None,
                revoked_at=times["revokedAt"],
            )
        except TrustRootError as exc:  # name the entry's path, not the bare field
            raise _fail(path + exc.path[1:], str(exc).split(": ", 1)[-1]) from None


#: TSAs read from one Sigstore trusted root (its `timestampAuthorities`).
MAX_SIGSTORE_AUTHORITIES: Final = 32


def sigstore_authorities(trusted_root: Mapping[str, Any]) -> tuple[TimestampAuthority, ...]:
    """The TSAs of a Sigstore trusted_root.json, as authorities (names ``sigstore-tsa-N``).

    A keyed bundle written by cosign or sigstore carries tokens from the TSAs its trusted root
    lists; a trust root with a sigstore section trusts those too. `validFor` is a closed
    window, as the trust root's own windows are.
    """
    path = "$.sigstore.trustedRoot.timestampAuthorities"
    entries = trusted_root.get("timestampAuthorities", [])
    if not isinstance(entries, list) or len(entries) > MAX_SIGSTORE_AUTHORITIES:
        raise _fail(path, f"must be a list of at most {MAX_SIGSTORE_AUTHORITIES} authorities")
    found: list[TimestampAuthority] = []
    for index, entry in enumerate(entries):
        where = f"{path}[{index}]"
        chain_data = entry.get("certChain") if isinstance(entry, Mapping) else None
        certs = chain_data.get("certificates") if isinstance(chain_data, Mapping) else None
        if not isinstance(certs, list) or not 1 <= len(certs) <= MAX_CHAIN_CERTIFICATES:
            raise _fail(f"{where}.certChain", "must hold 1 to 8 certificates")
        chain = []
        for number, cert in enumerate(certs):
            raw = cert.get("rawBytes") if isinstance(cert, Mapping) else None
            if not isinstance(raw, str) or len(raw) > 2 * MAX_PEM_BYTES:
                raise _fail(f"{where}.certChain.certificates[{number}]", "rawBytes: not base64")
            try:
                chain.append(x509.load_der_x509_certificate(base64.b64decode(raw, validate=True)))
            except (ValueError, binascii.Error):
                raise _fail(
                    f"{where}.certChain.certificates[{number}]", "not a DER certificate"
                ) from None
        valid_for = entry.get("validFor", {})
        if not isinstance(valid_for, Mapping):
            raise _fail(f"{where}.validFor", "must be an object")
        window = [
            _sigstore_time(valid_for.get(k), f"{where}.validFor.{k}") for k in ("start", "end")
        ]
        try:
            found.append(
                TimestampAuthority(
                    name=f"sigstore-tsa-{index}",
                    chain=tuple(chain),
                    valid_from=window[0],
                    valid_until=window[1],
                )
            )
        except TrustRootError as exc:
            raise _fail(where, str(exc).split(": ", 1)[-1]) from None
    return tuple(found)


def _sigstore_time(value: object, path: str) -> datetime | None:
    """protobuf JSON Timestamp (RFC 3339, any fraction), whole seconds, or None when absent."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 40:
        raise _fail(path, "must be an RFC 3339 time")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _fail(path, f"{value[:40]!r} is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise _fail(path, "must carry a UTC offset")
    return moment.astimezone(UTC).replace(microsecond=0)
