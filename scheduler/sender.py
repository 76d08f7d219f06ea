"""One rate-limited sender for everything the bot sends unprompted (reminders, notices).

* at most ``rate_per_s`` messages per second overall (Telegram allows ~30/s per bot) and at
  most ``per_chat_per_s`` per chat (Telegram: about one per second in a private chat);
* :class:`~handlers.types.RetryLater` from a messenger (Telegram's 429 ``retry_after``)
  pauses every send for that long, then the same message is tried again (nothing was
  delivered, so a retry cannot duplicate it);
* :class:`~handlers.types.RecipientBlocked` (403) is never retried; with ``sessions`` the
  account is marked unreachable (``Account.unreachable_since``) so coordinators see it;
* :class:`~handlers.types.TokenRejected` (a revoked token) is REFUSED: nothing arrived, the
  caller queues it again for the process running with the new token;
* any other error is returned as FAILED and not retried: the message may have arrived.

Slots are handed out in order: a caller first waits for its chat to be free, then takes the
next global slot, so a busy chat never wastes slots other chats could use. Time and sleep
are injectable (tests run on a virtual clock).

Several processes on one token: give the platform a :class:`~scheduler.ratelimit.RedisBucket`
(``buckets``) and its global slots come from Redis, shared by every process; flood control
seen by one pauses all. Per-chat spacing stays per process.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import update
from sqlalchemy.ext.asyncio import async_sessionmaker

from handlers.types import (
    Messenger,
    Outgoing,
    OutText,
    RecipientBlocked,
    RetryLater,
    TokenRejected,
)
from scheduler.ratelimit import RedisBucket, TokenRate, forget_prepaid, local_share
from storage.models import Account

log = logging.getLogger(__name__)

# Arrival jitter must not make two sends to one chat look closer than the limit.
PER_CHAT_MARGIN_S = 0.02
MAX_RETRY_AFTER_S = 3600.0


class Outcome(StrEnum):
    SENT = "sent"
    BLOCKED = "blocked"  # the recipient blocked the bot
    FAILED = "failed"  # unknown whether it arrived; not retried
    SKIPPED = "skipped"  # the ``before`` hook declined (e.g. the claim was lost)
    REFUSED = "refused"  # the platform refused the token (revoked): nothing was delivered


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: Outcome
    message_id: str | None = None
    error: str | None = None
    attempts: int = 0
    exception: BaseException | None = None


class _ChatSlot:
    __slots__ = ("lock", "next_at", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.next_at = 0.0
        self.users = 0


class RateLimiter:
    """Global and per-chat spacing of sends."""

    def __init__(
        self,
        rate_per_s: float,
        per_chat_per_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        per_chat_margin: float = PER_CHAT_MARGIN_S,
        bucket: RedisBucket | None = None,
        shared: TokenRate | None = None,
    ) -> None:
        """``shared``: the token's budget that the platform's messenger takes each request's
        slot from itself; this limiter prepays that slot (before the attempt is recorded)."""
        if rate_per_s <= 0 or per_chat_per_s <= 0:
            raise ValueError("rates must be positive")
        self.bucket = bucket
        self.prepaid = shared is not None
        # the global spacing is the token's budget (Redis down: this process's share)
        self.rate = shared or TokenRate(rate_per_s, bucket=bucket, clock=clock, sleep=sleep)
        self.chat_interval = 1.0 / per_chat_per_s + per_chat_margin
        self.clock = clock
        self.sleep = sleep
        self._last_start = float("-inf")
        self._gate: asyncio.Lock | None = None
        self._chats: dict[str, _ChatSlot] = {}

    def pause(self, seconds: float, chat: str | None = None) -> None:
        """Stop all sends for ``seconds`` (flood control); the chat also waits at least that."""
        until = self.clock() + max(0.0, min(seconds, MAX_RETRY_AFTER_S))
        self.rate.hold(until)
        if chat is not None and chat in self._chats:
            self._chats[chat].next_at = max(self._chats[chat].next_at, until)

    async def share_pause(self, seconds: float) -> None:
        """Tell the other processes on this token to pause too."""
        if self.bucket is not None:
            await self.bucket.pause(min(seconds, MAX_RETRY_AFTER_S))

    async def _take_global_slot(self) -> None:
        if self.prepaid:
            await self.rate.prepay()  # the messenger's request uses it
        else:
            await self.rate.take()

    @property
    def interval(self) -> float:
        return self.rate.interval

    @property
    def fallback_interval(self) -> float:
        return self.rate.fallback_interval

    @property
    def gate(self) -> asyncio.Lock:
        if self._gate is None:
            self._gate = asyncio.Lock()
        return self._gate

    def slot(self, chat: str) -> _Slot:
        return _Slot(self, chat)


class _Slot:
    """``async with limiter.slot(chat) as s: ...; await s.go(); await api_call()``.

    Holds the chat for the whole send; the chat's next send is spaced from ``go()``.
    """

    def __init__(self, limiter: RateLimiter, chat: str) -> None:
        self.limiter = limiter
        self.chat = chat
        self.entry: _ChatSlot | None = None
        self.locked = False

    async def __aenter__(self) -> _Slot:
        limiter = self.limiter
        entry = limiter._chats.get(self.chat)
        if entry is None:
            entry = limiter._chats[self.chat] = _ChatSlot()
        entry.users += 1
        self.entry = entry
        try:
            await entry.lock.acquire()
            self.locked = True
            await self.wait()
        except BaseException:
            self._release()
            raise
        return self

    async def wait(self) -> None:
        """Wait for this chat's next turn and a global slot (again after a RetryLater)."""
        entry = self.entry
        assert entry is not None
        while True:
            ahead = entry.next_at - self.limiter.clock()
            if ahead > 0:
                await self.limiter.sleep(ahead)
                continue
            await self.limiter._take_global_slot()
            if entry.next_at <= self.limiter.clock():
                return

    async def go(self, before: Callable[[], Awaitable[bool]] | None = None) -> bool:
        """Right before the request. One caller at a time passes this gate: it runs
        ``before`` (e.g. recording the attempt in the database; False cancels), waits until
        a full interval has passed since the previous request started, and marks the start.
        So actual request starts are spaced, and at most one message per process is ever
        "recorded as attempted but not yet sent"."""
        assert self.entry is not None
        limiter = self.limiter
        async with limiter.gate:
            if before is not None and not await before():
                return False
            while not limiter.prepaid:  # the database write above overlaps with this wait
                wait = limiter._last_start + limiter.interval - limiter.clock()
                if wait <= 0:
                    break
                await limiter.sleep(wait)
            now = limiter.clock()
            limiter._last_start = now
            self.entry.next_at = now + limiter.chat_interval
        return True

    def answered(self) -> None:
        """The request came back: the chat's next send is spaced from here too (a messenger
        that waits for the token's shared budget itself may send well after ``go()``)."""
        if self.entry is not None:
            later = self.limiter.clock() + self.limiter.chat_interval
            self.entry.next_at = max(self.entry.next_at, later)

    async def __aexit__(self, *exc: object) -> None:
        self._release()

    def _release(self) -> None:
        entry = self.entry
        if entry is None:
            return
        self.entry = None
        if self.locked:
            self.locked = False
            entry.lock.release()
        entry.users -= 1
        if entry.users == 0 and entry.next_at <= self.limiter.clock():
            self.limiter._chats.pop(self.chat, None)


class Sender:
    """Rate-limited sending over platform messengers (``{"tg": TelegramMessenger}``)."""

    def __init__(
        self,
        messengers: Mapping[str, Messenger],
        *,
        rate_per_s: float = 25.0,
        per_chat_per_s: float = 1.0,
        max_retries: int = 5,
        sessions: async_sessionmaker | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        buckets: Mapping[str, RedisBucket] | None = None,
        workers: int = 1,
        shared_rates: Mapping[str, TokenRate] | None = None,
    ) -> None:
        """``rate_per_s`` is the platform token's limit; ``workers`` processes share it: a
        platform with a bucket takes its slots from Redis, the others use 1/``workers``.
        The messengers of ``shared_rates`` platforms take every request's slot from the
        token's shared budget (:class:`~scheduler.ratelimit.TokenRate`) themselves: here
        that slot is taken (prepaid) before the attempt is recorded, and the chat spaced,
        so a message never costs two slots."""
        self.messengers = dict(messengers)
        self.limiter = RateLimiter(
            local_share(rate_per_s, workers), per_chat_per_s, clock=clock, sleep=sleep
        )
        # A platform with a shared bucket gets its own limiter; the others share ``limiter``.
        self.limiters = {
            platform: RateLimiter(
                rate_per_s, per_chat_per_s, clock=clock, sleep=sleep, bucket=bucket
            )
            for platform, bucket in (buckets or {}).items()
        }
        for platform, rate in (shared_rates or {}).items():
            self.limiters[platform] = RateLimiter(
                rate_per_s, per_chat_per_s, clock=clock, sleep=sleep, shared=rate
            )
        self.max_retries = max_retries
        self.sessions = sessions
        self.now = now

    @property
    def platforms(self) -> tuple[str, ...]:
        return tuple(self.messengers)

    def limiter_for(self, platform: str) -> RateLimiter:
        return self.limiters.get(platform, self.limiter)

    async def close(self) -> None:
        """Close the Redis connections of the shared buckets."""
        clients = {id(lim.bucket.redis): lim.bucket for lim in self.limiters.values() if lim.bucket}
        for bucket in clients.values():
            try:
                await bucket.close()
            except Exception as exc:
                log.debug("closing redis: %r", exc)

    async def send(
        self,
        platform: str,
        chat_id: str,
        message: Outgoing,
        *,
        before: Callable[[], Awaitable[bool]] | None = None,
    ) -> SendResult:
        """Send one message when the limits allow.

        ``before`` runs right before each attempt reaches the messenger (the reminder tick
        records the attempt there); returning False skips the send.
        """
        messenger = self.messengers.get(platform)
        if messenger is None:
            return SendResult(Outcome.FAILED, error=f"no messenger for platform {platform!r}")
        try:
            return await self._send(messenger, platform, chat_id, message, before)
        finally:
            forget_prepaid()

    async def _send(
        self,
        messenger: Messenger,
        platform: str,
        chat_id: str,
        message: Outgoing,
        before: Callable[[], Awaitable[bool]] | None,
    ) -> SendResult:
        attempts = 0
        limiter = self.limiter_for(platform)
        async with limiter.slot(f"{platform}:{chat_id}") as slot:
            while True:
                if not await slot.go(before):
                    return SendResult(Outcome.SKIPPED, attempts=attempts)
                attempts += 1
                try:
                    try:
                        message_id = await messenger.send(chat_id, message)
                    finally:
                        slot.answered()
                except RetryLater as exc:
                    log.warning(
                        "flood control on %s:%s: waiting %s s", platform, chat_id, exc.seconds
                    )
                    limiter.pause(exc.seconds, f"{platform}:{chat_id}")
                    await limiter.share_pause(exc.seconds)
                    if attempts > self.max_retries:
                        return SendResult(
                            Outcome.FAILED, error=f"flood control: {exc}", attempts=attempts
                        )
                    await slot.wait()
                    continue
                except TokenRejected as exc:
                    log.error("%s: the platform refused the bot's token", platform)
                    return SendResult(Outcome.REFUSED, error=str(exc), attempts=attempts)
                except RecipientBlocked as exc:
                    await self._mark_unreachable(platform, chat_id)
                    return SendResult(
                        Outcome.BLOCKED, error=str(exc) or "blocked", attempts=attempts
                    )
                except Exception as exc:
                    log.warning("send to %s:%s failed: %r", platform, chat_id, exc)
                    return SendResult(
                        Outcome.FAILED, error=repr(exc)[:500], attempts=attempts, exception=exc
                    )
                return SendResult(Outcome.SENT, message_id=message_id, attempts=attempts)

    async def _mark_unreachable(self, platform: str, chat_id: str) -> None:
        if self.sessions is None:
            return
        try:
            async with self.sessions() as session:
                await session.execute(
                    update(Account)
                    .where(
                        Account.platform == platform,
                        Account.chat_id == str(chat_id),
                        Account.unreachable_since.is_(None),
                    )
                    .values(unreachable_since=self.now())
                )
                await session.commit()
        except Exception:
            log.exception("could not mark %s:%s unreachable", platform, chat_id)

    def messenger(self, platform: str) -> RateLimitedMessenger:
        return RateLimitedMessenger(self, platform)

    def messengers_view(self) -> dict[str, RateLimitedMessenger]:
        """Drop-in Messengers for other background jobs: same limits, same accounting."""
        return {platform: self.messenger(platform) for platform in self.messengers}


class RateLimitedMessenger:
    """A :class:`~handlers.types.Messenger` whose sends go through a :class:`Sender`."""

    def __init__(self, sender: Sender, platform: str) -> None:
        self.sender = sender
        self.platform = platform

    async def send(self, chat_id: str, message: Outgoing) -> str | None:
        result = await self.sender.send(self.platform, chat_id, message)
        if result.outcome == Outcome.SENT:
            return result.message_id
        if result.outcome == Outcome.BLOCKED:
            raise RecipientBlocked(result.error or "blocked")
        if result.outcome == Outcome.REFUSED:
            raise TokenRejected(result.error or "token refused")
        if result.exception is not None:
            raise result.exception
        raise RuntimeError(result.error or "not sent")

    async def edit(self, chat_id: str, message_id: str, message: OutText) -> None:
        messenger = self.sender.messengers[self.platform]
        limiter = self.sender.limiter_for(self.platform)
        async with limiter.slot(f"{self.platform}:{chat_id}") as slot:
            await slot.go()
            try:
                await messenger.edit(chat_id, message_id, message)
            finally:
                slot.answered()
