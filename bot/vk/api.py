"""vkbottle's ``API`` with our rate limit, back-off and base URL.

Every method call of the channel (and of vkbottle's uploader) goes through
:meth:`VkApi.request`, so the limit holds for everything sent with the community token.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from vkbottle import API, AiohttpClient, VKAPIError
from vkbottle.api.request_rescheduler import ABCRequestRescheduler

from handlers.types import RetryLater
from scheduler.ratelimit import TokenRate

log = logging.getLogger(__name__)

OFFICIAL_API_URL = "https://api.vk.ru"
REQUESTS_PER_SECOND = 20  # per community token (dev.vk.com, «Ограничения и рекомендации»)

TOO_MANY_PER_SECOND = 6
FLOOD_CONTROL = 9
RATE_LIMIT_REACHED = 29
# Seconds to wait before trying again; 6 is retried here, 9 and 29 go back to the caller.
BACKOFF = {TOO_MANY_PER_SECOND: 1.0, FLOOD_CONTROL: 10.0, RATE_LIMIT_REACHED: 300.0}
RETRIES_ON_TOO_MANY = 2
# 6 and 29 are about the token as a whole: every request waits. 9 (flood control) is about
# one kind of request (the same text again and again): only that send is retried later.
GLOBAL_BACKOFF = (TOO_MANY_PER_SECOND, RATE_LIMIT_REACHED)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class RateLimiter:
    """At most ``rate`` requests in any window of ``period`` seconds, as VK counts them.

    A request holds its slot while it is in flight and for ``period`` after its answer came
    back, so requests that queue on the way cannot reach VK closer together than the limit
    (counting at send time let 36 through in one second on a loaded machine). Not a token
    bucket: a bucket of 20/s with a burst of 20 lets up to 39 through within one second.
    ``pause`` holds every caller back after VK said to slow down.
    """

    def __init__(
        self,
        rate: int = REQUESTS_PER_SECOND,
        period: float = 1.0,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.rate = rate
        self.period = period
        self.clock = clock
        self.sleep = sleep
        self._done: collections.deque[float] = collections.deque()  # answer times
        self._in_flight = 0
        self._released = asyncio.Event()
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        await self._acquire()
        try:
            yield
        finally:
            self._in_flight -= 1
            self._done.append(self.clock())
            self._released.set()

    async def _acquire(self) -> None:
        async with self._lock:
            while True:
                now = self.clock()
                while self._done and self._done[0] <= now - self.period:
                    self._done.popleft()
                wait = self._paused_until - now
                if self._in_flight + len(self._done) >= self.rate:
                    if not self._done:  # every slot is in flight: wait for an answer
                        self._released.clear()
                        await self._released.wait()
                        continue
                    wait = max(wait, self._done[0] + self.period - now)
                if wait <= 0:
                    self._in_flight += 1
                    return
                await self.sleep(wait)

    def pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, self.clock() + seconds)


class _NoReschedule(ABCRequestRescheduler):
    """vkbottle's default rescheduler retries a non-JSON answer forever; we fail instead
    (delivery unknown) and let the caller decide."""

    async def reschedule(self, ctx_api: Any, method: str, data: dict, recent_response: Any):
        raise ConnectionError(f"VK answered {method} with something that is not JSON")


def method_url(api_url: str | None) -> str:
    base = (api_url or OFFICIAL_API_URL).rstrip("/")
    if base.endswith("/method"):
        base = base[: -len("/method")]
    return base + "/method/"


class VkApi(API):
    def __init__(
        self,
        token: str,
        *,
        api_url: str | None = None,
        limiter: RateLimiter | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        super().__init__(token, http_client=AiohttpClient(), request_rescheduler=_NoReschedule())
        self.API_URL = method_url(api_url)
        self.limiter = limiter or RateLimiter(sleep=sleep)
        self.sleep = sleep
        # The token's budget shared with every process on it (bot.runner sets it).
        self.rate: TokenRate | None = None

    async def request(
        self, method: str, data: dict[str, Any], version: str | None = None
    ) -> dict[str, Any]:
        """One method call; waits for the rate limit, retries error 6 a couple of times and
        raises :class:`RetryLater` for 6, 9 and 29 once that is exhausted."""
        for attempt in range(RETRIES_ON_TOO_MANY + 1):
            try:
                async with self.limiter.slot():
                    if self.rate is None:
                        return await super().request(method, dict(data), version)
                    async with self.rate.request():
                        return await super().request(method, dict(data), version)
            except VKAPIError as error:
                delay = BACKOFF.get(error.code)
                if delay is None:
                    raise
                log.warning("VK %s: error %s (%s), backing off", method, error.code, error)
                if error.code in GLOBAL_BACKOFF:
                    self.limiter.pause(delay)
                    if self.rate is not None:
                        await self.rate.pause(delay)
                if error.code != TOO_MANY_PER_SECOND or attempt == RETRIES_ON_TOO_MANY:
                    raise RetryLater(delay) from error
        raise AssertionError("unreachable")  # pragma: no cover

    async def close(self) -> None:
        await self.http_client.close()
