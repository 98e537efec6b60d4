"""The registry workflow as a user runs it: the `dssesign` CLI against Debian's docker-registry.

TLS with the test CA (SSL_CERT_FILE), basic auth from a DOCKER_CONFIG config.json, no
referrers API (distribution 2.8 answers 404), so bundles land through the referrers tag schema.
What dssesign attaches is read back here with raw distribution-API calls and compared with
cosign's layouts field by field; what @sigstore/oci attaches is verified by `verify --image`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.registry import Registry

ROOT = Path(__file__).resolve().parents[3]
JS_DIR = ROOT / "tests" / "integration" / "interop" / "js"
BUNDLE_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
CUSTOM = "https://cosign.sigstore.dev/attestation/v1"


@pytest.fixture(scope="session", name="registry")
def _registry(oci_registry: Registry) -> Registry:
    """The session's docker-registry (tests/registry.py), by a shorter name in this module."""
    return oci_registry


class Cli:
    """`dssesign` as a subprocess with the registry's DOCKER_CONFIG and CA."""

    def __init__(self, work: Path, env: dict[str, str]) -> None:
        self.work = work
        self.env = env

    def __call__(
        self, *args: str, code: int | None = 0, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "dssesign", *args],
            cwd=self.work,
            env=env or self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if code is not None:
            assert done.returncode == code, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, done.stderr
        return done


@pytest.fixture(name="keys")
def keys_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two Ed25519 keys and a trust root with both (threshold 1), made with the CLI."""
    work = tmp_path_factory.mktemp("oci-keys")
    run = Cli(work, dict(os.environ))
    for name in ("a", "b"):
        run("keygen", "--algorithm", "ed25519", "--out", name)
    run("trust-root", "init", "--out", "trust-root.json")
    for name in ("a", "b"):
        run("trust-root", "add-key", "trust-root.json", "--public-key", f"{name}.pub")
    (work / "predicate.json").write_text('{"scanner": "test", "findings": []}\n')
    return work


@pytest.fixture(name="cli")
def cli_fixture(registry: Registry, keys: Path, tmp_path: Path) -> Cli:
    for name in ("a.key", "b.key", "trust-root.json", "predicate.json"):
        shutil.copy(keys / name, tmp_path / name)
    return Cli(tmp_path, registry.env(registry.docker_config(tmp_path)))


def _attest(
    cli: Cli, image: str, *extra: str, key: str = "a.key"
) -> subprocess.CompletedProcess[str]:
    return cli(
        "attest", "--image", image, "--key", key, "--type", "custom",
        "--predicate", "predicate.json", *extra,
    )  # fmt: skip


def _index_entries(registry: Registry, repo: str, digest: str) -> list[dict[str, Any]]:
    answer = registry.get(f"{repo}/manifests/{digest.replace(':', '-')}", accept=OCI_INDEX)
    assert answer.status == 200, answer
    index = answer.json()
    assert index["schemaVersion"] == 2 and index["mediaType"] == OCI_INDEX
    entries: list[dict[str, Any]] = index["manifests"]
    return entries


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_attest_attaches_cosigns_bundle_layout_and_verifies(
    registry: Registry, cli: Cli, tmp_path: Path
) -> None:
    image = registry.push_image("app/web")
    ref = registry.reference("app/web", image)
    done = _attest(cli, ref, "--out", "att.dsse.json", "--bundle-dir", "bundles")
    assert "listed in tag sha256-" in done.stdout  # no referrers API: the tag schema
    (bundle_file,) = (tmp_path / "bundles").iterdir()
    bundle = bundle_file.read_bytes()

    # The raw walk: tag-schema index -> referrer manifest -> bundle blob, each by digest.
    (entry,) = _index_entries(registry, "app/web", image)
    assert entry["mediaType"] == OCI_MANIFEST and entry["artifactType"] == BUNDLE_TYPE
    raw = registry.get(f"app/web/manifests/{entry['digest']}", accept=OCI_MANIFEST).body
    assert _sha256(raw) == entry["digest"] and len(raw) == entry["size"]
    manifest = json.loads(raw)
    assert list(manifest) == [
        "schemaVersion", "mediaType", "config", "layers", "annotations", "subject", "artifactType",
    ]  # fmt: skip
    assert manifest["artifactType"] == BUNDLE_TYPE
    assert manifest["config"] == {
        "mediaType": "application/vnd.oci.empty.v1+json",
        "size": 2,
        "digest": EMPTY_DIGEST,
        "artifactType": BUNDLE_TYPE,
    }
    assert manifest["layers"] == [
        {"mediaType": BUNDLE_TYPE, "size": len(bundle), "digest": _sha256(bundle)}
    ]
    image_size = len(registry.get(f"app/web/manifests/{image}", accept=OCI_MANIFEST).body)
    assert manifest["subject"] == {"mediaType": OCI_MANIFEST, "size": image_size, "digest": image}
    annotations = manifest["annotations"]
    assert sorted(annotations) == [
        "dev.sigstore.bundle.content", "dev.sigstore.bundle.predicateType",
        "org.opencontainers.image.created",
    ]  # fmt: skip
    assert annotations["dev.sigstore.bundle.content"] == "dsse-envelope"
    assert annotations["dev.sigstore.bundle.predicateType"] == CUSTOM
    assert entry["annotations"] == annotations  # the index entry carries them too
    assert registry.get(f"app/web/blobs/{manifest['layers'][0]['digest']}").body == bundle
    assert registry.get(f"app/web/blobs/{EMPTY_DIGEST}").body == b"{}"

    # The Statement is about the image (its subject, named as cosign names it).
    envelope = json.loads((tmp_path / "att.dsse.json").read_text())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["subject"] == [
        {"digest": {"sha256": image.removeprefix("sha256:")}, "name": f"{registry.host}/app/web"}
    ]

    verified = cli("verify", "--image", ref, "--trust-root", "trust-root.json", "--json")
    report = json.loads(verified.stdout)
    assert report["ok"] is True and report["referrers"] == "referrers-tag"
    (found,) = report["attestations"]
    assert found["manifest"] == entry["digest"] and found["layer"] == _sha256(bundle)
    assert found["signatures"][0]["status"] == "counted"

    # Attaching the same files again pushes nothing new.
    again = cli("attach", "--image", ref, "att.dsse.json", str(bundle_file))
    assert "already attached" in again.stdout
    assert len(_index_entries(registry, "app/web", image)) == 1


def test_legacy_tag_layout_download_and_offline_verify(
    registry: Registry, cli: Cli, tmp_path: Path
) -> None:
    image = registry.push_image("app/legacy")
    ref = registry.reference("app/legacy", image)
    _attest(cli, ref, "--legacy-tag", "--out", "legacy.dsse.json")
    tag = image.replace(":", "-") + ".att"
    raw = registry.get(f"app/legacy/manifests/{tag}", accept=OCI_MANIFEST).body
    manifest = json.loads(raw)
    assert manifest["mediaType"] == OCI_MANIFEST
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    (layer,) = manifest["layers"]
    envelope = (tmp_path / "legacy.dsse.json").read_bytes().rstrip(b"\n")
    assert layer["mediaType"] == "application/vnd.dsse.envelope.v1+json"
    assert layer["digest"] == _sha256(envelope) and layer["size"] == len(envelope)
    assert layer["annotations"] == {
        "dev.cosignproject.cosign/signature": "",
        "predicateType": CUSTOM,
    }
    config = registry.get(f"app/legacy/blobs/{manifest['config']['digest']}").body
    assert json.loads(config)["rootfs"] == {"type": "layers", "diff_ids": [layer["digest"]]}
    assert registry.get(f"app/legacy/blobs/{layer['digest']}").body == envelope

    # A second attestation becomes a second layer of the same tag.
    _attest(cli, ref, "--legacy-tag", key="b.key")
    manifest = json.loads(registry.get(f"app/legacy/manifests/{tag}", accept=OCI_MANIFEST).body)
    assert len(manifest["layers"]) == 2

    cli("verify", "--image", ref, "--trust-root", "trust-root.json")
    cli("download", "--image", ref, "--out", "saved")
    envelopes = sorted((tmp_path / "saved").glob("*.dsse.json"))
    assert len(envelopes) == 2  # two payloads (the predicate's Timestamp differs)
    for path in envelopes:
        # Offline: no DOCKER_CONFIG, no registry needed.
        cli("verify", "--trust-root", "trust-root.json", str(path), env=dict(os.environ))


def test_bundles_of_one_payload_are_one_attestation(
    registry: Registry, cli: Cli, tmp_path: Path
) -> None:
    """Two keys sign one Statement; each bundle is attached on its own: one group, two keys."""
    image = registry.push_image("app/two")
    ref = registry.reference("app/two", image)
    cli(
        "attest", "--subject", image, "--type", "custom", "--predicate", "predicate.json",
        "--key", "a.key", "--key", "b.key", "--out", "two.dsse.json", "--bundle-dir", "two",
    )  # fmt: skip
    bundles = sorted(str(p) for p in (tmp_path / "two").iterdir())
    for bundle in bundles:
        cli("attach", "--image", ref, "two.dsse.json", bundle)
    root = json.loads((tmp_path / "trust-root.json").read_text())
    root["policy"]["threshold"] = 2
    (tmp_path / "trust-root-2.json").write_text(json.dumps(root))
    report = json.loads(
        cli("verify", "--image", ref, "--trust-root", "trust-root-2.json", "--json").stdout
    )
    (group,) = report["groups"]
    assert group["ok"] and len(group["keysCounted"]) == 2
    assert {a["group"] for a in report["attestations"]} == {0}
    assert len(report["attestations"]) == 2


def test_image_index_and_platform(registry: Registry, cli: Cli) -> None:
    index, images = registry.push_index("app/multi")
    ref = registry.reference("app/multi", index)
    _attest(cli, ref)  # the index itself by default
    (entry,) = _index_entries(registry, "app/multi", index)
    manifest = json.loads(registry.get(f"app/multi/manifests/{entry['digest']}").body)
    assert manifest["subject"]["mediaType"] == OCI_INDEX
    assert manifest["subject"]["digest"] == index

    done = _attest(cli, ref, "--platform", "linux/arm64")
    assert images["linux/arm64"] in done.stderr  # "resolved to"
    assert len(_index_entries(registry, "app/multi", images["linux/arm64"])) == 1
    cli("verify", "--image", ref, "--platform", "linux/arm64", "--trust-root", "trust-root.json")
    amd = registry.reference("app/multi", images["linux/amd64"])
    failed = cli("verify", "--image", amd, "--trust-root", "trust-root.json", code=1)
    assert "NO_ATTESTATIONS" in failed.stderr
    unknown = cli(
        "verify", "--image", ref, "--platform", "linux/s390x", "--trust-root", "trust-root.json",
        code=1,
    )  # fmt: skip
    assert "IMAGE_NOT_FOUND" in unknown.stderr or "no linux/s390x" in unknown.stderr


def test_tag_needs_resolve_tag(registry: Registry, cli: Cli) -> None:
    image = registry.push_image("app/tagged", tag="v1")
    tagged = registry.reference("app/tagged", "v1")
    refused = _attest_code(cli, tagged, code=2)
    assert "--resolve-tag" in refused.stderr
    done = _attest(cli, tagged, "--resolve-tag")
    assert image in done.stderr
    cli("verify", "--image", tagged, "--resolve-tag", "--trust-root", "trust-root.json")


def _attest_code(cli: Cli, image: str, *, code: int) -> subprocess.CompletedProcess[str]:
    return cli(
        "attest", "--image", image, "--key", "a.key", "--type", "custom",
        "--predicate", "predicate.json", code=code,
    )  # fmt: skip


def test_concurrent_attaches_lose_nothing(registry: Registry, cli: Cli, tmp_path: Path) -> None:
    image = registry.push_image("app/busy")
    ref = registry.reference("app/busy", image)
    count = 6
    for number in range(count):
        (tmp_path / f"p{number}.json").write_text(json.dumps({"n": number}))
        cli(
            "attest", "--subject", image, "--type", "custom", "--predicate", f"p{number}.json",
            "--key", "a.key", "--out", f"e{number}.dsse.json", "--bundle-dir", f"b{number}",
        )  # fmt: skip

    def attach(number: int) -> int:
        (bundle,) = (tmp_path / f"b{number}").iterdir()
        return cli("attach", "--image", ref, f"e{number}.dsse.json", str(bundle)).returncode

    with ThreadPoolExecutor(count) as pool:
        assert list(pool.map(attach, range(count))) == [0] * count
    assert len(_index_entries(registry, "app/busy", image)) == count
    report = json.loads(
        cli("verify", "--image", ref, "--trust-root", "trust-root.json", "--json").stdout
    )
    assert len(report["groups"]) == count and all(g["ok"] for g in report["groups"])


def test_registry_faults_are_clear_errors(registry: Registry, cli: Cli, tmp_path: Path) -> None:
    image = registry.push_image("app/faults")
    ref = registry.reference("app/faults", image)
    # Wrong password: 401, the password never printed.
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    token = base64.b64encode(f"{registry.username}:not-the-password-x1".encode()).decode()
    (wrong / "config.json").write_text(json.dumps({"auths": {registry.host: {"auth": token}}}))
    env = {**cli.env, "DOCKER_CONFIG": str(wrong)}
    done = cli("verify", "--image", ref, "--trust-root", "trust-root.json", code=1, env=env)
    assert "refused" in done.stderr and "not-the-password-x1" not in done.stderr + done.stdout
    # No credentials at all.
    (tmp_path / "none").mkdir()
    env = {**cli.env, "DOCKER_CONFIG": str(tmp_path / "none")}
    done = cli("verify", "--image", ref, "--trust-root", "trust-root.json", code=1, env=env)
    assert "no credentials" in done.stderr
    # An image that is not there.
    missing = registry.reference("app/faults", "sha256:" + "0" * 64)
    done = cli("verify", "--image", missing, "--trust-root", "trust-root.json", code=1)
    assert "not in" in done.stderr
    # The CA not trusted: TLS fails, with the hint.
    env = {**cli.env, "SSL_CERT_FILE": str(ROOT / "fixtures" / "README.md")}
    env.pop("REQUESTS_CA_BUNDLE", None)
    done = cli("verify", "--image", ref, "--trust-root", "trust-root.json", code=1, env=env)
    assert "CA bundle" in done.stderr or "TLS" in done.stderr
    # A registry that is down.
    down = ref.replace(registry.host, "127.0.0.1:9")
    done = cli("verify", "--image", down, "--trust-root", "trust-root.json", code=1)
    assert "unreachable" in done.stderr
    # An attestation about another image is refused before anything is pushed.
    other = registry.push_image("app/other")
    cli(
        "attest", "--subject", other, "--type", "custom", "--predicate", "predicate.json",
        "--key", "a.key", "--out", "other.dsse.json", "--bundle-dir", "ob",
    )  # fmt: skip
    (bundle,) = (tmp_path / "ob").iterdir()
    done = cli("attach", "--image", ref, "other.dsse.json", str(bundle), code=2)
    assert image in done.stderr
    tag = registry.get(f"app/faults/manifests/{image.replace(':', '-')}", accept=OCI_INDEX)
    assert tag.status == 404


def test_registry_lies_are_skipped_not_trusted(
    registry: Registry, cli: Cli, tmp_path: Path
) -> None:
    """A corrupted bundle blob and a referrer of another image listed for this one: each is a
    problem in the report; the honest attestation still verifies."""
    image = registry.push_image("app/lies")
    ref = registry.reference("app/lies", image)
    other = registry.push_image("app/lies", tag="other")
    _attest(cli, registry.reference("app/lies", other), "--bundle-dir", "ob")
    _attest(cli, ref, "--bundle-dir", "good")
    _attest(cli, ref, "--bundle-dir", "bad", key="b.key")
    # Corrupt the second bundle's blob in the registry's storage (same length).
    (bad_bundle,) = (tmp_path / "bad").iterdir()
    hexdigest = hashlib.sha256(bad_bundle.read_bytes()).hexdigest()
    blob = registry.storage / "docker/registry/v2/blobs/sha256" / hexdigest[:2] / hexdigest / "data"
    data = bytearray(blob.read_bytes())
    data[10] ^= 1
    blob.write_bytes(bytes(data))
    # List the other image's referrer in this image's tag-schema index.
    entries = _index_entries(registry, "app/lies", image)
    entries += _index_entries(registry, "app/lies", other)
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    answer = registry.put_manifest(
        "app/lies", json.dumps(index).encode(), reference=image.replace(":", "-")
    )
    assert answer.status == 201
    report = json.loads(
        cli("verify", "--image", ref, "--trust-root", "trust-root.json", "--json").stdout
    )
    assert report["ok"] is True and len(report["groups"]) == 1
    messages = " | ".join(p["message"] for p in report["problems"])
    assert {p["code"] for p in report["problems"]} == {"REGISTRY_CONTENT_INVALID"}, messages
    assert "do not match its digest" in messages
    assert f"its subject is {other}" in messages


def test_manifest_over_the_limit(registry: Registry, cli: Cli) -> None:
    image = registry.push_image("app/big")
    ref = registry.reference("app/big", image)
    _attest(cli, ref)
    env = {**cli.env, "DSSESIGN_LIMITS": "max_manifest_bytes=300"}
    done = cli("verify", "--image", ref, "--trust-root", "trust-root.json", code=1, env=env)
    assert "over the limit" in done.stderr + done.stdout


def test_insecure_registry_needs_the_flag(registry: Registry, cli: Cli, tmp_path: Path) -> None:
    plain = registry.make_registry(tls=False, auth=False)
    image = plain.push_image("app/plain")
    ref = plain.reference("app/plain", image)
    env = plain.env(plain.docker_config(tmp_path / "plain"))
    refused = cli("verify", "--image", ref, "--trust-root", "trust-root.json", code=1, env=env)
    assert "TLS" in refused.stderr or "unreachable" in refused.stderr
    _attest(cli, ref, "--allow-insecure-registry")
    cli(
        "verify", "--image", ref, "--allow-insecure-registry", "--trust-root", "trust-root.json",
        env=env,
    )  # fmt: skip


def _node_ready() -> bool:
    return (
        shutil.which("node") is not None
        and (JS_DIR / "node_modules" / "@sigstore" / "oci").is_dir()
    )


def test_sigstore_oci_attachment_is_found_and_verified(
    registry: Registry, cli: Cli, tmp_path: Path
) -> None:
    """@sigstore/oci (sigstore-js, as GitHub's attest action uses it) attaches a bundle that
    dssesign signed; `verify --image` finds it in the tag-schema index and verifies it."""
    if not _node_ready():
        subprocess.run(["bash", str(ROOT / "scripts" / "ensure-sigstore-js.sh")], check=True)
    plain = registry.make_registry(tls=False, auth=True)  # @sigstore/oci: HTTP on 127.0.0.1
    image = plain.push_image("app/js")
    ref = plain.reference("app/js", image)
    cli(
        "attest", "--subject", image, "--type", "custom", "--predicate", "predicate.json",
        "--key", "a.key", "--out", "js.dsse.json", "--bundle-dir", "js",
    )  # fmt: skip
    (bundle,) = (tmp_path / "js").iterdir()
    env = {**os.environ, "REGISTRY_USERNAME": plain.username, "REGISTRY_PASSWORD": plain.password}
    attached = subprocess.run(
        ["node", str(JS_DIR / "oci_attach.mjs"), ref, str(bundle), CUSTOM],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert attached.returncode == 0, attached.stderr
    descriptor = json.loads(attached.stdout)
    env = plain.env(plain.docker_config(tmp_path / "js-config"))
    report = json.loads(
        cli(
            "verify", "--image", ref, "--allow-insecure-registry", "--trust-root",
            "trust-root.json", "--json", env=env,
        ).stdout
    )  # fmt: skip
    assert report["ok"] is True, report
    assert len(report["attestations"]) == 1, json.dumps(report, indent=1)
    (found,) = report["attestations"]
    assert found["manifest"] == descriptor["digest"]
    assert found["layer"] == _sha256(bundle.read_bytes())
