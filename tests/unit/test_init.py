"""The package's public names: every one resolves lazily, and importing the package is cheap."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import dssesign


def test_every_public_name_resolves_and_is_listed_once() -> None:
    assert sorted(dssesign.__all__) == sorted(set(dssesign.__all__))
    assert set(dssesign.__all__) == set(dssesign._EXPORTS)
    for name in dssesign.__all__:
        assert getattr(dssesign, name) is not None, name


def test_importing_the_package_imports_no_profile_or_heavy_dependency() -> None:
    code = (
        "import sys, dssesign; "
        "heavy = [m for m in ('jsonschema', 'sigstore', 'boto3', 'hvac', 'pkcs11', 'rich') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_py_typed_ships_and_every_public_name_has_a_docstring() -> None:
    from pathlib import Path

    assert (Path(dssesign.__file__).parent / "py.typed").is_file()
    missing = []
    for name in dssesign.__all__:
        value = getattr(dssesign, name)
        if callable(value) and not (getattr(value, "__doc__", None) or "").strip():
            missing.append(name)
    assert missing == [], missing


def test_verify_envelope_is_the_verifier() -> None:
    from dssesign.verify import verify

    assert dssesign.verify_envelope is verify


# --- the one-call API producers use ------------------------------------------------------------


def _root_for(*signers: object) -> object:
    from datetime import UTC, datetime, timedelta

    from dssesign import trust as tr

    root = tr.init_trust_root(threshold=len(signers), now=datetime.now(UTC) - timedelta(days=1))
    for signer in signers:
        root = tr.add_key(root, signer.public_key)  # type: ignore[attr-defined]
    return root


def test_attest_signs_what_the_command_would_and_returns_the_bundles(tmp_path: object) -> None:
    from pathlib import Path

    from dssesign import attest, verify_envelope
    from dssesign.profiles.software import generate

    assert isinstance(tmp_path, Path)
    artifact = tmp_path / "app.bin"
    artifact.write_bytes(b"app")
    keys = [generate("ed25519"), generate("ecdsa-p256")]
    provenance = Path(__file__).resolve().parents[2] / "fixtures/predicates/slsa-provenance-v1.json"
    result = attest(
        [artifact, "sha256:" + "b" * 64],
        provenance.read_bytes(),
        "slsaprovenance1",
        keys=keys,
    )
    assert len(result.bundles) == 2 and len(result.envelope.signatures) == 2
    verified = verify_envelope(
        result.envelope.to_json(),
        _root_for(*keys),  # type: ignore[arg-type]
        artifacts=[artifact],
        bundles=[b.data for b in result.bundles],
        predicate_type="https://slsa.dev/provenance/v1",
    )
    assert len(verified.keys_counted) == 2
    assert result.statement["predicateType"] == "https://slsa.dev/provenance/v1"


def test_attest_takes_a_cyclonedx_bom_and_an_spdx_document_as_built() -> None:
    from datetime import datetime

    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component
    from spdx_tools.spdx.model import (
        Actor,
        ActorType,
        CreationInfo,
        Document,
        Package,
        Relationship,
        RelationshipType,
    )

    from dssesign import attest
    from dssesign.profiles.software import generate

    key = generate("ed25519")
    bom = Bom(components=[Component(name="left-pad", version="1.3.0")])
    signed = attest(["sha256:" + "c" * 64], bom, "cyclonedx", keys=[key])
    assert signed.statement["predicate"]["bomFormat"] == "CycloneDX"
    creation = CreationInfo(
        spdx_version="SPDX-2.3",
        spdx_id="SPDXRef-DOCUMENT",
        name="app",
        document_namespace="https://example.com/spdx/app-1",
        creators=[Actor(ActorType.TOOL, "unit-test")],
        created=datetime(2026, 1, 1),
    )
    package = Package("SPDXRef-app", "app", "NOASSERTION", files_analyzed=False)
    document = Document(
        creation,
        packages=[package],
        relationships=[Relationship("SPDXRef-DOCUMENT", RelationshipType.DESCRIBES, "SPDXRef-app")],
    )
    signed = attest(["sha256:" + "d" * 64], document, "spdxjson", keys=[key])
    assert signed.statement["predicate"]["packages"][0]["SPDXID"] == "SPDXRef-app"


def test_attest_refuses_a_bad_predicate_before_touching_a_key() -> None:
    import pytest

    from dssesign import PredicateError, attest

    class Untouchable:
        def __getattr__(self, name: str) -> object:
            raise AssertionError("a key was touched")

    untouchable: Any = Untouchable()
    with pytest.raises(PredicateError):
        attest(
            ["sha256:" + "e" * 64], {"buildDefinition": {}}, "slsaprovenance1", keys=[untouchable]
        )
