"""A local Sigstore instance for tests, modelled on sigstore-go's `pkg/testing/ca` VirtualSigstore.

A test root + intermediate CA (Fulcio), a CT log key issuing embedded SCTs, a Rekor-v1-style
transparency log and a test OIDC provider, served on 127.0.0.1 so that sigstore-python's real
signing client runs against it. tests/conftest.py registers this package as a plugin, so a
test names the session fixture::

    def test_x(sigstore_instance: SigstoreInstance) -> None:
        token = sigstore_instance.identity_token()
        ... SignerOptions(identity_token=token, trust_config=sigstore_instance.trust_config_path)

`start_instance(dir)` runs one outside pytest (`make demo` does).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from . import config
from .ca import TestCA
from .ctlog import CTLog
from .fulcio import Fulcio
from .oidc import DEFAULT_ISSUER, DEFAULT_SUBJECT, TestOIDCProvider
from .rekor import TransparencyLog
from .server import SigstoreServer

__all__ = ["SigstoreInstance", "sigstore_instance", "start_instance"]


@dataclass
class SigstoreInstance:
    """A running instance and the files that describe it."""

    server: SigstoreServer
    ca: TestCA
    ct_log: CTLog
    tlog: TransparencyLog
    oidc: TestOIDCProvider
    directory: Path
    #: Sigstore trusted_root.json (CA chain, CT log key, tlog key) for verifiers.
    trusted_root_path: Path
    #: ClientTrustConfig (trusted root + signing config with the loopback URLs) for signers.
    trust_config_path: Path
    issuer: str = DEFAULT_ISSUER
    subject: str = DEFAULT_SUBJECT

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def trusted_root(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.trusted_root_path.read_text())
        return data

    def identity_token(
        self, subject: str | None = None, issuer: str | None = None, *, lifetime: int = 600
    ) -> str:
        """A test OIDC JWT (aud=sigstore) that this instance's Fulcio accepts."""
        return self.oidc.token(subject or self.subject, issuer or self.issuer, lifetime=lifetime)

    def env(self, token: str | None = None) -> dict[str, str]:
        """Environment for a CLI run that signs keyless against this instance."""
        return {
            "DSSESIGN_OIDC_TOKEN": token if token is not None else self.identity_token(),
            "DSSESIGN_SIGSTORE_TRUST_CONFIG": str(self.trust_config_path),
        }

    def write_trust_config(self, path: Path, *, fulcio_url: str, rekor_url: str) -> Path:
        """A ClientTrustConfig for the same roots but other service URLs (e.g. a dead port)."""
        data = config.client_trust_config(
            self.trusted_root, fulcio_url=fulcio_url, rekor_url=rekor_url, start=self.ca.not_before
        )
        path.write_text(json.dumps(data, indent=2))
        return path

    def stop(self) -> None:
        self.server.stop()


def start_instance(directory: Path) -> SigstoreInstance:
    """Create fresh keys, start the server, write trusted_root.json and trust_config.json."""
    ct_log = CTLog()
    ca = TestCA(ct_log)
    tlog = TransparencyLog()
    oidc = TestOIDCProvider()
    server = SigstoreServer(Fulcio(ca, oidc), tlog)
    tlog.name = server.url.split("://", 1)[1]  # host:port, as Rekor names itself by host
    server.start()
    root = config.trusted_root(
        ca=ca, ct_log=ct_log, tlog=tlog, fulcio_url=server.url, rekor_url=server.url
    )
    trusted_root_path = directory / "trusted_root.json"
    trusted_root_path.write_text(json.dumps(root, indent=2))
    trust_config_path = directory / "trust_config.json"
    trust_config_path.write_text(
        json.dumps(
            config.client_trust_config(
                root, fulcio_url=server.url, rekor_url=server.url, start=ca.not_before
            ),
            indent=2,
        )
    )
    return SigstoreInstance(
        server=server,
        ca=ca,
        ct_log=ct_log,
        tlog=tlog,
        oidc=oidc,
        directory=directory,
        trusted_root_path=trusted_root_path,
        trust_config_path=trust_config_path,
    )


@pytest.fixture(scope="session")
def sigstore_instance() -> Iterator[SigstoreInstance]:
    """One instance per test session, stopped (and its files removed) at the end."""
    with tempfile.TemporaryDirectory(prefix="dssesign-sigstore-") as tmp:
        instance = start_instance(Path(tmp))
        try:
            yield instance
        finally:
            instance.stop()
