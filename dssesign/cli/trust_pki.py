"""`dssesign trust-root add-ca`, `add-crl`, `add-identity --ca`, `revoke --ca / --identity` and
the pki lines of `show`.

The trust root's `pki` section: organisation CAs, certificate identities and the CRLs carried
for offline revocation checks (docs/trust-root.md, docs/pki.md). Files are read and parsed
before the trust root is locked; the change itself is the same audited read-modify-write as
every other trust-root change (`trust_update`), and the library (`dssesign.trust.edit_pki`)
applies every check the loader does, so a refused change writes nothing (exit 2).
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from .._internal.fileio import read_bounded
from .._internal.text import escape_controls
from ..errors import ConfigError, InputError, TrustRootError
from .trust_update import Change, add_update_options, option_time, update

if TYPE_CHECKING:
    from collections.abc import Callable

    from cryptography import x509

    from ..trust import TrustRoot
    from ..trust.pki import CertificateAuthority, CertificateIdentity

__all__ = [
    "cmd_add_ca",
    "cmd_add_certificate_identity",
    "cmd_add_crl",
    "pki_lines",
    "register_pki_commands",
    "revoke_pki",
]

#: One CA certificate file (one PEM block).
_MAX_CERTIFICATE_FILE: Final = 64 * 1024
_OID: Final = re.compile(r"[0-2](\.[0-9]{1,20}){1,30}")
#: Members of a new CA entry, as the add-ca option that gave them.
_CA_OPTIONS: Final = {
    "name": "--name",
    "label": "--label",
    "validFrom": "--valid-from",
    "validUntil": "--valid-until",
}
#: Members of a new identity entry, as the add-identity option that gave them.
_IDENTITY_OPTIONS: Final = {
    "ca": "--ca",
    "subject": "--subject",
    "subjectRegExp": "--subject-regexp",
    "subjectDN": "--subject-dn",
    "extensions": "--extension",
    "predicateTypes": "--predicate-type",
    "label": "--label",
    "name": "--name",
}


def register_pki_commands(sub: Any) -> None:
    """`trust-root add-ca FILE --certificate PEM --name NAME [--label L] [--valid-from T]
    [--valid-until T]` and `trust-root add-crl FILE --crl CRL.pem`."""
    ca = sub.add_parser(
        "add-ca", help="trust an organisation CA (a root, or an intermediate of a listed CA)"
    )
    ca.add_argument("file", metavar="FILE")
    ca.add_argument(
        "--certificate",
        required=True,
        metavar="PEM",
        help="the CA certificate, one PEM block (add an intermediate's issuer first)",
    )
    ca.add_argument("--name", required=True, metavar="NAME", help="unique within the trust root")
    ca.add_argument("--label", metavar="LABEL")
    ca.add_argument("--valid-from", metavar="TIME", help="chains through it count from this time")
    ca.add_argument("--valid-until", metavar="TIME", help="chains through it count up to this time")
    add_update_options(ca)
    ca.set_defaults(handler=cmd_add_ca)

    crl = sub.add_parser(
        "add-crl",
        help="carry a CA's CRL for offline revocation checks (replaces an older one of that CA)",
    )
    crl.add_argument("file", metavar="FILE")
    crl.add_argument(
        "--crl",
        required=True,
        metavar="CRL_PEM",
        help="one PEM X509 CRL signed by a CA of the trust root",
    )
    add_update_options(crl)
    crl.set_defaults(handler=cmd_add_crl)


def _option_error(exc: TrustRootError, entry: str, options: dict[str, str]) -> TrustRootError:
    """A refusal of the new entry's member, said as the option that gave it (else unchanged)."""
    prefix = f"{entry}."
    if not exc.path.startswith(prefix):
        return exc
    member = exc.path[len(prefix) :].split(".", 1)[0].split("[", 1)[0]
    option = options.get(member)
    if option is None:
        return exc
    message = str(exc).split(": ", 1)[-1]
    return TrustRootError(f"{option}: {message}", exc.path)


def _checked(make: Callable[[], TrustRoot], entry: str, options: dict[str, str]) -> TrustRoot:
    try:
        return make()
    except TrustRootError as exc:
        raise _option_error(exc, entry, options) from None


# --- add-ca ----------------------------------------------------------------------------------


def _read_certificate(path: str) -> x509.Certificate:
    """The one CA certificate in `path`, parsed before the trust root is locked."""
    from cryptography import x509

    data = read_bounded(path, limit=_MAX_CERTIFICATE_FILE, what="certificate")
    count = data.count(b"-----BEGIN CERTIFICATE-----")
    if count != 1:
        raise InputError(
            f"--certificate {path}: must hold exactly one PEM certificate, not {count} "
            "(add each CA with its own add-ca, issuers first)"
        )
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        shown = escape_controls(" ".join(str(exc).split()))[:160]
        raise InputError(f"--certificate {path}: is not a PEM certificate ({shown})") from None


def _fingerprint(cert: x509.Certificate) -> str:
    from cryptography.hazmat.primitives import hashes

    return cert.fingerprint(hashes.SHA256()).hex()


def _subject(name: x509.Name) -> str:
    try:
        return escape_controls(name.rfc4514_string())
    except ValueError:  # an attribute pyca cannot render
        return "(unreadable name)"


def _issuer_of(authority: CertificateAuthority, root: TrustRoot) -> str | None:
    """The name of the listed CA that issued this intermediate (None for a root)."""
    from ..trust.pki import check_authority

    if authority.is_root or root.pki is None:
        return None
    earlier = list(root.pki.authorities[: root.pki.authorities.index(authority)])
    try:
        return check_authority(authority, earlier)
    except ValueError:
        return None


def cmd_add_ca(args: argparse.Namespace) -> int:
    """Add the CA the options describe; warn when its certificate is not valid now."""
    from ..trust import add_certificate_authority, format_time

    certificate = _read_certificate(args.certificate)
    valid_from = option_time(args.valid_from, "--valid-from")
    valid_until = option_time(args.valid_until, "--valid-until")
    if certificate.not_valid_after_utc < datetime.now(UTC):
        print(
            f"warning: the CA certificate expired at {format_time(certificate.not_valid_after_utc)}"
            ": only signatures timestamped before then chain through it",
            file=sys.stderr,
        )
    entry_options = {**_CA_OPTIONS, "certificate": f"--certificate {args.certificate}"}

    def make(current: TrustRoot | None) -> Change:
        assert current is not None
        count = len(current.pki.authorities) if current.pki is not None else 0
        entry = f"$.pki.certificateAuthorities[{count}]"
        root = _checked(
            lambda: add_certificate_authority(
                current,
                certificate,
                args.name,
                label=args.label,
                valid_from=valid_from,
                valid_until=valid_until,
            ),
            entry,
            entry_options,
        )
        assert root.pki is not None
        authority = root.pki.authorities[-1]
        issuer = _issuer_of(authority, root)
        kind = "root" if issuer is None else f"intermediate issued by {escape_controls(issuer)}"
        what = (
            f"added certificate authority {escape_controls(args.name)} ({kind}, "
            f"SHA-256 {_fingerprint(certificate)})"
        )
        return Change(root, what, "add-ca")

    return update(args, args.file, make)


# --- add-identity --ca -----------------------------------------------------------------------


def _oid_extensions(items: list[str]) -> dict[str, str]:
    """`--extension OID=VALUE ...` of a certificate identity."""
    extensions: dict[str, str] = {}
    for item in items:
        oid, sep, value = item.partition("=")
        if not sep or not oid:
            raise ConfigError(f"--extension {escape_controls(repr(item))}: expected OID=VALUE")
        if not _OID.fullmatch(oid):
            raise ConfigError(
                f"--extension {escape_controls(repr(item))}: {escape_controls(repr(oid))} is "
                "not a dotted OID (a certificate identity requires extensions by OID, like "
                "1.3.6.1.4.1.55555.1=VALUE)"
            )
        if oid in extensions:
            raise ConfigError(f"--extension {oid} given twice")
        extensions[oid] = value
    return extensions


def cmd_add_certificate_identity(args: argparse.Namespace) -> int:
    """`add-identity FILE --ca NAME (--subject V | --subject-regexp RE | --subject-dn DN)`."""
    from ..trust import add_certificate_identity

    extensions = _oid_extensions(args.extension)

    def make(current: TrustRoot | None) -> Change:
        assert current is not None
        count = len(current.pki.identities) if current.pki is not None else 0
        root = _checked(
            lambda: add_certificate_identity(
                current,
                ca=args.ca,
                subject=args.subject,
                subject_regexp=args.subject_regexp,
                subject_dn=args.subject_dn,
                extensions=extensions,
                predicate_types=tuple(args.predicate_type),
                name=args.name,
                label=args.label,
            ),
            f"$.pki.identities[{count}]",
            _IDENTITY_OPTIONS,
        )
        assert root.pki is not None
        rule = root.pki.identities[-1]
        named = f" as {escape_controls(args.name)}" if args.name else ""
        what = (
            f"added certificate identity {escape_controls(rule.ca)} "
            f"{escape_controls(rule.shown_subject)}{named}"
        )
        return Change(root, what, "add-identity")

    return update(args, args.file, make)


# --- add-crl ---------------------------------------------------------------------------------


def _read_crl(path: str) -> x509.CertificateRevocationList:
    from ..trust.pki import MAX_CRL_BYTES, load_crl

    data = read_bounded(path, limit=MAX_CRL_BYTES, what="CRL")
    try:
        return load_crl(data, "$")
    except TrustRootError as exc:
        raise InputError(f"--crl {path}: {str(exc).split(': ', 1)[-1]}") from None


def crl_summary(crl: x509.CertificateRevocationList) -> str:
    """CRLNumber, lastUpdate, nextUpdate and entry count, as `show` and `add-crl` say them."""
    from ..trust import format_time
    from ..trust.edit_pki import crl_number

    number = crl_number(crl)
    next_update = crl.next_update_utc
    count = len(crl)
    return (
        f"CRLNumber {number if number is not None else '-'}, "
        f"lastUpdate {format_time(crl.last_update_utc)}, "
        f"nextUpdate {format_time(next_update) if next_update is not None else '-'}, "
        f"{count} entr{'y' if count == 1 else 'ies'}"
    )


def cmd_add_crl(args: argparse.Namespace) -> int:
    """Carry the CRL in --crl (its signature checked against its issuer among the CAs)."""
    from ..trust import add_crl, format_time
    from ..trust.pki import crl_issuer

    crl = _read_crl(args.crl)
    if crl.next_update_utc is not None and crl.next_update_utc < datetime.now(UTC):
        print(
            f"warning: the CRL's nextUpdate {format_time(crl.next_update_utc)} has passed: "
            "certificate signatures made after it are refused (CRL_STALE) unless verify "
            "--allow-stale-crl",
            file=sys.stderr,
        )

    def make(current: TrustRoot | None) -> Change:
        assert current is not None
        before = current.pki.crls if current.pki is not None else ()
        try:
            root = add_crl(current, crl)
        except TrustRootError as exc:
            if not exc.path.startswith("$.pki.crls"):
                raise
            raise TrustRootError(
                f"--crl {args.crl}: {str(exc).split(': ', 1)[-1]}", exc.path
            ) from None
        assert root.pki is not None
        name = crl_issuer(crl, root.pki.authorities).name
        verb = "replaced the CRL of" if any(n == name for n, _ in before) else "added a CRL of"
        what = f"{verb} {escape_controls(name)} ({crl_summary(crl)})"
        return Change(root, what, "add-crl")

    return update(args, args.file, make)


# --- revoke --ca / --identity ----------------------------------------------------------------


def revoke_pki(args: argparse.Namespace, at: datetime | None) -> int:
    """`revoke --ca NAME` or `revoke --identity NAME` `[--at T]`: from `at` (default now) on, a
    chain through the CA, or a signature by the identity, no longer counts."""
    from ..trust import format_time, revoke_certificate_authority, revoke_identity

    which = "certificate authority" if args.ca is not None else "certificate identity"
    if args.reason:
        raise ConfigError(f"--reason is for keys: a {which}'s revocation records only its time")

    def make(current: TrustRoot | None) -> Change:
        assert current is not None
        revoked: CertificateAuthority | CertificateIdentity | None
        if args.ca is not None:
            root = revoke_certificate_authority(current, args.ca, at)
            assert root.pki is not None
            revoked = root.pki.authority(args.ca)
            name, change = args.ca, "revoke-ca"
        else:
            root = revoke_identity(current, args.identity, at)
            assert root.pki is not None
            revoked = root.pki.identity(args.identity)
            name, change = args.identity, "revoke-identity"
        assert revoked is not None and revoked.revoked_at is not None
        what = f"revoked {which} {escape_controls(name)} from {format_time(revoked.revoked_at)}"
        return Change(root, what, change)

    return update(args, args.file, make)


# --- show ------------------------------------------------------------------------------------


def _window(start: datetime | None, end: datetime | None) -> str:
    from ..trust import format_time

    return f"{format_time(start) if start else '-'} .. {format_time(end) if end else '-'}"


def _authority_lines(authority: CertificateAuthority, root: TrustRoot) -> list[str]:
    from ..trust import format_time

    state = f"REVOKED {format_time(authority.revoked_at)}" if authority.revoked_at else "active"
    window = _window(authority.valid_from, authority.valid_until)
    lines = [f"ca {escape_controls(authority.name)} {state} [{window}]"]
    if authority.label:
        lines.append(f"    label: {escape_controls(authority.label)}")
    issuer = _issuer_of(authority, root)
    kind = "root" if issuer is None else f"intermediate, issued by {escape_controls(issuer)}"
    cert = authority.certificate
    lines += [
        f"    kind: {kind}",
        f"    subject: {_subject(cert.subject)}",
        f"    sha256: {_fingerprint(cert)}",
        f"    certificate: {_window(cert.not_valid_before_utc, cert.not_valid_after_utc)}",
    ]
    return lines


def _identity_lines(rule: CertificateIdentity) -> list[str]:
    from ..trust import format_time

    label = f" ({rule.label})" if rule.label else ""
    named = f" [{rule.name}]" if rule.name else ""
    state = f" REVOKED {format_time(rule.revoked_at)}" if rule.revoked_at else ""
    lines = [
        escape_controls(f"certificate identity {rule.ca} {rule.shown_subject}{label}{named}")
        + state
    ]
    lines += [f"    {oid}: {escape_controls(value)}" for oid, value in rule.extensions.items()]
    if rule.predicate_types:
        lines.append(f"    types: {escape_controls(', '.join(rule.predicate_types))}")
    return lines


def pki_lines(root: TrustRoot) -> list[str]:
    """`show`'s lines for the pki section: each CA (name, state, window, label, kind, subject,
    SHA-256 fingerprint, certificate validity), each identity, each CRL (issuer, CRLNumber,
    lastUpdate, nextUpdate, entries). Every text from the document or a certificate has its
    control characters escaped."""
    if root.pki is None:
        return []
    lines: list[str] = []
    for authority in root.pki.authorities:
        lines += _authority_lines(authority, root)
    for rule in root.pki.identities:
        lines += _identity_lines(rule)
    for name, crl in root.pki.crls:
        lines.append(
            f"crl of {escape_controls(name)}: issuer {_subject(crl.issuer)}, {crl_summary(crl)}"
        )
    return lines
