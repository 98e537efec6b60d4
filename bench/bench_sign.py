"""Statement -> signed envelope JSON: ours beside securesystemslib + rfc8785 and raw pyca calls.

Issue 12 item 3, at equal assurance, for Ed25519 and ECDSA P-256, on the SLSA provenance
Statement; all cases run in this process in interleaved rounds.

* ours: `MultiProfileSigner.sign(statement_payload(statement), PAYLOAD_TYPE).to_json()`: the
  Statement validated, serialized as RFC 8785, signed over the DSSE PAE, the signature verified
  with the public key before it is emitted, and the envelope written as JSON.
* securesystemslib + rfc8785: the same job with those libraries: `rfc8785.dumps(statement)`,
  `Envelope.sign(CryptoSigner)`, `Key.verify_signature` of the signature it just made, and
  `json.dumps(envelope.to_dict())`. It does not validate the Statement.
* raw sign+verify: pyca's `sign` and a `verify` of that signature over ready PAE bytes, the
  floor of a signer that checks every signature before it lets it out.
* RFC 8785 + raw sign+verify: that, after serializing the Statement with dssesign.core.canonical;
  no validation, no envelope: the floor of any signer of RFC 8785 Statements.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import rfc8785
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.signer import CryptoSigner

from dssesign.core.canonical import canonicalize
from dssesign.core.dsse import pae
from dssesign.intoto.statement import PAYLOAD_TYPE, statement_payload
from dssesign.profiles.software import generate
from dssesign.sign.multisign import MultiProfileSigner

from ._harness import Comparison
from ._interleave import interleaved
from ._statements import slsa_provenance

ROUNDS = 5
PEER = "securesystemslib + rfc8785 + verify"
RAW = "raw sign+verify"
FLOOR = "RFC 8785 + raw sign+verify"


def _sign_then_verify(private: object, public: object) -> Callable[[bytes], bytes]:
    """pyca's sign, then a verify of that signature: what a verify-before-emit signer must do."""
    if isinstance(private, ec.EllipticCurvePrivateKey):
        assert isinstance(public, ec.EllipticCurvePublicKey)
        ec_private, ec_public = private, public
        ecdsa = ec.ECDSA(hashes.SHA256())  # pyca's default: a random nonce

        def ecdsa_raw(message: bytes) -> bytes:
            signature = ec_private.sign(message, ecdsa)
            ec_public.verify(signature, message, ecdsa)
            return signature

        return ecdsa_raw
    assert isinstance(private, ed25519.Ed25519PrivateKey)
    assert isinstance(public, ed25519.Ed25519PublicKey)
    ed_private, ed_public = private, public

    def ed25519_raw(message: bytes) -> bytes:
        signature = ed_private.sign(message)
        ed_public.verify(signature, message)
        return signature

    return ed25519_raw


def _rows(algorithm: str) -> list[Comparison]:
    statement: Any = slsa_provenance()  # Any: rfc8785's type for a JSON value is narrower
    signer = generate(algorithm)
    multi = MultiProfileSigner([signer])
    payload = statement_payload(statement)
    # The same bytes to sign on both sides, or the comparison is off.
    assert rfc8785.dumps(statement) == payload
    message = pae(PAYLOAD_TYPE, payload)

    private = signer._private_key  # the same key object, called directly
    sign_then_verify = _sign_then_verify(private, signer.public_key.key)
    raw = functools.partial(sign_then_verify, message)

    sslib_signer = CryptoSigner(private)
    sslib_public = sslib_signer.public_key

    def peer() -> bytes:
        body = rfc8785.dumps(statement)
        envelope = SslibEnvelope(payload=body, payload_type=PAYLOAD_TYPE, signatures={})
        signature = envelope.sign(sslib_signer)
        sslib_public.verify_signature(signature, envelope.pae())  # raises if it does not verify
        return json.dumps(envelope.to_dict(), separators=(",", ":")).encode()

    def ours() -> bytes:
        return multi.sign(statement_payload(statement), PAYLOAD_TYPE).to_json()

    def unchecked() -> object:
        """The floor of signing a Statement as RFC 8785, verifying before emitting: no checks."""
        body = canonicalize(statement)
        return body, sign_then_verify(pae(PAYLOAD_TYPE, body))

    best = interleaved({"ours": ours, RAW: raw, PEER: peer, FLOOR: unchecked}, rounds=ROUNDS)
    name = f"statement -> envelope, {algorithm}"
    mode = " (ours signs with RFC 6979 nonces)" if algorithm.startswith("ecdsa") else ""
    return [
        Comparison(
            name=name,
            unit="ops/s",
            ours=best["ours"],
            baselines={RAW: best[RAW], PEER: best[PEER], FLOOR: best[FLOOR]},
            target=(RAW, 0.75),
            note="ours = validate the SLSA provenance Statement + RFC 8785 + sign + verify the "
            "signature before emitting it + envelope JSON; raw = pyca sign + verify of that "
            f"signature on ready PAE bytes{mode}; {FLOOR} = RFC 8785 (dssesign.core.canonical) "
            "+ the same sign + verify, no validation and no envelope (the floor of any such "
            f"signer: {best[FLOOR] / best[RAW]:.2f}x raw); best of {ROUNDS} interleaved rounds",
        ),
        Comparison(
            name=f"{name} vs securesystemslib + rfc8785",
            unit="ops/s",
            ours=best["ours"],
            baselines={PEER: best[PEER]},
            target=(PEER, 1.5),
            note="the same job with securesystemslib: rfc8785.dumps, Envelope.sign, "
            "Key.verify_signature of the new signature, json.dumps of the envelope (the "
            "Statement is not validated); same rounds as the row above",
        ),
    ]


def run() -> list[Comparison]:
    return [*_rows("ed25519"), *_rows("ecdsa-p256")]
