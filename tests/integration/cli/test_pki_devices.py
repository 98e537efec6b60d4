"""The whole organisation-PKI path on real devices (issue 16 item 4): a CSR from the device,
a certificate from the organisation CA, `attest --certificate`, `verify` against the trust root.

The device keys are a SoftHSM2 token key and a LocalStack KMS key; the CA is the test CA of
test_csr_devices.py (made with pyca/cryptography). The private keys never leave the devices.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from dssesign.core.keys import load_public_key
from dssesign.profiles import pkcs11
from tests.integration.cli import test_csr_devices as csr_tests
from tests.integration.cli.test_csr_devices import SECRET, SUBJECT, OrgCa, certify
from tests.localstack import LocalStack
from tests.softhsm import MAIN, SoftHsm
from tests.unit.cli.test_cli import ATTEST_SLSA, dssesign

ca = csr_tests.ca
hsm_env = csr_tests.hsm_env
kms_env = csr_tests.kms_env


def _trust_root(directory: Path, ca: OrgCa, identity: list[str]) -> Path:
    """A trust root that trusts the organisation CA and one identity under it."""
    root = directory / "trust-root.json"
    steps: list[tuple[str | Path, ...]] = [
        ("init", "--out", root),
        ("add-ca", root, "--certificate", ca.pem, "--name", "corp"),
        ("add-identity", root, "--ca", "corp", *identity, "--name", "release"),
    ]
    for step in steps:
        done = dssesign("trust-root", *step)
        assert done.code == 0, done
    return root


def _sign_and_verify(
    directory: Path, reference: str, leaf: Path, root: Path, env: dict[str, str]
) -> dict[str, object]:
    out = directory / "att.json"
    run = dssesign(
        "attest",
        *ATTEST_SLSA,
        "--key",
        reference,
        "--certificate",
        leaf,
        "--out",
        out,
        "--bundle-dir",
        directory,
        "--json",
        env=env,
    )
    assert run.code == 0, run
    bundle = json.loads(run.out)["signatures"][0]["bundle"]
    material = json.loads(Path(bundle).read_bytes())["verificationMaterial"]
    assert "certificate" in material and "publicKey" not in material
    verified = dssesign("verify", "--trust-root", root, out, bundle, "--json")
    assert verified.code == 0, verified
    report: dict[str, object] = json.loads(verified.out)
    return report


@pytest.mark.parametrize("algorithm", ["ecdsa-p256", "rsa-pss-3072"])
def test_a_token_key_signs_as_its_certificate_identity(
    softhsm: SoftHsm, hsm_env: dict[str, str], ca: OrgCa, algorithm: str, tmp_path: Path
) -> None:
    uri = softhsm.uri(MAIN, algorithm)
    csr = tmp_path / "device.csr"
    run = dssesign("hsm", "csr", "--uri", uri, "--subject", SUBJECT, "--out", csr, env=hsm_env)
    assert run.code == 0, run
    cert = certify(ca, csr, pkcs11.read_public_key(uri))
    leaf = csr.with_suffix(".crt")
    root = _trust_root(tmp_path, ca, ["--subject-dn", cert.subject.rfc4514_string()])
    report = _sign_and_verify(tmp_path, uri, leaf, root, hsm_env)
    counted: list[dict[str, str]] = report["identitiesCounted"]  # type: ignore[assignment]
    (identity,) = counted
    assert identity["issuer"] == "corp" and identity["subject"] == SUBJECT

    # Revoking the identity in the trust root refuses the same attestation.
    done = dssesign("trust-root", "revoke", root, "--identity", "release")
    assert done.code == 0, done
    bundle = next(tmp_path.glob("att.*.sigstore.json"))
    refused = dssesign("verify", "--trust-root", root, tmp_path / "att.json", bundle, "--json")
    assert refused.code == 1
    assert json.loads(refused.out)["code"] == "IDENTITY_REVOKED"


def test_a_kms_key_signs_as_its_certificate_identity(
    localstack: LocalStack, kms_env: dict[str, str], ca: OrgCa, tmp_path: Path
) -> None:
    created = dssesign(
        "kms",
        "create-key",
        "--uri",
        localstack.uri(),
        "--key-spec",
        "ECC_NIST_P256",
        "--alias",
        "pki-e2e",
        "--json",
        env=kms_env,
    )
    assert created.code == 0, created
    device_key = load_public_key(json.loads(created.out)["publicKey"].encode())
    reference = localstack.uri("alias/pki-e2e")
    csr = tmp_path / "kms.csr"
    run = dssesign(
        "kms", "csr", "--key", reference, "--subject", SUBJECT, "--out", csr, env=kms_env
    )
    assert run.code == 0, run
    cert = certify(ca, csr, device_key)
    assert (
        cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        == device_key.spki_der
    )
    root = _trust_root(tmp_path, ca, ["--subject-dn", SUBJECT])
    report = _sign_and_verify(tmp_path, reference, csr.with_suffix(".crt"), root, kms_env)
    assert report["code"] == "OK"
    assert SECRET not in json.dumps(report)
