"""`verify --emit-vsa --vsa-tsa` against a real TSA (issue 17 item 1: the summary is signed like
any other attestation, bundles and RFC 3161 timestamps included)."""

from __future__ import annotations

import json
from pathlib import Path

from dssesign.profiles.software import write_keypair
from tests.conftest import signer_for
from tests.tsa import Tsa
from tests.unit.cli.test_cli import ATTEST_SLSA, dssesign


def test_a_timestamped_summary_verifies_with_require_timestamp(tsa: Tsa, tmp_path: Path) -> None:
    signer_key, signer_pub = write_keypair(signer_for("ed25519", 50), tmp_path / "s", password=None)
    vsa_key, vsa_pub = write_keypair(signer_for("ecdsa-p256", 50), tmp_path / "v", password=None)
    (tmp_path / "tsa.pem").write_bytes(tsa.chain_pem)
    root = tmp_path / "root.json"
    for step in (
        ("init", "--out", root),
        ("add-tsa", root, "--certificate-chain", tmp_path / "tsa.pem", "--name", "tsa"),
        ("add-key", root, "--public-key", signer_pub),
        ("add-key", root, "--public-key", vsa_pub),
    ):
        done = dssesign("trust-root", *step)
        assert done.code == 0, done
    made = dssesign("attest", *ATTEST_SLSA, "--key", signer_key, "--out", tmp_path / "att.json")
    assert made.code == 0, made
    run = dssesign(
        "verify",
        "--trust-root",
        root,
        tmp_path / "att.json",
        "--emit-vsa",
        tmp_path / "vsa.json",
        "--vsa-key",
        vsa_key,
        "--resource-uri",
        "https://example.com/app.tar.gz",
        "--vsa-bundle-dir",
        tmp_path / "vsa-bundles",
        "--vsa-tsa",
        tsa.url,
    )
    assert run.code == 0, run
    (bundle,) = (tmp_path / "vsa-bundles").iterdir()
    material = json.loads(bundle.read_bytes())["verificationMaterial"]
    assert len(material["timestampVerificationData"]["rfc3161Timestamps"]) == 1
    check = dssesign(
        "verify",
        "--trust-root",
        root,
        "--type",
        "vsa",
        "--require-timestamp",
        "--json",
        tmp_path / "vsa.json",
        bundle,
    )
    assert check.code == 0, check
    report = json.loads(check.out)
    assert report["signatures"][0]["timeSource"] == "rfc3161"
