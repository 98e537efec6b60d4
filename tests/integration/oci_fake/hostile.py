"""Servers that misbehave where the fake registry (tests/oci_fake.py) cannot, for
test_hostile_registry.py: a tiny HTTP/1.1 server on 127.0.0.1 whose every answer a test
function writes byte by byte, a local CA for TLS, and a switch that puts the fake on TLS.

Everything listens on 127.0.0.1 only; nothing here is a registry, only what a hostile one (or
a host it redirects to) could send.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests import oci_fake

Answer = Callable[[BaseHTTPRequestHandler], None]


def reply(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: bytes = b"",
    headers: Iterable[tuple[str, str]] = (),
) -> None:
    """Answer `status` with `headers` (as given, not checked) and `body` (Content-Length)."""
    handler.send_response(status)
    for name, value in headers:
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)


class HostileServer:
    """HTTP/1.1 on 127.0.0.1 (a free port); `answer(handler)` writes each response.

    `requests` holds `(method, path with query, headers with lower-case names)` per request.
    Use as a context manager.
    """

    def __init__(self, answer: Answer) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def handle(self) -> None:
                with contextlib.suppress(OSError):  # the client hung up: often the point
                    super().handle()

            def do_GET(self) -> None:
                headers = {name.lower(): value for name, value in self.headers.items()}
                outer.requests.append((self.command, self.path, headers))
                length = self.headers.get("Content-Length")
                if length and length.isdigit():
                    self.rfile.read(int(length))
                answer(self)

            do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = do_GET

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        """`127.0.0.1:<port>`."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>`."""
        return f"http://{self.host}"

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@dataclass(frozen=True)
class LocalTLS:
    """A throwaway CA (its PEM file, for SSL_CERT_FILE) and a server context for 127.0.0.1."""

    ca_file: Path
    server_context: ssl.SSLContext


def make_local_tls(directory: Path) -> LocalTLS:
    """A P-256 CA and a leaf for IP 127.0.0.1 it issued, valid for a day either side of now."""
    now = datetime.datetime.now(datetime.UTC)
    span = {
        "not_valid_before": now - datetime.timedelta(days=1),
        "not_valid_after": now + datetime.timedelta(days=1),
    }
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dssesign hostile test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(span["not_valid_before"])
        .not_valid_after(span["not_valid_after"])
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(span["not_valid_before"])
        .not_valid_after(span["not_valid_after"])
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain = directory / "server.pem"
    chain.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file = directory / "server.key"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain, key_file)
    return LocalTLS(ca_file, context)


def fake_registry_over_tls(monkeypatch: pytest.MonkeyPatch, context: ssl.SSLContext) -> list[bytes]:
    """Make every FakeRegistry started from now on (until the test ends) speak TLS.

    A connection whose first byte is a TLS handshake is wrapped; any other is served as plain
    HTTP, as before, and its first bytes are recorded in the list returned: a client that
    should never speak cleartext to the registry leaves it empty.
    """
    plaintext: list[bytes] = []
    original = oci_fake._Server.get_request

    def get_request(server: oci_fake._Server) -> tuple[socket.socket, Any]:
        connection, address = original(server)
        first = connection.recv(1, socket.MSG_PEEK)
        if first == b"\x16":
            connection = context.wrap_socket(connection, server_side=True)
            server.connections.add(connection)
        elif first:
            plaintext.append(connection.recv(65536, socket.MSG_PEEK))
        return connection, address

    monkeypatch.setattr(oci_fake._Server, "get_request", get_request)
    return plaintext
