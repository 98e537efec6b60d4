"""A test certificate-transparency log key that issues RFC 6962 precertificate SCTs.

Only the signing half of a CT log is needed: Fulcio embeds the SCT in the leaf and verifiers
check the log's signature over the precertificate with the key from trusted_root.json.
"""

from __future__ import annotations

import hashlib
import struct
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ObjectIdentifier

from . import der

#: X.509 extension holding the embedded SignedCertificateTimestampList (RFC 6962 3.3).
SCT_LIST_OID = ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")

_SCT_VERSION_V1 = 0
_SIGNATURE_TYPE_CERTIFICATE_TIMESTAMP = 0
_ENTRY_TYPE_PRECERT = 1
_HASH_SHA256 = 4
_SIGNATURE_ECDSA = 3


def _u16_prefixed(data: bytes) -> bytes:
    return struct.pack("!H", len(data)) + data


def _u24_prefixed(data: bytes) -> bytes:
    return struct.pack("!I", len(data))[1:] + data


class CTLog:
    """One ECDSA P-256 log key; its log id is SHA-256 of its SPKI DER (RFC 6962 3.2)."""

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.public_key = self._key.public_key()
        self.spki_der = self.public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.log_id = hashlib.sha256(self.spki_der).digest()

    def sign_precertificate(
        self, issuer_key_hash: bytes, tbs_certificate: bytes, *, timestamp: datetime
    ) -> bytes:
        """The TLS-encoded SignedCertificateTimestamp for a precertificate entry."""
        millis = int(timestamp.timestamp()) * 1000
        extensions = b""
        signed = (
            struct.pack(
                "!BBQH",
                _SCT_VERSION_V1,
                _SIGNATURE_TYPE_CERTIFICATE_TIMESTAMP,
                millis,
                _ENTRY_TYPE_PRECERT,
            )
            + issuer_key_hash
            + _u24_prefixed(tbs_certificate)
            + _u16_prefixed(extensions)
        )
        signature = self._key.sign(signed, ec.ECDSA(hashes.SHA256()))
        return (
            struct.pack("!B", _SCT_VERSION_V1)
            + self.log_id
            + struct.pack("!Q", millis)
            + _u16_prefixed(extensions)
            + struct.pack("!BB", _HASH_SHA256, _SIGNATURE_ECDSA)
            + _u16_prefixed(signature)
        )

    @staticmethod
    def sct_list_extension(scts: list[bytes]) -> x509.UnrecognizedExtension:
        """The SCT list extension: an OCTET STRING around the TLS SignedCertificateTimestampList."""
        tls_list = _u16_prefixed(b"".join(_u16_prefixed(sct) for sct in scts))
        return x509.UnrecognizedExtension(SCT_LIST_OID, der.octet_string(tls_list))
