"""securesystemslib, an independent DSSE implementation, verifies our multi-signature envelopes."""

from __future__ import annotations

from typing import Any

import pytest
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.signer import SSlibKey

from dssesign.core.dsse import Envelope
from dssesign.profiles.software import SoftwareSigner
from dssesign.sign.multisign import MultiProfileSigner
from tests.conftest import signer_for

# Every algorithm of ours that securesystemslib verifies in the same form.
SSLIB_ALGORITHMS = ("ed25519", "ecdsa-p256", "ecdsa-p384", "rsa-pss-3072", "rsa-pss-4096")


def _sslib_key(signer: SoftwareSigner) -> Any:
    algorithm = signer.algorithm
    assert algorithm.sslib_scheme is not None
    return SSlibKey.from_crypto(
        signer.public_key.key, keyid=signer.keyid, scheme=algorithm.sslib_scheme
    )


def _ours(signers: list[SoftwareSigner], payload: bytes) -> Envelope:
    return MultiProfileSigner(signers).sign(payload, "application/vnd.in-toto+json")


def test_all_keys_verify_with_threshold_equal_to_key_count() -> None:
    signers = [signer_for(a) for a in SSLIB_ALGORITHMS]
    envelope = _ours(signers, b'{"_type":"https://in-toto.io/Statement/v1"}')
    theirs = SslibEnvelope.from_dict(envelope.to_dict())
    accepted = theirs.verify([_sslib_key(s) for s in signers], threshold=len(signers))
    assert set(accepted) == {s.keyid for s in signers}
    assert theirs.pae() == envelope.pae()


@pytest.mark.parametrize("algorithm", SSLIB_ALGORITHMS)
def test_each_algorithm_alone(algorithm: str) -> None:
    signer = signer_for(algorithm)
    envelope = _ours([signer], "ünïcode payload".encode())
    theirs = SslibEnvelope.from_dict(envelope.to_dict())
    assert set(theirs.verify([_sslib_key(signer)], threshold=1)) == {signer.keyid}


def test_tampered_payload_fails_their_verification() -> None:
    signers = [signer_for(a) for a in SSLIB_ALGORITHMS]
    data = _ours(signers, b"original").to_dict()
    data["payload"] = "dGFtcGVyZWQ="
    from securesystemslib.exceptions import VerificationError

    with pytest.raises(VerificationError):
        SslibEnvelope.from_dict(data).verify([_sslib_key(s) for s in signers], threshold=1)


def test_we_read_their_envelopes() -> None:
    from securesystemslib.signer import CryptoSigner

    theirs_signer = CryptoSigner.generate_ed25519()
    envelope = SslibEnvelope(payload=b"from sslib", payload_type="text/plain", signatures={})
    envelope.sign(theirs_signer)
    ours = Envelope.from_dict(envelope.to_dict())
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from dssesign.core.keys import PublicKey

    raw = bytes.fromhex(theirs_signer.public_key.keyval["public"])
    key = PublicKey(Ed25519PublicKey.from_public_bytes(raw))
    assert key.verify(ours.signatures[0].sig, ours.pae())


def test_ml_dsa_is_plain_fips_204_not_securesystemslib_tap21() -> None:
    # securesystemslib's ml-dsa-65/1 signs "tuf" || 0x01 || SHA-512(PAE) (TAP 21); we sign the
    # PAE itself (FIPS 204, empty context) as sigstore's ML_DSA_65. Pin the difference.
    signer = signer_for("ml-dsa-65")
    envelope = _ours([signer], b"pq payload")
    assert signer.public_key.verify(envelope.signatures[0].sig, envelope.pae())
    key = SSlibKey.from_crypto(signer.public_key.key, keyid=signer.keyid, scheme="ml-dsa-65/1")
    from securesystemslib.exceptions import VerificationError

    with pytest.raises(VerificationError):
        SslibEnvelope.from_dict(envelope.to_dict()).verify([key], threshold=1)
