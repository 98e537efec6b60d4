"""Keys on a token: algorithm, public key, and the protection a signing key must have."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from ...core.keys import ECDSA_P256, ECDSA_P384, ED25519, RSA_PSS_3072, RSA_PSS_4096, Algorithm
from ...core.keys import PublicKey as DsPublicKey
from ...errors import (
    ConfigError,
    KeyFormatError,
)
from .module import _p11
from .uri import (
    _EC_PARAMS_ED25519_NAME,
    EC_PARAMS_ED25519,
    EC_PARAMS_P256,
    EC_PARAMS_P384,
    Pkcs11Uri,
)

# --------------------------------------------------------------------------- keys


def key_algorithm(private_key: Any) -> Algorithm:
    """The allow-listed algorithm of a token key (from its type, curve or modulus size)."""
    pkcs11 = _p11()
    key_type = private_key.key_type
    if key_type == pkcs11.KeyType.EC:
        params = bytes(private_key[pkcs11.Attribute.EC_PARAMS])
        if params == EC_PARAMS_P256:
            return ECDSA_P256
        if params == EC_PARAMS_P384:
            return ECDSA_P384
        raise KeyFormatError(f"unsupported EC curve (parameters {params.hex()}); use P-256/P-384")
    if key_type == pkcs11.KeyType.EC_EDWARDS:
        params = bytes(private_key[pkcs11.Attribute.EC_PARAMS])
        if params in (EC_PARAMS_ED25519, _EC_PARAMS_ED25519_NAME):
            return ED25519
        raise KeyFormatError("unsupported Edwards curve (only Ed25519 is allowed)")
    if key_type == pkcs11.KeyType.RSA:
        bits = int.from_bytes(bytes(private_key[pkcs11.Attribute.MODULUS]), "big").bit_length()
        if bits == 3072:
            return RSA_PSS_3072
        if bits == 4096:
            return RSA_PSS_4096
        raise KeyFormatError(f"unsupported RSA key size {bits} (use 3072 or 4096)")
    raise KeyFormatError(f"unsupported PKCS#11 key type {key_type!r}")


def _der_octet_string(data: bytes) -> bytes:
    """Unwrap a DER OCTET STRING (how CKA_EC_POINT is encoded); raw points pass unchanged."""
    if len(data) < 2 or data[0] != 0x04:
        return data
    length, offset = data[1], 2
    if length & 0x80:
        count = length & 0x7F
        length, offset = int.from_bytes(data[2 : 2 + count], "big"), 2 + count
    if offset + length == len(data):
        return data[offset:]
    return data


def public_key_of(session: Any, private_key: Any, algorithm: Algorithm) -> DsPublicKey:
    """The key pair's public key as an SPKI, read from the token's public key object."""
    pkcs11 = _p11()
    attrs: dict[Any, Any] = {pkcs11.Attribute.CLASS: pkcs11.ObjectClass.PUBLIC_KEY}
    label = _attr_or_none(private_key, pkcs11.Attribute.LABEL)
    key_id = _attr_or_none(private_key, pkcs11.Attribute.ID)
    if key_id:
        attrs[pkcs11.Attribute.ID] = bytes(key_id)
    if label:
        attrs[pkcs11.Attribute.LABEL] = label
    publics = list(session.get_objects(attrs))
    if len(publics) != 1:
        info = _attr_or_none(private_key, pkcs11.Attribute.PUBLIC_KEY_INFO)
        if info:
            return DsPublicKey.from_der(bytes(info), source="CKA_PUBLIC_KEY_INFO")
        raise KeyFormatError(
            f"PKCS#11 key {label!r}: {len(publics)} matching public key objects (need exactly 1)"
        )
    public = publics[0]
    key: ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey
    try:
        if algorithm in (ECDSA_P256, ECDSA_P384):
            curve: ec.EllipticCurve = ec.SECP256R1() if algorithm is ECDSA_P256 else ec.SECP384R1()
            point = _der_octet_string(bytes(public[pkcs11.Attribute.EC_POINT]))
            key = ec.EllipticCurvePublicKey.from_encoded_point(curve, point)
        elif algorithm is ED25519:
            point = _der_octet_string(bytes(public[pkcs11.Attribute.EC_POINT]))
            key = ed25519.Ed25519PublicKey.from_public_bytes(point)
        else:
            modulus = int.from_bytes(bytes(public[pkcs11.Attribute.MODULUS]), "big")
            exponent = int.from_bytes(bytes(public[pkcs11.Attribute.PUBLIC_EXPONENT]), "big")
            key = rsa.RSAPublicNumbers(exponent, modulus).public_key()
    except ValueError as exc:
        raise KeyFormatError(f"PKCS#11 key {label!r}: bad public key ({exc})") from None
    return DsPublicKey(key)


def _attr_or_none(obj: Any, attribute: Any) -> Any:
    pkcs11 = _p11()
    try:
        return obj[attribute]
    except (pkcs11.AttributeTypeInvalid, pkcs11.AttributeSensitive, pkcs11.FunctionFailed):
        return None


def find_private_key(session: Any, uri: Pkcs11Uri, token_label: str) -> Any:
    """The one private key object=/id= names on the token; `ConfigError` if none or several."""
    pkcs11 = _p11()
    attrs: dict[Any, Any] = {pkcs11.Attribute.CLASS: pkcs11.ObjectClass.PRIVATE_KEY}
    if uri.object is not None:
        attrs[pkcs11.Attribute.LABEL] = uri.object
    if uri.id is not None:
        attrs[pkcs11.Attribute.ID] = uri.id
    if len(attrs) == 1:
        raise ConfigError("pkcs11 URI: name the key with object= or id=")
    found = list(session.get_objects(attrs))
    what = uri.describe().split("?", 1)[0]
    if not found:
        raise ConfigError(f"no private key {what} on PKCS#11 token {token_label!r}")
    if len(found) > 1:
        raise ConfigError(f"{len(found)} private keys match {what}; add id= to the reference")
    return found[0]


def check_protection(private_key: Any, *, allow_extractable: bool, where: str) -> bool:
    """Refuse a key that could leave the token, unless the user explicitly allowed it.

    Returns whether it can leave (extractable or not sensitive): True only when allowed.
    """
    pkcs11 = _p11()
    sensitive = bool(_attr_or_none(private_key, pkcs11.Attribute.SENSITIVE))
    extractable = bool(_attr_or_none(private_key, pkcs11.Attribute.EXTRACTABLE))
    if (extractable or not sensitive) and not allow_extractable:
        problem = "extractable" if extractable else "not sensitive"
        raise ConfigError(
            f"{where}: the private key is {problem}, so it can leave the HSM; refusing to sign "
            "with it (add allow-extractable=true to the reference to accept this)"
        )
    return extractable or not sensitive
