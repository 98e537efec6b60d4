"""`dssesign serve` for the tests: a real server process on 127.0.0.1 with its own config and JWKS.

Registered as a pytest plugin (``-p tests.service``, or in tests/conftest.py's
`pytest_plugins`): a test names the `service_factory` fixture and calls it with the keys,
tenants and limits it needs; every service it started is stopped at the test's end. A module
that wants one server for all its tests uses `module_service_factory` (module scope):

    @pytest.fixture(scope="module")
    def service(module_service_factory: ServiceFactory) -> RunningService:
        return module_service_factory(limits={"max_body_bytes": 1024})

Each service gets a fresh JWKS with three keys (kid ``k-es`` ES256, ``k-rs`` RS256, ``k-ed``
EdDSA) whose private halves stay here: `RunningService.token(**claims)` mints a token, by
default a valid one for tenant ``team-a`` with every scope. `RunningService.call` speaks HTTP
with http.client (no retries, no redirects), so a test sees exactly what the server answered.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.client import HTTPConnection
from pathlib import Path
from typing import Any, NamedTuple

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from dssesign.core.keys import PublicKey
from dssesign.profiles.software import SoftwareSigner, generate, write_keypair
from dssesign.trust import Policy, TrustedKey, TrustRoot
from dssesign.trust.document import save_trust_root

ISSUER = "https://issuer.test.example"
AUDIENCE = "dssesign-test"
SUBJECT = "ci@example.com"
TENANT = "team-a"
ALL_SCOPES = "signer.sign signer.verify signer.keys"
#: JWT algorithm -> the kid of the JWKS key that verifies it.
KIDS = {"ES256": "k-es", "RS256": "k-rs", "EdDSA": "k-ed"}
_START_TIMEOUT = 30.0
_UNSET: Any = object()
_dumps = json.dumps  # `call` has a parameter named json

TokenKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


class Key(NamedTuple):
    """A `[[keys]]` entry: its name, its reference and its timeout."""

    name: str
    ref: str
    timeout_s: float = 5.0
    #: The environment variable holding its passphrase (give its value in the factory's env).
    password_env: str | None = None


class Tenant(NamedTuple):
    """A `[[tenants]]` entry."""

    name: str
    keys: Sequence[str]
    rate_per_minute: int = 6000


class Reply(NamedTuple):
    """What the server answered: status, headers (lower-case names), the raw body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error(self) -> dict[str, Any]:
        """The `{"error": {...}}` object of a refusal."""
        document = self.json()
        assert isinstance(document, dict) and set(document) == {"error"}, document
        error: dict[str, Any] = document["error"]
        return error


@dataclass(frozen=True)
class SoftwareKey:
    """A key file made by `ServiceFactory.software_key` (its public key is in the trust root)."""

    path: Path
    signer: SoftwareSigner

    @property
    def public_key(self) -> PublicKey:
        return self.signer.public_key

    @property
    def keyid(self) -> str:
        return self.signer.keyid


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _jwk(kid: str, key: TokenKey) -> dict[str, Any]:
    public = key.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        text = ECAlgorithm.to_jwk(public)
    elif isinstance(public, rsa.RSAPublicKey):
        text = RSAAlgorithm.to_jwk(public)
    else:
        text = OKPAlgorithm.to_jwk(public)
    document: dict[str, Any] = json.loads(text)
    return {**document, "kid": kid, "use": "sig"}


@dataclass
class RunningService:
    """One `dssesign serve` process, with the private halves of its JWKS."""

    url: str
    port: int
    directory: Path
    config: Path
    audit_log: Path
    trust_root: Path
    log: Path
    process: subprocess.Popen[bytes]
    #: kid -> the private key whose public half the JWKS holds under that kid.
    token_keys: dict[str, TokenKey]
    jwks: dict[str, Any]
    issuer: str = ISSUER
    audience: str = AUDIENCE
    minted: list[str] = field(default_factory=list)
    #: /v1 requests sent through `call` (each is one audit record once answered).
    v1_calls: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # --- tokens ---------------------------------------------------------------------------------

    def token(
        self,
        *,
        alg: str = "ES256",
        key: TokenKey | None = None,
        kid: str | None = _UNSET,
        headers: Mapping[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """A JWT: valid by default; a claim given as None is left out, others override.

        `alg` picks the JWKS key (ES256 k-es, RS256 k-rs, EdDSA k-ed); `key` signs with another
        private key (the kid stays the JWKS one unless `kid` says otherwise; kid=None: no kid).
        """
        body = self.claims(**claims)
        chosen = KIDS.get(alg, "k-es") if kid is _UNSET else kid
        header: dict[str, Any] = dict(headers or {})
        if chosen is not None:
            header["kid"] = chosen
        signing_key = key if key is not None else self.token_keys[KIDS.get(alg, "k-es")]
        token = jwt.encode(body, signing_key, algorithm=alg, headers=header)
        self.minted.append(token)
        return token

    def forge(self, header: Mapping[str, Any], claims: Mapping[str, Any], signature: bytes) -> str:
        """A token assembled by hand (for what PyJWT refuses to make: alg none, HMAC...)."""
        parts = [
            _b64url(json.dumps(dict(header), separators=(",", ":")).encode()),
            _b64url(json.dumps(dict(claims), separators=(",", ":")).encode()),
        ]
        token = ".".join([*parts, _b64url(signature)])
        self.minted.append(token)
        return token

    def claims(self, **overrides: Any) -> dict[str, Any]:
        """The default claims of `token`, with `overrides` (None drops a claim)."""
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": SUBJECT,
            "tenant": TENANT,
            "scope": ALL_SCOPES,
            "iat": now,
            "exp": now + 300,
            **overrides,
        }
        return {name: value for name, value in body.items() if value is not None}

    # --- HTTP -----------------------------------------------------------------------------------

    def call(
        self,
        method: str,
        path: str,
        json: Any = None,
        *,
        token: str | None = _UNSET,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        timeout: float = 30.0,
    ) -> Reply:
        """One request on a fresh connection. `token`: default a valid one; None: no header."""
        if token is _UNSET:
            token = self.token()
        sent: dict[str, str] = {}
        data = body
        if json is not None:
            data = _dumps(json).encode()
            sent["Content-Type"] = "application/json"
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        sent.update(headers or {})
        if path.startswith("/v1/"):
            with self._lock:
                self.v1_calls += 1
        connection = HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path, body=data, headers=sent)
            response = connection.getresponse()
            raw = response.read()
            answer = {name.lower(): value for name, value in response.getheaders()}
            return Reply(response.status, answer, raw)
        finally:
            connection.close()

    # --- audit ----------------------------------------------------------------------------------

    def audit_text(self) -> str:
        return self.audit_log.read_text() if self.audit_log.exists() else ""

    def request_records(self) -> list[dict[str, Any]]:
        """The audit log's records of requests (one per /v1 request), oldest first."""
        records = []
        for line in self.audit_text().splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and record.get("event") == "request":
                    records.append(record)
        return records

    def wait_records(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Wait until at least `count` request records are in the log (they follow the answer)."""
        deadline = time.monotonic() + timeout
        while True:
            records = self.request_records()
            if len(records) >= count or time.monotonic() > deadline:
                return records
            time.sleep(0.02)

    def settle(self, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The request records once every /v1 request sent through `call` has its own."""
        return self.wait_records(self.v1_calls, timeout)

    # --- lifetime -------------------------------------------------------------------------------

    def stop(self) -> None:
        """SIGTERM (the audit log gets its final checkpoint), then SIGKILL after 10 s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class ServiceFactory:
    """Writes configs, key files and JWKS under `directory`; starts and stops services."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.services: list[RunningService] = []
        self.keys: dict[str, SoftwareKey] = {}
        self._token_keys: dict[str, TokenKey] | None = None

    @classmethod
    @contextlib.contextmanager
    def open(cls, directory: Path) -> Iterator[ServiceFactory]:
        factory = cls(directory)
        try:
            yield factory
        finally:
            factory.close()

    def software_key(
        self, name: str = "release", algorithm: str = "ed25519", *, password: str | None = None
    ) -> SoftwareKey:
        """A key file (made once per name); its public key goes into every later trust root."""
        existing = self.keys.get(name)
        if existing is not None:
            return existing
        signer = generate(algorithm)
        (self.directory / "keys").mkdir(exist_ok=True)
        key_path, _ = write_keypair(
            signer,
            self.directory / "keys" / name,
            password=None if password is None else password.encode(),
        )
        made = self.keys[name] = SoftwareKey(key_path, signer)
        return made

    def _new_token_keys(self) -> dict[str, TokenKey]:
        return {
            "k-es": ec.generate_private_key(ec.SECP256R1()),
            "k-rs": rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "k-ed": ed25519.Ed25519PrivateKey.generate(),
        }

    def __call__(
        self,
        keys: Sequence[Key | tuple[Any, ...]] | None = None,
        tenants: Sequence[Tenant | tuple[str, Sequence[str], int]] | None = None,
        *,
        limits: Mapping[str, int] | None = None,
        env: Mapping[str, str] | None = None,
        redis_url: str | None = None,
        tsa: Mapping[str, Any] | None = None,
        trusted: Sequence[PublicKey] = (),
        auth: Mapping[str, Any] | None = None,
        extra_config: str = "",
    ) -> RunningService:
        """Write a config and start `python -m dssesign serve` on it; wait for /healthz.

        keys: (name, ref, timeout_s); default one Ed25519 software key "release". tenants:
        (name, keys, rate_per_minute); default "team-a" with every key at 6000/min. limits:
        [server] integers (max_body_bytes, max_inflight, unauthenticated_rate_per_minute).
        env: extra environment (key passwords, AWS settings). tsa: name -> a `tests.tsa.Tsa`
        (configured as [[tsa]] and trusted in the trust root). trusted: more public keys for
        the trust root (a KMS key's); every `software_key` is trusted anyway. auth: overrides of
        [auth] fields.
        """
        index = len(self.services)
        directory = self.directory / f"service-{index}"
        directory.mkdir(parents=True)
        if keys is None:
            keys = [Key("release", str(self.software_key("release").path))]
        key_entries = [Key(*entry) for entry in keys]
        if tenants is None:
            tenants = [Tenant(TENANT, [k.name for k in key_entries])]
        tenant_entries = [Tenant(*entry) for entry in tenants]

        token_keys = self._new_token_keys()
        jwks = {"keys": [_jwk(kid, key) for kid, key in token_keys.items()]}
        (directory / "jwks.json").write_text(json.dumps(jwks, indent=1))

        authorities = tuple(
            server.authority(name) for name, server in (tsa or {}).items()
        )  # a tests.tsa.Tsa
        root = TrustRoot(
            version=1,
            expires=datetime.now(UTC).replace(microsecond=0) + timedelta(days=30),
            keys=tuple(
                TrustedKey(public_key=k)
                for k in [*(s.public_key for s in self.keys.values()), *trusted]
            ),
            policy=Policy(threshold=1),
            timestamp_authorities=authorities,
        )
        save_trust_root(directory / "trust-root.json", root)

        lines = ["[auth]"]
        auth_fields: dict[str, Any] = {
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "jwks_file": "jwks.json",
            **(auth or {}),
        }
        lines += [f"{name} = {_toml(value)}" for name, value in auth_fields.items()]
        for key in key_entries:
            lines += [
                "",
                "[[keys]]",
                f"name = {_toml(key.name)}",
                f"ref = {_toml(key.ref)}",
                f"timeout_s = {_toml(float(key.timeout_s))}",
            ]
            if key.password_env is not None:
                lines.append(f"password_env = {_toml(key.password_env)}")
        for name, server in (tsa or {}).items():
            lines += ["", "[[tsa]]", f"name = {_toml(name)}", f"url = {_toml(server.url)}"]
        for tenant in tenant_entries:
            lines += [
                "",
                "[[tenants]]",
                f"name = {_toml(tenant.name)}",
                f"keys = {_toml(list(tenant.keys))}",
                f"rate_per_minute = {tenant.rate_per_minute}",
            ]
        server_fields: dict[str, Any] = {
            "trust_root": "trust-root.json",
            "audit_log": "audit.log",
            "unauthenticated_rate_per_minute": 10_000,
            **(limits or {}),
        }
        if redis_url is not None:
            server_fields["redis_url"] = redis_url
        lines += ["", "[server]", *(f"{k} = {_toml(v)}" for k, v in server_fields.items())]
        config = directory / "service.toml"
        config.write_text("\n".join(lines) + "\n" + extra_config)

        port = free_port()
        log = directory / "server.log"
        environment = {**os.environ, **(env or {})}
        environment.pop("DSSESIGN_DEBUG", None)
        with log.open("wb") as output:
            process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "dssesign", "serve", "--config", str(config)),
                    *("--host", "127.0.0.1", "--port", str(port)),
                ],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=environment,
                cwd=directory,
            )
        service = RunningService(
            url=f"http://127.0.0.1:{port}",
            port=port,
            directory=directory,
            config=config,
            audit_log=directory / "audit.log",
            trust_root=directory / "trust-root.json",
            log=log,
            process=process,
            token_keys=token_keys,
            jwks=jwks,
        )
        self.services.append(service)
        _wait_healthy(service)
        return service

    def close(self) -> None:
        for service in self.services:
            service.stop()


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string is JSON's string form
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def _wait_healthy(service: RunningService) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            pytest.fail(
                f"dssesign serve exited with {service.process.returncode}:\n"
                f"{service.log_text()[-3000:]}",
                pytrace=False,
            )
        try:
            if service.call("GET", "/healthz", token=None, timeout=1).status == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    service.stop()
    pytest.fail(f"dssesign serve did not answer /healthz within {_START_TIMEOUT:g}s", pytrace=False)


@pytest.fixture
def service_factory(tmp_path: Path) -> Iterator[ServiceFactory]:
    """Start `dssesign serve` processes for this test (all stopped at its end)."""
    with ServiceFactory.open(tmp_path / "service") as factory:
        yield factory


@pytest.fixture(scope="module")
def module_service_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceFactory]:
    """The same for a whole module: one server shared by its tests, stopped at the module's end.

    A module fixture that starts its server through this one puts the `service` marker (and
    so `integration`) on every test that uses it, as `service_factory` does.
    """
    with ServiceFactory.open(tmp_path_factory.mktemp("service")) as factory:
        yield factory
