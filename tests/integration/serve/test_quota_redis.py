"""The Redis token bucket against a real redis-server: replicas share one bucket atomically, the
script survives SCRIPT FLUSH (EVALSHA, then EVAL on NOSCRIPT), and an outage fails closed."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from dssesign.serve.quota import (
    _SCRIPT_SHA,
    DEFAULT_PREFIX,
    Decision,
    MemoryRateLimiter,
    QuotaUnavailable,
    RateLimiter,
    RedisRateLimiter,
)
from tests.redis_server import RedisServer, run_redis


@pytest.fixture
def key() -> str:
    """A fresh bucket name per test: the session's Redis is shared."""
    return f"tenant-{uuid.uuid4().hex}"


@pytest.fixture
def limiters(redis_server: RedisServer) -> Iterator[tuple[RedisRateLimiter, RedisRateLimiter]]:
    """Two limiters on one Redis, as two replicas of the service have."""
    first, second = RedisRateLimiter(redis_server.url), RedisRateLimiter(redis_server.url)
    yield first, second
    first.close()
    second.close()


def _allowed(limiter: RateLimiter, key: str, rate: int, n: int) -> int:
    return sum(limiter.acquire(key, rate).allowed for _ in range(n))


def test_burst_then_refusal_with_retry_after(
    limiters: tuple[RedisRateLimiter, RedisRateLimiter], key: str
) -> None:
    limiter, _ = limiters
    assert [limiter.acquire(key, 5) for _ in range(5)] == [Decision(True, 0.0)] * 5
    refused = limiter.acquire(key, 5)
    assert not refused.allowed
    assert 11.0 < refused.retry_after_s <= 12.0  # one token per 12 s, a little already back


def test_two_limiters_share_one_bucket(
    limiters: tuple[RedisRateLimiter, RedisRateLimiter], key: str
) -> None:
    first, second = limiters
    assert _allowed(first, key, 5, 3) == 3
    assert _allowed(second, key, 5, 10) == 2  # the other replica sees what the first took
    assert not first.acquire(key, 5).allowed
    assert _allowed(first, key + "-other", 5, 10) == 5  # keys stay independent


def test_concurrent_replicas_never_take_a_token_twice(
    limiters: tuple[RedisRateLimiter, RedisRateLimiter], key: str
) -> None:
    results: list[bool] = []
    lock = threading.Lock()

    def worker(limiter: RedisRateLimiter) -> None:
        mine = [limiter.acquire(key, 50).allowed for _ in range(50)]
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=worker, args=(limiters[i % 2],)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 300 and sum(results) == 50


def test_refill_on_the_servers_clock(
    limiters: tuple[RedisRateLimiter, RedisRateLimiter], key: str
) -> None:
    limiter, _ = limiters
    assert _allowed(limiter, key, 120, 120) == 120  # 2 tokens a second
    refused = limiter.acquire(key, 120)
    assert not refused.allowed and 0 < refused.retry_after_s <= 0.5
    time.sleep(refused.retry_after_s + 0.05)
    assert limiter.acquire(key, 120).allowed
    assert not limiter.acquire(key, 120).allowed


def test_an_idle_bucket_holds_no_more_than_the_burst(
    limiters: tuple[RedisRateLimiter, RedisRateLimiter], key: str
) -> None:
    limiter, _ = limiters
    assert limiter.acquire(key, 120).allowed  # 119 left; 2 tokens a second come back
    time.sleep(1.1)  # enough for 2 more, but the bucket holds 120
    assert _allowed(limiter, key, 120, 130) == 120


def test_the_script_survives_script_flush_and_buckets_expire(
    redis_server: RedisServer, limiters: tuple[RedisRateLimiter, RedisRateLimiter], key: str
) -> None:
    limiter, _ = limiters
    client = redis.Redis.from_url(redis_server.url)
    try:
        assert limiter.acquire(key, 3).allowed
        client.script_flush()  # as after a restart or failover: EVALSHA now answers NOSCRIPT
        assert _allowed(limiter, key, 3, 5) == 2  # EVAL ran it, on the same bucket
        assert client.script_exists(_SCRIPT_SHA)[0]  # and cached it again for EVALSHA
        ttl = client.pttl(DEFAULT_PREFIX + key)
        assert 0 < ttl <= 61_000  # an idle bucket is full after 60 s: it need not outlive that
    finally:
        client.close()


def test_a_prefix_separates_stores(redis_server: RedisServer, key: str) -> None:
    one = RedisRateLimiter(redis_server.url, prefix="svc-one:")
    two = RedisRateLimiter(redis_server.url, prefix="svc-two:")
    try:
        assert _allowed(one, key, 2, 5) == 2
        assert _allowed(two, key, 2, 5) == 2
    finally:
        one.close()
        two.close()


def test_redis_going_down_fails_closed(tmp_path_factory: pytest.TempPathFactory, key: str) -> None:
    with run_redis(tmp_path_factory) as server:
        limiter: RateLimiter = RedisRateLimiter(server.url, timeout_s=0.5)
        assert limiter.acquire(key, 10).allowed
        server.stop()
        start = time.monotonic()
        with pytest.raises(QuotaUnavailable, match=r"127\.0\.0\.1:\d+ unavailable"):
            limiter.acquire(key, 10)
        assert time.monotonic() - start < 0.5  # refused connections: answered at once
        limiter.close()


def test_a_hung_redis_fails_closed_within_the_timeout_then_recovers(
    tmp_path_factory: pytest.TempPathFactory, key: str
) -> None:
    """SIGSTOP: the port accepts, nothing answers (a stalled or overloaded Redis)."""
    with run_redis(tmp_path_factory) as server:
        limiter = RedisRateLimiter(server.url, timeout_s=0.5)
        assert limiter.acquire(key, 10).allowed
        server.process.send_signal(signal.SIGSTOP)
        try:
            start = time.monotonic()
            with pytest.raises(QuotaUnavailable, match=r"unavailable \(TimeoutError\)"):
                limiter.acquire(key, 10)
            elapsed = time.monotonic() - start
        finally:
            server.process.send_signal(signal.SIGCONT)
        assert 0.4 < elapsed < 1.2  # the timeout, once (redis-py's default: 5 s)
        assert limiter.acquire(key, 10).allowed  # back as soon as Redis answers
        limiter.close()


def test_a_redis_restart_costs_no_request(
    tmp_path_factory: pytest.TempPathFactory, key: str
) -> None:
    """The pooled connection to the old process is replaced before the next request uses it."""
    with run_redis(tmp_path_factory) as server:
        limiter = RedisRateLimiter(server.url)
        assert limiter.acquire(key, 10).allowed
        server.stop()
        with run_redis(tmp_path_factory, port=server.port) as again:
            assert again.port == server.port
            assert limiter.acquire(key, 10).allowed  # a fresh bucket: the old one was in RAM
        limiter.close()


def test_a_password_protected_redis(tmp_path_factory: pytest.TempPathFactory, key: str) -> None:
    password = "test-" + uuid.uuid4().hex  # a throwaway secret
    with run_redis(tmp_path_factory, password=password) as server:
        without = RedisRateLimiter(server.url)
        with pytest.raises(QuotaUnavailable) as caught:
            without.acquire(key, 10)
        assert password not in str(caught.value)
        with_password = RedisRateLimiter(server.url, password=password)
        assert _allowed(with_password, key, 2, 3) == 2
        without.close()
        with_password.close()


def test_memory_and_redis_agree_on_a_burst(
    limiters: tuple[RedisRateLimiter, RedisRateLimiter], key: str
) -> None:
    """One interface, one behaviour: the same sequence of decisions from either store."""
    memory = MemoryRateLimiter()
    redis_limiter, _ = limiters
    for store in (memory, redis_limiter):
        assert [store.acquire(key, 4).allowed for _ in range(6)] == [True] * 4 + [False] * 2
