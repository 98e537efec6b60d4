"""A fake OCI registry, in process, for testing a registry client's referrers-API path.

The real registry of the tests (Debian's docker-registry, distribution 2.8) has no referrers
API; this fake has one, plus the faults a client must survive. It follows the OCI Distribution
Specification v1.1 (opencontainers/distribution-spec `spec.md` at v1.1.1, commit a139cc42;
the examples and the text relied on are copied into fixtures/oci/, see its README):

- "Pushing Manifests with Subject": a manifest PUT with a `subject` is answered with
  `OCI-Subject: <subject digest>` (not when `referrers=False`, like distribution 2.8);
- "Listing Referrers": `GET /v2/<name>/referrers/<digest>[?artifactType=...]` answers 200 with
  an image index of the descriptors of the manifests whose `subject` is `<digest>` (each with
  `artifactType`: the manifest's, else its config `mediaType`, none for an index; and its
  annotations), an empty list when there are none, `OCI-Filters-Applied: artifactType` when it
  filtered, a `Link: <...>; rel="next"` header past `page_size` entries, 400 for a malformed
  digest; with `referrers=False` it answers `404 page not found` as distribution 2.8 does;
- pulling and pushing blobs (POST then PUT, single POST, chunked PATCH, cross-repository mount)
  and manifests (exact bytes and Content-Type kept, `Docker-Content-Digest`), tag listing, and
  the spec's JSON error bodies (`{"errors": [{"code": "MANIFEST_UNKNOWN", ...}]}`).

Authentication (`auth="basic"` or `"bearer"`, with a token endpoint `GET /token`) follows what
docker registries do (the distribution token-auth flow), which the OCI spec leaves out of scope.

The server is a ThreadingHTTPServer on 127.0.0.1 (a free port), plain HTTP: clients use it in
their "insecure" mode. Every knob is a plain attribute a test sets at any time (see
`FakeRegistry`); `requests` records every request. The `fake_registry` fixture (function scope)
starts one; tests/conftest.py registers this module as a plugin.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import secrets
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar"
EMPTY = "application/vnd.oci.empty.v1+json"
MIB = 1 << 20
#: How an oversize manifest is framed: a truthful Content-Length, chunked, or ended by close.
Framing = Literal["length", "chunked", "close"]

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_ROUTE = re.compile(
    rf"^/v2/(?P<name>{_COMPONENT}(?:/{_COMPONENT})*)/(?P<kind>manifests|blobs|referrers|tags)/"
    r"(?P<rest>.*)$"
)
_DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
_TAG = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
_SHA256 = re.compile(rb"sha256:[0-9a-f]{64}")
_ERROR_CODES = {401: "UNAUTHORIZED", 403: "DENIED", 404: "NAME_UNKNOWN", 429: "TOOMANYREQUESTS"}


def sha256_digest(data: bytes) -> str:
    """The OCI digest (`sha256:<hex>`) of `data`."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tamper_blob(data: bytes) -> bytes:
    """Other bytes of the same length (the last bit flipped); one byte when `data` is empty."""
    return data[:-1] + bytes([data[-1] ^ 1]) if data else b"\0"


def tamper_manifest(body: bytes) -> bytes:
    """Other bytes of the same length that are still JSON: the last hex digit of the last
    `sha256:` digest in the manifest changed (a swapped layer); else a space appended."""
    found = list(_SHA256.finditer(body))
    if not found:
        return body + b" "
    end = found[-1].end() - 1
    return body[:end] + (b"1" if body[end : end + 1] == b"0" else b"0") + body[end + 1 :]


def _platform(platform: str) -> dict[str, str]:
    """`os/arch[/variant]` as the `os`, `architecture` (and `variant`) of a config or index."""
    os_name, architecture, *variant = platform.split("/")
    return {"architecture": architecture, "os": os_name} | (
        {"variant": variant[0]} if variant else {}
    )


@dataclass
class Repository:
    """One repository's content: blobs by digest, manifests by digest, tags."""

    blobs: dict[str, bytes] = field(default_factory=dict)
    #: digest -> (the exact bytes pushed, the Content-Type they were pushed with)
    manifests: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


class FakeRegistry:
    """An OCI v1.1 registry with the referrers API, on 127.0.0.1, with fault injection.

    Use as a context manager (or `start()` / `stop()`). Knobs, all plain attributes:

    - `auth`: None, `"basic"` (401 `Basic realm="fake"` without `credentials`) or `"bearer"`
      (401 `Bearer realm="<url>/token",service="fake"[,scope="repository:<name>:<actions>"]`;
      `GET /token` checks the basic `credentials` and returns `{"token", "access_token"}`;
      with `credentials=None` it issues tokens to anyone);
    - `referrers`: False answers the referrers API with 404 and omits `OCI-Subject`, like
      distribution 2.8; `page_size`: referrers per page; `apply_filters`: False ignores
      `?artifactType=` (allowed: the spec says SHOULD) and omits `OCI-Filters-Applied`;
    - `tamper_blobs` / `tamper_manifests`: digests served with other bytes (same length) under
      the same `Docker-Content-Digest`;
    - `oversize_manifest`: every manifest GET serves the manifest padded with spaces to
      `oversize_bytes`, framed per `oversize_framing`: `"length"` (a truthful Content-Length),
      `"chunked"` (Transfer-Encoding: chunked) or `"close"` (no length, ends at close);
    - `status_override`: request path prefix -> status (e.g. `{"/v2/": 503}`, `{"/token": 401}`)
      answered before anything else; `slow`: seconds to sleep before each answer;
    - `lie_subject`: referrers listings also carry manifests whose subject is another digest (a
      copy of a genuine referrer with another subject is stored when the repository has none);
    - `redirect_blobs`: a blob GET answers 307 to `http://<redirect_host>:<port>/_blobstore/...`
      (same server, no authentication needed, like a presigned S3 URL); `redirect_host`
      `"localhost"` makes it another host for the client's Authorization-forwarding rule;
    - `max_manifest_bytes`: larger manifest pushes get 413.

    `requests` holds `(method, path with query, headers with lower-case names)` per request.
    """

    def __init__(
        self,
        *,
        auth: Literal["basic", "bearer"] | None = None,
        credentials: tuple[str, str] | None = ("fakeuser", "fakepass"),
        referrers: bool = True,
        page_size: int = 50,
    ) -> None:
        self.auth = auth
        self.credentials = credentials
        self.referrers = referrers
        self.page_size = page_size
        self.apply_filters = True
        self.tamper_blobs: set[str] = set()
        self.tamper_manifests: set[str] = set()
        self.oversize_manifest = False
        self.oversize_bytes = 5 * MIB
        self.oversize_framing: Framing = "length"
        self.status_override: dict[str, int] = {}
        self.lie_subject = False
        self.redirect_blobs = False
        self.redirect_host = "127.0.0.1"
        self.slow = 0.0
        self.max_manifest_bytes = 4 * MIB
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.repositories: dict[str, Repository] = {}
        self.tokens: set[str] = set()
        self._uploads: dict[str, tuple[str, bytearray]] = {}
        self._lock = threading.RLock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FakeRegistry:
        """Listen on a free port of 127.0.0.1 and serve from a daemon thread."""
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-oci-registry-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            for connection in list(self._server.connections):
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> FakeRegistry:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port it listens on (after `start()`)."""
        if self._server is None:
            raise RuntimeError("the fake registry is not started")
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        """`127.0.0.1:<port>`: the registry part of an image reference."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>`."""
        return f"http://{self.host}"

    def repo(self, name: str) -> Repository:
        """The repository `name`, created empty when missing."""
        with self._lock:
            return self.repositories.setdefault(name, Repository())

    def put_blob(self, repo: str, data: bytes) -> str:
        """Store a blob; return its digest."""
        digest = sha256_digest(data)
        self.repo(repo).blobs[digest] = data
        return digest

    def put_manifest(
        self,
        repo: str,
        manifest: bytes | Mapping[str, Any],
        media_type: str | None = None,
        tag: str | None = None,
    ) -> str:
        """Store a manifest (its exact bytes, or a mapping as JSON); return its digest."""
        body = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
        if media_type is None:
            media_type = str(json.loads(body).get("mediaType") or MANIFEST)
        digest = sha256_digest(body)
        storage = self.repo(repo)
        with self._lock:
            storage.manifests[digest] = (body, media_type)
            if tag is not None:
                storage.tags[tag] = digest
        return digest

    def descriptor(self, repo: str, digest: str) -> dict[str, Any]:
        """`{mediaType, digest, size}` of a stored manifest (an image manifest of size 0 when
        it is not stored: the spec lets a referrer be pushed before its subject)."""
        body, media_type = self.repo(repo).manifests.get(digest, (b"", MANIFEST))
        return {"mediaType": media_type, "digest": digest, "size": len(body)}

    def _blob_descriptor(self, repo: str, data: bytes, media_type: str) -> dict[str, Any]:
        return {"mediaType": media_type, "digest": self.put_blob(repo, data), "size": len(data)}

    def push_image(
        self, repo: str, tag: str | None = None, *, platform: str = "linux/amd64"
    ) -> str:
        """Store a random small image (a config blob, one layer, an OCI manifest); return the
        manifest digest. The layer is random bytes, not a real tar."""
        layer = secrets.token_bytes(64)
        config = {
            **_platform(platform),
            "rootfs": {"type": "layers", "diff_ids": [sha256_digest(layer)]},
        }
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": self._blob_descriptor(repo, json.dumps(config).encode(), CONFIG),
            "layers": [self._blob_descriptor(repo, layer, LAYER)],
        }
        return self.put_manifest(repo, manifest, tag=tag)

    def push_index(
        self, repo: str, platforms: Sequence[str], tag: str | None = None
    ) -> tuple[str, dict[str, str]]:
        """Store one image per `os/arch[/variant]` platform and an OCI index of them; return
        the index digest and the image digest per platform."""
        images = {platform: self.push_image(repo, platform=platform) for platform in platforms}
        entries = [
            {**self.descriptor(repo, digest), "platform": _platform(platform)}
            for platform, digest in images.items()
        ]
        index = {"schemaVersion": 2, "mediaType": INDEX, "manifests": entries}
        return self.put_manifest(repo, index, tag=tag), images

    def push_artifact(
        self,
        repo: str,
        subject: str,
        artifact_type: str | None = "application/vnd.example.artifact",
        *,
        annotations: Mapping[str, str] | None = None,
        payload: bytes = b"fake artifact",
        payload_media_type: str = "application/octet-stream",
        config_media_type: str = EMPTY,
        tag: str | None = None,
    ) -> str:
        """Store an OCI artifact manifest (config: `{}` of `config_media_type`, one layer of
        `payload`) with `subject` the manifest `subject`; return its digest."""
        manifest: dict[str, Any] = {"schemaVersion": 2, "mediaType": MANIFEST}
        if artifact_type is not None:
            manifest["artifactType"] = artifact_type
        manifest["config"] = self._blob_descriptor(repo, b"{}", config_media_type)
        manifest["layers"] = [self._blob_descriptor(repo, payload, payload_media_type)]
        manifest["subject"] = self.descriptor(repo, subject)
        if annotations:
            manifest["annotations"] = dict(annotations)
        return self.put_manifest(repo, manifest, tag=tag)

    def _subjects(self, repo: str) -> list[tuple[str, str, dict[str, Any]]]:
        """(subject digest, manifest digest, referrer descriptor) of every stored manifest
        with a subject, in push order."""
        found = []
        with self._lock:
            stored = list(self.repo(repo).manifests.items())
        for digest, (body, content_type) in stored:
            try:
                document = json.loads(body)
                subject = document["subject"]["digest"]
            except (ValueError, TypeError, KeyError):
                continue
            if not isinstance(subject, str):
                continue
            media_type = document.get("mediaType") or content_type
            entry: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": len(body)}
            artifact_type = document.get("artifactType")
            if not artifact_type and media_type != INDEX:
                artifact_type = (document.get("config") or {}).get("mediaType")
            if artifact_type:
                entry["artifactType"] = artifact_type
            if document.get("annotations"):
                entry["annotations"] = document["annotations"]
            found.append((subject, digest, entry))
        return found

    def referrers_of(self, repo: str, digest: str) -> list[dict[str, Any]]:
        """The descriptors the referrers API lists for `digest` (before filter and paging)."""
        subjects = self._subjects(repo)
        listed = [entry for subject, _, entry in subjects if subject == digest]
        if not self.lie_subject:
            return listed
        decoys = [entry for subject, _, entry in subjects if subject != digest]
        if not decoys:
            self._store_decoy(repo, digest, subjects)
            decoys = [entry for subject, _, entry in self._subjects(repo) if subject != digest]
        return listed + decoys

    def _store_decoy(
        self, repo: str, digest: str, subjects: list[tuple[str, str, dict[str, Any]]]
    ) -> None:
        other = sha256_digest(secrets.token_bytes(16))
        genuine = [manifest for subject, manifest, _ in subjects if subject == digest]
        if not genuine:
            self.push_artifact(repo, other)
            return
        body, media_type = self.repo(repo).manifests[genuine[0]]
        document = json.loads(body)
        document["subject"] = {"mediaType": MANIFEST, "digest": other, "size": 0}
        self.put_manifest(repo, document, media_type)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, registry: FakeRegistry) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.registry = registry
        self.connections: set[socket.socket] = set()  # closed by stop(), even kept-alive ones

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        self.connections.add(connection)
        return connection, address

    def shutdown_request(self, request: Any) -> None:
        self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-request (a refused body, a closed connection) is what
        # several tests do on purpose: not worth a traceback on stderr. Anything else is.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch()

    do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = do_GET

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self,
        status: int,
        body: bytes = b"",
        headers: Mapping[str, str] = {},
        framing: Framing = "length",
    ) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        if framing == "length":
            self.send_header("Content-Length", str(len(body)))
        elif framing == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
        else:  # no length: the body ends when the connection closes
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command == "HEAD":
            return
        if framing != "chunked":
            self.wfile.write(body)
            return
        for start in range(0, len(body), 64 * 1024):
            chunk = body[start : start + 64 * 1024]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.wfile.write(b"0\r\n\r\n")

    def _json(self, status: int, value: Any, headers: Mapping[str, str] = {}) -> None:
        content_type = {"Content-Type": "application/json"}
        self._send(status, json.dumps(value).encode(), {**content_type, **headers})

    def _error(self, status: int, code: str, message: str, headers: Mapping[str, str] = {}) -> None:
        self._json(status, {"errors": [{"code": code, "message": message}]}, headers)

    def _challenge(self, name: str | None) -> str:
        registry = self.server.registry
        if registry.auth != "bearer":
            return 'Basic realm="fake"'
        challenge = f'Bearer realm="{registry.url}/token",service="fake"'
        if name is not None:
            actions = "pull" if self.command in ("GET", "HEAD") else "pull,push"
            challenge += f',scope="repository:{name}:{actions}"'
        return challenge

    def _basic_ok(self) -> bool:
        credentials = self.server.registry.credentials
        if credentials is None:
            return False
        expected = base64.b64encode(":".join(credentials).encode()).decode()
        scheme, _, value = self.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "basic" and secrets.compare_digest(value.strip(), expected)

    def _authorized(self, name: str | None) -> bool:
        registry = self.server.registry
        if registry.auth is None:
            return True
        if registry.auth == "basic":
            if self._basic_ok():
                return True
        else:
            scheme, _, token = self.headers.get("Authorization", "").partition(" ")
            if scheme.lower() == "bearer" and token.strip() in registry.tokens:
                return True
        challenge = {"WWW-Authenticate": self._challenge(name)}
        self._error(401, "UNAUTHORIZED", "authentication required", challenge)
        return False

    def _dispatch(self) -> None:
        registry = self.server.registry
        headers = {name.lower(): value for name, value in self.headers.items()}
        with registry._lock:
            registry.requests.append((self.command, self.path, headers))
        try:
            body = self._read_body()
            if registry.slow:
                time.sleep(registry.slow)
            self._route(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client hung up (e.g. stopped reading a body)

    def _route(self, body: bytes) -> None:
        registry = self.server.registry
        split = urlsplit(self.path)
        path, query = split.path, {k: v[-1] for k, v in parse_qs(split.query).items()}
        match = _ROUTE.match(path)
        name = match["name"] if match else None
        for prefix, status in registry.status_override.items():
            if path.startswith(prefix):
                return self._injected(status, name)
        if path == "/token" and self.command == "GET":
            return self._token()
        if path.startswith("/_blobstore/") and self.command in ("GET", "HEAD"):
            return self._serve_blob(path.removeprefix("/_blobstore/"), None)
        if not path.startswith("/v2/"):
            return self._error(404, "NAME_UNKNOWN", f"no route {path}")
        if not self._authorized(name):
            return None
        if path == "/v2/" and self.command in ("GET", "HEAD"):
            return self._json(200, {})
        if match is None:
            return self._error(404, "NAME_UNKNOWN", f"no route {path}")
        kind, rest, method = match["kind"], match["rest"], self.command
        assert name is not None
        if kind == "blobs" and rest in ("uploads/", "uploads") and method == "POST":
            return self._start_upload(name, query, body)
        if kind == "blobs" and rest.startswith("uploads/") and method in ("PATCH", "PUT"):
            return self._continue_upload(name, rest.removeprefix("uploads/"), query, body)
        if kind == "blobs" and method in ("GET", "HEAD"):
            return self._serve_blob(rest, name)
        if kind == "manifests" and method == "PUT":
            return self._put_manifest(name, rest, body)
        if kind == "manifests" and method in ("GET", "HEAD"):
            return self._get_manifest(name, rest)
        if kind == "referrers" and method == "GET":
            return self._referrers(name, rest, query)
        if kind == "tags" and rest == "list" and method == "GET":
            tags = sorted(registry.repo(name).tags)
            return self._json(200, {"name": name, "tags": tags})
        return self._error(405, "UNSUPPORTED", f"{method} {path} is not supported")

    def _injected(self, status: int, name: str | None) -> None:
        if status >= 500:
            message = f"fake registry: injected {status}\n".encode()
            return self._send(status, message, {"Content-Type": "text/plain"})
        extra = {"WWW-Authenticate": self._challenge(name)} if status == 401 else {}
        code = _ERROR_CODES.get(status, "UNSUPPORTED")
        return self._error(status, code, f"injected {status}", extra)

    def _token(self) -> None:
        registry = self.server.registry
        if registry.credentials is not None and not self._basic_ok():
            challenge = {"WWW-Authenticate": 'Basic realm="fake"'}
            return self._error(401, "UNAUTHORIZED", "bad credentials", challenge)
        token = secrets.token_urlsafe(24)
        registry.tokens.add(token)
        issued = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        answer = {"token": token, "access_token": token, "expires_in": 300, "issued_at": issued}
        return self._json(200, answer)

    def _store_blob(self, name: str, digest: str, data: bytes) -> None:
        if digest != sha256_digest(data):
            return self._error(400, "DIGEST_INVALID", f"content does not match {digest}")
        self.server.registry.repo(name).blobs[digest] = data
        location = {"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest}
        return self._send(201, b"", location)

    def _start_upload(self, name: str, query: dict[str, str], body: bytes) -> None:
        registry = self.server.registry
        mount, source = query.get("mount"), query.get("from")
        if mount and source and mount in registry.repo(source).blobs:
            return self._store_blob(name, mount, registry.repo(source).blobs[mount])
        if "digest" in query:  # single POST
            return self._store_blob(name, query["digest"], body)
        session = str(uuid.uuid4())
        with registry._lock:
            registry._uploads[session] = (name, bytearray(body))
        return self._upload_status(name, session, len(body))

    def _upload_status(self, name: str, session: str, size: int) -> None:
        headers = {
            "Location": f"/v2/{name}/blobs/uploads/{session}",
            "Docker-Upload-UUID": session,
            "Range": f"0-{max(size - 1, 0)}",
        }
        return self._send(202, b"", headers)

    def _continue_upload(self, name: str, session: str, query: dict[str, str], body: bytes) -> None:
        registry = self.server.registry
        with registry._lock:
            upload = registry._uploads.get(session)
            if upload is None or upload[0] != name:
                return self._error(404, "BLOB_UPLOAD_UNKNOWN", f"no upload {session}")
            upload[1].extend(body)
            if self.command == "PATCH":
                return self._upload_status(name, session, len(upload[1]))
            del registry._uploads[session]
        if "digest" not in query:
            return self._error(400, "DIGEST_INVALID", "PUT without ?digest=")
        return self._store_blob(name, query["digest"], bytes(upload[1]))

    def _serve_blob(self, digest: str, name: str | None) -> None:
        registry = self.server.registry
        with registry._lock:
            if name is None:  # the redirect target: any repository's blob
                found = [
                    r.blobs[digest] for r in registry.repositories.values() if digest in r.blobs
                ]
                data = found[0] if found else None
            else:
                data = registry.repo(name).blobs.get(digest)
        if data is None:
            return self._error(404, "BLOB_UNKNOWN", f"blob {digest} unknown")
        if name is not None and registry.redirect_blobs and self.command == "GET":
            target = f"http://{registry.redirect_host}:{registry.port}/_blobstore/{digest}"
            signature = secrets.token_hex(8)
            return self._send(307, b"", {"Location": f"{target}?X-Amz-Signature={signature}"})
        if digest in registry.tamper_blobs:
            data = tamper_blob(data)
        headers = {"Content-Type": "application/octet-stream", "Docker-Content-Digest": digest}
        return self._send(200, data, headers)

    def _put_manifest(self, name: str, reference: str, body: bytes) -> None:
        registry = self.server.registry
        if len(body) > registry.max_manifest_bytes:
            return self._error(413, "SIZE_INVALID", "manifest too large")
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        if not isinstance(document, dict):
            return self._error(400, "MANIFEST_INVALID", "not a JSON object")
        digest = sha256_digest(body)
        by_digest = _DIGEST.match(reference) is not None
        if by_digest and reference != digest:
            return self._error(400, "DIGEST_INVALID", f"manifest digest is {digest}")
        if not by_digest and not _TAG.match(reference):
            return self._error(400, "MANIFEST_INVALID", f"bad tag {reference!r}")
        content_type = self.headers.get("Content-Type") or document.get("mediaType") or MANIFEST
        media_type = content_type.split(";")[0].strip()
        registry.put_manifest(name, body, media_type, None if by_digest else reference)
        headers = {"Location": f"/v2/{name}/manifests/{digest}", "Docker-Content-Digest": digest}
        subject = document.get("subject")
        if (
            registry.referrers
            and isinstance(subject, dict)
            and isinstance(subject.get("digest"), str)
        ):
            headers["OCI-Subject"] = subject["digest"]
        return self._send(201, b"", headers)

    def _get_manifest(self, name: str, reference: str) -> None:
        registry = self.server.registry
        storage = registry.repo(name)
        with registry._lock:
            digest = reference if _DIGEST.match(reference) else storage.tags.get(reference, "")
            stored = storage.manifests.get(digest)
        if stored is None:
            return self._error(404, "MANIFEST_UNKNOWN", f"manifest {reference} unknown")
        body, media_type = stored
        if digest in registry.tamper_manifests:
            body = tamper_manifest(body)
        headers = {"Content-Type": media_type, "Docker-Content-Digest": digest}
        if registry.oversize_manifest and self.command == "GET":
            body += b" " * max(registry.oversize_bytes - len(body), 1)
            return self._send(200, body, headers, registry.oversize_framing)
        return self._send(200, body, headers)

    def _referrers(self, name: str, digest: str, query: dict[str, str]) -> None:
        registry = self.server.registry
        if not registry.referrers:  # distribution 2.8: no such route
            not_found = {"Content-Type": "text/plain; charset=utf-8"}
            return self._send(404, b"404 page not found\n", not_found)
        if not _DIGEST.match(digest):
            return self._error(400, "DIGEST_INVALID", f"bad digest {digest!r}")
        entries = registry.referrers_of(name, digest)
        headers = {"Content-Type": INDEX}
        artifact_type = query.get("artifactType")
        if artifact_type is not None and registry.apply_filters:
            entries = [entry for entry in entries if entry.get("artifactType") == artifact_type]
            headers["OCI-Filters-Applied"] = "artifactType"
        start = int(query.get("cursor", "0") or 0)
        size = max(registry.page_size, 1)
        if start + size < len(entries):
            params = {"artifactType": artifact_type} if artifact_type is not None else {}
            params["cursor"] = str(start + size)
            headers["Link"] = f'</v2/{name}/referrers/{digest}?{urlencode(params)}>; rel="next"'
        index = {"schemaVersion": 2, "mediaType": INDEX, "manifests": entries[start : start + size]}
        return self._send(200, json.dumps(index).encode(), headers)


@pytest.fixture
def fake_registry() -> Iterator[FakeRegistry]:
    """A started `FakeRegistry` (no auth, referrers API on), stopped after the test."""
    with FakeRegistry() as registry:
        yield registry
