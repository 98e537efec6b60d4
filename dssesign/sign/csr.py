"""PKCS#10 certificate signing requests signed by any `Signer`, for an organisation CA.

The CA needs proof of possession, but an HSM, KMS or Vault key never leaves its device, and
pyca/cryptography signs a CSR only with a private key object it holds. So the
CertificationRequestInfo is encoded here with asn1crypto and signed with `Signer.sign`, in the
same encoding DSSE signatures use. The result is read back with pyca/cryptography and its
signature checked before it is returned: a CSR that does not verify is never handed out.
"""

from __future__ import annotations

import base64
from typing import Any, Final

from asn1crypto import csr as asn1_csr
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from .._internal.text import clip, escape_controls
from ..core.keys import ECDSA_P256, ECDSA_P384, ED25519, RSA_PSS_3072, RSA_PSS_4096, Algorithm
from ..errors import ConfigError, SigningError
from .signer import Signer, redacted_reference

__all__ = ["MAX_SUBJECT_CHARS", "build_csr", "parse_subject"]

#: Longest subject DN accepted, in characters: far above any real DN, short enough for a message.
MAX_SUBJECT_CHARS: Final = 1024

_PEM_BEGIN: Final = "-----BEGIN CERTIFICATE REQUEST-----"
_PEM_END: Final = "-----END CERTIFICATE REQUEST-----"
_DN_EXAMPLE: Final = "e.g. 'CN=release signing,O=Example Corp,C=DE'"


def _pss(algorithm: Algorithm) -> dict[str, Any]:
    """RSASSA-PSS parameters (RFC 4055) for what `core.keys.pss_padding` signs: MGF1 on the same
    hash, salt length = hash length, trailer 1 (the default, so left out of the DER)."""
    hash_name = algorithm.hash_name
    salt_length = algorithm.hash_algorithm().digest_size
    return {
        "algorithm": "rsassa_pss",
        "parameters": {
            "hash_algorithm": {"algorithm": hash_name},
            "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": hash_name}},
            "salt_length": salt_length,
        },
    }


#: The CSR signatureAlgorithm (asn1crypto SignedDigestAlgorithm) for each allow-listed algorithm
#: a CSR can carry: exactly what `Signer.sign` produces with it. ML-DSA is left out: OpenSSL 3.0
#: and the CAs we target cannot verify it in a CSR.
_SIGNATURE_ALGORITHMS: Final[dict[str, dict[str, Any]]] = {
    ED25519.name: {"algorithm": "ed25519"},
    ECDSA_P256.name: {"algorithm": "sha256_ecdsa"},
    ECDSA_P384.name: {"algorithm": "sha384_ecdsa"},
    RSA_PSS_3072.name: _pss(RSA_PSS_3072),
    RSA_PSS_4096.name: _pss(RSA_PSS_4096),
}


def _unsafe_character(text: str) -> str | None:
    """The first control, reordering or non-Unicode character of `text`, shown escaped."""
    for char in text:
        shown = escape_controls(char)
        if shown != char:
            return shown
    return None


def parse_subject(subject: str) -> x509.Name:
    """The subject DN from RFC 4514 text, or a `ConfigError` naming what is wrong.

    Checked apart from `build_csr` so a command can refuse a bad DN before it loads a key.
    Control characters are refused in the text and, since RFC 4514 escapes (``\\0A``) and hex
    values (``#04...``) can smuggle them in, in every parsed value too: a DN a CA shows its
    operator must read as what it is.
    """
    if not subject.strip():
        raise ConfigError(f"subject DN is empty: give one in RFC 4514 form ({_DN_EXAMPLE})")
    if len(subject) > MAX_SUBJECT_CHARS:
        raise ConfigError(
            f"subject DN is {len(subject)} characters long, more than {MAX_SUBJECT_CHARS}"
        )
    bad = _unsafe_character(subject)
    if bad is not None:
        raise ConfigError(f"subject DN holds a control character ({bad}); none is allowed")
    shown = escape_controls(clip(subject, 80))
    try:
        name = x509.Name.from_rfc4514_string(subject)
    except ValueError as exc:
        detail = f": {escape_controls(clip(str(exc)))}" if str(exc) else ""
        raise ConfigError(
            f"subject DN '{shown}' is not an RFC 4514 distinguished name{detail} ({_DN_EXAMPLE})"
        ) from None
    if len(name) == 0:
        raise ConfigError(f"subject DN '{shown}' names no attribute ({_DN_EXAMPLE})")
    for attribute in name:
        value = attribute.value
        text = value if isinstance(value, str) else value.decode("latin-1")
        label = attribute.rfc4514_attribute_name
        if not text:
            raise ConfigError(f"subject DN '{shown}': attribute {label} is empty")
        bad = _unsafe_character(text)
        if bad is not None:
            raise ConfigError(
                f"subject DN '{shown}': attribute {label} holds a control character ({bad}) "
                "after unescaping (hex #... values are not supported)"
            )
    return name


def _signature_algorithm(signer: Signer) -> dict[str, Any]:
    """What the CSR says it is signed with; refused when it would not match the signature."""
    algorithm = signer.algorithm
    found = _SIGNATURE_ALGORITHMS.get(algorithm.name)
    if found is None:
        supported = ", ".join(_SIGNATURE_ALGORITHMS)
        raise ConfigError(
            f"key {_describe(signer)} uses {escape_controls(algorithm.name)}, which a CSR "
            f"cannot carry (supported: {supported})"
        )
    if algorithm != signer.public_key.algorithm:
        raise SigningError(
            f"key {_describe(signer)} signs with {algorithm.name} but its public key is "
            f"{signer.public_key.algorithm.name}: no CSR written"
        )
    return found


def _describe(signer: Signer) -> str:
    reference = getattr(signer, "reference", None)
    shown = redacted_reference(reference) if isinstance(reference, str) else signer.keyid
    return escape_controls(shown)


def _code_signing_request() -> Any:
    """The extensionRequest a code-signing leaf needs (and the trust root will demand):
    keyUsage digitalSignature (critical) and extendedKeyUsage codeSigning."""
    extensions = asn1_x509.Extensions(
        [
            {
                "extn_id": "key_usage",
                "critical": True,
                "extn_value": asn1_x509.KeyUsage({"digital_signature"}),
            },
            {
                "extn_id": "extended_key_usage",
                "critical": False,
                "extn_value": asn1_x509.ExtKeyUsageSyntax(["code_signing"]),
            },
        ]
    )
    return {"type": "extension_request", "values": [extensions]}


def build_csr(signer: Signer, subject: str) -> bytes:
    """A PEM CSR for `signer`'s public key and `subject` (RFC 4514), signed by `signer`.

    The key signs where it lives (token, KMS, Vault); only the CertificationRequestInfo bytes
    travel to it. `ConfigError` for a bad DN or an algorithm a CSR cannot carry; `SigningError`
    when the signature does not verify with the key's public key (nothing is returned then).
    """
    name = parse_subject(subject)
    signature_algorithm = _signature_algorithm(signer)
    public = signer.public_key
    info = asn1_csr.CertificationRequestInfo(
        {
            "version": "v1",
            "subject": asn1_x509.Name.load(name.public_bytes()),
            "subject_pk_info": asn1_keys.PublicKeyInfo.load(public.spki_der),
            "attributes": [_code_signing_request()],
        }
    )
    signature = signer.sign(info.dump())
    request = asn1_csr.CertificationRequest(
        {
            "certification_request_info": info,
            "signature_algorithm": signature_algorithm,
            "signature": signature,
        }
    )
    return _checked_pem(request.dump(), signer)


def _checked_pem(der: bytes, signer: Signer) -> bytes:
    """The CSR as PEM, returned only once pyca/cryptography reads those very bytes, finds the
    signer's key in them and accepts their signature: what a CA will check first."""
    body = base64.encodebytes(der).decode("ascii").replace("\n", "")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    pem = "\n".join([_PEM_BEGIN, *lines, _PEM_END, ""]).encode("ascii")
    try:
        loaded = x509.load_pem_x509_csr(pem)
        same_key = (
            loaded.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            == signer.public_key.spki_der
        )
        valid = same_key and loaded.is_signature_valid
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SigningError(
            f"the CSR signed by key {_describe(signer)} cannot be read back "
            f"({escape_controls(clip(str(exc) or type(exc).__name__))}): no CSR written"
        ) from None
    if not valid:
        raise SigningError(
            f"the CSR signature by key {_describe(signer)} does not verify with its public key "
            f"(keyid {signer.keyid}): no CSR written"
        )
    return pem
