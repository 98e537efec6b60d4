"""`hsm csr` and `kms csr` against real devices (SoftHSM2 over PKCS#11, LocalStack's KMS).

The CSR must verify, carry the device key, and be enough for a CA (here a test CA made with
pyca/cryptography) to issue a code-signing certificate whose key then verifies what the device
signs: the private key never left the device.
"""

from __future__ import annotations

import datetime
import json
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from dssesign.core.keys import PublicKey, load_public_key
from dssesign.profiles import pkcs11
from dssesign.sign.signer import load_signer
from tests.localstack import LocalStack
from tests.softhsm import ALGORITHMS, MAIN, PIN, PIN_ENV, SoftHsm
from tests.unit.cli.test_cli import Run, assert_one_line_error, dssesign

SUBJECT = "CN=release signing,OU=Build,O=Example Corp,C=DE"
#: LocalStack accepts any secret; this one must never show up in any output.
SECRET = "dss-csr-e2e-secret-7c1d2e"


@dataclass
class OrgCa:
    """A one-level organisation CA, as a PKI team would run it (minus the offline ceremony)."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    pem: Path

    def issue(self, csr: x509.CertificateSigningRequest) -> x509.Certificate:
        """A code-signing leaf for the CSR's subject and key, with the extensions it requested."""
        assert csr.is_signature_valid  # a CA checks proof of possession first
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(self.cert.subject)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        for extension in csr.extensions:
            builder = builder.add_extension(extension.value, critical=extension.critical)
        return builder.sign(self.key, hashes.SHA256())


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> OrgCa:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name.from_rfc4514_string("CN=Example Code Signing CA,O=Example Corp,C=DE")
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = tmp_path_factory.mktemp("ca") / "ca.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return OrgCa(key, cert, pem)


def _openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", *map(str, args)], capture_output=True, text=True, check=False, timeout=60
    )


def _spki(key: x509.CertificateSigningRequest | x509.Certificate) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def certify(ca: OrgCa, csr_file: Path, device_key: PublicKey) -> x509.Certificate:
    """Everything a CA and then a relying party check, from the CSR to the issued leaf."""
    csr = x509.load_pem_x509_csr(csr_file.read_bytes())
    assert csr.is_signature_valid
    assert _spki(csr) == device_key.spki_der
    assert csr.subject.rfc4514_string() == SUBJECT
    verified = _openssl("req", "-verify", "-noout", "-in", csr_file)
    assert verified.returncode == 0, verified.stderr

    cert = ca.issue(csr)
    cert.verify_directly_issued_by(ca.cert)
    assert _spki(cert) == device_key.spki_der
    assert cert.subject == csr.subject
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CODE_SIGNING in eku
    key_usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert key_usage.critical and key_usage.value.digital_signature
    leaf = csr_file.with_suffix(".crt")
    leaf.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    chain = _openssl("verify", "-purpose", "any", "-CAfile", ca.pem, leaf)
    assert chain.returncode == 0 and f"{leaf}: OK" in chain.stdout, chain
    return cert


def assert_device_signs_for(cert: x509.Certificate, reference: str) -> None:
    """The device key (and only it) makes signatures the certificate's key verifies."""
    certified = load_public_key(
        cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    signer = load_signer(reference)
    try:
        message = b"DSSEv1 28 application/vnd.in-toto+json 2 {}"
        assert certified.verify(signer.sign(message), message)
    finally:
        close = getattr(signer, "close", None)
        if callable(close):
            close()


# --------------------------------------------------------------------------- SoftHSM2


@pytest.fixture(scope="module")
def hsm_env(softhsm: SoftHsm) -> dict[str, str]:
    return {PIN_ENV: PIN, "SOFTHSM2_CONF": softhsm.env["SOFTHSM2_CONF"]}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_hsm_csr_is_certified_for_the_token_key(
    softhsm: SoftHsm, hsm_env: dict[str, str], ca: OrgCa, algorithm: str, tmp_path: Path
) -> None:
    uri = softhsm.uri(MAIN, algorithm)
    out = tmp_path / f"{algorithm}.csr"
    run = dssesign("hsm", "csr", "--uri", uri, "--subject", SUBJECT, "--out", out, env=hsm_env)
    assert run.code == 0, run
    device_key = pkcs11.read_public_key(uri)
    assert run.out.strip() == device_key.keyid
    assert PIN not in run.out + run.err
    cert = certify(ca, out, device_key)
    assert_device_signs_for(cert, uri)


def test_generic_csr_reads_a_token_key_too(
    softhsm: SoftHsm, hsm_env: dict[str, str], ca: OrgCa, tmp_path: Path
) -> None:
    uri = softhsm.uri(MAIN, "ecdsa-p256")
    run = dssesign("csr", "--key", uri, "--subject", SUBJECT, "--json", env=hsm_env)
    assert run.code == 0, run
    info = json.loads(run.out)
    out = tmp_path / "generic.csr"
    out.write_text(info["csr"])
    certify(ca, out, pkcs11.read_public_key(uri))


def test_hsm_csr_refusals_write_nothing(
    softhsm: SoftHsm, hsm_env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "x.csr"
    bad_pin = {**hsm_env, PIN_ENV: "not-the-pin-9999"}
    uri = softhsm.uri(MAIN, "ecdsa-p256")
    run = dssesign("hsm", "csr", "--uri", uri, "--subject", SUBJECT, "--out", out, env=bad_pin)
    assert_one_line_error(run, "PIN rejected")
    assert "not-the-pin-9999" not in run.out + run.err
    run = dssesign(
        "hsm",
        "csr",
        "--uri",
        softhsm.uri(MAIN, "no-such-key"),
        "--subject",
        SUBJECT,
        "--out",
        out,
        env=hsm_env,
    )
    assert_one_line_error(run, "no private key")
    run = dssesign("hsm", "csr", "--uri", uri, "--subject", "CN=", "--out", out, env=hsm_env)
    assert_one_line_error(run, "not an RFC 4514 distinguished name")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- LocalStack KMS


@pytest.fixture(scope="module")
def kms_env(localstack: LocalStack) -> dict[str, str]:
    return {**localstack.env, "AWS_SECRET_ACCESS_KEY": SECRET}


def _no_secret(run: Run) -> None:
    assert SECRET not in run.out + run.err


@pytest.mark.parametrize("spec", ["ECC_NIST_P256", "ECC_NIST_P384", "RSA_3072"])
def test_kms_csr_is_certified_for_the_kms_key(
    localstack: LocalStack, kms_env: dict[str, str], ca: OrgCa, spec: str, tmp_path: Path
) -> None:
    alias = f"csr-{spec.lower().replace('_', '-')}"
    created = dssesign(
        "kms",
        "create-key",
        "--uri",
        localstack.uri(),
        "--key-spec",
        spec,
        "--alias",
        alias,
        "--json",
        env=kms_env,
    )
    assert created.code == 0, created
    info = json.loads(created.out)
    device_key = load_public_key(info["publicKey"].encode())
    reference = localstack.uri(f"alias/{alias}")

    out = tmp_path / f"{alias}.csr"
    run = dssesign(
        "kms", "csr", "--key", reference, "--subject", SUBJECT, "--out", out, env=kms_env
    )
    assert run.code == 0, run
    _no_secret(run)
    assert run.out.strip() == device_key.keyid
    cert = certify(ca, out, device_key)
    assert_device_signs_for(cert, reference)

    # To stdout, the same key by its ARN.
    run = dssesign(
        "kms", "csr", "--key", localstack.uri(info["keyArn"]), "--subject", SUBJECT, env=kms_env
    )
    assert run.code == 0, run
    csr = x509.load_pem_x509_csr(run.out.encode())
    assert csr.is_signature_valid and _spki(csr) == device_key.spki_der


def test_kms_csr_failures_write_nothing(
    localstack: LocalStack, kms_env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "x.csr"
    run = dssesign(
        "kms",
        "csr",
        "--key",
        localstack.uri("alias/csr-no-such-key"),
        "--subject",
        SUBJECT,
        "--out",
        out,
        env=kms_env,
    )
    assert_one_line_error(run, "no such KMS key")  # configuration: exit 2
    _no_secret(run)

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    unreachable = f"awskms://127.0.0.1:{port}/alias/x?timeout=1&max-attempts=1"
    run = dssesign(
        "kms", "csr", "--key", unreachable, "--subject", SUBJECT, "--out", out, env=kms_env
    )
    assert run.code == 1, run  # a service that cannot be reached is a signing failure
    assert "KMS endpoint unreachable" in run.err
    _no_secret(run)
    assert list(tmp_path.iterdir()) == []
