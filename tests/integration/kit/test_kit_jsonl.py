"""The offline kit carries `.intoto.jsonl` files and their lines' bundles; verify.sh verifies
every line. One test: it builds wheels (slow)."""

from __future__ import annotations

import base64
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dssesign.core.dsse import Envelope
from dssesign.errors import DssesignError
from dssesign.intoto.statement import PAYLOAD_TYPE, build_statement, statement_payload
from dssesign.intoto.subjects import subject_from_digest
from dssesign.kit import WheelSource, build_kit, default_wheel_cache
from dssesign.sign.bundles import bundle_stem, bundles_for, payload_tag, write_bundles
from dssesign.sign.multisign import MultiProfileSigner
from dssesign.trust import add_key, dump_trust_root, init_trust_root
from tests.conftest import signer_for
from tests.integration.kit.test_kit import rewrite_sums, run_verify

pytestmark = [pytest.mark.integration, pytest.mark.kit]

PREDICATE_TYPE = "https://example.com/dssesign/offline-kit-jsonl/v1"


def _envelope(multi: MultiProfileSigner, run: int) -> Envelope:
    subject = subject_from_digest(f"sha256:{run:064x}")
    statement = build_statement([subject], PREDICATE_TYPE, {"run": run})
    return multi.sign(statement_payload(statement), PAYLOAD_TYPE)


def test_kit_carries_jsonl_files_and_their_bundles(tmp_path: Path) -> None:
    signers = [signer_for("ed25519"), signer_for("ecdsa-p256")]
    multi = MultiProfileSigner(signers)
    root = init_trust_root(threshold=1, now=datetime.now(UTC) - timedelta(days=1))
    for signer in signers:
        root = add_key(root, signer.public_key)
    trust_root = tmp_path / "trust-root.json"
    trust_root.write_bytes(dump_trust_root(root, allow_incomplete=False))

    # builds.intoto.jsonl: two envelope lines, their bundles named as `attest --append` does.
    sources = tmp_path / "in"
    sources.mkdir()
    jsonl = sources / "builds.intoto.jsonl"
    envelopes = [_envelope(multi, run) for run in (1, 2)]
    jsonl.write_bytes(b"".join(e.to_json() + b"\n" for e in envelopes))
    bundle_dir = sources / "bundles"
    bundle_dir.mkdir()
    bundles: list[Path] = []
    for envelope in envelopes:
        files = bundles_for(envelope, signers, bundle_stem(jsonl.name), per_payload=True)
        bundles += write_bundles(bundle_dir, files)
    assert len({p.name for p in bundles}) == 4
    # gh.jsonl: the form `gh attestation download` writes, one Sigstore bundle per line (keyed).
    third = _envelope(multi, 3)
    gh = sources / "sha256-3.jsonl"
    lines = [f.data.strip() for f in bundles_for(third, signers, "x")]
    gh.write_bytes(b"\r\n".join(lines) + b"\r\n")

    wheel_source = WheelSource(
        cache_dir=tmp_path / "wheel-cache",
        find_links=(default_wheel_cache(),) if default_wheel_cache().is_dir() else (),
    )
    try:
        manifest = build_kit(
            trust_root, tmp_path / "kit", [jsonl, *bundles, gh], None, wheel_source=wheel_source
        )
    except DssesignError as exc:
        pytest.fail(
            f"building the kit's wheel set failed (needs the index or a warm cache): {exc}",
            pytrace=False,
        )
    kit = manifest.out_dir
    assert manifest.attestations == (
        "attestations/builds.intoto.jsonl",
        "attestations/sha256-3.jsonl",
    )
    group = "bundles/builds.intoto.jsonl"
    assert manifest.bundles == (
        ("attestations/builds.intoto.jsonl", tuple(f"{group}/{p.name}" for p in bundles)),
    )
    assert manifest.extras == ()  # keyed bundle lines need no sigstore-python
    assert (kit / "attestations/builds.intoto.jsonl").read_bytes() == jsonl.read_bytes()
    assert (kit / "attestations/sha256-3.jsonl").read_bytes() == gh.read_bytes()
    for envelope in envelopes:
        tag = payload_tag(envelope.payload)
        assert len(list((kit / group).glob(f"builds.intoto.{tag}.*.sigstore.json"))) == 2

    site = tmp_path / "site"
    site.mkdir()
    run = run_verify(kit, site)
    assert run.code == 0, run
    assert run.lines == [
        "PASS  attestations/builds.intoto.jsonl + 4 bundle(s)  2 of 2 line(s) verified",
        "PASS  attestations/sha256-3.jsonl  2 of 2 line(s) verified",
        "OK: 2 of 2 attestation(s) verified against trust-root.json",
    ], run

    # A tampered second line (SHA256SUMS rewritten too): that attestation fails, naming it.
    edited = shutil.copytree(kit, tmp_path / "edited")
    target = edited / "attestations/builds.intoto.jsonl"
    first, second = target.read_bytes().splitlines()
    document = json.loads(second)
    statement = json.loads(base64.b64decode(document["payload"]))
    statement["predicate"]["run"] = 99
    document["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    target.write_bytes(first + b"\n" + json.dumps(document).encode() + b"\n")
    rewrite_sums(edited)
    run = run_verify(edited, site)
    assert run.code == 1, run
    assert run.lines[0].startswith("FAIL  attestations/builds.intoto.jsonl + 4 bundle(s)  "), run
    # The second line's bundles now belong to no line: the first failure named is that.
    assert "BUNDLE_PAYLOAD_MISMATCH" in run.lines[0], run
    assert run.lines[1].startswith("PASS  attestations/sha256-3.jsonl"), run
    assert run.lines[-1] == "FAILED: 1 of 2 attestation(s) did not verify against trust-root.json"
