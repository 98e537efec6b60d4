"""`dssesign attest|sign --bundle-dir`: one Sigstore bundle per signature, beside the envelope."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from dssesign.core.dsse import Envelope, pae
from dssesign.core.keys import PublicKey, load_public_key
from dssesign.profiles.software import write_keypair
from dssesign.sign.bundles import public_key_hint
from dssesign.sign.signer import load_signer
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
from tests.unit.cli.test_cli import ATTEST_SLSA, assert_one_line_error, dssesign

TOKEN_SENTINEL = "eyJhbGciOiJub25lIn0.eyJzZWNyZXQiOiJkby1ub3Qtc2hvdyJ9.c2VjcmV0LXRva2Vu"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two unencrypted software keys (PREFIX.key + PREFIX.pub)."""
    directory = tmp_path_factory.mktemp("bundle-keys")
    for name in ("ed25519", "ecdsa-p256"):
        write_keypair(signer_for(name, 20), directory / name, password=None)
    return {name: directory / f"{name}.key" for name in ("ed25519", "ecdsa-p256")}


def _pub(key: Path) -> PublicKey:
    return load_public_key(key.with_suffix(".pub").read_bytes())


def _check_keyed_bundle(path: Path, envelope: Envelope, key: PublicKey) -> None:
    bundle = json.loads(path.read_bytes())
    assert bundle["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert bundle["verificationMaterial"]["publicKey"]["hint"] == public_key_hint(key)
    dsse = bundle["dsseEnvelope"]
    assert base64.b64decode(dsse["payload"]) == envelope.payload  # byte-identical
    assert dsse["payloadType"] == envelope.payload_type
    (only,) = dsse["signatures"]
    mine = [s for s in envelope.signatures if s.keyid == key.keyid]
    assert len(mine) == 1 and base64.b64decode(only["sig"]) == mine[0].sig
    assert key.verify(mine[0].sig, pae(dsse["payloadType"], base64.b64decode(dsse["payload"])))


def test_attest_writes_one_bundle_per_signature_with_an_hsm_key(
    keys: dict[str, Path], softhsm: SoftHsm, tmp_path: Path
) -> None:
    hsm_uri = softhsm.uri(MAIN, "ecdsa-p384")
    env = {PIN_ENV: PIN, "SOFTHSM2_CONF": softhsm.env["SOFTHSM2_CONF"]}
    out = tmp_path / "sbom.intoto.json"
    bundles = tmp_path / "bundles" / "nested"  # created on demand
    run = dssesign(
        "attest",
        *ATTEST_SLSA,
        "--key",
        keys["ed25519"],
        "--key",
        hsm_uri,
        "--key",
        keys["ecdsa-p256"],
        "--out",
        out,
        "--bundle-dir",
        bundles,
        "--json",
        env=env,
    )
    assert run.code == 0, run
    assert PIN not in run.out + run.err
    envelope = Envelope.from_json(out.read_bytes())
    summary = json.loads(run.out)
    assert len(envelope.signatures) == 3
    hsm_key = load_signer(hsm_uri).public_key  # the fixture set SOFTHSM2_CONF and the PIN
    expected = [_pub(keys["ed25519"]), hsm_key, _pub(keys["ecdsa-p256"])]
    names = [f"sbom.intoto.{k.keyid[:16]}.sigstore.json" for k in expected]
    assert sorted(p.name for p in bundles.iterdir()) == sorted(names)
    assert [Path(s["bundle"]).name for s in summary["signatures"]] == names
    for name, key in zip(names, expected, strict=True):
        _check_keyed_bundle(bundles / name, envelope, key)


def test_sign_to_stdout_names_bundles_after_envelope(keys: dict[str, Path], tmp_path: Path) -> None:
    payload = tmp_path / "payload.bin"
    payload.write_bytes(b"\x00binary payload\xff")
    run = dssesign(
        "sign",
        "--payload",
        payload,
        "--payload-type",
        "application/octet-stream",
        "--key",
        keys["ecdsa-p256"],
        "--bundle-dir",
        tmp_path,
    )
    assert run.code == 0, run
    envelope = Envelope.from_json(run.out.encode())
    key = _pub(keys["ecdsa-p256"])
    bundle = tmp_path / f"envelope.{key.keyid[:16]}.sigstore.json"
    assert "bundle -> " + str(bundle) in run.err
    _check_keyed_bundle(bundle, envelope, key)


def test_a_bundle_dir_that_is_a_file_is_refused_before_signing(
    keys: dict[str, Path], tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = tmp_path / "env.json"
    run = dssesign(
        "attest", *ATTEST_SLSA, "--key", keys["ed25519"], "--out", out, "--bundle-dir", blocker
    )
    assert_one_line_error(run, "--bundle-dir", "not a directory")
    assert not out.exists()


def test_keyless_option_errors_never_show_the_token(
    sigstore_instance: SigstoreInstance,
    tmp_path: Path,
) -> None:
    missing = dssesign("attest", *ATTEST_SLSA, "--key", "keyless", "--identity-token-file", "nope")
    assert_one_line_error(missing, "identity token file nope", "no such file")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    run = dssesign("attest", *ATTEST_SLSA, "--key", "keyless", "--identity-token-file", empty)
    assert_one_line_error(run, "empty")
    no_config = dssesign("attest", *ATTEST_SLSA, "--key", "keyless", "--trust-config", "nope.json")
    assert_one_line_error(no_config, "trust config nope.json")
    # A token the instance's client refuses (not a JWT for aud=sigstore), from a file or the
    # environment: the error names the problem, never the token.
    token = tmp_path / "token"
    token.write_text(TOKEN_SENTINEL + "\n")
    config = ("--trust-config", sigstore_instance.trust_config_path)
    for extra, env in (
        (("--identity-token-file", token), {}),
        ((), {"DSSESIGN_OIDC_TOKEN": TOKEN_SENTINEL}),
    ):
        run = dssesign("attest", *ATTEST_SLSA, "--key", "keyless", *config, *extra, env=env)
        assert_one_line_error(run, "identity token")
        assert TOKEN_SENTINEL not in run.out + run.err
        assert "c2VjcmV0LXRva2Vu" not in run.err


def test_keyless_and_keyed_bundles_side_by_side(
    keys: dict[str, Path],
    sigstore_instance: SigstoreInstance,
    tmp_path: Path,
) -> None:
    token = sigstore_instance.identity_token()
    token_file = tmp_path / "token.jwt"
    token_file.write_text(token + "\n")
    out = tmp_path / "att.json"
    run = dssesign(
        "attest",
        *ATTEST_SLSA,
        "--key",
        "keyless",
        "--key",
        keys["ed25519"],
        "--identity-token-file",
        token_file,
        "--trust-config",
        sigstore_instance.trust_config_path,
        "--out",
        out,
        "--bundle-dir",
        tmp_path / "b",
        "--audit-log",
        tmp_path / "audit.jsonl",
    )
    assert run.code == 0, run
    assert token not in run.out + run.err
    # The signing record names the keyless signer, never its token (nor any piece of it).
    audit = (tmp_path / "audit.jsonl").read_text()
    assert '"keyless"' in audit
    assert all(part not in audit for part in token.split("."))
    envelope = Envelope.from_json(out.read_bytes())
    assert [s.keyid for s in envelope.signatures] == ["", _pub(keys["ed25519"]).keyid]
    key = _pub(keys["ed25519"])
    keyless = tmp_path / "b" / "att.keyless-1.sigstore.json"
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == sorted(
        [keyless.name, f"att.{key.keyid[:16]}.sigstore.json"]
    )
    _check_keyed_bundle(tmp_path / "b" / f"att.{key.keyid[:16]}.sigstore.json", envelope, key)
    bundle = json.loads(keyless.read_bytes())
    assert bundle["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert "certificate" in bundle["verificationMaterial"]
    assert len(bundle["verificationMaterial"]["tlogEntries"]) == 1
    dsse = bundle["dsseEnvelope"]
    assert base64.b64decode(dsse["payload"]) == envelope.payload
    assert base64.b64decode(dsse["signatures"][0]["sig"]) == envelope.signatures[0].sig

    # The same from the environment (token and instance), without the options.
    again = dssesign(
        "attest",
        *ATTEST_SLSA,
        "--key",
        "keyless",
        "--bundle-dir",
        tmp_path / "c",
        "--json",
        env=sigstore_instance.env(),
    )
    assert again.code == 0, again
    summary = json.loads(again.out)
    assert [Path(s["bundle"]).name for s in summary["signatures"]] == [
        "envelope.keyless-1.sigstore.json"
    ]
    assert summary["signatures"][0]["keyid"] == ""
    assert summary["signatures"][0]["identity"] == sigstore_instance.subject
    assert summary["signatures"][0]["issuer"] == sigstore_instance.issuer
