"""The in-memory token bucket on an injected clock, and the Redis limiter's failure when no Redis
answers (the shared-store behaviour is tests/integration/serve/test_quota_redis.py)."""

from __future__ import annotations

import socket
import sys
import threading
import time

import pytest

from dssesign.errors import ConfigError, DssesignError, MissingDependencyError
from dssesign.serve.quota import (
    Decision,
    MemoryRateLimiter,
    QuotaUnavailable,
    RateLimiter,
    RedisRateLimiter,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def limiter(clock: Clock) -> MemoryRateLimiter:
    return MemoryRateLimiter(clock=clock)


def _allowed(limiter: RateLimiter, key: str, rate: int, n: int) -> int:
    return sum(limiter.acquire(key, rate).allowed for _ in range(n))


def test_a_burst_of_the_rate_then_refusal_with_retry_after(limiter: MemoryRateLimiter) -> None:
    assert [limiter.acquire("team-a", 5) for _ in range(5)] == [Decision(True, 0.0)] * 5
    refused = limiter.acquire("team-a", 5)
    assert not refused.allowed
    assert refused.retry_after_s == pytest.approx(12.0)  # 5 a minute: one token per 12 s


def test_refill_over_time_is_capped_at_the_burst(clock: Clock, limiter: MemoryRateLimiter) -> None:
    assert _allowed(limiter, "k", 5, 5) == 5
    clock.advance(6)
    half = limiter.acquire("k", 5)
    assert not half.allowed and half.retry_after_s == pytest.approx(6.0)  # half a token back
    clock.advance(6)
    assert limiter.acquire("k", 5).allowed  # a whole token after 12 s
    assert not limiter.acquire("k", 5).allowed
    clock.advance(3600)  # an hour idle refills only up to the burst size
    assert _allowed(limiter, "k", 5, 10) == 5


def test_retry_after_is_honest(clock: Clock, limiter: MemoryRateLimiter) -> None:
    """Waiting exactly what retry_after says is enough; a little less is not."""
    assert _allowed(limiter, "k", 7, 7) == 7
    wait = limiter.acquire("k", 7).retry_after_s
    clock.advance(wait * 0.99)
    assert not limiter.acquire("k", 7).allowed
    clock.advance(wait * 0.01 + 1e-9)
    assert limiter.acquire("k", 7).allowed


def test_keys_are_independent(limiter: MemoryRateLimiter) -> None:
    assert _allowed(limiter, "team-a", 3, 10) == 3
    assert _allowed(limiter, "team-b", 3, 10) == 3
    assert _allowed(limiter, "203.0.113.7", 1, 10) == 1


def test_a_lower_rate_caps_an_existing_bucket(limiter: MemoryRateLimiter) -> None:
    assert limiter.acquire("k", 100).allowed  # 99 left at rate 100
    assert _allowed(limiter, "k", 2, 10) == 2  # the tenant's quota was lowered to 2


def test_a_clock_stepping_back_mints_nothing(clock: Clock, limiter: MemoryRateLimiter) -> None:
    assert _allowed(limiter, "k", 2, 2) == 2
    clock.advance(-3600)
    assert not limiter.acquire("k", 2).allowed
    clock.advance(30)  # 30 s after the step back: one token at 2 a minute
    assert limiter.acquire("k", 2).allowed


def test_the_number_of_buckets_is_bounded_least_recently_used_first(clock: Clock) -> None:
    limiter = MemoryRateLimiter(max_keys=3, clock=clock)
    assert limiter.acquire("a", 1).allowed
    assert limiter.acquire("b", 1).allowed
    assert not limiter.acquire("a", 1).allowed  # a: empty, and now the most recently used
    limiter.acquire("c", 1)
    limiter.acquire("d", 1)  # four keys: b, the least recently used, is forgotten
    assert len(limiter) == 3
    assert not limiter.acquire("a", 1).allowed  # kept, still empty (LRU, not FIFO)
    assert limiter.acquire("b", 1).allowed  # forgotten: back as a full (idle) bucket
    for i in range(1000):
        limiter.acquire(f"flood-{i}", 1)
    assert len(limiter) == 3


def test_thread_safety(clock: Clock) -> None:
    limiter = MemoryRateLimiter(clock=clock)
    results: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        mine = [limiter.acquire("shared", 250).allowed for _ in range(200)]
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 1600 and sum(results) == 250  # not one token taken twice


def test_a_bad_rate_is_a_programming_error(limiter: MemoryRateLimiter) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        limiter.acquire("k", 0)
    with pytest.raises(TypeError):
        limiter.acquire("k", True)
    with pytest.raises(ValueError, match="max_keys"):
        MemoryRateLimiter(max_keys=0)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens there once the socket is closed


def test_redis_unreachable_fails_closed_fast_and_without_the_password() -> None:
    secret = "s3cr3t-Pa55-do-not-print"
    limiter = RedisRateLimiter(f"redis://:{secret}@127.0.0.1:{_closed_port()}/0", timeout_s=0.5)
    start = time.monotonic()
    with pytest.raises(QuotaUnavailable) as caught:
        limiter.acquire("team-a", 60)
    elapsed = time.monotonic() - start
    assert isinstance(caught.value, DssesignError)
    assert "127.0.0.1" in str(caught.value) and "ConnectionError" in str(caught.value)
    assert secret not in str(caught.value) and secret not in repr(caught.value)
    assert caught.value.__cause__ is None
    assert elapsed < 1.0  # refused at once: no retries with backoff (redis-py's default)
    limiter.close()


def test_without_redis_installed_the_error_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # import redis -> ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'dssesign\[serve\]'"):
        RedisRateLimiter("redis://127.0.0.1/0")


def test_a_url_redis_cannot_use_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not a usable Redis URL"):
        RedisRateLimiter("http://127.0.0.1:6379/0")
