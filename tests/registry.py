"""A real OCI registry for the tests: Debian's docker-registry (distribution 2.8) on 127.0.0.1.

tests/conftest.py registers this module as a plugin: a test names the `registry` fixture (marker
`registry`). One registry per session, HTTPS with a certificate from a test CA made with
pyca/cryptography (SAN IP:127.0.0.1 and DNS:localhost) and htpasswd basic auth with a random
password; `registry.make_registry(auth=..., tls=...)` starts others (plain HTTP, no auth), each
started when asked for and stopped at the session's end. A missing `docker-registry` binary is a
failure with the command that installs it (scripts/ensure-registry.sh), never a skip.

The htpasswd file holds a bcrypt hash (the only scheme distribution's htpasswd accepts) written
with the `bcrypt` package from PyPI (in the `dev` extra, so a fresh Debian machine gets it with
`pip install -e '.[dev]'`); without it, `htpasswd -nbB` from apache2-utils. OpenSSL cannot
make bcrypt hashes. The cost is 4, bcrypt's minimum: the registry checks the password on every
request, and at the usual cost 10 that is some 50 ms a request.

Measured on docker-registry 2.8.2 (tests/integration/oci/test_registry_plugin.py pins it):
- no referrers API: GET /v2/<repo>/referrers/<digest> answers a plain-text 404 ("404 page not
  found", before any auth check), so clients fall back to the referrers tag schema (tag
  `sha256-<hex>` holding an OCI index);
- it stores an OCI image manifest with `artifactType` and `subject` byte for byte, answers
  without an `OCI-Subject` header, and never checks the subject (one naming a manifest it
  lacks is accepted too); layers, config and index entries must exist (validation is on);
- a manifest GET whose Accept header lacks the stored manifest's media type answers 404
  MANIFEST_UNKNOWN ("OCI manifest found, but accept header does not support OCI manifests"),
  by digest as by tag; no Accept header and `*/*` count as lacking it.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.client
import io
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tarfile
import threading
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

INSTALL = "bash scripts/ensure-registry.sh (apt-get install -y docker-registry)"
_START_TIMEOUT = 30.0
_TIMEOUT = 30.0
#: bcrypt's minimum cost: the registry hashes the password on every request.
_BCRYPT_COST = 4

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
#: Every manifest type: what a client that takes any manifest sends as Accept.
ACCEPT_ANY_MANIFEST = ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST))

Platform = tuple[str, str]  # (os, architecture)


class Response(NamedTuple):
    """A raw registry answer; `headers` are looked up case-insensitively."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(document: Mapping[str, Any]) -> bytes:
    """The bytes the helpers push for a JSON document (compact, keys in order)."""
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


@dataclass(frozen=True)
class Registry:
    """A running registry: `host` is "127.0.0.1:PORT", `storage` its filesystem root.

    `ca_pem` is the session's test CA (it signed the server certificate of every TLS registry);
    `username` and `password` are the htpasswd account (unused by a registry without auth).
    """

    host: str
    ca_pem: Path
    username: str
    password: str
    storage: Path
    log: Path
    tls: bool = True
    auth: bool = True
    _pool: RegistryPool | None = field(default=None, repr=False, compare=False)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    def reference(self, repo: str, digest_or_tag: str) -> str:
        """`host/repo@sha256:...` or `host/repo:tag`."""
        separator = "@" if ":" in digest_or_tag else ":"
        return f"{self.host}/{repo}{separator}{digest_or_tag}"

    # --- what a client process needs ------------------------------------------------------

    def docker_config(self, tmp_path: Path) -> Path:
        """A DOCKER_CONFIG directory whose config.json holds this registry's credentials."""
        directory = tmp_path / "docker-config"
        directory.mkdir(parents=True, exist_ok=True)
        auths: dict[str, Any] = {}
        if self.auth:
            token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            auths[self.host] = {"auth": token}
        (directory / "config.json").write_text(json.dumps({"auths": auths}, indent=2))
        return directory

    def env(self, docker_config_dir: Path) -> dict[str, str]:
        """os.environ plus DOCKER_CONFIG and SSL_CERT_FILE (the test CA) for a CLI subprocess."""
        return {
            **os.environ,
            "DOCKER_CONFIG": str(docker_config_dir),
            "SSL_CERT_FILE": str(self.ca_pem),
        }

    # --- raw distribution API -------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        auth: bool = True,
    ) -> Response:
        """One HTTP request: `path` is "/v2/...", "repo/manifests/..." or a Location URL."""
        parsed = urllib.parse.urlsplit(path)
        if parsed.netloc and parsed.netloc != self.host:
            raise ValueError(f"{path} is not on this registry ({self.host})")
        target = parsed.path if parsed.path.startswith("/") else "/v2/" + parsed.path
        if parsed.query:
            target += "?" + parsed.query
        sent = dict(headers or {})
        if auth and self.auth:
            token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            sent["Authorization"] = f"Basic {token}"
        connection = self._connection()
        try:
            connection.request(method, target, body=body, headers=sent)
            answer = connection.getresponse()
            return Response(answer.status, answer.headers, answer.read())
        finally:
            connection.close()

    def get(
        self, path: str, *, accept: str | None = ACCEPT_ANY_MANIFEST, auth: bool = True
    ) -> Response:
        """An authenticated GET of `https://host/v2/...` (`accept`: the Accept header)."""
        headers = {"Accept": accept} if accept is not None else {}
        return self.request("GET", path, headers=headers, auth=auth)

    def push_blob(self, repo: str, data: bytes) -> str:
        """Upload a blob (POST then PUT, as the spec's two-step upload); its digest."""
        digest = sha256_digest(data)
        started = self.request("POST", f"{repo}/blobs/uploads/")
        _expect(started, 202, f"starting a blob upload to {repo}")
        location = started.headers["Location"]
        glue = "&" if "?" in location else "?"
        done = self.request(
            "PUT",
            f"{location}{glue}digest={urllib.parse.quote(digest)}",
            body=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        _expect(done, 201, f"uploading blob {digest} to {repo}")
        return digest

    def put_manifest(
        self,
        repo: str,
        manifest: bytes | Mapping[str, Any],
        *,
        media_type: str | None = None,
        reference: str | None = None,
    ) -> Response:
        """PUT a manifest (by its digest unless `reference` names a tag); the raw answer.

        `media_type` (the Content-Type) defaults to the document's own `mediaType`.
        """
        data = manifest if isinstance(manifest, bytes) else canonical(manifest)
        if media_type is None:
            media_type = str(json.loads(data).get("mediaType") or OCI_MANIFEST)
        return self.request(
            "PUT",
            f"{repo}/manifests/{reference or sha256_digest(data)}",
            body=data,
            headers={"Content-Type": media_type},
        )

    def push_manifest(
        self, repo: str, manifest: bytes | Mapping[str, Any], *, tag: str | None = None
    ) -> str:
        """PUT a manifest by digest (and under `tag`), failing unless accepted; its digest."""
        data = manifest if isinstance(manifest, bytes) else canonical(manifest)
        digest = sha256_digest(data)
        for reference in (digest, tag) if tag else (digest,):
            answer = self.put_manifest(repo, data, reference=reference)
            _expect(answer, 201, f"pushing manifest {repo}:{reference}")
            assert answer.headers["Docker-Content-Digest"] == digest, answer.headers
        return digest

    def push_image(
        self,
        repo: str,
        *,
        layers: int = 1,
        tag: str | None = "latest",
        platform: Platform = ("linux", "amd64"),
    ) -> str:
        """Push a small random image (gzip tar layers, OCI config and manifest); its digest."""
        layer_descriptors, diff_ids = [], []
        for index in range(layers):
            tar = _random_tar(f"layer-{index}.bin")
            blob = gzip.compress(tar, mtime=0)
            layer_descriptors.append(
                {"mediaType": OCI_LAYER, "digest": self.push_blob(repo, blob), "size": len(blob)}
            )
            diff_ids.append(sha256_digest(tar))
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        config = canonical(
            {
                "architecture": platform[1],
                "os": platform[0],
                "created": created,
                "config": {"Labels": {"test.nonce": secrets.token_hex(8)}},
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
                "history": [{"created": created, "created_by": "tests/registry.py"}] * layers,
            }
        )
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG,
                "digest": self.push_blob(repo, config),
                "size": len(config),
            },
            "layers": layer_descriptors,
        }
        return self.push_manifest(repo, manifest, tag=tag)

    def push_index(
        self,
        repo: str,
        platforms: Iterable[Platform] = (("linux", "amd64"), ("linux", "arm64")),
        *,
        tag: str | None = "multi",
    ) -> tuple[str, dict[str, str]]:
        """One image per platform and an OCI index of them (tagged `tag`).

        Returns the index digest and {"os/arch": image digest}.
        """
        entries, images = [], {}
        for os_name, arch in platforms:
            digest = self.push_image(repo, tag=None, platform=(os_name, arch))
            size = len(self.get(f"{repo}/manifests/{digest}", accept=OCI_MANIFEST).body)
            images[f"{os_name}/{arch}"] = digest
            entries.append(
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": digest,
                    "size": size,
                    "platform": {"architecture": arch, "os": os_name},
                }
            )
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        return self.push_manifest(repo, index, tag=tag), images

    # --- more registries ------------------------------------------------------------------

    def make_registry(self, *, auth: bool = True, tls: bool = True) -> Registry:
        """Another running registry (own storage), stopped at the session's end.

        `tls=False`: plain HTTP (what --allow-insecure-registry is for); `auth=False`: open.
        """
        if self._pool is None:
            raise RuntimeError("this Registry was not started by a RegistryPool")
        return self._pool.start(auth=auth, tls=tls)

    def _connection(self) -> http.client.HTTPConnection:
        hostname, port = self.host.rsplit(":", 1)
        if not self.tls:
            return http.client.HTTPConnection(hostname, int(port), timeout=_TIMEOUT)
        context = ssl.create_default_context(cafile=str(self.ca_pem))
        return http.client.HTTPSConnection(hostname, int(port), timeout=_TIMEOUT, context=context)


def _expect(answer: Response, status: int, what: str) -> None:
    if answer.status != status:
        raise AssertionError(
            f"{what}: HTTP {answer.status} (wanted {status}): {answer.body[:2000]!r}"
        )


def _random_tar(name: str) -> bytes:
    """A tar with one file of random bytes (a layer no other push can share)."""
    content = secrets.token_bytes(256)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size = len(content)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(content))
    return out.getvalue()


# --- the test CA and the server certificate ----------------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_tls_material(directory: Path) -> tuple[Path, Path, Path]:
    """A test CA and a server certificate (127.0.0.1, localhost): ca.pem, server.pem, key."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("dssesign test registry CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), True
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(IPv4Address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = (
        directory / "ca.pem",
        directory / "server.pem",
        directory / "server.key",
    )
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return ca_path, cert_path, key_path


# --- htpasswd ---------------------------------------------------------------------------------


def bcrypt_hash(password: str) -> str:
    """A bcrypt hash of `password`: the `bcrypt` package, else `htpasswd -nbB` (apache2-utils)."""
    try:
        import bcrypt
    except ImportError:
        pass
    else:
        salt = bcrypt.gensalt(rounds=_BCRYPT_COST)
        return bcrypt.hashpw(password.encode(), salt).decode()
    htpasswd = shutil.which("htpasswd")
    if htpasswd is None:
        pytest.fail(
            "no way to write a bcrypt htpasswd file for the test registry: run "
            "pip install bcrypt (or: pip install -e '.[dev]'), or apt-get install -y apache2-utils",
            pytrace=False,
        )
    line = subprocess.run(
        [htpasswd, "-nbB", "-C", str(_BCRYPT_COST), "user", password],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.strip()
    return line.split(":", 1)[1]


# --- the server -------------------------------------------------------------------------------


def registry_binary() -> str:
    found = shutil.which("docker-registry") or (
        "/usr/bin/docker-registry" if Path("/usr/bin/docker-registry").is_file() else None
    )
    if found is None:
        pytest.fail(
            f"docker-registry is not installed: run {INSTALL}; the OCI tests need a real "
            "registry (distribution 2.8)",
            pytrace=False,
        )
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _quoted(value: str | Path) -> str:
    return json.dumps(str(value))  # a JSON string is a YAML string


def _config(port: int, storage: Path, tls: tuple[Path, Path] | None, htpasswd: Path | None) -> str:
    lines = [
        "version: 0.1",
        "log:",
        "  level: warn",
        "  formatter: text",
        "  accesslog:",
        "    disabled: true",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {_quoted(storage)}",
        "  delete:",
        "    enabled: true",
        "http:",
        f"  addr: {_quoted(f'127.0.0.1:{port}')}",
        f"  secret: {_quoted(secrets.token_hex(16))}",
        "  headers:",
        "    X-Content-Type-Options: [nosniff]",
    ]
    if tls is not None:
        lines += [
            "  tls:",
            f"    certificate: {_quoted(tls[0])}",
            f"    key: {_quoted(tls[1])}",
        ]
    if htpasswd is not None:
        lines += [
            "auth:",
            "  htpasswd:",
            "    realm: dssesign-test-registry",
            f"    path: {_quoted(htpasswd)}",
        ]
    return "\n".join(lines) + "\n"


def _wait_ready(registry: Registry, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"docker-registry exited with {process.returncode}: "
                f"{registry.log.read_text(errors='replace')[-2000:]}",
                pytrace=False,
            )
        try:
            status = registry.request("GET", "/v2/").status
        except OSError:
            time.sleep(0.05)
            continue
        if status == 200:
            return
        pytest.fail(
            f"docker-registry answered GET /v2/ with HTTP {status} (the htpasswd account?): "
            f"{registry.log.read_text(errors='replace')[-2000:]}",
            pytrace=False,
        )
    pytest.fail(
        f"docker-registry did not answer within {_START_TIMEOUT:g}s: "
        f"{registry.log.read_text(errors='replace')[-2000:]}",
        pytrace=False,
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


class RegistryPool:
    """Every registry of a session: one test CA and server certificate, and their stop."""

    def __init__(self, directory: Path) -> None:
        self.binary = registry_binary()
        self.directory = directory
        self.ca_pem, self._cert, self._key = _write_tls_material(directory)
        self._processes: list[subprocess.Popen[bytes]] = []
        self._lock = threading.Lock()

    def start(self, *, auth: bool = True, tls: bool = True) -> Registry:
        with self._lock:
            home = self.directory / f"registry-{len(self._processes)}"
            home.mkdir()
            storage = home / "storage"
            storage.mkdir()
            username = "dssesign-" + secrets.token_hex(4)
            password = secrets.token_urlsafe(24)
            htpasswd = None
            if auth:
                htpasswd = home / "htpasswd"
                htpasswd.write_text(f"{username}:{bcrypt_hash(password)}\n")
                htpasswd.chmod(0o600)
            port = _free_port()
            config = home / "config.yml"
            config.write_text(
                _config(port, storage, (self._cert, self._key) if tls else None, htpasswd)
            )
            registry = Registry(
                host=f"127.0.0.1:{port}",
                ca_pem=self.ca_pem,
                username=username,
                password=password,
                storage=storage,
                log=home / "registry.log",
                tls=tls,
                auth=auth,
                _pool=self,
            )
            # distribution reads REGISTRY_* variables as config overrides: none of the caller's.
            environment = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
            with registry.log.open("wb") as output:
                process = subprocess.Popen(
                    [self.binary, "serve", str(config)],
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=environment,
                    cwd=home,
                )
            self._processes.append(process)
        _wait_ready(registry, process)
        return registry

    def close(self) -> None:
        with self._lock:
            processes, self._processes = self._processes, []
        for process in processes:
            _stop(process)


@pytest.fixture(scope="session", name="oci_registry")
def registry_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """The session's registry (HTTPS, htpasswd auth); `registry.make_registry(...)` for others."""
    pool = RegistryPool(tmp_path_factory.mktemp("registry"))
    try:
        yield pool.start()
    finally:
        pool.close()
