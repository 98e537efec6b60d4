"""The test registry (tests/registry.py) is a real one, and what dssesign's OCI client meets there.

Debian's docker-registry (distribution 2.8.2) behind TLS from a test CA and htpasswd auth, driven
with raw distribution-API requests. These tests also pin the 2.8 behaviours the OCI client
relies on: no referrers API (404), manifests with `subject` stored as sent (no OCI-Subject
header), and manifest GETs that need the manifest's media type in Accept, even by digest.

@sigstore/oci (sigstore-js; GitHub's actions/attest pushes with it) attaches a bundle as an
artifact manifest whose subject is the image, listed in an OCI index under the referrers tag
`sha256-<hex>`. It speaks plain HTTP to 127.0.0.1, so it runs against a plain-HTTP registry with
auth (`make_registry(tls=False)`); against the TLS one it fails, pinned below.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.registry import (
    DOCKER_MANIFEST,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    Registry,
    canonical,
    sha256_digest,
)

ROOT = Path(__file__).resolve().parents[3]
JS_DIR = ROOT / "tests" / "integration" / "interop" / "js"
ENSURE = ROOT / "scripts" / "ensure-sigstore-js.sh"
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
SLSA = "https://slsa.dev/provenance/v1"

Attach = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session", name="registry")
def _registry(oci_registry: Registry) -> Registry:
    """The session's docker-registry (tests/registry.py), by a shorter name in this module."""
    return oci_registry


def _manifest_unknown(answer_body: bytes) -> str:
    (error,) = json.loads(answer_body)["errors"]
    assert error["code"] == "MANIFEST_UNKNOWN", error
    return str(error["message"])


# --- the registry itself ------------------------------------------------------------------------


def test_pushed_image_comes_back_byte_for_byte(registry: Registry) -> None:
    digest = registry.push_image("plugin/image", layers=2)
    answer = registry.get(f"plugin/image/manifests/{digest}", accept=OCI_MANIFEST)
    assert answer.status == 200
    assert sha256_digest(answer.body) == digest
    assert answer.headers["Docker-Content-Digest"] == digest
    assert answer.headers["Content-Type"] == OCI_MANIFEST
    manifest = answer.json()
    assert manifest["mediaType"] == OCI_MANIFEST
    assert len(manifest["layers"]) == 2
    # Every blob it names is there, with the size and digest the manifest says.
    for descriptor in (manifest["config"], *manifest["layers"]):
        blob = registry.get(f"plugin/image/blobs/{descriptor['digest']}", accept=None)
        assert blob.status == 200
        assert (sha256_digest(blob.body), len(blob.body)) == (
            descriptor["digest"],
            descriptor["size"],
        )
    by_tag = registry.get("plugin/image/manifests/latest", accept=OCI_MANIFEST)
    assert by_tag.status == 200
    assert by_tag.body == answer.body
    untagged = registry.push_image("plugin/image", tag=None)
    assert registry.get("plugin/image/tags/list").json()["tags"] == ["latest"]
    assert registry.get(f"plugin/image/manifests/{untagged}", accept=OCI_MANIFEST).status == 200


def test_push_index_lists_one_image_per_platform(registry: Registry) -> None:
    index_digest, images = registry.push_index("plugin/multi")
    assert set(images) == {"linux/amd64", "linux/arm64"}
    answer = registry.get("plugin/multi/manifests/multi", accept=OCI_INDEX)
    assert answer.status == 200
    assert sha256_digest(answer.body) == index_digest
    assert answer.headers["Content-Type"] == OCI_INDEX
    index = answer.json()
    listed = {
        f"{entry['platform']['os']}/{entry['platform']['architecture']}": entry["digest"]
        for entry in index["manifests"]
    }
    assert listed == images
    for platform, digest in images.items():
        image = registry.get(f"plugin/multi/manifests/{digest}", accept=OCI_MANIFEST)
        assert image.status == 200
        config = image.json()["config"]["digest"]
        content = registry.get(f"plugin/multi/blobs/{config}", accept=None).json()
        assert f"{content['os']}/{content['architecture']}" == platform


def test_unauthenticated_requests_get_401_with_a_basic_challenge(registry: Registry) -> None:
    digest = registry.push_image("plugin/auth")
    for path in ("/v2/", f"plugin/auth/manifests/{digest}", "plugin/auth/tags/list"):
        answer = registry.get(path, auth=False)
        assert answer.status == 401, path
        assert answer.headers["WWW-Authenticate"] == 'Basic realm="dssesign-test-registry"'
        assert json.loads(answer.body)["errors"][0]["code"] == "UNAUTHORIZED"
    wrong = base64.b64encode(f"{registry.username}:not-the-password".encode()).decode()
    answer = registry.request(
        "GET", "/v2/", headers={"Authorization": f"Basic {wrong}"}, auth=False
    )
    assert answer.status == 401
    assert registry.get("/v2/").status == 200


def test_referrers_api_is_absent(registry: Registry) -> None:
    """2.8 has no referrers API: a plain 404 (router's, before auth): clients use the tag."""
    digest = registry.push_image("plugin/referrers")
    for auth in (True, False):
        for query in ("", "?artifactType=" + BUNDLE_MEDIA_TYPE):
            answer = registry.get(
                f"plugin/referrers/referrers/{digest}{query}", accept=OCI_INDEX, auth=auth
            )
            assert answer.status == 404
            assert answer.body == b"404 page not found\n"
            assert answer.headers["Content-Type"].startswith("text/plain")


def test_manifest_with_subject_and_artifact_type_is_stored_as_sent(registry: Registry) -> None:
    repo = "plugin/subject"
    image = registry.push_image(repo)
    image_size = len(registry.get(f"{repo}/manifests/{image}", accept=OCI_MANIFEST).body)
    payload = json.dumps({"mediaType": BUNDLE_MEDIA_TYPE}).encode()
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": BUNDLE_MEDIA_TYPE,
        "config": {"mediaType": OCI_EMPTY, "digest": registry.push_blob(repo, b"{}"), "size": 2},
        "layers": [
            {
                "mediaType": BUNDLE_MEDIA_TYPE,
                "digest": registry.push_blob(repo, payload),
                "size": len(payload),
            }
        ],
        "subject": {"mediaType": OCI_MANIFEST, "digest": image, "size": image_size},
        "annotations": {"dev.sigstore.bundle.content": "dsse-envelope"},
    }
    answer = registry.put_manifest(repo, manifest)
    assert answer.status == 201, answer.body
    digest = sha256_digest(canonical(manifest))
    assert answer.headers["Docker-Content-Digest"] == digest
    # No OCI-Subject header: the registry does not index referrers.
    assert "OCI-Subject" not in answer.headers
    back = registry.get(f"{repo}/manifests/{digest}", accept=OCI_MANIFEST)
    assert back.status == 200
    assert back.body == canonical(manifest)
    # 2.8 does not look at the subject at all: one naming a manifest it lacks is accepted too.
    dangling = {**manifest, "subject": {**manifest["subject"], "digest": "sha256:" + "0" * 64}}
    assert registry.put_manifest(repo, dangling).status == 201


def test_manifest_naming_a_missing_blob_is_refused(registry: Registry) -> None:
    """Validation is on (the default): layers, config and index entries must exist."""
    repo = "plugin/validation"
    missing = "sha256:" + "1" * 64
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_EMPTY, "digest": registry.push_blob(repo, b"{}"), "size": 2},
        "layers": [{"mediaType": BUNDLE_MEDIA_TYPE, "digest": missing, "size": 3}],
    }
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": missing, "size": 3}],
    }
    for document in (manifest, index):
        answer = registry.put_manifest(repo, document)
        assert answer.status == 400
        (error,) = json.loads(answer.body)["errors"]
        assert (error["code"], error["detail"]) == ("MANIFEST_BLOB_UNKNOWN", missing)


def test_manifest_get_needs_its_media_type_in_accept(registry: Registry) -> None:
    """2.8 answers 404 MANIFEST_UNKNOWN unless Accept names the type, by tag and by digest."""
    repo = "plugin/accept"
    image = registry.push_image(repo)
    index, _ = registry.push_index(repo)
    for reference in (image, "latest"):
        for accept in (None, "*/*", DOCKER_MANIFEST, OCI_INDEX):
            answer = registry.get(f"{repo}/manifests/{reference}", accept=accept)
            assert answer.status == 404, (reference, accept)
            assert _manifest_unknown(answer.body) == (
                "OCI manifest found, but accept header does not support OCI manifests"
            )
        for accept in (
            OCI_MANIFEST,
            f"{DOCKER_MANIFEST},{OCI_MANIFEST}",
            f"{DOCKER_MANIFEST}; q=0.5, {OCI_MANIFEST}",
        ):
            answer = registry.get(f"{repo}/manifests/{reference}", accept=accept)
            assert answer.status == 200, (reference, accept)
            assert answer.headers["Content-Type"] == OCI_MANIFEST
    for reference in (index, "multi"):
        answer = registry.get(f"{repo}/manifests/{reference}", accept=OCI_MANIFEST)
        assert answer.status == 404
        assert _manifest_unknown(answer.body) == (
            "OCI index found, but accept header does not support OCI indexes"
        )
    head = registry.request("HEAD", f"{repo}/manifests/latest", headers={"Accept": OCI_MANIFEST})
    assert head.status == 200
    assert head.headers["Docker-Content-Digest"] == image
    assert head.headers["Etag"] == f'"{image}"'


def test_certificate_names_127_0_0_1_and_localhost(registry: Registry) -> None:
    host, port = registry.host.rsplit(":", 1)
    assert host == "127.0.0.1"
    context = ssl.create_default_context(cafile=str(registry.ca_pem))
    for server_hostname in ("127.0.0.1", "localhost"):
        with (
            socket.create_connection((host, int(port)), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname=server_hostname) as tls,
        ):
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
    with (
        socket.create_connection((host, int(port)), timeout=10) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        ssl.create_default_context().wrap_socket(raw, server_hostname="127.0.0.1")


def test_docker_config_and_env_reach_the_registry(registry: Registry, tmp_path: Path) -> None:
    config_dir = registry.docker_config(tmp_path)
    config = json.loads((config_dir / "config.json").read_text())
    token = config["auths"][registry.host]["auth"]
    assert base64.b64decode(token).decode() == f"{registry.username}:{registry.password}"
    env = registry.env(config_dir)
    assert env["DOCKER_CONFIG"] == str(config_dir)
    assert env["SSL_CERT_FILE"] == str(registry.ca_pem)
    # A child process with that environment trusts the test CA by default and authenticates.
    script = (
        "import base64, json, os, pathlib, urllib.request\n"
        "config = pathlib.Path(os.environ['DOCKER_CONFIG'], 'config.json')\n"
        "auth = json.loads(config.read_text())['auths'][os.environ['HOST']]['auth']\n"
        "request = urllib.request.Request('https://' + os.environ['HOST'] + '/v2/',\n"
        "    headers={'Authorization': 'Basic ' + auth})\n"
        "print(urllib.request.urlopen(request, timeout=10).status)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**env, "HOST": registry.host},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "200"), done.stderr


def test_plain_http_registries(registry: Registry) -> None:
    open_registry = registry.make_registry(auth=False, tls=False)
    assert open_registry.url == f"http://{open_registry.host}"
    assert open_registry.host != registry.host
    assert open_registry.get("/v2/", auth=False).status == 200
    digest = open_registry.push_image("plain/image")
    answer = open_registry.get(f"plain/image/manifests/{digest}", accept=OCI_MANIFEST, auth=False)
    assert sha256_digest(answer.body) == digest
    assert registry.get(f"plain/image/manifests/{digest}", accept=OCI_MANIFEST).status == 404

    guarded = registry.make_registry(tls=False)
    assert guarded.get("/v2/", auth=False).status == 401
    assert guarded.get("/v2/").status == 200
    assert guarded.password != registry.password


# --- @sigstore/oci ------------------------------------------------------------------------------


@cache
def _ensure_installed() -> None:
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            pytest.fail(
                f"{tool} is missing: install Node.js 20+ and npm (apt-get install -y nodejs npm); "
                "the @sigstore/oci interop tests need them",
                pytrace=False,
            )
    done = subprocess.run(
        ["bash", str(ENSURE)], capture_output=True, text=True, timeout=300, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"scripts/ensure-sigstore-js.sh failed:\n{done.stderr}", pytrace=False)
    if not (JS_DIR / "node_modules" / "@sigstore" / "oci").is_dir():
        pytest.fail(
            f"@sigstore/oci is not installed: run npm ci in {JS_DIR.relative_to(ROOT)}",
            pytrace=False,
        )


@pytest.fixture(scope="module")
def oci_attach() -> Attach:
    """Run oci_attach.mjs against a registry: (registry, image digest, bundle, predicate)."""
    _ensure_installed()

    def attach(
        target: Registry, repo: str, digest: str, bundle: Path, predicate: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "REGISTRY_USERNAME": target.username,
            "REGISTRY_PASSWORD": target.password,
            "NODE_EXTRA_CA_CERTS": str(target.ca_pem),
        }
        argv = ["node", str(JS_DIR / "oci_attach.mjs"), target.reference(repo, digest)]
        argv += [str(bundle), *([predicate] if predicate else [])]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)

    return attach


@pytest.fixture(scope="module")
def http_registry(registry: Registry) -> Registry:
    """A plain-HTTP registry with auth: where @sigstore/oci goes for 127.0.0.1."""
    return registry.make_registry(tls=False)


def _bundle(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({"mediaType": BUNDLE_MEDIA_TYPE, "name": name}))
    return path


@pytest.mark.node
def test_sigstore_oci_attaches_a_bundle_under_the_referrers_tag(
    http_registry: Registry, oci_attach: Attach, tmp_path: Path
) -> None:
    registry, repo = http_registry, "interop/attach"
    image = registry.push_image(repo)
    image_manifest = registry.get(f"{repo}/manifests/{image}", accept=OCI_MANIFEST).body
    first, second = _bundle(tmp_path, "first.json"), _bundle(tmp_path, "second.json")

    done = oci_attach(registry, repo, image, first, SLSA)
    assert done.returncode == 0, done.stderr
    descriptor = json.loads(done.stdout)
    assert descriptor["mediaType"] == OCI_MANIFEST

    # The referrers tag holds an OCI index listing the artifact manifest.
    tag = "sha256-" + image.split(":", 1)[1]
    answer = registry.get(f"{repo}/manifests/{tag}", accept=OCI_INDEX)
    assert answer.status == 200, answer.body
    assert answer.headers["Content-Type"] == OCI_INDEX
    index = answer.json()
    assert index["mediaType"] == OCI_INDEX
    (entry,) = index["manifests"]
    assert (entry["mediaType"], entry["digest"], entry["size"]) == (
        OCI_MANIFEST,
        descriptor["digest"],
        descriptor["size"],
    )
    assert entry["artifactType"] == BUNDLE_MEDIA_TYPE
    assert entry["annotations"]["dev.sigstore.bundle.content"] == "dsse-envelope"
    assert entry["annotations"]["dev.sigstore.bundle.predicateType"] == SLSA

    # The artifact manifest: its subject is the image, its one layer the bundle's bytes.
    answer = registry.get(f"{repo}/manifests/{entry['digest']}", accept=OCI_MANIFEST)
    assert answer.status == 200
    assert (sha256_digest(answer.body), len(answer.body)) == (entry["digest"], entry["size"])
    artifact = answer.json()
    assert artifact["artifactType"] == BUNDLE_MEDIA_TYPE
    assert artifact["subject"] == {
        "mediaType": OCI_MANIFEST,
        "digest": image,
        "size": len(image_manifest),
    }
    assert artifact["config"] == {"mediaType": OCI_EMPTY, "digest": sha256_digest(b"{}"), "size": 2}
    (layer,) = artifact["layers"]
    assert layer["mediaType"] == BUNDLE_MEDIA_TYPE
    blob = registry.get(f"{repo}/blobs/{layer['digest']}", accept=None)
    assert blob.body == first.read_bytes()
    assert artifact["annotations"]["dev.sigstore.bundle.predicateType"] == SLSA

    # A second bundle joins the same index; the first entry stays as it was.
    done = oci_attach(registry, repo, image, second)
    assert done.returncode == 0, done.stderr
    entries = registry.get(f"{repo}/manifests/{tag}", accept=OCI_INDEX).json()["manifests"]
    assert [e["digest"] for e in entries] == [entry["digest"], json.loads(done.stdout)["digest"]]
    assert entries[0] == entry
    assert "dev.sigstore.bundle.predicateType" not in entries[1]["annotations"]
    # And the registry still has no referrers API.
    assert registry.get(f"{repo}/referrers/{image}", accept=OCI_INDEX).status == 404


@pytest.mark.node
def test_sigstore_oci_speaks_plain_http_to_127_0_0_1(
    registry: Registry, oci_attach: Attach, tmp_path: Path
) -> None:
    """@sigstore/oci 0.7 picks http for 127.0.0.1 and localhost: the TLS registry answers 400.

    Its auth probe then finds no challenge ("Invalid challenge"); nothing is written. If a
    release learns TLS on loopback, this fails and the attach test can use the TLS registry.
    """
    repo = "interop/tls"
    image = registry.push_image(repo)
    done = oci_attach(registry, repo, image, _bundle(tmp_path, "bundle.json"))
    assert done.returncode == 1
    assert "Error uploading artifact to container registry" in done.stderr
    assert "Invalid challenge" in done.stderr
    assert done.stdout == ""
    tag = "sha256-" + image.split(":", 1)[1]
    assert registry.get(f"{repo}/manifests/{tag}", accept=OCI_INDEX).status == 404
