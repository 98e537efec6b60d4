"""`dssesign trust-root add-tsa`, `revoke --tsa` and the TSA lines of `show`.

RFC 3161 timestamp authorities in a trust root (docs/trust-root.md). The chain is read and
checked (linked, the leaf a TSA's) before the trust root is locked; the change itself is the
same audited read-modify-write as every other trust-root change (`trust_update`).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .._internal.fileio import read_bounded
from ..errors import ConfigError
from .trust_update import Change, add_update_options, option_time, update

if TYPE_CHECKING:
    from cryptography import x509

    from ..timestamp.authority import TimestampAuthority
    from ..trust import TrustRoot


def register_add_tsa(sub: Any) -> None:
    """`trust-root add-tsa FILE --certificate-chain PEM --name NAME [--valid-from T]
    [--valid-until T] [--label L]`."""
    tsa = sub.add_parser("add-tsa", help="trust an RFC 3161 timestamp authority")
    tsa.add_argument("file", metavar="FILE")
    tsa.add_argument(
        "--certificate-chain",
        required=True,
        metavar="PEM",
        help="the TSA certificate (timeStamping EKU) first, then its issuers, in one PEM file",
    )
    tsa.add_argument("--name", required=True, metavar="NAME", help="unique within the trust root")
    tsa.add_argument("--valid-from", metavar="TIME", help="its tokens count from this time on")
    tsa.add_argument("--valid-until", metavar="TIME", help="its tokens count up to this time")
    tsa.add_argument("--label", metavar="LABEL")
    add_update_options(tsa)
    tsa.set_defaults(handler=cmd_add_tsa)


def cmd_add_tsa(args: argparse.Namespace) -> int:
    """Add the TSA the options describe; warn about what would make its tokens fail."""
    from .._internal.text import escape_controls
    from ..trust import add_timestamp_authority

    authority = _timestamp_authority(args)
    for warning in _tsa_warnings(authority.certificate):
        print(f"warning: {warning}", file=sys.stderr)

    def make(current: TrustRoot | None) -> Change:
        assert current is not None
        root = add_timestamp_authority(current, authority)
        what = f"added timestamp authority {escape_controls(authority.name)}"
        return Change(root, what, "add-tsa")

    return update(args, args.file, make)


#: Where a TimestampAuthority's own checks point, as the add-tsa option that gave the value.
_TSA_OPTIONS = {
    "$.name": "--name",
    "$.label": "--label",
    "$.validFrom": "--valid-from",
    "$.validUntil": "--valid-until",
}


def _timestamp_authority(args: argparse.Namespace) -> TimestampAuthority:
    """The TSA that `add-tsa`'s options describe, checked (chain linked, leaf a TSA's), before
    the trust root is locked; an error names the option, or the certificate in the file."""
    from ..errors import InputError, TrustRootError
    from ..timestamp.authority import (
        MAX_CHAIN_CERTIFICATES,
        MAX_PEM_BYTES,
        TimestampAuthority,
        load_pem_chain,
    )

    source = args.certificate_chain
    data = read_bounded(
        source, limit=MAX_PEM_BYTES * MAX_CHAIN_CERTIFICATES, what="certificate chain"
    )
    valid_from = option_time(args.valid_from, "--valid-from")
    valid_until = option_time(args.valid_until, "--valid-until")
    try:
        chain = load_pem_chain(data, "$.certificateChain")
        return TimestampAuthority(
            name=args.name,
            chain=chain,
            valid_from=valid_from,
            valid_until=valid_until,
            label=args.label,
        )
    except TrustRootError as exc:
        message = str(exc).split(": ", 1)[-1]
        option = _TSA_OPTIONS.get(exc.path)
        if option is not None:
            message = message.replace("validFrom", "--valid-from")
            raise ConfigError(f"{option}: {message}") from None
        where = f"--certificate-chain {source}"
        index = exc.path.removeprefix("$.certificateChain").strip("[]")
        if index.isdigit():
            where += f", certificate {int(index) + 1}"
        raise InputError(f"{where}: {message}") from None


def _tsa_warnings(certificate: x509.Certificate) -> list[str]:
    """What will make every token of this TSA fail verification, said when it is added."""
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    try:
        eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except (x509.ExtensionNotFound, ValueError):
        return []  # TimestampAuthority already refused a leaf without a readable EKU
    found = []
    if not eku.critical:
        found.append(
            "the TSA certificate's extended key usage is not critical: RFC 3161 requires it "
            "and verification refuses its tokens (TIMESTAMP_UNTRUSTED)"
        )
    if list(eku.value) != [ExtendedKeyUsageOID.TIME_STAMPING]:
        found.append(
            "the TSA certificate's extended key usage lists more than timeStamping: RFC 3161 "
            "requires timeStamping alone and verification refuses its tokens "
            "(TIMESTAMP_UNTRUSTED)"
        )
    return found


def revoke_tsa(args: argparse.Namespace, at: datetime | None) -> int:
    """`revoke --tsa NAME [--at T]`: its tokens dated at or after `at` stop counting."""
    from .._internal.text import escape_controls
    from ..trust import format_time, revoke_timestamp_authority

    if args.reason:
        raise ConfigError(
            "--reason is for keys: a timestamp authority's revocation records only its time"
        )

    def make(current: TrustRoot | None) -> Change:
        assert current is not None
        root = revoke_timestamp_authority(current, args.tsa, at)
        revoked = next(a for a in root.timestamp_authorities if a.name == args.tsa)
        assert revoked.revoked_at is not None
        what = (
            f"revoked timestamp authority {escape_controls(args.tsa)} "
            f"from {format_time(revoked.revoked_at)}"
        )
        return Change(root, what, "revoke-tsa")

    return update(args, args.file, make)


def tsa_lines(authority: TimestampAuthority) -> list[str]:
    """`show`'s lines for one TSA: name, state, window; label, leaf subject, chain length.
    Every text from the document or a certificate is shown with its controls escaped."""
    from .._internal.text import escape_controls
    from ..trust import format_time

    window = (
        f"{format_time(authority.valid_from) if authority.valid_from else '-'} .. "
        f"{format_time(authority.valid_until) if authority.valid_until else '-'}"
    )
    state = f"REVOKED {format_time(authority.revoked_at)}" if authority.revoked_at else "active"
    try:
        subject = authority.certificate.subject.rfc4514_string()
    except ValueError:  # an attribute pyca cannot render
        subject = "(unreadable subject)"
    lines = [f"tsa {escape_controls(authority.name)} {state} [{window}]"]
    if authority.label:
        lines.append(f"    label: {escape_controls(authority.label)}")
    lines.append(f"    subject: {escape_controls(subject)}")
    count = len(authority.chain)
    lines.append(f"    chain: {count} certificate{'s' if count != 1 else ''}")
    return lines
