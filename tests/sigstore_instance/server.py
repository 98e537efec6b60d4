"""Loopback HTTP front for the test Fulcio and Rekor (one port, the paths the real services use)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives import serialization

from .fulcio import Fulcio, FulcioError
from .rekor import RekorError, TransparencyLog

_MAX_BODY = 1 << 20


class _HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class SigstoreServer:
    """Serves Fulcio `/api/v2/...` and Rekor `/api/v1/...` on 127.0.0.1, on a free port."""

    def __init__(self, fulcio: Fulcio, rekor: TransparencyLog) -> None:
        self.fulcio = fulcio
        self.rekor = rekor
        handler = _handler_for(self)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="sigstore-instance", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join(5)
        self._httpd.server_close()

    def route(
        self, method: str, path: str, headers: dict[str, str], body: object
    ) -> tuple[int, Any]:
        """(status, JSON-able answer or text) for one request."""
        path = path.split("?", 1)[0].rstrip("/")
        try:
            if method == "POST" and path == "/api/v2/signingCert":
                return 201, self.fulcio.signing_cert(headers.get("authorization"), body)
            if method == "GET" and path == "/api/v2/trustBundle":
                return 200, self.fulcio.trust_bundle()
            if method == "POST" and path == "/api/v1/log/entries":
                return 201, self.rekor.add(body)
            if method == "GET" and path == "/api/v1/log":
                return 200, self.rekor.info()
            if method == "GET" and path == "/api/v1/log/publicKey":
                return 200, self.rekor.public_key.public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                ).decode()
            if method == "GET" and path.startswith("/api/v1/log/entries/"):
                return 200, self.rekor.get(path.rsplit("/", 1)[1])
        except (FulcioError, RekorError) as exc:
            return exc.status, {"code": exc.status, "message": str(exc)}
        return 404, {"code": 404, "message": f"no route for {method} {path}"}


def _handler_for(server: SigstoreServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._answer(*server.route("GET", self.path, self._headers(), None))

        def do_POST(self) -> None:
            try:
                body = self._json_body()
            except _HTTPError as exc:
                self._answer(exc.status, {"code": exc.status, "message": str(exc)})
                return
            self._answer(*server.route("POST", self.path, self._headers(), body))

        def _headers(self) -> dict[str, str]:
            return {name.lower(): value for name, value in self.headers.items()}

        def _json_body(self) -> object:
            length = int(self.headers.get("Content-Length") or 0)
            if length > _MAX_BODY:
                raise _HTTPError(413, "request too large")
            try:
                return json.loads(self.rfile.read(length) or b"null")
            except ValueError:
                raise _HTTPError(400, "request body is not JSON") from None

        def _answer(self, status: int, answer: object) -> None:
            if isinstance(answer, str):
                data, content_type = answer.encode(), "text/plain"
            else:
                data, content_type = json.dumps(answer).encode(), "application/json"
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean (and never echo request headers)

    return Handler
