"""Target `keys`: public keys as PEM or DER SubjectPublicKeyInfo, and PEM private keys.

Each input goes through `load_public_key`, `PublicKey.from_pem`, `PublicKey.from_der` and
`load_private_key_pem` (without a passphrase: a passphrase only starts the key file's own KDF).
A public key that loads must reload from its PEM and its DER as the same key (one keyid), and
`verify` with any signature bytes must answer True or False, never raise.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import partial

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x25519

from dssesign.core.keys import PublicKey, load_public_key
from dssesign.profiles.software import generate, load_private_key_pem

from ._common import FIXTURES, ContractViolation, attempt

NAME = "keys"
MAX_LEN = 8 * 1024

DICTIONARY = (
    "-----BEGIN PUBLIC KEY-----\n", "-----END PUBLIC KEY-----\n", "-----BEGIN PRIVATE KEY-----\n",
    "-----END PRIVATE KEY-----\n", "-----BEGIN EC PRIVATE KEY-----\n",
    "-----BEGIN RSA PRIVATE KEY-----\n", "-----BEGIN ENCRYPTED PRIVATE KEY-----\n",
    "Proc-Type: 4,ENCRYPTED", "\x30\x82", "\x30\x81", "\x06\x03\x2b\x65\x70",
    "\x06\x07\x2a\x86\x48\xce\x3d\x02\x01", "\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07",
    "\x06\x05\x2b\x81\x04\x00\x22", "\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01",
    "\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x0a", "\x06\x09\x60\x86\x48\x01\x65\x03\x04\x03\x12",
    "\x05\x00", "\x03\x21\x00", "\x03\x42\x00\x04",
)  # fmt: skip


def _check_public(public: PublicKey, data: bytes) -> None:
    keyid = public.keyid
    for reloaded in (PublicKey.from_pem(public.pem.encode()), PublicKey.from_der(public.spki_der)):
        if reloaded != public or reloaded.keyid != keyid:
            raise ContractViolation("round-trip", f"{public!r} reloads as another key")
    for signature in (data, data[-64:], data[:512], b""):
        if not isinstance(public.verify(signature, b"message"), bool):
            raise ContractViolation("verify", "verify() did not answer True or False")


def check(data: bytes) -> None:
    for load in (load_public_key, PublicKey.from_pem, PublicKey.from_der):
        public = attempt(partial(load, data, source="fuzzed key"))
        if public is not None:
            _check_public(public, data)
    signer = attempt(lambda: load_private_key_pem(data, password=None, source="fuzzed key"))
    if signer is not None:
        _check_public(signer.public_key, data)


def _public_keys() -> Iterator[object]:
    for name in ("ed25519", "ecdsa-p256", "ecdsa-p384", "rsa-pss-3072", "ml-dsa-65"):
        yield generate(name).public_key.key
    yield ec.generate_private_key(ec.SECP521R1()).public_key()
    yield ec.generate_private_key(ec.SECP256K1()).public_key()
    yield rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    yield ed448.Ed448PrivateKey.generate().public_key()
    yield x25519.X25519PrivateKey.generate().public_key()
    yield dsa.generate_private_key(key_size=2048).public_key()


def seeds() -> Iterator[bytes]:
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    for key in _public_keys():
        yield key.public_bytes(serialization.Encoding.PEM, spki)  # type: ignore[attr-defined]
        yield key.public_bytes(serialization.Encoding.DER, spki)  # type: ignore[attr-defined]
    pkcs8 = serialization.PrivateFormat.PKCS8
    for name in ("ed25519", "ecdsa-p256", "rsa-pss-3072", "ml-dsa-65"):
        private = generate(name)._private_key
        yield private.private_bytes(serialization.Encoding.PEM, pkcs8, serialization.NoEncryption())
    private_ec = ec.generate_private_key(ec.SECP256R1())
    yield private_ec.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    yield private_ec.private_bytes(
        serialization.Encoding.PEM, pkcs8, serialization.BestAvailableEncryption(b"secret")
    )
    yield ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )  # fmt: skip
    yield (FIXTURES / "sigstore" / "cosign-keyed.pub").read_bytes()
    vectors = json.loads((FIXTURES / "dsse" / "dsse_vectors.json").read_text())
    for vector in vectors.values():
        if isinstance(vector, dict) and isinstance(vector.get("public_key_pem"), str):
            yield vector["public_key_pem"].encode()
