"""securesystemslib, a DSSE implementation we did not write, verifies countersigned and merged
envelopes with threshold 2, and an envelope it signed stays verifiable after we countersign it."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import CryptoSigner, SSlibKey

from dssesign.core.dsse import Envelope
from dssesign.profiles.software import SoftwareSigner
from dssesign.sign.merge import merge_envelopes
from dssesign.sign.multisign import MultiProfileSigner
from tests.conftest import signer_for

PAYLOAD = b'{"_type":"https://in-toto.io/Statement/v1","predicateType":"x","subject":[]}'
PAYLOAD_TYPE = "application/vnd.in-toto+json"


def _sslib_key(signer: SoftwareSigner) -> Any:
    scheme = signer.algorithm.sslib_scheme
    assert scheme is not None
    return SSlibKey.from_crypto(signer.public_key.key, keyid=signer.keyid, scheme=scheme)


def _theirs(envelope: Envelope) -> SslibEnvelope:
    return SslibEnvelope.from_dict(envelope.to_dict())


@pytest.mark.parametrize(
    ("first", "second"), [("ed25519", "ecdsa-p256"), ("ecdsa-p384", "rsa-pss-3072")]
)
def test_countersigned_envelope_meets_their_threshold_of_two(first: str, second: str) -> None:
    build, review = signer_for(first, 4), signer_for(second, 4)
    signed = MultiProfileSigner([build]).sign(PAYLOAD, PAYLOAD_TYPE)
    keys = [_sslib_key(build), _sslib_key(review)]
    with pytest.raises(VerificationError):  # one signature is not two
        _theirs(signed).verify(keys, threshold=2)
    countersigned = MultiProfileSigner([review]).countersign(signed).envelope
    accepted = _theirs(countersigned).verify(keys, threshold=2)
    assert set(accepted) == {build.keyid, review.keyid}
    assert _theirs(countersigned).pae() == signed.pae()


def test_merged_envelope_meets_their_threshold_of_two() -> None:
    build, review, third = (
        signer_for("ed25519", 4),
        signer_for("ecdsa-p256", 4),
        signer_for("ecdsa-p384", 4),
    )
    apart = [MultiProfileSigner([s]).sign(PAYLOAD, PAYLOAD_TYPE) for s in (build, review, third)]
    merged = merge_envelopes([*apart, apart[0]])
    assert len(merged.signatures) == 3
    keys = [_sslib_key(s) for s in (build, review, third)]
    assert set(_theirs(merged).verify(keys, threshold=3)) == {
        s.keyid for s in (build, review, third)
    }
    assert len(_theirs(merged).verify(keys[:2], threshold=2)) == 2


def test_we_countersign_an_envelope_they_signed() -> None:
    theirs_signer = CryptoSigner.generate_ed25519()
    envelope = SslibEnvelope(payload=PAYLOAD, payload_type=PAYLOAD_TYPE, signatures={})
    envelope.sign(theirs_signer)
    ours = signer_for("ecdsa-p256", 5)
    countersigned = MultiProfileSigner([ours]).countersign(Envelope.from_dict(envelope.to_dict()))
    back = _theirs(countersigned.envelope)
    assert back.payload == PAYLOAD
    accepted = back.verify([theirs_signer.public_key, _sslib_key(ours)], threshold=2)
    assert set(accepted) == {theirs_signer.public_key.keyid, ours.keyid}


def test_they_refuse_a_merge_we_would_have_refused() -> None:
    # Their verifier fails a payload re-encoded after signing: why merge compares decoded bytes.
    signer = signer_for("ed25519", 4)
    data = MultiProfileSigner([signer]).sign(PAYLOAD, PAYLOAD_TYPE).to_dict()
    spaced = json.dumps(json.loads(PAYLOAD), indent=1).encode()
    data["payload"] = base64.b64encode(spaced).decode()
    with pytest.raises(VerificationError):
        SslibEnvelope.from_dict(data).verify([_sslib_key(signer)], threshold=1)
