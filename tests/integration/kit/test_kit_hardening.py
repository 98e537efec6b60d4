# ruff: noqa: F811 - the module fixtures of test_kit.py are imported, and named by the tests
"""Hostile inputs for the offline kit, one class per test group:

- verify.sh must refuse every file SHA256SUMS does not list, whatever its name (newlines,
  carriage returns, escape sequences), at the top and in subfolders, and refuse special files
  (links, FIFOs) before it reads anything;
- SHA256SUMS and MANIFEST.json are bounded (size, entries, format) before any heavy work;
- `kit build` never follows a link out of the artifacts folder, never ships a JSON file that is
  not an envelope or a bundle, and never makes a copied file more readable than its source.

The kit these tests damage is built once per module (the fixtures of test_kit.py); every
verify.sh run here fails in its first step, before any Python or pip runs, except the last.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import zipfile
from pathlib import Path

import pytest

from dssesign.errors import ConfigError, InputError
from dssesign.intoto.statement import PAYLOAD_TYPE, build_statement, statement_payload
from dssesign.intoto.subjects import subject_from_file
from dssesign.kit import (
    MAX_KIT_FILES,
    MAX_MANIFEST_BYTES,
    MAX_SUMS_BYTES,
    KitManifest,
    WheelSource,
    build_kit,
)
from dssesign.kit.inputs import _check_name
from dssesign.sign.multisign import MultiProfileSigner
from dssesign.trust import add_key, dump_trust_root, init_trust_root
from tests.conftest import signer_for
from tests.integration.kit.test_kit import (  # noqa: F401 - module fixtures: this module builds its own kit once
    ARTIFACT,
    PREDICATE_TYPE,
    Inputs,
    Run,
    _offline_env,
    copy_kit,
    inputs,
    kit,
    own_wheel,
    reuse_wheels,
    rewrite_sums,
    run_verify,
    wheel_cache,
)

# --- verify.sh: every file present must be listed -------------------------------------------

HOSTILE_NAMES = [
    "\n",
    "\n\n",
    "a\rb",
    "\x1b[2K",
    "\t",
    " ",
    "\nverify.sh",
    "trust-root.json\n",
    ".hidden",
    "-n",
    "back\\slash",
]


@pytest.mark.parametrize("folder", ["", "attestations/", "wheels/", "artifacts/"])
@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=repr)
def test_verify_sh_refuses_unlisted_files_whatever_their_names(
    kit: KitManifest, tmp_path: Path, folder: str, name: str
) -> None:
    moved = copy_kit(kit, tmp_path / "kit")
    (moved / f"{folder}{name}").write_bytes(b"planted\n")
    run = run_verify(moved, tmp_path)
    assert run.code == 2, run
    assert run.out == "", "nothing verified"
    assert "verify.sh: files not listed in SHA256SUMS: " in run.err, run
    # The name is shown shell-quoted, never raw: no control character reaches the terminal.
    shown = run.err.split("files not listed in SHA256SUMS: ", 1)[1]
    assert shown.count("\n") == 1 and shown.endswith("\n"), run
    assert not any(ch in shown[:-1] for ch in "\r\x1b\t"), run
    assert "kit fingerprint" not in run.err, "refused before anything was hashed"


def test_verify_sh_names_several_unlisted_files_quoted(kit: KitManifest, tmp_path: Path) -> None:
    moved = copy_kit(kit, tmp_path / "kit")
    for name in ("\n", "\n\n", "a\rb", "\x1b[2K"):
        (moved / name).write_bytes(b"")
    run = run_verify(moved, tmp_path)
    assert run.code == 2 and run.out == "", run
    assert run.err.splitlines() == [
        "verify.sh: files not listed in SHA256SUMS: $'\\n' $'\\n\\n' $'\\E[2K' $'a\\rb'"
    ], run


@pytest.mark.parametrize("name", ["\n", "\x1b[2K", "empty"])
def test_verify_sh_refuses_unlisted_folders(kit: KitManifest, tmp_path: Path, name: str) -> None:
    """An empty folder hides nothing today, but one nobody listed may hide what find could not
    read; the kit is exactly what SHA256SUMS lists."""
    moved = copy_kit(kit, tmp_path / "kit")
    (moved / "attestations" / name).mkdir()
    run = run_verify(moved, tmp_path)
    assert run.code == 2 and run.out == "", run
    assert "folders not in SHA256SUMS" in run.err, run
    assert "\x1b" not in run.err


def test_verify_sh_refuses_a_fifo_before_hashing(kit: KitManifest, tmp_path: Path) -> None:
    """A listed FIFO would make `sha256sum -c` wait forever: special files are refused first."""
    moved = copy_kit(kit, tmp_path / "kit")
    os.mkfifo(moved / "wheels" / "stall.whl")
    with open(moved / "SHA256SUMS", "a") as sums:
        sums.write(f"{'0' * 64}  wheels/stall.whl\n")
    run = run_verify(moved, tmp_path)
    assert run.code == 2 and run.out == "", run
    assert "symbolic links or other special files" in run.err and "wheels/stall.whl" in run.err


def test_verify_sh_refuses_a_symlinked_sums_file(kit: KitManifest, tmp_path: Path) -> None:
    moved = copy_kit(kit, tmp_path / "kit")
    real = tmp_path / "sums"
    (moved / "SHA256SUMS").rename(real)
    (moved / "SHA256SUMS").symlink_to(real)
    run = run_verify(moved, tmp_path)
    assert run.code == 2 and run.out == "", run
    assert "SHA256SUMS is missing" in run.err


def _sums_with(moved: Path, extra: bytes) -> None:
    with open(moved / "SHA256SUMS", "ab") as sums:
        sums.write(extra)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("parent", "is not '<sha256>  <file name>'"),
        ("absolute", "is not '<sha256>  <file name>'"),
        ("escaped-line", "is not '<sha256>  <file name>'"),
        ("binary-marker", "is not '<sha256>  <file name>'"),
        ("too-deep", "is not '<sha256>  <file name>'"),
        ("carriage-return", "is not '<sha256>  <file name>'"),
        ("nul", "NUL bytes"),
        ("no-final-newline", "does not end with a newline"),
        ("duplicate", "lists a file twice"),
        ("self", "lists itself"),
        ("too-many-entries", f"a kit holds at most {MAX_KIT_FILES}"),
        ("too-large", f"larger than {MAX_SUMS_BYTES} bytes"),
    ],
)
def test_verify_sh_bounds_and_checks_sums_before_hashing(
    kit: KitManifest, tmp_path: Path, case: str, message: str
) -> None:
    moved = copy_kit(kit, tmp_path / "kit")
    sums = moved / "SHA256SUMS"
    zero = "0" * 64
    if case == "parent":
        _sums_with(moved, f"{zero}  ../outside\n".encode())
    elif case == "absolute":
        _sums_with(moved, f"{zero}  /etc/passwd\n".encode())
    elif case == "escaped-line":
        _sums_with(moved, f"\\{zero}  wheels/a\\nb\n".encode())
    elif case == "binary-marker":
        _sums_with(moved, f"{zero} *README.txt\n".encode())
    elif case == "too-deep":
        _sums_with(moved, f"{zero}  a/b/c/d\n".encode())
    elif case == "carriage-return":
        _sums_with(moved, f"{zero}  a\rb\n".encode())
    elif case == "nul":
        _sums_with(moved, f"{zero}  a\0b\n".encode())
    elif case == "no-final-newline":
        sums.write_bytes(sums.read_bytes().rstrip(b"\n"))
    elif case == "duplicate":
        _sums_with(moved, sums.read_bytes().splitlines(keepends=True)[0])
    elif case == "self":
        _sums_with(moved, f"{zero}  SHA256SUMS\n".encode())
    elif case == "too-many-entries":
        _sums_with(moved, b"".join(f"{zero}  f{i}\n".encode() for i in range(MAX_KIT_FILES)))
    else:
        with open(sums, "r+b") as handle:  # sparse: nothing is read past the bound
            handle.truncate(MAX_SUMS_BYTES + 1)
    run = run_verify(moved, tmp_path)
    assert run.code == 2 and run.out == "", run
    assert message in run.err, run
    assert "kit fingerprint" not in run.err, "refused before anything was hashed"


def test_verify_sh_works_from_a_folder_whose_name_ends_in_a_newline(
    kit: KitManifest, tmp_path: Path
) -> None:
    moved = copy_kit(kit, tmp_path / "kit\n")
    run = run_verify(moved, tmp_path)
    assert run.code == 0, run
    assert run.lines[-1] == "OK: 2 of 2 attestation(s) verified against trust-root.json", run


# --- MANIFEST.json read back (kit build --force) ---------------------------------------------


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("too-large", f"larger than the limit of {MAX_MANIFEST_BYTES} bytes"),
        ("too-many-files", f"a kit holds at most {MAX_KIT_FILES}"),
        ("deep", "nested deeper than"),
        ("symlink", "is a symbolic link"),
        ("fifo", "not a regular file"),
        ("other-media-type", "its mediaType is not"),
    ],
)
def test_force_reads_the_old_manifest_bounded(
    inputs: Inputs, tmp_path: Path, case: str, message: str
) -> None:
    out = tmp_path / "kit"
    out.mkdir()
    manifest = out / "MANIFEST.json"
    entry = {"path": "x", "sha256": "0" * 64, "size": 0}
    if case == "too-large":
        manifest.write_bytes(b"{")
        with open(manifest, "r+b") as handle:
            handle.truncate(MAX_MANIFEST_BYTES + 1)
    elif case == "too-many-files":
        document = {"mediaType": "application/vnd.dssesign.kit.v1+json"}
        document["files"] = [entry] * (MAX_KIT_FILES + 1)  # type: ignore[assignment]
        manifest.write_text(json.dumps(document))
    elif case == "deep":
        manifest.write_text("[" * 100_000 + "]" * 100_000)
    elif case == "symlink":
        real = tmp_path / "elsewhere.json"
        real.write_text(json.dumps({"mediaType": "application/vnd.dssesign.kit.v1+json"}))
        manifest.symlink_to(real)
    elif case == "fifo":
        os.mkfifo(manifest)  # opening it for reading would wait for a writer forever
    else:
        manifest.write_text(json.dumps({"mediaType": "text/plain", "files": []}))
    with pytest.raises(ConfigError, match="is not a dssesign kit") as caught:
        build_kit(inputs.trust_root, out, [inputs.good[0]], force=True)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


# --- kit build: links and modes --------------------------------------------------------------


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A stand-in for a signing key: 0600, outside every folder given to the build."""
    path = tmp_path / "keys" / "signing.key"
    path.parent.mkdir()
    path.write_text("-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n")
    path.chmod(0o600)
    return path


@pytest.mark.parametrize("target", ["outside", "inside", "dangling", "folder"])
def test_artifacts_folder_symlinks_are_refused(
    inputs: Inputs, tmp_path: Path, secret: Path, target: str
) -> None:
    artifacts = tmp_path / "dist"
    artifacts.mkdir()
    shutil.copyfile(ARTIFACT, artifacts / ARTIFACT.name)
    link = artifacts / "release.key"
    if target == "outside":
        link.symlink_to(secret)
    elif target == "inside":
        link.symlink_to(artifacts / ARTIFACT.name)
    elif target == "dangling":
        link.symlink_to(tmp_path / "absent")
    else:
        link.symlink_to(secret.parent, target_is_directory=True)
    with pytest.raises(InputError, match="is a symbolic link") as caught:
        build_kit(inputs.trust_root, tmp_path / "kit", [inputs.good[0]], artifacts)
    assert str(link) in str(caught.value), "the error names the file"
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "kit").exists()


def test_artifacts_folder_special_files_are_refused(inputs: Inputs, tmp_path: Path) -> None:
    artifacts = tmp_path / "dist"
    artifacts.mkdir()
    os.mkfifo(artifacts / "pipe")
    with pytest.raises(InputError, match="not a regular file"):
        build_kit(inputs.trust_root, tmp_path / "kit", [inputs.good[0]], artifacts)


def test_cli_names_the_symlinked_artifact(inputs: Inputs, tmp_path: Path, secret: Path) -> None:
    from tests.unit.cli.test_cli import assert_one_line_error, dssesign

    artifacts = tmp_path / "dist"
    artifacts.mkdir()
    (artifacts / "app.key").symlink_to(secret)
    run = dssesign(
        *("kit", "build", "--trust-root", inputs.trust_root, "--out", tmp_path / "kit"),
        *(inputs.good[0], "--artifacts", artifacts),
    )
    assert_one_line_error(run, "app.key", "symbolic link")
    assert not (tmp_path / "kit").exists()


@pytest.mark.parametrize(
    "document",
    [
        {"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----..."},
        {"payload": "e30=", "payloadType": "application/vnd.in-toto+json"},
    ],
    ids=["credential", "no-signatures"],
)
def test_only_envelopes_and_bundles_are_shipped(
    inputs: Inputs, tmp_path: Path, document: dict[str, str]
) -> None:
    """A JSON credential picked up by a glob (or through a link) is not an attestation."""
    secret = tmp_path / "credentials.json"
    secret.write_text(json.dumps(document))
    linked = tmp_path / "release.json"
    linked.symlink_to(secret)
    for given in (secret, linked):
        with pytest.raises(InputError, match="not a DSSE envelope or a Sigstore bundle"):
            build_kit(inputs.trust_root, tmp_path / "kit", [inputs.good[0], given])
    assert not (tmp_path / "kit").exists()


@pytest.mark.parametrize(
    "name",
    ["build\u202egnp.json", "build\u200b.json", "build\x85.json", "a\u2028b.json", "x" * 256],
    ids=["bidi-override", "zero-width", "c1-control", "line-separator", "too-long"],
)
def test_names_that_could_mislead_are_refused(name: str) -> None:
    with pytest.raises(InputError, match=r"not supported in names|limited to 255 bytes"):
        _check_name(name, "attestation")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_copies_are_never_more_open_than_their_sources(
    inputs: Inputs, kit: KitManifest, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    trust_root = src / "trust-root.json"
    shutil.copyfile(inputs.trust_root, trust_root)
    trust_root.chmod(0o600)
    envelope = src / inputs.good[0].name
    shutil.copyfile(inputs.good[0], envelope)
    envelope.chmod(0o640)
    bundles = []
    for bundle in inputs.keyed_bundles:
        bundles.append(src / bundle.name)
        shutil.copyfile(bundle, bundles[-1])
        bundles[-1].chmod(0o600)
    artifacts = src / "dist"
    artifacts.mkdir()
    modes = {ARTIFACT.name: 0o600, "notes.txt": 0o640, "tool.sh": 0o755, "public.txt": 0o644}
    for name, mode in modes.items():
        (artifacts / name).write_bytes(ARTIFACT.read_bytes() if name == ARTIFACT.name else b"x")
        (artifacts / name).chmod(mode)

    # The staging folder stays private until the kit is complete.
    staging_modes: list[int] = []

    def watch(_message: str) -> None:
        staging_modes.extend(_mode(p) for p in tmp_path.glob(".kit.tmp-*"))

    manifest = build_kit(
        trust_root,
        tmp_path / "kit",
        [envelope, *bundles],
        artifacts,
        wheel_source=reuse_wheels(kit),
        progress=watch,
    )
    out = manifest.out_dir
    assert staging_modes and set(staging_modes) == {0o700}, staging_modes
    assert _mode(out) == 0o755
    assert _mode(out / "trust-root.json") == 0o600
    assert _mode(out / "attestations" / envelope.name) == 0o640
    for bundle in bundles:
        assert _mode(out / "bundles" / envelope.name / bundle.name) == 0o600
    assert {name: _mode(out / "artifacts" / name) for name in modes} == {
        ARTIFACT.name: 0o600,
        "notes.txt": 0o640,
        "tool.sh": 0o644,  # never executable or set-id in a kit
        "public.txt": 0o644,
    }
    for path in out.rglob("*"):
        if path.is_file():
            assert _mode(path) & ~0o644 == 0 or path.name == "verify.sh", path


def test_private_wheels_stay_private(inputs: Inputs, kit: KitManifest, tmp_path: Path) -> None:
    """Wheels from a 0600 wheel folder (and a 0600 dssesign wheel) are not opened to 0644."""
    private = tmp_path / "wheelhouse"
    shutil.copytree(kit.out_dir / "wheels", private)
    for wheel in private.iterdir():
        wheel.chmod(0o600)
    source = WheelSource(
        dssesign_wheel=private / own_wheel(kit).name,
        find_links=(private,),
        cache_dir=None,
        allow_index=False,
    )
    manifest = build_kit(inputs.trust_root, tmp_path / "kit", [inputs.good[0]], wheel_source=source)
    modes = {_mode(manifest.out_dir / wheel) for wheel in (*manifest.wheels, manifest.installer)}
    assert modes == {0o600}, modes


def test_an_attestation_changed_during_the_build_is_refused(
    inputs: Inputs, kit: KitManifest, tmp_path: Path
) -> None:
    """What was checked is what is shipped: a file swapped after its check fails the build."""
    envelope = tmp_path / inputs.good[0].name
    shutil.copyfile(inputs.good[0], envelope)

    def swap(message: str) -> None:
        if message.startswith("gathered"):  # after the inputs were read, before they are copied
            envelope.write_bytes(b'{"type": "service_account", "private_key": "..."}')

    with pytest.raises(InputError, match="changed while the kit was being built"):
        build_kit(
            inputs.trust_root,
            tmp_path / "kit",
            [envelope],
            wheel_source=reuse_wheels(kit),
            progress=swap,
        )
    assert not (tmp_path / "kit").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no leftovers"


def test_sums_written_by_build_pass_the_verify_sh_format(kit: KitManifest) -> None:
    """Every line build_kit writes is one verify.sh accepts (the same rule on both sides)."""
    data = (kit.out_dir / "SHA256SUMS").read_bytes()
    assert len(data) <= MAX_SUMS_BYTES
    for line in data.decode().splitlines():
        digest, name = line.split("  ", 1)
        assert len(digest) == 64 and name and not name.startswith((".", "-", "/")), line
        assert name.count("/") <= 2 and "\\" not in name, line
        assert hashlib.sha256((kit.out_dir / name).read_bytes()).hexdigest() == digest


# --- verify.sh reads only what it checked ----------------------------------------------------


def test_verify_sh_ignores_files_swapped_after_the_sums_check(
    inputs: Inputs, kit: KitManifest, tmp_path: Path
) -> None:
    """Whoever can write to the kit's folder while verify.sh runs swaps in their own trust root
    and an attestation it trusts right after the fingerprint is printed (the SHA256SUMS check):
    verify.sh verifies the copies it checked, never the swapped files."""
    moved = copy_kit(kit, tmp_path / "kit")
    attacker = signer_for("ed25519", 9)
    evil_root = dump_trust_root(
        add_key(init_trust_root(threshold=1), attacker.public_key), allow_incomplete=False
    )
    statement = build_statement(
        [subject_from_file(ARTIFACT)], PREDICATE_TYPE, {"run": 1, "reviewed": True}
    )
    evil = MultiProfileSigner([attacker]).sign(statement_payload(statement), PAYLOAD_TYPE)
    target = moved / "attestations" / inputs.good[0].name
    proc = subprocess.Popen(
        [str(moved / "verify.sh")],
        cwd=tmp_path,
        env=_offline_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    err = []
    for line in proc.stderr:
        err.append(line)
        if line.startswith("kit fingerprint"):
            (moved / "trust-root.json").write_bytes(evil_root)
            target.write_bytes(evil.to_json())
    out, _ = proc.communicate(timeout=180)
    run = Run(proc.returncode, out, "".join(err))
    assert target.read_bytes() == evil.to_json(), "the swap happened while verify.sh ran"
    # Read in place, the swapped root would pass the swapped attestation and fail the other.
    assert run.code == 0, run
    assert run.lines[-1] == "OK: 2 of 2 attestation(s) verified against trust-root.json", run


def test_pip_never_sees_the_key_password(kit: KitManifest, tmp_path: Path) -> None:
    """With --emit-vsa, $DSSESIGN_KEY_PASSWORD reaches only the final `dssesign verify
    --emit-vsa` run: pip (here a stand-in that records its environment and arguments) runs
    without it, from the checked copy of wheels/, not from the kit's folder."""
    moved = copy_kit(kit, tmp_path / "kit")
    script = moved / "verify.sh"
    script.write_text(script.read_text().replace("KIT_WITH_VSA=0", "KIT_WITH_VSA=1", 1))
    record = tmp_path / "pip-saw.json"
    with zipfile.ZipFile(moved / kit.installer, "w") as fake:
        fake.writestr(
            "pip/__main__.py",
            "import json, os, sys\n"
            f"with open({str(record)!r}, 'w') as out:\n"
            "    json.dump({'env': dict(os.environ), 'argv': sys.argv}, out)\n"
            "raise SystemExit(3)\n",
        )
    rewrite_sums(moved)
    password = "pw-never-for-pip-0123456789"
    proc = subprocess.run(
        [str(script), "--emit-vsa", "vsa.json", "--vsa-key", "vsa.key", "--resource-uri",
         "https://example.com/hello-1.0.tar.gz"],
        cwd=tmp_path,
        env={**_offline_env(), "DSSESIGN_KEY_PASSWORD": password, "KIT_TEST_CONTROL": "1"},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc
    assert "installing dssesign from wheels/ failed" in proc.stderr, proc
    saw = json.loads(record.read_text())
    assert saw["env"].get("KIT_TEST_CONTROL") == "1", "the stand-in ran with verify.sh's env"
    assert "DSSESIGN_KEY_PASSWORD" not in saw["env"]
    assert password not in json.dumps(saw)
    kit_dir = str(moved.resolve())
    assert not [arg for arg in saw["argv"] if arg.startswith(kit_dir)], saw["argv"]
    # The passphrase is handed on to the emit run only, and nothing else exports it.
    text = script.read_text()
    assert text.count("export DSSESIGN_KEY_PASSWORD") == 1
    assert "export -n DSSESIGN_KEY_PASSWORD\n" in text
