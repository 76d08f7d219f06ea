"""Group commit in the durable intake: the events of several chats in one transaction, each in
its own savepoint; replies only after the commit. The real Telegram channel over a recording
Bot API, the real Conversation where the effects matter; SQLite, and PostgreSQL when set."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import pytest
from aiogram.methods import SendMessage
from aiogram.types import Document
from sqlalchemy import func, select

from bot.processor import ERROR_TEXT, Processor
from bot.telegram import TelegramFileFetcher
from handlers.types import EventKind, Incoming, Outgoing, OutText
from storage.models import Account, Answer, InboxEvent, InboxStatus
from tests.pg import requires_postgres, settings_on_both_databases, temporary_database
from tests.tg_harness import TgHarness
from tests.walk import response_of

settings = settings_on_both_databases()


def raw(updates) -> list[dict[str, Any]]:
    return [u.model_dump(mode="json", by_alias=True, exclude_none=True) for u in updates]


def sent_to(harness: TgHarness, chat_id: int) -> list[str]:
    return [c.text for c in harness.session.calls_of(SendMessage) if int(c.chat_id) == chat_id]


async def inbox_rows(sessions) -> list[InboxEvent]:
    async with sessions() as session:
        return list(await session.scalars(select(InboxEvent).order_by(InboxEvent.id)))


async def count(sessions, model) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


class Conversing:
    """The real conversation inside the processor's transaction. ``fail``: (chat, text) that
    raise after their effects were written; ``hold_at``: the call that never returns (the
    process dies there)."""

    def __init__(self, conversation) -> None:
        self.conversation = conversation
        self.sessions = conversation.sessions
        self.calls: list[tuple[str, str]] = []
        self.fail: set[tuple[str, str]] = set()
        self.hold_at: int | None = None
        self.held = asyncio.Event()

    async def handle_in(self, session, event: Incoming) -> list[Outgoing]:
        self.calls.append((event.user.chat_id, event.text))
        if self.hold_at == len(self.calls):
            self.held.set()
            await asyncio.Event().wait()
        out = await self.conversation.handle_in(session, event)
        await session.flush()  # the effects are in the database (in the savepoint)
        if (event.user.chat_id, event.text) in self.fail:
            raise RuntimeError("boom")
        return out


class Recording:
    """A core in the processor's transaction that answers ``ok <text>`` and records the order;
    a file waits until ``release`` is set."""

    def __init__(self, sessions) -> None:
        self.sessions = sessions
        self.seen: list[tuple[str, str]] = []
        self.release = asyncio.Event()
        self.gates: dict[str, asyncio.Event] = {}  # text -> opened when it may finish
        self.entered: dict[str, asyncio.Event] = defaultdict(asyncio.Event)

    async def handle_in(self, _session, event: Incoming) -> list[Outgoing]:
        self.seen.append((event.user.chat_id, event.text))
        self.entered[event.text].set()
        if event.text in self.gates:
            await asyncio.wait_for(self.gates[event.text].wait(), 5)
        if event.kind == EventKind.DOCUMENT:
            await asyncio.wait_for(self.release.wait(), 5)
            return [OutText("ok file")]
        await asyncio.sleep(0.002)
        return [OutText(f"ok {event.text}")]


def harness_around(services, core) -> TgHarness:
    harness = TgHarness.for_core(core, services.sessions)
    services.conversation.register_fetcher("tg", TelegramFileFetcher(harness.bot))
    return harness


async def directors_at_first_question(harness: TgHarness, region, schools: list[str]):
    users = []
    for n, school in enumerate(schools):
        user = harness.user(3001 + n, f"Директор {n}")
        await user.send(f"/start {region.codes[school]}")
        user.expect("зарегистрированы")
        await user.click("▶ Начать заполнение")
        users.append(user)
    return users


# --------------------------------------------------------------------------- one fails


async def test_one_failing_event_rolls_back_alone_and_the_batch_is_answered(services, region):
    core = Conversing(services.conversation)
    harness = harness_around(services, core)
    anna, boris, vera = await directors_at_first_question(harness, region, ["S1", "S2", "U1"])
    core.fail.add((str(boris.chat_id), "20"))
    core.calls.clear()

    await harness.feed_raw(raw([u.text_update("20") for u in (anna, boris, vera)]))

    for user in (anna, vera):
        assert [t for t in sent_to(harness, user.chat_id) if "Сохранено" in t] != []
        assert ERROR_TEXT not in sent_to(harness, user.chat_id)
    assert sent_to(harness, boris.chat_id).count(ERROR_TEXT) == 1  # the apology, once
    assert not [t for t in sent_to(harness, boris.chat_id) if "Сохранено" in t]
    # the others ran once; the failing one was tried again (alone) and then given up
    assert core.calls.count((str(anna.chat_id), "20")) == 1
    assert core.calls.count((str(vera.chat_id), "20")) == 1
    assert core.calls.count((str(boris.chat_id), "20")) == 3
    # its answer was rolled back, the others' kept
    assert await count(services.sessions, Answer) == 2
    boris_response = await response_of(services, region.school_ids["S2"])
    assert boris_response is None or not [a for a in await answers_of(services, boris_response.id)]
    rows = (await inbox_rows(services.sessions))[-3:]
    by_chat = {r.chat_id: r for r in rows}
    failed = by_chat[str(boris.chat_id)]
    assert (failed.status, failed.attempts, failed.error_type) == (
        InboxStatus.FAILED,
        3,
        "RuntimeError",
    )
    done = [by_chat[str(u.chat_id)] for u in (anna, vera)]
    assert [(r.status, r.attempts) for r in done] == [(InboxStatus.DONE, 1)] * 2
    assert done[0].processed_at == done[1].processed_at  # one commit for both

    core.fail.clear()
    await boris.send("20")  # the chat is not blocked
    boris.expect("Сохранено")


async def answers_of(services, response_id: int) -> list[Answer]:
    async with services.sessions() as session:
        return list(await session.scalars(select(Answer).where(Answer.response_id == response_id)))


# --------------------------------------------------------------------------- order


async def test_each_chat_in_order_within_and_across_batches(services):
    core = Recording(services.sessions)
    harness = TgHarness.for_core(core, services.sessions)
    users = [harness.user(4001 + n, f"Пользователь {n}") for n in range(4)]
    updates = [u.text_update(f"{u.user_id}-{i}") for i in range(5) for u in users]
    await harness.feed_raw(raw(updates))

    for user in users:
        mine = [text for chat, text in core.seen if chat == str(user.user_id)]
        assert mine == [f"{user.user_id}-{i}" for i in range(5)]
        assert sent_to(harness, user.user_id) == [f"ok {user.user_id}-{i}" for i in range(5)]
    commits: dict[Any, list[str | None]] = defaultdict(list)
    for row in await inbox_rows(services.sessions):
        assert (row.status, row.attempts) == (InboxStatus.DONE, 1)
        commits[row.processed_at].append(row.chat_id)
    # several chats share a commit, and a commit never holds two events of one chat
    assert max(len(chats) for chats in commits.values()) > 1
    assert all(len(chats) == len(set(chats)) for chats in commits.values())


# --------------------------------------------------------------------------- crash


async def test_batch_killed_before_commit_acknowledges_nothing(services, region):
    core = Conversing(services.conversation)
    core.hold_at = 2  # the first event is done (its savepoint released), the second hangs
    harness = harness_around(services, core)
    anna, boris = harness.user(5001, "Анна"), harness.user(5002, "Борис")
    updates = [anna.text_update(f"/start {region.codes['S1']}")]
    updates.append(boris.text_update(f"/start {region.codes['S2']}"))
    first = Processor(services.sessions, {"tg": harness.channel}, core, retry_delay=0)
    await first.accept(list(harness.channel.raw_events(raw(updates))))
    draining = asyncio.create_task(first.drain())
    await asyncio.wait_for(core.held.wait(), 5)
    await first.stop(timeout=0)  # killed mid-batch: its transaction never commits
    draining.cancel()
    await asyncio.gather(draining, return_exceptions=True)

    assert await count(services.sessions, Account) == 0  # the first event's effects too
    assert sent_to(harness, 5001) == [] and sent_to(harness, 5002) == []
    rows = await inbox_rows(services.sessions)
    assert [(r.status, r.attempts) for r in rows] == [(InboxStatus.PENDING, 1)] * 2

    restarted = Processor(
        services.sessions, {"tg": harness.channel}, services.conversation, retry_delay=0
    )
    await restarted.drain()
    for chat in (5001, 5002):
        assert len([t for t in sent_to(harness, chat) if "зарегистрированы" in t]) == 1
    assert await count(services.sessions, Account) == 2
    rows = await inbox_rows(services.sessions)
    assert [r.status for r in rows] == [InboxStatus.DONE] * 2


# --------------------------------------------------------------------------- files


class SendWatch:
    """The Telegram channel, telling when a reply to ``chat_id`` was sent."""

    def __init__(self, channel, chat_id: str, sent: asyncio.Event) -> None:
        self.channel = channel
        self.chat_id = chat_id
        self.sent = sent

    def __getattr__(self, name: str) -> Any:
        return getattr(self.channel, name)

    async def send(self, chat_id: str, message: Outgoing, *, dedup: str | None = None) -> Any:
        result = await self.channel.send(chat_id, message, dedup=dedup)
        if chat_id == self.chat_id:
            self.sent.set()
        return result


async def test_a_file_goes_alone_and_does_not_hold_the_batch(services):
    """The file's handling waits for the other chat's reply: only possible if that reply is
    sent while the file is still being handled, outside the batch's transaction."""
    core = Recording(services.sessions)
    harness = TgHarness.for_core(core, services.sessions)
    anna, boris = harness.user(6001, "Анна"), harness.user(6002, "Борис")
    harness.session.files["doc-1"] = b"%PDF-1.4\n%%EOF\n"
    document = Document(file_id="doc-1", file_unique_id="u-doc-1", file_name="a.pdf")
    updates = [boris.message_update(document=document), anna.text_update("текст")]
    channel = SendWatch(harness.channel, "6001", core.release)
    processor = Processor(services.sessions, {"tg": channel}, core, retry_delay=0)
    await processor.accept(list(channel.raw_events(raw(updates))))
    await asyncio.wait_for(processor.drain(), 10)

    assert sent_to(harness, 6001) == ["ok текст"]
    assert sent_to(harness, 6002) == ["ok file"]
    assert len(core.seen) == 2  # nothing timed out, nothing was retried
    rows = await inbox_rows(services.sessions)
    assert [(r.status, r.attempts) for r in rows] == [(InboxStatus.DONE, 1)] * 2


# --------------------------------------------------------------------------- several workers


@requires_postgres
@pytest.mark.parametrize("settings", ["postgres"], indirect=True)
async def test_two_batching_workers_on_postgres_share_chats_safely(settings):
    from bot.app import create_services

    async with temporary_database() as url:
        services = await create_services(settings, database_url=url)
        try:
            core = Recording(services.sessions)
            harness = TgHarness.for_core(core, services.sessions)
            users = [harness.user(7001 + n, f"Пользователь {n}") for n in range(6)]
            updates = [u.text_update(f"{u.user_id}-{i}") for i in range(4) for u in users]
            workers = [
                Processor(
                    services.sessions,
                    {"tg": harness.channel},
                    core,
                    retry_delay=0,
                    batch_size=3,
                    concurrency=2,
                )
                for _ in range(2)
            ]
            await workers[0].accept(list(harness.channel.raw_events(raw(updates))))
            await asyncio.gather(*(w.drain() for w in workers))
            await asyncio.gather(*(w.drain() for w in workers))

            assert sorted(core.seen) == sorted(
                (str(u.user_id), f"{u.user_id}-{i}") for u in users for i in range(4)
            )
            for user in users:
                mine = [text for chat, text in core.seen if chat == str(user.user_id)]
                assert mine == [f"{user.user_id}-{i}" for i in range(4)]
                assert sent_to(harness, user.user_id) == [
                    f"ok {user.user_id}-{i}" for i in range(4)
                ]
            rows = await inbox_rows(services.sessions)
            assert {(r.status, r.attempts) for r in rows} == {(InboxStatus.DONE, 1)}
        finally:
            await services.close()


async def until(predicate, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


class HeldSend:
    """The Telegram channel; a reply whose text is ``held`` waits until ``opened``."""

    def __init__(self, channel, held: str) -> None:
        self.channel = channel
        self.held = held
        self.waiting = asyncio.Event()
        self.opened = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.channel, name)

    async def send(self, chat_id: str, message: Outgoing, *, dedup: str | None = None) -> Any:
        if isinstance(message, OutText) and message.text == self.held:
            self.waiting.set()
            await asyncio.wait_for(self.opened.wait(), 5)
        return await self.channel.send(chat_id, message, dedup=dedup)


async def test_a_chat_let_go_early_is_never_served_by_two_batches(services):
    """A batch lets its chats go once their replies are sent, while its file is still being
    handled; when that batch ends later, the chat (meanwhile another batch's) stays taken:
    its reply being sent is not sent a second time."""
    core = Recording(services.sessions)
    harness = TgHarness.for_core(core, services.sessions)
    anna, boris, vera = (harness.user(8001 + n, name) for n, name in enumerate("АБВ"))
    harness.session.files["doc-1"] = b"%PDF-1.4\n%%EOF\n"
    document = Document(file_id="doc-1", file_unique_id="u-doc-1", file_name="a.pdf")
    channel = HeldSend(harness.channel, "ok 2")
    processor = Processor(services.sessions, {"tg": channel}, core, idle_interval=0.05)

    async def accept(*updates) -> None:
        await processor.accept(list(channel.raw_events(raw(updates))))

    running = asyncio.create_task(processor.run())
    try:
        await accept(boris.message_update(document=document), anna.text_update("1"))
        await until(lambda: sent_to(harness, 8001) == ["ok 1"])  # Anna let go, the file waits
        await accept(anna.text_update("2"))
        await asyncio.wait_for(channel.waiting.wait(), 5)  # the next batch is sending it
        core.release.set()
        await until(lambda: sent_to(harness, 8002) == ["ok file"])  # the first batch ends
        await accept(vera.text_update("3"))  # the processor looks for work again
        await until(lambda: sent_to(harness, 8003) == ["ok 3"])
        channel.opened.set()
        await until(lambda: len(sent_to(harness, 8001)) >= 2)
        await processor.stop()
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)

    assert sent_to(harness, 8001) == ["ok 1", "ok 2"]
    assert core.seen.count(("8001", "2")) == 1
    rows = await inbox_rows(services.sessions)
    assert {(r.status, r.attempts) for r in rows} == {(InboxStatus.DONE, 1)}


class Killing(Recording):
    """The process dies (is stopped mid-event) whenever it handles ``fatal``."""

    def __init__(self, sessions, fatal: str) -> None:
        super().__init__(sessions)
        self.fatal = fatal

    async def handle_in(self, session, event: Incoming) -> list[Outgoing]:
        if event.text == self.fatal:
            self.seen.append((event.user.chat_id, event.text))
            self.entered[event.text].set()
            await asyncio.Event().wait()
        return await super().handle_in(session, event)


async def test_an_event_that_kills_the_process_is_given_up_without_its_batch_mates(services):
    core = Killing(services.sessions, "смертельное")
    harness = TgHarness.for_core(core, services.sessions)
    anna, boris, vera = (harness.user(9001 + n, name) for n, name in enumerate("АБВ"))
    updates = [anna.text_update("1"), boris.text_update("смертельное"), vera.text_update("3")]
    first = True
    for _run in range(5):  # the first batch dies; then each restart dies on the fatal event
        processor = Processor(services.sessions, {"tg": harness.channel}, core, retry_delay=0)
        if first:
            await processor.accept(list(harness.channel.raw_events(raw(updates))))
            first = False
        core.entered["смертельное"].clear()
        draining = asyncio.create_task(processor.drain())
        done, _ = await asyncio.wait(
            [draining, asyncio.create_task(core.entered["смертельное"].wait())],
            timeout=5,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if draining in done:
            break  # nothing died this time
        await processor.stop(timeout=0)  # killed
        draining.cancel()
        await asyncio.gather(draining, return_exceptions=True)

    rows = {r.chat_id: r for r in await inbox_rows(services.sessions)}
    assert rows["9002"].status == InboxStatus.FAILED
    assert sent_to(harness, 9002) == [ERROR_TEXT]  # the apology, once
    assert rows["9002"].attempts == 4  # the batch's try, two retries alone, the give-up
    for chat, text in (("9001", "ok 1"), ("9003", "ok 3")):
        # counted with the batch that died, then once on their own
        assert (rows[chat].status, rows[chat].attempts) == (InboxStatus.DONE, 2)
        assert sent_to(harness, int(chat)) == [text]  # answered once, never apologised


async def test_a_chunks_replies_are_marked_sent_before_the_next_chunk_runs(services, monkeypatch):
    """A batch over its time budget commits in chunks. Each chunk's sent marks are committed
    as soon as its replies are out, not when the whole batch ends: a process killed in a
    later chunk must not leave replies that went out looking unsent (another worker would
    send them again)."""
    from bot import processor as processor_module
    from storage.models import OutboxMessage, OutboxStatus

    monkeypatch.setattr(processor_module, "BATCH_BUDGET_S", 0.0)  # one event a chunk
    core = Recording(services.sessions)
    core.gates["2"] = asyncio.Event()
    harness = TgHarness.for_core(core, services.sessions)
    anna, boris = harness.user(8101, "Анна"), harness.user(8102, "Борис")
    processor = Processor(services.sessions, {"tg": harness.channel}, core)
    await processor.accept(
        list(harness.channel.raw_events(raw([anna.text_update("1"), boris.text_update("2")])))
    )
    draining = asyncio.create_task(processor.drain())
    try:
        await asyncio.wait_for(core.entered["2"].wait(), 5)  # the second chunk runs
        assert sent_to(harness, 8101) == ["ok 1"]
        async with services.sessions() as session:
            statuses = list(await session.scalars(select(OutboxMessage.status)))
        assert statuses == [OutboxStatus.SENT]
    finally:
        core.gates["2"].set()
        await asyncio.wait_for(draining, 10)
    assert sent_to(harness, 8102) == ["ok 2"]


async def statuses_by_text(sessions) -> dict[str, str]:
    from storage.models import OutboxMessage

    async with sessions() as session:
        rows = await session.scalars(select(OutboxMessage))
        return {row.message["text"]: str(row.status) for row in rows}


async def test_a_reply_sent_is_marked_while_a_slow_chat_of_its_chunk_still_sends(services):
    """The chats of one chunk send at once; one is slow (the token's budget, a slow API).
    The replies that went out meanwhile are marked sent within a moment, not after the
    slowest one: a process killed while it waits must not leave them looking unsent."""
    core = Recording(services.sessions)
    harness = TgHarness.for_core(core, services.sessions)
    anna, boris = harness.user(8201, "Анна"), harness.user(8202, "Борис")
    channel = HeldSend(harness.channel, "ok 2")
    processor = Processor(services.sessions, {"tg": channel}, core)
    await processor.accept(
        list(channel.raw_events(raw([anna.text_update("1"), boris.text_update("2")])))
    )
    draining = asyncio.create_task(processor.drain())
    try:
        await asyncio.wait_for(channel.waiting.wait(), 5)  # Boris's reply is being sent
        async with asyncio.timeout(2):
            while (await statuses_by_text(services.sessions)).get("ok 1") != "sent":
                await asyncio.sleep(0.02)
        assert (await statuses_by_text(services.sessions))["ok 2"] == "pending"
    finally:
        channel.opened.set()
        await asyncio.wait_for(draining, 10)
    assert await statuses_by_text(services.sessions) == {"ok 1": "sent", "ok 2": "sent"}
