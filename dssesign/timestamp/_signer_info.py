"""The two SignerInfo fields rfc3161-client (OpenSSL's PKCS7_verify) leaves unchecked.

- The signatureAlgorithm. No signature covers it and OpenSSL ignores it (the hash comes from
  the digestAlgorithm, the key type from the certificate), so an altered one verifies as the
  same token: it must state what was verified, for the signer's key type and digest.
- The ESS signingCertificate (RFC 2634) or signingCertificateV2 (RFC 5035) signed attribute,
  RFC 3161's binding of the signature to one certificate: without it, another certificate for
  the same key (an older, a revoked or a differently constrained one) could be swapped in.

Both are read with asn1crypto (untrusted DER is never parsed by hand), from a token
rfc3161-client has already parsed as strict DER and whose signature it has verified. asn1crypto
is imported here, on the first token verified, never by merely importing the verifier.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from cryptography import x509
from cryptography.x509.oid import PublicKeyAlgorithmOID

from ..codes import Code
from ..errors import VerificationError

__all__ = ["check_signer_info"]

#: The digests a SignerInfo, a signature algorithm or an ESSCertIDv2 may use, by OID.
_STRONG: Final = {
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
}
_EC: Final = PublicKeyAlgorithmOID.EC_PUBLIC_KEY.dotted_string
_RSA: Final = PublicKeyAlgorithmOID.RSAES_PKCS1_v1_5.dotted_string
#: signatureAlgorithm OID -> (key type, hash; None: the digestAlgorithm's, as rsaEncryption,
#: which OpenSSL writes, leaves it). A weak hash is named to be refused as such.
_SIGNATURE_ALGORITHMS: Final[dict[str, tuple[str, str | None]]] = {
    "1.2.840.10045.4.3.2": (_EC, "sha256"),
    "1.2.840.10045.4.3.3": (_EC, "sha384"),
    "1.2.840.10045.4.3.4": (_EC, "sha512"),
    "1.2.840.113549.1.1.1": (_RSA, None),
    "1.2.840.113549.1.1.11": (_RSA, "sha256"),
    "1.2.840.113549.1.1.12": (_RSA, "sha384"),
    "1.2.840.113549.1.1.13": (_RSA, "sha512"),
    "1.2.840.10045.4.1": (_EC, "SHA-1"),
    "1.2.840.10045.4.3.1": (_EC, "SHA-224"),
    "1.2.840.113549.1.1.2": (_RSA, "MD2"),
    "1.2.840.113549.1.1.3": (_RSA, "MD4"),
    "1.2.840.113549.1.1.4": (_RSA, "MD5"),
    "1.2.840.113549.1.1.5": (_RSA, "SHA-1"),
    "1.2.840.113549.1.1.14": (_RSA, "SHA-224"),
    "1.3.14.3.2.29": (_RSA, "SHA-1"),
}
#: Parameters allowed with them: absent for ECDSA (RFC 5758 3.2), NULL or absent for RSA
#: (RFC 4055 5). Anything else is an altered twin of the same signature.
_PARAMETERS: Final = {_EC: (b"",), _RSA: (b"", b"\x05\x00")}
_SIGNING_CERTIFICATE: Final = "1.2.840.113549.1.9.16.2.12"
_SIGNING_CERTIFICATE_V2: Final = "1.2.840.113549.1.9.16.2.47"
_SHA1: Final = "1.3.14.3.2.26"


@dataclass(frozen=True)
class _EssCertId:
    """The first ESSCertID(v2) of the ESS attribute: the one naming the signer."""

    #: An ESSCertIDv2 (signingCertificateV2), whose hashAlgorithm is named; else SHA-1's.
    v2: bool
    hash_algorithm: str
    cert_hash: bytes
    #: The issuerSerial, if present: its GeneralNames and serial number (asn1crypto objects).
    issuer: Any
    serial: int | None


@dataclass(frozen=True)
class _SignerInfo:
    digest: str
    signature_algorithm: str
    parameters: bytes
    ess: _EssCertId


@lru_cache(maxsize=256)
def _issuer(der: bytes) -> bytes:
    """The certificate's issuer Name as it encodes it (read by asn1crypto)."""
    from asn1crypto import x509 as asn1_x509  # noqa: PLC0415 - loaded with tsp already

    return bytes(asn1_x509.Certificate.load(der)["tbs_certificate"]["issuer"].dump())


def _fail(code: Code, message: str) -> VerificationError:
    return VerificationError(code, f"timestamp: {message}")


def _read(token_der: bytes) -> _SignerInfo:
    """What is checked, read with asn1crypto; TIMESTAMP_INVALID for what it cannot read."""
    from asn1crypto import core, tsp  # noqa: PLC0415 - only when a token is verified

    try:
        content_info = tsp.TimeStampResp.load(token_der, strict=True)["time_stamp_token"]
        signer_infos = content_info["content"]["signer_infos"]
        if len(signer_infos) != 1:
            raise _fail(Code.TIMESTAMP_INVALID, "expected exactly one SignerInfo")
        signer_info = signer_infos[0]
        attributes = signer_info["signed_attrs"]
        if isinstance(attributes, core.Void):
            raise _fail(Code.TIMESTAMP_INVALID, "the SignerInfo has no signed attributes")
        ess = [
            a
            for a in attributes
            if a["type"].dotted in (_SIGNING_CERTIFICATE, _SIGNING_CERTIFICATE_V2)
        ]
        if len(ess) != 1 or len(ess[0]["values"]) != 1:
            raise _fail(
                Code.TIMESTAMP_INVALID,
                "the signed attributes must hold exactly one ESS signingCertificate or "
                "signingCertificateV2 with one value (RFC 3161 2.4.1, RFC 5816)",
            )
        v2 = ess[0]["type"].dotted == _SIGNING_CERTIFICATE_V2
        ids = ess[0]["values"][0]["certs"]
        if len(ids) == 0:
            raise _fail(Code.TIMESTAMP_INVALID, "the ESS signingCertificate names no certificate")
        first = ids[0]
        issuer_serial = first["issuer_serial"]
        absent = isinstance(issuer_serial, core.Void)
        algorithm = signer_info["signature_algorithm"]
        return _SignerInfo(
            digest=str(signer_info["digest_algorithm"]["algorithm"].dotted),
            signature_algorithm=str(algorithm["algorithm"].dotted),
            parameters=bytes(algorithm["parameters"].dump()),
            ess=_EssCertId(
                v2=v2,
                hash_algorithm=str(first["hash_algorithm"]["algorithm"].dotted) if v2 else _SHA1,
                cert_hash=bytes(first["cert_hash"].native),
                issuer=None if absent else issuer_serial["issuer"],
                serial=None if absent else int(issuer_serial["serial_number"].native),
            ),
        )
    except VerificationError:
        raise
    except Exception as exc:  # asn1crypto raises ValueError, TypeError, KeyError...
        raise _fail(
            Code.TIMESTAMP_INVALID,
            f"its SignerInfo is unreadable ({type(exc).__name__}: {str(exc)[:200]})",
        ) from None


def _check_signature_algorithm(info: _SignerInfo, certificate: x509.Certificate) -> None:
    digest = _STRONG.get(info.digest)
    if digest is None:  # OpenSSL requires it listed in digestAlgorithms, checked before
        raise _fail(
            Code.TIMESTAMP_WEAK_HASH,
            f"the SignerInfo digest {info.digest[:80]} is not SHA-256, SHA-384 or SHA-512",
        )
    known = _SIGNATURE_ALGORITHMS.get(info.signature_algorithm)
    if known is None:
        raise _fail(
            Code.TIMESTAMP_INVALID,
            f"the signature algorithm {info.signature_algorithm[:80]} is not ECDSA or RSA "
            "PKCS#1 v1.5 with SHA-256, SHA-384 or SHA-512",
        )
    key_type, hash_name = known
    if hash_name is not None and hash_name not in _STRONG.values():
        raise _fail(Code.TIMESTAMP_WEAK_HASH, f"its signature algorithm uses {hash_name}")
    if key_type != certificate.public_key_algorithm_oid.dotted_string:
        raise _fail(
            Code.TIMESTAMP_INVALID,
            f"the signature algorithm {info.signature_algorithm} is not one for the signer's key",
        )
    if hash_name not in (None, digest):
        raise _fail(
            Code.TIMESTAMP_INVALID,
            f"the signature algorithm's {hash_name} is not the SignerInfo's digest {digest}",
        )
    if info.parameters not in _PARAMETERS[key_type]:
        raise _fail(Code.TIMESTAMP_INVALID, "the signature algorithm has unexpected parameters")


def _check_ess(ess: _EssCertId, certificate: x509.Certificate, der: bytes) -> None:
    if not ess.v2:
        # An ESSCertID (v1) hashes with SHA-1, and RFC 3161 (2.4.1) mandates exactly this
        # attribute: it is accepted. The hash names a certificate, it is not what is signed; a
        # swap needs a second certificate, signed by a trusted CA for the TSA's own key, whose
        # SHA-1 collides with the genuine one's: no practical attack reaches that.
        actual = hashlib.sha1(der).digest()  # noqa: S324 (see above)
    else:
        name = _STRONG.get(ess.hash_algorithm)
        if name is None:
            raise _fail(
                Code.TIMESTAMP_WEAK_HASH,
                f"the ESS signingCertificateV2 hash {ess.hash_algorithm[:80]} is not SHA-256, "
                "SHA-384 or SHA-512",
            )
        actual = hashlib.new(name, der).digest()
    if ess.cert_hash != actual:
        raise _fail(
            Code.TIMESTAMP_INVALID,
            "the ESS signingCertificate names another certificate than the signer's (a "
            "certificate for the same key was swapped in, or the token is malformed)",
        )
    if ess.serial is None:
        return
    from asn1crypto import x509 as asn1_x509  # noqa: PLC0415 - loaded with tsp already

    try:  # as OpenSSL's ess_find_cert: one directoryName, the serial, the issuer by RFC 5280
        names = ess.issuer
        issuer = _issuer(der)
        same = (
            ess.serial == certificate.serial_number
            and len(names) == 1
            and names[0].name == "directory_name"
            and (  # the same bytes, as TSAs copy them; else equal by RFC 5280's comparison
                names[0].chosen.untag().dump() == issuer
                or bool(names[0].chosen == asn1_x509.Name.load(issuer))
            )
        )
    except Exception as exc:
        raise _fail(
            Code.TIMESTAMP_INVALID,
            f"the ESS issuerSerial is unreadable ({type(exc).__name__}: {str(exc)[:200]})",
        ) from None
    if not same:
        raise _fail(
            Code.TIMESTAMP_INVALID,
            "the ESS issuerSerial is not the signer certificate's issuer and serial number",
        )


def check_signer_info(token_der: bytes, certificate: x509.Certificate, der: bytes) -> None:
    """The SignerInfo's signatureAlgorithm and ESS certificate binding fit `certificate`.

    `certificate` (DER `der`) is the signer the trust checks judged: the embedded certificate
    the SignerInfo names, or the authority's leaf. Run after rfc3161-client's strict parse and
    signature check, so only signed tokens get here. TIMESTAMP_INVALID for a structure
    asn1crypto refuses, a binding that names another certificate or an algorithm that does not
    fit; TIMESTAMP_WEAK_HASH for an algorithm hashing with anything but SHA-256/384/512 (the
    ESSCertID's SHA-1 aside).
    """
    info = _read(token_der)
    _check_signature_algorithm(info, certificate)
    _check_ess(info.ess, certificate, der)
