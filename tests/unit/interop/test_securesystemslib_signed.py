"""Envelopes signed by securesystemslib (an independent DSSE signer) verify with our verifier.

securesystemslib's `CryptoSigner` signs the PAE with its own code path; keyids follow our
contract (SHA-256 of the SPKI DER) as in-toto tooling configured for it would write them.
ML-DSA is left out: securesystemslib's ml-dsa-65/1 signs a TAP 21 pre-hash, not the PAE.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from functools import cache

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.signer import CryptoSigner, SSlibKey

from dssesign.core.keys import PublicKey
from dssesign.errors import VerificationError
from dssesign.intoto.statement import PAYLOAD_TYPE
from dssesign.trust import Policy, TrustedKey, TrustRoot
from dssesign.verify import Code, verify
from tests.unit.verify.test_verify import NOW, payload_of, statement

#: (our CLI name, securesystemslib scheme, key factory)
SCHEMES = {
    "ed25519": "ed25519",
    "ecdsa-p256": "ecdsa-sha2-nistp256",
    "ecdsa-p384": "ecdsa-sha2-nistp384",
    "rsa-pss-3072": "rsassa-pss-sha256",
}


@cache
def _private_key(
    name: str,
) -> ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    if name == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if name == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if name == "ecdsa-p384":
        return ec.generate_private_key(ec.SECP384R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=3072)


def _spki_keyid(name: str) -> str:
    spki = (
        _private_key(name)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return hashlib.sha256(spki).hexdigest()


def _their_signer(name: str, keyid: str | None = None) -> CryptoSigner:
    private = _private_key(name)
    public = SSlibKey.from_crypto(
        private.public_key(), keyid=keyid or _spki_keyid(name), scheme=SCHEMES[name]
    )
    return CryptoSigner(private, public)


def _their_envelope(signers: list[CryptoSigner]) -> bytes:
    envelope = SslibEnvelope(
        payload=payload_of(statement()), payload_type=PAYLOAD_TYPE, signatures={}
    )
    for signer in signers:
        envelope.sign(signer)
    return json.dumps(envelope.to_dict()).encode()


def _root(names: list[str], threshold: int) -> TrustRoot:
    keys = tuple(
        TrustedKey(PublicKey(_private_key(n).public_key()), label=f"sslib-{n}") for n in names
    )
    return TrustRoot(
        version=1, expires=NOW + timedelta(days=30), keys=keys, policy=Policy(threshold)
    )


@pytest.mark.parametrize("name", list(SCHEMES))
def test_their_single_signature_verifies(name: str) -> None:
    result = verify(_their_envelope([_their_signer(name)]), _root([name], 1), at=NOW)
    assert [k.keyid for k in result.keys_counted] == [_spki_keyid(name)]
    assert result.predicate_type == statement()["predicateType"]


def test_their_multi_signature_envelope_meets_a_threshold_of_all() -> None:
    names = list(SCHEMES)
    envelope = _their_envelope([_their_signer(n) for n in names])
    result = verify(envelope, _root(names, len(names)), at=NOW)
    assert {k.keyid for k in result.keys_counted} == {_spki_keyid(n) for n in names}


def test_their_default_keyids_are_only_hints() -> None:
    # securesystemslib's own keyid scheme (hash of its key dict) is not ours: the verifier
    # tries the signature against every trusted key and still finds the right one.
    signer = CryptoSigner(_private_key("ecdsa-p256"))
    assert signer.public_key.keyid != _spki_keyid("ecdsa-p256")
    result = verify(_their_envelope([signer]), _root(["ecdsa-p256"], 1), at=NOW)
    assert [k.keyid for k in result.keys_counted] == [_spki_keyid("ecdsa-p256")]


def test_their_envelope_with_an_untrusted_key_is_refused() -> None:
    envelope = _their_envelope([_their_signer("ed25519")])
    with pytest.raises(VerificationError) as info:
        verify(envelope, _root(["ecdsa-p256"], 1), at=NOW)
    assert info.value.code == Code.NO_VALID_SIGNATURE
