"""What `diff` knows about the meaning of fields: which changes widen trust, and how X.509
material (CA certificates, CRLs) is summarised for a reviewer.

A change is located by its *shape*: the path from the section down with list entries as
``"[]"`` (``("keys", "[]", "revoked", "time")``). `widening` says, for one change, why it
widens trust (a verifier that accepted OLD would accept more under NEW), or None. It errs on the
side of saying so: a change that may widen trust depending on other fields ("may") is marked
too. Unmarked changes are still changes; the reviewer reads every line.

X.509 parsing is imported only when a document carries certificates or CRLs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["certificate_shown", "crl_change_reason", "crl_info", "widening"]

_Shape = tuple[str, ...]

#: Entries whose addition trusts something new, and what each is.
_ENTRIES: Final[Mapping[_Shape, str]] = {
    ("keys", "[]"): "a signing key",
    ("rootKeys", "keys", "[]"): "a root key",
    ("rotations", "[]"): "a key handover (the new key inherits the old key's trust)",
    ("timestampAuthorities", "[]"): "a timestamp authority",
    ("sigstore", "identities", "[]"): "a keyless identity",
    ("pki", "certificateAuthorities", "[]"): "an organisation CA",
    ("pki", "identities", "[]"): "a certificate identity",
}
_IDENTITY_RULES: Final = frozenset({("sigstore", "identities", "[]"), ("pki", "identities", "[]")})
_SUBJECT_MEMBERS: Final = frozenset({"issuer", "ca", "subject", "subjectRegExp", "subjectDN"})


def _later(change: str, old: object, new: object) -> bool:
    """Removed, or moved later (times are compared in their one fixed-width spelling)."""
    if change == "removed":
        return True
    return change == "changed" and isinstance(old, str) and isinstance(new, str) and new > old


def _earlier(change: str, old: object, new: object) -> bool:
    if change == "removed":
        return True
    return change == "changed" and isinstance(old, str) and isinstance(new, str) and new < old


def _lowered(change: str, old: object, new: object) -> bool:
    return change == "changed" and isinstance(old, int) and isinstance(new, int) and new < old


def _entry_member(shape: _Shape, change: str, old: object, new: object) -> str | None:
    """A member of a key, TSA, identity or CA entry (or of its `revoked` object)."""
    entry, last = shape[:-1], shape[-1]
    if last in ("revoked", "revokedAt") and change == "removed":
        return "a revocation is lifted"
    if (last == "revokedAt" or shape[-2:] == ("revoked", "time")) and _later(change, old, new):
        return "a revocation moves later"
    if last == "validFrom" and _earlier(change, old, new):
        return "its window opens earlier"
    if last in ("validUntil", "transitionDeadline") and _later(change, old, new):
        return "its window closes later"
    if last == "predicateTypes" and change == "removed":
        return "it may attest to any predicate type"
    if entry in _IDENTITY_RULES and last in _SUBJECT_MEMBERS and change != "removed":
        return "the rule matches other signers"
    if entry in _IDENTITY_RULES and last == "extensions" and change == "removed":
        return "it no longer requires certificate extensions"
    if entry == ("pki", "certificateAuthorities", "[]") and last == "certificate":
        return "the CA's certificate is replaced"
    return None


def widening(shape: _Shape, change: str, old: object, new: object) -> str | None:
    """Why this change widens trust, or None (see the module docstring)."""
    what = _ENTRIES.get(shape)
    if what is not None:
        return f"{what} is trusted" if change == "added" else None
    if shape[:1] == ("sigstore",) and shape[1:2] == ("trustedRoot",):
        return "the Sigstore trusted root changed: its CAs, logs and TSAs are trusted"
    if shape[:3] == ("timestampAuthorities", "[]", "certificateChain"):
        return "a timestamp authority's certificate chain changed"
    if shape == ("pki", "crls", "[]") and change == "removed":
        return "a CRL is no longer carried: what it revoked counts again"
    if shape[:-1] in _ENTRIES or shape[-2:] == ("revoked", "time"):
        return _entry_member(shape, change, old, new)
    if shape[-2:] == ("predicateTypes", "[]") and shape[:-2] in _ENTRIES and change == "added":
        return "it may attest to one more predicate type"
    if shape[-2:-1] == ("extensions",) and shape[:-2] in _IDENTITY_RULES and change != "added":
        return "a required certificate extension is dropped or changed"
    return _policy(shape, change, old, new)


def _policy(shape: _Shape, change: str, old: object, new: object) -> str | None:
    """Policy, role and root-key changes that let fewer or other signatures suffice."""
    last = shape[-1]
    per_type = shape[:2] == ("policy", "perType")
    if last == "threshold" and _lowered(change, old, new):
        return "a threshold is lowered"
    if (last == "requiredKeyids" and change == "removed") or (
        shape[-2:] == ("requiredKeyids", "[]") and change == "removed"
    ):
        return "a key is no longer required"
    if (last == "requiredRoles" and change == "removed") or (
        shape[-2:] == ("requiredRoles", "[]") and change == "removed"
    ):
        return "a role is no longer required"
    if last == "requireTimestamp" and change == "removed":
        return "timestamps are no longer required"
    if last == "anyRole" and change == "added":
        return "one required role now suffices"
    if shape == ("policy", "hybrid"):
        return "the hybrid mode changed: other keys may count"
    if per_type and len(shape) == 3 and change in ("added", "removed"):
        return "a predicate type's policy changed: it may be weaker than the one it replaces"
    if shape[:2] == ("roles", "[]") and shape[2:3] in (("keyids",), ("identities",)):
        return "a role gains members" if change == "added" else None
    return None


# --- X.509 material, summarised ------------------------------------------------------------


def certificate_shown(pem: str) -> str | None:
    """A PEM certificate as a reviewer compares it: subject and SHA-256 fingerprint."""
    from cryptography import x509  # noqa: PLC0415 - X.509 only when a diff shows a certificate
    from cryptography.hazmat.primitives import hashes  # noqa: PLC0415 - as above

    try:
        cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
        subject = cert.subject.rfc4514_string()
    except (ValueError, UnicodeEncodeError):
        return None
    return f"<certificate {subject}, SHA-256 {cert.fingerprint(hashes.SHA256()).hex()}>"


def crl_info(pem: object) -> tuple[dict[str, Any], frozenset[int]] | None:
    """A carried CRL's summary (issuer, CRLNumber, lastUpdate, nextUpdate, entries, SHA-256 of
    its DER) and the serials it revokes; None if it is not one PEM CRL."""
    from cryptography import x509  # noqa: PLC0415 - X.509 only when a diff shows a CRL
    from cryptography.hazmat.primitives.serialization import Encoding  # noqa: PLC0415 - as above

    from ._common import format_time  # noqa: PLC0415 - beside the X.509 imports it serves

    if not isinstance(pem, str):
        return None
    try:
        crl = x509.load_pem_x509_crl(pem.encode("ascii"))
        issuer = crl.issuer.rfc4514_string()
        serials = frozenset(entry.serial_number for entry in crl)
    except (ValueError, UnicodeEncodeError):
        return None
    try:
        number: int | None = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except (x509.ExtensionNotFound, ValueError):
        number = None
    next_update = crl.next_update_utc
    summary = {
        "issuer": issuer,
        "crlNumber": number,
        "lastUpdate": format_time(crl.last_update_utc),
        "nextUpdate": format_time(next_update) if next_update is not None else None,
        "entries": len(serials),
        "sha256": hashlib.sha256(crl.public_bytes(Encoding.DER)).hexdigest(),
    }
    return summary, serials


def crl_change_reason(
    old: Mapping[str, Any], new: Mapping[str, Any], dropped: frozenset[int]
) -> str | None:
    """Why replacing a CA's CRL `old` by `new` widens trust: serials no longer revoked, or an
    older CRL (a lower CRLNumber, or an earlier lastUpdate) put back."""
    if dropped:
        shown = ", ".join(f"{serial:x}" for serial in sorted(dropped)[:8])
        more = f" and {len(dropped) - 8} more" if len(dropped) > 8 else ""
        return f"certificates are no longer revoked (serial {shown}{more})"
    old_number, new_number = old.get("crlNumber"), new.get("crlNumber")
    if isinstance(old_number, int) and isinstance(new_number, int) and new_number < old_number:
        return "an older CRL replaces a newer one (a lower CRLNumber)"
    if str(new.get("lastUpdate")) < str(old.get("lastUpdate")):
        return "an older CRL replaces a newer one (an earlier lastUpdate)"
    return None
