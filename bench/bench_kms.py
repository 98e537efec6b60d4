"""AWS KMS on LocalStack: our sign pipeline beside bare boto3 `sign`, thread scaling, GetPublicKey.

Starts LocalStack's KMS on 127.0.0.1 from `.venv-localstack` (scripts/ensure-localstack.sh) and
stops it at the end. Every rate is measured against that one server in this one run; the
baseline is boto3 itself (same endpoint, same key, same retry and timeout settings, DIGEST).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dssesign.core.dsse import pae
from dssesign.intoto.statement import PAYLOAD_TYPE, statement_payload
from dssesign.profiles import awskms
from dssesign.sign.multisign import MultiProfileSigner
from dssesign.sign.signer import load_signer

from ._harness import Comparison, rate
from ._statements import bench_statements

_THREADS = 8
#: One-way delay the latency proxy adds to each request: a round trip like an in-region KMS call.
_RTT = 0.010


@contextmanager
def _server() -> Iterator[Any]:
    from tests.localstack import LocalStackMissing, running_localstack

    with tempfile.TemporaryDirectory(prefix="dssesign-bench-kms-") as tmp:
        try:
            with running_localstack(Path(tmp)) as stack:
                saved = dict(os.environ)
                os.environ.update(stack.env)
                try:
                    yield stack
                finally:
                    os.environ.clear()
                    os.environ.update(saved)
        except LocalStackMissing as exc:
            raise SystemExit(f"bench_kms: {exc}") from None


@contextmanager
def _latency_proxy(upstream: str, delay: float) -> Iterator[str]:
    """A 127.0.0.1 TCP proxy to `upstream` that holds each request `delay` seconds.

    Stands in for the network between a signer and KMS, which this machine does not have: it
    shows whether the client side lets calls overlap while they wait.
    """
    host, port = upstream.rsplit(":", 1)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    address: list[str] = []
    stop: list[asyncio.Event] = []

    async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, wait: float) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await src.read(65536):
                if wait:
                    await asyncio.sleep(wait)
                dst.write(data)
                await dst.drain()
        dst.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        try:
            await asyncio.gather(pipe(reader, up_writer, delay), pipe(up_reader, writer, 0.0))
        except asyncio.CancelledError:  # shutting down: end quietly
            writer.close()
            up_writer.close()

    async def main() -> None:
        stop.append(asyncio.Event())
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        address.append(f"127.0.0.1:{server.sockets[0].getsockname()[1]}")
        started.set()
        await stop[0].wait()
        server.close()
        for task in asyncio.all_tasks() - {asyncio.current_task()}:
            task.cancel()
        await asyncio.gather(
            *(asyncio.all_tasks() - {asyncio.current_task()}), return_exceptions=True
        )

    thread = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield address[0]
    finally:
        loop.call_soon_threadsafe(stop[0].set)
        thread.join(5)
        loop.close()


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


def _bare_client(stack: Any, uri: awskms.KmsUri) -> Any:
    """boto3's own KMS client, configured as the profile configures its own."""
    import boto3
    import botocore.config

    timeout, attempts = awskms.settings(uri)
    config = botocore.config.Config(
        connect_timeout=timeout,
        read_timeout=timeout,
        retries={"mode": "standard", "total_max_attempts": attempts},
        max_pool_connections=16,
    )
    return boto3.session.Session().client(
        "kms", region_name=stack.env["AWS_REGION"], endpoint_url=stack.endpoint, config=config
    )


def run() -> list[Comparison]:
    payload = statement_payload(bench_statements()[0])
    message = pae(PAYLOAD_TYPE, payload)
    with _server() as stack:
        calls: dict[str, int] = {}
        lock = threading.Lock()

        def count(model: Any, **_: Any) -> None:
            with lock:
                calls[model.name] = calls.get(model.name, 0) + 1

        def hook(client: Any) -> None:
            client.meta.events.register("before-call.kms", count)

        awskms.clear_cache()
        awskms.register_client_hook(hook)
        try:
            admin = stack.client()
            key_ids = [
                admin.create_key(KeySpec=spec, KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
                for spec in ("ECC_NIST_P256", "RSA_3072")
            ]
            ref = stack.uri(key_ids[0])
            signer = load_signer(ref)
            assert isinstance(signer, awskms.AwsKmsSigner)
            multi = MultiProfileSigner([signer])
            bare = _bare_client(stack, awskms.parse_uri(ref))
            arn = signer.key_arn

            def raw() -> bytes:
                digest = hashlib.sha256(message).digest()
                response = bare.sign(
                    KeyId=arn,
                    Message=digest,
                    MessageType="DIGEST",
                    SigningAlgorithm="ECDSA_SHA_256",
                )
                signature: bytes = response["Signature"]
                return signature

            # Rounds alternate ours and the baseline so a busy machine hits both alike.
            raw_rate = ours_sign = ours_multi = 0.0
            for _ in range(3):
                raw_rate = max(raw_rate, rate(raw, repeats=2))
                ours_sign = max(ours_sign, rate(lambda: signer.sign(message), repeats=2))
                ours_multi = max(
                    ours_multi, rate(lambda: multi.sign(payload, PAYLOAD_TYPE), repeats=2)
                )
            rows = [
                Comparison(
                    name="KMS sign pipeline (LocalStack), ecdsa-p256: AwsKmsSigner.sign",
                    unit="sig/s",
                    ours=ours_sign,
                    baselines={"bare boto3 sign": raw_rate},
                    target=("bare boto3 sign", 0.9),
                    note="ours = hash the PAE + KMS Sign (DIGEST) through the profile's client; "
                    "bare = hashlib + boto3 client.sign on the same key, endpoint and settings",
                ),
                Comparison(
                    name="KMS sign pipeline (LocalStack), ecdsa-p256: MultiProfileSigner",
                    unit="envelopes/s",
                    ours=ours_multi,
                    baselines={"bare boto3 sign": raw_rate},
                    note="ours = payload -> PAE -> KMS signature on a pooled worker thread -> "
                    "verified -> envelope",
                ),
            ]
            per_thread = max(20, int(raw_rate / 4))
            one = _threaded_rate(lambda: signer.sign(message), 1, per_thread * 2)
            eight = _threaded_rate(lambda: signer.sign(message), _THREADS, per_thread)
            bare_eight = _threaded_rate(raw, _THREADS, per_thread)
            rows.append(
                Comparison(
                    name=f"KMS signing, {_THREADS} threads through one AwsKmsSigner (LocalStack)",
                    unit="sig/s",
                    ours=eight,
                    baselines={"1 thread": one, f"bare boto3, {_THREADS} threads": bare_eight},
                    target=("1 thread", 3.0),
                    note=f"{os.cpu_count()} CPUs shared by LocalStack (a Python server) and the "
                    "client: here the server's CPU, not the network, bounds the 8-thread rate "
                    "(bare boto3 with 8 threads hits the same ceiling); against AWS each call "
                    "waits on the network, as in the proxied row",
                )
            )

            with _latency_proxy(stack.host, _RTT) as proxied:
                far = load_signer(f"awskms://{proxied}/{key_ids[0]}")
                per_far = 15
                one_far = _threaded_rate(lambda: far.sign(message), 1, per_far * 4)
                eight_far = _threaded_rate(lambda: far.sign(message), _THREADS, per_far)
            rows.append(
                Comparison(
                    name=f"KMS signing, {_THREADS} threads through one AwsKmsSigner, "
                    f"LocalStack behind a {_RTT * 1000:g} ms proxy",
                    unit="sig/s",
                    ours=eight_far,
                    baselines={"1 thread": one_far},
                    target=("1 thread", 3.0),
                    note=f"a 127.0.0.1 TCP proxy holds each request {_RTT * 1000:g} ms, standing "
                    "in for the network to KMS: the calls overlap while they wait",
                )
            )

            # GetPublicKey: many loads and signs of two keys from 8 threads.
            awskms.clear_cache()
            calls.clear()
            refs = [stack.uri(k) for k in key_ids]

            def load_and_sign(ref: str) -> None:
                for _ in range(4):
                    loaded = load_signer(ref)
                    loaded.sign(message)

            workers = [
                threading.Thread(target=load_and_sign, args=(r,)) for r in refs for _ in range(4)
            ]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            loads = len(workers) * 4
            fetched = calls.get("GetPublicKey", 0)
            rows.append(
                Comparison(
                    name=f"KMS GetPublicKey: keys per call ({len(refs)} keys, {loads} loads "
                    f"and {calls.get('Sign', 0)} signs on 8 threads)",
                    unit="keys/call",
                    ours=len(refs) / max(fetched, 1),
                    baselines={"one call per key": 1.0},
                    target=("one call per key", 1.0),
                    note=f"GetPublicKey calls counted with botocore before-call hooks: {fetched} "
                    f"for {len(refs)} keys",
                )
            )
            return rows
        finally:
            awskms.unregister_client_hook(hook)
            awskms.clear_cache()


if __name__ == "__main__":
    from .run import table

    print("\n".join(table(run())))
