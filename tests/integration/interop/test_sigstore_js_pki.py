"""Organisation-certificate bundles (`attest --certificate --tsa`) verified by @sigstore/verify.

sigstore-js judges them as any certificate bundle: the leaf's chain against a Sigstore trusted
root whose `certificateAuthorities` lists the organisation CA (intermediate, root), at the time
of the bundle's RFC 3161 token (checked against the root's `timestampAuthorities`), with no
transparency log and no SCT (thresholds 0), the SAN as the identity policy. dssesign verifies
the same bundles against its own trust root.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from dssesign.profiles.software import write_keypair
from dssesign.trust import Policy, TrustRoot
from dssesign.trust.pki import parse_pki
from dssesign.verify import verify
from tests.conftest import signer_for
from tests.integration.interop import test_sigstore_js as js_tests
from tests.integration.interop.test_sigstore_js import (
    Verify,
    _sigstore_root,
    _tamper_payload,
    _variant,
)
from tests.pki import Issued, make_ca, make_leaf
from tests.sigstore_instance.config import TRUSTED_ROOT_MEDIA_TYPE
from tests.tsa import Tsa
from tests.unit.cli.test_cli import ATTEST_SLSA, dssesign

#: The node verifier, one process per module (the fixture of test_sigstore_js.py).
sigstore_js = js_tests.sigstore_js


def _ca_entry(chain: list[Issued]) -> dict[str, Any]:
    return {
        "subject": {"organization": "Example Corp", "commonName": "Example Issuing CA"},
        "uri": "https://ca.example.com",
        "certChain": {
            "certificates": [
                {"rawBytes": base64.b64encode(c.cert.public_bytes(Encoding.DER)).decode()}
                for c in chain
            ]
        },
        "validFor": {"start": chain[-1].cert.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ")},
    }


def _trusted_root(path: Path, tsa: Tsa, chain: list[Issued]) -> Path:
    """A Sigstore trusted root: the organisation CA chain and the test TSA, nothing else."""
    with_tsa = json.loads(_sigstore_root(path, tsa.chain).read_text())
    with_tsa["certificateAuthorities"] = [_ca_entry(chain)]
    assert with_tsa["mediaType"] == TRUSTED_ROOT_MEDIA_TYPE
    path.write_text(json.dumps(with_tsa))
    return path


@pytest.fixture(scope="module")
def certified(
    tmp_path_factory: pytest.TempPathFactory, tsa: Tsa, sigstore_js: Verify
) -> dict[str, Any]:
    directory = tmp_path_factory.mktemp("sigstore-js-pki")
    signer = signer_for("ecdsa-p256", 41)
    key, public = write_keypair(signer, directory / "release", password=None)
    root = make_ca("Example Root CA")
    issuing = make_ca("Example Issuing CA", issuer=root, path_length=0)
    leaf = make_leaf(issuing, public_key=signer.public_key.key)
    (directory / "leaf.pem").write_bytes(leaf.pem)
    (directory / "chain.pem").write_bytes(issuing.pem)
    (directory / "tsa-chain.pem").write_bytes(tsa.chain_pem)
    tsa_root = directory / "dssesign-root.json"
    for step in (
        ("init", "--out", tsa_root),
        ("add-tsa", tsa_root, "--certificate-chain", directory / "tsa-chain.pem", "--name", "t"),
        ("add-key", tsa_root, "--public-key", public),
    ):
        assert dssesign("trust-root", *step).code == 0
    run = dssesign(
        "attest",
        *ATTEST_SLSA,
        "--key",
        key,
        "--certificate",
        directory / "leaf.pem",
        "--certificate-chain",
        directory / "chain.pem",
        "--out",
        directory / "att.json",
        "--bundle-dir",
        directory,
        "--tsa",
        tsa.url,
        "--trust-root",
        tsa_root,
        "--json",
    )
    assert run.code == 0, run
    bundle = Path(json.loads(run.out)["signatures"][0]["bundle"])
    other_root = make_ca("Another Root CA")
    other_issuing = make_ca("Another Issuing CA", issuer=other_root)
    roots = {
        "listed": _trusted_root(directory / "listed.json", tsa, [issuing, root]),
        "another CA": _trusted_root(directory / "other.json", tsa, [other_issuing, other_root]),
    }
    cases = {
        "as written": (bundle, "listed", "release@example.com"),
        "another CA": (bundle, "another CA", "release@example.com"),
        "another identity": (bundle, "listed", "someone@example.com"),
        "tampered payload": (_variant(bundle, "payload", _tamper_payload), "listed", None),
    }
    jobs = [
        {
            "bundle": str(path),
            "trustedRoot": str(roots[which]),
            "certificate": True,
            **({"identity": identity} if identity else {}),
            "tlogThreshold": 0,
            "ctlogThreshold": 0,
            "tsaThreshold": 1,
        }
        for path, which, identity in cases.values()
    ]
    results = dict(zip(cases, sigstore_js(jobs), strict=True))
    return {
        "results": results,
        "bundle": bundle,
        "envelope": directory / "att.json",
        "pki": (root, issuing),
        "tsa_root": tsa_root,
    }


def test_sigstore_js_verifies_the_organisation_certificate_bundle(
    certified: dict[str, Any],
) -> None:
    result = certified["results"]["as written"]
    assert result["ok"] is True, result
    assert result["identity"]["subjectAlternativeName"] == "release@example.com"
    bundle = json.loads(certified["bundle"].read_bytes())
    material = bundle["verificationMaterial"]
    assert set(material) == {"certificate", "tlogEntries", "timestampVerificationData"}
    assert material["tlogEntries"] == []


@pytest.mark.parametrize("case", ["another CA", "another identity", "tampered payload"])
def test_sigstore_js_refuses_what_it_must(certified: dict[str, Any], case: str) -> None:
    assert certified["results"][case]["ok"] is False, certified["results"][case]


def test_dssesign_verifies_the_same_bundle_at_its_token_time(
    certified: dict[str, Any], tsa: Tsa
) -> None:
    root, issuing = certified["pki"]
    trust = TrustRoot(
        version=1,
        expires=root.cert.not_valid_after_utc,
        keys=(),
        policy=Policy(threshold=1),
        timestamp_authorities=(tsa.authority(),),
        pki=parse_pki(
            {
                "certificateAuthorities": [
                    {"name": "root", "certificate": root.pem.decode()},
                    {"name": "issuing", "certificate": issuing.pem.decode()},
                ],
                "identities": [{"ca": "issuing", "subject": "release@example.com"}],
            }
        ),
    )
    result = verify(
        certified["envelope"].read_bytes(), trust, bundles=[certified["bundle"].read_bytes()]
    )
    assert result.signatures[0].time_source == "rfc3161"
    assert result.identities_counted[0].subject == "release@example.com"
