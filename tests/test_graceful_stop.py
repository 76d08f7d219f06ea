"""SIGTERM is a graceful stop: the runner cancels the polls, one of which may be storing
updates right then, and the processor lets the reply in flight finish and commits its sent
mark. A reply that reached the user is never sent again by the next process.

SQLite: a store cut off in the middle of its statement kept the database's one writer taken
until the process ended, so the sent mark of the reply in flight could not be committed and
the next process sent that reply again (seen in tests/test_token_rotation.py under load)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy import func, select

from bot.processor import Processor
from bot.runner import STOP_TIMEOUT_S
from bot.telegram import TelegramChannel, create_bot
from storage.models import InboxEvent, OutboxMessage, OutboxStatus
from tests.fake_bot_api import FakeBotApi
from tests.test_intake_runtime import until

USER = 5005
HELP = "/help — эта справка"


def help_replies(api: FakeBotApi) -> list[str]:
    return [s.text for s in api.sent if s.chat_id == USER and HELP in s.text]


def writer_taken(path: Path) -> bool:
    """Whether another connection holds SQLite's one writer now (asked without waiting)."""
    probe = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        probe.close()


@contextlib.asynccontextmanager
async def serving(
    services, api: FakeBotApi, base_url: str
) -> AsyncIterator[tuple[Processor, asyncio.Task]]:
    """A processor and a Telegram poll against the fake Bot API, as ``run_bot`` wires them;
    stopped gracefully (the processor's own bound) at the end."""
    channel = TelegramChannel(create_bot(api.token, base_url))
    processor = Processor(services.sessions, {"tg": channel}, services.conversation)
    processing = asyncio.create_task(processor.run())
    poll = asyncio.create_task(channel.poll(processor.sink))
    try:
        yield processor, poll
    finally:
        poll.cancel()
        await asyncio.gather(poll, return_exceptions=True)
        await processor.stop(STOP_TIMEOUT_S)
        await asyncio.wait_for(processing, 30)
        await channel.close()


async def store_cut_off(processor: Processor, updates: list[dict], path: Path) -> None:
    """Store updates as a poll does and cancel the store the moment its INSERT has run in
    aiosqlite's thread (the writer taken, the result not yet seen by the event loop): what
    the runner's cancelling a poll does when SIGTERM comes while it stores updates."""
    events = list(processor.channels["tg"].raw_events(updates))
    store = asyncio.create_task(processor.accept(events))
    while not writer_taken(path):
        assert not store.done(), "the store finished before it could be cut off"
        await asyncio.sleep(0)
    time.sleep(0.05)  # the event loop held: the statement completes meanwhile
    store.cancel()
    await asyncio.gather(store, return_exceptions=True)


async def test_a_store_cut_off_by_sigterm_never_makes_the_reply_in_flight_go_twice(
    services, region
):
    path = Path(services.engine.url.database or "")
    api = FakeBotApi()
    base_url = await api.start()
    try:
        async with serving(services, api, base_url) as (processor, poll):
            api.send_text(USER, f"/start {region.codes['S1']}")
            await api.reply(USER, "зарегистрированы", timeout=60)
            api.send_delay = 1.0
            sends = api.calls.count("sendmessage")
            api.send_text(USER, "/help")
            await until(lambda: api.calls.count("sendmessage") > sends, 60)  # in flight
            poll.cancel()  # SIGTERM: the polls stop first…
            await asyncio.gather(poll, return_exceptions=True)
            api.send_text(USER, "/help")
            api.send_text(USER, "/help")
            await store_cut_off(processor, api.unconfirmed[-2:], path)  # …one was storing
            assert not writer_taken(path)  # the sent mark of the reply in flight comes next
        # the graceful stop is over: the reply in flight went out once and is marked sent
        assert help_replies(api) == [help_replies(api)[0]]
        async with services.sessions() as session:
            statuses = list(await session.scalars(select(OutboxMessage.status)))
        assert statuses and set(statuses) == {OutboxStatus.SENT}

        api.send_delay = 0
        async with serving(services, api, base_url):  # the next process: the two updates, once each
            await until(lambda: len(help_replies(api)) >= 3, 60)
        assert len(help_replies(api)) == 3
        async with services.sessions() as session:
            stored = await session.scalar(select(func.count()).select_from(InboxEvent))
            statuses = list(await session.scalars(select(OutboxMessage.status)))
        assert stored == 4
        assert set(statuses) == {OutboxStatus.SENT}
    finally:
        await api.stop()
