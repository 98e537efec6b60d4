"""The offline verifier stands alone: verifying loads nothing of the signing stack."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dssesign import trust as tr
from dssesign.intoto.statement import PAYLOAD_TYPE
from dssesign.sign.bundles import keyed_bundle
from dssesign.sign.multisign import MultiProfileSigner
from tests.conftest import signer_for

#: Modules of the signing side (and what only signing needs).
SIGNING = ("multisign", "signer", "profiles", "audit", "metrics", "bundles", "kit", "cli_sign")


def test_verifying_an_envelope_with_bundles_imports_no_signing_module(tmp_path: Path) -> None:
    signers = [signer_for("ed25519", 0), signer_for("ecdsa-p256", 0)]
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "a", "digest": {"sha256": "a" * 64}}],
        "predicateType": "https://example.com/p/v1",
        "predicate": {},
    }
    payload = json.dumps(statement).encode()
    envelope = MultiProfileSigner(signers).sign(payload, PAYLOAD_TYPE)
    root = tr.init_trust_root(threshold=2, now=datetime.now(UTC) - timedelta(days=1))
    for signer in signers:
        root = tr.add_key(root, signer.public_key)
    (tmp_path / "root.json").write_bytes(tr.dump_trust_root(root))
    (tmp_path / "env.json").write_bytes(envelope.to_json())
    bundles = []
    for index, (signer, signature) in enumerate(zip(signers, envelope.signatures, strict=True)):
        path = tmp_path / f"b{index}.json"
        bundle = keyed_bundle(envelope.payload, PAYLOAD_TYPE, signature.sig, signer.public_key)
        path.write_text(json.dumps(bundle))
        bundles.append(str(path))
    script = f"""
import sys
from pathlib import Path
from dssesign.trust import read_trust_root
from dssesign.verify import verify
root = read_trust_root({str(tmp_path / "root.json")!r})
result = verify(Path({str(tmp_path / "env.json")!r}).read_bytes(), root,
                bundles=[Path(p).read_bytes() for p in {bundles!r}])
assert len(result.keys_counted) == 2, result
print("\\n".join(sorted(m for m in sys.modules if m.startswith("dssesign"))))
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    loaded = run.stdout.split()
    assert "dssesign.verify.bundles" in loaded  # the bundles really were verified
    signing = [name for name in loaded if "." in name and name.split(".")[1].lstrip("_") in SIGNING]
    assert signing == [], signing
