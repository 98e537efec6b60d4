"""A real Redis for the tests: Debian's `redis-server` on 127.0.0.1, one per test session.

Registered as a pytest plugin (``-p tests.redis_server``, or in tests/conftest.py's
`pytest_plugins`): a test names the `redis_server` fixture; `run_redis(...)` starts more (with
a password, or to be stopped mid-test). Nothing is saved: no RDB, no AOF. A missing binary is a
failure with the command that installs it, never a skip.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

INSTALL = "apt-get install redis-server (Debian/Ubuntu)"
_START_TIMEOUT = 15.0


@dataclass
class RedisServer:
    """A running redis-server; `url` is what a client connects to."""

    port: int
    process: subprocess.Popen[bytes]
    log: Path
    password: str | None = None

    @property
    def url(self) -> str:
        """redis://127.0.0.1:PORT/0 (the password, if any, is passed apart)."""
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        """Stop the server now (for tests of an outage); stopping twice is harmless."""
        _stop(self.process)


def redis_binary() -> str:
    """The redis-server executable: /usr/bin/redis-server, or one on PATH."""
    found = "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None
    found = found or shutil.which("redis-server")
    if found is None:
        pytest.fail(
            f"redis-server is not installed: run {INSTALL}; the quota tests need a real Redis",
            pytrace=False,
        )
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on (at the moment of asking)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _ping(port: int) -> bool:
    """PING answered (+PONG, or -NOAUTH from a server that wants a password): it is up."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextmanager
def run_redis(
    tmp_path_factory: pytest.TempPathFactory,
    *,
    password: str | None = None,
    port: int | None = None,
) -> Iterator[RedisServer]:
    """Run redis-server on 127.0.0.1 (a free port unless `port`: a restart), persisting nothing,
    until the block exits."""
    binary = redis_binary()
    directory = tmp_path_factory.mktemp("redis")
    log = directory / "redis.log"
    port = port or free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
            "no", "--dir", str(directory), "--logfile", str(log)]  # fmt: skip
    if password is not None:
        argv += ["--requirepass", password]  # a throwaway test secret in argv
    process = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=directory
    )
    server = RedisServer(port=port, process=process, log=log, password=password)
    try:
        deadline = time.monotonic() + _START_TIMEOUT
        while not _ping(port):
            if process.poll() is not None:
                text = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                pytest.fail(f"redis-server exited with {process.returncode}: {text}", pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail(
                    f"redis-server did not answer within {_START_TIMEOUT:g}s", pytrace=False
                )
            time.sleep(0.05)
        yield server
    finally:
        _stop(process)


@pytest.fixture(scope="session", name="redis_server")
def redis_server_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One Redis for the whole test session, stopped at its end."""
    with run_redis(tmp_path_factory) as server:
        yield server
