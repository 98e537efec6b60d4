"""The trust root's `pki` section: organisation CAs, certificate identities and carried CRLs.

An organisation that runs its own PKI names its signers by certificates, not by keys pinned one
by one. This section holds what an offline verifier needs to judge such a certificate: the CAs
(roots, and intermediates that chain to a root listed before them), the identity rules (which
certificates under which CA count, like keyless identities with a CA in place of an OIDC
issuer) and the CRLs the organisation publishes, each checked against its issuer here, on load,
so a verifier never trusts a CRL or a CA that does not chain.

Imported only when a trust root has the section (X.509 parsing costs verify start-up).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from types import MappingProxyType
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat import asn1
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .._internal.strict_json import member_path
from ..timestamp.authority import _load_one_pem
from ._common import (
    MAX_REGEXP_CHARS,
    _check_name,
    _check_text,
    _check_type_uris,
    _clip,
    _fail,
    format_time,
    parse_time,
)
from .identity import subject_matches

__all__ = [
    "MAX_CERTIFICATE_AUTHORITIES",
    "MAX_CERTIFICATE_IDENTITIES",
    "MAX_CRLS",
    "CertificateAuthority",
    "CertificateIdentity",
    "OrganisationPKI",
    "load_crl",
    "parse_pki",
    "unsupported_ca",
]

MAX_CERTIFICATE_AUTHORITIES: Final = 32
MAX_CERTIFICATE_IDENTITIES: Final = 64
MAX_CRLS: Final = 32
#: One CRL (PEM): a CRL of a few thousand entries; a larger one is an input to refuse offline.
MAX_CRL_BYTES: Final = 1024 * 1024
#: Characters of an RFC 4514 subject DN in an identity rule.
MAX_DN_CHARS: Final = 1024
_CRL_BEGIN: Final = "-----BEGIN X509 CRL-----"
_IDENTITY_FIELDS: Final = frozenset(
    {
        "ca",
        "subject",
        "subjectRegExp",
        "subjectDN",
        "extensions",
        "predicateTypes",
        "label",
        "name",
        "revokedAt",
    }
)
_SUBJECT_FIELDS: Final = ("subject", "subjectRegExp", "subjectDN")


def unsupported_ca(cert: x509.Certificate) -> str | None:
    """Why pyca's chain builder cannot judge this CA certificate, or None.

    pyca/cryptography refuses Ed25519/Ed448 CA keys and does not enforce URI name constraints;
    a trust root must not hold a CA whose constraints would silently not apply.
    """
    try:
        if not isinstance(cert.public_key(), ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
            return "its key is not RSA or ECDSA (pyca/cryptography verifies chains of those only)"
        extension = cert.extensions.get_extension_for_class(x509.NameConstraints)
    except x509.ExtensionNotFound:
        return None
    except Exception as exc:  # unreadable key or extensions: refused, named
        return f"its key or extensions are unreadable ({_clip(str(exc), 120)})"
    if not extension.critical:
        # RFC 5280 requires it critical; pyca ignores a non-critical one.
        return "its name constraints are not critical (RFC 5280: they must be)"
    constraints = extension.value
    subtrees = [*(constraints.permitted_subtrees or ()), *(constraints.excluded_subtrees or ())]
    if any(isinstance(name, x509.UniformResourceIdentifier) for name in subtrees):
        return "it has URI name constraints, which pyca/cryptography cannot enforce"
    if not all(isinstance(name, _ENFORCED_CONSTRAINTS) for name in subtrees):
        return (
            "it has name constraints of a type pyca/cryptography does not enforce (only DNS, "
            "IP address and email constraints are)"
        )
    return None


#: Name-constraint types pyca/cryptography's chain builder enforces.
_ENFORCED_CONSTRAINTS: Final = (x509.DNSName, x509.IPAddress, x509.RFC822Name)


def ca_key(cert: x509.Certificate) -> bytes:
    """Subject DER and SubjectPublicKeyInfo DER: one CA, whichever of its certificates."""
    subject = cert.subject.public_bytes()
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return len(subject).to_bytes(4, "big") + subject + spki


def _is_self_issued(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except Exception:  # any failure: not a self-signed root
        return False
    return True


@dataclass(frozen=True)
class CertificateAuthority:
    """One organisation CA; chains through it count only inside [valid_from, valid_until] and
    before `revoked_at` (a chain judged at a later signing time is refused)."""

    name: str
    certificate: x509.Certificate
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    label: str | None = None
    revoked_at: datetime | None = None

    @cached_property
    def der(self) -> bytes:
        """The certificate's DER (what a verified chain is matched against)."""
        return self.certificate.public_bytes(Encoding.DER)

    @cached_property
    def key(self) -> bytes:
        """The CA as a signer: its subject and public key (what a renewal keeps)."""
        return ca_key(self.certificate)

    @cached_property
    def is_root(self) -> bool:
        """Self-issued and self-signed: a trust anchor; anything else is an intermediate."""
        return _is_self_issued(self.certificate)

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
            "certificate": self.certificate.public_bytes(Encoding.PEM).decode("ascii"),
        }
        for key, value in (
            ("validFrom", self.valid_from),
            ("validUntil", self.valid_until),
        ):
            if value is not None:
                entry[key] = format_time(value)
        if self.label is not None:
            entry["label"] = self.label
        if self.revoked_at is not None:
            entry["revokedAt"] = format_time(self.revoked_at)
        return entry


@dataclass(frozen=True)
class CertificateIdentity:
    """A certificate signer whose signatures count: the CA it must chain through, and its
    subject (a SAN exactly, a SAN by whole-string RE2 regexp, or the subject DN)."""

    ca: str
    subject: str | None = None
    subject_regexp: str | None = None
    #: RFC 4514 form, compared after parsing both sides (escapes and attribute names normalised).
    subject_dn: str | None = None
    #: Extension OID (dotted) -> the exact value it must hold (a DER string's text, or
    #: ``hex:`` and the extension value's DER in lower-case hex).
    extensions: Mapping[str, str] = field(default_factory=dict)
    predicate_types: tuple[str, ...] = ()
    label: str | None = None
    name: str | None = None
    revoked_at: datetime | None = None

    def allows(self, predicate_type: str) -> bool:
        """May this identity attest to `predicate_type`? (exact match; empty list: any)."""
        return not self.predicate_types or predicate_type in self.predicate_types

    def revoked_by(self, moment: datetime) -> bool:
        """Revoked at or before `moment`."""
        return self.revoked_at is not None and self.revoked_at <= moment

    @property
    def shown_subject(self) -> str:
        """The subject as messages show it."""
        if self.subject is not None:
            return self.subject
        if self.subject_regexp is not None:
            return f"~{self.subject_regexp}"
        return f"DN {self.subject_dn}"

    def describe(self) -> str:
        """Short human form: the name, else the label, else CA and subject."""
        return self.name or self.label or f"{self.ca} {self.shown_subject}"

    def matches(self, cert: x509.Certificate) -> str | None:
        """The subject text this certificate matched the rule with, or None."""
        if self.subject_dn is not None:
            shown = cert.subject.rfc4514_string()
            matched = shown if shown == _normal_dn(self.subject_dn) else None
        else:
            matched = next(
                (
                    s
                    for s in certificate_names(cert)
                    if subject_matches(self.subject, self.subject_regexp, s)
                ),
                None,
            )
        if matched is None or not all(
            _extension_matches(cert, oid, value) for oid, value in self.extensions.items()
        ):
            return None
        return matched

    def to_dict(self) -> dict[str, Any]:
        """The trust-root JSON form; unset optional fields are left out."""
        entry: dict[str, Any] = {"ca": self.ca}
        for key, value in (
            ("subject", self.subject),
            ("subjectRegExp", self.subject_regexp),
            ("subjectDN", self.subject_dn),
        ):
            if value is not None:
                entry[key] = value
        if self.extensions:
            entry["extensions"] = dict(self.extensions)
        if self.predicate_types:
            entry["predicateTypes"] = list(self.predicate_types)
        if self.label is not None:
            entry["label"] = self.label
        if self.name is not None:
            entry["name"] = self.name
        if self.revoked_at is not None:
            entry["revokedAt"] = format_time(self.revoked_at)
        return entry


#: SAN values of one certificate an identity rule is matched against (the first ones).
MAX_SAN_VALUES: Final = 64
_URI_SCHEME: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_HOSTNAME: Final = re.compile(r"(\*\.)?[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?")


def _typed(value: str, kind: type[x509.GeneralName]) -> bool:
    """Does `value` have the shape of its SAN type? Email, URI and DNS shapes are disjoint, so
    a value matches a rule only as the type name constraints judged it under (a DNSName that
    reads like an email is not an email)."""
    if kind is x509.RFC822Name:
        return "@" in value and _URI_SCHEME.match(value) is None
    if kind is x509.UniformResourceIdentifier:
        return _URI_SCHEME.match(value) is not None
    return _HOSTNAME.fullmatch(value) is not None


def certificate_names(cert: x509.Certificate) -> list[str]:
    """The SAN values an identity's subject matches: emails, URIs and DNS names, each only in
    the shape of its type, at most MAX_SAN_VALUES."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except Exception:  # not there or unreadable: no SAN matches
        return []
    values: list[str] = []
    for name in san:
        if isinstance(name, x509.RFC822Name | x509.UniformResourceIdentifier | x509.DNSName):
            if _typed(name.value, type(name)):
                values.append(name.value)
            if len(values) >= MAX_SAN_VALUES:
                break
    return values


def _normal_dn(text: str) -> str:
    return x509.Name.from_rfc4514_string(text).rfc4514_string()


def _extension_matches(cert: x509.Certificate, oid: str, required: str) -> bool:
    """Does the extension hold `required`: ``hex:`` and its value's DER in hex, compared as
    bytes, or else the text of a DER string (never the one for the other)."""
    try:
        extension = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(oid))
        value = extension.value
        der = value.value if isinstance(value, x509.UnrecognizedExtension) else value.public_bytes()
    except Exception:  # not there or unreadable: no match
        return False
    if required.startswith("hex:"):
        return der.hex() == required[4:].lower()
    try:
        return bool(asn1.decode_der(str, der) == required)
    except Exception:  # not a DER string: no text to compare
        return False


@dataclass(frozen=True)
class OrganisationPKI:
    """The checked `pki` section (see the module docstring)."""

    authorities: tuple[CertificateAuthority, ...] = ()
    identities: tuple[CertificateIdentity, ...] = ()
    #: Each CRL with the name of the authority whose key signed it (one CRL per authority).
    crls: tuple[tuple[str, x509.CertificateRevocationList], ...] = ()

    def authority(self, name: str) -> CertificateAuthority | None:
        """The CA with this name, if any."""
        return next((a for a in self.authorities if a.name == name), None)

    def identity(self, name: str) -> CertificateIdentity | None:
        """The identity rule with this name, if any."""
        return next((rule for rule in self.identities if rule.name == name), None)

    @cached_property
    def roots(self) -> tuple[x509.Certificate, ...]:
        """The trust anchors: the self-signed CAs."""
        return tuple(a.certificate for a in self.authorities if a.is_root)

    @cached_property
    def intermediates(self) -> tuple[x509.Certificate, ...]:
        """The listed CAs that are not anchors (pyca's untrusted intermediates)."""
        return tuple(a.certificate for a in self.authorities if not a.is_root)

    @cached_property
    def by_der(self) -> dict[bytes, CertificateAuthority]:
        """Authority by its certificate's DER."""
        return {a.der: a for a in self.authorities}

    @cached_property
    def _crls_by_key(self) -> dict[bytes, x509.CertificateRevocationList]:
        keys = {a.name: a.key for a in self.authorities}
        return {keys[name]: crl for name, crl in self.crls if name in keys}

    def crl_for(self, issuer: x509.Certificate) -> x509.CertificateRevocationList | None:
        """The CRL carried for this issuing certificate's name and key, if any: a renewed or
        re-issued certificate of the same CA key shares its CRL."""
        return self._crls_by_key.get(ca_key(issuer))

    def listed(self, cert: x509.Certificate) -> tuple[CertificateAuthority, ...]:
        """The listed CAs with this certificate's name and key (its renewals included)."""
        key = ca_key(cert)
        return tuple(a for a in self.authorities if a.key == key)

    def to_dict(self) -> dict[str, Any]:
        """The section's JSON form; empty lists are left out."""
        section: dict[str, Any] = {
            "certificateAuthorities": [a.to_dict() for a in self.authorities]
        }
        if self.identities:
            section["identities"] = [rule.to_dict() for rule in self.identities]
        if self.crls:
            section["crls"] = [
                crl.public_bytes(Encoding.PEM).decode("ascii") for _, crl in self.crls
            ]
        return section


# --- JSON -> model ---------------------------------------------------------------------------


def load_crl(value: object, path: str) -> x509.CertificateRevocationList:
    """One PEM CRL, bounded (the caller checks its signature against its issuer)."""
    if not isinstance(value, str | bytes) or len(value) > MAX_CRL_BYTES:
        raise _fail(path, f"must be one PEM X509 CRL of at most {MAX_CRL_BYTES} bytes")
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    if text.count(_CRL_BEGIN) != 1:
        raise _fail(path, "must hold exactly one PEM X509 CRL")
    try:
        return x509.load_pem_x509_crl(text.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise _fail(path, f"is not a PEM X509 CRL ({_clip(str(exc), 120)})") from None


def _times(entry: Mapping[str, Any], path: str) -> dict[str, datetime | None]:
    return {
        name: parse_time(entry[name], what=f"{path}.{name}") if name in entry else None
        for name in ("validFrom", "validUntil", "revokedAt")
    }


def _authority(entry: Mapping[str, Any], path: str) -> CertificateAuthority:
    name = _check_name(entry.get("name"), f"{path}.name")
    pem = entry.get("certificate")
    cert = _load_one_pem(pem, f"{path}.certificate")
    if cert.public_bytes(Encoding.PEM).decode("ascii") != pem:
        raise _fail(
            f"{path}.certificate",
            "not in canonical PEM form (one CERTIFICATE block, 64-character lines, LF line "
            "ends, final newline); re-export it, e.g. openssl x509 -outform PEM",
        )
    label = entry.get("label")
    if label is not None:
        _check_text(label, f"{path}.label", empty_ok=False, limit=256)
    times = _times(entry, path)
    if times["validFrom"] and times["validUntil"] and times["validUntil"] < times["validFrom"]:
        raise _fail(f"{path}.validUntil", "is before validFrom")
    return CertificateAuthority(
        name=name,
        certificate=cert,
        valid_from=times["validFrom"],
        valid_until=times["validUntil"],
        label=label,
        revoked_at=times["revokedAt"],
    )


def check_authority(authority: CertificateAuthority, earlier: list[CertificateAuthority]) -> str:
    """Why `authority` cannot be added after `earlier` (raised), else the CA it chains to."""
    cert = authority.certificate
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    except Exception as exc:  # duplicate or malformed extensions: refused, named
        raise ValueError(f"has unreadable extensions ({_clip(str(exc), 120)})") from None
    if constraints is None or not constraints.ca:
        raise ValueError("is not a CA certificate (no basicConstraints cA=TRUE)")
    problem = unsupported_ca(cert)
    if problem is not None:
        raise ValueError(problem)
    if any(a.der == authority.der for a in earlier):
        raise ValueError("is already listed")
    if authority.is_root:
        return authority.name
    for issuer in earlier:
        if issuer.certificate.subject != cert.issuer:
            continue
        try:
            cert.verify_directly_issued_by(issuer.certificate)
        except Exception:  # noqa: S112 - a same-named CA that did not sign it
            continue
        return issuer.name
    raise ValueError(
        "is neither a self-signed root nor issued by a CA listed before it (add its issuer first)"
    )


def crl_issuer(
    crl: x509.CertificateRevocationList, authorities: tuple[CertificateAuthority, ...]
) -> CertificateAuthority:
    """The listed CA whose key signed this CRL (raises ValueError naming what is wrong)."""
    problem = _crl_scope(crl)
    if problem is not None:
        raise ValueError(problem)
    named = [a for a in authorities if a.certificate.subject == crl.issuer]
    if not named:
        raise ValueError(
            f"its issuer {_clip(crl.issuer.rfc4514_string(), 160)} is none of the trust root's "
            "certificate authorities"
        )
    for authority in named:
        try:
            if crl.is_signature_valid(authority.certificate.public_key()):  # type: ignore[arg-type]
                return authority
        except (TypeError, ValueError):
            continue
    raise ValueError(
        f"its signature does not verify under the key of {named[0].name!r}, the CA it names "
        "as issuer (a CRL signed by the wrong CA)"
    )


#: CRL extensions a complete CRL of a CA may carry (anything critical besides is refused).
_CRL_EXTENSIONS: Final = (x509.CRLNumber, x509.AuthorityKeyIdentifier, x509.IssuerAlternativeName)


def _crl_scope(crl: x509.CertificateRevocationList) -> str | None:
    """Why this CRL is not a CA's complete CRL (a delta, a scoped or unknown critical one)."""
    try:
        extensions = list(crl.extensions)
    except Exception as exc:  # any unreadable extension: refused
        return f"its extensions are unreadable ({_clip(str(exc), 120)})"
    for extension in extensions:
        if isinstance(extension.value, x509.DeltaCRLIndicator):
            return "it is a delta CRL; carry the CA's complete CRL"
        if isinstance(extension.value, x509.IssuingDistributionPoint):
            return (
                "it has an issuingDistributionPoint (a partitioned or scoped CRL); carry the "
                "CA's complete CRL"
            )
        if extension.critical and not isinstance(extension.value, _CRL_EXTENSIONS):
            oid = extension.oid.dotted_string
            return f"it has a critical extension {oid} dssesign cannot judge"
    return None


def _identity(entry: Mapping[str, Any], path: str, names: set[str]) -> CertificateIdentity:
    unknown = sorted(set(entry) - _IDENTITY_FIELDS)
    if unknown:
        known = ", ".join(sorted(_IDENTITY_FIELDS))
        raise _fail(f"{path}.{unknown[0]}", f"unknown field (allowed here: {known})")
    ca = entry.get("ca")
    if ca not in names:
        raise _fail(
            f"{path}.ca", f"{_clip(repr(ca), 80)} names no CA in $.pki.certificateAuthorities"
        )
    given = [name for name in _SUBJECT_FIELDS if name in entry]
    if len(given) != 1:
        raise _fail(path, "needs exactly one of subject, subjectRegExp and subjectDN")
    value = entry[given[0]]
    limit = {"subject": 1024, "subjectRegExp": MAX_REGEXP_CHARS, "subjectDN": MAX_DN_CHARS}
    _check_text(value, f"{path}.{given[0]}", empty_ok=False, limit=limit[given[0]])
    if given[0] == "subjectRegExp":
        from .identity import check_subject_regexp  # noqa: PLC0415 - RE2 only when used

        try:
            check_subject_regexp(value)
        except ValueError as exc:
            raise _fail(f"{path}.subjectRegExp", str(exc)) from None
    if given[0] == "subjectDN":
        try:
            _normal_dn(value)
        except ValueError as exc:
            raise _fail(
                f"{path}.subjectDN", f"is not an RFC 4514 DN ({_clip(str(exc), 120)})"
            ) from None
    extensions: dict[str, str] = {}
    for oid, required in (entry.get("extensions") or {}).items():
        where = member_path(f"{path}.extensions", oid)
        try:
            x509.ObjectIdentifier(oid)
        except ValueError:
            raise _fail(where, "is not a dotted OID") from None
        _check_text(required, where, empty_ok=False, limit=1024)
        extensions[oid] = required
    types = entry.get("predicateTypes", [])
    _check_type_uris(types, f"{path}.predicateTypes")
    label = entry.get("label")
    if label is not None:
        _check_text(label, f"{path}.label", empty_ok=False, limit=256)
    name = entry.get("name")
    if name is not None:
        _check_name(name, f"{path}.name")
    return CertificateIdentity(
        ca=ca,
        subject=entry.get("subject"),
        subject_regexp=entry.get("subjectRegExp"),
        subject_dn=entry.get("subjectDN"),
        extensions=MappingProxyType(extensions),
        predicate_types=tuple(types),
        label=label,
        name=name,
        revoked_at=_times(entry, path)["revokedAt"],
    )


def parse_pki(section: Mapping[str, Any]) -> OrganisationPKI:
    """The `pki` section (schema-checked) as a model: every CA chains to a root listed before
    it, every CRL verifies under the CA it names, names are unique. TrustRootError otherwise."""
    authorities: list[CertificateAuthority] = []
    for index, entry in enumerate(section.get("certificateAuthorities", ())):
        path = f"$.pki.certificateAuthorities[{index}]"
        authority = _authority(entry, path)
        if any(a.name == authority.name for a in authorities):
            raise _fail(f"{path}.name", f"{authority.name!r} is already a CA's name")
        try:
            check_authority(authority, authorities)
        except ValueError as exc:
            raise _fail(f"{path}.certificate", str(exc)) from None
        authorities.append(authority)
    names = {a.name for a in authorities}
    identities: list[CertificateIdentity] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(section.get("identities", ())):
        path = f"$.pki.identities[{index}]"
        rule = _identity(entry, path, names)
        if rule.name is not None:
            if rule.name in seen:
                raise _fail(
                    f"{path}.name",
                    f"{rule.name!r} is already the name of $.pki.identities[{seen[rule.name]}]",
                )
            seen[rule.name] = index
        identities.append(rule)
    crls: list[tuple[str, x509.CertificateRevocationList]] = []
    for index, pem in enumerate(section.get("crls", ())):
        path = f"$.pki.crls[{index}]"
        crl = load_crl(pem, path)
        try:
            issuer = crl_issuer(crl, tuple(authorities))
        except ValueError as exc:
            raise _fail(path, str(exc)) from None
        if any(a.name == name and a.key == issuer.key for name, _ in crls for a in authorities):
            raise _fail(path, f"a CRL of {issuer.name!r} is already carried (one per CA key)")
        crls.append((issuer.name, crl))
    return OrganisationPKI(tuple(authorities), tuple(identities), tuple(crls))
