"""`dssesign hsm ...` and HSM keys in `attest`/`verify`, in real subprocesses against SoftHSM2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dssesign.core.dsse import Envelope
from dssesign.core.keys import load_public_key
from tests.softhsm import (
    E2E,
    PIN,
    PIN_ENV,
    SoftHsm,
)
from tests.unit.cli.test_cli import ATTEST_SLSA, assert_one_line_error, dssesign


@pytest.fixture(scope="module")
def hsm(softhsm: SoftHsm) -> tuple[SoftHsm, dict[str, str]]:
    return softhsm, {PIN_ENV: PIN, "SOFTHSM2_CONF": softhsm.env["SOFTHSM2_CONF"]}


def test_keygen_list_public_key(hsm: tuple[SoftHsm, dict[str, str]], tmp_path: Path) -> None:
    softhsm, env = hsm
    uri = softhsm.uri(E2E, "cli-p256")
    run = dssesign("hsm", "keygen", "--uri", uri, "--algorithm", "ecdsa-p256", env=env)
    assert run.code == 0, run
    keyid, pem = run.out.split("\n", 1)
    assert load_public_key(pem.encode()).keyid == keyid
    assert PIN not in run.out + run.err

    again = dssesign("hsm", "keygen", "--uri", uri, "--algorithm", "ecdsa-p256", env=env)
    assert_one_line_error(again, "already holds")

    listed = dssesign(
        "hsm", "list", "--json", "--uri", softhsm.uri(E2E, "x").replace(";object=x", ""), env=env
    )
    assert listed.code == 0, listed
    keys = json.loads(listed.out)["keys"]
    mine = [k for k in keys if k["label"] == "cli-p256"]
    assert len(mine) == 1 and mine[0]["keyid"] == keyid
    assert mine[0]["sensitive"] is True and mine[0]["extractable"] is False
    assert mine[0]["algorithm"] == "PKIX_ECDSA_P256_SHA_256"
    table = dssesign("hsm", "list", env=env)
    assert table.code == 0 and "cli-p256" in table.out and keyid in table.out

    out = tmp_path / "cli.pub"
    run = dssesign("hsm", "public-key", "--uri", uri, "--out", out, env=env)
    assert run.code == 0 and run.out.strip() == keyid
    assert load_public_key(out.read_bytes()).keyid == keyid


def test_attest_with_hsm_and_software_keys_verifies(
    hsm: tuple[SoftHsm, dict[str, str]], tmp_path: Path
) -> None:
    softhsm, env = hsm
    uri = softhsm.uri(E2E, "attest-ed25519")
    run = dssesign(
        "hsm",
        "keygen",
        "--uri",
        uri,
        "--algorithm",
        "ed25519",
        "--out",
        tmp_path / "hsm.pub",
        env=env,
    )
    assert run.code == 0, run
    assert dssesign("keygen", "--algorithm", "ecdsa-p256", "--out", tmp_path / "sw").code == 0
    envelope = tmp_path / "env.json"
    run = dssesign(
        "attest",
        *ATTEST_SLSA,
        "--key",
        uri,
        "--key",
        tmp_path / "sw.key",
        "--out",
        envelope,
        env=env,
    )
    assert run.code == 0, run
    assert PIN not in run.out + run.err
    signatures = Envelope.from_json(envelope.read_bytes()).signatures
    assert len(signatures) == 2
    root = tmp_path / "root.json"
    assert dssesign("trust-root", "init", "--out", root, "--threshold", "2").code == 0
    for pub in ("hsm.pub", "sw.pub"):
        added = dssesign("trust-root", "add-key", root, "--public-key", tmp_path / pub)
        assert added.code == 0, added
    verified = dssesign("verify", "--trust-root", root, envelope)
    assert verified.code == 0, verified


def test_bad_pin_exits_2_with_one_line(hsm: tuple[SoftHsm, dict[str, str]]) -> None:
    softhsm, env = hsm
    bad = {**env, PIN_ENV: "not-the-pin-9999"}
    run = dssesign("hsm", "public-key", "--uri", softhsm.uri(E2E, "cli-p256"), env=bad)
    assert_one_line_error(run, "PIN rejected")
    assert "not-the-pin-9999" not in run.err
    run = dssesign("attest", *ATTEST_SLSA, "--key", softhsm.uri(E2E, "cli-p256"), env=bad)
    assert_one_line_error(run, "PIN rejected")


@pytest.mark.parametrize(
    ("uri_change", "fragment"),
    [
        ((f"token={E2E}", "token=nope"), "no PKCS#11 token labelled 'nope'"),
        (("object=cli-p256", "object=nope"), "no private key"),
        (("module-path=", "module-path=/nonexistent"), "module not found"),
        (("pin-source=", "pin-value=1234&x-old="), "pin-source"),
    ],
)
def test_configuration_errors_exit_2(
    hsm: tuple[SoftHsm, dict[str, str]], uri_change: tuple[str, str], fragment: str
) -> None:
    softhsm, env = hsm
    uri = softhsm.uri(E2E, "cli-p256").replace(*uri_change)
    assert_one_line_error(dssesign("hsm", "public-key", "--uri", uri, env=env), fragment)
