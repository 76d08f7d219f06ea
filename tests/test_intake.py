"""The durable intake: inbox -> processor -> outbox, with the real Conversation and the real
Telegram channel over a recording Bot API session; SQLite, and PostgreSQL when configured."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from aiogram.methods import SendMessage
from sqlalchemy import func, select

from bot.processor import ERROR_TEXT, Processor
from bot.telegram import EDITED_TEXT, TelegramFileFetcher
from handlers.types import Incoming, Outgoing, OutText
from storage import inbox
from storage.models import (
    Account,
    Answer,
    InboxEvent,
    InboxStatus,
    OutboxMessage,
    OutboxStatus,
    utcnow,
)
from tests.pg import requires_postgres, settings_on_both_databases, temporary_database
from tests.tg_harness import TgHarness
from tests.walk import NOTE, position

# Every story runs on SQLite, and on PostgreSQL too when TEST_POSTGRES_URL is set.
settings = settings_on_both_databases()


def harness_for(services) -> TgHarness:
    harness = TgHarness.for_core(services.conversation)
    services.conversation.register_fetcher("tg", TelegramFileFetcher(harness.bot))
    return harness


def replies_to(harness: TgHarness, chat_id: int, fragment: str) -> list[str]:
    return [
        c.text
        for c in harness.session.calls_of(SendMessage)
        if int(c.chat_id) == chat_id and fragment in c.text
    ]


async def rows(services, model) -> list[Any]:
    async with services.sessions() as session:
        return list(await session.scalars(select(model).order_by(model.id)))


async def count(services, model) -> int:
    async with services.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


class CountingCore:
    """The real conversation, counting how often it ran; ``gate`` holds it mid-event."""

    def __init__(self, conversation) -> None:
        self.conversation = conversation
        self.calls = 0
        self.entered = asyncio.Event()
        self.gate: asyncio.Event | None = None

    async def handle_in(self, session, event: Incoming) -> list[Outgoing]:
        self.calls += 1
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        return await self.conversation.handle_in(session, event)


class HangingSend:
    """The Telegram channel whose ``send`` never returns (the process dies while sending)."""

    def __init__(self, channel) -> None:
        self.channel = channel
        self.sending = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.channel, name)

    async def send(self, chat_id: str, message: Outgoing, *, dedup: str | None = None) -> None:
        self.sending.set()
        await asyncio.Event().wait()


# --------------------------------------------------------------------------- duplicates


async def test_same_update_delivered_twice_is_processed_once(services, region):
    harness = harness_for(services)
    user = harness.user(1001, "Анна")
    start = user.text_update(f"/start {region.codes['S1']}")
    await user.act_batch([start, start])  # twice in one batch
    await user.act_batch([start])  # and again after a failed poll
    assert len(replies_to(harness, 1001, "зарегистрированы")) == 1
    assert await count(services, Account) == 1
    (event,) = await rows(services, InboxEvent)
    assert (event.status, event.attempts) == (InboxStatus.DONE, 1)


async def test_typed_answer_redelivered_does_not_land_on_the_next_question(services, region):
    harness = harness_for(services)
    user = harness.user(1001, "Анна")
    await user.send(f"/start {region.codes['S1']}")
    await user.click("▶ Начать заполнение")
    answer = user.text_update("25")
    await user.act_batch([answer])
    _mode, first = await position(services, "tg", "1001")
    await user.act_batch([answer])  # the same update_id again
    assert await position(services, "tg", "1001") == (_mode, first)
    user.expect_silence()
    assert await count(services, Answer) == 1


# --------------------------------------------------------------------------- crashes


async def test_killed_between_inbox_commit_and_processing(services, region):
    harness = harness_for(services)
    user = harness.user(1001, "Анна")
    update = user.text_update(f"/start {region.codes['S1']}")
    core = CountingCore(services.conversation)
    core.gate = asyncio.Event()  # never opened: the process "dies" inside the event
    first = Processor(services.sessions, {"tg": harness.channel}, core, retry_delay=0)
    await first.accept(
        list(
            harness.channel.raw_events(
                [update.model_dump(mode="json", by_alias=True, exclude_none=True)]
            )
        )
    )
    draining = asyncio.create_task(first.drain())
    await asyncio.wait_for(core.entered.wait(), 5)
    await first.stop(timeout=0)  # killed mid-event: its transaction never commits
    draining.cancel()
    await asyncio.gather(draining, return_exceptions=True)
    assert await count(services, Account) == 0
    assert replies_to(harness, 1001, "зарегистрированы") == []
    (event,) = await rows(services, InboxEvent)
    assert event.status == InboxStatus.PENDING

    restarted = Processor(
        services.sessions, {"tg": harness.channel}, services.conversation, retry_delay=0
    )
    await restarted.drain()
    assert len(replies_to(harness, 1001, "зарегистрированы")) == 1
    assert await count(services, Account) == 1
    (event,) = await rows(services, InboxEvent)
    assert event.status == InboxStatus.DONE


async def test_killed_between_processing_and_sending(services, region):
    harness = harness_for(services)
    user = harness.user(1001, "Анна")
    update = user.text_update(f"/start {region.codes['S1']}")
    core = CountingCore(services.conversation)
    hanging = HangingSend(harness.channel)
    first = Processor(services.sessions, {"tg": hanging}, core, retry_delay=0)
    await first.accept(
        list(
            harness.channel.raw_events(
                [update.model_dump(mode="json", by_alias=True, exclude_none=True)]
            )
        )
    )
    draining = asyncio.create_task(first.drain())
    await asyncio.wait_for(hanging.sending.wait(), 5)
    await first.stop(timeout=0)
    draining.cancel()
    await asyncio.gather(draining, return_exceptions=True)
    (event,) = await rows(services, InboxEvent)
    assert event.status == InboxStatus.DONE
    outbox = await rows(services, OutboxMessage)
    assert outbox and all(r.status == OutboxStatus.PENDING for r in outbox)
    assert replies_to(harness, 1001, "зарегистрированы") == []

    restarted = Processor(services.sessions, {"tg": harness.channel}, core, retry_delay=0)
    await restarted.drain()
    assert core.calls == 1  # the replies were sent as recorded, not generated again
    assert len(replies_to(harness, 1001, "зарегистрированы")) == 1
    outbox = await rows(services, OutboxMessage)
    assert all(r.status == OutboxStatus.SENT and r.platform_message_id for r in outbox)
    assert [r.position for r in outbox] == list(range(len(outbox)))


# --------------------------------------------------------------------------- order


async def test_button_then_text_at_once_processed_in_order(services, region):
    """Item 25: a «Нет» tap and the typed note arrive in one batch; the note is kept."""
    harness = harness_for(services)
    user = harness.user(1001, "Анна")
    await user.send(f"/start {region.codes['S1']}")
    await user.click("▶ Начать заполнение")
    for _ in range(8):
        await user.send("10")
    _mode, slot = await position(services, "tg", "1001")
    assert user.buttons()[:2] == ["Да", "Нет"]
    await user.act_batch([user.click_update("Нет"), user.text_update(NOTE)])
    async with services.sessions() as session:
        answer = await session.scalar(select(Answer).where(Answer.question_id == slot.question_id))
    assert answer is not None and answer.note == NOTE
    assert (await position(services, "tg", "1001"))[1] != slot


# --------------------------------------------------------------------------- bad events


async def test_unparsable_update_is_failed_and_the_rest_served(services, region):
    """Item 22: an update aiogram cannot read (no date) is stored, marked failed, logged."""
    harness = harness_for(services)
    user = harness.user(1001, "Анна")
    other = harness.user(1002, "Пётр")
    broken = {
        "update_id": 10_000_001,
        "message": {"message_id": 5, "chat": {"id": 1001, "type": "private"}},
    }
    good = other.text_update(f"/start {region.codes['S2']}")
    await harness.feed_raw([broken, good.model_dump(mode="json", by_alias=True, exclude_none=True)])
    assert len(replies_to(harness, 1002, "зарегистрированы")) == 1
    failed = [e for e in await rows(services, InboxEvent) if e.status == InboxStatus.FAILED]
    assert [(e.event_key, e.error_type) for e in failed] == [("10000001", "ValidationError")]
    assert replies_to(harness, 1001, ERROR_TEXT) == [ERROR_TEXT]  # the apology, once
    await user.send(f"/start {region.codes['S1']}")
    user.expect("зарегистрированы")


async def test_edited_message_gets_a_reply(services, region):
    """Item 28: an edit is not taken into account, and the user is told to send it again."""
    harness = harness_for(services)
    user = harness.user(1001, "Анна")
    await user.send(f"/start {region.codes['S1']}")
    await user.act_batch([user.message_update(edited=True, text="30")])
    assert user.texts() == [EDITED_TEXT]
    assert "отправьте ответ ещё раз" in EDITED_TEXT


# --------------------------------------------------------------------------- with a test double


class ScriptedCore:
    def __init__(self) -> None:
        self.events: list[Incoming] = []
        self.fail = False
        self.waits: dict[str, asyncio.Event] = {}

    async def handle(self, event: Incoming) -> list[Outgoing]:
        self.events.append(event)
        if self.fail:
            raise RuntimeError("boom")
        if event.text in self.waits:
            await asyncio.wait_for(self.waits[event.text].wait(), 5)
        if event.text.startswith("go "):
            self.waits.setdefault(event.text.removeprefix("go "), asyncio.Event()).set()
        return [OutText(f"ok {event.text}")]


@pytest.fixture
async def scripted():
    core = ScriptedCore()
    harness = TgHarness.for_core(core)
    yield core, harness
    await harness.close()


async def test_failing_event_is_retried_then_failed_with_one_apology(scripted):
    core, harness = scripted
    user = harness.user()
    core.fail = True
    await user.send("первое")
    assert user.texts() == [ERROR_TEXT]
    assert len(core.events) == 3  # retried, then given up
    async with harness.sessions() as session:
        (event,) = list(await session.scalars(select(InboxEvent)))
    assert (event.status, event.attempts, event.error_type) == (
        InboxStatus.FAILED,
        3,
        "RuntimeError",
    )
    core.fail = False
    await user.send("второе")  # the chat is not blocked
    assert user.texts() == ["ok второе"]


async def test_chats_are_processed_concurrently(scripted):
    """Chat A waits inside the core until chat B's event ran: only possible concurrently."""
    core, harness = scripted
    anna, petr = harness.user(1, "Анна"), harness.user(2, "Пётр")
    core.waits["a"] = asyncio.Event()
    batch = [anna.text_update("a"), petr.text_update("go a")]
    await harness.feed_raw(
        [u.model_dump(mode="json", by_alias=True, exclude_none=True) for u in batch]
    )
    assert anna.texts() == ["ok a"] and petr.texts() == ["ok go a"]


async def test_prune_keeps_recent_keys(scripted):
    core, harness = scripted
    user = harness.user()
    old, recent = user.text_update("старое"), user.text_update("новое")
    await user.act_batch([old, recent])
    async with harness.sessions() as session:
        (first, _second) = list(await session.scalars(select(InboxEvent).order_by(InboxEvent.id)))
        first.received_at = utcnow() - inbox.KEEP_KEYS - timedelta(minutes=1)
        await session.commit()
        assert await inbox.prune(session) == 1
        await session.commit()
        left = list(await session.scalars(select(InboxEvent.event_key)))
        assert left == [str(recent.update_id)]
        assert await session.scalar(select(func.count()).select_from(OutboxMessage)) == 1
    await user.act_batch([recent])  # still recognised as a duplicate
    user.expect_silence()
    assert len(core.events) == 2


# --------------------------------------------------------------------------- several workers


class OrderCore:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    async def handle(self, event: Incoming) -> list[Outgoing]:
        self.seen.append((event.user.chat_id, event.text))
        await asyncio.sleep(0.01)
        return [OutText(f"ok {event.text}")]


@requires_postgres
@pytest.mark.parametrize("settings", ["postgres"], indirect=True)
async def test_two_workers_on_postgres_serve_each_event_once_in_chat_order(monkeypatch, settings):
    from bot.app import create_services

    async with temporary_database() as url:
        services = await create_services(settings, database_url=url)
        try:
            core = OrderCore()
            harness = TgHarness.for_core(core, services.sessions)
            users = [harness.user(2000 + n, f"Пользователь {n}") for n in range(3)]
            updates = [u.text_update(f"{u.user_id}-{i}") for i in range(5) for u in users]
            payloads = [
                u.model_dump(mode="json", by_alias=True, exclude_none=True) for u in updates
            ]
            workers = [
                Processor(services.sessions, {"tg": harness.channel}, core, retry_delay=0)
                for _ in range(2)
            ]
            await workers[0].accept(list(harness.channel.raw_events(payloads)))
            await asyncio.gather(*(w.drain() for w in workers))
            await asyncio.gather(*(w.drain() for w in workers))
            assert sorted(core.seen) == sorted(
                (str(u.user_id), f"{u.user_id}-{i}") for u in users for i in range(5)
            )
            for user in users:
                mine = [text for chat, text in core.seen if chat == str(user.user_id)]
                assert mine == [f"{user.user_id}-{i}" for i in range(5)]
                sent = [
                    c.text
                    for c in harness.session.calls_of(SendMessage)
                    if int(c.chat_id) == user.user_id
                ]
                assert sent == [f"ok {user.user_id}-{i}" for i in range(5)]
        finally:
            await services.close()


@requires_postgres
@pytest.mark.parametrize("settings", ["postgres"], indirect=True)
async def test_run_lock_on_postgres_refuses_a_second_holder(settings, tmp_path):
    from bot.runlock import AlreadyRunning, RunLock
    from storage.database import create_engine

    async with temporary_database() as url:
        first_engine, second_engine = create_engine(url), create_engine(url)
        first = RunLock(first_engine, tmp_path, ["tg-abc"])
        second = RunLock(second_engine, tmp_path, ["tg-abc"])
        try:
            await first.acquire()
            with pytest.raises(AlreadyRunning, match="уже запущен"):
                await second.acquire()
            await first.release()
            await second.acquire()  # free again once the first bot stopped
            await second.release()
        finally:
            await first_engine.dispose()
            await second_engine.dispose()


async def test_reply_to_a_user_who_blocked_the_bot_marks_the_account(services, region):
    harness = harness_for(services)
    user = harness.user(1001, "Анна")
    await user.send(f"/start {region.codes['S1']}")
    harness.session.fail_next(SendMessage, "Forbidden: bot was blocked by the user", 403)
    await user.send("/help")
    statuses = [r.status for r in await rows(services, OutboxMessage)]
    assert statuses[-1] == OutboxStatus.BLOCKED
    (account,) = await rows(services, Account)
    assert account.unreachable_since is not None
    await user.send("/help")  # writing again makes the account reachable again
    (account,) = await rows(services, Account)
    assert account.unreachable_since is None
