"""Reading X.509 certificates: the identities a certificate names.

Shared by the keyless profile (what it reports having signed as) and the bundle verifier (what
an identity rule matches), so both read a certificate's names the same way.
"""

from __future__ import annotations

from typing import Final

from cryptography import x509
from cryptography.hazmat import asn1

__all__ = ["certificate_sans"]

#: Fulcio's "username" otherName (a SAN type with no standard x509 class).
_OTHERNAME_OID: Final = "1.3.6.1.4.1.57264.1.7"


def certificate_sans(cert: x509.Certificate) -> list[str]:
    """The identities a Fulcio certificate's SAN holds: emails, URIs, Fulcio usernames."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    values: list[str] = list(san.get_values_for_type(x509.RFC822Name))
    values += san.get_values_for_type(x509.UniformResourceIdentifier)
    for other in san.get_values_for_type(x509.OtherName):
        if other.type_id.dotted_string == _OTHERNAME_OID:
            try:
                values.append(asn1.decode_der(str, other.value))
            except Exception:  # noqa: S112 - an undecodable name matches nothing
                continue
    return values
