"""The offline verification kit end to end: build it, then run its verify.sh with no index.

The wheel set is gathered once per module (the first kit, which may use the network and pip's
cache); every later kit is built from that module's wheel cache with the index switched off.
verify.sh runs with the system Python, outside the project's venv, with pip pointed at an
address where nothing listens and no config files or find-links.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dssesign import cli
from dssesign.core.dsse import Envelope
from dssesign.errors import ConfigError, DssesignError, InputError
from dssesign.intoto.statement import PAYLOAD_TYPE, build_statement, statement_payload
from dssesign.intoto.subjects import subject_from_file
from dssesign.kit import KIT_MEDIA_TYPE, KitManifest, WheelSource, build_kit
from dssesign.limits import DEFAULT_LIMITS
from dssesign.sign.bundles import bundle_json, bundle_stem, bundles_for, keyed_bundle, write_bundles
from dssesign.sign.multisign import MultiProfileSigner
from dssesign.sign.timestamps import request_timestamp
from dssesign.trust import (
    add_key,
    add_timestamp_authority,
    dump_trust_root,
    init_trust_root,
    set_root_keys,
    sign_trust_root,
)
from tests.conftest import FIXTURES, signer_for
from tests.sigstore_instance import (
    SigstoreInstance,
)
from tests.tsa import Tsa, resign
from tests.unit.cli.test_cli import PROVENANCE, assert_one_line_error, dssesign

REPO = Path(__file__).resolve().parents[3]
ARTIFACT = FIXTURES / "artifacts" / "hello-1.0.tar.gz"
PREDICATE_TYPE = "https://example.com/dssesign/offline-kit-test/v1"
DEAD_INDEX = "http://127.0.0.1:9/simple"  # the discard port: nothing answers
#: Distributions only the `sigstore` extra brings in: never in a kit for a keyed trust root.
SLSA_PROVENANCE = "https://slsa.dev/provenance/v1"
SIGSTORE_ONLY = {"sigstore", "sigstore-models", "sigstore-rekor-types", "pydantic", "tuf", "id"}


@dataclass(frozen=True)
class Inputs:
    trust_root: Path
    good: tuple[Path, Path]
    tampered: Path
    artifacts: Path
    #: The same policy with a root key, DSSE-signed by it; and one signed by another key.
    signed_trust_root: Path
    root_keyid: str
    badly_signed_trust_root: Path
    #: Keyed Sigstore bundles of good[0]'s two signatures, named as --bundle-dir names them.
    keyed_bundles: tuple[Path, ...]


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    """A 2-of-2 trust root, two good attestations over the artifact, and a tampered one."""
    base = tmp_path_factory.mktemp("kit-inputs")
    signers = [signer_for("ed25519"), signer_for("ecdsa-p256")]
    root = init_trust_root(threshold=2)
    for index, signer in enumerate(signers):
        root = add_key(root, signer.public_key, label=f"builder-{index}")
    trust_root = base / "trust-root.json"
    trust_root.write_bytes(dump_trust_root(root, allow_incomplete=False))

    root_signer = signer_for("ed25519", 1)
    rooted = set_root_keys(root, [root_signer.public_key], threshold=1)
    signed_trust_root = base / "signed-trust-root.json"
    signed_trust_root.write_bytes(sign_trust_root(rooted, [root_signer]).to_json())
    badly_signed_trust_root = base / "badly-signed-trust-root.json"
    badly_signed_trust_root.write_bytes(sign_trust_root(rooted, [signers[0]]).to_json())

    artifacts = base / "artifacts"
    artifacts.mkdir()
    shutil.copyfile(ARTIFACT, artifacts / ARTIFACT.name)
    (artifacts / ".gitkeep").write_text("")  # dotfiles are never artifacts
    subject = subject_from_file(artifacts / ARTIFACT.name)

    multi = MultiProfileSigner(signers)
    good: list[Path] = []
    for run in (1, 2):
        statement = build_statement([subject], PREDICATE_TYPE, {"run": run})
        envelope = multi.sign(statement_payload(statement), PAYLOAD_TYPE)
        path = base / f"build-{run}.intoto.json"
        path.write_bytes(envelope.to_json())
        good.append(path)

    bundle_dir = base / "bundles"
    bundle_dir.mkdir()
    first = Envelope.from_json(good[0].read_bytes())
    keyed_bundles = write_bundles(
        bundle_dir, bundles_for(first, signers, bundle_stem(good[0].name))
    )

    # Same signatures, different payload: what an attacker editing the Statement produces.
    signed = Envelope.from_json(good[0].read_bytes())
    forged = build_statement([subject], PREDICATE_TYPE, {"run": 1, "reviewed": True})
    tampered = base / "tampered.intoto.json"
    tampered.write_bytes(
        Envelope(statement_payload(forged), PAYLOAD_TYPE, signed.signatures).to_json()
    )
    return Inputs(
        trust_root,
        (good[0], good[1]),
        tampered,
        artifacts,
        signed_trust_root,
        root_signer.keyid,
        badly_signed_trust_root,
        tuple(keyed_bundles),
    )


@pytest.fixture(scope="module")
def wheel_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("wheel-cache")


@pytest.fixture(scope="module")
def kit(inputs: Inputs, wheel_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> KitManifest:
    """The first kit: gathers the wheel set (network allowed) and fills the module's cache."""
    out = tmp_path_factory.mktemp("kits") / "kit"
    started = time.monotonic()
    try:
        manifest = build_kit(
            inputs.trust_root,
            out,
            list(inputs.good),
            inputs.artifacts,
            wheel_source=WheelSource(cache_dir=wheel_cache),
        )
    except DssesignError as exc:
        pytest.fail(
            "building the kit's wheel set failed; it needs the package index (PyPI) or "
            f"a warm wheel cache: {exc}",
            pytrace=False,
        )
    print(f"kit built in {time.monotonic() - started:.1f}s")
    return manifest


def _offline_env() -> dict[str, str]:
    """No package index, no pip config or find-links, and not the project's venv on PATH."""
    hidden = {Path(sys.prefix).resolve(), (REPO / ".venv").resolve()}
    path = [
        entry
        for entry in os.environ.get("PATH", "").split(os.pathsep)
        if entry and not any(Path(entry).resolve().is_relative_to(h) for h in hidden)
    ]
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PIP_", "PYTHON", "DSSESIGN_", "VIRTUAL_ENV"))
    }
    env.update(
        PATH=os.pathsep.join(path),
        PIP_NO_INDEX="1",
        PIP_INDEX_URL=DEAD_INDEX,
        PIP_CONFIG_FILE=os.devnull,
    )
    python = shutil.which("python3", path=env["PATH"])
    if python is None or not _is_311_or_later(python, env):
        # No usable system python3 on PATH: use the interpreter the venv was made from, which
        # does not have dssesign installed.
        env["DSSESIGN_KIT_PYTHON"] = str(Path(sys.base_prefix) / "bin" / "python3")
    return env


def _is_311_or_later(python: str, env: dict[str, str]) -> bool:
    probe = subprocess.run(
        [python, "-c", "import sys; raise SystemExit(sys.version_info < (3, 11))"],
        env=env,
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


def run_verify(kit_dir: Path, cwd: Path, *args: str) -> Run:
    proc = subprocess.run(
        [str(kit_dir / "verify.sh"), *args],
        cwd=cwd,
        env=_offline_env(),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def own_wheel(manifest: KitManifest) -> Path:
    (name,) = [w for w in manifest.wheels if Path(w).name.startswith("dssesign-")]
    return manifest.out_dir / name


def reuse_wheels(manifest: KitManifest) -> WheelSource:
    """Another kit from this one's wheels: no build, no cache, no index."""
    return WheelSource(
        dssesign_wheel=own_wheel(manifest),
        find_links=(manifest.out_dir / "wheels",),
        cache_dir=None,
        allow_index=False,
    )


def copy_kit(manifest: KitManifest, target: Path) -> Path:
    shutil.copytree(manifest.out_dir, target, symlinks=True)
    return target


def rewrite_sums(kit_dir: Path) -> None:
    """What an attacker who edits a kit also does: make SHA256SUMS match again."""
    lines = []
    for line in (kit_dir / "SHA256SUMS").read_text().splitlines():
        name = line[66:]
        if (kit_dir / name).exists():
            digest = hashlib.sha256((kit_dir / name).read_bytes()).hexdigest()
            lines.append(f"{digest}  {name}\n")
    (kit_dir / "SHA256SUMS").write_text("".join(lines))


# --- the kit as written ----------------------------------------------------------------------


def test_kit_layout_and_manifest(kit: KitManifest, inputs: Inputs) -> None:
    out = kit.out_dir
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert {
        "trust-root.json",
        "verify.sh",
        "requirements.txt",
        "README.txt",
        "MANIFEST.json",
        "SHA256SUMS",
        "attestations/build-1.intoto.json",
        "attestations/build-2.intoto.json",
        f"artifacts/{ARTIFACT.name}",
    } <= names
    assert not any(name.startswith("artifacts/.") for name in names)
    assert (out / "trust-root.json").read_bytes() == inputs.trust_root.read_bytes()
    assert os.access(out / "verify.sh", os.X_OK)
    assert (out / "verify.sh").read_text().startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in (out / "verify.sh").read_text()

    # Wheels: dssesign, each runtime dependency, and pip as the installer.
    wheels = {n.split("/")[1].split("-")[0].lower() for n in names if n.startswith("wheels/")}
    assert {"dssesign", "cryptography", "rich", "pip"} <= wheels
    requirements = (out / "requirements.txt").read_text()
    assert "\ndssesign==" in requirements and "\npip==" not in requirements
    assert all("--hash=sha256:" in line for line in requirements.splitlines()[1:])

    # SHA256SUMS lists every file but itself; its hash is the fingerprint.
    sums = (out / "SHA256SUMS").read_bytes()
    assert hashlib.sha256(sums).hexdigest() == kit.fingerprint
    listed = {}
    for line in sums.decode().splitlines():
        digest, name = line.split("  ", 1)
        listed[name] = digest
    assert set(listed) == names - {"SHA256SUMS"}
    for name, digest in listed.items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest, name

    manifest = json.loads((out / "MANIFEST.json").read_text())
    assert manifest == kit.to_dict()
    assert manifest["mediaType"] == KIT_MEDIA_TYPE
    assert manifest["python"]["versions"][0] == "{}.{}".format(*sys.version_info[:2])
    assert {f["path"] for f in manifest["files"]} == names - {"SHA256SUMS", "MANIFEST.json"}

    # Nothing in the kit points back at the source tree.
    for name in ("verify.sh", "MANIFEST.json", "requirements.txt", "README.txt"):
        assert str(REPO) not in (out / name).read_text(), name


# --- verify.sh on the receiving side ---------------------------------------------------------


def test_verify_sh_passes_with_no_index(
    kit: KitManifest, tmp_path_factory: pytest.TempPathFactory
) -> None:
    elsewhere = tmp_path_factory.mktemp("site")
    moved = copy_kit(kit, elsewhere / "received kit")  # a new place, a space in the path
    run = run_verify(moved, cwd=elsewhere)
    assert run.code == 0, run
    assert [line.split()[:2] for line in run.lines] == [
        ["PASS", "attestations/build-1.intoto.json"],
        ["PASS", "attestations/build-2.intoto.json"],
        ["OK:", "2"],
    ], run
    assert run.lines[-1] == "OK: 2 of 2 attestation(s) verified against trust-root.json"
    assert kit.fingerprint in run.err
    assert "Traceback" not in run.err
    # verify.sh writes nothing into the kit (it may sit on read-only media).
    assert sorted(p.name for p in moved.rglob("*")) == sorted(
        p.name for p in kit.out_dir.rglob("*")
    )


def test_tampered_attestation_fails_and_rebuild_needs_no_index(
    inputs: Inputs,
    kit: KitManifest,
    wheel_cache: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The second build may use only the module's wheel cache: no index, no pip config.
    monkeypatch.setenv("PIP_INDEX_URL", DEAD_INDEX)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    offline = WheelSource(cache_dir=wheel_cache, allow_index=False)
    second = build_kit(
        inputs.trust_root,
        tmp_path / "kit",
        [inputs.good[0], *inputs.keyed_bundles, inputs.tampered],
        inputs.artifacts,
        wheel_source=offline,
    )
    # Keyed bundles need no sigstore-python: the same wheels as a kit without bundles.
    assert second.extras == ()
    assert {Path(w).name for w in second.wheels} == {Path(w).name for w in kit.wheels}

    run = run_verify(second.out_dir, cwd=tmp_path)
    assert run.code == 1, run
    # The envelope is verified together with the bundles of its two signatures.
    assert run.lines[0].startswith("PASS  attestations/build-1.intoto.json + 2 bundle(s)  "), run
    assert "and 2 bundle(s)" in run.err
    assert run.lines[1].startswith(
        "FAIL  attestations/tampered.intoto.json  NO_VALID_SIGNATURE:"
    ), run
    assert run.lines[-1].startswith("FAILED: 1 of 2 attestation(s)"), run


@pytest.mark.parametrize(
    "damage",
    ["edit-trust-root", "edit-wheel", "extra-wheel", "delete-file", "symlink"],
)
def test_damaged_kit_fails_before_installing(kit: KitManifest, tmp_path: Path, damage: str) -> None:
    moved = copy_kit(kit, tmp_path / "kit")
    if damage == "edit-trust-root":
        with open(moved / "trust-root.json", "ab") as handle:
            handle.write(b" ")
    elif damage == "edit-wheel":
        wheel = moved / kit.wheels[-1]
        data = bytearray(wheel.read_bytes())
        data[len(data) // 2] ^= 1
        wheel.write_bytes(bytes(data))
    elif damage == "extra-wheel":
        # A higher version next to the real one would win a resolver that is not hash-pinned.
        shutil.copyfile(moved / kit.installer, moved / "wheels/cryptography-99.0-py3-none-any.whl")
    elif damage == "delete-file":
        (moved / "requirements.txt").unlink()
    else:
        (moved / "extra.json").symlink_to(moved / "trust-root.json")
    run = run_verify(moved, cwd=tmp_path)
    assert run.code == 2, run
    assert run.out == "", "no attestation line before the kit is known to be intact"
    assert "verify.sh: " in run.err
    expected = {
        "edit-trust-root": "SHA256SUMS check failed",
        "edit-wheel": "SHA256SUMS check failed",
        "extra-wheel": "not listed in SHA256SUMS",
        "delete-file": "SHA256SUMS check failed",
        "symlink": "symbolic links",
    }[damage]
    assert expected in run.err, run


def test_kit_without_attestations_fails(kit: KitManifest, tmp_path: Path) -> None:
    moved = copy_kit(kit, tmp_path / "kit")
    for path in (moved / "attestations").iterdir():
        path.unlink()
    rewrite_sums(moved)
    run = run_verify(moved, cwd=tmp_path)
    assert run.code == 2, run
    assert "no attestations" in run.err


def test_kit_edited_with_sums_rewritten_still_fails(
    kit: KitManifest, inputs: Inputs, tmp_path: Path
) -> None:
    """SHA256SUMS only catches accidents; signatures and subjects are what cannot be redone."""
    moved = copy_kit(kit, tmp_path / "kit")
    (moved / "artifacts" / ARTIFACT.name).write_bytes(b"a different artifact\n")
    shutil.copyfile(inputs.tampered, moved / "attestations/build-2.intoto.json")
    rewrite_sums(moved)
    run = run_verify(moved, cwd=tmp_path)
    assert run.code == 1, run
    assert run.lines[0].startswith("FAIL  attestations/build-1.intoto.json  SUBJECT_MISMATCH"), run
    assert run.lines[1].startswith("FAIL  attestations/build-2.intoto.json  NO_VALID_SIGNATURE"), (
        run
    )
    assert run.lines[-1].startswith("FAILED: 2 of 2 attestation(s)"), run


def test_signed_trust_root_is_checked_against_pinned_root_keyids(
    inputs: Inputs, kit: KitManifest, tmp_path: Path
) -> None:
    signed = build_kit(
        inputs.signed_trust_root,
        tmp_path / "kit",
        [inputs.good[0]],
        inputs.artifacts,
        wheel_source=reuse_wheels(kit),
    )
    assert signed.trust_root == "trust-root.signed.json" and signed.trust_root_signed
    assert not (signed.out_dir / "trust-root.json").exists()
    assert (signed.out_dir / "trust-root.signed.json").read_bytes() == (
        inputs.signed_trust_root.read_bytes()
    )

    unpinned = run_verify(signed.out_dir, tmp_path)
    assert unpinned.code == 2 and unpinned.out == "", unpinned
    assert "--root-keyid" in unpinned.err

    # A keyid the site did not pin as a root key (here: an attestation signer's).
    wrong = run_verify(signed.out_dir, tmp_path, "--root-keyid", signer_for("ed25519").keyid)
    assert wrong.code == 1, wrong
    assert wrong.lines[0].startswith(
        "FAIL  trust-root.signed.json  TRUST_ROOT_SIGNATURE_THRESHOLD:"
    ), wrong
    assert not any("attestations/" in line for line in wrong.lines), "nothing verified"

    pinned = run_verify(signed.out_dir, tmp_path, "--root-keyid", inputs.root_keyid)
    assert pinned.code == 0, pinned
    assert pinned.lines[0].startswith("PASS  attestations/build-1.intoto.json"), pinned
    assert pinned.lines[-1] == (
        "OK: 1 of 1 attestation(s) verified against trust-root.signed.json"
    ), pinned


def test_root_keyid_for_an_unsigned_trust_root_is_refused(
    inputs: Inputs, kit: KitManifest, tmp_path: Path
) -> None:
    run = run_verify(kit.out_dir, tmp_path, "--root-keyid", inputs.root_keyid)
    assert run.code == 2 and run.out == "", run
    assert "not signed" in run.err


# --- build_kit refusals (all before any wheel is gathered) -----------------------------------


def test_refuses_non_empty_out_dir(inputs: Inputs, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not empty"):
        build_kit(inputs.trust_root, out, [inputs.good[0]])
    with pytest.raises(ConfigError, match="is not a dssesign kit"):
        build_kit(inputs.trust_root, out, [inputs.good[0]], force=True)
    assert (out / "precious.txt").read_text() == "keep me"


def test_force_replaces_an_earlier_kit_whole(
    inputs: Inputs, kit: KitManifest, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    reuse = reuse_wheels(kit)
    first = build_kit(inputs.trust_root, empty, [inputs.good[0]], wheel_source=reuse)
    assert (first.out_dir / "attestations/build-1.intoto.json").is_file()

    out = copy_kit(kit, tmp_path / "kit")
    with pytest.raises(ConfigError, match="not empty"):
        build_kit(inputs.trust_root, out, [inputs.good[1]], wheel_source=reuse)
    manifest = build_kit(inputs.trust_root, out, [inputs.good[1]], wheel_source=reuse, force=True)
    assert manifest.attestations == ("attestations/build-2.intoto.json",)
    assert manifest.artifacts == ()
    assert not (out / "artifacts").exists()
    assert sorted(p.name for p in (out / "attestations").iterdir()) == ["build-2.intoto.json"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no leftovers"


def test_offline_without_wheels_is_a_clear_error(inputs: Inputs, tmp_path: Path) -> None:
    empty = tmp_path / "empty-cache"
    empty.mkdir()
    source = WheelSource(cache_dir=empty, allow_index=False, dssesign_wheel=None, project_dir=REPO)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PIP_CONFIG_FILE", os.devnull)
        patch.delenv("PIP_FIND_LINKS", raising=False)
        with pytest.raises(ConfigError, match="from local wheels only") as caught:
            build_kit(inputs.trust_root, tmp_path / "kit", [inputs.good[0]], wheel_source=source)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "kit").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no leftovers"


@pytest.mark.parametrize(
    ("case", "error", "match"),
    [
        ("no-attestations", ConfigError, "no attestations"),
        ("not-json", InputError, "not valid JSON"),
        ("missing", InputError, "no such file"),
        ("same-name", InputError, "would both be stored as"),
        ("hidden-name", InputError, "starting with '.'"),
        ("bad-trust-root", InputError, "trust root"),
        ("badly-signed-trust-root", InputError, "TRUST_ROOT_SIGNATURE_THRESHOLD"),
        ("artifact-subdir", InputError, "is a directory"),
    ],
)
def test_bad_inputs_are_refused(
    inputs: Inputs, tmp_path: Path, case: str, error: type[Exception], match: str
) -> None:
    trust_root = inputs.trust_root
    attestations: list[Path] = [inputs.good[0]]
    artifacts: Path | None = None
    if case == "no-attestations":
        attestations = []
    elif case == "not-json":
        attestations = [tmp_path / "junk.json"]
        attestations[0].write_bytes(b"{not json")
    elif case == "missing":
        attestations = [tmp_path / "absent.json"]
    elif case == "same-name":
        (tmp_path / "a").mkdir()
        attestations = [inputs.good[0], tmp_path / "a" / inputs.good[0].name.upper()]
        shutil.copyfile(inputs.good[0], attestations[1])
    elif case == "hidden-name":
        attestations = [tmp_path / ".hidden.json"]
        shutil.copyfile(inputs.good[0], attestations[0])
    elif case == "badly-signed-trust-root":
        trust_root = inputs.badly_signed_trust_root
    elif case == "bad-trust-root":
        trust_root = tmp_path / "trust-root.json"
        document = json.loads(inputs.trust_root.read_bytes())
        document["surprise"] = True
        trust_root.write_text(json.dumps(document))
    else:
        artifacts = tmp_path / "artifacts"
        (artifacts / "nested").mkdir(parents=True)
    with pytest.raises(error, match=match) as caught:
        build_kit(trust_root, tmp_path / "kit", attestations, artifacts)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "kit").exists()


# --- Sigstore bundles ------------------------------------------------------------------------


def wheel_names(manifest: KitManifest) -> set[str]:
    """Normalized distribution names of the wheels a kit installs."""
    return {Path(w).name.split("-")[0].lower().replace("_", "-") for w in manifest.wheels}


def wheels_size(manifest: KitManifest) -> int:
    return sum(f.size for f in manifest.files if f.path.startswith("wheels/"))


def test_keyed_kit_has_no_sigstore_wheels(kit: KitManifest) -> None:
    assert kit.extras == ()
    assert not wheel_names(kit) & SIGSTORE_ONLY, sorted(wheel_names(kit))
    assert "sigstore" not in (kit.out_dir / "requirements.txt").read_text()
    print(f"keyed kit: {len(kit.wheels)} wheels, {wheels_size(kit) / 1e6:.1f} MB")


def test_keyed_bundles_are_stored_with_their_envelope(
    inputs: Inputs, kit: KitManifest, tmp_path: Path
) -> None:
    manifest = build_kit(
        inputs.trust_root,
        tmp_path / "kit",
        [*inputs.keyed_bundles, inputs.good[0], inputs.good[1]],
        inputs.artifacts,
        wheel_source=reuse_wheels(kit),
    )
    # Keyed bundles need no sigstore-python: the kit stays as small as a plain one.
    assert manifest.extras == ()
    assert {Path(w).name for w in manifest.wheels} == {Path(w).name for w in kit.wheels}
    group = "bundles/build-1.intoto.json"
    stored = tuple(f"{group}/{p.name}" for p in inputs.keyed_bundles)
    assert manifest.attestations == (
        "attestations/build-1.intoto.json",
        "attestations/build-2.intoto.json",
    )
    assert manifest.bundles == (("attestations/build-1.intoto.json", stored),)
    listed = (manifest.out_dir / "SHA256SUMS").read_text()
    for rel, source in zip(stored, inputs.keyed_bundles, strict=True):
        assert (manifest.out_dir / rel).read_bytes() == source.read_bytes()
        assert f"  {rel}\n" in listed
    assert json.loads((manifest.out_dir / "MANIFEST.json").read_text())["bundles"] == {
        "attestations/build-1.intoto.json": list(stored)
    }

    # verify.sh runs it in test_tampered_attestation_fails_and_rebuild_needs_no_index. Here: a
    # bundle directory with no attestation of that name is refused before anything runs.
    (manifest.out_dir / "attestations/build-1.intoto.json").rename(
        manifest.out_dir / "attestations/renamed.json"
    )
    rewrite_sums(manifest.out_dir)
    with open(manifest.out_dir / "SHA256SUMS", "a") as sums:
        digest = hashlib.sha256(inputs.good[0].read_bytes()).hexdigest()
        sums.write(f"{digest}  attestations/renamed.json\n")
    orphan = run_verify(manifest.out_dir, tmp_path)
    assert orphan.code == 2 and orphan.out == "", orphan
    assert "bundles/build-1.intoto.json: bundles must be in bundles/NAME/" in orphan.err


def _bundle_case(inputs: Inputs, tmp_path: Path, case: str) -> list[Path]:
    bundle = inputs.keyed_bundles[0]
    if case == "bundle-name-without-tag":
        untagged = tmp_path / "build-1.intoto.sigstore.json"
        shutil.copyfile(bundle, untagged)
        return [inputs.good[0], untagged]
    if case == "two-envelopes-one-stem":
        twin = tmp_path / "build-1.intoto.dsse.json"
        shutil.copyfile(inputs.good[0], twin)
        return [inputs.good[0], twin, bundle]
    if case == "malformed-bundle":
        document = json.loads(bundle.read_bytes())
        document["verificationMaterial"]["surprise"] = True
        broken = tmp_path / bundle.name
        broken.write_text(json.dumps(document))
        return [inputs.good[0], broken]
    assert case == "too-many-bundles"
    copies = []
    for index in range(DEFAULT_LIMITS.max_signatures + 1):
        copy = tmp_path / f"build-1.intoto.copy{index}.sigstore.json"
        shutil.copyfile(bundle, copy)
        copies.append(copy)
    return [inputs.good[0], *copies]


@pytest.mark.parametrize(
    ("case", "match"),
    [
        ("bundle-name-without-tag", "does not say whether it goes with"),
        ("two-envelopes-one-stem", "both have the bundle stem 'build-1.intoto'"),
        ("malformed-bundle", "BUNDLE_MALFORMED"),
        ("too-many-bundles", "at most 64 bundles per envelope"),
    ],
)
def test_ambiguous_or_bad_bundles_are_refused(
    inputs: Inputs, tmp_path: Path, case: str, match: str
) -> None:
    attestations = _bundle_case(inputs, tmp_path, case)
    with pytest.raises(InputError, match=match) as caught:
        build_kit(inputs.trust_root, tmp_path / "kit", attestations)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "kit").exists()


def test_cli_refuses_an_ambiguous_bundle_in_one_line(inputs: Inputs, tmp_path: Path) -> None:
    attestations = _bundle_case(inputs, tmp_path, "bundle-name-without-tag")
    run = dssesign(
        "kit", "build", "--trust-root", inputs.trust_root, "--out", tmp_path / "kit", *attestations
    )
    assert_one_line_error(run, "build-1.intoto.sigstore.json", "rename it")
    assert not (tmp_path / "kit").exists()


@dataclass(frozen=True)
class SigstoreKit:
    manifest: KitManifest
    #: The envelope signed keyless + with a software key, and its two bundles.
    envelope: Path
    bundles: tuple[Path, ...]
    #: A keyless bundle given without its envelope.
    lone: Path


def _trust_root_cli(path: Path, instance: SigstoreInstance, public_key: Path) -> None:
    """Keyed + keyless: provenance needs the key and the identity, other types either one."""
    steps: list[list[str]] = [
        ["init", "--out", str(path), "--force"],
        ["add-key", str(path), "--public-key", str(public_key)],
        ["set-sigstore-root", str(path), "--trusted-root", str(instance.trusted_root_path)],
        ["add-identity", str(path), "--issuer", instance.issuer, "--subject", instance.subject],
        ["set-policy", str(path), "--threshold", "1"],
        ["set-policy", str(path), "--threshold", "2", "--for-type", SLSA_PROVENANCE],
    ]
    for step in steps:
        assert cli.main(["trust-root", *step]) == 0, step


@pytest.fixture(scope="module")
def sigstore_kit(
    inputs: Inputs,
    wheel_cache: Path,
    sigstore_instance: SigstoreInstance,
    tmp_path_factory: pytest.TempPathFactory,
) -> SigstoreKit:
    """A kit with a keyless + keyed envelope and its bundles, and a lone keyless bundle, signed
    against the local Sigstore instance; its wheels carry the sigstore extra."""
    base = tmp_path_factory.mktemp("sigstore-kit")
    run = dssesign("keygen", "--algorithm", "ed25519", "--out", base / "k")
    assert run.code == 0, run
    artifact = inputs.artifacts / ARTIFACT.name
    env = sigstore_instance.env()
    run = dssesign(
        *("attest", "--subject", artifact, "--predicate", PROVENANCE, "--type", "slsaprovenance1"),
        *("--key", "keyless", "--key", base / "k.key"),
        *("--out", base / "release.json", "--bundle-dir", base / "bundles"),
        env=env,
    )
    assert run.code == 0, run
    predicate = base / "predicate.json"
    predicate.write_text('{"run": 3}')
    run = dssesign(
        *("attest", "--subject", artifact, "--predicate", predicate, "--type", PREDICATE_TYPE),
        *("--key", "keyless", "--out", base / "lone.json", "--bundle-dir", base / "lone"),
        env=env,
    )
    assert run.code == 0, run
    trust_root = base / "trust-root.json"
    _trust_root_cli(trust_root, sigstore_instance, base / "k.pub")

    bundles = tuple(sorted((base / "bundles").iterdir()))
    (lone,) = (base / "lone").iterdir()
    started = time.monotonic()
    try:
        manifest = build_kit(
            trust_root,
            base / "kit",
            [base / "release.json", *bundles, lone],
            inputs.artifacts,
            wheel_source=WheelSource(cache_dir=wheel_cache),
        )
    except DssesignError as exc:
        pytest.fail(f"building the sigstore kit's wheel set failed: {exc}", pytrace=False)
    print(f"sigstore kit built in {time.monotonic() - started:.1f}s")
    return SigstoreKit(manifest, base / "release.json", bundles, lone)


def test_sigstore_kit_carries_bundles_and_the_sigstore_closure(sigstore_kit: SigstoreKit) -> None:
    manifest = sigstore_kit.manifest
    out = manifest.out_dir
    assert manifest.extras == ("sigstore",)
    assert manifest.attestations == (
        "attestations/release.json",
        "attestations/lone.keyless-1.sigstore.json",
    )
    stored = tuple(f"bundles/release.json/{p.name}" for p in sigstore_kit.bundles)
    assert manifest.bundles == (("attestations/release.json", stored),)
    assert any(name.endswith(".keyless-1.sigstore.json") for name in stored)
    for rel, source in zip(stored, sigstore_kit.bundles, strict=True):
        assert (out / rel).read_bytes() == source.read_bytes()
    assert (out / "attestations/lone.keyless-1.sigstore.json").read_bytes() == (
        sigstore_kit.lone.read_bytes()
    )
    sums = (out / "SHA256SUMS").read_text()
    assert all(f"  {rel}\n" in sums for rel in stored)

    # The sigstore extra's whole closure, at the versions installed here.
    names = wheel_names(manifest)
    assert names >= SIGSTORE_ONLY, sorted(names)
    for wheel in manifest.wheels:
        name, version = Path(wheel).name.split("-")[:2]
        if name != "dssesign":
            assert importlib.metadata.version(name) == version, wheel
    requirements = (out / "requirements.txt").read_text()
    assert f"\nsigstore=={importlib.metadata.version('sigstore')} --hash=sha256:" in requirements
    print(f"sigstore kit: {len(manifest.wheels)} wheels, {wheels_size(manifest) / 1e6:.1f} MB")


def test_sigstore_kit_verifies_offline_and_rejects_a_tampered_bundle(
    sigstore_kit: SigstoreKit, tmp_path: Path
) -> None:
    manifest = sigstore_kit.manifest
    run = run_verify(manifest.out_dir, tmp_path)
    assert run.code == 0, run
    assert [line.split("  ")[:2][0] for line in run.lines[:2]] == ["PASS", "PASS"], run
    assert run.lines[0].startswith("PASS  attestations/lone.keyless-1.sigstore.json  "), run
    assert run.lines[1].startswith("PASS  attestations/release.json + 2 bundle(s)  "), run
    assert run.lines[-1] == "OK: 2 of 2 attestation(s) verified against trust-root.json", run
    assert "Traceback" not in run.err

    # The keyless bundle's payload edited: SHA256SUMS catches it first...
    moved = copy_kit(manifest, tmp_path / "tampered")
    (keyless,) = (moved / "bundles/release.json").glob("*.keyless-1.sigstore.json")
    bundle = json.loads(keyless.read_bytes())
    payload = base64.b64decode(bundle["dsseEnvelope"]["payload"])
    forged = payload.replace(b"hello-1.0", b"hello-6.6")
    assert forged != payload
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(forged).decode()
    keyless.write_text(json.dumps(bundle))
    damaged = run_verify(moved, tmp_path)
    assert damaged.code == 2 and damaged.out == "", damaged
    assert "SHA256SUMS check failed" in damaged.err

    # ...and with the sums redone, the verifier refuses it; the lone bundle still passes.
    rewrite_sums(moved)
    run = run_verify(moved, tmp_path)
    assert run.code == 1, run
    assert run.lines[0].startswith("PASS  attestations/lone.keyless-1.sigstore.json"), run
    assert run.lines[1].startswith(
        "FAIL  attestations/release.json + 2 bundle(s)  BUNDLE_PAYLOAD_MISMATCH:"
    ), run
    assert run.lines[-1].startswith("FAILED: 1 of 2 attestation(s)"), run


def test_a_timestamped_attestation_verifies_in_the_kit_after_its_key_expired(
    *,
    inputs: Inputs,
    kit: KitManifest,
    wheel_cache: Path,
    tsa: Tsa,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 14: the kit carries the bundle with its RFC 3161 token and needs no network."""
    now = datetime.now(UTC).replace(microsecond=0)
    key = signer_for("ecdsa-p256", 3)
    # The key's window ended an hour ago: only the token (made inside it) lets it count.
    root = init_trust_root(threshold=1)
    root = add_key(
        root,
        key.public_key,
        valid_from=now - timedelta(days=1),
        valid_until=now - timedelta(hours=1),
    )
    root = add_timestamp_authority(root, tsa.authority("kit-tsa"))
    trust_root = tmp_path / "timestamped-root.json"
    trust_root.write_bytes(dump_trust_root(root, allow_incomplete=False))
    statement = build_statement(
        [subject_from_file(inputs.artifacts / ARTIFACT.name)], PREDICATE_TYPE, {"run": 3}
    )
    envelope = MultiProfileSigner([key]).sign(statement_payload(statement), PAYLOAD_TYPE)
    signature = envelope.signatures[0].sig
    token = request_timestamp(tsa.url, signature, timeout=30, authorities=[tsa.authority()])
    token = resign(token, tsa.signer, gen_time=now - timedelta(hours=2))
    attestation = tmp_path / "stamped.intoto.json"
    attestation.write_bytes(envelope.to_json())
    bundle = tmp_path / f"{bundle_stem(attestation.name)}.{key.keyid[:16]}.sigstore.json"
    bundle.write_bytes(
        bundle_json(
            keyed_bundle(envelope.payload, PAYLOAD_TYPE, signature, key.public_key, (token,))
        )
    )
    monkeypatch.setenv("PIP_INDEX_URL", DEAD_INDEX)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    built = build_kit(
        trust_root,
        tmp_path / "kit",
        [attestation, bundle],
        inputs.artifacts,
        wheel_source=WheelSource(cache_dir=wheel_cache, allow_index=False),
    )
    run = run_verify(built.out_dir, cwd=tmp_path)
    assert run.code == 0, run
    assert run.lines[0].startswith("PASS  attestations/stamped.intoto.json + 1 bundle(s)"), run
    # The same attestation without its bundle has no time evidence: the key has expired.
    bare = build_kit(
        trust_root,
        tmp_path / "bare-kit",
        [attestation],
        inputs.artifacts,
        wheel_source=WheelSource(cache_dir=wheel_cache, allow_index=False),
    )
    run = run_verify(bare.out_dir, cwd=tmp_path)
    assert run.code == 1 and "KEY_EXPIRED" in run.lines[0], run
