"""cosign's legacy `.att` layout with an organisation certificate and an RFC 3161 token.

`attest --image --legacy-tag --certificate --tsa` puts the signature's certificate, chain and
timestamp in the layer annotations cosign uses; `verify --image` rebuilds the bundle from them
and judges the certificate chain at the token's time against the trust root's organisation CA.
The real TSA (tests/tsa.py) and the real registry (tests/registry.py) are both used.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import rfc3161_client

from dssesign.profiles.software import write_keypair
from tests.conftest import signer_for
from tests.pki import org_pki
from tests.registry import Registry
from tests.tsa import Tsa

NOW = datetime.now(UTC)


def _run(work: Path, env: dict[str, str], *args: str | Path, code: int = 0) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "dssesign", *map(str, args)],
        cwd=work, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == code, (args, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    return done.stdout + done.stderr


def test_legacy_layer_carries_certificate_and_timestamp(
    oci_registry: Registry, tsa: Tsa, tmp_path: Path
) -> None:
    signer = signer_for("ecdsa-p256", 81)
    key, _ = write_keypair(signer, tmp_path / "release", password=None)
    pki = org_pki(
        leaf_public_key=signer.public_key.key,
        not_before=NOW - timedelta(days=1),
        not_after=NOW + timedelta(days=30),
    )
    (tmp_path / "leaf.pem").write_bytes(pki.leaf.pem)
    (tmp_path / "chain.pem").write_bytes(pki.intermediate.pem)
    (tmp_path / "root-ca.pem").write_bytes(pki.root.pem)
    (tmp_path / "issuing-ca.pem").write_bytes(pki.intermediate.pem)
    (tmp_path / "tsa-chain.pem").write_bytes(tsa.chain_pem)
    (tmp_path / "predicate.json").write_text('{"result": "pass"}\n')
    env = oci_registry.env(oci_registry.docker_config(tmp_path))
    root = tmp_path / "trust-root.json"
    for step in (
        ("init", "--out", root),
        ("add-ca", root, "--certificate", "root-ca.pem", "--name", "acme-root"),
        ("add-ca", root, "--certificate", "issuing-ca.pem", "--name", "acme-issuing"),
        ("add-identity", root, "--ca", "acme-issuing", "--subject", "release@example.com"),
        ("add-tsa", root, "--certificate-chain", "tsa-chain.pem", "--name", "corp-tsa"),
    ):
        _run(tmp_path, env, "trust-root", *step)

    image = oci_registry.push_image("app/certified")
    ref = oci_registry.reference("app/certified", image)
    _run(
        tmp_path, env, "attest", "--image", ref, "--legacy-tag", "--key", key,
        "--certificate", "leaf.pem", "--certificate-chain", "chain.pem",
        "--tsa", tsa.url, "--trust-root", root,
        "--type", "custom", "--predicate", "predicate.json", "--out", "att.dsse.json",
    )  # fmt: skip

    tag = image.replace(":", "-") + ".att"
    manifest = oci_registry.get(f"app/certified/manifests/{tag}").json()
    (layer,) = manifest["layers"]
    annotations = layer["annotations"]
    assert annotations["dev.sigstore.cosign/certificate"] == pki.leaf.pem.decode()
    assert annotations["dev.sigstore.cosign/chain"] == ""  # cosign writes the chain's PEM here
    stamp = json.loads(annotations["dev.sigstore.cosign/rfc3161timestamp"])
    token = base64.b64decode(stamp["SignedRFC3161Timestamp"])
    # A real RFC 3161 response over this signature, as cosign's annotation carries it.
    envelope = json.loads((tmp_path / "att.dsse.json").read_text())
    signature = base64.b64decode(envelope["signatures"][0]["sig"])
    parsed = rfc3161_client.decode_timestamp_response(token)
    assert parsed.tst_info.message_imprint.message == hashlib.sha256(signature).digest()

    out = _run(tmp_path, env, "verify", "--image", ref, "--trust-root", root, "--json")
    report = json.loads(out[: out.rindex("}") + 1])
    assert report["ok"] is True
    (group,) = report["groups"]
    assert group["identitiesCounted"][0]["kind"] == "certificate"
    assert group["identitiesCounted"][0]["subject"] == "release@example.com"

    # Another organisation's CA: the rebuilt bundle's certificate chains to nothing trusted.
    other = org_pki()
    (tmp_path / "other-ca.pem").write_bytes(other.intermediate.pem)
    (tmp_path / "other-root.pem").write_bytes(other.root.pem)
    foreign = tmp_path / "foreign.json"
    for step in (
        ("init", "--out", foreign),
        ("add-ca", foreign, "--certificate", "other-root.pem", "--name", "other-root"),
        ("add-ca", foreign, "--certificate", "other-ca.pem", "--name", "other-issuing"),
        ("add-identity", foreign, "--ca", "other-issuing", "--subject", "release@example.com"),
    ):
        _run(tmp_path, env, "trust-root", *step)
    out = _run(tmp_path, env, "verify", "--image", ref, "--trust-root", foreign, code=1)
    assert "UNTRUSTED]" in out, out


@pytest.fixture(autouse=True)
def _no_dssesign_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("DSSESIGN_")]:
        monkeypatch.delenv(name)
