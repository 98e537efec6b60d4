"""`dssesign csr`: the generic command on software keys, its exit codes and its outputs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from dssesign.cli import main
from dssesign.core.keys import load_public_key
from dssesign.sign.signer import Signer, SignerOptions, register_scheme
from tests.conftest import DelegatingSigner, signer_for
from tests.unit.cli.test_cli import PASSWORD, Run, assert_one_line_error, dssesign

SUBJECT = "CN=release signing,O=Example Corp,C=DE"
PASSWORD_ENV = {"DSSESIGN_KEY_PASSWORD": PASSWORD}


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Encrypted software keys made through the CLI: one a CSR can carry, one it cannot."""
    directory = tmp_path_factory.mktemp("csr-keys")
    made = {}
    for algorithm in ("ecdsa-p256", "ml-dsa-65"):
        run = dssesign(
            "keygen", "--algorithm", algorithm, "--out", directory / algorithm, env=PASSWORD_ENV
        )
        assert run.code == 0, run
        made[algorithm] = directory / f"{algorithm}.key"
    return made


def _csr(pem: str | bytes) -> x509.CertificateSigningRequest:
    csr = x509.load_pem_x509_csr(pem if isinstance(pem, bytes) else pem.encode())
    assert csr.is_signature_valid
    return csr


def _spki(csr: x509.CertificateSigningRequest) -> bytes:
    return csr.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _only(directory: Path) -> list[str]:
    """The directory's entries: a failed command leaves no CSR and no temp file behind."""
    return sorted(p.name for p in directory.iterdir())


def test_csr_to_stdout(keys: dict[str, Path]) -> None:
    run = dssesign("csr", "--key", keys["ecdsa-p256"], "--subject", SUBJECT, env=PASSWORD_ENV)
    assert run.code == 0, run
    csr = _csr(run.out)
    assert csr.subject.rfc4514_string() == SUBJECT
    public = load_public_key(keys["ecdsa-p256"].with_suffix(".pub").read_bytes())
    assert _spki(csr) == public.spki_der
    assert PASSWORD not in run.out + run.err


def test_csr_to_file_with_password_file(keys: dict[str, Path], tmp_path: Path) -> None:
    secret = tmp_path / "passphrase"
    secret.write_text(PASSWORD + "\n")
    out = tmp_path / "out" / "signing.csr"
    out.parent.mkdir()
    run = dssesign(
        "csr",
        "--key",
        f"file://{keys['ecdsa-p256']}",
        "--subject",
        SUBJECT,
        "--password-file",
        secret,
        "--out",
        out,
    )
    assert run.code == 0, run
    public = load_public_key(keys["ecdsa-p256"].with_suffix(".pub").read_bytes())
    assert run.out.strip() == public.keyid  # the PEM went to the file
    assert _spki(_csr(out.read_bytes())) == public.spki_der
    assert _only(out.parent) == ["signing.csr"]
    openssl = subprocess.run(
        ["openssl", "req", "-verify", "-noout", "-in", str(out)],
        capture_output=True,
        check=False,
    )
    assert openssl.returncode == 0, openssl


def test_csr_json(keys: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "signing.csr"
    run = dssesign(
        "csr",
        "--key",
        keys["ecdsa-p256"],
        "--subject",
        SUBJECT,
        "--out",
        out,
        "--json",
        env=PASSWORD_ENV,
    )
    assert run.code == 0, run
    info = json.loads(run.out)
    public = load_public_key(keys["ecdsa-p256"].with_suffix(".pub").read_bytes())
    assert info["schemaVersion"] == 1
    assert info["keyid"] == public.keyid
    assert info["algorithm"] == "PKIX_ECDSA_P256_SHA_256"
    assert info["subject"] == SUBJECT
    assert info["out"] == str(out)
    assert info["csr"].encode() == out.read_bytes()


def _assert_refused(run: Run, directory: Path, before: list[str], *fragments: str) -> None:
    assert_one_line_error(run, *fragments)
    assert run.out == ""
    assert _only(directory) == before


@pytest.mark.parametrize(
    ("subject", "fragment"),
    [
        ("", "subject DN is empty"),
        ("release signing", "not an RFC 4514 distinguished name"),
        ("CN=a\x1b[2Jb", "control character (\\x1b)"),
        ("CN=a\\0Db", "control character (\\r)"),
        ("OU=" + "a" * 2000, "more than 1024"),
    ],
)
def test_bad_subject_exits_2_and_writes_nothing(
    subject: str, fragment: str, tmp_path: Path
) -> None:
    # The DN is judged before the key is read: a missing key file is not what is reported.
    run = dssesign(
        "csr", "--key", tmp_path / "absent.key", "--subject", subject, "--out", tmp_path / "x.csr"
    )
    _assert_refused(run, tmp_path, [], fragment)
    assert "\x1b" not in run.err


def test_key_errors_exit_2_and_write_nothing(keys: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "x.csr"
    args = ("--subject", SUBJECT, "--out", out)
    wrong = {"DSSESIGN_KEY_PASSWORD": "not the passphrase"}
    run = dssesign("csr", "--key", keys["ecdsa-p256"], *args, env=wrong)
    _assert_refused(run, tmp_path, [])
    assert "not the passphrase" not in run.err

    run = dssesign("csr", "--key", keys["ml-dsa-65"], *args, env=PASSWORD_ENV)
    _assert_refused(run, tmp_path, [], "ML_DSA_65, which a CSR cannot carry")

    run = dssesign("csr", "--key", "keyless", *args)
    _assert_refused(run, tmp_path, [], "keyless")

    run = dssesign("csr", "--key", "nosuchscheme:thing", *args)
    _assert_refused(run, tmp_path, [], "unknown key reference scheme")

    run = dssesign("csr", "--key", tmp_path / "absent.key", *args)
    _assert_refused(run, tmp_path, [])


def test_an_existing_out_file_survives_a_failure(keys: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "kept.csr"
    out.write_text("previous\n")
    run = dssesign(
        "csr", "--key", keys["ml-dsa-65"], "--subject", SUBJECT, "--out", out, env=PASSWORD_ENV
    )
    _assert_refused(run, tmp_path, ["kept.csr"], "cannot carry")
    assert out.read_text() == "previous\n"


def test_out_may_not_overwrite_the_key(keys: dict[str, Path], tmp_path: Path) -> None:
    key = tmp_path / "copy.key"
    key.write_bytes(keys["ecdsa-p256"].read_bytes())
    run = dssesign("csr", "--key", key, "--subject", SUBJECT, "--out", key, env=PASSWORD_ENV)
    assert_one_line_error(run, "--out")
    assert key.read_bytes() == keys["ecdsa-p256"].read_bytes()


def test_usage_errors_exit_2() -> None:
    assert_one_line_error(dssesign("csr", "--subject", SUBJECT), "--key")
    assert_one_line_error(dssesign("csr", "--key", "k.key"), "--subject")
    # The device commands take only their own references: never a key file.
    run = dssesign("hsm", "csr", "--uri", "k.key", "--subject", SUBJECT)
    assert_one_line_error(run, "not a pkcs11: reference")
    run = dssesign("kms", "csr", "--key", "k.key", "--subject", SUBJECT)
    assert_one_line_error(run, "not an awskms:// reference")
    assert_one_line_error(dssesign("hsm", "csr", "--uri", "pkcs11:token=t"), "--subject")


class _BadSignature(DelegatingSigner):
    """A backend whose signature does not verify: the CSR must never be written."""

    def sign(self, data: bytes) -> bytes:
        return signer_for("ecdsa-p256", index=1).sign(data)


def test_a_signature_that_does_not_verify_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def loader(ref: str, options: SignerOptions) -> Signer:
        return _BadSignature(signer_for("ecdsa-p256"), ref)

    register_scheme("csrbadsig", loader)
    out = tmp_path / "x.csr"
    code = main(["csr", "--key", "csrbadsig:key", "--subject", SUBJECT, "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 1, captured
    assert "does not verify" in captured.err and "no CSR written" in captured.err
    assert captured.out == ""
    assert _only(tmp_path) == []
