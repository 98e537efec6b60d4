"""`ServiceClient`'s refusals that need no server: where it may send a token, and how."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dssesign.errors import ConfigError, SigningError
from dssesign.serve.client import ServiceClient

TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJjaSJ9.c2ln"


@pytest.mark.parametrize(
    "url",
    [
        "http://signer.example",
        "http://10.0.0.5:8080",
        "ftp://127.0.0.1",
        "https://u:p@signer.example",
    ],
)
def test_the_token_never_goes_in_clear_or_beside_a_password(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ServiceClient(url, TOKEN)
    assert "u:p" not in str(caught.value) and TOKEN not in str(caught.value)


@pytest.mark.parametrize(
    "url", ["https://signer.example", "http://127.0.0.1:8080", "http://[::1]:1"]
)
def test_https_and_loopback_http_are_fine(url: str) -> None:
    ServiceClient(url, TOKEN)


@pytest.mark.parametrize(
    "token", [TOKEN + "\n" + TOKEN, TOKEN + "\tx", "ä" + TOKEN, "", "x" * 9000]
)
def test_a_token_that_is_not_one_header_value_is_refused(token: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ServiceClient("http://127.0.0.1:1", token)
    assert TOKEN not in str(caught.value)


@pytest.fixture
def gzip_server() -> Iterator[str]:
    """A server that answers every request with a gzip body nobody asked for."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            body = gzip.compress(json.dumps({"envelope": {}}).encode() + b" " * 100_000)
            self.send_response(200)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_compressed_answer_is_refused_not_inflated(gzip_server: str) -> None:
    client = ServiceClient(gzip_server, TOKEN, max_retries=0)
    with pytest.raises(SigningError, match="compressed"):
        client.sign(b"hello", "text/plain", ["release"])
