"""Trusted time (issue 14 item 8): what RFC 3161 timestamps cost, beside what they are added to.

The TSA is the tests' one (OpenSSL `ts -reply` behind a loopback HTTP server, tests/tsa.py),
started here on 127.0.0.1. Two rows:

* signing an envelope of N signatures with one TSA: the wall time timestamping adds (signing
  with `--tsa` minus signing without), beside one TSA round trip (`request_timestamp` of one
  signature), the TSA answering after `LATENCY` as a remote one does. The N requests run
  concurrently, so the target is at most 1.5 round trips.
* verifying one timestamped signature (envelope + its keyed bundle with one token) beside the
  same envelope and bundle without the token: at most 3x.
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dssesign.intoto.statement import PAYLOAD_TYPE, statement_payload
from dssesign.profiles.software import generate
from dssesign.sign.bundles import bundle_json, keyed_bundle
from dssesign.sign.multisign import MultiProfileSigner
from dssesign.sign.timestamps import Timestamping, request_timestamp
from dssesign.trust import Policy, TrustedKey, TrustRoot
from dssesign.verify import verify
from tests.tsa import TsaPool

from ._harness import Comparison
from ._interleave import interleaved
from ._statements import slsa_provenance

ROUNDS = 5
SIGNATURES = 4
#: Seconds the TSA waits before answering (a remote TSA's network latency).
LATENCY = 0.05


def _best(fn: object, repeats: int = 15) -> float:
    """Best wall time of `fn()` over `repeats` calls (network-bound: few, whole calls)."""
    assert callable(fn)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def run() -> list[Comparison]:
    with tempfile.TemporaryDirectory() as tmp:
        pool = TsaPool(Path(tmp))
        try:
            tsa = pool.start()
            # A TSA is a remote service: 50 ms of latency per request, as across a WAN. On
            # loopback without it, each request is an `openssl ts -reply` fork and N of them
            # contend for this machine's CPUs, which is not what a user's TSA costs them.
            tsa.delay = LATENCY
            return _rows(tsa.url, tsa.authority())
        finally:
            pool.close()


def _rows(url: str, authority: object) -> list[Comparison]:
    from dssesign.timestamp import TimestampAuthority

    assert isinstance(authority, TimestampAuthority)
    keys = [generate("ecdsa-p256") for _ in range(SIGNATURES)]
    payload = statement_payload(slsa_provenance())
    stamping = Timestamping((url,), (authority,))
    plain = MultiProfileSigner(keys)
    stamped = MultiProfileSigner(keys, timestamps=stamping)
    signature = plain.sign(payload, PAYLOAD_TYPE).signatures[0].sig

    # Interleaved, whole calls: a round trip is milliseconds (the TSA forks openssl).
    with_tsa = without = trip = float("inf")
    for _ in range(ROUNDS):
        with_tsa = min(with_tsa, _best(lambda: stamped.sign(payload, PAYLOAD_TYPE), 5))
        without = min(without, _best(lambda: plain.sign(payload, PAYLOAD_TYPE), 5))
        trip = min(trip, _best(lambda: request_timestamp(url, signature, timeout=30), 5))
    added = max(with_tsa - without, 1e-9)

    key = keys[0]
    one = MultiProfileSigner([key], timestamps=stamping).sign_detailed(payload, PAYLOAD_TYPE)
    envelope = one.envelope
    sig = envelope.signatures[0].sig
    token_bundle = bundle_json(
        keyed_bundle(payload, PAYLOAD_TYPE, sig, key.public_key, one.timestamps[0])
    )
    bare_bundle = bundle_json(keyed_bundle(payload, PAYLOAD_TYPE, sig, key.public_key))
    root = TrustRoot(
        version=1,
        expires=datetime.now(UTC).replace(microsecond=0) + timedelta(days=30),
        keys=(TrustedKey(key.public_key),),
        policy=Policy(threshold=1),
        timestamp_authorities=(authority,),
    )
    data = envelope.to_json()
    result = verify(data, root, bundles=[token_bundle], require_timestamp=True)
    assert result.keys_counted[0].signed_at is not None
    best = interleaved(
        {
            "timestamped": lambda: verify(data, root, bundles=[token_bundle]),
            "untimestamped": lambda: verify(data, root, bundles=[bare_bundle]),
        },
        rounds=ROUNDS,
    )
    return [
        Comparison(
            name=f"sign {SIGNATURES} signatures with one TSA: time added",
            unit="s",
            ours=added,
            baselines={"one TSA round trip": trip},
            target=("one TSA round trip", 1.5),
            lower_is_better=True,
            note=f"added = best signing wall time with --tsa ({with_tsa * 1000:.1f} ms) minus "
            f"without ({without * 1000:.1f} ms); {SIGNATURES} ECDSA P-256 keys; the requests run "
            "concurrently; round trip = request_timestamp of one signature (TSA on 127.0.0.1, "
            f"openssl ts -reply per request, {LATENCY * 1000:.0f} ms of added latency as a remote "
            f"TSA has); best of {ROUNDS} interleaved rounds",
        ),
        Comparison(
            name="verify one timestamped signature (envelope + keyed bundle, one token)",
            unit="ops/s",
            ours=best["timestamped"],
            baselines={"untimestamped": best["untimestamped"]},
            target=("untimestamped", 1 / 3),
            note="ours = envelope + keyed bundle carrying one RFC 3161 token, judged against the "
            "trust root's TSA (rfc3161-client's CMS check, chain validation cached per "
            "certificate); untimestamped = the same envelope and bundle without the token; "
            f"target >= 1/3 (at most 3x the time); best of {ROUNDS} interleaved rounds",
        ),
    ]
