"""Target `kit`: what the offline kit reads back: its MANIFEST.json and the files put in it.

Each input, as a file in a private directory, is read by:
1. `_read_manifest` (a kit's MANIFEST.json, read when `--force` replaces an earlier kit);
2. `_read_input` (an attestation to put in a kit: a DSSE envelope or a Sigstore bundle);
3. `_read_trust_root` (the kit's trust root, plain or DSSE-signed and checked against its own
   root keys).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path

from dssesign import kit

from . import fuzz_bundle, fuzz_envelope, fuzz_trustroot
from ._common import attempt, compact, scratch_dir

NAME = "kit"
MAX_LEN = 32 * 1024

DICTIONARY = (
    '"mediaType"', kit.KIT_MEDIA_TYPE, '"created"', '"dssesign"', '"python"', '"implementation"',
    '"versions"', '"platform"', '"trustRoot"', '"trustRootSigned"', '"attestations"',
    '"bundles"', '"artifacts"', '"extras"', '"wheels"', '"installer"', '"files"', '"path"',
    '"sha256"', '"size"', '"payloadType"', '"payload"', '"signatures"',
    "application/vnd.dev.sigstore.bundle.v0.3+json", "application/vnd.dssesign.trust-root.v1+json",
)  # fmt: skip


@functools.cache
def _workdir() -> Path:
    return scratch_dir(NAME)


def check(data: bytes) -> None:
    directory = _workdir()
    (directory / kit.MANIFEST_FILE).write_bytes(data)
    attempt(lambda: kit._read_manifest(directory))
    attestation = directory / "attestation.intoto.json"
    attestation.write_bytes(data)
    attempt(lambda: kit._read_input(attestation))
    attempt(lambda: kit._read_trust_root(attestation))


def _manifest() -> dict[str, object]:
    return {
        "mediaType": kit.KIT_MEDIA_TYPE,
        "created": "2026-06-01T12:00:00Z",
        "dssesign": "0.1.0",
        "python": {"implementation": "CPython", "versions": ["3.11"], "platform": "linux"},
        "trustRoot": kit.TRUST_ROOT_FILE,
        "trustRootSigned": False,
        "attestations": ["attestations/a.intoto.json"],
        "bundles": {"attestations/a.intoto.json": ["bundles/a.intoto.json/a.0.sigstore.json"]},
        "artifacts": ["artifacts/a.tar.gz"],
        "extras": [],
        "wheels": ["wheels/dssesign-0.1.0-py3-none-any.whl"],
        "installer": "wheels/pip-24.0-py3-none-any.whl",
        "files": [{"path": "trust-root.json", "sha256": "00" * 32, "size": 10}],
    }


def seeds() -> Iterator[bytes]:
    manifest = _manifest()
    yield compact(manifest)
    yield json.dumps(manifest, indent=2).encode()
    yield compact({**manifest, "files": [{"path": f"f{i}", "size": i} for i in range(20)]})
    for index, seed in enumerate(fuzz_envelope.seeds()):
        if index % 6 == 0:
            yield seed
    for index, seed in enumerate(fuzz_bundle.seeds()):
        if index % 8 == 0:
            yield seed
    yield from fuzz_trustroot.seeds()
