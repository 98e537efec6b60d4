"""`canonicalize` against the pure-Python `rfc8785` package on realistic statements.

The bytes must be identical before any timing counts: a faster canonicalizer that disagrees would
make signatures that no other JCS implementation reproduces. Ours and the baseline are timed in
alternation, best of a few rounds each, so a burst of load on a shared machine does not land on
one side only.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import rfc8785

from bench._harness import Comparison, rate
from bench._statements import bench_statements
from dssesign.core.canonical import canonicalize

# rfc8785 types its argument narrowly (no `object`); statements are plain JSON dicts.
_rfc8785_dumps: Callable[[object], bytes] = rfc8785.dumps  # type: ignore[assignment]

ROUNDS = 3

_LABELS = {
    "https://slsa.dev/verification_summary/v1": "SLSA VSA v1",
    "https://slsa.dev/provenance/v1": "SLSA provenance v1",
    "https://in-toto.io/attestation/vulns/v0.2": "vulns v0.2 (floats, non-ASCII)",
    "https://cyclonedx.org/bom": "CycloneDX SBOM",
}


def run() -> list[Comparison]:
    rows = []
    for statement in bench_statements():
        predicate_type = str(statement["predicateType"])
        label = _LABELS.get(predicate_type, predicate_type)
        ours = canonicalize(statement)
        theirs = _rfc8785_dumps(statement)
        if ours != theirs:
            raise RuntimeError(f"canonicalize and rfc8785 disagree on the {label} statement")
        ours_rate = baseline_rate = 0.0
        for _ in range(ROUNDS):
            ours_rate = max(ours_rate, rate(partial(canonicalize, statement), min_time=0.2))
            baseline_rate = max(
                baseline_rate, rate(partial(_rfc8785_dumps, statement), min_time=0.2)
            )
        rows.append(
            Comparison(
                name=f"canonicalize: {label}",
                unit="ops/s",
                ours=ours_rate,
                baselines={"rfc8785": baseline_rate},
                target=("rfc8785", 4.0),
                note=f"{len(ours):,} bytes",
            )
        )
    return rows


if __name__ == "__main__":
    for row in run():
        print(f"{row.name:45} {row.ratio('rfc8785'):5.2f}x  ({row.note})")
