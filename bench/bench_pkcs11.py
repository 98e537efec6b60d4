"""PKCS#11 on SoftHSM2: our sign pipeline beside raw python-pkcs11, and the session pool's scaling.

Creates a throwaway token under a temporary SOFTHSM2_CONF (softhsm2-util must be installed:
scripts/ensure-softhsm.sh). Must run before anything else in the process loads the module.

Every row is measured in interleaved rounds: within a round each case runs for the same short
time, the order flips from round to round, and a case's rate is its best round (the median for
the threaded rows). A neighbour that steals the CPU for a moment then slows ours and the
baselines alike instead of whichever happened to run at that moment. Beside each session-pool
row stands the same measurement for python-pkcs11 alone (no dssesign code): the ceiling the
token itself allows.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from dssesign.core.dsse import pae
from dssesign.core.keys import get_algorithm
from dssesign.intoto.statement import PAYLOAD_TYPE, statement_payload
from dssesign.profiles import pkcs11 as p11

from ._harness import Comparison
from ._statements import bench_statements

_PIN = "bench-pin-1234"
_PIN_ENV = "DSSESIGN_BENCH_HSM_PIN"
_TOKEN = "dss-bench"
#: GIL-free work for the machine check: hashlib releases the GIL for inputs over 2 KiB.
_BURN = b"\0" * (1 << 20)


def _token(root: Path) -> str:
    util = shutil.which("softhsm2-util")
    if util is None:
        raise SystemExit("bench_pkcs11: softhsm2-util not found (run scripts/ensure-softhsm.sh)")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\n"
        "log.level = ERROR\nslots.removable = false\n"
    )
    os.environ["SOFTHSM2_CONF"] = str(conf)
    os.environ[_PIN_ENV] = _PIN
    so_pin = "so-" + _PIN
    subprocess.run(
        [util, "--init-token", "--free", "--label", _TOKEN, "--so-pin", so_pin, "--pin", _PIN],
        check=True,
        capture_output=True,
    )
    return f"pkcs11:token={_TOKEN};object=OBJ?pin-source=env:{_PIN_ENV}"


def _rate(fns: Sequence[Callable[[], object]], seconds: float) -> float:
    """Calls per second with one thread per function in `fns`, all running for `seconds`."""
    if len(fns) == 1:
        fn, calls = fns[0], 0
        start = time.perf_counter()
        end = start + seconds
        while time.perf_counter() < end:
            fn()
            calls += 1
        return calls / (time.perf_counter() - start)
    counts = [0] * len(fns)
    stop = threading.Event()
    barrier = threading.Barrier(len(fns) + 1)

    def work(index: int, fn: Callable[[], object]) -> None:
        barrier.wait()
        calls = 0
        while not stop.is_set():
            fn()
            calls += 1
        counts[index] = calls

    workers = [threading.Thread(target=work, args=pair) for pair in enumerate(fns)]
    for worker in workers:
        worker.start()
    barrier.wait()
    start = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for worker in workers:
        worker.join()
    return sum(counts) / (time.perf_counter() - start)


def _interleaved(
    cases: Mapping[str, Sequence[Callable[[], object]]],
    rounds: int,
    seconds: float,
    pick: Callable[[list[float]], float] = max,
) -> dict[str, float]:
    """Rate of every case over `rounds` rounds in which the cases take turns (best by default)."""
    for fns in cases.values():
        for fn in fns:
            fn()  # warm up: opens pool sessions, fills caches
    names = list(cases)
    seen: dict[str, list[float]] = {name: [] for name in names}
    for index in range(rounds):
        for name in names if index % 2 == 0 else reversed(names):
            seen[name].append(_rate(cases[name], seconds))
    return {name: pick(rates) for name, rates in seen.items()}


def _raw_signer(
    key: Any, algorithm: str, message: bytes, *, der: bool = False
) -> Callable[[], bytes]:
    """python-pkcs11 itself on `key`: what a caller with no dssesign would write."""
    import pkcs11

    if algorithm.startswith("ecdsa"):
        hash_new = hashlib.sha256 if algorithm == "ecdsa-p256" else hashlib.sha384
        half = 32 if algorithm == "ecdsa-p256" else 48

        def raw() -> bytes:
            signature: bytes = key.sign(
                hash_new(message).digest(), mechanism=pkcs11.Mechanism.ECDSA
            )
            return signature

        def raw_der() -> bytes:
            signature = raw()
            return encode_dss_signature(
                int.from_bytes(signature[:half]), int.from_bytes(signature[half:])
            )

        return raw_der if der else raw
    if algorithm == "ed25519":

        def raw_eddsa() -> bytes:
            signature: bytes = key.sign(message, mechanism=pkcs11.Mechanism.EDDSA)
            return signature

        return raw_eddsa
    pss = pkcs11.Mechanism.SHA256_RSA_PKCS_PSS
    pss_param = (pkcs11.Mechanism.SHA256, pkcs11.MGF.SHA256, 32)

    def raw_pss() -> bytes:
        signature: bytes = key.sign(message, mechanism=pss, mechanism_param=pss_param)
        return signature

    return raw_pss


def _pipeline_row(template: str, algorithm: str, message: bytes) -> Comparison:
    uri = template.replace("OBJ", algorithm)
    p11.generate_keypair(uri, get_algorithm(algorithm))
    signer = p11.load(uri + "&pool-size=1")
    pool = signer.pools[0]
    session, key = pool.connect()  # a python-pkcs11 session of its own, same token and key
    try:
        cases = {"ours": [lambda: signer.sign(message)]}
        cases["raw python-pkcs11"] = [_raw_signer(key, algorithm, message)]
        if algorithm.startswith("ecdsa"):
            cases["raw + DER encoding (pyca)"] = [_raw_signer(key, algorithm, message, der=True)]
        rates = _interleaved(cases, rounds=15, seconds=0.2)
        return Comparison(
            name=f"HSM sign pipeline (SoftHSM2), {algorithm}",
            unit="sig/s",
            ours=rates.pop("ours"),
            baselines=rates,
            target=("raw python-pkcs11", 0.9),
            note=(
                "ours = Pkcs11Signer.sign (pool lease, hash, C_Sign, r||s -> DER); raw = hash + "
                "key.sign on one python-pkcs11 session, same token and key (its r||s output is "
                "not yet the DER signature DSSE needs: see the +DER baseline)"
                if algorithm.startswith("ecdsa")
                else "ours = Pkcs11Signer.sign (pool lease, C_Sign); raw = key.sign on one "
                "python-pkcs11 session, same token and key"
            )
            + "; interleaved rounds, best of 15",
        )
    finally:
        p11.close_session(pool.module, session)
        signer.close()


def _pool_rows(
    template: str, algorithm: str, message: bytes, rounds: int, seconds: float
) -> list[Comparison]:
    """Ours with 2 sessions x 2 threads, and python-pkcs11 alone the same way (the ceiling)."""
    uri = template.replace("OBJ", f"pool-{algorithm}")
    p11.generate_keypair(uri, get_algorithm(algorithm))
    pooled = p11.load(uri + "&pool-size=2")
    single = p11.load(uri + "&pool-size=1")
    raw_sessions = [single.pools[0].connect() for _ in range(2)]
    raw = [_raw_signer(key, algorithm, message) for _session, key in raw_sessions]
    burn = lambda: hashlib.sha256(_BURN).digest()  # noqa: E731
    cases: dict[str, list[Callable[[], object]]] = {
        "ours 2x2": [lambda: pooled.sign(message)] * 2,
        "ours 1x2": [lambda: single.sign(message)] * 2,
        "ours 1x1": [lambda: single.sign(message)],
        "raw 2x2": list(raw),
        "raw 1x2": [raw[0]] * 2,
        "raw 1x1": [raw[0]],
        "burn 2": [burn] * 2,
        "burn 1": [burn],
    }
    der = algorithm.startswith("ecdsa")
    if der:  # raw's r||s is not a DSSE signature yet: the DER step holds the GIL too
        cases["raw+DER 2x2"] = [
            _raw_signer(key, algorithm, message, der=True) for _session, key in raw_sessions
        ]
    try:
        # Median, not best: two threads on one SoftHSM swing from round to round with who wins
        # its lock, and the best round of each case would compare the luckiest ones.
        rates = _interleaved(cases, rounds=rounds, seconds=seconds, pick=statistics.median)
    finally:
        for session, _key in raw_sessions:
            p11.close_session(single.pools[0].module, session)
        pooled.close()
        single.close()
    machine = rates["burn 2"] / rates["burn 1"]
    ceiling = rates["raw 2x2"] / rates["raw 1x2"]
    context = (
        f"{os.cpu_count()} CPUs; GIL-free work scaled {machine:.2f}x on 2 threads during this "
        f"run (the machine's own limit); median of {rounds} interleaved rounds"
    )
    return [
        Comparison(
            name=f"HSM session pool, 2 sessions x 2 threads, {algorithm}",
            unit="sig/s",
            ours=rates["ours 2x2"],
            baselines={
                "1 session, 2 threads": rates["ours 1x2"],
                "1 session, 1 thread": rates["ours 1x1"],
                "raw python-pkcs11, 2 sessions x 2 threads": rates["raw 2x2"],
                **(
                    {"raw + DER encoding, 2 sessions x 2 threads": rates["raw+DER 2x2"]}
                    if der
                    else {}
                ),
            },
            # Issue 12: SoftHSM 2.6 serializes short ECDSA signatures inside the module, so the
            # ECDSA row is judged against python-pkcs11's own 2 x 2 rate on the same token; RSA,
            # whose signatures are long enough to overlap, keeps the 1.5x scaling target.
            target=(
                ("raw python-pkcs11, 2 sessions x 2 threads", 0.9)
                if der
                else ("1 session, 2 threads", 1.5)
            ),
            note=f"SoftHSM2 re-initialized with CKF_OS_LOCKING_OK so sessions sign in parallel "
            f"(python-pkcs11 releases the GIL in C_SignInit/C_Sign); python-pkcs11 alone scales "
            f"{ceiling:.2f}x the same way (next row): the ceiling on this token; {context}",
        ),
        Comparison(
            name=f"ceiling: python-pkcs11 alone, 2 sessions x 2 threads, {algorithm}",
            unit="sig/s",
            ours=rates["raw 2x2"],
            baselines={
                "1 session, 2 threads": rates["raw 1x2"],
                "1 session, 1 thread": rates["raw 1x1"],
            },
            note="not dssesign: raw key.sign on python-pkcs11 sessions of the same token and "
            "key, measured in the same rounds as the row above (its 'ours' column is raw's rate)"
            + (
                "; SoftHSM 2.6 serializes short ECDSA signatures inside the module (its "
                "threads queue on one process-wide mutex in C_SignInit and C_Sign), so even C "
                "threads without Python scale little"
                if algorithm.startswith("ecdsa")
                else ""
            ),
        ),
    ]


def run() -> list[Comparison]:
    statement = bench_statements()[0]
    message = pae(PAYLOAD_TYPE, statement_payload(statement))
    with tempfile.TemporaryDirectory(prefix="dssesign-bench-hsm-") as tmp:
        template = _token(Path(tmp))
        return [
            _pipeline_row(template, "ecdsa-p256", message),
            _pipeline_row(template, "ed25519", message),
            *_pool_rows(template, "ecdsa-p256", message, rounds=7, seconds=0.25),
            *_pool_rows(template, "rsa-pss-3072", message, rounds=6, seconds=0.3),
        ]


if __name__ == "__main__":
    from .run import table

    print("\n".join(table(run())))
