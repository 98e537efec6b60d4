"""A KMS outage while `dssesign serve` runs: LocalStack's KMS behind a TCP proxy on 127.0.0.1
that can swallow everything (black hole: connections accepted, nothing ever answered).

While the KMS is gone its key fails within its timeout with 503 and /readyz says which key;
the software key in the same service keeps signing; once the KMS is back, so is the key.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from dssesign.core.keys import PublicKey
from tests.localstack import LocalStack
from tests.service import Key, Reply, RunningService, ServiceFactory, Tenant

#: The service's budget for one KMS signature; the reference's own timeout is shorter, so the
#: boto3 read timeout fires first (KMS endpoint unreachable) and MultiProfileSigner's is the
#: backstop.
KEY_TIMEOUT_S = 3.0
SLACK_S = 2.0


class BlackHoleProxy:
    """A TCP proxy on 127.0.0.1 to `upstream`; `black_hole()` makes it swallow all traffic."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port: int = self._listener.getsockname()[1]
        self._holes = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def black_hole(self) -> None:
        """From now on nothing passes, in either direction, on old or new connections."""
        self._holes.set()

    def restore(self) -> None:
        """Forward again; the connections that lived through the outage are cut."""
        self._holes.clear()
        self._drop_all()

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self._drop_all()

    def _drop_all(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._track(client)
            if self._holes.is_set():
                continue  # accepted, then never read nor answered
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                with contextlib.suppress(OSError):
                    client.close()
                continue
            server.settimeout(None)
            self._track(server)
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if self._holes.is_set():
                    continue  # swallowed
                target.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                target.shutdown(socket.SHUT_WR)


@pytest.fixture
def proxy(localstack: LocalStack) -> Iterator[BlackHoleProxy]:
    host, port = localstack.host.rsplit(":", 1)
    assert host == "127.0.0.1"
    server = BlackHoleProxy((host, int(port)))
    yield server
    server.close()


@pytest.fixture
def kms_key(localstack: LocalStack) -> tuple[str, PublicKey]:
    """A fresh ECC_NIST_P256 signing key in LocalStack: its id and public key."""
    client = localstack.client()
    key_id: str = client.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"][
        "KeyId"
    ]
    der = client.get_public_key(KeyId=key_id)["PublicKey"]
    return key_id, PublicKey.from_der(bytes(der))


def _ref(proxy: BlackHoleProxy, key_id: str) -> str:
    return f"awskms://{proxy.address}/{key_id}?timeout=1&max-attempts=1"


def _start(
    factory: ServiceFactory, proxy: BlackHoleProxy, kms_key: tuple[str, PublicKey]
) -> RunningService:
    release = factory.software_key("release", "ecdsa-p256")
    key_id, public = kms_key
    return factory(
        keys=[
            Key("kms", _ref(proxy, key_id), KEY_TIMEOUT_S),
            Key("release", str(release.path)),
        ],
        tenants=[Tenant("team-a", ["kms", "release"])],
        trusted=[public],
    )


def _sign(service: RunningService, *keys: str) -> tuple[Reply, float]:
    body = {
        "subjects": [{"name": "a.bin", "digest": {"sha256": "ab" * 32}}],
        "predicateType": "https://example.com/outage/v1",
        "predicate": {"keys": list(keys)},
        "keys": list(keys),
    }
    started = time.monotonic()
    reply = service.call("POST", "/v1/attest", body, timeout=30)
    return reply, time.monotonic() - started


def _verifies(service: RunningService, answer: dict[str, Any], directory: Path) -> None:
    """`dssesign verify` accepts the envelope with its bundles against the service's trust root."""
    directory.mkdir(parents=True, exist_ok=True)
    envelope = directory / "e.dsse.json"
    envelope.write_text(json.dumps(answer["envelope"]))
    bundles = []
    for index, bundle in enumerate(answer["bundles"]):
        bundles.append(directory / f"e.{index}.sigstore.json")
        bundles[-1].write_text(json.dumps(bundle))
    result = subprocess.run(
        [
            *(sys.executable, "-m", "dssesign", "verify"),
            *("--trust-root", str(service.trust_root), str(envelope), *map(str, bundles)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _ready(service: RunningService) -> Reply:
    return service.call("GET", "/readyz", token=None)


def test_kms_outage_mid_run(
    service_factory: ServiceFactory,
    proxy: BlackHoleProxy,
    kms_key: tuple[str, PublicKey],
    tmp_path: Path,
) -> None:
    service = _start(service_factory, proxy, kms_key)
    _, kms_public = kms_key

    # Before: both keys sign, together and alone.
    reply, _ = _sign(service, "kms", "release")
    assert reply.status == 200, reply
    assert reply.json()["keys"][0]["keyid"] == kms_public.keyid
    _verifies(service, reply.json(), tmp_path / "before")
    assert _ready(service).status == 200

    proxy.black_hole()
    with ThreadPoolExecutor(4) as pool:
        hung = [pool.submit(_sign, service, "kms") for _ in range(3)]
        # While KMS requests hang, the software key answers at once.
        for _ in range(3):
            reply, elapsed = _sign(service, "release")
            assert reply.status == 200, reply
            assert elapsed < 1.0
        for future in hung:
            reply, elapsed = future.result()
            assert reply.status == 503, reply
            assert reply.error["code"] in ("SIGNING_FAILED", "KEY_UNAVAILABLE")
            assert int(reply.headers["retry-after"]) >= 1
            assert elapsed < KEY_TIMEOUT_S + SLACK_S
    # A request that needs both keys fails as a whole: no partial envelope.
    reply, elapsed = _sign(service, "release", "kms")
    assert reply.status == 503 and elapsed < KEY_TIMEOUT_S + SLACK_S
    assert set(reply.json()) == {"error"}

    ready = _ready(service)
    assert ready.status == 503
    state = ready.json()
    assert state["ready"] is False
    assert state["keys"]["release"] == "ok"
    assert state["keys"]["kms"] != "ok" and "failed" in state["keys"]["kms"]
    metrics = service.call("GET", "/metrics", token=None).body.decode()
    assert 'dssesign_key_up{key="kms"} 0' in metrics
    assert 'dssesign_key_up{key="release"} 1' in metrics
    reply, _ = _sign(service, "release")
    assert reply.status == 200  # still, after the failures

    proxy.restore()
    reply, _ = _sign(service, "kms")
    assert reply.status == 200, reply
    _verifies(service, reply.json(), tmp_path / "after")
    ready = _ready(service)
    assert ready.status == 200, ready
    assert ready.json()["keys"] == {"kms": "ok", "release": "ok"}

    # The audit log holds each failed KMS signature, with a code and no credentials.
    records = [json.loads(line) for line in service.audit_text().splitlines()]
    failed = [r for r in records if r.get("result") == "failure"]
    assert len(failed) >= 4
    assert all(r.get("errorCode") for r in failed)
    assert "AWS_SECRET_ACCESS_KEY" not in service.audit_text()


def test_kms_down_at_start_up_does_not_stop_the_other_keys(
    service_factory: ServiceFactory,
    proxy: BlackHoleProxy,
    kms_key: tuple[str, PublicKey],
) -> None:
    proxy.black_hole()
    service = _start(service_factory, proxy, kms_key)  # fails: the process exits
    reply, _ = _sign(service, "release")
    assert reply.status == 200
    ready = _ready(service)
    assert ready.status == 503 and ready.json()["keys"]["kms"] != "ok"
    proxy.restore()
    reply, _ = _sign(service, "kms")
    assert reply.status == 200, reply
    assert base64.b64decode(reply.json()["envelope"]["payload"])
