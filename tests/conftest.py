"""Shared test helpers: fixture paths and small key factories."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from dssesign.core.keys import Algorithm, PublicKey
from dssesign.profiles.software import SoftwareSigner, generate

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
#: The tier that needs no server, node or wheel build; tests/integration holds the rest.
_UNIT = Path(__file__).resolve().parent / "unit"

#: The real backends the tests start on 127.0.0.1, each a session fixture shared by every
#: module that names it: `softhsm`, `localstack`, `openbao`, `sigstore_instance`, `tsa`,
#: `oci_registry`, `redis_server`, `service_factory` (`dssesign serve` as a subprocess).
pytest_plugins = [
    "tests.softhsm",
    "tests.localstack",
    "tests.openbao",
    "tests.sigstore_instance",
    "tests.tsa",
    "tests.registry",
    "tests.oci_fake",  # an in-process OCI registry with the referrers API (no marker)
    "tests.redis_server",
    "tests.service",
]

#: Backend fixture -> the marker of the tests that need it. Every such test is also
#: `integration`: `make check` runs the rest (the unit tier) with no server at all.
_BACKEND_MARKERS = {
    "softhsm": "softhsm",
    "localstack": "localstack",
    "openbao": "openbao",
    "sigstore_instance": "sigstore",
    "tsa": "tsa",
    "oci_registry": "registry",
    "redis_server": "redis",
    "service_factory": "service",
    "module_service_factory": "service",
}
#: Test modules that need a tool beyond Python (node) or build wheels (the kit): integration.
_INTEGRATION_MODULES = {
    "test_sigstore_js.py": "node",
    "test_kit.py": "kit",
    "test_kit_hardening.py": "kit",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        markers = [marker for fixture, marker in _BACKEND_MARKERS.items() if fixture in names]
        module_marker = _INTEGRATION_MODULES.get(item.path.name)
        if module_marker is not None:
            markers.append(module_marker)
        for marker in markers:
            item.add_marker(marker)
        if markers:
            if _UNIT in item.path.parents:
                raise pytest.UsageError(
                    f"{item.nodeid} needs {', '.join(markers)}: it belongs in tests/integration, "
                    "not tests/unit (the tier that runs with no server)"
                )
            item.add_marker("integration")


#: The six allow-listed algorithms by CLI name.
ALL_ALGORITHMS = (
    "ed25519",
    "ecdsa-p256",
    "ecdsa-p384",
    "rsa-pss-3072",
    "rsa-pss-4096",
    "ml-dsa-65",
)


@cache
def _cached_key(algorithm: str, index: int) -> SoftwareSigner:
    # RSA generation is slow; one key per (algorithm, index) per test session is plenty.
    return generate(algorithm)


def signer_for(algorithm: str, index: int = 0) -> SoftwareSigner:
    return _cached_key(algorithm, index)


@cache
def dsse_vectors() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / "dsse" / "dsse_vectors.json").read_text())
    return data


@pytest.fixture(params=ALL_ALGORITHMS)
def any_signer(request: pytest.FixtureRequest) -> SoftwareSigner:
    return signer_for(str(request.param))


class DelegatingSigner:
    """A stand-in backend for tests: a software key behind the bare Signer protocol.

    Subclasses override `sign` to inject faults; `in_process` is False, so
    MultiProfileSigner treats it like an HSM or KMS profile (own thread, timeout).
    """

    in_process = False  # like an HSM or KMS profile: own thread, timeout
    exportable = False

    def __init__(self, inner: SoftwareSigner, reference: str = "fake://") -> None:
        self._inner = inner
        self.reference = reference

    @property
    def keyid(self) -> str:
        return self._inner.keyid

    @property
    def algorithm(self) -> Algorithm:
        return self._inner.algorithm

    @property
    def public_key(self) -> PublicKey:
        return self._inner.public_key

    def sign(self, data: bytes) -> bytes:
        return self._inner.sign(data)
