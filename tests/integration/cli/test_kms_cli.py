"""`dssesign kms ...` and AWS KMS keys in `attest`/`verify`: real subprocesses, LocalStack KMS."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from dssesign.core.dsse import Envelope
from dssesign.core.keys import load_public_key
from tests.localstack import (
    LocalStack,
)
from tests.unit.cli.test_cli import ATTEST_SLSA, Run, assert_one_line_error, dssesign

#: LocalStack accepts any secret; this one must never show up in any output.
SECRET = "dss-kms-e2e-secret-0f3a9c"


@pytest.fixture(scope="module")
def env(localstack: LocalStack) -> dict[str, str]:
    return {**localstack.env, "AWS_SECRET_ACCESS_KEY": SECRET}


def _no_secret(run: Run) -> None:
    assert SECRET not in run.out + run.err


def assert_signing_failure(run: Run, *fragments: str) -> None:
    """Exit 1 with one `error:` line (a signing failure, not bad usage)."""
    assert run.code == 1, run
    lines = run.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), run.err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_create_key_and_public_key(
    localstack: LocalStack, env: dict[str, str], tmp_path: Path
) -> None:
    run = dssesign(
        "kms",
        "create-key",
        "--uri",
        localstack.uri(),
        "--key-spec",
        "ECC_NIST_P256",
        "--alias",
        "e2e-p256",
        "--out",
        tmp_path / "created.pub",
        "--json",
        env=env,
    )
    assert run.code == 0, run
    _no_secret(run)
    info = json.loads(run.out)
    assert info["keySpec"] == "ECC_NIST_P256"
    assert info["algorithm"] == "PKIX_ECDSA_P256_SHA_256"
    assert info["alias"] == "alias/e2e-p256"
    assert info["reference"] == localstack.uri("alias/e2e-p256")
    assert info["keyArn"].endswith(info["keyId"])
    created = load_public_key((tmp_path / "created.pub").read_bytes())
    assert created.keyid == info["keyid"] == load_public_key(info["publicKey"].encode()).keyid

    out = tmp_path / "by-alias.pub"
    run = dssesign("kms", "public-key", "--uri", info["reference"], "--out", out, env=env)
    assert run.code == 0 and run.out.strip() == info["keyid"], run
    assert load_public_key(out.read_bytes()) == created

    run = dssesign("kms", "public-key", "--uri", localstack.uri(info["keyArn"]), env=env)
    assert run.code == 0, run
    header, pem = run.out.split("\n", 1)
    assert header.startswith(f"# keyid {info['keyid']} (PKIX_ECDSA_P256_SHA_256, ECC_NIST_P256")
    assert load_public_key(pem.encode()) == created

    # The generic command reads the same key through the signer registry.
    run = dssesign("public-key", "--key", info["reference"], env=env)
    assert run.code == 0 and info["keyid"] in run.out, run

    plain = dssesign(
        "kms", "create-key", "--uri", localstack.uri(), "--key-spec", "rsa-pss-3072", env=env
    )
    assert plain.code == 0, plain
    keyid, reference, pem = plain.out.split("\n", 2)
    assert load_public_key(pem.encode()).keyid == keyid
    assert load_public_key(pem.encode()).algorithm.name == "PKIX_RSA_PSS_3072_SHA256"
    assert reference.startswith(localstack.uri())


def test_attest_with_kms_and_software_keys_verifies(
    localstack: LocalStack, env: dict[str, str], tmp_path: Path
) -> None:
    for spec, alias in (("ECC_NIST_P384", "e2e-attest-p384"), ("RSA_4096", "e2e-attest-rsa")):
        run = dssesign(
            "kms",
            "create-key",
            "--uri",
            localstack.uri(f"alias/{alias}"),
            "--key-spec",
            spec,
            "--out",
            tmp_path / f"{alias}.pub",
            env=env,
        )
        assert run.code == 0, run
    assert dssesign("keygen", "--algorithm", "ed25519", "--out", tmp_path / "sw").code == 0
    envelope = tmp_path / "env.json"
    run = dssesign(
        "attest",
        *ATTEST_SLSA,
        "--key",
        localstack.uri("alias/e2e-attest-p384"),
        "--key",
        localstack.uri("alias/e2e-attest-rsa", timeout="5"),
        "--key",
        tmp_path / "sw.key",
        "--out",
        envelope,
        env=env,
    )
    assert run.code == 0, run
    _no_secret(run)
    assert "with 3 of 3 keys" in run.out
    assert len(Envelope.from_json(envelope.read_bytes()).signatures) == 3
    root = tmp_path / "root.json"
    assert dssesign("trust-root", "init", "--out", root, "--threshold", "3").code == 0
    for pub in ("e2e-attest-p384.pub", "e2e-attest-rsa.pub", "sw.pub"):
        added = dssesign("trust-root", "add-key", root, "--public-key", tmp_path / pub)
        assert added.code == 0, added
    # Offline: verification needs no AWS credentials, region or endpoint.
    offline = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_REGION": ""}
    verified = dssesign("verify", "--trust-root", root, envelope, "--json", env=offline)
    assert verified.code == 0, verified
    assert len(json.loads(verified.out)["keysCounted"]) == 3


def test_usage_errors_exit_2(localstack: LocalStack, env: dict[str, str]) -> None:
    bad_spec = dssesign(
        "kms", "create-key", "--uri", localstack.uri(), "--key-spec", "RSA_2048", env=env
    )
    assert_one_line_error(bad_spec, "key spec 'RSA_2048' is not supported")
    missing = dssesign(
        "kms",
        "public-key",
        "--uri",
        localstack.uri("11111111-2222-3333-4444-555555555555"),
        env=env,
    )
    assert_one_line_error(missing, "no such KMS key")
    bad_ref = dssesign("kms", "public-key", "--uri", "awskms://h:1/not%20a%20key", env=env)
    assert_one_line_error(bad_ref, "is not a KMS key id")
    no_region = {
        **env,
        "AWS_REGION": "",
        "AWS_DEFAULT_REGION": "",
    }
    run = dssesign("attest", *ATTEST_SLSA, "--key", localstack.uri("alias/e2e-p256"), env=no_region)
    assert_one_line_error(run, "no AWS region")
    no_creds = {**env, "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}
    run = dssesign("kms", "public-key", "--uri", localstack.uri("alias/e2e-p256"), env=no_creds)
    assert_one_line_error(run, "no AWS credentials")
    for run in (bad_spec, missing, bad_ref):
        _no_secret(run)


def test_signing_failures_exit_1(localstack: LocalStack, env: dict[str, str]) -> None:
    client = localstack.client()
    key_id = client.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"][
        "KeyId"
    ]
    client.disable_key(KeyId=key_id)
    run = dssesign("attest", *ATTEST_SLSA, "--key", localstack.uri(key_id), env=env)
    assert_signing_failure(run, "state Disabled")
    _no_secret(run)

    client.enable_key(KeyId=key_id)
    client.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    run = dssesign("attest", *ATTEST_SLSA, "--key", localstack.uri(key_id), env=env)
    assert_signing_failure(run, "state PendingDeletion")

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    run = dssesign(
        "attest", *ATTEST_SLSA, "--key", f"awskms://127.0.0.1:{port}/alias/x?timeout=1", env=env
    )
    assert_signing_failure(run, "KMS endpoint unreachable")
