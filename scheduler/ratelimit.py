"""The send rate shared by every process that uses one platform token.

A platform limits a bot token, not a process: with several workers each one spacing its own
sends at 25/s would send 25·N/s. :class:`RedisBucket` keeps the token's next free send slot
in Redis and hands slots out atomically with a Lua script (a reservation-style token bucket:
each caller gets the next slot and waits until it comes, so starts across all processes are
spaced by ``1/rate``). Flood control (429 ``retry_after``) seen by one process moves the slot
for all of them. Without Redis each process gets ``rate / WORKERS``
(:func:`local_share`); when Redis fails mid-run the process falls back to that share until it
answers again. Time comes from Redis (``TIME``) unless a ``clock`` is given (tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

KEY_PREFIX = "shnor:send-slot:"
MAX_PAUSE_S = 3600.0

# KEYS[1]: the next free slot (seconds, as a string). ARGV: interval, pause, now (or -1).
# Returns how long the caller waits (seconds, as a string: Lua numbers would be truncated).
_SCRIPT = """
local now = tonumber(ARGV[3])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local interval = tonumber(ARGV[1])
local pause = tonumber(ARGV[2])
local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')
local wait = 0
if pause > 0 then
  nxt = math.max(nxt, now + pause)
  wait = nxt - now
else
  local slot = math.max(now, nxt)
  nxt = slot + interval
  wait = slot - now
end
local ttl = math.ceil((nxt - now) * 1000) + 60000
redis.call('SET', KEYS[1], string.format('%.6f', nxt), 'PX', ttl)
return string.format('%.6f', wait)
"""


def bucket_key(name: str) -> str:
    """The Redis key for one platform token (``name`` is already a hash, never the token)."""
    return KEY_PREFIX + hashlib.sha256(name.encode()).hexdigest()[:24]


def local_share(rate_per_s: float, workers: int) -> float:
    """The rate one process may use alone when ``workers`` processes share the token."""
    return rate_per_s / max(1, workers)


class RedisBucket:
    """Shared send slots of one platform token in Redis."""

    def __init__(
        self,
        redis: Any,
        name: str,
        *,
        workers: int = 1,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.redis = redis
        self.key = bucket_key(name)
        self.workers = max(1, workers)
        self.clock = clock
        self.calls = 0  # round trips in flight (tests wait for them on a virtual clock)
        self.failures = 0
        self._script = redis.register_script(_SCRIPT)
        self._failing_since: float | None = None

    async def reserve(self, interval: float) -> float | None:
        """Seconds until this caller's send slot; None when Redis cannot be asked."""
        return await self._call(interval, 0.0)

    async def pause(self, seconds: float) -> None:
        """No send on this token for ``seconds`` in any process (flood control)."""
        await self._call(0.0, max(0.0, seconds))

    async def _call(self, interval: float, pause: float) -> float | None:
        now = self.clock() if self.clock is not None else -1.0
        self.calls += 1
        try:
            reply = await self._script(keys=[self.key], args=[interval, pause, now])
        except Exception as exc:
            self.failures += 1
            if self._failing_since is None:
                self._failing_since = time.monotonic()
                log.warning(
                    "Redis is unavailable for the shared send rate (%r); this process "
                    "sends at its share (1/%d of the limit) until it answers",
                    exc,
                    self.workers,
                )
            return None
        finally:
            self.calls -= 1
        if self._failing_since is not None:
            self._failing_since = None
            log.info("Redis answers again: the send rate is shared")
        return max(0.0, float(reply))

    async def close(self) -> None:
        close = getattr(self.redis, "aclose", None) or self.redis.close
        await close()


def redis_client(url: str, connections: int = 16) -> Any:
    """A client whose callers queue for a connection instead of failing when all are busy."""
    from redis.asyncio import BlockingConnectionPool, Redis

    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=connections,
        timeout=5.0,
        socket_timeout=2.0,
        socket_connect_timeout=2.0,
    )
    return Redis.from_pool(pool)


@dataclass(slots=True)
class _Prepaid:
    rate: TokenRate
    used: bool = False


_PREPAID: ContextVar[_Prepaid | None] = ContextVar("shnor_prepaid_slot", default=None)


def forget_prepaid() -> None:
    """An unused prepaid slot of this task is not carried over to its next request."""
    _PREPAID.set(None)


class TokenRate:
    """The send budget of one platform token in this process, taken once per API request.

    With a :class:`RedisBucket` the slots come from Redis (shared by every process on the
    token; this process falls back to its share while Redis does not answer); without one
    this process spaces its requests at ``rate / workers``. ``pause`` (flood control) holds
    this process back and, through the bucket, every other one. ``in_flight`` counts the
    requests between their slot and their answer (tests run on a virtual clock).
    """

    def __init__(
        self,
        rate_per_s: float,
        *,
        workers: int = 1,
        bucket: RedisBucket | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate_per_s <= 0:
            raise ValueError("the rate must be positive")
        self.bucket = bucket
        share = bucket.workers if bucket is not None else max(1, workers)
        self.interval = 1.0 / rate_per_s if bucket is not None else share / rate_per_s
        self.fallback_interval = share / rate_per_s
        self.clock = clock
        self.sleep = sleep
        self.in_flight = 0
        self._next_slot = 0.0
        self._paused_until = 0.0

    async def take(self) -> None:
        """Wait for this caller's slot."""
        while True:
            shared = await self.bucket.reserve(self.interval) if self.bucket else None
            now = self.clock()
            if shared is None:
                slot = max(now, self._next_slot, self._paused_until)
                self._next_slot = slot + self.fallback_interval
                wait = slot - now
            else:
                wait = max(shared, self._paused_until - now)
            if wait > 0:
                await self.sleep(wait)
            if self.clock() >= self._paused_until:  # a pause may have begun while we slept
                return

    async def prepay(self) -> None:
        """Take the slot of the next request this task makes, now: the scheduler's sender
        records an attempt after the wait, right before the request goes out (a process
        killed while many sends wait leaves none of them recorded-but-unsent)."""
        await self.take()
        _PREPAID.set(_Prepaid(self))

    @contextlib.asynccontextmanager
    async def request(self) -> AsyncIterator[None]:
        """``async with rate.request(): await api_call()``"""
        prepaid = _PREPAID.get()
        if prepaid is not None and prepaid.rate is self and not prepaid.used:
            prepaid.used = True  # one request per slot (also in a task copying this context)
        else:
            await self.take()
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    def hold(self, until: float) -> None:
        """No slot in this process before ``until`` (a pause of its own)."""
        self._paused_until = max(self._paused_until, until)
        self._next_slot = max(self._next_slot, until)

    async def pause(self, seconds: float) -> None:
        """No request on this token for ``seconds``, here and in every process sharing it."""
        seconds = max(0.0, min(seconds, MAX_PAUSE_S))
        self.hold(self.clock() + seconds)
        if self.bucket is not None:
            await self.bucket.pause(seconds)
