"""sigstore-python's offline Verifier accepts our keyless bundles and rejects tampered ones.

The bundles come from the keyless profile signing against the local Sigstore instance; the
verifier gets only the instance's trusted_root.json (no network).
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sigstore.errors import Error as SigstoreError
from sigstore.errors import VerificationError
from sigstore.models import Bundle, InvalidBundle, TrustedRoot
from sigstore.verify import Verifier
from sigstore.verify.policy import AllOf, Identity, OIDCIssuerV2
from sigstore_models.rekor.v1 import TransparencyLogEntry as _TransparencyLogEntry

from dssesign.core.canonical import canonicalize
from dssesign.core.dsse import pae
from dssesign.profiles.keyless import KeylessSigner
from dssesign.sign.signer import SignerOptions, load_signer
from tests.sigstore_instance import SigstoreInstance, start_instance

IN_TOTO = "application/vnd.in-toto+json"
Mutation = Callable[[dict[str, Any]], None]


def _statement(name: str) -> bytes:
    return canonicalize(
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": name, "digest": {"sha256": "cd" * 32}}],
            "predicateType": "https://spdx.dev/Document",
            "predicate": {"spdxVersion": "SPDX-2.3"},
        }
    )


@pytest.fixture(scope="module")
def signed(sigstore_instance: SigstoreInstance) -> tuple[bytes, dict[str, Any]]:
    """(payload, bundle JSON) from one keyless signature."""
    options = SignerOptions(
        identity_token=sigstore_instance.identity_token(),
        trust_config=sigstore_instance.trust_config_path,
    )
    signer = load_signer("keyless", options)
    assert isinstance(signer, KeylessSigner)
    payload = _statement("sbom.spdx.json")
    signature = signer.sign(pae(IN_TOTO, payload))
    bundle: dict[str, Any] = json.loads(signer.bundle_for(signature))
    return payload, bundle


@pytest.fixture(scope="module")
def verifier(sigstore_instance: SigstoreInstance) -> Verifier:
    return Verifier(trusted_root=TrustedRoot.from_file(str(sigstore_instance.trusted_root_path)))


def _policy(instance: SigstoreInstance) -> Identity:
    return Identity(identity=instance.subject, issuer=instance.issuer)


def test_keyless_bundle_verifies_offline_with_sigstore_python(
    signed: tuple[bytes, dict[str, Any]],
    verifier: Verifier,
    sigstore_instance: SigstoreInstance,
) -> None:
    payload, bundle = signed
    payload_type, verified = verifier.verify_dsse(
        Bundle.from_json(json.dumps(bundle)), _policy(sigstore_instance)
    )
    assert (payload_type, verified) == (IN_TOTO, payload)


def test_the_v2_issuer_extension_matches_too(
    signed: tuple[bytes, dict[str, Any]],
    verifier: Verifier,
    sigstore_instance: SigstoreInstance,
) -> None:
    policy = AllOf([_policy(sigstore_instance), OIDCIssuerV2(sigstore_instance.issuer)])
    verifier.verify_dsse(Bundle.from_json(json.dumps(signed[1])), policy)


def _set_payload(bundle: dict[str, Any]) -> None:
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(_statement("evil.bin")).decode()


def _set_payload_type(bundle: dict[str, Any]) -> None:
    bundle["dsseEnvelope"]["payloadType"] = "application/json"


def _flip_set(bundle: dict[str, Any]) -> None:
    entry = bundle["verificationMaterial"]["tlogEntries"][0]
    entry["inclusionPromise"]["signedEntryTimestamp"] = _flip(
        entry["inclusionPromise"]["signedEntryTimestamp"]
    )


def _later_integrated_time(bundle: dict[str, Any]) -> None:
    # Moves the signed time (still inside the certificate's validity): the SET must catch it.
    entry = bundle["verificationMaterial"]["tlogEntries"][0]
    entry["integratedTime"] = str(int(entry["integratedTime"]) + 1)


def _drop_tlog_entry(bundle: dict[str, Any]) -> None:
    bundle["verificationMaterial"]["tlogEntries"] = []


def _flip_inclusion_hash(bundle: dict[str, Any]) -> None:
    proof = bundle["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
    proof["rootHash"] = _flip(proof["rootHash"])


def _flip_checkpoint_signature(bundle: dict[str, Any]) -> None:
    checkpoint = bundle["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["checkpoint"]
    note, signature_line = checkpoint["envelope"].rsplit("\u2014 ", 1)
    name, signature = signature_line.split(" ")
    checkpoint["envelope"] = f"{note}\u2014 {name} {_flip(signature.strip(), at=-8)}\n"


def _flip_signature(bundle: dict[str, Any]) -> None:
    signature = bundle["dsseEnvelope"]["signatures"][0]
    signature["sig"] = _flip(signature["sig"], at=-8)


def _other_body(bundle: dict[str, Any]) -> None:
    # A log entry for some other signature (CVE-2022-36056 class): body no longer matches.
    entry = bundle["verificationMaterial"]["tlogEntries"][0]
    body = json.loads(base64.b64decode(entry["canonicalizedBody"]))
    body["spec"]["payloadHash"]["value"] = "00" * 32
    entry["canonicalizedBody"] = base64.b64encode(json.dumps(body).encode()).decode()


def _flip(text: str, at: int = 10) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[at] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (_set_payload, VerificationError),
        (_set_payload_type, VerificationError),
        (_flip_signature, VerificationError),
        (_flip_set, VerificationError),
        (_later_integrated_time, VerificationError),
        (_drop_tlog_entry, InvalidBundle),
        (_flip_inclusion_hash, VerificationError),
        (_flip_checkpoint_signature, VerificationError),
        (_other_body, VerificationError),
    ],
    ids=lambda value: getattr(value, "__name__", "").lstrip("_"),
)
def test_tampered_bundles_are_rejected_by_sigstore_python(
    signed: tuple[bytes, dict[str, Any]],
    verifier: Verifier,
    sigstore_instance: SigstoreInstance,
    mutate: Mutation,
    error: type[SigstoreError],
) -> None:
    bundle = copy.deepcopy(signed[1])
    mutate(bundle)
    with pytest.raises(error):
        verifier.verify_dsse(Bundle.from_json(json.dumps(bundle)), _policy(sigstore_instance))


@pytest.mark.parametrize(
    ("identity", "issuer"),
    [("someone-else@dssesign.test", None), (None, "https://accounts.google.com")],
)
def test_wrong_identity_or_issuer_is_rejected(
    signed: tuple[bytes, dict[str, Any]],
    verifier: Verifier,
    sigstore_instance: SigstoreInstance,
    identity: str | None,
    issuer: str | None,
) -> None:
    policy = Identity(
        identity=identity or sigstore_instance.subject, issuer=issuer or sigstore_instance.issuer
    )
    with pytest.raises(VerificationError):
        verifier.verify_dsse(Bundle.from_json(json.dumps(signed[1])), policy)


def test_another_instance_trusted_root_rejects_the_bundle(
    signed: tuple[bytes, dict[str, Any]],
    sigstore_instance: SigstoreInstance,
    tmp_path: Path,
) -> None:
    other = start_instance(tmp_path)
    try:
        foreign = Verifier(trusted_root=TrustedRoot.from_file(str(other.trusted_root_path)))
        with pytest.raises(VerificationError):
            foreign.verify_dsse(Bundle.from_json(json.dumps(signed[1])), _policy(sigstore_instance))
    finally:
        other.stop()


def test_hashedrekord_entries_from_sigstore_python_sign_artifact_verify(
    sigstore_instance: SigstoreInstance,
    verifier: Verifier,
) -> None:
    from sigstore.models import ClientTrustConfig
    from sigstore.oidc import IdentityToken
    from sigstore.sign import SigningContext

    config = ClientTrustConfig.from_json(sigstore_instance.trust_config_path.read_text())
    context = SigningContext.from_trust_config(config)
    with context.signer(IdentityToken(sigstore_instance.identity_token())) as signer:
        bundle = signer.sign_artifact(b"artifact bytes")
    assert bundle.log_entry._inner.kind_version.kind == "hashedrekord"
    verifier.verify_artifact(b"artifact bytes", bundle, _policy(sigstore_instance))
    with pytest.raises(VerificationError):
        verifier.verify_artifact(b"other bytes", bundle, _policy(sigstore_instance))


def test_sigstore_python_reads_the_log_over_its_rekor_api(
    signed: tuple[bytes, dict[str, Any]],
    sigstore_instance: SigstoreInstance,
) -> None:
    from sigstore._internal.rekor.client import RekorClient

    client = RekorClient(sigstore_instance.url)
    info = client.log.get()
    assert info.tree_size >= 1
    entry = signed[1]["verificationMaterial"]["tlogEntries"][0]
    leaf = base64.b64decode(entry["canonicalizedBody"])
    import hashlib

    uuid = hashlib.sha256(b"\x00" + leaf).hexdigest()
    fetched = client.log.entries.get(uuid=uuid)
    assert fetched._inner.canonicalized_body == leaf
    assert fetched._inner.log_index == int(entry["logIndex"])


@pytest.mark.parametrize("size", range(1, 18))
def test_inclusion_proofs_verify_with_sigstore_python_at_every_size(size: int) -> None:
    from sigstore._internal.merkle import verify_merkle_inclusion
    from sigstore.models import TransparencyLogEntry

    from tests.sigstore_instance import merkle

    leaves = [f"leaf {i}".encode() for i in range(size)]
    hashes = [merkle.leaf_hash(leaf) for leaf in leaves]
    root = base64.b64encode(merkle.root(hashes)).decode()
    for index, leaf in enumerate(leaves):
        proof = [base64.b64encode(h).decode() for h in merkle.inclusion_proof(index, hashes)]
        entry = _TransparencyLogEntry.model_validate(
            {
                "logIndex": str(index),
                "logId": {"keyId": base64.b64encode(b"\x00" * 32).decode()},
                "kindVersion": {"kind": "dsse", "version": "0.0.1"},
                "integratedTime": "0",
                "inclusionProof": {
                    "logIndex": str(index),
                    "rootHash": root,
                    "treeSize": str(size),
                    "hashes": proof,
                    "checkpoint": {"envelope": "unused"},
                },
                "canonicalizedBody": base64.b64encode(leaf).decode(),
            }
        )
        verify_merkle_inclusion(TransparencyLogEntry(entry))
        if size > 1:  # and a proof for a neighbouring leaf does not pass
            wrong = TransparencyLogEntry(
                entry.model_copy(update={"canonicalized_body": leaves[index - 1]})
            )
            with pytest.raises(VerificationError):
                verify_merkle_inclusion(wrong)
