"""LocalStack's KMS for the tests: one server per test session, host mode (no Docker), 127.0.0.1.

tests/conftest.py registers this module as a plugin: a test names the `localstack` fixture.
The server runs from `.venv-localstack` (made by `bash scripts/ensure-localstack.sh`); a missing
venv is a failure naming that command, never a skip. While the fixture is active the process
environment holds test credentials and a region (the profile reads boto3's standard chain) and
points the shared AWS config files at nothing, so a developer's own AWS setup cannot leak in.

`running_localstack()` is the same server as a context manager, for the benchmarks.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
VENV_PYTHON = ROOT / ".venv-localstack" / "bin" / "python"
INSTALL = "bash scripts/ensure-localstack.sh"
REGION = "us-east-1"
#: LocalStack's fixed test account for the `test` access key.
ACCOUNT = "000000000000"
START_TIMEOUT = 90.0


class LocalStackMissing(RuntimeError):
    """`.venv-localstack` is not there; the message names the command that makes it."""


@dataclass
class LocalStack:
    host: str
    #: AWS variables for subprocesses (`dssesign` runs): test credentials and the region.
    env: dict[str, str] = field(default_factory=dict)
    log: Path | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}"

    def uri(self, key: str = "", **query: str) -> str:
        text = f"awskms://{self.host}/{key}"
        return text + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")

    def client(self) -> Any:
        """An admin boto3 KMS client (create, disable, schedule deletion) on this server."""
        import boto3

        return boto3.session.Session().client(
            "kms",
            region_name=REGION,
            endpoint_url=self.endpoint,
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
        )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def aws_env(config_dir: Path) -> dict[str, str]:
    """Test credentials and region; shared config files that do not exist; no IMDS lookups."""
    return {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(config_dir / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(config_dir / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def _healthy(host: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{host}/_localstack/health", timeout=1) as response:
            return bool(response.status == 200 and b'"kms"' in response.read())
    except (OSError, urllib.error.URLError):
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server and the children it started (its own process group)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    else:  # the leader is gone; make sure nothing it started lingers
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def running_localstack(workdir: Path) -> Iterator[LocalStack]:
    """Start LocalStack KMS on a free 127.0.0.1 port, wait until it answers, stop it after."""
    if not VENV_PYTHON.is_file():
        raise LocalStackMissing(
            f"LocalStack is not installed ({VENV_PYTHON.parent.parent.name} is missing): run "
            f"`{INSTALL}`; the AWS KMS tests need a real local KMS"
        )
    host = f"127.0.0.1:{_free_port()}"
    volume = workdir / "volume"
    volume.mkdir(parents=True, exist_ok=True)
    log = workdir / "localstack.log"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LOCALSTACK_"))},
        "DISABLE_EVENTS": "1",
        "SERVICES": "kms",
        "GATEWAY_LISTEN": host,
        "LOCALSTACK_VOLUME_DIR": str(volume),
        "LOCALSTACK_ACKNOWLEDGE_ACCOUNT_REQUIREMENT": "1",
        "SKIP_INFRA_DOWNLOADS": "1",
        # Its caches and config land here, not in the developer's home.
        "HOME": str(workdir),
    }
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(VENV_PYTHON), "-m", "localstack.runtime.main"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,
            start_new_session=True,  # its own process group: stopped with everything it starts
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _healthy(host):
            if proc.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"LocalStack exited with {proc.returncode}:\n{tail}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"LocalStack did not answer within {START_TIMEOUT:g}s")
            time.sleep(0.2)
        stack = LocalStack(host=host, env=aws_env(workdir), log=log)
        stack.client().list_keys(Limit=1)  # KMS loads lazily: pay its start-up here, once
        yield stack
    finally:
        _stop(proc)


@pytest.fixture(scope="session", name="localstack")
def localstack_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The session's LocalStack KMS; AWS test credentials are in os.environ while it runs."""
    workdir = tmp_path_factory.mktemp("localstack")
    try:
        manager = running_localstack(workdir)
        stack = manager.__enter__()
    except LocalStackMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    saved = {k: os.environ.get(k) for k in stack.env}
    saved.update({k: v for k, v in os.environ.items() if k.startswith("AWS_")})
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        del os.environ[name]  # e.g. AWS_PROFILE or AWS_ENDPOINT_URL from the developer's shell
    os.environ.update(stack.env)
    try:
        yield stack
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        manager.__exit__(None, None, None)
