"""`dssesign vault ...` and transit keys in `attest`/`verify`, in subprocesses against OpenBao."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from dssesign.core.dsse import Envelope
from dssesign.core.keys import load_public_key
from tests.openbao import OpenBao
from tests.unit.cli.test_cli import ATTEST_SLSA, Run, assert_one_line_error, dssesign


@pytest.fixture(scope="module")
def env(openbao: OpenBao) -> dict[str, str]:
    """VAULT_ADDR/VAULT_TOKEN for the server; HOME has no ~/.vault-token."""
    return {**openbao.env, "BAO_ADDR": "", "BAO_TOKEN": "", "TRANSIT_SECRET_ENGINE_PATH": ""}


def _no_secret(run: Run, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in run.out and secret not in run.err, "a token reached the output"


def test_create_key_and_public_key(openbao: OpenBao, env: dict[str, str], tmp_path: Path) -> None:
    uri = "hashivault://cli-p256"
    run = dssesign("vault", "create-key", "--uri", uri, "--key-type", "ecdsa-p256", env=env)
    assert run.code == 0, run
    keyid, pem = run.out.split("\n", 1)
    assert load_public_key(pem.encode()).keyid == keyid
    _no_secret(run, openbao.token)
    info = openbao.client().secrets.transit.read_key("cli-p256")["data"]
    assert (info["type"], info["exportable"], info["allow_plaintext_backup"]) == (
        "ecdsa-p256",
        False,
        False,
    )

    again = dssesign("vault", "create-key", "--uri", uri, "--key-type", "ecdsa-p256", env=env)
    assert_one_line_error(again, "already exists")

    out = tmp_path / "cli.pub"
    run = dssesign("vault", "public-key", "--uri", uri, "--out", out, env=env)
    assert run.code == 0 and run.out.strip() == keyid, run
    assert load_public_key(out.read_bytes()).keyid == keyid
    shown = dssesign("vault", "public-key", "--uri", uri, env=env)
    assert shown.code == 0 and f"# keyid {keyid}" in shown.out and "version 1" in shown.out
    assert load_public_key(shown.out.split("\n", 1)[1].encode()).keyid == keyid
    generic = dssesign("public-key", "--key", uri, "--json", env=env)
    assert generic.code == 0 and json.loads(generic.out)["keyid"] == keyid, generic


@pytest.mark.parametrize("key_type", ["ed25519", "rsa-3072", "ecdsa-p384"])
def test_create_key_json(openbao: OpenBao, env: dict[str, str], key_type: str) -> None:
    name = f"cli-json-{key_type}"
    run = dssesign(
        "vault", "create-key", "--uri", f"hashivault://{name}", "--key-type", key_type, "--json",
        env=env,
    )  # fmt: skip
    assert run.code == 0, run
    info = json.loads(run.out)
    assert info["keyid"] == load_public_key(info["publicKey"].encode()).keyid
    assert info["keyType"] == key_type and info["version"] == 1
    assert info["reference"] == f"hashivault://{name}?version=1"
    assert (
        info["algorithm"]
        == {
            "ed25519": "PKIX_ED25519",
            "rsa-3072": "PKIX_RSA_PSS_3072_SHA256",
            "ecdsa-p384": "PKIX_ECDSA_P384_SHA_384",
        }[key_type]
    )


def test_rotation_attest_and_verify_with_both_versions(
    openbao: OpenBao, env: dict[str, str], tmp_path: Path
) -> None:
    """Rotate in transit, pin both versions, sign with latest and ?version=1, verify, hand over."""
    uri = "hashivault://cli-rotating"
    created = dssesign(
        "vault", "create-key", "--uri", uri, "--key-type", "ed25519", "--out", tmp_path / "v1.pub",
        env=env,
    )  # fmt: skip
    assert created.code == 0, created
    openbao.client().secrets.transit.rotate_key("cli-rotating")
    run = dssesign("vault", "public-key", "--uri", uri, "--json", env=env)
    assert run.code == 0, run
    latest = json.loads(run.out)
    assert (latest["version"], latest["latestVersion"]) == (2, 2)
    (tmp_path / "v2.pub").write_text(latest["publicKey"])
    pinned = dssesign(
        "vault", "public-key", "--uri", f"{uri}?version=1", "--out", tmp_path / "v1-again.pub",
        env=env,
    )  # fmt: skip
    assert pinned.code == 0, pinned
    assert (tmp_path / "v1-again.pub").read_bytes() == (tmp_path / "v1.pub").read_bytes()
    assert pinned.out.strip() != latest["keyid"]

    envelope = tmp_path / "env.json"
    run = dssesign(
        "attest", *ATTEST_SLSA, "--key", uri, "--key", f"{uri}?version=1", "--out", envelope,
        env=env,
    )  # fmt: skip
    assert run.code == 0, run
    _no_secret(run, openbao.token)
    signatures = Envelope.from_json(envelope.read_bytes()).signatures
    assert {s.keyid for s in signatures} == {latest["keyid"], pinned.out.strip()}

    root = tmp_path / "root.json"
    assert dssesign("trust-root", "init", "--out", root, "--threshold", "2").code == 0
    for pub in ("v1.pub", "v2.pub"):
        added = dssesign("trust-root", "add-key", root, "--public-key", tmp_path / pub)
        assert added.code == 0, added
    verified = dssesign("verify", "--trust-root", root, envelope)
    assert verified.code == 0, verified

    # The handover from version 1 to version 2, signed by version 1 inside Vault.
    one = tmp_path / "one.json"
    assert dssesign("trust-root", "init", "--out", one).code == 0
    assert dssesign("trust-root", "add-key", one, "--public-key", tmp_path / "v1.pub").code == 0
    rotated = dssesign(
        "trust-root", "rotate", one, "--from-key", f"{uri}?version=1",
        "--to-public-key", tmp_path / "v2.pub", env=env,
    )  # fmt: skip
    assert rotated.code == 0, rotated
    _no_secret(rotated, openbao.token)
    latest_only = tmp_path / "latest.json"
    run = dssesign("attest", *ATTEST_SLSA, "--key", uri, "--out", latest_only, env=env)
    assert run.code == 0, run
    verified = dssesign("verify", "--trust-root", one, latest_only)
    assert verified.code == 0, verified


def test_attest_with_vault_and_software_keys(
    openbao: OpenBao, env: dict[str, str], tmp_path: Path
) -> None:
    uri = "hashivault://cli-attest"
    run = dssesign(
        "vault", "create-key", "--uri", uri, "--key-type", "rsa-3072", "--out", tmp_path / "v.pub",
        env=env,
    )  # fmt: skip
    assert run.code == 0, run
    assert dssesign("keygen", "--algorithm", "ecdsa-p256", "--out", tmp_path / "sw").code == 0
    envelope, audit = tmp_path / "env.json", tmp_path / "audit.jsonl"
    run = dssesign(
        "attest", *ATTEST_SLSA, "--key", uri, "--key", tmp_path / "sw.key", "--out", envelope,
        "--audit-log", audit, env=env,
    )  # fmt: skip
    assert run.code == 0, run
    _no_secret(run, openbao.token)
    # The signing record names the pinned reference, never the token.
    records = audit.read_text()
    assert f"{uri}?version=1" in records and openbao.token not in records
    assert len(Envelope.from_json(envelope.read_bytes()).signatures) == 2
    root = tmp_path / "root.json"
    assert dssesign("trust-root", "init", "--out", root, "--threshold", "2").code == 0
    for pub in ("v.pub", "sw.pub"):
        assert dssesign("trust-root", "add-key", root, "--public-key", tmp_path / pub).code == 0
    verified = dssesign("verify", "--trust-root", root, envelope)
    assert verified.code == 0, verified


@pytest.mark.parametrize(
    ("args", "change", "fragment"),
    [
        (("public-key", "--uri", "hashivault://nope"), {}, "no such key"),
        (("public-key", "--uri", "hashivault://a/b"), {}, "not a transit key name"),
        (("public-key", "--uri", "hashivault://cli-p256?version=9"), {}, "has no version 9"),
        (("public-key", "--uri", "hashivault://cli-p256"), {"VAULT_ADDR": ""}, "VAULT_ADDR"),
        (("public-key", "--uri", "hashivault://cli-p256"), {"VAULT_TOKEN": ""}, "VAULT_TOKEN"),
        (
            ("public-key", "--uri", "hashivault://cli-p256"),
            {"DSSESIGN_VAULT_TRANSIT_PATH": "elsewhere"},
            "elsewhere",
        ),
        (
            ("create-key", "--uri", "hashivault://cli-aes", "--key-type", "aes256-gcm96"),
            {},
            "unsupported transit key type 'aes256-gcm96'",
        ),
    ],
)
def test_configuration_errors_exit_2(
    openbao: OpenBao,
    env: dict[str, str],
    args: tuple[str, ...],
    change: dict[str, str],
    fragment: str,
) -> None:
    run = dssesign("vault", *args, env={**env, **change})
    assert_one_line_error(run, fragment)
    _no_secret(run, openbao.token)


def test_bad_token_and_non_signing_key(openbao: OpenBao, env: dict[str, str]) -> None:
    wrong = "hvs.not-the-token-0123456789"
    bad = {**env, "VAULT_TOKEN": wrong}
    audit = openbao.home.parent / "bad-token-audit.jsonl"
    for args in (
        ("vault", "public-key", "--uri", "hashivault://cli-p256"),
        ("attest", *ATTEST_SLSA, "--key", "hashivault://cli-p256", "--audit-log", str(audit)),
    ):
        run = dssesign(*args, env=bad)
        assert_one_line_error(run, "permission denied")
        _no_secret(run, wrong, openbao.token)
    assert audit.is_file() and wrong not in audit.read_text()
    openbao.client().secrets.transit.create_key("cli-aes", key_type="aes256-gcm96")
    run = dssesign("attest", *ATTEST_SLSA, "--key", "hashivault://cli-aes", env=env)
    assert_one_line_error(run, "aes256-gcm96")


def test_unreachable_server_exit_2(env: dict[str, str]) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        address = f"http://127.0.0.1:{silent.getsockname()[1]}"
        run = dssesign(
            "attest", *ATTEST_SLSA, "--key", "hashivault://cli-p256",
            env={**env, "VAULT_ADDR": address, "DSSESIGN_VAULT_TIMEOUT": "0.5"},
        )  # fmt: skip
    assert_one_line_error(run, "no answer within 0.5s")


def test_signing_refused_by_policy_exits_1(openbao: OpenBao, env: dict[str, str]) -> None:
    client = openbao.client()
    client.sys.create_or_update_policy(
        name="cli-read-only", policy='path "transit/keys/*" { capabilities = ["read"] }'
    )
    token = client.auth.token.create(policies=["cli-read-only"], ttl="10m")["auth"]["client_token"]
    run = dssesign(
        "attest", *ATTEST_SLSA, "--key", "hashivault://cli-p256", env={**env, "VAULT_TOKEN": token}
    )
    assert run.code == 1, run
    lines = run.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "permission denied" in lines[0]
    _no_secret(run, token, openbao.token)
