"""The daemon worker pool behind MultiProfileSigner's device and network signers."""

from __future__ import annotations

import threading
import time
from collections import Counter

from dssesign._internal.workers import Workers


def _alive(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name]


def _run_and_wait(pool: Workers) -> int:
    done = threading.Event()
    ident: list[int] = []

    def work() -> None:
        ident.append(threading.get_ident())
        done.set()

    pool.submit(work)
    assert done.wait(5)
    return ident[0]


def test_sequential_tasks_reuse_one_daemon_thread() -> None:
    pool = Workers(name="w-reuse")
    idents = {_run_and_wait(pool) for _ in range(50)}
    assert len(idents) == 1
    (thread,) = _alive("w-reuse")
    assert thread.daemon


def test_a_hung_task_holds_only_its_own_thread() -> None:
    pool = Workers(name="w-hang")
    release = threading.Event()

    def hang() -> None:
        release.wait(10)

    pool.submit(hang)
    start = time.monotonic()
    _run_and_wait(pool)  # runs at once on a second worker, not queued behind the hang
    assert time.monotonic() - start < 2
    assert len(_alive("w-hang")) == 2
    release.set()


def test_idle_workers_exit() -> None:
    pool = Workers(idle=0.05, name="w-idle")
    _run_and_wait(pool)
    deadline = time.monotonic() + 5
    while _alive("w-idle") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _alive("w-idle") == []
    _run_and_wait(pool)  # and the pool starts a new one when work comes back


def test_every_task_runs_exactly_once_under_contention() -> None:
    pool = Workers(idle=0.01, name="w-many")  # short idle: workers retire while others submit
    counts: Counter[int] = Counter()
    lock = threading.Lock()
    all_done = threading.Semaphore(0)

    def task(n: int) -> None:
        with lock:
            counts[n] += 1
        all_done.release()

    def submitter(base: int) -> None:
        for i in range(200):
            pool.submit(lambda n=base + i: task(n))  # type: ignore[misc]
            if i % 50 == 0:
                time.sleep(0.02)  # let idle workers time out between bursts

    threads = [threading.Thread(target=submitter, args=(k * 1000,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for _ in range(1600):
        assert all_done.acquire(timeout=10)
    assert len(counts) == 1600 and set(counts.values()) == {1}


def test_a_task_that_raises_does_not_kill_its_worker() -> None:
    pool = Workers(name="w-raise")

    def boom() -> None:
        raise RuntimeError("boom")

    first = _run_and_wait(pool)
    pool.submit(boom)
    time.sleep(0.05)
    assert _run_and_wait(pool) == first
