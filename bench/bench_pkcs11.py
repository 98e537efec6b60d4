"""PKCS#11 on SoftHSM2: our sign pipeline beside raw python-pkcs11, and the session pool's scaling.

Creates a throwaway token under a temporary SOFTHSM2_CONF (softhsm2-util must be installed:
scripts/ensure-softhsm.sh). Must run before anything else in the process loads the module.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from dssesign.dsse import pae
from dssesign.keys import get_algorithm
from dssesign.profiles import pkcs11 as p11
from dssesign.statement import PAYLOAD_TYPE, statement_payload

from ._harness import Comparison, rate
from ._statements import bench_statements

_PIN = "bench-pin-1234"
_PIN_ENV = "DSSESIGN_BENCH_HSM_PIN"
_TOKEN = "dss-bench"


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


def _threaded_rate(
    sign: Callable[[], object], threads: int, per_thread: int, repeats: int = 3
) -> float:
    """Signatures per second with `threads` threads calling `sign`, best of `repeats`."""
    best = 0.0
    for _ in range(repeats):
        barrier = threading.Barrier(threads + 1)

        def work(barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            for _ in range(per_thread):
                sign()

        workers = [threading.Thread(target=work) for _ in range(threads)]
        for worker in workers:
            worker.start()
        barrier.wait()
        start = time.perf_counter()
        for worker in workers:
            worker.join()
        best = max(best, threads * per_thread / (time.perf_counter() - start))
    return best


def _raw_key(signer: p11.Pkcs11Signer) -> tuple[Any, Any]:
    """A session and key object of python-pkcs11 itself, on the same token and key."""
    pool = signer.pools[0]
    session, key = pool.connect()
    return session, key


def _pipeline_row(template: str, algorithm: str, message: bytes) -> Comparison:
    uri = template.replace("OBJ", algorithm)
    p11.generate_keypair(uri, get_algorithm(algorithm))
    signer = p11.load(uri + "&pool-size=1")
    session, key = _raw_key(signer)
    import pkcs11

    baselines: dict[str, float] = {}
    if algorithm.startswith("ecdsa"):
        hash_new = hashlib.sha256 if algorithm == "ecdsa-p256" else hashlib.sha384
        half = 32 if algorithm == "ecdsa-p256" else 48

        def raw() -> bytes:
            signature: bytes = key.sign(
                hash_new(message).digest(), mechanism=pkcs11.Mechanism.ECDSA
            )
            return signature

        def raw_der() -> object:
            signature = raw()
            return encode_dss_signature(
                int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big")
            )

        baselines["raw python-pkcs11"] = rate(raw)
        baselines["raw + DER encoding (pyca)"] = rate(raw_der)
    else:

        def raw() -> bytes:
            signature: bytes = key.sign(message, mechanism=pkcs11.Mechanism.EDDSA)
            return signature

        baselines["raw python-pkcs11"] = rate(raw)

    try:
        return Comparison(
            name=f"HSM sign pipeline (SoftHSM2), {algorithm}",
            unit="sig/s",
            ours=rate(lambda: signer.sign(message)),
            baselines=baselines,
            target=("raw python-pkcs11", 0.9),
            note="ours = Pkcs11Signer.sign (pool lease, hash, C_Sign, r||s -> DER); raw = "
            "hash + key.sign on one python-pkcs11 session, same token and key (for ECDSA its "
            "r||s output is not yet the DER signature DSSE needs: see the +DER baseline)",
        )
    finally:
        p11.close_session(signer.pools[0].module, session)
        signer.close()


def _pool_row(template: str, algorithm: str, message: bytes, per_thread: int) -> Comparison:
    uri = template.replace("OBJ", f"pool-{algorithm}")
    p11.generate_keypair(uri, get_algorithm(algorithm))
    pooled = p11.load(uri + "&pool-size=2")
    single = p11.load(uri + "&pool-size=1")
    try:
        ours = _threaded_rate(lambda: pooled.sign(message), 2, per_thread)
        one = _threaded_rate(lambda: single.sign(message), 2, per_thread)
        return Comparison(
            name=f"HSM session pool, 2 sessions x 2 threads, {algorithm}",
            unit="sig/s",
            ours=ours,
            baselines={"1 session, 2 threads": one},
            target=("1 session, 2 threads", 1.5),
            note=f"{os.cpu_count()} CPUs; SoftHSM2 re-initialized with CKF_OS_LOCKING_OK so "
            "sessions sign in parallel (python-pkcs11 releases the GIL in C_Sign)",
        )
    finally:
        pooled.close()
        single.close()


def run() -> list[Comparison]:
    statement = bench_statements()[0]
    message = pae(PAYLOAD_TYPE, statement_payload(statement))
    with tempfile.TemporaryDirectory(prefix="dssesign-bench-hsm-") as tmp:
        template = _token(Path(tmp))
        return [
            _pipeline_row(template, "ecdsa-p256", message),
            _pipeline_row(template, "ed25519", message),
            _pool_row(template, "ecdsa-p256", message, 2000),
            _pool_row(template, "rsa-pss-3072", message, 100),
        ]


if __name__ == "__main__":
    from .run import table

    print("\n".join(table(run())))
