from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from dssesign.core.keys import ALGORITHMS, PublicKey, algorithm_of, get_algorithm, load_public_key
from dssesign.errors import KeyFormatError
from dssesign.profiles.software import SoftwareSigner
from tests.conftest import ALL_ALGORITHMS, signer_for


def test_allow_list_uses_sigstore_names() -> None:
    assert set(ALGORITHMS) == {
        "PKIX_ED25519",
        "PKIX_ECDSA_P256_SHA_256",
        "PKIX_ECDSA_P384_SHA_384",
        "PKIX_RSA_PSS_3072_SHA256",
        "PKIX_RSA_PSS_4096_SHA256",
        "ML_DSA_65",
    }
    assert [get_algorithm(name).cli_name for name in ALL_ALGORITHMS] == list(ALL_ALGORITHMS)
    assert get_algorithm("PKIX_ED25519").cli_name == "ed25519"


def test_unknown_algorithm_names_the_known_ones() -> None:
    with pytest.raises(KeyFormatError, match=r"unknown algorithm 'dsa'.*ed25519"):
        get_algorithm("dsa")


def test_keyid_is_sha256_of_spki_der(any_signer: SoftwareSigner) -> None:
    key = any_signer.public_key
    assert key.keyid == hashlib.sha256(key.spki_der).hexdigest()
    assert key.keyid == key.keyid.lower() and len(key.keyid) == 64
    assert load_public_key(key.pem.encode()) == key
    assert load_public_key(key.spki_der) == key
    assert load_public_key(key.pem.encode()).keyid == any_signer.keyid


def test_verify_accepts_only_valid_signatures(any_signer: SoftwareSigner) -> None:
    signature = any_signer.sign(b"message")
    key = any_signer.public_key
    assert key.verify(signature, b"message")
    assert not key.verify(signature, b"messagE")
    assert not key.verify(signature[:-1] + bytes([signature[-1] ^ 1]), b"message")
    assert not key.verify(b"", b"message")
    assert not key.verify(b"\x30" * 7, b"message")


def test_signature_of_one_key_never_verifies_under_another() -> None:
    first, second = signer_for("ecdsa-p256", 0), signer_for("ecdsa-p256", 1)
    assert not second.public_key.verify(first.sign(b"m"), b"m")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ec.generate_private_key(ec.SECP521R1()), "unsupported elliptic curve secp521r1"),
        (lambda: ec.generate_private_key(ec.SECP256K1()), "unsupported elliptic curve"),
        (
            lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "RSA key size 2048",
        ),
    ],
)
def test_keys_outside_the_allow_list_are_refused(make: object, message: str) -> None:
    private = make()  # type: ignore[operator]
    with pytest.raises(KeyFormatError, match=message):
        algorithm_of(private)
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(KeyFormatError, match=message):
        load_public_key(pem)


def test_bad_key_material_is_a_clear_error() -> None:
    with pytest.raises(KeyFormatError, match="not a PEM SubjectPublicKeyInfo"):
        load_public_key(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    with pytest.raises(KeyFormatError, match="not a DER SubjectPublicKeyInfo"):
        load_public_key(b"\x30\x03\x02\x01\x01")


def test_non_canonical_der_is_refused() -> None:
    der = signer_for("ed25519").public_key.spki_der
    # Same key with a long-form length on the outer SEQUENCE: BER, not DER.
    ber = b"\x30\x81" + der[1:]
    with pytest.raises(KeyFormatError):
        PublicKey.from_der(ber)


def test_equality_and_hash_follow_key_material() -> None:
    a = signer_for("ed25519").public_key
    b = load_public_key(a.pem.encode())
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != signer_for("ed25519", 1).public_key
