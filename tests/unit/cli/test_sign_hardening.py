"""The signing commands' outputs and secrets, hardened: no partial output, no destroyed input,
no special file replaced, no empty or undecodable secret, no secret in the audit log, no
envelope the verifier would refuse."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from dssesign._internal.fileio import OutputSet, atomic_write
from dssesign.audit import AuditLog, read_records
from dssesign.errors import ConfigError, InputError
from dssesign.intoto.statement import PAYLOAD_TYPE, parse_statement
from dssesign.profiles import pkcs11
from dssesign.profiles.software import write_keypair
from dssesign.sign.multisign import MultiProfileSigner, is_exportable
from dssesign.sign.signer import redacted_reference
from tests.conftest import DelegatingSigner, signer_for
from tests.unit.cli.test_cli import ARTIFACT, PROVENANCE, Run, assert_one_line_error, dssesign

DIGEST = "sha256:" + "ab" * 32
PREDICATE = b'{"note": "hello"}\n'


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A directory with an unencrypted key pair, a subject and a predicate."""
    write_keypair(signer_for("ed25519", 30), tmp_path / "sign", password=None)
    (tmp_path / "subject.bin").write_bytes(b"artifact\n")
    (tmp_path / "predicate.json").write_bytes(PREDICATE)
    return tmp_path


def _attest(work: Path, *extra: str | Path, env: dict[str, str] | None = None) -> Run:
    return dssesign(
        "attest",
        "--key",
        work / "sign.key",
        "--subject",
        work / "subject.bin",
        "--predicate",
        work / "predicate.json",
        "--type",
        "custom",
        *extra,
        env=env,
    )


def _run_with_umask(umask: int, *args: str | Path) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DSSESIGN_")}
    return subprocess.run(
        [sys.executable, "-m", "dssesign", *map(str, args)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
        preexec_fn=lambda: os.umask(umask),
    )


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


# --- A: a failed command leaves no partial output --------------------------------------------


def test_unwritable_out_leaves_no_bundle_and_no_audit_record(work: Path) -> None:
    log = work / "audit.log"
    run = _attest(
        work,
        "--bundle-dir",
        work / "bundles",
        "--out",
        work / "missing-dir" / "envelope.json",
        "--audit-log",
        log,
    )
    assert_one_line_error(run, "--out", "no such directory")
    assert not (work / "bundles").exists()  # not even created
    assert not log.exists() or all(r.get("result") != "success" for r in read_records(log))


def test_out_that_is_a_directory_is_refused_before_signing(work: Path) -> None:
    (work / "out.json").mkdir()
    log = work / "audit.log"
    run = _attest(work, "--bundle-dir", work / "b", "--out", work / "out.json", "--audit-log", log)
    assert_one_line_error(run, "is a directory")
    assert not (work / "b").exists() and not log.exists()


def test_a_key_that_fails_to_load_removes_the_bundle_dir_it_created(work: Path) -> None:
    (work / "bad.key").write_text("not a key\n")
    run = dssesign(
        "sign",
        "--payload",
        work / "subject.bin",
        "--payload-type",
        "text/plain",
        "--key",
        work / "bad.key",
        "--bundle-dir",
        work / "new" / "bundles",
        "--out",
        work / "env.json",
    )
    assert run.code == 2, run
    assert not (work / "new").exists() and not (work / "env.json").exists()
    assert not [p for p in work.iterdir() if p.name.endswith(".tmp")]


def test_a_bundle_that_would_overwrite_an_input_is_refused_before_signing(work: Path) -> None:
    keyid = signer_for("ed25519", 30).keyid
    bundles = work / "bundles"
    bundles.mkdir()
    # The predicate sits where the bundle of this key would be written.
    predicate = bundles / f"envelope.{keyid[:16]}.sigstore.json"
    predicate.write_bytes(PREDICATE)
    log = work / "audit.log"
    run = dssesign(
        "attest",
        "--key",
        work / "sign.key",
        "--subject",
        DIGEST,
        "--predicate",
        predicate,
        "--type",
        "custom",
        "--bundle-dir",
        bundles,
        "--audit-log",
        log,
    )
    assert_one_line_error(run, "bundle", "--predicate", "refusing to overwrite")
    assert predicate.read_bytes() == PREDICATE
    assert not log.exists() or read_records(log) == []


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_an_envelope_that_cannot_be_written_publishes_no_bundle(work: Path) -> None:
    log = work / "audit.log"
    run = _attest(work, "--bundle-dir", work / "b", "--out", "/dev/full", "--audit-log", log)
    assert_one_line_error(run, "cannot write --out /dev/full")
    assert not (work / "b").exists()
    records = read_records(log)
    # Recorded before anything was published; then the publication is recorded as failed.
    assert [r["event"] for r in records] == ["sign", "publish"]
    assert records[1]["result"] == "failure" and records[1]["errorCode"].startswith(
        "not-published:"
    )
    assert records[0]["operationId"] == records[1]["operationId"]


def test_publish_failure_removes_new_files_and_temp_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    existing = tmp_path / "existing.json"
    existing.write_bytes(b"old\n")
    calls = []
    real_replace = os.replace

    def failing_replace(src: str, dst: os.PathLike[str] | str) -> None:
        calls.append(dst)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    outputs = OutputSet()
    with pytest.raises(InputError, match="No space left"), outputs:
        for name in ("a.json", "existing.json", "c.json"):
            outputs.add(tmp_path / name)
            outputs.write(tmp_path / name, b"new\n")
        outputs.publish()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing.json"]
    assert existing.read_bytes() == b"new\n"  # replaced before the failure: complete, not torn


def test_keygen_leaves_no_private_key_when_the_public_key_cannot_be_written(
    tmp_path: Path,
) -> None:
    (tmp_path / "k.pub").mkdir()
    run = dssesign("keygen", "--algorithm", "ed25519", "--out", tmp_path / "k", "--force")
    assert_one_line_error(run, "k.pub", "is a directory")
    assert not (tmp_path / "k.key").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["k.pub"]


# --- B: outputs never destroy inputs or special files ----------------------------------------


@pytest.mark.parametrize("victim", ["key", "subject", "predicate", "password", "audit-log"])
def test_attest_out_never_overwrites_an_input(work: Path, victim: str) -> None:
    password = work / "password"
    password.write_text("hunter2-unused\n")
    log = work / "audit.log"
    log.write_bytes(b"")
    target = {
        "key": work / "sign.key",
        "subject": work / "subject.bin",
        "predicate": work / "predicate.json",
        "password": password,
        "audit-log": log,
    }[victim]
    before = _snapshot(work)
    extra: list[str | Path] = ["--audit-log", log, "--out", target]
    if victim == "password":
        extra = ["--password-file", password, *extra]
    run = _attest(work, *extra)
    assert_one_line_error(run, str(target), "refusing to overwrite an input")
    assert _snapshot(work) == before


def test_a_link_to_an_input_is_that_input(work: Path) -> None:
    os.link(work / "sign.key", work / "hard.json")
    (work / "soft.json").symlink_to(work / "predicate.json")
    for out in ("hard.json", "soft.json"):
        run = _attest(work, "--out", work / out)
        assert_one_line_error(run, "refusing to overwrite an input")
    assert (work / "predicate.json").read_bytes() == PREDICATE
    assert (work / "sign.key").read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")


@pytest.mark.parametrize("command", ["sign", "statement", "public-key"])
def test_other_commands_never_overwrite_their_inputs(work: Path, command: str) -> None:
    before = _snapshot(work)
    if command == "sign":
        args: list[str | Path] = [
            "sign", "--payload", work / "subject.bin", "--payload-type", "text/plain",
            "--key", work / "sign.key", "--out", work / "subject.bin",
        ]  # fmt: skip
    elif command == "statement":
        args = [
            "statement", "--subject", work / "subject.bin", "--predicate",
            work / "predicate.json", "--type", "custom", "--out", work / "predicate.json",
        ]  # fmt: skip
    else:
        args = ["public-key", "--key", work / "sign.key", "--out", work / "sign.key"]
    run = dssesign(*args)
    assert_one_line_error(run, "refusing to overwrite an input")
    assert _snapshot(work) == before


def test_keygen_never_overwrites_its_password_file(tmp_path: Path) -> None:
    password = tmp_path / "k.pub"
    password.write_text("correct horse\n")
    run = dssesign(
        "keygen", "--algorithm", "ed25519", "--out", tmp_path / "k", "--force",
        "--password-file", password,
    )  # fmt: skip
    assert_one_line_error(run, "--password-file", "refusing to overwrite an input")
    assert password.read_text() == "correct horse\n"
    assert not (tmp_path / "k.key").exists()


def test_keygen_outputs_that_are_one_file_are_refused(tmp_path: Path) -> None:
    (tmp_path / "k.key").write_text("old key\n")
    (tmp_path / "k.pub").symlink_to(tmp_path / "k.key")
    run = dssesign("keygen", "--algorithm", "ed25519", "--out", tmp_path / "k", "--force")
    assert_one_line_error(run, "are the same file")
    assert (tmp_path / "k.key").read_text() == "old key\n"


def test_keygen_refuses_a_dangling_symlink_without_force(tmp_path: Path) -> None:
    (tmp_path / "k.key").symlink_to(tmp_path / "elsewhere.key")
    run = dssesign("keygen", "--algorithm", "ed25519", "--out", tmp_path / "k")
    assert_one_line_error(run, "exists; refusing to overwrite it")
    assert not (tmp_path / "elsewhere.key").exists()


def test_dev_null_stays_a_device(work: Path) -> None:
    run = _attest(work, "--out", os.devnull)
    assert run.code == 0, run
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


def test_a_fifo_is_written_in_place(work: Path) -> None:
    fifo = work / "pipe"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    run = _attest(work, "--out", fifo)
    out, _ = reader.communicate(timeout=60)
    assert run.code == 0, run
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert json.loads(out)["payloadType"] == PAYLOAD_TYPE


def test_dev_stdout_gets_the_envelope_and_stderr_the_summary(work: Path) -> None:
    run = _attest(work, "--out", "/dev/stdout")
    assert run.code == 0, run
    assert json.loads(run.out)["payloadType"] == PAYLOAD_TYPE
    assert "signed application/vnd.in-toto+json" in run.err


def test_a_symlink_is_written_through_and_keeps_the_target_mode(work: Path) -> None:
    target = work / "real.json"
    target.write_text("old\n")
    target.chmod(0o640)
    link = work / "link.json"
    link.symlink_to(target.name)
    run = _attest(work, "--out", link)
    assert run.code == 0, run
    assert link.is_symlink() and os.readlink(link) == "real.json"
    assert json.loads(target.read_bytes())["payloadType"] == PAYLOAD_TYPE
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_new_files_get_the_umask_and_private_keys_0600(work: Path) -> None:
    proc = _run_with_umask(
        0o027, "keygen", "--algorithm", "ed25519", "--out", work / "new"
    )  # unencrypted: a warning, exit 0
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE((work / "new.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((work / "new.pub").stat().st_mode) == 0o640
    proc = _run_with_umask(
        0o002, "statement", "--subject", DIGEST, "--predicate", work / "predicate.json",
        "--type", "custom", "--out", work / "statement.json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE((work / "statement.json").stat().st_mode) == 0o664


def test_atomic_write_keeps_mode_and_forces_an_explicit_one(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("x")
    path.chmod(0o600)
    atomic_write(path, b"y")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_bytes() == b"y"
    atomic_write(path, b"z", mode=0o640)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    with pytest.raises(InputError, match="refusing to overwrite"):
        atomic_write(path, b"w", inputs=[("the input", path)])
    assert path.read_bytes() == b"z"


@pytest.mark.parametrize(
    "args",
    [
        ("vault", "public-key", "--uri", "hashivault://k"),
        ("vault", "create-key", "--uri", "hashivault://k", "--key-type", "ed25519"),
        ("kms", "public-key", "--uri", "awskms://127.0.0.1:9/alias/k"),
        ("hsm", "public-key", "--uri", "pkcs11:token=t;object=k"),
    ],
)
def test_key_commands_check_out_before_any_backend_call(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    (tmp_path / "dir.pem").mkdir()
    run = dssesign(*args, "--out", tmp_path / "dir.pem")
    assert_one_line_error(run, "--out", "is a directory")


# --- C: secrets stay where they are ----------------------------------------------------------


def test_an_empty_password_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "pw"
    empty.write_text("\n")
    run = dssesign(
        "keygen", "--algorithm", "ed25519", "--out", tmp_path / "k", "--password-file", empty
    )
    assert_one_line_error(run, "empty passphrase is refused")
    assert not (tmp_path / "k.key").exists() and not (tmp_path / "k.pub").exists()


def test_an_empty_password_variable_is_refused_and_an_unset_one_warns(tmp_path: Path) -> None:
    run = dssesign(
        "keygen", "--algorithm", "ed25519", "--out", tmp_path / "k",
        env={"DSSESIGN_KEY_PASSWORD": ""},
    )  # fmt: skip
    assert_one_line_error(run, "DSSESIGN_KEY_PASSWORD is set but empty")
    assert not (tmp_path / "k.key").exists()
    run = dssesign("keygen", "--algorithm", "ed25519", "--out", tmp_path / "k")
    assert run.code == 0 and "is not encrypted" in run.err


def test_a_non_utf8_passphrase_names_its_source_only(work: Path) -> None:
    run = _attest(work, env={"DSSESIGN_KEY_PASSWORD": "pw\udcff\udcfe"})
    assert_one_line_error(run, "DSSESIGN_KEY_PASSWORD: not valid UTF-8")
    assert "internal error" not in run.err and "xff" not in run.err and "position" not in run.err


def test_a_non_utf8_pin_names_its_source_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_PIN", "12\udcff34")
    with pytest.raises(ConfigError) as caught:
        pkcs11.read_pin(pkcs11.parse_uri("pkcs11:token=t;object=k?pin-source=env:MY_PIN"))
    assert str(caught.value) == "pin-source env:MY_PIN: not valid UTF-8"
    monkeypatch.setenv(pkcs11.PIN_ENV, "\udcff")
    with pytest.raises(ConfigError, match=f"^{pkcs11.PIN_ENV}: not valid UTF-8$"):
        pkcs11.read_pin(pkcs11.parse_uri("pkcs11:token=t;object=k"))
    pin_file = tmp_path / "pin"
    pin_file.write_bytes(b"12\xff34\n")
    with pytest.raises(ConfigError) as caught:
        pkcs11.read_pin(pkcs11.parse_uri(f"pkcs11:token=t;object=k?pin-source=file:{pin_file}"))
    assert str(caught.value) == f"pin-source file {pin_file}: not valid UTF-8"


def test_a_non_ascii_vault_token_is_refused_without_echo(tmp_path: Path) -> None:
    env = {"VAULT_ADDR": "http://127.0.0.1:9", "VAULT_TOKEN": "s.\udcffsecret"}
    run = dssesign(
        "vault", "public-key", "--uri", "hashivault://k", env=env | {"HOME": str(tmp_path)}
    )
    assert_one_line_error(run, "Vault token", "not printable ASCII")
    assert "secret" not in run.err and "position" not in run.err


#: PIN-like values, and where a PIN is (the name of a variable: fine in an error, not a record).
SECRETS = ("4711pin", "9999user", "pv-secret", "xsecret", "/secret/pin/path")
WHERE = ("SECRETVAR",)


@pytest.mark.parametrize(
    "reference",
    [
        "pkcs11:token=t;object=k;pin=4711pin",
        "pkcs11:token=t;userpin=9999user;object=k",
        "pkcs11:token=t;object=k?pin-value=pv-secret",
        "pkcs11:token=t;object=k;x-pin=xsecret?pin-source=env:SECRETVAR",
        "PKCS11:token=t;object=k?pin-source=file:/secret/pin/path&userpin=9999user",
    ],
)
def test_refused_references_reach_the_audit_log_redacted(work: Path, reference: str) -> None:
    log = work / "audit.log"
    run = dssesign(
        "sign", "--payload", ARTIFACT, "--payload-type", "text/plain", "--key", reference,
        "--audit-log", log,
    )  # fmt: skip
    assert run.code == 2, run
    text = log.read_text()
    for secret in SECRETS:
        assert secret not in text and secret not in run.err
    for where in WHERE:
        assert where not in text
    (record,) = read_records(log)
    assert record["result"] == "failure" and record["keyRef"].startswith("pkcs11:token=t")


def test_redacted_reference_is_an_allow_list() -> None:
    assert (
        redacted_reference(
            "pkcs11:token=t;object=k;id=%01;pin=1;serial=s?module-path=/m.so"
            "&pin-source=env:PINVAR&pool-size=2&x-secret=3#frag"
        )
        == "pkcs11:token=t;object=k;id=%01;serial=s?module-path=/m.so&pin-source=env&pool-size=2"
    )
    assert redacted_reference("pkcs11:object=k?pin-source=/run/pin") == (
        "pkcs11:object=k?pin-source=file"
    )
    assert redacted_reference("awskms://u:p@host:4566/alias/k?region=eu-west-1&token=t") == (
        "awskms://host:4566/alias/k?region=eu-west-1"
    )
    assert redacted_reference("hashivault://k?version=3&allow-exportable=true&x=1") == (
        "hashivault://k?version=3&allow-exportable=true"
    )
    assert redacted_reference("mykms:secret-in-an-opaque-body") == "mykms:"
    assert redacted_reference("unknown://host/path/with/secret?k=v") == "unknown://host"
    assert redacted_reference("keys/sign.key") == "keys/sign.key"
    assert redacted_reference("keyless") == "keyless"


class _ExportableSigner(DelegatingSigner):
    exportable = True


def test_exportable_keys_are_marked_in_records_and_summaries(tmp_path: Path) -> None:
    from dssesign.cli.sign import _signature_summary

    exportable = _ExportableSigner(signer_for("ed25519", 31), reference="hashivault://k?version=1")
    plain = DelegatingSigner(signer_for("ecdsa-p256", 31))
    assert is_exportable(exportable) and not is_exportable(plain)
    with AuditLog(tmp_path / "audit.log") as log:
        MultiProfileSigner([exportable, plain], audit=log).sign(b"{}", "text/plain")
    records = {r["keyid"]: r for r in read_records(tmp_path / "audit.log")}
    assert records[exportable.keyid]["exportable"] is True
    assert "exportable" not in records[plain.keyid]
    assert _signature_summary(exportable, exportable.keyid)["exportable"] is True
    assert _signature_summary(plain, plain.keyid)["exportable"] is False


def test_exportable_keys_are_warned_about(capsys: pytest.CaptureFixture[str]) -> None:
    from dssesign.cli.signing import _warn_exportable

    _warn_exportable([_ExportableSigner(signer_for("ed25519", 31), reference="hashivault://k")])
    _warn_exportable([DelegatingSigner(signer_for("ecdsa-p256", 31))])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: key hashivault://k can leave its device")


# --- D: `sign` emits only what `verify` accepts ----------------------------------------------


def _sign_in_toto(work: Path, payload: bytes, payload_type: str = PAYLOAD_TYPE) -> Run:
    path = work / "payload.json"
    path.write_bytes(payload)
    return dssesign(
        "sign", "--payload", path, "--payload-type", payload_type, "--key", work / "sign.key",
        "--out", work / "env.json",
    )  # fmt: skip


def _statement(**overrides: object) -> dict[str, object]:
    statement: dict[str, object] = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "a", "digest": {"sha256": "ab" * 32}}],
        "predicateType": "https://example.com/p/v1",
        "predicate": {},
    }
    statement.update(overrides)
    return statement


def test_sign_refuses_an_in_toto_payload_with_duplicate_members(work: Path) -> None:
    payload = json.dumps(_statement()).encode()
    duplicated = payload.replace(b'"predicate": {}', b'"predicate": {}, "predicate": {"x": 1}')
    run = _sign_in_toto(work, duplicated)
    assert_one_line_error(run, "duplicate member 'predicate'")
    assert not (work / "env.json").exists()


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b'{"_type": "https://in-toto.io/Statement/v1"}',
        json.dumps(_statement(subject=[])).encode(),
        b"[" * 100 + b"]" * 100,
    ],
)
def test_sign_refuses_what_the_verifier_would_not_read(work: Path, payload: bytes) -> None:
    run = _sign_in_toto(work, payload)
    assert run.code == 2, run
    assert not (work / "env.json").exists()


def test_sign_refuses_a_payload_type_the_verifier_refuses(work: Path) -> None:
    run = _sign_in_toto(work, b"hello", "x/" + "y" * 1100)
    assert_one_line_error(run, "--payload-type", "1024")
    run = _sign_in_toto(work, json.dumps(_statement()).encode(), "Application/Vnd.In-Toto+JSON")
    assert_one_line_error(run, "exactly as application/vnd.in-toto+json")
    assert not (work / "env.json").exists()


def test_sign_accepts_a_valid_statement_as_is(work: Path) -> None:
    payload = json.dumps(_statement(), indent=1).encode()
    run = _sign_in_toto(work, payload)
    assert run.code == 0, run
    envelope = json.loads((work / "env.json").read_bytes())
    assert envelope["payloadType"] == PAYLOAD_TYPE
    from dssesign.core.dsse import Envelope

    signed = Envelope.from_dict(envelope).payload
    assert signed == payload and parse_statement(signed)["predicateType"]


def test_sign_leaves_other_payload_types_alone(work: Path) -> None:
    run = _sign_in_toto(work, PROVENANCE.read_bytes()[:10], "application/octet-stream")
    assert run.code == 0, run
    run = _sign_in_toto(work, ARTIFACT.read_bytes(), "text/plain")
    assert run.code == 0, run


# --- attest --no-validate (issue 12: an escape hatch, recorded) -------------------------------


def test_no_validate_signs_an_off_schema_predicate_says_so_and_records_it(tmp_path: Path) -> None:
    import json as _json

    from dssesign.cli import main as cli_main

    key = tmp_path / "k"
    predicate = tmp_path / "bom.json"
    # Off-schema CycloneDX: an unknown top-level member the strict schema refuses.
    predicate.write_text(
        _json.dumps({"bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1, "x-extra": 1})
    )
    subject = tmp_path / "app.bin"
    subject.write_bytes(b"app")
    log = tmp_path / "audit.log"
    import contextlib
    import io
    import os

    os.environ.pop("DSSESIGN_KEY_PASSWORD", None)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert cli_main(["keygen", "--algorithm", "ed25519", "--out", str(key)]) == 0
    base = [
        "attest",
        "--subject",
        str(subject),
        "--predicate",
        str(predicate),
        "--type",
        "cyclonedx",
        "--key",
        f"{key}.key",
        "--audit-log",
        str(log),
    ]
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        assert cli_main([*base, "--out", str(tmp_path / "refused.json")]) == 2
    assert not (tmp_path / "refused.json").exists()
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert cli_main(["--json", *base, "--no-validate", "--out", str(tmp_path / "e.json")]) == 0
    assert "--no-validate" in err.getvalue() and "not checked" in err.getvalue()
    assert _json.loads(out.getvalue())["predicateValidated"] is False
    records = [_json.loads(line) for line in log.read_text().splitlines()]
    signed = [r for r in records if r.get("event") == "sign" and r.get("result") == "success"]
    assert signed and all(r.get("predicateValidation") == "skipped" for r in signed)
    # The Statement itself is still validated: a non-object predicate is refused.
    predicate.write_text("[1, 2]")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert cli_main([*base, "--no-validate", "--out", str(tmp_path / "x.json")]) == 2
