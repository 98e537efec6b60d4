"""Building a kit: planned, staged in a private folder, hashed, and published at once."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import os
import shlex
import shutil
import sys
import sysconfig
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from ..errors import ConfigError, InputError
from .inputs import (
    _Attestation,
    _check_name,
    _check_out_dir,
    _check_vsa_plan,
    _open_regular,
    _plan_artifacts,
    _plan_attestations,
    _read_trust_root,
    _TrustRootInput,
)
from .layout import (
    _CHUNK,
    _COPY_MODE_MASK,
    _GENERATED_FILES,
    _O_CLOEXEC,
    ARTIFACTS_DIR,
    ATTESTATIONS_DIR,
    BUNDLES_DIR,
    MANIFEST_FILE,
    MAX_KIT_FILES,
    MAX_MANIFEST_BYTES,
    MAX_PATH_BYTES,
    MAX_SUMS_BYTES,
    README_FILE,
    REQUIREMENTS_FILE,
    SIGNED_TRUST_ROOT_FILE,
    SIGSTORE_EXTRA,
    SUMS_FILE,
    TRUST_ROOT_FILE,
    VERIFY_SCRIPT,
    WHEELS_DIR,
    KitFile,
    KitManifest,
    Progress,
    WheelSource,
)
from .wheels import _gather_wheels


def build_kit(
    trust_root_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    attestations: Sequence[str | os.PathLike[str]],
    artifacts_dir: str | os.PathLike[str] | None = None,
    *,
    wheel_source: WheelSource | None = None,
    force: bool = False,
    progress: Progress | None = None,
    with_vsa: bool = False,
) -> KitManifest:
    """Write an offline verification kit to `out_dir` and return its manifest.

    The kit is assembled in a temporary sibling directory and renamed into place, so `out_dir`
    never holds half a kit. An existing non-empty `out_dir` is refused unless `force` is set
    and it is itself a kit (holds a dssesign MANIFEST.json), which is then replaced whole.

    `with_vsa`: the kit's `verify.sh --emit-vsa FILE --vsa-key REF --resource-uri URI ...` may
    write a signed verification summary (SLSA VSA) of the kit's verdict with a key that lives
    on the receiving side; without it verify.sh refuses `--emit-vsa`. The attestations must
    then be one `dssesign verify` run (several envelopes without bundles, or one attestation
    with its bundles).
    """
    say = progress or (lambda _message: None)
    source = wheel_source or WheelSource()
    out = Path(os.path.abspath(out_dir))  # no symlink resolution: the name stays the user's

    # Every input is read and checked before the slow part (wheels) starts.
    trust_root = _read_trust_root(Path(trust_root_path))
    attestation_files = _plan_attestations(attestations)
    if with_vsa:
        _check_vsa_plan(attestation_files)
    artifact_files = _plan_artifacts(Path(artifacts_dir)) if artifacts_dir is not None else []
    inputs = [Path(trust_root_path)]
    for attestation in attestation_files:
        inputs += [attestation.path, *(b.path for b in attestation.bundles)]
    if artifacts_dir is not None:
        inputs.append(Path(artifacts_dir))
    copied = sum(1 + len(a.bundles) for a in attestation_files) + len(artifact_files)
    if copied + len(_GENERATED_FILES) > MAX_KIT_FILES:
        raise InputError(
            f"{copied} attestations, bundles and artifacts: a kit holds at most "
            f"{MAX_KIT_FILES} files"
        )
    _check_out_dir(out, force=force, inputs=inputs)

    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=parent, prefix=f".{out.name}.tmp-"))
    except OSError as exc:
        raise InputError(f"cannot create the kit next to {out}: {exc.strerror}") from None
    try:
        manifest = _assemble(
            staging,
            out,
            trust_root=trust_root,
            attestations=attestation_files,
            artifacts=artifact_files,
            extras=_extras_needed(trust_root, attestation_files),
            source=source,
            say=say,
            with_vsa=with_vsa,
        )
        # Private (mkdtemp's 0700) while files are written, so no copy is ever readable by
        # others before its final mode is set; a kit is meant to be read by others.
        os.chmod(staging, 0o755)  # noqa: S103
        _publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    say(f"kit written to {out} (fingerprint sha256:{manifest.fingerprint})")
    return manifest


def _extras_needed(
    trust_root: _TrustRootInput, attestations: Sequence[_Attestation]
) -> tuple[str, ...]:
    """The sigstore extra when a keyless bundle or the trust root's sigstore section needs it;
    kits for keyed trust roots (keyed bundles included) stay without it.

    `with_vsa` adds nothing: signing a summary with a key file (`dssesign verify --emit-vsa
    --vsa-key FILE`, bundles and audit log included) imports only dssesign itself (its wheel
    holds the signing stack and the VSA schema), pyca/cryptography and jsonschema-rs, which
    every kit carries (measured by installing a kit's wheels offline into a fresh venv).
    """
    if trust_root.sigstore or any(a.keyless for a in attestations):
        return (SIGSTORE_EXTRA,)
    return ()


# --- assembly -------------------------------------------------------------------------------


def _assemble(
    staging: Path,
    out: Path,
    *,
    trust_root: _TrustRootInput,
    attestations: list[_Attestation],
    artifacts: list[tuple[str, Path]],
    extras: tuple[str, ...],
    source: WheelSource,
    say: Progress,
    with_vsa: bool = False,
) -> KitManifest:
    files: dict[str, KitFile] = {}

    wheel_dir = staging / WHEELS_DIR
    wheel_dir.mkdir()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dssesign-kit-") as work:
        wheels = _gather_wheels(wheel_dir, source, Path(work), say, extras=extras)
    say(f"gathered {len(wheels.wheels) + 1} wheels in {time.monotonic() - started:.1f}s")
    for path in sorted(wheel_dir.iterdir()):
        _check_name(path.name, "wheel")
        rel = f"{WHEELS_DIR}/{path.name}"
        files[rel] = _hash_existing(staging, rel)
    if len(files) + len(_GENERATED_FILES) + len(artifacts) > MAX_KIT_FILES:
        raise ConfigError(f"{len(files)} wheels: a kit holds at most {MAX_KIT_FILES} files")

    trust_root_name = SIGNED_TRUST_ROOT_FILE if trust_root.signed else TRUST_ROOT_FILE
    files[trust_root_name] = _write(
        staging, trust_root_name, trust_root.data, mode=trust_root.mode & _COPY_MODE_MASK
    )
    (staging / ATTESTATIONS_DIR).mkdir()
    for attestation in attestations:
        rel = f"{ATTESTATIONS_DIR}/{attestation.name}"
        files[rel] = _copy(
            attestation.path, staging, rel, what="attestation", sha256=attestation.sha256
        )
    if artifacts:
        (staging / ARTIFACTS_DIR).mkdir()
        for name, path in artifacts:
            rel = f"{ARTIFACTS_DIR}/{name}"
            files[rel] = _copy(path, staging, rel, what="artifact", follow=False)
    bundle_map: list[tuple[str, tuple[str, ...]]] = []
    for attestation in attestations:
        if attestation.lone_bundle:
            say(f"{attestation.name}: a Sigstore bundle without its envelope, verified alone")
        if not attestation.bundles:
            continue
        group = f"{BUNDLES_DIR}/{attestation.name}"
        (staging / group).mkdir(parents=True)
        stored = []
        for bundle in attestation.bundles:
            rel = f"{group}/{bundle.name}"
            files[rel] = _copy(bundle.path, staging, rel, what="bundle", sha256=bundle.sha256)
            stored.append(rel)
        bundle_map.append((f"{ATTESTATIONS_DIR}/{attestation.name}", tuple(stored)))
        say(f"{attestation.name}: verified with {len(stored)} bundle(s)")

    pins: dict[tuple[str, str], list[str]] = {}
    for wheel in wheels.wheels:
        digest = files[f"{WHEELS_DIR}/{wheel.filename}"].sha256
        pins.setdefault((wheel.name, wheel.version), []).append(f"--hash=sha256:{digest}")
    requirements = "".join(
        f"{name}=={version} {' '.join(hashes)}\n"
        for (name, version), hashes in sorted(pins.items())
    )
    files[REQUIREMENTS_FILE] = _write(
        staging,
        REQUIREMENTS_FILE,
        ("# Installed by verify.sh with --no-index --require-hashes.\n" + requirements).encode(),
    )
    installer = f"{WHEELS_DIR}/{wheels.installer.filename}"
    script = _render_verify_script(
        dssesign_version=wheels.dssesign.version,
        python_versions=wheels.python_versions,
        installer=installer,
        with_vsa=with_vsa,
    )
    files[VERIFY_SCRIPT] = _write(staging, VERIFY_SCRIPT, script.encode(), mode=0o755)
    files[README_FILE] = _write(staging, README_FILE, _resource("README.txt").encode())

    listed = tuple(files[name] for name in sorted(files))
    manifest = KitManifest(
        out_dir=out,
        created=_created(),
        dssesign_version=wheels.dssesign.version,
        python_versions=wheels.python_versions,
        python_implementation=sys.implementation.name,
        platform=sysconfig.get_platform(),
        trust_root=trust_root_name,
        trust_root_signed=trust_root.signed,
        attestations=tuple(f"{ATTESTATIONS_DIR}/{a.name}" for a in attestations),
        artifacts=tuple(f"{ARTIFACTS_DIR}/{name}" for name, _ in artifacts),
        bundles=tuple(bundle_map),
        extras=extras,
        wheels=tuple(f"{WHEELS_DIR}/{w.filename}" for w in wheels.wheels),
        installer=installer,
        files=listed,
        fingerprint="",
        with_vsa=with_vsa,
    )
    manifest_bytes = json.dumps(manifest.to_dict(), indent=2).encode() + b"\n"
    if len(manifest_bytes) > MAX_MANIFEST_BYTES:
        raise InputError(
            f"the kit's {MANIFEST_FILE} would be {len(manifest_bytes)} bytes, more than the "
            f"limit of {MAX_MANIFEST_BYTES}: put fewer files in one kit"
        )
    manifest_entry = _write(staging, MANIFEST_FILE, manifest_bytes)
    sums = "".join(
        f"{entry.sha256}  {entry.path}\n"
        for entry in sorted((*listed, manifest_entry), key=lambda e: e.path)
    ).encode()
    if len(sums) > MAX_SUMS_BYTES:  # cannot happen within MAX_KIT_FILES and MAX_NAME_BYTES
        raise InputError(f"the kit's {SUMS_FILE} would exceed {MAX_SUMS_BYTES} bytes")
    _write(staging, SUMS_FILE, sums)
    _fsync_dirs(staging)
    fingerprint = hashlib.sha256(sums).hexdigest()
    return dataclasses.replace(manifest, fingerprint=fingerprint)


def _created() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = datetime.fromtimestamp(int(epoch), UTC) if epoch and epoch.isdigit() else None
    return (moment or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write(root: Path, rel: str, data: bytes, *, mode: int = 0o644) -> KitFile:
    # The staging directory is fresh and private until renamed, so a plain write is atomic
    # from the outside; fsync so the rename never publishes empty files after a crash.
    path = root / rel
    with _create(path, mode) as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return KitFile(rel, hashlib.sha256(data).hexdigest(), len(data))


def _create(path: Path, mode: int) -> io.BufferedWriter:
    """A new file (never an existing one, never through a link), created owner-only and set to
    exactly `mode` whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        raise
    return open(fd, "wb")  # the caller closes it


def _copy(
    source: Path, root: Path, rel: str, *, what: str, follow: bool = True, sha256: str = ""
) -> KitFile:
    """Copy `source` to `root/rel` with the source's mode, never more open than 0644.

    With `follow=False` a symbolic link is refused, also one swapped in since the file was
    planned. With `sha256`, the copy must be the bytes checked when the file was first read.
    """
    target = root / rel
    digest = hashlib.sha256()
    size = 0
    fd, info = _open_regular(source, what=what, follow=follow)
    try:
        with open(fd, "rb") as reader, _create(target, info.st_mode & _COPY_MODE_MASK) as writer:
            while chunk := reader.read(_CHUNK):
                digest.update(chunk)
                writer.write(chunk)
                size += len(chunk)
            writer.flush()
            os.fsync(writer.fileno())
    except OSError as exc:
        raise InputError(f"cannot copy {source}: {exc.strerror}") from None
    if sha256 and digest.hexdigest() != sha256:
        raise InputError(f"{what} {source}: changed while the kit was being built; build again")
    return KitFile(rel, digest.hexdigest(), size)


def _hash_existing(root: Path, rel: str) -> KitFile:
    """Hash a file pip put in the kit; its mode is narrowed to 0644 at most, never widened (a
    wheel pip copied from a private wheel directory keeps that directory's permissions)."""
    digest = hashlib.sha256()
    size = 0
    fd, info = _open_regular(root / rel, what="wheel", follow=False)
    with open(fd, "rb") as handle:
        os.fchmod(handle.fileno(), info.st_mode & _COPY_MODE_MASK)
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
        os.fsync(handle.fileno())
    return KitFile(rel, digest.hexdigest(), size)


def _fsync_dirs(root: Path) -> None:
    for directory in (root, *(p for p in root.iterdir() if p.is_dir())):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _publish(staging: Path, out: Path) -> None:
    try:
        if not out.exists():
            os.rename(staging, out)
            return
        if not any(out.iterdir()):
            os.replace(staging, out)  # rename(2) may replace an empty directory
            return
        # --force over an earlier kit: swap, then delete the old one.
        old = Path(tempfile.mkdtemp(dir=staging.parent, prefix=f".{out.name}.old-"))
        os.replace(out, old)
        os.rename(staging, out)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        raise InputError(f"cannot move the kit into {out}: {exc.strerror}") from None


# --- the receiving side ---------------------------------------------------------------------


def _render_verify_script(
    *,
    dssesign_version: str,
    python_versions: Sequence[str],
    installer: str,
    with_vsa: bool = False,
) -> str:
    return (
        _resource("verify.sh.in")
        .replace("@DSSESIGN_VERSION@", shlex.quote(dssesign_version))
        .replace("@PYTHON_VERSIONS@", shlex.quote(" ".join(python_versions)))
        .replace("@INSTALLER@", shlex.quote(installer))
        .replace("@WITH_VSA@", "1" if with_vsa else "0")
        .replace("@MAX_FILES@", str(MAX_KIT_FILES))
        .replace("@MAX_SUMS_BYTES@", str(MAX_SUMS_BYTES))
        .replace("@MAX_LINE_BYTES@", str(64 + 2 + MAX_PATH_BYTES))
    )


@functools.cache
def _resource(name: str) -> str:
    """A file the kit ships, kept as a package resource (dssesign/kit/), not a string here."""
    return resources.files("dssesign.kit").joinpath(name).read_text("utf-8")
