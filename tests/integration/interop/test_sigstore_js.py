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

Countersignatures: the bundle `dssesign countersign --bundle-dir` writes for an appended
signature (plain, and with `--tsa`) verifies on its own under the countersigner's key.

Timestamped keyed bundles (`attest --tsa`, a real OpenSSL TSA from tests/tsa.py): sigstore-js
checks each RFC 3161 token (CMS signature, messageDigest over the TSTInfo, imprint = SHA-256 of
the signature, the TSA chain at the token's time, the authority's validFor window) against a
Sigstore trusted root that lists the TSA under `timestampAuthorities`, with `tsaThreshold: 1`
(in 4.x a deprecated alias of `timestampThreshold`, which counts TSA tokens and tlog SETs).
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from dssesign.core.dsse import Envelope, pae
from dssesign.core.keys import load_public_key
from dssesign.profiles.software import write_keypair
from tests.conftest import signer_for
from tests.sigstore_instance import (
    SigstoreInstance,
)
from tests.sigstore_instance.config import TRUSTED_ROOT_MEDIA_TYPE
from tests.softhsm import (
    MAIN,
    PIN,
    PIN_ENV,
    SoftHsm,
)
from tests.tsa import Tsa, make_ca, make_tsa_certificate, tst_info_der
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


# --------------------------------------------------------------------------- RFC 3161 timestamps

#: The keyed algorithms sigstore-js verifies in software (see the module docstring).
TIMESTAMPED = ("ecdsa-p256", "ed25519")


def _sigstore_root(
    path: Path, chain: tuple[x509.Certificate, ...] | None, start: datetime | None = None
) -> Path:
    """A Sigstore trusted root whose only entry is `chain` (TSA, CA) under timestampAuthorities,
    valid from `start` (default: the CA's notBefore); `None`: no TSA at all.

    Of an entry sigstore-js 4.1 needs only certChain, TSA certificate first and its CA with it
    (the chain is checked against the certificates after the first); validFor it honours when
    present. subject and uri are there as a Sigstore root has them.
    """
    authorities = []
    if chain is not None:
        authorities.append(
            {
                "subject": {"organization": "dssesign test", "commonName": "dssesign test TSA"},
                "uri": "http://127.0.0.1/tsa",
                "certChain": {
                    "certificates": [
                        {"rawBytes": base64.b64encode(c.public_bytes(Encoding.DER)).decode()}
                        for c in chain
                    ]
                },
                "validFor": {
                    "start": (start or chain[-1].not_valid_before_utc).strftime(
                        "%Y-%m-%dT%H:%M:%SZ"
                    )
                },
            }
        )
    path.write_text(
        json.dumps(
            {
                "mediaType": TRUSTED_ROOT_MEDIA_TYPE,
                "tlogs": [],
                "certificateAuthorities": [],
                "ctlogs": [],
                "timestampAuthorities": authorities,
            }
        )
    )
    return path


def _tokens(bundle: dict[str, Any]) -> list[dict[str, str]]:
    tokens: list[dict[str, str]] = bundle["verificationMaterial"]["timestampVerificationData"][
        "rfc3161Timestamps"
    ]
    return tokens


def _edit_token(bundle: dict[str, Any], edit: Callable[[bytes], bytes]) -> None:
    (token,) = _tokens(bundle)
    token["signedTimestamp"] = base64.b64encode(
        edit(base64.b64decode(token["signedTimestamp"]))
    ).decode()


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def _tamper_token_signature(bundle: dict[str, Any]) -> None:
    # The DER TimeStampResp ends with the SignerInfo's signature (ECDSA's s): still parses.
    _edit_token(bundle, lambda der: _flip(der, len(der) - 1))


def _tamper_token_content(bundle: dict[str, Any]) -> None:
    # The TSTInfo's last byte (the nonce's): still parses, but messageDigest no longer matches.
    def edit(der: bytes) -> bytes:
        tst = tst_info_der(der)
        return _flip(der, der.index(tst) + len(tst) - 1)

    _edit_token(bundle, edit)


def _drop_tokens(bundle: dict[str, Any]) -> None:
    del bundle["verificationMaterial"]["timestampVerificationData"]


@pytest.fixture(scope="module")
def timestamped(
    tmp_path_factory: pytest.TempPathFactory, tsa: Tsa, sigstore_js: Verify
) -> dict[str, Any]:
    """`dssesign attest --tsa --trust-root --bundle-dir` with two keys; each bundle, its
    variants and Sigstore trusted roots that do or do not list the TSA, in one node run."""
    directory = tmp_path_factory.mktemp("sigstore-js-timestamped")
    pems: dict[str, Path] = {}
    keys: list[str | Path] = []
    for algorithm in TIMESTAMPED:
        key, pems[algorithm] = write_keypair(
            signer_for(algorithm, 32), directory / algorithm, password=None
        )
        keys += ["--key", key]
    root = directory / "dssesign-root.json"
    chain_pem = directory / "tsa-chain.pem"
    chain_pem.write_bytes(tsa.chain_pem)
    for step in (
        ("init", "--out", root),
        ("add-tsa", root, "--certificate-chain", chain_pem, "--name", "test-tsa"),
        *(("add-key", root, "--public-key", pem) for pem in pems.values()),
    ):
        done = dssesign("trust-root", *step)
        assert done.code == 0, done
    run = dssesign(
        "attest",
        *ATTEST_SLSA,
        *keys,
        "--out",
        directory / "att.json",
        "--bundle-dir",
        directory,
        "--tsa",
        tsa.url,
        "--trust-root",
        root,
        "--json",
    )
    assert run.code == 0, run
    summary = json.loads(run.out)
    bundles = {
        name: Path(item["bundle"])
        for name, item in zip(TIMESTAMPED, summary["signatures"], strict=True)
    }
    other_ca = make_ca("dssesign other test CA")
    other_tsa = make_tsa_certificate(other_ca, common_name="another TSA")
    roots = {
        "listed": _sigstore_root(directory / "listed.json", tsa.chain),
        "no TSA": _sigstore_root(directory / "none.json", None),
        "another TSA": _sigstore_root(
            directory / "other.json", (other_tsa.certificate, other_ca.certificate)
        ),
        "TSA window later": _sigstore_root(
            directory / "later.json", tsa.chain, datetime.now(UTC) + timedelta(days=1)
        ),
    }
    jobs: Jobs = []
    cases: list[tuple[str, str]] = []
    for index, name in enumerate(TIMESTAMPED):
        bundle = bundles[name]
        other = bundles[TIMESTAMPED[(index + 1) % len(TIMESTAMPED)]]

        def other_token(data: dict[str, Any], other: Path = other) -> None:
            theirs = json.loads(other.read_bytes())
            data["verificationMaterial"]["timestampVerificationData"] = theirs[
                "verificationMaterial"
            ]["timestampVerificationData"]

        variants = {
            "as written": (bundle, "listed"),
            "tampered token signature": (
                _variant(bundle, "tst-sig", _tamper_token_signature),
                "listed",
            ),
            "tampered token content": (
                _variant(bundle, "tst-info", _tamper_token_content),
                "listed",
            ),
            "another signature's token": (_variant(bundle, "tst-other", other_token), "listed"),
            "no token": (_variant(bundle, "tst-none", _drop_tokens), "listed"),
            "tampered payload": (_variant(bundle, "payload", _tamper_payload), "listed"),
            **{case: (bundle, case) for case in roots if case != "listed"},
        }
        for case, (path, which) in variants.items():
            jobs.append(
                {
                    "bundle": str(path),
                    "key": str(pems[name]),
                    "trustedRoot": str(roots[which]),
                    "tlogThreshold": 0,
                    "ctlogThreshold": 0,
                    "tsaThreshold": 1,
                }
            )
            cases.append((name, case))
    results = sigstore_js(jobs)
    return {"results": dict(zip(cases, results, strict=True)), "bundles": bundles}


@pytest.mark.parametrize("algorithm", TIMESTAMPED)
def test_timestamped_keyed_bundle_verifies_with_sigstore_js(
    timestamped: dict[str, Any], tsa: Tsa, algorithm: str
) -> None:
    result = timestamped["results"][(algorithm, "as written")]
    assert result["ok"] is True, result
    # With no tlog entry, the one timestamp sigstore-js counted toward tsaThreshold 1 is the
    # bundle's one token (imprint, CMS signature, chain to the listed TSA, all checked).
    bundle = json.loads(timestamped["bundles"][algorithm].read_bytes())
    assert result["keyHint"] == bundle["verificationMaterial"]["publicKey"]["hint"]
    assert bundle["verificationMaterial"]["tlogEntries"] == []
    assert len(_tokens(bundle)) == 1
    assert tsa.requests >= len(TIMESTAMPED)  # the session's TSA was really asked


@pytest.mark.parametrize("algorithm", TIMESTAMPED)
@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("tampered token signature", "timestamp could not be verified"),
        ("tampered token content", "timestamp could not be verified"),
        ("another signature's token", "timestamp could not be verified"),
        ("no TSA", "timestamp could not be verified"),
        ("another TSA", "timestamp could not be verified"),
        ("TSA window later", "timestamp could not be verified"),
        ("no token", "expected 1 timestamps, got 0"),
    ],
)
def test_sigstore_js_rejects_bad_or_untrusted_timestamps(
    timestamped: dict[str, Any], tsa: Tsa, algorithm: str, case: str, message: str
) -> None:
    # The unchanged bundle under the root that lists the TSA verifies: each refusal is the
    # change's doing (and the positive test is not vacuous: the token is really judged).
    assert timestamped["results"][(algorithm, "as written")]["ok"] is True
    result = timestamped["results"][(algorithm, case)]
    assert result["ok"] is False and result["code"] == "TIMESTAMP_ERROR", result
    assert message in result["error"], result


@pytest.mark.parametrize("algorithm", TIMESTAMPED)
def test_sigstore_js_rejects_timestamped_bundle_with_changed_payload(
    timestamped: dict[str, Any], tsa: Tsa, algorithm: str
) -> None:
    # The token is over the signature, not the payload: the token still verifies and the
    # signature check is what refuses.
    result = timestamped["results"][(algorithm, "tampered payload")]
    assert result["ok"] is False and result["code"] == "SIGNATURE_ERROR", result


# --------------------------------------------------------------------------- countersignatures

#: Who signs first (`attest`) and who countersigns later (`countersign`), apart.
FIRST, SECOND = "ecdsa-p256", "ed25519"


@pytest.fixture(scope="module")
def countersigned(
    tmp_path_factory: pytest.TempPathFactory, tsa: Tsa, sigstore_js: Verify
) -> dict[str, Any]:
    """`attest --key A`, then `countersign --key B` twice over that envelope: once plain, once
    with `--tsa --trust-root`; B's appended bundles and their negatives in one node run."""
    directory = tmp_path_factory.mktemp("sigstore-js-countersigned")
    keys: dict[str, Path] = {}
    pems: dict[str, Path] = {}
    for name, algorithm in (("A", FIRST), ("B", SECOND)):
        keys[name], pems[name] = write_keypair(
            signer_for(algorithm, 33), directory / name, password=None
        )
    env = directory / "env.json"
    run = dssesign(
        "attest", *ATTEST_SLSA, "--key", keys["A"], "--bundle-dir", directory / "d1", "--out", env
    )
    assert run.code == 0, run
    root = directory / "dssesign-root.json"
    chain_pem = directory / "tsa-chain.pem"
    chain_pem.write_bytes(tsa.chain_pem)
    for step in (
        ("init", "--out", root),
        ("add-key", root, "--public-key", pems["A"]),
        ("add-key", root, "--public-key", pems["B"]),
        ("add-tsa", root, "--certificate-chain", chain_pem, "--name", "t"),
    ):
        done = dssesign("trust-root", *step)
        assert done.code == 0, done
    bundles: dict[str, Path] = {}
    envelopes: dict[str, Path] = {}
    for case, extra in (("plain", ()), ("timestamped", ("--tsa", tsa.url, "--trust-root", root))):
        envelopes[case] = directory / f"{case}.json"
        bundle_dir = directory / case
        run = dssesign(
            "countersign",
            env,
            "--key",
            keys["B"],
            "--bundle-dir",
            bundle_dir,
            "--out",
            envelopes[case],
            *extra,
            "--json",
        )
        assert run.code == 0, run
        (added,) = json.loads(run.out)["added"]
        bundles[case] = Path(added["bundle"])
        # Only the appended signature's bundle is written.
        assert sorted(bundle_dir.iterdir()) == [bundles[case]]
    listed = _sigstore_root(directory / "listed.json", tsa.chain)
    no_tsa = _sigstore_root(directory / "none.json", None)
    keyed = {"tlogThreshold": 0, "ctlogThreshold": 0}
    stamped = {**keyed, "tsaThreshold": 1}
    jobs: dict[tuple[str, str], dict[str, Any]] = {
        ("plain", "B's key"): {"bundle": str(bundles["plain"]), "key": str(pems["B"])},
        ("plain", "A's key"): {"bundle": str(bundles["plain"]), "key": str(pems["A"])},
        ("timestamped", "B's key"): {
            "bundle": str(bundles["timestamped"]),
            "key": str(pems["B"]),
            "trustedRoot": str(listed),
            **stamped,
        },
        ("timestamped", "A's key"): {
            "bundle": str(bundles["timestamped"]),
            "key": str(pems["A"]),
            "trustedRoot": str(listed),
            **stamped,
        },
        ("timestamped", "no TSA"): {
            "bundle": str(bundles["timestamped"]),
            "key": str(pems["B"]),
            "trustedRoot": str(no_tsa),
            **stamped,
        },
    }
    for job in jobs.values():
        for field, value in keyed.items():
            job.setdefault(field, value)
    results = sigstore_js(list(jobs.values()))
    return {
        "results": dict(zip(jobs, results, strict=True)),
        "bundles": bundles,
        "envelope": env,
        "envelopes": envelopes,
    }


@pytest.mark.parametrize("case", ["plain", "timestamped"])
def test_countersigned_bundle_verifies_with_sigstore_js(
    countersigned: dict[str, Any], case: str
) -> None:
    result = countersigned["results"][(case, "B's key")]
    assert result["ok"] is True, result
    bundle = json.loads(countersigned["bundles"][case].read_bytes())
    assert result["keyHint"] == bundle["verificationMaterial"]["publicKey"]["hint"]
    # The bundle sigstore-js verified carries the first envelope's payload, byte for byte ...
    first = Envelope.from_json(countersigned["envelope"].read_bytes())
    dsse = bundle["dsseEnvelope"]
    assert base64.b64decode(dsse["payload"]) == first.payload
    assert dsse["payloadType"] == first.payload_type
    # ... and the signature countersign appended after A's (which stays first, unchanged).
    after = Envelope.from_json(countersigned["envelopes"][case].read_bytes())
    assert after.payload == first.payload
    assert after.signatures[0] == first.signatures[0]
    assert [base64.b64decode(s["sig"]) for s in dsse["signatures"]] == [after.signatures[1].sig]
    assert after.signatures[1].keyid == signer_for(SECOND, 33).keyid
    if case == "timestamped":
        # tsaThreshold 1 with no tlog entry: the one timestamp counted is the bundle's token.
        assert bundle["verificationMaterial"]["tlogEntries"] == []
        assert len(_tokens(bundle)) == 1
    else:
        assert "timestampVerificationData" not in bundle["verificationMaterial"]


@pytest.mark.parametrize("case", ["plain", "timestamped"])
def test_sigstore_js_refuses_countersigned_bundle_under_first_signers_key(
    countersigned: dict[str, Any], case: str
) -> None:
    # The same bundle verifies under B's key (above), so the refusal is the key's doing.
    assert countersigned["results"][(case, "B's key")]["ok"] is True
    result = countersigned["results"][(case, "A's key")]
    assert result["ok"] is False and result["code"] == "PUBLIC_KEY_ERROR", result


def test_sigstore_js_judges_countersigned_bundles_token(countersigned: dict[str, Any]) -> None:
    # Under a Sigstore root that lists no TSA the appended bundle's token does not count.
    assert countersigned["results"][("timestamped", "B's key")]["ok"] is True
    result = countersigned["results"][("timestamped", "no TSA")]
    assert result["ok"] is False and result["code"] == "TIMESTAMP_ERROR", result
