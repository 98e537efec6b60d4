"""Management operations on the `pki` section: organisation CAs, certificate identities, CRLs.

Each returns a new TrustRoot with version + 1. The new section is built as JSON and read back
through `pki.parse_pki`, so every check of the loader applies to an edit too (chains to a CA
listed before, CRL signatures, unique names, no Ed25519 CA, no URI name constraints), then the
whole document is checked against the published schema: what an edit writes always loads.

X.509 code (pyca/cryptography, `pki`) is imported by the functions here, when they run, so
`import dssesign.trust` and loading a trust root without the section stay free of it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from ..errors import ConfigError, TrustRootError
from ._common import _clip, _fail, _now, _whole_seconds, format_time
from .document import to_json
from .edit import _bump
from .model import TrustRoot
from .schema import _check_array_sizes, _schema_check

if TYPE_CHECKING:  # X.509 is imported when a function here runs, never by `import dssesign.trust`
    from cryptography import x509

    from .pki import OrganisationPKI

__all__ = [
    "add_certificate_authority",
    "add_certificate_identity",
    "add_crl",
    "revoke_certificate_authority",
    "revoke_identity",
]

_CAS: Final = "$.pki.certificateAuthorities"
_IDENTITIES: Final = "$.pki.identities"
_CRLS: Final = "$.pki.crls"
#: A dotted OID as the schema spells it (`x509.ObjectIdentifier` alone accepts more).
_OID: Final = re.compile(r"[0-2](\.[0-9]{1,20}){1,30}")


def _section(root: TrustRoot) -> dict[str, Any]:
    """The current `pki` section as JSON (a fresh copy), or an empty one."""
    if root.pki is None:
        return {"certificateAuthorities": []}
    return root.pki.to_dict()


def _require_pki(root: TrustRoot, what: str) -> OrganisationPKI:
    if root.pki is None:
        raise TrustRootError(
            f"the trust root has no organisation CA yet; add one before you {what} "
            "(dssesign trust-root add-ca FILE --certificate CA.pem --name NAME)",
            "$.pki",
        )
    return root.pki


def _names(pki: OrganisationPKI) -> str:
    return _clip(", ".join(a.name for a in pki.authorities), 160)


def _apply(root: TrustRoot, section: dict[str, Any]) -> TrustRoot:
    """The trust root with this `pki` section: parsed as the loader parses it, version + 1,
    the model's rules, and the whole document against the schema."""
    from .pki import parse_pki  # noqa: PLC0415 - X.509 only when the pki section is edited

    for member in ("identities", "crls"):  # omitted rather than empty: one spelling
        if not section.get(member):
            section.pop(member, None)
    updated = _bump(root, pki=parse_pki(section))
    document = to_json(updated)
    _check_array_sizes(document)
    _schema_check(document)
    return updated


# --- certificate authorities -----------------------------------------------------------------


def _certificate(value: object, path: str) -> x509.Certificate:
    """One certificate: an `x509.Certificate`, or PEM text / bytes holding exactly one."""
    from cryptography import x509  # noqa: PLC0415 - X.509 only when the pki section is edited

    from ..timestamp.authority import _load_one_pem  # noqa: PLC0415 - X.509 only when the pki section is edited

    if isinstance(value, x509.Certificate):
        return value
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            raise _fail(path, "is not PEM text (non-ASCII bytes)") from None
    return _load_one_pem(value, path)


def add_certificate_authority(
    root: TrustRoot,
    certificate_pem: bytes | str | x509.Certificate,
    name: str,
    *,
    label: str | None = None,
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
) -> TrustRoot:
    """Trust an organisation CA: a self-signed root, or an intermediate issued by a CA already
    listed (add its issuer first). Chains through it count inside [valid_from, valid_until].

    Refused (TrustRootError naming the path): a name already listed, the same certificate
    under another name, a certificate that is not a CA (basicConstraints cA), an Ed25519 or
    Ed448 CA, URI name constraints (pyca/cryptography could not enforce them), an intermediate
    whose issuer is not listed, more than 32 CAs.
    """
    from cryptography.hazmat.primitives.serialization import Encoding  # noqa: PLC0415 - X.509 only when the pki section is edited

    from .pki import MAX_CERTIFICATE_AUTHORITIES  # noqa: PLC0415 - X.509 only when the pki section is edited

    section = _section(root)
    authorities: list[dict[str, Any]] = section["certificateAuthorities"]
    index = len(authorities)
    path = f"{_CAS}[{index}]"
    cert = _certificate(certificate_pem, f"{path}.certificate")
    pem = cert.public_bytes(Encoding.PEM).decode("ascii")
    for position, entry in enumerate(authorities):
        if entry["name"] == name:
            raise _fail(
                f"{_CAS}[{position}].name",
                f"a CA named {_clip(repr(name), 80)} is already listed (names are unique)",
            )
        if entry["certificate"] == pem:
            # Under two names, revoking one of them would leave the CA trusted.
            raise _fail(
                f"{_CAS}[{position}].certificate",
                f"this certificate is already listed as {_clip(repr(entry['name']), 80)}",
            )
    if index >= MAX_CERTIFICATE_AUTHORITIES:
        raise _fail(_CAS, f"already lists {MAX_CERTIFICATE_AUTHORITIES} CAs, the most it may")
    entry = {"name": name, "certificate": pem}
    if valid_from is not None:
        entry["validFrom"] = format_time(_whole_seconds(valid_from, "valid_from", round_up=True))
    if valid_until is not None:
        entry["validUntil"] = format_time(_whole_seconds(valid_until, "valid_until"))
    if label is not None:
        entry["label"] = label
    authorities.append(entry)
    return _apply(root, section)


def revoke_certificate_authority(
    root: TrustRoot, name: str, at: datetime | None = None
) -> TrustRoot:
    """Revoke the CA `name` from `at` (default now, rounded down to whole seconds) on: a chain
    through it judged at or after `at` is refused; signatures made before still count."""
    pki = _require_pki(root, "revoke a CA")
    index = next((i for i, a in enumerate(pki.authorities) if a.name == name), None)
    if index is None:
        raise TrustRootError(
            f"trust root has no certificate authority named {_clip(repr(name), 80)} "
            f"(listed: {_names(pki)})",
            _CAS,
        )
    authority = pki.authorities[index]
    if authority.revoked_at is not None:
        raise _fail(
            f"{_CAS}[{index}].revokedAt",
            f"certificate authority {_clip(repr(name), 80)} is already revoked "
            f"(since {format_time(authority.revoked_at)})",
        )
    section = pki.to_dict()
    section["certificateAuthorities"][index]["revokedAt"] = format_time(_now(at))
    return _apply(root, section)


# --- certificate identities ------------------------------------------------------------------


def _rule_of(entry: Mapping[str, Any]) -> tuple[object, ...]:
    """What makes two identity rules the same rule: CA, subject form and value, extensions."""
    return (
        entry.get("ca"),
        entry.get("subject"),
        entry.get("subjectRegExp"),
        entry.get("subjectDN"),
        tuple(sorted((entry.get("extensions") or {}).items())),
    )


def add_certificate_identity(
    root: TrustRoot,
    *,
    ca: str,
    subject: str | None = None,
    subject_regexp: str | None = None,
    subject_dn: str | None = None,
    extensions: Mapping[str, str] | None = None,
    predicate_types: Sequence[str] = (),
    name: str | None = None,
    label: str | None = None,
) -> TrustRoot:
    """Trust signatures by certificates that chain through the CA named `ca` and whose subject
    matches: exactly one of `subject` (a SAN: email, URI or DNS name, exact), `subject_regexp`
    (RE2, matching a whole SAN) or `subject_dn` (RFC 4514, compared after normalising).

    `extensions` maps dotted OIDs to the exact value each must hold; the certificate must also
    carry the codeSigning EKU (checked when verifying). `name` is unique across keyless and
    certificate identities: roles refer to identities by it.
    """
    from .pki import MAX_CERTIFICATE_IDENTITIES  # noqa: PLC0415 - X.509 only when the pki section is edited

    pki = _require_pki(root, "add a certificate identity")
    given = [v for v in (subject, subject_regexp, subject_dn) if v is not None]
    if len(given) != 1:
        raise ConfigError(
            "a certificate identity needs exactly one of subject, subject_regexp and subject_dn "
            "(--subject, --subject-regexp, --subject-dn)"
        )
    if isinstance(predicate_types, str):
        raise ConfigError("predicate_types must be a sequence of URIs, not one string")
    if pki.authority(ca) is None:
        raise _fail(
            f"{_IDENTITIES}[{len(pki.identities)}].ca",
            f"{_clip(repr(ca), 80)} names no certificate authority of the trust root "
            f"(listed: {_names(pki)})",
        )
    section = _section(root)
    identities: list[dict[str, Any]] = section.setdefault("identities", [])
    index = len(identities)
    path = f"{_IDENTITIES}[{index}]"
    if index >= MAX_CERTIFICATE_IDENTITIES:
        raise _fail(_IDENTITIES, f"already lists {MAX_CERTIFICATE_IDENTITIES} rules, the most")
    entry: dict[str, Any] = {"ca": ca}
    for member, value in (
        ("subject", subject),
        ("subjectRegExp", subject_regexp),
        ("subjectDN", subject_dn),
    ):
        if value is not None:
            entry[member] = value
    if extensions:
        for oid in extensions:
            if not isinstance(oid, str) or not _OID.fullmatch(oid):
                raise _fail(
                    f"{path}.extensions",
                    f"{_clip(repr(oid), 80)} is not a dotted OID (like 1.3.6.1.4.1.55555.1)",
                )
        entry["extensions"] = dict(extensions)
    if predicate_types:
        entry["predicateTypes"] = list(predicate_types)
    if label is not None:
        entry["label"] = label
    if name is not None:
        entry["name"] = name
        keyless = root.keyless.identities if root.keyless is not None else ()
        for position, rule in enumerate(keyless):
            if rule.name == name:
                raise _fail(
                    f"{path}.name",
                    f"{_clip(repr(name), 80)} is already the name of a keyless identity "
                    f"($.sigstore.identities[{position}]); names are unique across both kinds",
                )
    for position, listed in enumerate(identities):
        if name is not None and listed.get("name") == name:
            raise _fail(
                f"{path}.name",
                f"{_clip(repr(name), 80)} is already the name of {_IDENTITIES}[{position}] "
                "(names are unique)",
            )
        if _rule_of(listed) == _rule_of(entry) and "revokedAt" not in listed:
            # Two copies of one rule: revoking one of them would leave the signer trusted.
            raise _fail(path, f"the same rule is already listed at {_IDENTITIES}[{position}]")
    identities.append(entry)
    return _apply(root, section)


def revoke_identity(root: TrustRoot, name: str, at: datetime | None = None) -> TrustRoot:
    """Revoke the certificate identity `name` from `at` (default now, rounded down to whole
    seconds) on: its signatures made at or after `at` no longer count.

    Keyless identity rules have no revocation time: naming one is refused (remove the rule
    from `sigstore.identities` in a new version instead).
    """
    for position, rule in enumerate(root.keyless.identities if root.keyless is not None else ()):
        if rule.name == name:
            raise _fail(
                f"$.sigstore.identities[{position}]",
                f"{_clip(repr(name), 80)} is a keyless identity: keyless identities are "
                "removed from the trust root, not revoked (they carry no revocation time)",
            )
    pki = _require_pki(root, "revoke a certificate identity")
    index = next((i for i, rule in enumerate(pki.identities) if rule.name == name), None)
    if index is None:
        named = [i.name for i in pki.identities if i.name is not None]
        listed = _clip(", ".join(named), 160) if named else "none is named (add-identity --name)"
        raise TrustRootError(
            f"trust root has no certificate identity named {_clip(repr(name), 80)} "
            f"(named identities: {listed})",
            _IDENTITIES,
        )
    identity = pki.identities[index]
    if identity.revoked_at is not None:
        raise _fail(
            f"{_IDENTITIES}[{index}].revokedAt",
            f"certificate identity {_clip(repr(name), 80)} is already revoked "
            f"(since {format_time(identity.revoked_at)})",
        )
    section = pki.to_dict()
    section["identities"][index]["revokedAt"] = format_time(_now(at))
    return _apply(root, section)


# --- CRLs ------------------------------------------------------------------------------------


def crl_number(crl: x509.CertificateRevocationList) -> int | None:
    """The CRL's CRLNumber extension, if it carries a readable one."""
    from cryptography import x509  # noqa: PLC0415 - X.509 only when the pki section is edited

    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except (x509.ExtensionNotFound, ValueError):
        return None


def _not_newer(
    new: x509.CertificateRevocationList, old: x509.CertificateRevocationList
) -> str | None:
    """Why `new` does not supersede `old` (the same CA's), or None: a higher CRLNumber when
    both carry one, else a later lastUpdate."""
    new_number, old_number = crl_number(new), crl_number(old)
    new_time, old_time = new.last_update_utc, old.last_update_utc
    if new_number is not None and old_number is not None:
        if new_number <= old_number:
            return f"its CRLNumber {new_number} is not higher than {old_number}"
        if new_time < old_time:
            return (
                f"its CRLNumber is higher, but its lastUpdate {format_time(new_time)} is before "
                f"{format_time(old_time)}"
            )
        return None
    if new_time <= old_time:
        return f"its lastUpdate {format_time(new_time)} is not after {format_time(old_time)}"
    return None


def add_crl(root: TrustRoot, crl_pem: bytes | str | x509.CertificateRevocationList) -> TrustRoot:
    """Carry a CRL for offline revocation checks. Its signature must verify under the key of
    the listed CA it names as issuer; the CRL of a CA that already has one replaces it only if
    it is newer (a higher CRLNumber, else a later lastUpdate): an older or equal one is refused.
    """
    from cryptography import x509  # noqa: PLC0415 - X.509 only when the pki section is edited
    from cryptography.hazmat.primitives.serialization import Encoding  # noqa: PLC0415 - X.509 only when the pki section is edited

    from .pki import MAX_CRLS, crl_issuer, load_crl  # noqa: PLC0415 - X.509 only when the pki section is edited

    pki = _require_pki(root, "add a CRL")
    if isinstance(crl_pem, x509.CertificateRevocationList):
        crl = crl_pem
    else:
        crl = load_crl(crl_pem, _CRLS)
    try:
        issuer = crl_issuer(crl, pki.authorities)
    except ValueError as exc:
        raise _fail(_CRLS, f"the CRL is refused: {exc}") from None
    crls = list(pki.crls)
    keys = {a.name: a.key for a in pki.authorities}
    for index, (name, carried) in enumerate(crls):
        if keys.get(name) == issuer.key:  # the same CA key: a renewal shares its CRL
            problem = _not_newer(crl, carried)
            if problem is not None:
                raise _fail(
                    f"{_CRLS}[{index}]",
                    f"the CRL of {_clip(repr(name), 80)} is not newer than the one carried: "
                    f"{problem}",
                )
            crls[index] = (name, crl)
            break
    else:
        if len(crls) >= MAX_CRLS:
            raise _fail(_CRLS, f"already carries {MAX_CRLS} CRLs, the most it may")
        crls.append((issuer.name, crl))
    section = pki.to_dict()
    section["crls"] = [c.public_bytes(Encoding.PEM).decode("ascii") for _, c in crls]
    return _apply(root, section)
