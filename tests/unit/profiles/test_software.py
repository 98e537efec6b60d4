from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from dssesign.errors import ConfigError, KeyFormatError
from dssesign.profiles.software import (
    SoftwareSigner,
    generate,
    load_key_file,
    load_private_key_pem,
    path_of_reference,
    write_keypair,
)
from dssesign.sign.signer import SignerOptions, load_signer
from tests.conftest import ALL_ALGORITHMS, dsse_vectors, signer_for


@pytest.mark.parametrize("algorithm", ALL_ALGORITHMS)
def test_write_and_load_round_trip(tmp_path: Path, algorithm: str) -> None:
    signer = signer_for(algorithm)
    key_path, pub_path = write_keypair(signer, tmp_path / "k", password=b"pw")
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    assert key_path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert pub_path.read_text() == signer.public_key.pem
    loaded = load_key_file(key_path, password=b"pw")
    assert loaded.keyid == signer.keyid
    assert signer.public_key.verify(loaded.sign(b"x"), b"x")


def test_unencrypted_key_without_password(tmp_path: Path) -> None:
    key_path, _ = write_keypair(signer_for("ed25519"), tmp_path / "k", password=None)
    assert key_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert load_key_file(key_path).keyid == signer_for("ed25519").keyid


def test_encrypted_key_needs_the_right_password(tmp_path: Path) -> None:
    key_path, _ = write_keypair(signer_for("ecdsa-p256"), tmp_path / "k", password=b"right")
    with pytest.raises(KeyFormatError, match="is encrypted: set DSSESIGN_KEY_PASSWORD"):
        load_key_file(key_path)
    with pytest.raises(KeyFormatError, match="wrong passphrase") as info:
        load_key_file(key_path, password=b"wrong")
    assert "wrong" not in str(info.value).replace("wrong passphrase", "")


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    write_keypair(signer_for("ed25519"), tmp_path / "k", password=None)
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        write_keypair(signer_for("ed25519", 1), tmp_path / "k", password=None)
    write_keypair(signer_for("ed25519", 1), tmp_path / "k", password=None, force=True)
    assert load_key_file(tmp_path / "k.key").keyid == signer_for("ed25519", 1).keyid


def test_signature_encodings() -> None:
    ed = signer_for("ed25519").sign(b"m")
    assert len(ed) == 64  # raw
    der = signer_for("ecdsa-p256").sign(b"m")
    r, s = utils.decode_dss_signature(der)  # DER, or this raises
    assert r > 0 and s > 0
    pss = signer_for("rsa-pss-3072")
    sig = pss.sign(b"m")
    assert len(sig) == 384
    # Salt length = hash length, MGF1 on SHA-256: verify with exactly those parameters.
    rsa_key = pss.public_key.key
    assert isinstance(rsa_key, rsa.RSAPublicKey)
    rsa_key.verify(
        sig,
        b"m",
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
        hashes.SHA256(),
    )
    assert len(signer_for("ml-dsa-65").sign(b"m")) == 3309


def test_deterministic_where_the_algorithm_allows() -> None:
    for algorithm in ("ed25519", "ecdsa-p256", "ecdsa-p384"):
        signer = signer_for(algorithm)
        assert signer.sign(b"m") == signer.sign(b"m"), algorithm


def test_ecdsa_is_rfc6979_official_dsse_vector() -> None:
    vector = dsse_vectors()["ecdsa_p256_official"]
    private = ec.derive_private_key(int(vector["private_d"]), ec.SECP256R1())
    signer = SoftwareSigner(private)
    assert signer.keyid == vector["public_key_spki_sha256_hex"]
    from dssesign.core.dsse import Envelope

    envelope = Envelope.from_dict(vector["envelope"])
    import base64

    assert base64.b64encode(signer.sign(envelope.pae())).decode() == vector["same_sig_as_DER_b64"]


def test_generate_every_algorithm_and_refuse_unknown() -> None:
    assert generate("PKIX_ED25519").algorithm.cli_name == "ed25519"
    with pytest.raises(KeyFormatError, match="unknown algorithm"):
        generate("rsa-2048")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not a PEM private key"),
        (b"not a key", "not a PEM private key"),
        (
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "not a PEM private key",
        ),
    ],
)
def test_bad_private_key_files(data: bytes, message: str) -> None:
    with pytest.raises(KeyFormatError, match=message):
        load_private_key_pem(data, password=None, source="k.pem")


def test_public_key_is_not_a_signing_key(tmp_path: Path) -> None:
    _, pub = write_keypair(signer_for("ed25519"), tmp_path / "k", password=None)
    with pytest.raises(KeyFormatError, match="not a PEM private key"):
        load_key_file(pub)


def test_unsupported_private_key_is_refused() -> None:
    pem = ec.generate_private_key(ec.SECP521R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(KeyFormatError, match="secp521r1"):
        load_private_key_pem(pem, password=None)


def test_key_references(tmp_path: Path) -> None:
    key_path, _ = write_keypair(signer_for("ed25519"), tmp_path / "k", password=None)
    assert path_of_reference(f"file://{key_path}") == key_path
    assert path_of_reference(str(key_path)) == key_path
    for ref in (str(key_path), f"file://{key_path}"):
        assert load_signer(ref).keyid == signer_for("ed25519").keyid
    with pytest.raises(ConfigError, match="expected 00"):
        load_signer(str(key_path), SignerOptions(expected_keyid="00" * 32))
