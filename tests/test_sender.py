"""The rate-limited sender, on a virtual clock: limits, retry_after, blocked recipients."""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from pathlib import Path

import pytest
from aiogram.methods import SendMessage
from sqlalchemy import select

from bot.telegram import TelegramMessenger, create_bot
from handlers.types import OutText, RecipientBlocked
from scheduler.ratelimit import TokenRate
from scheduler.sender import Outcome, RateLimitedMessenger, Sender
from storage.models import Account
from tests.reminder_helpers import (
    TG,
    FakeMessenger,
    VirtualTime,
    build_world,
    sqlite_db,
)
from tests.tg_harness import RecordingSession

EPS = 1e-9


def sender_on(vt: VirtualTime, messenger: FakeMessenger, **kwargs) -> Sender:
    return Sender({TG: messenger}, clock=vt.clock, sleep=vt.sleep, **kwargs)


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


async def test_overall_rate_is_spaced_and_reaches_the_limit() -> None:
    vt = VirtualTime()
    messenger = FakeMessenger(clock=vt.clock)
    sender = sender_on(vt, messenger, rate_per_s=25)

    async def burst():
        return await asyncio.gather(
            *(sender.send(TG, f"chat{i}", OutText(f"m{i}")) for i in range(100))
        )

    results = await vt.run(burst())
    assert all(r.outcome == Outcome.SENT for r in results)
    times = [t for _, t in messenger.times]
    assert len(times) == 100
    assert min(gaps(sorted(times))) >= 1 / 25 - EPS
    # 100 messages at 25/s: the last one leaves 99 slots after the first
    assert max(times) - min(times) == pytest.approx(99 / 25)
    # no window of one second holds more than 25 sends
    for start in sorted(times):
        assert sum(1 for t in times if start <= t < start + 1) <= 25


async def test_one_chat_waits_a_second_without_holding_up_the_others() -> None:
    vt = VirtualTime()
    messenger = FakeMessenger(clock=vt.clock)
    sender = sender_on(vt, messenger, rate_per_s=25, per_chat_per_s=1)

    async def mix():
        busy = [sender.send(TG, "busy", OutText(f"b{i}")) for i in range(5)]
        others = [sender.send(TG, f"c{i}", OutText(f"o{i}")) for i in range(50)]
        return await asyncio.gather(*busy, *others)

    await vt.run(mix())
    by_chat: dict[str, list[float]] = defaultdict(list)
    for chat, at in messenger.times:
        by_chat[chat].append(at)
    busy = by_chat.pop("busy")
    assert len(busy) == 5
    assert min(gaps(busy)) >= 1.0 - EPS
    assert messenger.texts("busy") == ["b0", "b1", "b2", "b3", "b4"]  # in order
    others = sorted(t for ts in by_chat.values() for t in ts)
    assert len(others) == 50
    # 55 sends at 25/s take a bit over two seconds; the busy chat's 4 s do not delay others
    assert max(others) <= 55 / 25
    every = sorted(t for _, t in messenger.times)
    assert min(gaps(every)) >= 1 / 25 - EPS


async def test_retry_after_pauses_everyone_then_sends_once() -> None:
    vt = VirtualTime()
    messenger = FakeMessenger(clock=vt.clock)
    messenger.flood = [3]  # the first send gets "429 retry after 3"
    sender = sender_on(vt, messenger, rate_per_s=25)

    async def run():
        first = await sender.send(TG, "a", OutText("first"))
        rest = await asyncio.gather(*(sender.send(TG, f"c{i}", OutText("x")) for i in range(5)))
        return first, rest

    first, rest = await vt.run(run())
    assert first.outcome == Outcome.SENT and first.attempts == 2
    assert messenger.texts("a") == ["first"]
    assert all(r.outcome == Outcome.SENT for r in rest)
    assert min(t for _, t in messenger.times) >= 3.0 - EPS  # nothing went out during the pause


async def test_retry_after_gives_up_after_max_retries() -> None:
    vt = VirtualTime()
    messenger = FakeMessenger(clock=vt.clock)
    messenger.flood = [1, 1, 1]
    sender = sender_on(vt, messenger, max_retries=2)
    result = await vt.run(sender.send(TG, "a", OutText("x")))
    assert result.outcome == Outcome.FAILED and result.attempts == 3
    assert messenger.sent == []


async def test_other_errors_are_not_retried() -> None:
    vt = VirtualTime()
    messenger = FakeMessenger(clock=vt.clock)
    messenger.fail["a"] = TimeoutError("network")
    sender = sender_on(vt, messenger)
    result = await vt.run(sender.send(TG, "a", OutText("x")))
    assert result.outcome == Outcome.FAILED and result.attempts == 1
    assert "network" in (result.error or "")
    result = await vt.run(sender.send("vk", "a", OutText("x")))
    assert result.outcome == Outcome.FAILED and "no messenger" in (result.error or "")


async def test_before_hook_can_skip() -> None:
    vt = VirtualTime()
    messenger = FakeMessenger(clock=vt.clock)
    sender = sender_on(vt, messenger)

    async def nope() -> bool:
        return False

    result = await vt.run(sender.send(TG, "a", OutText("x"), before=nope))
    assert result.outcome == Outcome.SKIPPED and messenger.sent == []


async def test_blocked_recipient_is_marked_unreachable_and_not_retried(tmp_path: Path) -> None:
    _, engine, sessions = await sqlite_db(tmp_path)
    await build_world(sessions, engine)
    vt = VirtualTime()
    messenger = FakeMessenger(clock=vt.clock)
    messenger.blocked.add("d1")
    sender = sender_on(vt, messenger, sessions=sessions)
    result = await vt.run(sender.send(TG, "d1", OutText("x")))
    assert result.outcome == Outcome.BLOCKED and result.attempts == 1
    async with sessions() as session:
        account = await session.scalar(select(Account).where(Account.chat_id == "d1"))
        other = await session.scalar(select(Account).where(Account.chat_id == "d2"))
    assert account.unreachable_since is not None
    assert other.unreachable_since is None
    wrapper = RateLimitedMessenger(sender, TG)
    with pytest.raises(RecipientBlocked):
        await vt.run(wrapper.send("d1", OutText("again")))
    assert await vt.run(wrapper.send("d2", OutText("hello"))) is not None
    await engine.dispose()


async def test_telegram_messenger_errors_reach_the_sender() -> None:
    """aiogram's 429 and 403 come out of TelegramMessenger as RetryLater / RecipientBlocked."""
    session = RecordingSession()
    bot = create_bot("42:TEST", session=session)
    vt = VirtualTime()
    sender = Sender({TG: TelegramMessenger(bot)}, clock=vt.clock, sleep=vt.sleep)
    session.fail_next(SendMessage, "Too Many Requests: retry after 5", 429, retry_after=5)
    result = await vt.run(sender.send(TG, "7", OutText("Напоминание")))
    assert result.outcome == Outcome.SENT and result.attempts == 2
    assert vt.now >= 5
    assert [c.text for c in session.calls_of(SendMessage)] == ["Напоминание", "Напоминание"]
    session.fail_next(SendMessage, "Forbidden: bot was blocked by the user", 403)
    result = await vt.run(sender.send(TG, "8", OutText("Напоминание")))
    assert result.outcome == Outcome.BLOCKED and result.attempts == 1


async def test_rate_limited_messenger_edit_goes_through_the_limiter() -> None:
    vt = VirtualTime()
    messenger = FakeMessenger(clock=vt.clock)
    sender = sender_on(vt, messenger)
    wrapper = sender.messengers_view()[TG]
    await vt.run(wrapper.send("a", OutText("1")))
    await vt.run(wrapper.edit("a", "1", OutText("2")))
    assert vt.now >= 1.0  # the edit waited for the chat's second
    assert [m.text for _, m in messenger.sent] == ["1", "2"]


class SharedRateMessenger:
    """A channel that takes each request's slot from the token's shared budget itself."""

    def __init__(self, rate: TokenRate) -> None:
        self.rate = rate
        self.requests: list[str] = []

    async def send(self, chat_id: str, message: OutText) -> int:
        async with self.rate.request():
            self.requests.append(chat_id)
        return len(self.requests)


async def test_a_send_is_recorded_as_attempted_only_once_its_slot_has_come() -> None:
    """Sixteen reminders wait for a slow shared budget. The attempt is recorded (``before``)
    when the request goes out, not when the wait begins: a process killed meanwhile leaves
    at most the request in flight recorded-but-unsent, not every send that was waiting."""
    vt = VirtualTime()
    rate = TokenRate(2.0, clock=vt.clock, sleep=vt.sleep)
    messenger = SharedRateMessenger(rate)
    sender = Sender({TG: messenger}, clock=vt.clock, sleep=vt.sleep, shared_rates={TG: rate})
    recorded = 0
    waiting_after_record: list[int] = []

    def recorder():
        async def before() -> bool:
            nonlocal recorded
            waiting_after_record.append(recorded - len(messenger.requests))
            recorded += 1
            return True

        return before

    async def sixteen():
        return await asyncio.gather(
            *(sender.send(TG, str(i), OutText("напоминание"), before=recorder()) for i in range(16))
        )

    results = await vt.run(sixteen())
    assert [r.outcome for r in results] == [Outcome.SENT] * 16
    assert len(messenger.requests) == 16
    assert max(waiting_after_record) == 0  # every earlier attempt had gone out
    assert vt.now == pytest.approx(7.5)  # still one request every 0.5 s: one slot each
