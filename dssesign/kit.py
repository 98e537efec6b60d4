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
import errno
import functools
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
import tomllib
import unicodedata
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from ._json import loads_strict
from .bundle_verify import is_bundle_document, parse_bundle
from .bundles import BUNDLE_SUFFIX, bundle_stem
from .dsse import Envelope
from .errors import ConfigError, DssesignError, InputError, VerificationError
from .limits import DEFAULT_LIMITS
from .trust import (
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

#: Bounds on what a kit holds, so reading one back is bounded and linear. verify.sh checks
#: SHA256SUMS against them (size, entries, one line per file, each name at most three levels
#: deep) before it hashes anything; build_kit never writes a kit that exceeds them.
MAX_KIT_FILES = 10_000
#: One file or folder name in a kit, in UTF-8 bytes (what common file systems take).
MAX_NAME_BYTES = 255
#: A path in a kit: `bundles/NAME/FILE` is the deepest.
MAX_PATH_BYTES = 3 * (MAX_NAME_BYTES + 1)
#: SHA256SUMS: `<64 hex>  <path>\n` per file.
MAX_SUMS_BYTES = MAX_KIT_FILES * (64 + 2 + MAX_PATH_BYTES + 1)
#: MANIFEST.json, read back when `--force` replaces an earlier kit.
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
#: Permission bits a file copied into a kit may keep: read/write, never execute or set-id; and
#: never more than its source had (a 0600 file stays 0600).
_COPY_MODE_MASK = 0o644

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

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
#: Files every kit holds besides the copied and gathered ones.
_GENERATED_FILES = (
    TRUST_ROOT_FILE,
    VERIFY_SCRIPT,
    README_FILE,
    REQUIREMENTS_FILE,
    MANIFEST_FILE,
    SUMS_FILE,
)


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
    #: The source file's st_mode: the kit's copy is never more open than the source.
    mode: int


def _read_trust_root(path: Path) -> _TrustRootInput:
    """A trust root, plain or DSSE-signed; a signed one must verify against its own root keys."""
    # A signed trust root is base64 inside JSON: allow for the expansion and the signatures.
    data, mode = _read_regular(path, limit=2 * MAX_TRUST_ROOT_BYTES, what="trust root")
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
    return _TrustRootInput(data, signed, root.sigstore is not None, mode)


def _symlink_message(path: Path, what: str) -> str:
    return (
        f"{what} {path}: is a symbolic link, and links are never followed into a kit "
        "(put the file itself there instead)"
    )


def _require_regular(path: Path, info: os.stat_result, what: str) -> None:
    if stat.S_ISLNK(info.st_mode):
        raise InputError(_symlink_message(path, what))
    if stat.S_ISDIR(info.st_mode):
        raise InputError(f"{what} {path}: is a directory")
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"{what} {path}: not a regular file")


def _open_regular(path: Path, *, what: str, follow: bool) -> tuple[int, os.stat_result]:
    """Open a regular file for reading: its descriptor and its status.

    A directory, FIFO, device or socket is refused before it is opened (nothing blocks, no
    device is touched) and again on the open descriptor. With `follow=False` a symbolic link
    is refused too, and O_NOFOLLOW keeps one swapped in after the check from being followed.
    """
    try:
        info = os.stat(path) if follow else os.lstat(path)
    except FileNotFoundError:
        raise InputError(f"{what} {path}: no such file") from None
    except OSError as exc:
        raise InputError(f"{what} {path}: {exc.strerror}") from None
    _require_regular(path, info, what)
    flags = os.O_RDONLY | os.O_NONBLOCK | _O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if not follow and exc.errno in (errno.ELOOP, errno.EMLINK):
            raise InputError(_symlink_message(path, what)) from None
        raise InputError(f"{what} {path}: {exc.strerror}") from None
    try:
        opened = os.fstat(fd)
        _require_regular(path, opened, what)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, opened


def _read_regular(path: Path, *, limit: int, what: str, follow: bool = True) -> tuple[bytes, int]:
    """The bytes (at most `limit`) and st_mode of a regular file."""
    fd, info = _open_regular(path, what=what, follow=follow)
    try:
        with open(fd, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise InputError(f"{what} {path}: {exc.strerror}") from None
    if len(data) > limit:
        raise InputError(f"{what} {path}: larger than the limit of {limit} bytes")
    return data, info.st_mode


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


#: Unicode categories never allowed in a kit's file names: control characters (C0, DEL, C1),
#: format characters (bidi overrides, zero-width) and line/paragraph separators. None of them
#: may reach a terminal or a line-based listing from a file name.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


def _check_name(name: str, what: str) -> None:
    """A file name that survives sha256sum lines, shell globs and case-folding file systems."""
    if not name or name.startswith((".", "-")):
        raise InputError(f"{what} {name!r}: names starting with '.' or '-' are not supported")
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"{what} {name!r}: the name is not valid UTF-8") from None
    if any(ch == "\\" or unicodedata.category(ch) in _REFUSED_CATEGORIES for ch in name):
        raise InputError(
            f"{what} {name!r}: control characters, invisible formatting characters and '\\' "
            "are not supported in names"
        )
    if len(encoded) > MAX_NAME_BYTES:
        raise InputError(f"{what} {name!r}: names are limited to {MAX_NAME_BYTES} bytes")


def _unique(entries: list[tuple[str, Path]], what: str) -> None:
    seen: dict[str, Path] = {}
    for name, path in entries:
        # Case-insensitive and normalizing file systems (macOS: NFD, case folded) would store
        # "café" in NFC and NFD, or "A" and "a", as one file.
        key = unicodedata.normalize("NFC", name).casefold()
        if key in seen:
            raise InputError(
                f"{what} {path} and {seen[key]} would both be stored as {name!r} "
                "(names must differ, ignoring case and Unicode normalization)"
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
    #: SHA-256 of the bytes checked here: the kit gets exactly those bytes or the build fails.
    sha256: str


@dataclass(frozen=True)
class _Attestation:
    """What verify.sh checks in one `dssesign verify` run: an envelope with the bundles of
    its signatures, or a bundle alone (then `bundles` is empty)."""

    name: str
    path: Path
    #: The file is itself a bundle, verified alone.
    lone_bundle: bool
    #: SHA-256 of the bytes checked when the attestation was read.
    sha256: str
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
            plan[item.name] = _Attestation(
                item.name, item.path, True, item.sha256, (), item.keyless
            )
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
        plan[envelope.name] = _Attestation(
            envelope.name, envelope.path, False, envelope.sha256, bundles, keyless
        )
    return [entry for entry in plan.values() if entry is not None]


def _read_input(path: Path) -> _Input:
    _check_name(path.name, "attestation")
    # A cheap sanity check (the verifier on the other side does the real work), but enough that
    # only a DSSE envelope or a Sigstore bundle is ever shipped: never some other JSON file, such
    # as a credential, that a glob or a link picked up. A named file may be a symbolic link
    # (to an envelope elsewhere); its content is what is checked and, by digest, what is copied.
    data, _mode = _read_regular(path, limit=DEFAULT_LIMITS.max_json_bytes, what="attestation")
    digest = hashlib.sha256(data).hexdigest()
    document = loads_strict(data, what=f"attestation {path}")
    if not isinstance(document, dict):
        raise InputError(
            f"attestation {path}: expected a JSON object (a DSSE envelope or a Sigstore bundle)"
        )
    if not is_bundle_document(document):
        try:
            Envelope.from_dict(document)
        except DssesignError as exc:
            raise InputError(
                f"attestation {path}: not a DSSE envelope or a Sigstore bundle: {exc}"
            ) from None
        return _Input(path.name, path, bundle=False, keyless=False, sha256=digest)
    try:
        parsed = parse_bundle(data)
    except VerificationError as exc:
        raise InputError(f"bundle {path}: {exc.code}: {exc}") from None
    return _Input(path.name, path, bundle=True, keyless=not parsed.keyed, sha256=digest)


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
    """The regular files at the top of `directory`. Symbolic links are refused, wherever they
    point: the folder's contents are not chosen file by file, and a link (to a signing key, to
    ~/.ssh) must never pull a file from elsewhere into a kit that is sent away."""
    entries: list[tuple[str, Path]] = []
    try:
        with os.scandir(directory) as scan:
            for entry in scan:
                if entry.name.startswith("."):
                    continue  # .DS_Store, .gitkeep: never an artifact
                if len(entries) >= MAX_KIT_FILES:
                    raise InputError(
                        f"artifacts directory {directory}: more than {MAX_KIT_FILES} files "
                        "(the most a kit holds)"
                    )
                _check_name(entry.name, "artifact")
                child = directory / entry.name
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(info.st_mode):
                    raise InputError(
                        f"artifacts directory {directory}: {entry.name} is a directory "
                        "(only files at the top level are supported)"
                    )
                _require_regular(child, info, "artifact")
                entries.append((entry.name, child))
    except FileNotFoundError:
        raise InputError(f"artifacts directory {directory}: no such directory") from None
    except NotADirectoryError:
        raise InputError(f"artifacts directory {directory}: not a directory") from None
    except OSError as exc:
        raise InputError(f"artifacts directory {directory}: {exc.strerror}") from None
    if not entries:
        raise InputError(f"artifacts directory {directory}: holds no files")
    entries.sort()
    _unique(entries, "artifacts")
    return entries


def _read_manifest(kit_dir: Path) -> dict[str, Any]:
    """A kit's MANIFEST.json, bounded before anything is parsed: a regular file (not a link) of
    at most MAX_MANIFEST_BYTES, strict JSON (linear, depth-bounded), the kit media type, and at
    most MAX_KIT_FILES entries in `files`. InputError, in one line, for anything else."""
    path = kit_dir / MANIFEST_FILE
    data, _mode = _read_regular(path, limit=MAX_MANIFEST_BYTES, what="kit manifest", follow=False)
    document = loads_strict(data, what=f"kit manifest {path}")
    if not isinstance(document, dict) or document.get("mediaType") != KIT_MEDIA_TYPE:
        raise InputError(f"kit manifest {path}: its mediaType is not {KIT_MEDIA_TYPE}")
    files = document.get("files")
    if not isinstance(files, list):
        raise InputError(f"kit manifest {path}: files: expected a list")
    if len(files) > MAX_KIT_FILES:
        raise InputError(
            f"kit manifest {path}: {len(files)} files; a kit holds at most {MAX_KIT_FILES}"
        )
    return document


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
    try:
        _read_manifest(out)
    except InputError as exc:
        raise ConfigError(
            f"output {out} is not empty and is not a dssesign kit ({exc}); not replacing it"
        ) from None
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
            shutil.copy(path, dest / path.name)  # with its mode, narrowed in _hash_existing


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
                # mkstemp's 0600, opened to what pip gave the wheel here (never wider than
                # 0644): a kit built from the cache later keeps that mode.
                os.chmod(tmp, path.stat().st_mode & _COPY_MODE_MASK)
                os.replace(tmp, cache / path.name)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)


# --- the receiving side ---------------------------------------------------------------------


def _render_verify_script(
    *, dssesign_version: str, python_versions: Sequence[str], installer: str
) -> str:
    return (
        _resource("verify.sh.in")
        .replace("@DSSESIGN_VERSION@", shlex.quote(dssesign_version))
        .replace("@PYTHON_VERSIONS@", shlex.quote(" ".join(python_versions)))
        .replace("@INSTALLER@", shlex.quote(installer))
        .replace("@MAX_FILES@", str(MAX_KIT_FILES))
        .replace("@MAX_SUMS_BYTES@", str(MAX_SUMS_BYTES))
        .replace("@MAX_LINE_BYTES@", str(64 + 2 + MAX_PATH_BYTES))
    )


@functools.cache
def _resource(name: str) -> str:
    """A file the kit ships, kept as a package resource (dssesign/_kit/), not a string here."""
    return resources.files(__package__ or "dssesign").joinpath("_kit", name).read_text("utf-8")
