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

from .assemble import build_kit

# Internal readers, importable here for the fuzz targets and tests (not public API).
from .inputs import _read_input as _read_input
from .inputs import _read_manifest as _read_manifest
from .inputs import _read_trust_root as _read_trust_root
from .layout import (
    ARTIFACTS_DIR,
    ATTESTATIONS_DIR,
    BUNDLES_DIR,
    KIT_MEDIA_TYPE,
    MANIFEST_FILE,
    MAX_KIT_FILES,
    MAX_MANIFEST_BYTES,
    MAX_NAME_BYTES,
    MAX_PATH_BYTES,
    MAX_SUMS_BYTES,
    README_FILE,
    REQUIREMENTS_FILE,
    SIGNED_TRUST_ROOT_FILE,
    SIGSTORE_EXTRA,
    SUMS_FILE,
    TRUST_ROOT_FILE,
    VERIFY_SCRIPT,
    WHEEL_CACHE_ENV,
    WHEELS_DIR,
    KitFile,
    KitManifest,
    Progress,
    WheelSource,
    default_wheel_cache,
)

__all__ = [
    "ARTIFACTS_DIR",
    "ATTESTATIONS_DIR",
    "BUNDLES_DIR",
    "KIT_MEDIA_TYPE",
    "MANIFEST_FILE",
    "MAX_KIT_FILES",
    "MAX_MANIFEST_BYTES",
    "MAX_NAME_BYTES",
    "MAX_PATH_BYTES",
    "MAX_SUMS_BYTES",
    "README_FILE",
    "REQUIREMENTS_FILE",
    "SIGNED_TRUST_ROOT_FILE",
    "SIGSTORE_EXTRA",
    "SUMS_FILE",
    "TRUST_ROOT_FILE",
    "VERIFY_SCRIPT",
    "WHEELS_DIR",
    "WHEEL_CACHE_ENV",
    "KitFile",
    "KitManifest",
    "Progress",
    "WheelSource",
    "build_kit",
    "default_wheel_cache",
]
