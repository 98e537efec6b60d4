"""A kit built with `--with-vsa` signs a verification summary (SLSA VSA) on the air-gapped side.

`verify.sh --emit-vsa FILE --vsa-key KEY --resource-uri URI ...` runs from a site folder with a
key that lives there (its passphrase in a file, or in $DSSESIGN_KEY_PASSWORD), installs only
the kit's wheels with no index, and writes a VSA that `dssesign verify --type vsa` accepts
against a trust root trusting the VSA key. One test: it builds wheels (slow); what needs no
wheels (the plan check, verify.sh's option checks) is tests/unit/kit/test_kit_vsa_options.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dssesign.core.dsse import Envelope
from dssesign.errors import DssesignError
from dssesign.intoto.statement import PAYLOAD_TYPE, build_statement, statement_payload
from dssesign.intoto.subjects import subject_from_file
from dssesign.kit import WheelSource, build_kit, default_wheel_cache
from dssesign.kit.wheels import _environment_pins, _normalize, _parse_wheel
from dssesign.profiles.software import write_keypair
from dssesign.sign.bundles import bundle_stem, bundles_for, write_bundles
from dssesign.sign.multisign import MultiProfileSigner
from dssesign.trust import add_key, dump_trust_root, init_trust_root, set_root_keys, sign_trust_root
from tests.conftest import FIXTURES, signer_for
from tests.integration.kit.test_kit import Run, _offline_env, rewrite_sums
from tests.unit.cli.test_cli import dssesign

pytestmark = [pytest.mark.integration, pytest.mark.kit]

ARTIFACT = FIXTURES / "artifacts" / "hello-1.0.tar.gz"
PREDICATE_TYPE = "https://example.com/dssesign/offline-kit-vsa/v1"
VSA_TYPE = "https://slsa.dev/verification_summary/v1"
PASSWORD = "passphrase of the site's VSA key"
#: Shell metacharacters a URI may hold: verify.sh must pass them on as they are.
RESOURCE = "https://example.com/releases/hello-1.0.tar.gz?a=$HOME;b='*'&c=$(touch%20pwned)"


def _run(kit: Path, cwd: Path, *args: str, env: dict[str, str] | None = None) -> Run:
    proc = subprocess.run(
        [str(kit / "verify.sh"), *args],
        cwd=cwd,
        env={**_offline_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def _statement(path: Path) -> dict[str, Any]:
    envelope = json.loads(path.read_text())
    assert envelope["payloadType"] == PAYLOAD_TYPE
    statement: dict[str, Any] = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["predicateType"] == VSA_TYPE
    return statement


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_kit_with_vsa_signs_a_summary_at_the_site(tmp_path: Path) -> None:
    # The sender: a signed trust root, one envelope with its keyed bundles, the artifact.
    signers = [signer_for("ed25519"), signer_for("ecdsa-p256")]
    root_signer = signer_for("ed25519", 1)
    root = init_trust_root(threshold=2, now=datetime.now(UTC) - timedelta(days=1))
    for signer in signers:
        root = add_key(root, signer.public_key)
    root = set_root_keys(root, [root_signer.public_key], threshold=1)
    sources = tmp_path / "in"
    (sources / "artifacts").mkdir(parents=True)
    shutil.copyfile(ARTIFACT, sources / "artifacts" / ARTIFACT.name)
    trust_root = sources / "trust-root.signed.json"
    trust_root.write_bytes(sign_trust_root(root, [root_signer]).to_json())
    subject = subject_from_file(ARTIFACT)
    statement = build_statement([subject], PREDICATE_TYPE, {"build": 1})
    envelope = MultiProfileSigner(signers).sign(statement_payload(statement), PAYLOAD_TYPE)
    attestation = sources / "app.intoto.json"
    attestation.write_bytes(envelope.to_json())
    bundles = write_bundles(sources, bundles_for(envelope, signers, bundle_stem(attestation.name)))

    wheel_source = WheelSource(
        cache_dir=tmp_path / "wheel-cache",
        find_links=(default_wheel_cache(),) if default_wheel_cache().is_dir() else (),
    )
    try:
        manifest = build_kit(
            trust_root,
            tmp_path / "kit",
            [attestation, *bundles],
            sources / "artifacts",
            wheel_source=wheel_source,
            with_vsa=True,
        )
    except DssesignError as exc:
        pytest.fail(
            f"building the kit's wheel set failed (needs the index or a warm cache): {exc}",
            pytrace=False,
        )
    kit = manifest.out_dir
    assert manifest.with_vsa and json.loads((kit / "MANIFEST.json").read_text())["withVsa"]
    # What signing a VSA with a key file needs is what every kit carries: no extra wheel.
    assert manifest.extras == ()
    closure = {pin.partition("==")[0] for pin in _environment_pins(())} | {"dssesign"}
    wheels = {_normalize(_parse_wheel(Path(w).name).name) for w in manifest.wheels}
    assert wheels <= closure, wheels - closure

    # The site: its own VSA key (encrypted, passphrase in a file), folders with spaces.
    site = tmp_path / "air gapped site"
    site.mkdir()
    vsa_signer = signer_for("ecdsa-p256", 7)
    write_keypair(vsa_signer, site / "vsa", password=PASSWORD.encode())
    (site / "passphrase.txt").write_text(PASSWORD + "\n")
    (site / "summaries").mkdir()
    vsa_root = init_trust_root(threshold=1, now=datetime.now(UTC) - timedelta(days=1))
    (site / "vsa-root.json").write_bytes(
        dump_trust_root(add_key(vsa_root, vsa_signer.public_key), allow_incomplete=False)
    )
    before = sorted((p.relative_to(kit), p.stat().st_mtime_ns) for p in kit.rglob("*"))

    run = _run(
        kit, site,
        "--root-keyid", root_signer.keyid,
        "--emit-vsa", "summaries/app vsa.json",
        "--vsa-key", "vsa.key",
        "--vsa-password-file", "passphrase.txt",
        f"--resource-uri={RESOURCE}",
        "--verified-level", "SLSA_BUILD_LEVEL_3",
        "--vsa-bundle-dir", "summaries/bundles",
        "--vsa-audit-log", "vsa-audit.log",
    )  # fmt: skip
    assert run.code == 0, run
    assert len(run.lines) == 2, run
    assert run.lines[0].startswith("PASS  attestations/app.intoto.json + 2 bundle(s)  "), run
    assert run.lines[1] == "OK: 1 of 1 attestation(s) verified against trust-root.signed.json"
    assert "verification summary (PASSED, 1 signature(s)) -> summaries/app vsa.json" in run.err
    assert "Traceback" not in run.err and PASSWORD not in run.err + run.out
    assert not (site / "pwned").exists() and not (kit / "pwned").exists()
    assert sorted((p.relative_to(kit), p.stat().st_mtime_ns) for p in kit.rglob("*")) == before

    summary = site / "summaries" / "app vsa.json"
    check = dssesign("verify", "--trust-root", site / "vsa-root.json", "--type", "vsa", summary)
    assert check.code == 0, check
    assert len(list((site / "summaries" / "bundles").glob("*.sigstore.json"))) == 1
    assert (site / "vsa-audit.log").stat().st_size > 0
    vsa = _statement(summary)
    assert vsa["subject"] == [{"name": ARTIFACT.name, "digest": {"sha256": _sha256(ARTIFACT)}}]
    predicate = vsa["predicate"]
    assert predicate["verificationResult"] == "PASSED"
    assert predicate["verifiedLevels"] == ["SLSA_BUILD_LEVEL_3"]
    assert predicate["resourceUri"] == RESOURCE
    # The policy is the kit's trust root as shipped (signed), where the site read it.
    assert predicate["policy"] == {
        "uri": (kit / "trust-root.signed.json").as_uri(),
        "digest": {"sha256": _sha256(trust_root)},
    }
    # verify.sh verifies its private, checked copy of the kit (never the kit folder again,
    # which could change after the check): the names are that copy's, the kit's layout below.
    inputs = {Path(entry["name"]).as_posix().split("/kit/", 1)[-1]: entry["digest"]["sha256"]
              for entry in predicate["inputAttestations"]}  # fmt: skip
    assert inputs == {
        "attestations/app.intoto.json": _sha256(attestation),
        **{f"bundles/app.intoto.json/{b.name}": _sha256(b) for b in bundles},
    }

    # Called from inside the kit, a relative FILE would land in it: refused before installing.
    run = _run(kit, kit, "--root-keyid", root_signer.keyid, "--emit-vsa", "vsa.json",
               "--vsa-key", str(site / "vsa.key"), "--resource-uri", RESOURCE)  # fmt: skip
    assert run.code == 2, run
    assert "verify.sh: --emit-vsa: vsa.json is inside the kit" in run.err, run
    assert not (kit / "vsa.json").exists()

    # A tampered kit (SHA256SUMS rewritten to match): never a PASSED summary. Without
    # --emit-vsa-on-failure nothing is written; with it, a FAILED one naming the artifact.
    edited = shutil.copytree(kit, tmp_path / "edited")
    forged = build_statement([subject], PREDICATE_TYPE, {"build": 1, "reviewed": True})
    target = edited / "attestations" / "app.intoto.json"
    target.write_bytes(
        Envelope(statement_payload(forged), PAYLOAD_TYPE, envelope.signatures).to_json()
    )
    rewrite_sums(edited)
    failed = site / "summaries" / "failed.json"
    run = _run(
        edited, site,
        "--root-keyid", root_signer.keyid,
        "--emit-vsa", str(failed), "--vsa-key", str(site / "vsa.key"),
        "--resource-uri", "https://example.com/releases/hello-1.0.tar.gz",
        "--verified-level", "SLSA_BUILD_LEVEL_3",
        "--emit-vsa-on-failure",
        env={"DSSESIGN_KEY_PASSWORD": PASSWORD},
    )  # fmt: skip
    assert run.code == 1, run
    assert run.lines[0].startswith("FAIL  attestations/app.intoto.json + 2 bundle(s)  "), run
    assert run.lines[-1].startswith("FAILED: 1 of 1 attestation(s) did not verify"), run
    assert "verification summary (FAILED, 1 signature(s))" in run.err, run
    check = dssesign("verify", "--trust-root", site / "vsa-root.json", "--type", "vsa", failed)
    assert check.code == 1 and "VSA_NOT_PASSED" in check.err, check  # authentic, not admitted
    predicate = _statement(failed)["predicate"]
    assert predicate["verificationResult"] == "FAILED"
    assert predicate["verifiedLevels"] == ["FAILED"]
    assert _statement(failed)["subject"][0]["digest"] == {"sha256": _sha256(ARTIFACT)}
