"""Request quotas: a token bucket per key (tenant, client address), in memory or in Redis.

A bucket holds `rate_per_minute` tokens (the burst) and refills at that rate; a request takes
one. In memory each process keeps its own buckets; in Redis one Lua script reads, refills and
takes atomically on the server's clock, so replicas share every bucket. When Redis cannot be
reached, `acquire` raises QuotaUnavailable: the service answers 503 (fail closed) rather than
serve without a quota.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol
from urllib.parse import urlsplit

from ..errors import ConfigError, DssesignError, MissingDependencyError

if TYPE_CHECKING:
    import redis

#: Buckets one process tracks; the least recently used beyond it are forgotten. A forgotten
#: bucket comes back full, which is what an idle one would be anyway.
DEFAULT_MAX_KEYS: Final = 100_000
#: Redis keys are namespaced, so the quota store can share a database.
DEFAULT_PREFIX: Final = "dssesign:quota:"


class QuotaUnavailable(DssesignError):
    """The shared quota store cannot be reached: refuse the request (503), never skip the quota."""

    exit_code = 1


@dataclass(frozen=True)
class Decision:
    """Whether a request may go ahead, and if not, how long until one token is back."""

    allowed: bool
    #: Seconds until the next request would be allowed (0 when allowed): a Retry-After.
    retry_after_s: float


class RateLimiter(Protocol):
    """One interface for both stores: take one token from `key`'s bucket, or say when."""

    def acquire(self, key: str, rate_per_minute: int) -> Decision:
        """Take a token from `key`'s bucket of `rate_per_minute` (also its size)."""
        ...

    def close(self) -> None:
        """Release connections (nothing for the memory store)."""
        ...


def _check_rate(rate_per_minute: int) -> None:
    if isinstance(rate_per_minute, bool) or not isinstance(rate_per_minute, int):
        raise TypeError("rate_per_minute must be an int")
    if rate_per_minute < 1:
        raise ValueError("rate_per_minute must be at least 1")


class MemoryRateLimiter:
    """Buckets in this process: thread-safe, at most `max_keys` of them (LRU)."""

    def __init__(
        self,
        *,
        max_keys: int = DEFAULT_MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self._max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        #: key -> (tokens, when they were counted); oldest use first.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def acquire(self, key: str, rate_per_minute: int) -> Decision:
        """Take a token from `key`'s bucket of `rate_per_minute` (also its size)."""
        _check_rate(rate_per_minute)
        per_second = rate_per_minute / 60.0
        with self._lock:
            now = self._clock()
            tokens, then = self._buckets.pop(key, (float(rate_per_minute), now))
            # A clock that steps back (it should not: monotonic) refills nothing.
            tokens = min(float(rate_per_minute), tokens + max(0.0, now - then) * per_second)
            if tokens >= 1.0:
                tokens -= 1.0
                decision = Decision(True, 0.0)
            else:
                decision = Decision(False, (1.0 - tokens) / per_second)
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        return decision

    def close(self) -> None:
        """Nothing to release."""

    def __len__(self) -> int:
        with self._lock:
            return len(self._buckets)


#: KEYS[1] the bucket; ARGV[1] its rate per minute (= size). Returns {allowed, wait in µs}.
#: The server's TIME is the clock, so replicas with skewed clocks still agree. An idle bucket
#: is full after 60 s: it expires then, which loses nothing.
_SCRIPT: Final = """
if redis.replicate_commands then pcall(redis.replicate_commands) end
local rate = tonumber(ARGV[1])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = rate
  at = now
end
local elapsed = now - at
if elapsed < 0 then elapsed = 0 end
tokens = math.min(rate, tokens + elapsed * rate / 60000000)
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = math.ceil((1 - tokens) * 60000000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens),
           'at', string.format('%d', now))
redis.call('PEXPIRE', KEYS[1], 61000)
return {allowed, wait}
"""
_SCRIPT_SHA: Final = hashlib.sha1(_SCRIPT.encode(), usedforsecurity=False).hexdigest()


class RedisRateLimiter:
    """Buckets in Redis, shared by every replica; QuotaUnavailable when Redis cannot answer.

    A URL redis-py cannot use is a ConfigError; nothing connects before the first `acquire`.

    A call blocks for at most about `timeout_s` (connect, or wait for the reply; no retry):
    run `acquire` off the event loop.
    """

    def __init__(
        self,
        url: str,
        *,
        password: str | None = None,
        timeout_s: float = 1.0,
        prefix: str = DEFAULT_PREFIX,
    ) -> None:
        try:
            import redis  # noqa: PLC0415 - the serve extra; only a Redis store needs it
            from redis.backoff import NoBackoff  # noqa: PLC0415 - as above
            from redis.retry import Retry  # noqa: PLC0415 - as above
        except ImportError as exc:
            raise MissingDependencyError("a shared quota store", "redis", "serve") from exc

        self._errors: tuple[type[Exception], ...] = (redis.RedisError, OSError)
        self._no_script = redis.exceptions.NoScriptError
        #: Where, for messages: host and port only, never user or password.
        self._where = _describe(url)
        self._prefix = prefix
        extra: dict[str, Any] = {} if password is None else {"password": password}
        try:
            self._client: redis.Redis = redis.Redis.from_url(
                url,
                # redis-py's default is 5 s: a hung Redis would hold each request that long.
                socket_timeout=timeout_s,
                socket_connect_timeout=timeout_s,
                # No retry (redis-py's defaults differ between versions): a script that timed
                # out may have run, and a retry would take a second token. A pooled connection
                # that went stale is replaced before use, so a Redis restart costs no request.
                retry=Retry(NoBackoff(), 0),
                retry_on_timeout=False,
                **extra,
            )
        except ValueError:  # a URL redis-py cannot use; the message may show the URL, so not it
            raise ConfigError(f"quota store {self._where}: not a usable Redis URL") from None

    def acquire(self, key: str, rate_per_minute: int) -> Decision:
        """Take a token from `key`'s bucket of `rate_per_minute` (also its size)."""
        _check_rate(rate_per_minute)
        name = self._prefix + key
        try:
            try:
                reply = self._client.evalsha(_SCRIPT_SHA, 1, name, rate_per_minute)
            except self._no_script:  # first use, or after SCRIPT FLUSH / a restart
                reply = self._client.eval(_SCRIPT, 1, name, rate_per_minute)
        except self._errors as exc:
            raise QuotaUnavailable(
                f"quota store {self._where} unavailable ({type(exc).__name__})"
            ) from None
        allowed, wait_us = _reply(reply)
        return Decision(allowed, 0.0 if allowed else wait_us / 1_000_000)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()


def _reply(reply: object) -> tuple[bool, int]:
    if (
        isinstance(reply, list)
        and len(reply) == 2
        and all(isinstance(item, int) and item >= 0 for item in reply)
    ):
        return bool(reply[0]), reply[1]
    raise QuotaUnavailable("quota store: unexpected reply to the bucket script")


def _describe(url: str) -> str:
    try:
        parts = urlsplit(url)
        if parts.scheme == "unix":
            return f"unix:{parts.path}"
        host = parts.hostname or "?"
        return f"{host}:{parts.port or 6379}"
    except ValueError:
        return "(unparsable URL)"
