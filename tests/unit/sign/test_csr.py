"""CSRs signed through the Signer protocol: read back by pyca/cryptography and by OpenSSL."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from asn1crypto import csr as asn1_csr
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils
from cryptography.x509.oid import ExtendedKeyUsageOID, SignatureAlgorithmOID

from dssesign.core.keys import ECDSA_P256, Algorithm
from dssesign.errors import ConfigError, SigningError
from dssesign.profiles.software import SoftwareSigner
from dssesign.sign.csr import MAX_SUBJECT_CHARS, build_csr, parse_subject
from tests.conftest import DelegatingSigner, signer_for

SUBJECT = "CN=release signing,OU=Build\\, CI,O=Example Corp,C=DE"

#: Every allow-listed algorithm a CSR can carry, with the signatureAlgorithm OID it must name.
CARRIED = {
    "ed25519": SignatureAlgorithmOID.ED25519,
    "ecdsa-p256": SignatureAlgorithmOID.ECDSA_WITH_SHA256,
    "ecdsa-p384": SignatureAlgorithmOID.ECDSA_WITH_SHA384,
    "rsa-pss-3072": SignatureAlgorithmOID.RSASSA_PSS,
    "rsa-pss-4096": SignatureAlgorithmOID.RSASSA_PSS,
}


class _Recording(DelegatingSigner):
    """Counts what it is asked to sign: a refused request must never reach the key."""

    def __init__(self, inner: SoftwareSigner) -> None:
        super().__init__(inner, "fake://recording")
        self.calls = 0

    def sign(self, data: bytes) -> bytes:
        self.calls += 1
        return super().sign(data)


def _spki(key: x509.CertificateSigningRequest) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize("algorithm", sorted(CARRIED))
def test_csr_round_trips_through_pyca(algorithm: str) -> None:
    signer = signer_for(algorithm)
    pem = build_csr(signer, SUBJECT)
    assert pem.startswith(b"-----BEGIN CERTIFICATE REQUEST-----\n")
    csr = x509.load_pem_x509_csr(pem)
    assert csr.is_signature_valid
    assert csr.signature_algorithm_oid == CARRIED[algorithm]
    assert csr.subject == x509.Name.from_rfc4514_string(SUBJECT)
    assert csr.subject.rfc4514_string() == SUBJECT
    assert _spki(csr) == signer.public_key.spki_der

    key_usage = csr.extensions.get_extension_for_class(x509.KeyUsage)
    assert key_usage.critical
    assert key_usage.value.digital_signature
    assert not (
        key_usage.value.key_cert_sign
        or key_usage.value.crl_sign
        or key_usage.value.key_encipherment
        or key_usage.value.content_commitment
    )
    eku = csr.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert not eku.critical
    assert list(eku.value) == [ExtendedKeyUsageOID.CODE_SIGNING]
    assert len(csr.extensions) == 2
    assert len(csr.attributes) == 1  # the extensionRequest and nothing else


def test_rsa_pss_parameters_are_what_the_signer_uses() -> None:
    csr = x509.load_pem_x509_csr(build_csr(signer_for("rsa-pss-3072"), "CN=x"))
    params = csr.signature_algorithm_parameters
    assert isinstance(params, padding.PSS)
    assert isinstance(params.mgf, padding.MGF1)
    assert params._salt_length == 32  # pyca exposes no accessor
    assert isinstance(csr.signature_hash_algorithm, hashes.SHA256)


@pytest.mark.parametrize("algorithm", sorted(CARRIED))
def test_signature_algorithm_is_encoded_as_pyca_encodes_it(algorithm: str) -> None:
    """Byte for byte the AlgorithmIdentifier pyca writes when it holds the private key."""
    signer = signer_for(algorithm)
    key = signer._private_key  # the test's own software key
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name.from_rfc4514_string("CN=x")
    )
    if algorithm.startswith("rsa"):
        theirs = builder.sign(
            key,
            hashes.SHA256(),
            rsa_padding=padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
        )
    elif algorithm == "ed25519":
        theirs = builder.sign(key, None)
    else:
        hash_algorithm = hashes.SHA384() if algorithm == "ecdsa-p384" else hashes.SHA256()
        theirs = builder.sign(key, hash_algorithm)
    ours = x509.load_pem_x509_csr(build_csr(signer, "CN=x"))

    def algorithm_der(csr: x509.CertificateSigningRequest) -> bytes:
        der = csr.public_bytes(serialization.Encoding.DER)
        dumped: bytes = asn1_csr.CertificationRequest.load(der)["signature_algorithm"].dump()
        return dumped

    assert algorithm_der(ours) == algorithm_der(theirs)


@pytest.mark.parametrize("algorithm", sorted(CARRIED))
def test_openssl_accepts_the_csr(algorithm: str, tmp_path: Path) -> None:
    path = tmp_path / "request.csr"
    path.write_bytes(build_csr(signer_for(algorithm), SUBJECT))
    run = subprocess.run(
        ["openssl", "req", "-verify", "-noout", "-in", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "verify OK" in run.stdout + run.stderr


def test_unicode_and_multi_valued_subjects_round_trip() -> None:
    for subject in ("CN=Jürgen Müller,O=Exämple GmbH,C=DE", "CN=a+O=b,C=DE", "UID=svc-build"):
        csr = x509.load_pem_x509_csr(build_csr(signer_for("ecdsa-p256"), subject))
        assert csr.subject.rfc4514_string() == subject


@pytest.mark.parametrize(
    ("subject", "fragment"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        ("release signing", "not an RFC 4514 distinguished name"),
        ("CN=a,,O=b", "not an RFC 4514 distinguished name"),
        ("CN=", "not an RFC 4514"),
        ("C=DEU", "length must be"),
        ("CN=a\nb", "control character (\\n)"),
        ("CN=a\x00b", "control character (\\x00)"),
        ("CN=a\x1b[2Jb", "control character (\\x1b)"),
        ("CN=evil\u202egpj.exe", "control character (\\u202e)"),
        ("CN=a\\0Ab", "attribute CN holds a control character (\\n) after unescaping"),
        ("CN=#0c03616263", "attribute CN holds a control character"),
        ("CN=x,OU=" + "a" * MAX_SUBJECT_CHARS, f"more than {MAX_SUBJECT_CHARS}"),
    ],
)
def test_bad_subjects_are_refused_before_the_key_signs(subject: str, fragment: str) -> None:
    signer = _Recording(signer_for("ecdsa-p256"))
    with pytest.raises(ConfigError) as caught:
        build_csr(signer, subject)
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value) and "\x1b" not in str(caught.value)
    assert signer.calls == 0


def test_subject_length_bound_is_inclusive() -> None:
    longest = "OU=" + "a" * (MAX_SUBJECT_CHARS - 3)
    assert len(parse_subject(longest)) == 1
    with pytest.raises(ConfigError, match="more than"):
        parse_subject(longest + "a")


def test_ml_dsa_is_refused_before_the_key_signs() -> None:
    signer = _Recording(signer_for("ml-dsa-65"))
    with pytest.raises(ConfigError, match="ML_DSA_65, which a CSR cannot carry"):
        build_csr(signer, SUBJECT)
    assert signer.calls == 0


def test_an_unknown_algorithm_is_refused() -> None:
    class _Unknown(_Recording):
        @property
        def algorithm(self) -> Algorithm:
            return Algorithm("PKIX_RSA_PKCS1V15_3072_SHA256", "rsa-3072", None, None, "sha256")

    signer = _Unknown(signer_for("rsa-pss-3072"))
    with pytest.raises(ConfigError, match="PKIX_RSA_PKCS1V15_3072_SHA256, which a CSR cannot"):
        build_csr(signer, SUBJECT)
    assert signer.calls == 0


def test_an_algorithm_that_is_not_the_keys_is_refused() -> None:
    class _Lying(_Recording):
        @property
        def algorithm(self) -> Algorithm:
            return ECDSA_P256

    signer = _Lying(signer_for("ed25519"))
    with pytest.raises(SigningError, match="signs with PKIX_ECDSA_P256_SHA_256"):
        build_csr(signer, SUBJECT)
    assert signer.calls == 0


class _OtherKey(DelegatingSigner):
    """Reports one key and signs with another of the same algorithm."""

    def sign(self, data: bytes) -> bytes:
        return signer_for("ecdsa-p256", index=1).sign(data)


class _RawEcdsa(DelegatingSigner):
    """Returns ECDSA as r||s, not the DER the CSR (and the DSSE contract) needs."""

    def sign(self, data: bytes) -> bytes:
        r, s = utils.decode_dss_signature(super().sign(data))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


class _Garbage(DelegatingSigner):
    def sign(self, data: bytes) -> bytes:
        return b"\x00" * 64


@pytest.mark.parametrize("fault", [_OtherKey, _RawEcdsa, _Garbage])
def test_a_signature_that_does_not_verify_is_refused(fault: type[DelegatingSigner]) -> None:
    signer = fault(signer_for("ecdsa-p256"), "pkcs11:token=t;object=k?pin-source=file:/secret")
    with pytest.raises(SigningError) as caught:
        build_csr(signer, SUBJECT)
    message = str(caught.value)
    assert "does not verify" in message or "cannot be read back" in message
    assert "no CSR written" in message
    assert "/secret" not in message  # the reference is shown redacted


def test_the_csr_is_signed_over_the_request_info_only() -> None:
    """The CA verifies the signature over CertificationRequestInfo: a tampered subject fails."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.load_pem_x509_csr(build_csr(SoftwareSigner(key), "CN=a"))
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    index = der.index(b"\x0c\x01a")  # the CN's UTF8String
    der[index + 2] = ord("b")
    tampered = x509.load_der_x509_csr(bytes(der))
    assert tampered.subject.rfc4514_string() == "CN=b"
    assert not tampered.is_signature_valid
