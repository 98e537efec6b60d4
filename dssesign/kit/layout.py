"""What a kit holds: file and folder names, bounds, the manifest model."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    """One file of a kit: path relative to the kit directory, SHA-256 (hex), size in bytes."""

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
    #: Built with `with_vsa` (`kit build --with-vsa`): `verify.sh --emit-vsa` may write a
    #: signed verification summary (SLSA VSA) of the kit's verdict on the receiving side.
    with_vsa: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The MANIFEST.json object; `out_dir` and `fingerprint` are not part of it."""
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
            "withVsa": self.with_vsa,
            "wheels": list(self.wheels),
            "installer": self.installer,
            "files": [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in self.files],
        }
