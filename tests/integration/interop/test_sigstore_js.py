"""Bundles written by `dssesign attest --bundle-dir`, verified by @sigstore/verify 4.x under node.

sigstore-js is an independent verifier: it parses our bundle JSON, checks our key hint against a
key it indexes itself, the DSSE signature over the PAE, and for keyless bundles the certificate
chain, SCT, tlog inclusion proof, checkpoint, SET and identity, all against files (offline).
All bundles of a module go to one node process (tests/interop/js/verify.mjs --batch).

@sigstore/verify 4.1 verifies keyed signatures with node's default digest for the key type
(`crypto.verify(undefined, ...)`): SHA-256, and PKCS#1 v1.5 for RSA. So of our keyed algorithms
it verifies ECDSA P-256 and Ed25519; ECDSA P-384 (SHA-384) and RSA-PSS it rejects although the
signatures are right, and ML-DSA keys node 20 cannot load at all. The test pins that, so a
sigstore-js release that fixes it shows up here.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from dssesign.core.dsse import Envelope, pae
from dssesign.core.keys import load_public_key
from dssesign.profiles.software import write_keypair
from tests.conftest import signer_for
from tests.sigstore_instance import (
    SigstoreInstance,
)
from tests.softhsm import (
    MAIN,
    PIN,
    PIN_ENV,
    SoftHsm,
)
from tests.unit.cli.test_cli import ATTEST_SLSA, dssesign

ROOT = Path(__file__).resolve().parents[3]
JS_DIR = Path(__file__).resolve().parent / "js"
ENSURE = ROOT / "scripts" / "ensure-sigstore-js.sh"

#: Keyed algorithms @sigstore/verify 4.x verifies, and those it refuses (see the docstring).
VERIFIED_BY_SIGSTORE_JS = ("ecdsa-p256", "ed25519", "hsm-ecdsa-p256")
REFUSED_BY_SIGSTORE_JS = ("ecdsa-p384", "rsa-pss-3072")
SOFTWARE = ("ecdsa-p256", "ed25519", "ecdsa-p384", "rsa-pss-3072")

Jobs = list[dict[str, Any]]
Verify = Callable[[Jobs], list[dict[str, Any]]]


@cache
def _ensure_installed() -> None:
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            pytest.fail(
                f"{tool} is missing: install Node.js 20+ and npm (apt-get install -y nodejs npm); "
                "the sigstore-js interop tests need them",
                pytrace=False,
            )
    done = subprocess.run(
        ["bash", str(ENSURE)], capture_output=True, text=True, timeout=300, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"scripts/ensure-sigstore-js.sh failed:\n{done.stderr}", pytrace=False)


@pytest.fixture(scope="module")
def sigstore_js() -> Verify:
    """Verify a batch of jobs (see verify.mjs) in one node process; one result per job."""
    _ensure_installed()

    def verify(jobs: Jobs) -> list[dict[str, Any]]:
        done = subprocess.run(
            ["node", str(JS_DIR / "verify.mjs"), "--batch"],
            input=json.dumps(jobs),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode in (0, 1), done.stderr  # 2: the jobs themselves were bad
        results: list[dict[str, Any]] = json.loads(done.stdout)
        assert len(results) == len(jobs)
        assert done.returncode == (0 if all(r["ok"] for r in results) else 1)
        return results

    return verify


def _variant(source: Path, name: str, change: Callable[[dict[str, Any]], None]) -> Path:
    bundle = json.loads(source.read_bytes())
    change(bundle)
    target = source.parent / "variants" / f"{source.name}.{name}.json"
    target.parent.mkdir(exist_ok=True)
    target.write_text(json.dumps(bundle))
    return target


def _tamper_payload(bundle: dict[str, Any]) -> None:
    dsse = bundle["dsseEnvelope"]
    payload = base64.b64decode(dsse["payload"]).replace(b"slsa", b"SLSA", 1)
    dsse["payload"] = base64.b64encode(payload).decode()


def _swap_payload_type(bundle: dict[str, Any]) -> None:
    bundle["dsseEnvelope"]["payloadType"] = "application/json"


# --------------------------------------------------------------------------- keyed


@pytest.fixture(scope="module")
def keyed(
    tmp_path_factory: pytest.TempPathFactory, softhsm: SoftHsm, sigstore_js: Verify
) -> dict[str, Any]:
    """One `dssesign attest --bundle-dir` with 4 software keys and an HSM key; every bundle
    and its variants verified in one node run. Results by (algorithm, case)."""
    directory = tmp_path_factory.mktemp("sigstore-js-keyed")
    refs: dict[str, str] = {}
    pems: dict[str, Path] = {}
    for algorithm in SOFTWARE:
        key, pub = write_keypair(signer_for(algorithm, 30), directory / algorithm, password=None)
        refs[algorithm], pems[algorithm] = str(key), pub
    refs["hsm-ecdsa-p256"] = softhsm.uri(MAIN, "ecdsa-p256")
    pems["hsm-ecdsa-p256"] = directory / "hsm.pub"
    env = {PIN_ENV: PIN, "SOFTHSM2_CONF": softhsm.env["SOFTHSM2_CONF"]}
    exported = dssesign(
        "hsm",
        "public-key",
        "--uri",
        refs["hsm-ecdsa-p256"],
        "--out",
        pems["hsm-ecdsa-p256"],
        env=env,
    )
    assert exported.code == 0, exported
    out = directory / "att.json"
    keys = [arg for ref in refs.values() for arg in ("--key", ref)]
    run = dssesign(
        "attest", *ATTEST_SLSA, *keys, "--out", out, "--bundle-dir", directory, "--json", env=env
    )
    assert run.code == 0, run
    summary = json.loads(run.out)
    bundles = {
        name: Path(item["bundle"]) for name, item in zip(refs, summary["signatures"], strict=True)
    }
    jobs: Jobs = []
    cases: list[tuple[str, str]] = []
    names = list(refs)
    for index, name in enumerate(names):
        other = names[(index + 1) % len(names)]
        for case, bundle, pem in (
            ("as written", bundles[name], pems[name]),
            ("tampered payload", _variant(bundles[name], "payload", _tamper_payload), pems[name]),
            (
                "swapped payloadType",
                _variant(bundles[name], "type", _swap_payload_type),
                pems[name],
            ),
            ("another key", bundles[name], pems[other]),
        ):
            jobs.append({"bundle": str(bundle), "key": str(pem)})
            cases.append((name, case))
    results = sigstore_js(jobs)
    return {
        "results": dict(zip(cases, results, strict=True)),
        "bundles": bundles,
        "pems": pems,
        "envelope": Envelope.from_json(out.read_bytes()),
    }


@pytest.mark.parametrize("algorithm", VERIFIED_BY_SIGSTORE_JS)
def test_keyed_bundle_verifies_with_sigstore_js(keyed: dict[str, Any], algorithm: str) -> None:
    result = keyed["results"][(algorithm, "as written")]
    assert result["ok"] is True, result
    # sigstore-js found the key by the hint it computed from the PEM: our hint is that value.
    bundle = json.loads(keyed["bundles"][algorithm].read_bytes())
    assert result["keyHint"] == bundle["verificationMaterial"]["publicKey"]["hint"]


@pytest.mark.parametrize("algorithm", REFUSED_BY_SIGSTORE_JS)
def test_sigstore_js_refuses_keyed_algorithms_it_hashes_wrongly(
    keyed: dict[str, Any], algorithm: str
) -> None:
    result = keyed["results"][(algorithm, "as written")]
    assert result["ok"] is False and result["code"] == "SIGNATURE_ERROR", result
    # ... while the signature is right for the algorithm (checked with pyca/cryptography).
    bundle = json.loads(keyed["bundles"][algorithm].read_bytes())
    dsse = bundle["dsseEnvelope"]
    key = load_public_key(keyed["pems"][algorithm].read_bytes())
    message = pae(dsse["payloadType"], base64.b64decode(dsse["payload"]))
    assert key.verify(base64.b64decode(dsse["signatures"][0]["sig"]), message)


@pytest.mark.parametrize("algorithm", VERIFIED_BY_SIGSTORE_JS + REFUSED_BY_SIGSTORE_JS)
@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("tampered payload", "SIGNATURE_ERROR"),
        ("swapped payloadType", "SIGNATURE_ERROR"),
        ("another key", "PUBLIC_KEY_ERROR"),  # no key under this bundle's hint
    ],
)
def test_sigstore_js_rejects_changed_keyed_bundles(
    keyed: dict[str, Any], algorithm: str, case: str, code: str
) -> None:
    result = keyed["results"][(algorithm, case)]
    assert result["ok"] is False and result["code"] == code, result


# --------------------------------------------------------------------------- keyless

WRONG_SUBJECT = "mallory@dssesign.test"


@pytest.fixture(scope="module")
def keyless(
    tmp_path_factory: pytest.TempPathFactory,
    sigstore_instance: SigstoreInstance,
    sigstore_js: Verify,
) -> dict[tuple[str, str], dict[str, Any]]:
    """Two keyless signatures and a keyed one from the local instance, one node run."""
    directory = tmp_path_factory.mktemp("sigstore-js-keyless")
    key, pem = write_keypair(signer_for("ecdsa-p256", 31), directory / "p256", password=None)
    run = dssesign(
        "attest",
        *ATTEST_SLSA,
        "--key",
        "keyless",
        "--key",
        key,
        "--key",
        "keyless",
        "--out",
        directory / "att.json",
        "--bundle-dir",
        directory,
        env=sigstore_instance.env(),
    )
    assert run.code == 0, run
    root = str(sigstore_instance.trusted_root_path)
    identity = {"identity": sigstore_instance.subject, "issuer": sigstore_instance.issuer}
    first, second = (
        directory / "att.keyless-1.sigstore.json",
        directory / "att.keyless-2.sigstore.json",
    )

    def bad_set(bundle: dict[str, Any]) -> None:
        promise = bundle["verificationMaterial"]["tlogEntries"][0]["inclusionPromise"]
        raw = bytearray(base64.b64decode(promise["signedEntryTimestamp"]))
        raw[-1] ^= 0x01
        promise["signedEntryTimestamp"] = base64.b64encode(bytes(raw)).decode()

    def no_tlog_entry(bundle: dict[str, Any]) -> None:
        bundle["verificationMaterial"]["tlogEntries"] = []

    jobs: dict[tuple[str, str], dict[str, Any]] = {
        ("keyless-1", "as written"): {"bundle": str(first), **identity},
        ("keyless-2", "as written"): {"bundle": str(second), **identity},
        ("keyless-1", "wrong identity"): {
            "bundle": str(first),
            "identity": WRONG_SUBJECT,
            "issuer": sigstore_instance.issuer,
        },
        ("keyless-1", "wrong issuer"): {
            "bundle": str(first),
            "identity": sigstore_instance.subject,
            "issuer": "https://accounts.example.com",
        },
        ("keyless-1", "bad SET"): {"bundle": str(_variant(first, "set", bad_set)), **identity},
        ("keyless-1", "missing tlog entry"): {
            "bundle": str(_variant(first, "notlog", no_tlog_entry)),
            **identity,
        },
        ("keyless-1", "tampered payload"): {
            "bundle": str(_variant(first, "payload", _tamper_payload)),
            **identity,
        },
        ("keyless-1", "swapped payloadType"): {
            "bundle": str(_variant(first, "type", _swap_payload_type)),
            **identity,
        },
    }
    keyed_bundle = directory / f"att.{signer_for('ecdsa-p256', 31).keyid[:16]}.sigstore.json"
    jobs[("keyed", "as written")] = {"bundle": str(keyed_bundle), "key": str(pem)}
    for job in jobs.values():
        job.setdefault("trustedRoot", root)
    results = sigstore_js(list(jobs.values()))
    return dict(zip(jobs, results, strict=True))


@pytest.mark.parametrize("which", ["keyless-1", "keyless-2", "keyed"])
def test_keyless_bundles_verify_with_sigstore_js(
    keyless: dict[tuple[str, str], dict[str, Any]],
    sigstore_instance: SigstoreInstance,
    which: str,
) -> None:
    result = keyless[(which, "as written")]
    assert result["ok"] is True, result
    if which != "keyed":
        assert result["identity"] == {
            "subjectAlternativeName": sigstore_instance.subject,
            "issuer": sigstore_instance.issuer,
        }


@pytest.mark.parametrize(
    ("case", "codes"),
    [
        ("wrong identity", {"UNTRUSTED_SIGNER_ERROR"}),
        ("wrong issuer", {"UNTRUSTED_SIGNER_ERROR"}),
        ("bad SET", {"TLOG_INCLUSION_PROMISE_ERROR"}),
        # Without its entry the bundle has no timestamp to check the certificate at.
        ("missing tlog entry", {"TIMESTAMP_ERROR", "TLOG_ERROR"}),
        # The tlog entry records the payload's and the envelope's hashes.
        ("tampered payload", {"TLOG_BODY_ERROR", "SIGNATURE_ERROR"}),
        ("swapped payloadType", {"TLOG_BODY_ERROR", "SIGNATURE_ERROR"}),
    ],
)
def test_sigstore_js_rejects_changed_keyless_bundles(
    keyless: dict[tuple[str, str], dict[str, Any]], case: str, codes: set[str]
) -> None:
    # The unchanged bundle verifies, so each rejection is the change's doing.
    assert keyless[("keyless-1", "as written")]["ok"] is True
    result = keyless[("keyless-1", case)]
    assert result["ok"] is False and result["code"] in codes, result
