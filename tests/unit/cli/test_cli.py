"""The `dssesign` command end to end, in a real subprocess: outputs, exit codes, one-line errors."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from dssesign.core.dsse import Envelope
from dssesign.core.keys import load_public_key
from tests.conftest import FIXTURES

ARTIFACT = FIXTURES / "artifacts" / "hello-1.0.tar.gz"
PROVENANCE = FIXTURES / "predicates" / "slsa-provenance-v1.json"
PASSWORD = "correct horse battery staple"
#: The subject, predicate and type most tests attest.
ATTEST_SLSA = ("--subject", ARTIFACT, "--predicate", PROVENANCE, "--type", "slsaprovenance1")


@dataclass
class Run:
    code: int
    out: str
    err: str


def dssesign(*args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> Run:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DSSESIGN_")}
    environment.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "dssesign", *map(str, args)],
        capture_output=True,
        text=True,
        env=environment,
        cwd=cwd,
        timeout=120,
        check=False,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def assert_one_line_error(run: Run, *fragments: str) -> None:
    assert run.code == 2, run
    lines = run.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), run.err
    assert "Traceback" not in run.err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three encrypted keys made through the CLI, shared by the module's tests."""
    directory = tmp_path_factory.mktemp("keys")
    made = {}
    for algorithm in ("ed25519", "ecdsa-p256", "ml-dsa-65"):
        run = dssesign(
            "keygen",
            "--algorithm",
            algorithm,
            "--out",
            directory / algorithm,
            env={"DSSESIGN_KEY_PASSWORD": PASSWORD},
        )
        assert run.code == 0, run
        made[algorithm] = directory / f"{algorithm}.key"
    return made


def _env() -> dict[str, str]:
    return {"DSSESIGN_KEY_PASSWORD": PASSWORD}


def test_keygen_writes_encrypted_key_0600_and_prints_keyid(keys: dict[str, Path]) -> None:
    for key in keys.values():
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert key.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        public = load_public_key(key.with_suffix(".pub").read_bytes())
        assert public.keyid == hashlib.sha256(public.spki_der).hexdigest()


@pytest.mark.parametrize("algorithm", ["ecdsa-p384", "rsa-pss-3072"])
def test_keygen_json_and_unencrypted_warning(tmp_path: Path, algorithm: str) -> None:
    run = dssesign("keygen", "--algorithm", algorithm, "--out", tmp_path / "k", "--json")
    assert run.code == 0, run
    info = json.loads(run.out)
    assert info["keyid"] == load_public_key((tmp_path / "k.pub").read_bytes()).keyid
    assert info["encrypted"] is False
    assert "not encrypted" in run.err


def test_attest_three_profiles_one_envelope(keys: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "env.json"
    run = dssesign(
        "attest",
        *ATTEST_SLSA,
        *[arg for key in keys.values() for arg in ("--key", key)],
        "--out",
        out,
        env=_env(),
    )
    assert run.code == 0, run
    assert "with 3 of 3 keys" in run.out
    envelope = Envelope.from_json(out.read_bytes())
    assert envelope.payload_type == "application/vnd.in-toto+json"
    statement = json.loads(envelope.payload)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    assert statement["subject"] == [
        {
            "name": ARTIFACT.name,
            "digest": {"sha256": hashlib.sha256(ARTIFACT.read_bytes()).hexdigest()},
        }
    ]
    assert statement["predicate"] == json.loads(PROVENANCE.read_text())
    for key, signature in zip(keys.values(), envelope.signatures, strict=True):
        public = load_public_key(key.with_suffix(".pub").read_bytes())
        assert signature.keyid == public.keyid
        assert public.verify(signature.sig, envelope.pae())


def test_attest_to_stdout_and_json(keys: dict[str, Path]) -> None:
    run = dssesign(
        "attest",
        "--subject",
        f"sha256:{'ab' * 32}",
        "--predicate",
        PROVENANCE,
        "--type",
        "https://slsa.dev/provenance/v1",
        "--key",
        keys["ed25519"],
        env=_env(),
    )
    assert run.code == 0, run
    envelope = Envelope.from_json(run.out.encode())
    assert len(envelope.signatures) == 1
    run = dssesign(
        "attest",
        *ATTEST_SLSA,
        "--key",
        keys["ed25519"],
        "--json",
        env=_env(),
    )
    summary = json.loads(run.out)
    assert summary["signatures"][0]["algorithm"] == "PKIX_ED25519"
    assert Envelope.from_dict(summary["envelope"]).payload_type == "application/vnd.in-toto+json"


def test_password_file_instead_of_environment(keys: dict[str, Path], tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD + "\n")
    run = dssesign(
        "sign",
        "--payload",
        ARTIFACT,
        "--payload-type",
        "application/octet-stream",
        "--key",
        keys["ecdsa-p256"],
        "--password-file",
        secret,
    )
    assert run.code == 0, run
    envelope = Envelope.from_json(run.out.encode())
    assert envelope.payload == ARTIFACT.read_bytes()


def test_statement_command_prints_canonical_statement(tmp_path: Path) -> None:
    run = dssesign(
        "statement",
        "--subject",
        ARTIFACT,
        "--sha512",
        "--predicate",
        PROVENANCE,
        "--type",
        "slsaprovenance1",
    )
    assert run.code == 0, run
    statement = json.loads(run.out)
    assert set(statement["subject"][0]["digest"]) == {"sha256", "sha512"}
    assert run.out.strip() == json.dumps(
        statement, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


def test_attest_from_a_statement_file(keys: dict[str, Path], tmp_path: Path) -> None:
    statement = tmp_path / "s.json"
    run = dssesign(
        "statement",
        *ATTEST_SLSA,
        "--out",
        statement,
    )
    assert run.code == 0, run
    run = dssesign("attest", "--statement", statement, "--key", keys["ed25519"], env=_env())
    assert run.code == 0, run
    assert Envelope.from_json(run.out.encode()).payload == statement.read_bytes().strip()


def test_threshold_beyond_key_count(keys: dict[str, Path], tmp_path: Path) -> None:
    run = dssesign(
        "sign",
        "--payload",
        ARTIFACT,
        "--payload-type",
        "x/y",
        "--key",
        keys["ed25519"],
        "--key",
        keys["ecdsa-p256"],
        "--threshold",
        "3",
        env=_env(),
    )
    assert_one_line_error(run, "threshold 3 must be between 1 and 2")


def test_public_key_command(keys: dict[str, Path]) -> None:
    run = dssesign("public-key", "--key", keys["ml-dsa-65"], "--json", env=_env())
    assert run.code == 0, run
    info = json.loads(run.out)
    assert info["algorithm"] == "ML_DSA_65"
    assert info["publicKey"] == keys["ml-dsa-65"].with_suffix(".pub").read_text()


def test_predicate_types_lists_cosign_names() -> None:
    run = dssesign("predicate-types", "--json")
    assert run.code == 0, run
    names = {n: t["uri"] for t in json.loads(run.out) for n in t["shortNames"]}
    assert names["slsaprovenance1"] == "https://slsa.dev/provenance/v1"
    assert names["custom"] == "https://cosign.sigstore.dev/attestation/v1"


# --- bad input: exit 2, one line naming the problem, nothing written -------------------------


def _attest(keys: dict[str, Path], out: Path, *extra: str | Path, key: str = "ed25519") -> Run:
    return dssesign("attest", "--key", keys[key], "--out", out, *extra, env=_env())


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (
            [
                "--subject",
                "/nonexistent/file",
                "--predicate",
                PROVENANCE,
                "--type",
                "slsaprovenance1",
            ],
            ["/nonexistent/file"],
        ),
        (
            ["--subject", FIXTURES, "--predicate", PROVENANCE, "--type", "slsaprovenance1"],
            ["directory"],
        ),
        (["--subject", ARTIFACT, "--predicate", PROVENANCE, "--type", "slsa"], ["'slsa'"]),
        (
            ["--subject", ARTIFACT, "--predicate", ARTIFACT, "--type", "slsaprovenance1"],
            ["not valid JSON"],
        ),
        (["--predicate", PROVENANCE, "--type", "slsaprovenance1"], ["no subjects"]),
        (
            ["--subject", ARTIFACT, "--predicate", "/nonexistent/p.json", "--type", "vsa"],
            ["/nonexistent/p.json"],
        ),
        (
            ["--subject", "sha256:abc", "--predicate", PROVENANCE, "--type", "slsaprovenance1"],
            ["sha256:abc"],
        ),
    ],
)
def test_bad_input(
    keys: dict[str, Path], tmp_path: Path, args: list[str | Path], fragments: list[str]
) -> None:
    out = tmp_path / "out.json"
    assert_one_line_error(_attest(keys, out, *args), *fragments)
    assert not out.exists()


def test_predicate_failing_its_schema_names_the_path(keys: dict[str, Path], tmp_path: Path) -> None:
    bad = json.loads(PROVENANCE.read_text())
    del bad["buildDefinition"]["buildType"]
    predicate = tmp_path / "bad.json"
    predicate.write_text(json.dumps(bad))
    out = tmp_path / "out.json"
    run = _attest(
        keys, out, "--subject", ARTIFACT, "--predicate", predicate, "--type", "slsaprovenance1"
    )
    assert_one_line_error(run, "buildDefinition", "buildType")
    assert not out.exists()


def test_wrong_passphrase_is_exit_2_and_secret_free(keys: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    run = dssesign(
        "attest",
        *ATTEST_SLSA,
        "--key",
        keys["ed25519"],
        "--out",
        out,
        env={"DSSESIGN_KEY_PASSWORD": "hunter2-wrong"},
    )
    assert_one_line_error(run, "wrong passphrase", str(keys["ed25519"]))
    assert "hunter2" not in run.err and "hunter2" not in run.out
    assert not out.exists()


def test_missing_passphrase(keys: dict[str, Path]) -> None:
    run = dssesign("sign", "--payload", ARTIFACT, "--payload-type", "x/y", "--key", keys["ed25519"])
    assert_one_line_error(run, "is encrypted", "DSSESIGN_KEY_PASSWORD")


def test_same_key_twice(keys: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    run = _attest(
        keys,
        out,
        "--key",
        keys["ed25519"],
        *ATTEST_SLSA,
    )
    assert_one_line_error(run, "the same key was given twice")
    assert not out.exists()


def test_unknown_algorithm_and_usage_errors(tmp_path: Path) -> None:
    assert_one_line_error(
        dssesign("keygen", "--algorithm", "rsa-1024", "--out", tmp_path / "k"),
        "unknown algorithm 'rsa-1024'",
    )
    assert not (tmp_path / "k.key").exists()
    assert_one_line_error(dssesign("attest"), "--key")
    assert_one_line_error(dssesign("frobnicate"), "invalid choice")
    assert_one_line_error(
        dssesign("sign", "--payload", ARTIFACT, "--payload-type", "t", "--key", "nosuch://x"),
        "unknown key reference scheme",
    )


def test_payload_type_must_be_printable_text(keys: dict[str, Path]) -> None:
    for bad in ("a\tb", "a\udcffb"):  # a control character; argv bytes that are not UTF-8
        run = dssesign(
            "sign",
            "--payload",
            ARTIFACT,
            "--payload-type",
            bad,
            "--key",
            keys["ed25519"],
            env=_env(),
        )
        assert_one_line_error(run, "--payload-type must be printable UTF-8 text")


def test_failed_command_keeps_an_existing_output(keys: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    out.write_text("previous")
    run = _attest(
        keys,
        out,
        "--subject",
        "/nonexistent",
        "--predicate",
        PROVENANCE,
        "--type",
        "slsaprovenance1",
    )
    assert run.code == 2
    assert out.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temp file left behind


def test_debug_shows_a_traceback(tmp_path: Path) -> None:
    run = dssesign(
        "keygen", "--algorithm", "nope", "--out", tmp_path / "k", env={"DSSESIGN_DEBUG": "1"}
    )
    assert run.code == 2 and "Traceback" in run.err


def test_version_and_help() -> None:
    assert dssesign("--version").out.startswith("dssesign ")
    run = dssesign("--help")
    assert run.code == 0 and "attest" in run.out


def test_envelope_is_standard_base64(keys: dict[str, Path]) -> None:
    run = dssesign(
        "sign", "--payload", ARTIFACT, "--payload-type", "x/y", "--key", keys["ed25519"], env=_env()
    )
    data = json.loads(run.out)
    assert base64.b64decode(data["payload"], validate=True) == ARTIFACT.read_bytes()


def test_a_reader_that_goes_away_is_not_an_internal_error() -> None:
    """`dssesign predicate-types | head -1`: the closed pipe ends the command quietly."""
    process = subprocess.Popen(
        [sys.executable, "-m", "dssesign", "predicate-types"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # before the command writes: its first write meets EPIPE
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 141, stderr
    assert stderr == ""
