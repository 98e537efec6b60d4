"""One `dssesign verify` call beside `python -c "import cryptography.x509"` (issue 12).

Both are whole processes of the same interpreter, timed in interleaved rounds (best of each),
in this environment, which has jsonschema's format extras (rfc3987-syntax, ...) and sigstore
installed as users' machines do: what verify costs must not depend on what is importable.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dssesign.intoto.statement import PAYLOAD_TYPE, statement_payload
from dssesign.profiles.software import generate
from dssesign.sign.multisign import MultiProfileSigner
from dssesign.trust import Policy, TrustedKey, TrustRoot, save_trust_root

from ._harness import Comparison
from ._process import measure
from ._statements import slsa_provenance

ROUNDS = 21
TARGET = 2.5
#: Installed here on purpose (the dev extra): their presence must not slow verify down.
EXTRAS = ("rfc3987_syntax", "jsonschema", "sigstore")


def run() -> list[Comparison]:
    signers = [generate("ed25519"), generate("ecdsa-p256")]
    root = TrustRoot(
        version=1,
        expires=datetime.now(UTC).replace(microsecond=0) + timedelta(days=30),
        keys=tuple(TrustedKey(s.public_key, label=s.algorithm.cli_name) for s in signers),
        policy=Policy(threshold=2),
    )
    envelope = MultiProfileSigner(signers).sign(statement_payload(slsa_provenance()), PAYLOAD_TYPE)
    installed = [name for name in EXTRAS if importlib.util.find_spec(name) is not None]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        root_file = work / "trust-root.json"
        save_trust_root(root_file, root)
        envelope_file = work / "envelope.json"
        envelope_file.write_bytes(envelope.to_json())
        commands = {
            "ours": [
                *(sys.executable, "-m", "dssesign", "verify"),
                *("--trust-root", str(root_file), str(envelope_file)),
            ],
            "import": [sys.executable, "-c", "import cryptography.x509"],
        }
        for command in commands.values():
            measure(command)  # bytecode caches, page cache
        walls: dict[str, list[float]] = {label: [] for label in commands}
        for round_ in range(ROUNDS):
            order = list(commands) if round_ % 2 == 0 else list(reversed(commands))
            for label in order:
                walls[label].append(measure(commands[label]).wall)
    ours, theirs = min(walls["ours"]), min(walls["import"])
    return [
        Comparison(
            name="dssesign verify, one envelope (Ed25519 + P-256, SLSA provenance), whole process",
            unit="s",
            ours=ours,
            baselines={"python -c 'import cryptography.x509'": theirs},
            target=("python -c 'import cryptography.x509'", TARGET),
            lower_is_better=True,
            note=f"wall seconds, best of {ROUNDS} interleaved rounds (medians "
            f"{sorted(walls['ours'])[ROUNDS // 2]:.3f} s and "
            f"{sorted(walls['import'])[ROUNDS // 2]:.3f} s); 1-min load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; installed here: "
            f"{', '.join(installed) or 'none of ' + ', '.join(EXTRAS)}",
        )
    ]
