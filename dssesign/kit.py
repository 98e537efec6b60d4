"""Offline verification kit: one folder an air-gapped site can use to check attestations.

A kit holds the trust root, the attestations (and optionally the artifacts they describe),
the Sigstore bundles of their signatures, wheels for dssesign and every runtime dependency
(with the `sigstore` extra when a bundle or the trust root needs it), pip's own wheel as the
installer, and `verify.sh`. On the receiving machine `verify.sh` checks `SHA256SUMS`, builds a
throw-away venv with the system Python, installs from `wheels/` only (`--no-index`,
hash-pinned), and runs `dssesign verify` on every attestation with its bundles. See
docs/offline-kit.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import tomllib
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ._fileio import read_bounded
from ._json import loads_strict
from .bundle_verify import is_bundle_document, parse_bundle
from .bundles import BUNDLE_SUFFIX, bundle_stem
from .dsse import Envelope
from .errors import ConfigError, DssesignError, InputError, VerificationError
from .limits import DEFAULT_LIMITS
from .trustroot import (
    MAX_TRUST_ROOT_BYTES,
    TrustRoot,
    format_time,
    load_trust_root,
    verify_signed_trust_root,
)

KIT_MEDIA_TYPE = "application/vnd.dssesign.kit.v1+json"

TRUST_ROOT_FILE = "trust-root.json"
#: A DSSE-signed trust root is stored under this name; verify.sh then needs pinned root keyids.
SIGNED_TRUST_ROOT_FILE = "trust-root.signed.json"
ATTESTATIONS_DIR = "attestations"
#: `bundles/NAME/` holds the Sigstore bundles verified together with `attestations/NAME`.
BUNDLES_DIR = "bundles"
ARTIFACTS_DIR = "artifacts"
WHEELS_DIR = "wheels"
VERIFY_SCRIPT = "verify.sh"
REQUIREMENTS_FILE = "requirements.txt"
README_FILE = "README.txt"
MANIFEST_FILE = "MANIFEST.json"
SUMS_FILE = "SHA256SUMS"

#: The dssesign extra a kit needs to verify keyless Sigstore bundles.
SIGSTORE_EXTRA = "sigstore"

#: Environment variable naming the wheel cache (default: $XDG_CACHE_HOME/dssesign/wheels).
WHEEL_CACHE_ENV = "DSSESIGN_WHEEL_CACHE"

_CHUNK = 1024 * 1024
_PEP440 = re.compile(
    r"([0-9]+!)?[0-9]+(\.[0-9]+)*((a|b|rc)[0-9]+)?(\.post[0-9]+)?(\.dev[0-9]+)?"
    r"(\+[a-z0-9]+(\.[a-z0-9]+)*)?",
    re.IGNORECASE,
)
_REQUIREMENT_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")

Progress = Callable[[str], None]


def default_wheel_cache() -> Path:
    """Where wheels gathered for one kit are kept for the next: $DSSESIGN_WHEEL_CACHE, or the
    user cache directory."""
    explicit = os.environ.get(WHEEL_CACHE_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dssesign" / "wheels"


@dataclass(frozen=True)
class WheelSource:
    """Where the kit's wheels come from.

    The dssesign wheel is built from its source tree (never fetched from an index: a package
    of the same name there is not ours). Dependencies are resolved by pip, pinned to the
    versions installed in the running environment, from the local wheel directories first with
    no index at all, and from pip's configured index (and its HTTP cache) only if those do not
    have everything and `allow_index` is true.
    """

    #: A prebuilt dssesign wheel to ship instead of building one from the source tree.
    dssesign_wheel: Path | None = None
    #: The dssesign source tree (default: the tree this package was imported from).
    project_dir: Path | None = None
    #: Directories of wheels to use before any index (a wheelhouse, an earlier kit's wheels/).
    find_links: tuple[Path, ...] = ()
    #: Keep gathered wheels here and reuse them offline next time; None disables the cache.
    cache_dir: Path | None = field(default_factory=default_wheel_cache)
    #: May pip use its configured package index when the local wheels are not enough?
    allow_index: bool = True
    #: More CPython versions ("3.12", ...) to add wheels for, same platform; the running
    #: interpreter's version is always included.
    python_versions: tuple[str, ...] = ()
    #: Seconds each pip run may take.
    timeout: float = 900.0


@dataclass(frozen=True)
class KitFile:
    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class KitManifest:
    """What `build_kit` wrote; `to_dict()` is the kit's MANIFEST.json."""

    out_dir: Path
    created: str
    dssesign_version: str
    #: Python versions the wheels cover, the building interpreter's first.
    python_versions: tuple[str, ...]
    python_implementation: str
    platform: str
    #: `trust-root.json`, or `trust-root.signed.json` for a DSSE-signed trust root.
    trust_root: str
    trust_root_signed: bool
    #: Envelopes and lone Sigstore bundles, as `attestations/<file>`.
    attestations: tuple[str, ...]
    artifacts: tuple[str, ...]
    #: (attestation, its bundles as `bundles/<attestation file>/<file>`), for envelopes that
    #: have bundles, in attestation order.
    bundles: tuple[tuple[str, tuple[str, ...]], ...]
    #: dssesign extras whose dependencies the wheels include (`sigstore`, or none).
    extras: tuple[str, ...]
    #: Wheels installed on the receiving side, as `wheels/<file>`.
    wheels: tuple[str, ...]
    #: pip's wheel, run from the kit to install the others.
    installer: str
    #: Every file except MANIFEST.json and SHA256SUMS (which lists these and MANIFEST.json).
    files: tuple[KitFile, ...]
    #: SHA-256 of SHA256SUMS: compare it with the value the builder sent by another channel.
    fingerprint: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "mediaType": KIT_MEDIA_TYPE,
            "created": self.created,
            "dssesign": self.dssesign_version,
            "python": {
                "implementation": self.python_implementation,
                "versions": list(self.python_versions),
                "platform": self.platform,
            },
            "trustRoot": self.trust_root,
            "trustRootSigned": self.trust_root_signed,
            "attestations": list(self.attestations),
            "bundles": {name: list(files) for name, files in self.bundles},
            "artifacts": list(self.artifacts),
            "extras": list(self.extras),
            "wheels": list(self.wheels),
            "installer": self.installer,
            "files": [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in self.files],
        }


def build_kit(
    trust_root_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    attestations: Sequence[str | os.PathLike[str]],
    artifacts_dir: str | os.PathLike[str] | None = None,
    *,
    wheel_source: WheelSource | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> KitManifest:
    """Write an offline verification kit to `out_dir` and return its manifest.

    The kit is assembled in a temporary sibling directory and renamed into place, so `out_dir`
    never holds half a kit. An existing non-empty `out_dir` is refused unless `force` is set
    and it is itself a kit (holds a dssesign MANIFEST.json), which is then replaced whole.
    """
    say = progress or (lambda _message: None)
    source = wheel_source or WheelSource()
    out = Path(os.path.abspath(out_dir))  # no symlink resolution: the name stays the user's

    # Every input is read and checked before the slow part (wheels) starts.
    trust_root = _read_trust_root(Path(trust_root_path))
    attestation_files = _plan_attestations(attestations)
    artifact_files = _plan_artifacts(Path(artifacts_dir)) if artifacts_dir is not None else []
    inputs = [Path(trust_root_path)]
    for attestation in attestation_files:
        inputs += [attestation.path, *(b.path for b in attestation.bundles)]
    if artifacts_dir is not None:
        inputs.append(Path(artifacts_dir))
    _check_out_dir(out, force=force, inputs=inputs)

    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=parent, prefix=f".{out.name}.tmp-"))
    except OSError as exc:
        raise InputError(f"cannot create the kit next to {out}: {exc.strerror}") from None
    try:
        os.chmod(staging, 0o755)  # noqa: S103 - a kit is meant to be read by others
        manifest = _assemble(
            staging,
            out,
            trust_root=trust_root,
            attestations=attestation_files,
            artifacts=artifact_files,
            extras=_extras_needed(trust_root, attestation_files),
            source=source,
            say=say,
        )
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
    kits for keyed trust roots (keyed bundles included) stay without it."""
    if trust_root.sigstore or any(a.keyless for a in attestations):
        return (SIGSTORE_EXTRA,)
    return ()


# --- inputs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _TrustRootInput:
    data: bytes
    signed: bool
    #: Has a `sigstore` section (keyless identities): verifying needs sigstore-python.
    sigstore: bool


def _read_trust_root(path: Path) -> _TrustRootInput:
    """A trust root, plain or DSSE-signed; a signed one must verify against its own root keys."""
    # A signed trust root is base64 inside JSON: allow for the expansion and the signatures.
    data = read_bounded(path, limit=2 * MAX_TRUST_ROOT_BYTES, what="trust root")
    document = loads_strict(data, what=f"trust root {path}")
    signed = isinstance(document, dict) and "payloadType" in document
    try:
        root = _check_signed_trust_root(data) if signed else load_trust_root(data)
    except DssesignError as exc:
        code = getattr(exc, "code", None)
        raise InputError(f"{path}: {code + ': ' if code else ''}{exc}") from None
    if root.expires <= datetime.now(UTC):
        # The verifier refuses an expired trust root, so every check in the kit would fail.
        raise InputError(
            f"trust root {path} expired at {format_time(root.expires)}; "
            "renew it before building a kit"
        )
    return _TrustRootInput(data, signed, root.sigstore is not None)


def _check_signed_trust_root(data: bytes) -> TrustRoot:
    # The site checks it against root keyids it pinned; here only that it is well formed and
    # signed by a threshold of the root keys it names itself.
    payload = Envelope.from_json(data).payload
    root = load_trust_root(payload)
    if not root.root.keys:
        raise InputError("signed trust root lists no root keys (rootKeys)")
    return verify_signed_trust_root(
        data,
        pinned_root_keyids=[key.keyid for key in root.root.keys],
        pinned_threshold=root.root.threshold,
    )


def _check_name(name: str, what: str) -> None:
    """A file name that survives sha256sum lines, shell globs and case-folding file systems."""
    if not name or name.startswith((".", "-")):
        raise InputError(f"{what} {name!r}: names starting with '.' or '-' are not supported")
    if any(ord(ch) < 0x20 or ch in "\\\x7f" for ch in name):
        raise InputError(f"{what} {name!r}: control characters and '\\' are not supported")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"{what} {name!r}: the name is not valid UTF-8") from None


def _unique(entries: list[tuple[str, Path]], what: str) -> None:
    seen: dict[str, Path] = {}
    for name, path in entries:
        key = name.casefold()
        if key in seen:
            raise InputError(
                f"{what} {path} and {seen[key]} would both be stored as {name!r} "
                "(names must differ, ignoring case)"
            )
        seen[key] = path


@dataclass(frozen=True)
class _Input:
    """One attestation file as given: a DSSE envelope or a Sigstore bundle."""

    name: str
    path: Path
    #: A Sigstore bundle (by its mediaType), not an envelope.
    bundle: bool
    #: A bundle with a certificate (keyless): verifying it needs sigstore-python.
    keyless: bool


@dataclass(frozen=True)
class _Attestation:
    """What verify.sh checks in one `dssesign verify` run: an envelope with the bundles of
    its signatures, or a bundle alone (then `bundles` is empty)."""

    name: str
    path: Path
    #: The file is itself a bundle, verified alone.
    lone_bundle: bool
    bundles: tuple[_Input, ...]
    #: Verifying this needs sigstore-python (a keyless bundle, alone or with the envelope).
    keyless: bool


def _plan_attestations(paths: Sequence[str | os.PathLike[str]]) -> list[_Attestation]:
    """Read every input, tell envelopes from bundles, and give each bundle its envelope.

    A bundle named `<stem>.<tag>.sigstore.json` (no dot in tag, as `--bundle-dir` writes them)
    goes with the envelope whose name is `<stem>.json` (or `.dsse.json`, ...: `bundle_stem`);
    any other bundle is verified alone. Names that could mean either are refused.
    """
    if isinstance(paths, str | bytes):
        raise ConfigError("attestations must be a sequence of paths, not one string")
    if not paths:
        raise ConfigError("no attestations: give at least one envelope to put in the kit")
    read = [_read_input(Path(raw)) for raw in paths]
    _unique([(item.name, item.path) for item in read], "attestations")
    envelopes = [item for item in read if not item.bundle]
    by_stem: dict[str, list[_Input]] = {}
    for envelope in envelopes:
        by_stem.setdefault(bundle_stem(envelope.name), []).append(envelope)
    grouped: dict[str, list[_Input]] = {envelope.name: [] for envelope in envelopes}
    plan: dict[str, _Attestation | None] = {item.name: None for item in read}
    for item in read:
        if not item.bundle:
            continue
        owner = _bundle_owner(item, by_stem)
        if owner is None:
            plan[item.name] = _Attestation(item.name, item.path, True, (), item.keyless)
        else:
            grouped[owner.name].append(item)
    limit = DEFAULT_LIMITS.max_signatures
    for envelope in envelopes:
        bundles = tuple(grouped[envelope.name])
        if len(bundles) > limit:
            raise InputError(
                f"attestation {envelope.path}: {len(bundles)} bundles go with it; "
                f"dssesign verify takes at most {limit} bundles per envelope"
            )
        keyless = any(bundle.keyless for bundle in bundles)
        plan[envelope.name] = _Attestation(envelope.name, envelope.path, False, bundles, keyless)
    return [entry for entry in plan.values() if entry is not None]


def _read_input(path: Path) -> _Input:
    _check_name(path.name, "attestation")
    # A cheap sanity check: the verifier on the other side does the real work.
    data = read_bounded(path, limit=DEFAULT_LIMITS.max_json_bytes, what="attestation")
    document = loads_strict(data, what=f"attestation {path}")
    if not isinstance(document, dict):
        raise InputError(
            f"attestation {path}: expected a JSON object (a DSSE envelope or a Sigstore bundle)"
        )
    if not is_bundle_document(document):
        return _Input(path.name, path, bundle=False, keyless=False)
    try:
        parsed = parse_bundle(data)
    except VerificationError as exc:
        raise InputError(f"bundle {path}: {exc.code}: {exc}") from None
    return _Input(path.name, path, bundle=True, keyless=not parsed.keyed)


def _bundle_owner(bundle: _Input, by_stem: Mapping[str, list[_Input]]) -> _Input | None:
    """The envelope a bundle goes with, by name; None: verified alone."""
    if not bundle.name.endswith(BUNDLE_SUFFIX):
        return None
    base = bundle.name[: -len(BUNDLE_SUFFIX)]
    if base in by_stem:
        raise InputError(
            f"bundle {bundle.path}: its name does not say whether it goes with "
            f"{by_stem[base][0].path} or stands alone; rename it {base}.<tag>{BUNDLE_SUFFIX} "
            "to verify it with that envelope, or to another name to verify it alone"
        )
    stem, dot, tag = base.rpartition(".")
    owners = by_stem.get(stem, []) if dot and tag else []
    if len(owners) > 1:
        shown = " and ".join(str(owner.path) for owner in owners)
        raise InputError(
            f"bundle {bundle.path}: {shown} both have the bundle stem {stem!r}; "
            "rename one so each envelope's bundles are unambiguous"
        )
    return owners[0] if owners else None


def _plan_artifacts(directory: Path) -> list[tuple[str, Path]]:
    try:
        children = sorted(directory.iterdir())
    except FileNotFoundError:
        raise InputError(f"artifacts directory {directory}: no such directory") from None
    except NotADirectoryError:
        raise InputError(f"artifacts directory {directory}: not a directory") from None
    except OSError as exc:
        raise InputError(f"artifacts directory {directory}: {exc.strerror}") from None
    entries: list[tuple[str, Path]] = []
    for child in children:
        if child.name.startswith("."):
            continue  # .DS_Store, .gitkeep: never an artifact
        if child.is_dir():
            raise InputError(
                f"artifacts directory {directory}: {child.name} is a directory "
                "(only files at the top level are supported)"
            )
        if not child.is_file():
            raise InputError(f"artifact {child}: not a regular file")
        _check_name(child.name, "artifact")
        entries.append((child.name, child))
    if not entries:
        raise InputError(f"artifacts directory {directory}: holds no files")
    _unique(entries, "artifacts")
    return entries


def _is_kit(path: Path) -> bool:
    try:
        data = json.loads((path / MANIFEST_FILE).read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("mediaType") == KIT_MEDIA_TYPE


def _check_out_dir(out: Path, *, force: bool, inputs: Sequence[Path]) -> None:
    if out == out.parent or Path.cwd().resolve().is_relative_to(out.resolve()):
        raise ConfigError(f"output {out}: give a directory of its own for the kit")
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise InputError(f"output {out}: exists and is not a directory")
    if not out.exists():
        return
    try:
        empty = not any(out.iterdir())
    except OSError as exc:
        raise InputError(f"output {out}: {exc.strerror}") from None
    if empty:
        return
    if not force:
        raise ConfigError(f"output {out} is not empty (use --force to replace an earlier kit)")
    if not _is_kit(out):
        raise ConfigError(f"output {out} is not empty and is not a dssesign kit; not replacing it")
    resolved = out.resolve()
    for path in inputs:
        if path.resolve().is_relative_to(resolved):
            raise ConfigError(f"input {path} lies inside {out}, which --force would replace")


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
) -> KitManifest:
    files: dict[str, KitFile] = {}

    wheel_dir = staging / WHEELS_DIR
    wheel_dir.mkdir()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dssesign-kit-") as work:
        wheels = _gather_wheels(wheel_dir, source, Path(work), say, extras=extras)
    say(f"gathered {len(wheels.wheels) + 1} wheels in {time.monotonic() - started:.1f}s")
    for path in sorted(wheel_dir.iterdir()):
        rel = f"{WHEELS_DIR}/{path.name}"
        files[rel] = _hash_existing(staging, rel)

    trust_root_name = SIGNED_TRUST_ROOT_FILE if trust_root.signed else TRUST_ROOT_FILE
    files[trust_root_name] = _write(staging, trust_root_name, trust_root.data)
    attestation_entries = [(a.name, a.path) for a in attestations]
    for subdir, entries in ((ATTESTATIONS_DIR, attestation_entries), (ARTIFACTS_DIR, artifacts)):
        if not entries:
            continue
        (staging / subdir).mkdir()
        for name, path in entries:
            rel = f"{subdir}/{name}"
            files[rel] = _copy(path, staging, rel)
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
            files[rel] = _copy(bundle.path, staging, rel)
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
    )
    files[VERIFY_SCRIPT] = _write(staging, VERIFY_SCRIPT, script.encode(), mode=0o755)
    files[README_FILE] = _write(staging, README_FILE, _README.encode())

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
    )
    manifest_bytes = json.dumps(manifest.to_dict(), indent=2).encode() + b"\n"
    manifest_entry = _write(staging, MANIFEST_FILE, manifest_bytes)
    sums = "".join(
        f"{entry.sha256}  {entry.path}\n"
        for entry in sorted((*listed, manifest_entry), key=lambda e: e.path)
    ).encode()
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
    with open(path, "xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(path, mode)
    return KitFile(rel, hashlib.sha256(data).hexdigest(), len(data))


def _copy(source: Path, root: Path, rel: str) -> KitFile:
    target = root / rel
    digest = hashlib.sha256()
    size = 0
    try:
        with open(source, "rb") as reader, open(target, "xb") as writer:
            while chunk := reader.read(_CHUNK):
                digest.update(chunk)
                writer.write(chunk)
                size += len(chunk)
            writer.flush()
            os.fsync(writer.fileno())
    except OSError as exc:
        raise InputError(f"cannot copy {source}: {exc.strerror}") from None
    os.chmod(target, 0o644)
    return KitFile(rel, digest.hexdigest(), size)


def _hash_existing(root: Path, rel: str) -> KitFile:
    path = root / rel
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
        os.fsync(handle.fileno())
    os.chmod(path, 0o644)
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


# --- wheels ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Wheel:
    filename: str
    name: str
    version: str


@dataclass(frozen=True)
class _WheelSet:
    dssesign: _Wheel
    #: Everything pip installs on the receiving side (dssesign included), sorted by file name.
    wheels: tuple[_Wheel, ...]
    installer: _Wheel
    python_versions: tuple[str, ...]


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _parse_wheel(filename: str) -> _Wheel:
    parts = filename.removesuffix(".whl").split("-")
    if not filename.endswith(".whl") or len(parts) not in (5, 6):
        raise ConfigError(f"{filename}: not a wheel file name")
    return _Wheel(filename, _normalize(parts[0]), parts[1])


def _gather_wheels(
    dest: Path, source: WheelSource, work: Path, say: Progress, *, extras: tuple[str, ...] = ()
) -> _WheelSet:
    if importlib.util.find_spec("pip") is None:
        raise ConfigError(f"pip is not installed in {sys.executable}; it is needed to build a kit")
    local_dirs = [Path(p) for p in source.find_links]
    for directory in local_dirs:
        if not directory.is_dir():
            raise ConfigError(f"wheel directory {directory}: not a directory")
    cache = source.cache_dir
    if cache is not None:
        try:
            cache.mkdir(parents=True, exist_ok=True)
            local_dirs.append(cache)
        except OSError as exc:
            say(f"not using the wheel cache {cache}: {exc.strerror}")
            cache = None

    if source.dssesign_wheel is not None:
        own = Path(source.dssesign_wheel)
        if not own.is_file() or _parse_wheel(own.name).name != "dssesign":
            raise ConfigError(f"{own}: not a dssesign wheel")
    else:
        own = _build_own_wheel(work, source, local_dirs, cache, say)

    pip_version = _installed_version("pip")
    installer_req = f"pip=={pip_version}" if pip_version else "pip"
    constraints = work / "constraints.txt"
    constraints.write_text("".join(f"{pin}\n" for pin in _environment_pins(extras)))
    # With extras the built wheel is named by URL, so pip resolves the extras' dependencies.
    own_requirement = (
        f"dssesign[{','.join(extras)}] @ {own.resolve().as_uri()}" if extras else str(own)
    )
    shown = f" and the {', '.join(extras)} extra's" if extras else ""
    say(f"resolving dssesign's runtime dependencies{shown}")
    # pip's own wheel comes along: it is the installer on the receiving side.
    requirements = [own_requirement, installer_req]
    _pip_offline_first(
        ["wheel", "--wheel-dir", str(dest), "--constraint", str(constraints), *requirements],
        source,
        local_dirs,
        what="gather the dependency wheels",
    )

    running = "{}.{}".format(*sys.version_info[:2])
    versions = [running]
    for version in source.python_versions:
        if version not in versions:
            _add_wheels_for(
                version,
                dest,
                requirements=[own_requirement],
                constraints=constraints,
                source=source,
                local_dirs=local_dirs,
                work=work,
                say=say,
            )
            versions.append(version)

    wheels = [_parse_wheel(p.name) for p in sorted(dest.iterdir())]
    version_of: dict[str, _Wheel] = {}
    for wheel in wheels:
        other = version_of.setdefault(wheel.name, wheel)
        if other.version != wheel.version:
            raise ConfigError(
                f"the wheels disagree on the version of {wheel.name}: "
                f"{other.filename} and {wheel.filename} (pin one version)"
            )
    if "dssesign" not in version_of or "pip" not in version_of:
        raise ConfigError("pip did not produce the dssesign and pip wheels")
    missing = [name for name in _extra_requirement_names(own, extras) if name not in version_of]
    if missing:
        raise ConfigError(f"pip did not produce wheels for {', '.join(missing)} (dssesign extras)")
    if cache is not None:
        _fill_cache(dest, cache, exclude=("dssesign",))
    return _WheelSet(
        dssesign=version_of["dssesign"],
        wheels=tuple(w for w in wheels if w.name != "pip"),
        installer=version_of["pip"],
        python_versions=tuple(versions),
    )


def _add_wheels_for(
    version: str,
    dest: Path,
    *,
    requirements: list[str],
    constraints: Path,
    source: WheelSource,
    local_dirs: list[Path],
    work: Path,
    say: Progress,
) -> None:
    """Add the wheels another CPython version needs (same platform, same pinned versions)."""
    match = re.fullmatch(r"3\.([0-9]{1,3})", version)
    if sys.implementation.name != "cpython":
        raise ConfigError("extra Python versions are only supported when building with CPython")
    if not match or int(match.group(1)) < 11:
        raise ConfigError(f"python version {version!r}: expected 3.11 or later, as in 3.12")
    say(f"adding wheels for Python {version}")
    extra = work / f"py{version}"
    args = ["download", "--dest", str(extra), "--only-binary=:all:", "--implementation", "cp"]
    args += ["--python-version", version, "--constraint", str(constraints), *requirements]
    _pip_offline_first(
        args,
        source,
        local_dirs,
        what=f"gather wheels for Python {version}",
    )
    for path in sorted(extra.iterdir()):
        if not (dest / path.name).exists():
            shutil.copyfile(path, dest / path.name)


def _find_project_dir() -> Path:
    root = Path(__file__).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    try:
        name = tomllib.loads(pyproject.read_text("utf-8")).get("project", {}).get("name")
    except (OSError, ValueError):
        name = None
    if name != "dssesign":
        raise ConfigError(
            f"cannot find the dssesign source tree (dssesign is installed at {root}); "
            "pass the source tree or a prebuilt dssesign wheel"
        )
    return root


def _build_own_wheel(
    work: Path, source: WheelSource, local_dirs: list[Path], cache: Path | None, say: Progress
) -> Path:
    project = Path(source.project_dir) if source.project_dir else _find_project_dir()
    try:
        pyproject = tomllib.loads((project / "pyproject.toml").read_text("utf-8"))
    except OSError as exc:
        raise ConfigError(f"{project}/pyproject.toml: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"{project}/pyproject.toml: {exc}") from None
    requires = pyproject.get("build-system", {}).get("requires", [])
    if cache is not None and requires:
        # Keep the build backend's wheels in the cache so the next build needs no network.
        _pip_offline_first(
            ["wheel", "--wheel-dir", str(cache), *requires],
            source,
            local_dirs,
            what="fetch the build backend",
        )
    say(f"building the dssesign wheel from {project}")
    dist = work / "dist"
    _pip_offline_first(
        ["wheel", "--no-deps", "--wheel-dir", str(dist), str(project)],
        source,
        local_dirs,
        what="build the dssesign wheel",
    )
    built = sorted(dist.glob("dssesign-*.whl"))
    if len(built) != 1:
        raise ConfigError(f"building dssesign from {project} did not produce one wheel")
    return built[0]


def _installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _environment_pins(extras: Sequence[str] = ()) -> list[str]:
    """`name==version` for dssesign's dependency closure as installed here (and pip), through
    the requirements of the given dssesign extras too, so the kit runs this environment's
    versions. Below dssesign, every requirement is followed whatever its marker: an extra pin
    on an unused package is harmless, a missing one lets pip pick another version."""
    installed: dict[str, importlib.metadata.Distribution] = {}
    for dist in importlib.metadata.distributions():  # in sys.path order: first one wins
        name = dist.metadata["Name"]
        if name:
            installed.setdefault(_normalize(name), dist)
    wanted = ["dssesign", "pip"]
    seen: set[str] = set()
    pins: list[str] = []
    while wanted:
        key = wanted.pop()
        if key in seen or key not in installed:
            continue
        seen.add(key)
        dist = installed[key]
        for requirement in dist.requires or ():
            if key == "dssesign" and not _wanted_by(requirement, extras):
                continue
            match = _REQUIREMENT_NAME.match(requirement)
            if match:
                wanted.append(_normalize(match.group(1)))
        if key == "dssesign":
            continue  # always our own wheel, never a version from an index
        direct = dist.read_text("direct_url.json") or ""
        if '"dir_info"' in direct or '"vcs_info"' in direct:
            continue  # a local or VCS install has no index release to pin to
        if _PEP440.fullmatch(dist.version or ""):
            pins.append(f"{key}=={dist.version}")
    return sorted(pins)


_EXTRA_MARKER = re.compile(r"""\bextra\s*==\s*["']([^"']+)["']""")


def _wanted_by(requirement: str, extras: Sequence[str]) -> bool:
    """A base requirement of dssesign, or one of a requested extra's."""
    marker = requirement.partition(";")[2]
    named = {_normalize(m) for m in _EXTRA_MARKER.findall(marker)}
    return not named or bool(named & {_normalize(e) for e in extras})


def _extra_requirement_names(wheel: Path, extras: Sequence[str]) -> list[str]:
    """Distribution names the dssesign wheel requires for `extras` (read from its METADATA)."""
    if not extras:
        return []
    try:
        with zipfile.ZipFile(wheel) as archive:
            (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
            text = archive.read(metadata).decode("utf-8")
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"{wheel}: cannot read the wheel's metadata: {exc}") from None
    names = []
    for line in text.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        requirement = line.removeprefix("Requires-Dist:").strip()
        match = _REQUIREMENT_NAME.match(requirement)
        marker = requirement.partition(";")[2]
        if match and _EXTRA_MARKER.search(marker) and _wanted_by(requirement, extras):
            names.append(_normalize(match.group(1)))
    return names


def _pip_offline_first(
    args: list[str], source: WheelSource, local_dirs: Sequence[Path], *, what: str
) -> None:
    links = [f"--find-links={directory}" for directory in local_dirs]
    if links:
        offline = _pip([*args, "--no-index", *links], timeout=source.timeout)
        if offline is None:
            return
        if not source.allow_index:
            shown = ", ".join(str(d) for d in local_dirs)
            raise ConfigError(f"cannot {what} from local wheels only ({shown}): {offline}")
    elif not source.allow_index:
        raise ConfigError(f"cannot {what}: no wheel directories given and the index is not allowed")
    online = _pip([*args, *links], timeout=source.timeout)
    if online is not None:
        raise ConfigError(f"cannot {what}: {online}")


def _pip(args: list[str], *, timeout: float) -> str | None:
    """Run pip in this interpreter; None on success, else pip's error in one line."""
    command = [sys.executable, "-m", "pip", *args, "--disable-pip-version-check", "--no-input"]
    env = {**os.environ, "PIP_PROGRESS_BAR": "off"}
    try:
        proc = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        return f"pip {args[0]} took longer than {timeout:g}s"
    except OSError as exc:
        return f"cannot run pip: {exc.strerror}"
    if proc.returncode == 0:
        return None
    lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
    errors = [line.removeprefix("ERROR:").strip() for line in lines if line.startswith("ERROR:")]
    detail = "; ".join(errors[:2]) or (lines[-1] if lines else "")
    return f"pip {args[0]} failed (exit {proc.returncode}): {detail}"


def _fill_cache(wheel_dir: Path, cache: Path, *, exclude: Sequence[str]) -> None:
    for path in wheel_dir.iterdir():
        if _parse_wheel(path.name).name in exclude or (cache / path.name).exists():
            continue
        with contextlib.suppress(OSError):
            fd, tmp = tempfile.mkstemp(dir=cache, prefix=f".{path.name}.", suffix=".tmp")
            os.close(fd)
            try:
                shutil.copyfile(path, tmp)
                os.replace(tmp, cache / path.name)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)


# --- the receiving side ---------------------------------------------------------------------


def _render_verify_script(
    *, dssesign_version: str, python_versions: Sequence[str], installer: str
) -> str:
    return (
        _VERIFY_SH.replace("@DSSESIGN_VERSION@", shlex.quote(dssesign_version))
        .replace("@PYTHON_VERSIONS@", shlex.quote(" ".join(python_versions)))
        .replace("@INSTALLER@", shlex.quote(installer))
    )


_README = """\
dssesign offline verification kit
=================================

Before running anything, compare the SHA-256 of SHA256SUMS with the fingerprint the kit's
builder sent you by another channel:

    sha256sum SHA256SUMS

Then run (needs bash and Python 3.11 or later; no network):

    ./verify.sh            # or: bash verify.sh [-v] [--python /path/to/python3]

It checks every file against SHA256SUMS, installs dssesign from wheels/ into a temporary
virtual environment (no package index is contacted), and runs `dssesign verify` against
trust-root.json for every file in attestations/ (a DSSE envelope, or a Sigstore bundle
verified alone), together with the Sigstore bundles in bundles/NAME/ for attestations/NAME
and with every file in artifacts/ given as --artifact. Exit status: 0 all verified, 1 at
least one attestation failed, 2 the kit or the machine is not usable. MANIFEST.json describes
the kit.
"""

_VERIFY_SH = r"""#!/usr/bin/env bash
# dssesign offline verification kit: checks SHA256SUMS, installs dssesign from wheels/ into a
# temporary venv (no index), verifies every attestation and its bundles against the trust root.
# Usage: ./verify.sh [-v|--verbose] [--python PYTHON] [--root-keyid HEX ...] [--root-threshold N]
#   --root-keyid HEX    a root keyid you pinned (repeat); required if the trust root is signed
#   --root-threshold N  how many pinned root keys must have signed it (default: all)
# Exit status: 0 all verified; 1 a verification failed; 2 the kit or the host is unusable.
set -euo pipefail

KIT_DSSESIGN_VERSION=@DSSESIGN_VERSION@
KIT_PYTHON_VERSIONS=@PYTHON_VERSIONS@
KIT_INSTALLER=@INSTALLER@

export LC_ALL=C

die() {
  printf 'verify.sh: %s\n' "$*" >&2
  exit 2
}

verbose=0
python=${DSSESIGN_KIT_PYTHON:-}
root_keyids=()
root_threshold=""
while [ $# -gt 0 ]; do
  case $1 in
    -v | --verbose) verbose=1 ;;
    --python)
      [ $# -ge 2 ] || die "--python needs a value"
      python=$2
      shift
      ;;
    --python=*) python=${1#--python=} ;;
    --root-keyid)
      [ $# -ge 2 ] || die "--root-keyid needs a value"
      root_keyids+=("$2")
      shift
      ;;
    --root-keyid=*) root_keyids+=("${1#--root-keyid=}") ;;
    --root-threshold)
      [ $# -ge 2 ] || die "--root-threshold needs a value"
      root_threshold=$2
      shift
      ;;
    --root-threshold=*) root_threshold=${1#--root-threshold=} ;;
    -h | --help)
      sed -n '2,7s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
      exit 0
      ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done

KIT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
cd -- "$KIT_DIR"

# 1. The kit is complete and unchanged: every file listed in SHA256SUMS, and nothing else.
[ -f SHA256SUMS ] || die "SHA256SUMS is missing: this is not a complete kit"
if command -v sha256sum >/dev/null 2>&1; then
  sha256() { sha256sum "$@"; }
elif command -v shasum >/dev/null 2>&1; then
  sha256() { shasum -a 256 "$@"; }
else
  die "neither sha256sum nor shasum is installed"
fi
if ! check=$(sha256 -c SHA256SUMS 2>&1); then
  printf '%s\n' "$check" | grep -v ': OK$' >&2 || true
  die "SHA256SUMS check failed: the kit was modified or damaged"
fi
links=$(find . -type l -print)
[ -z "$links" ] || die "the kit holds symbolic links: $(printf '%s' "$links" | tr '\n' ' ')"
listed=$(sed -e 's/^[0-9a-f]\{64\} [ *]//' SHA256SUMS | sort)
present=$(find . ! -type d ! -path ./SHA256SUMS -print | sed -e 's|^\./||' | sort)
extra=$(comm -13 <(printf '%s\n' "$listed") <(printf '%s\n' "$present"))
[ -z "$extra" ] || die "files not listed in SHA256SUMS: $(printf '%s' "$extra" | tr '\n' ' ')"
fingerprint=$(sha256 SHA256SUMS)
printf 'kit fingerprint (sha256 of SHA256SUMS): %s\n' "${fingerprint%% *}" >&2

shopt -s nullglob
attestations=(attestations/*)
artifacts=(artifacts/*)
[ ${#attestations[@]} -gt 0 ] || die "the kit holds no attestations"
for attestation in "${attestations[@]}"; do
  [ -f "$attestation" ] || die "$attestation is not a file"
done
# bundles/NAME/ holds the Sigstore bundles verified together with attestations/NAME.
for group in bundles/*; do
  [ -d "$group" ] && [ -f "attestations/${group#bundles/}" ] ||
    die "$group: bundles must be in bundles/NAME/ for an attestation attestations/NAME"
  for bundle in "$group"/*; do
    [ -f "$bundle" ] || die "$bundle is not a file"
  done
done
bundle_files=(bundles/*/*)
case $root_threshold in
  *[!0-9]*) die "--root-threshold must be a number" ;;
esac
if [ -f trust-root.signed.json ]; then
  trust_root_name=trust-root.signed.json
  [ ${#root_keyids[@]} -gt 0 ] ||
    die "the trust root is signed: give the root keyid(s) you pinned with --root-keyid HEX"
elif [ -f trust-root.json ]; then
  trust_root_name=trust-root.json
  if [ ${#root_keyids[@]} -gt 0 ] || [ -n "$root_threshold" ]; then
    die "--root-keyid/--root-threshold given, but the kit's trust root is not signed"
  fi
  printf 'verify.sh: note: %s\n' "trust-root.json is not signed: it is only as trustworthy as \
the kit fingerprint you compared" >&2
else
  die "the kit holds no trust root"
fi

# 2. A Python 3.11+, preferably one the wheels were gathered for.
py_version() {
  "$1" -I -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null
}
if [ -z "$python" ]; then
  for candidate in python3 $(printf 'python%s ' $KIT_PYTHON_VERSIONS); do
    if command -v "$candidate" >/dev/null 2>&1 && found=$(py_version "$candidate") &&
      case " $KIT_PYTHON_VERSIONS " in *" $found "*) true ;; *) false ;; esac; then
      python=$candidate
      break
    fi
  done
  if [ -z "$python" ] && command -v python3 >/dev/null 2>&1; then
    python=python3
  fi
fi
[ -n "$python" ] || die "no python3 on PATH (need Python $KIT_PYTHON_VERSIONS; or use --python)"
version=$(py_version "$python") || die "cannot run $python"
"$python" -I -c 'import sys; raise SystemExit(sys.version_info < (3, 11))' ||
  die "$python is Python $version; dssesign needs 3.11 or later"
mismatch=""
case " $KIT_PYTHON_VERSIONS " in
  *" $version "*) ;;
  *)
    mismatch=" (the wheels are for Python $KIT_PYTHON_VERSIONS; $python is $version)"
    printf 'verify.sh: warning: %s is Python %s; the wheels were gathered for %s\n' \
      "$python" "$version" "$KIT_PYTHON_VERSIONS" >&2
    ;;
esac

# 3. dssesign in a throw-away venv, from wheels/ only: no index, no config, hashes pinned.
work=$(mktemp -d "${TMPDIR:-/tmp}/dssesign-kit.XXXXXXXX") || die "cannot create a temp directory"
trap 'rm -rf -- "$work"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
"$python" -I -m venv --without-pip "$work/venv" >"$work/venv.log" 2>&1 || {
  cat "$work/venv.log" >&2
  die "cannot create a virtual environment with $python"
}
venv_python=$work/venv/bin/python
while IFS= read -r var; do
  case $var in PIP_* | PYTHON*) unset "$var" ;; esac
done < <(compgen -e)
export PIP_CONFIG_FILE=/dev/null
"$venv_python" -I "$KIT_DIR/$KIT_INSTALLER/pip" install --disable-pip-version-check --no-input \
  --no-index --find-links "$KIT_DIR/wheels" --only-binary=:all: --require-hashes \
  --no-cache-dir --no-compile --requirement "$KIT_DIR/requirements.txt" \
  >"$work/pip.log" 2>&1 || {
  cat "$work/pip.log" >&2
  die "installing dssesign from wheels/ failed$mismatch"
}
installed=$("$venv_python" -I -m dssesign --version 2>&1) || die "dssesign does not run: $installed"
[ "$installed" = "dssesign $KIT_DSSESIGN_VERSION" ] ||
  die "expected dssesign $KIT_DSSESIGN_VERSION, got: $installed"

# 4. A signed trust root must verify against the root keyids the site pinned.
trust_root=trust-root.json
if [ "$trust_root_name" = trust-root.signed.json ]; then
  check_root='
import sys
from dssesign.errors import DssesignError
from dssesign.trustroot import dump_trust_root, format_time, verify_signed_trust_root
source, target, threshold = sys.argv[1:4]
try:
    with open(source, "rb") as handle:
        root = verify_signed_trust_root(
            handle.read(),
            pinned_root_keyids=sys.argv[4:],
            pinned_threshold=int(threshold) if threshold else None,
        )
    data = dump_trust_root(root, allow_incomplete=False)
except DssesignError as exc:
    print("%s: %s" % (getattr(exc, "code", "INVALID_ARGUMENT"), " ".join(str(exc).split())))
    raise SystemExit(exc.exit_code)
with open(target, "wb") as handle:
    handle.write(data)
print("version %d, expires %s" % (root.version, format_time(root.expires)))
'
  status=0
  "$venv_python" -I -c "$check_root" trust-root.signed.json "$work/trust-root.json" \
    "$root_threshold" "${root_keyids[@]}" >"$work/root.out" 2>&1 || status=$?
  detail=$(tr '\n' ' ' <"$work/root.out")
  if [ "$status" -ne 0 ]; then
    printf 'FAIL  trust-root.signed.json  %s\n' "${detail% }"
    printf 'FAILED: the signed trust root does not verify against the pinned root keyid(s); '
    printf 'no attestation was checked\n'
    [ "$status" -eq 1 ] && exit 1
    exit 2
  fi
  printf 'trust root: signed by the pinned root key(s); %s\n' "${detail% }" >&2
  trust_root=$work/trust-root.json
fi

# 5. Every attestation, with every artifact.
artifact_args=()
for artifact in ${artifacts[@]+"${artifacts[@]}"}; do
  artifact_args+=(--artifact "$artifact")
done
printf 'verifying %d attestation(s) and %d bundle(s) with %s (Python %s), %d artifact(s)\n' \
  "${#attestations[@]}" "${#bundle_files[@]}" "$installed" "$version" "${#artifacts[@]}" >&2

summarize='
import json, sys
out = open(sys.argv[1], encoding="utf-8", errors="replace").read()
err = open(sys.argv[2], encoding="utf-8", errors="replace").read()
try:
    report = json.loads(out)
    text = str(report.get("message") or "")
    if report.get("code") and not report.get("ok"):
        text = "%s: %s" % (report["code"], text)
except Exception:
    text = next((s for s in (err + "\n" + out).splitlines() if s.strip()), "")
print(" ".join(text.split())[:400])
'
passed=0
failed=0
for attestation in "${attestations[@]}"; do
  bundles=()
  group=bundles/${attestation#attestations/}
  [ ! -d "$group" ] || bundles=("$group"/*)
  label=$attestation
  [ ${#bundles[@]} -eq 0 ] || label="$attestation + ${#bundles[@]} bundle(s)"
  status=0
  "$venv_python" -I -m dssesign verify --json --trust-root "$trust_root" \
    ${artifact_args[@]+"${artifact_args[@]}"} "$attestation" ${bundles[@]+"${bundles[@]}"} \
    >"$work/out" 2>"$work/err" || status=$?
  detail=$("$venv_python" -I -c "$summarize" "$work/out" "$work/err" 2>/dev/null) || detail=""
  if [ "$status" -eq 0 ]; then
    passed=$((passed + 1))
    printf 'PASS  %s%s\n' "$label" "${detail:+  $detail}"
  else
    failed=$((failed + 1))
    [ "$status" -eq 1 ] || detail="(exit $status) $detail"
    printf 'FAIL  %s%s\n' "$label" "${detail:+  $detail}"
  fi
  if [ "$verbose" -eq 1 ]; then
    sed -e 's/^/    /' "$work/out" "$work/err"
  fi
done

total=$((passed + failed))
if [ "$failed" -eq 0 ]; then
  printf 'OK: %d of %d attestation(s) verified against %s\n' "$passed" "$total" "$trust_root_name"
  exit 0
fi
printf 'FAILED: %d of %d attestation(s) did not verify against %s\n' \
  "$failed" "$total" "$trust_root_name"
exit 1
"""
