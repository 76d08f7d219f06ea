"""Replies carried in the Telegram webhook's HTTP answer (bot/handover.py): the real webhook
server, Telegram channel, processor and conversation, on SQLite and PostgreSQL. Telegram is
played by an aiohttp client on 127.0.0.1 that reads the answer's method."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiogram.methods import SendMessage
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from bot.handover import Handover
from bot.processor import Processor
from bot.telegram import SECRET_HEADER
from bot.webhook import create_app
from handlers.types import Button, Incoming, Outgoing, OutText
from storage import inbox
from storage.models import InboxEvent, OutboxMessage, OutboxStatus
from tests.pg import settings_on_both_databases
from tests.tg_harness import TgHarness, TgUser

settings = settings_on_both_databases()
SECRET = "answers-secret"
YES = [[Button("Да", "a|1")]]


@dataclass
class Webhook:
    harness: TgHarness
    processor: Processor
    server: TestServer
    http: aiohttp.ClientSession

    async def post(self, user: TgUser, update: Any) -> tuple[int, dict[str, str]]:
        """POST as Telegram does; the method fields of a multipart answer ({} for "ok")."""
        body = update.model_dump(mode="json", by_alias=True, exclude_none=True)
        user._cursor = len(user.session.calls)
        fields: dict[str, str] = {}
        async with self.http.post(
            self.server.make_url("/telegram"), json=body, headers={SECRET_HEADER: SECRET}
        ) as answer:
            if answer.content_type == "multipart/form-data":
                reader = aiohttp.MultipartReader.from_response(answer)
                while (part := await reader.next()) is not None:
                    assert isinstance(part, aiohttp.BodyPartReader)
                    fields[str(part.name)] = await part.text()
            else:
                assert (await answer.text()) == "ok"
            return answer.status, fields


@contextlib.asynccontextmanager
async def webhook(
    core: Any, sessions: Any, wait_s: float = 3.0, run: bool = True
) -> AsyncIterator[Webhook]:
    harness = TgHarness.for_core(core, sessions)
    channel = harness.channel
    channel.webhook_secret = SECRET
    handover = Handover(sessions, wait_s)
    channel.handover = handover
    processor = Processor(
        sessions, {"tg": channel}, core, retry_delay=0, idle_interval=0.05, handover=handover
    )
    harness.processor = processor
    server = TestServer(create_app([channel], processor.sink, sessions), host="127.0.0.1")
    await server.start_server()
    running = asyncio.create_task(processor.run()) if run else None
    try:
        async with aiohttp.ClientSession() as http:
            yield Webhook(harness, processor, server, http)
    finally:
        await processor.stop()
        if running is not None:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
        await server.close()


async def outbox(sessions) -> list[OutboxMessage]:
    async with sessions() as session:
        return list(await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


async def test_the_reply_rides_in_the_answer_and_a_redelivery_gets_it_again(services, region):
    async with webhook(services.conversation, services.sessions) as hook:
        user = hook.harness.user(5001, "Ирина")
        start = user.text_update(f"/start {region.codes['S1']}")
        status, fields = await hook.post(user, start)
        assert status == 200
        assert fields["method"] == "sendMessage"
        assert fields["chat_id"] == "5001"
        assert "зарегистрированы" in fields["text"]
        keyboard = json.loads(fields["reply_markup"])["inline_keyboard"]
        assert keyboard[0][0]["text"] == "▶ Начать заполнение"
        assert not user.session.calls_of(SendMessage)  # no Bot API call for it
        rows = await outbox(services.sessions)
        assert [r.status for r in rows] == [OutboxStatus.HANDED] * len(rows)

        # Telegram never got the answer (the process died): it delivers the update again
        again_status, again = await hook.post(user, start)
        assert (again_status, again) == (status, fields)
        assert len(await outbox(services.sessions)) == len(rows)  # not processed again
        assert not user.session.calls_of(SendMessage)
        async with services.sessions() as session:
            assert len(list(await session.scalars(select(InboxEvent)))) == 1

        # the conversation goes on, answered in the HTTP answer too
        _status, helped = await hook.post(user, user.text_update("/help"))
        assert helped["method"] == "sendMessage" and helped["text"] != fields["text"]
        assert not user.session.calls_of(SendMessage)


class Fixed:
    """A core with fixed replies (committed in the processor's transaction)."""

    def __init__(self, replies: list[Outgoing]) -> None:
        self.replies = replies

    async def handle_in(self, _session, _event: Incoming) -> list[Outgoing]:
        return list(self.replies)


async def test_several_texts_are_joined_in_one_answer(services):
    core = Fixed([OutText("Первое."), OutText("Второе?", YES)])
    async with webhook(core, services.sessions) as hook:
        user = hook.harness.user(5002)
        _status, fields = await hook.post(user, user.text_update("привет"))
        assert fields["text"] == "Первое.\n\nВторое?"


@pytest.mark.parametrize(
    "replies",
    [
        [OutText("Длинный ответ. " * 400)],  # several sendMessage calls
        [OutText("С кнопкой", YES), OutText("и ещё")],  # a keyboard in the middle would move
    ],
    ids=["too-long", "buttons-not-last"],
)
async def test_what_does_not_fit_one_message_goes_by_bot_api_calls(services, replies):
    async with webhook(Fixed(replies), services.sessions) as hook:
        user = hook.harness.user(5003)
        status, fields = await hook.post(user, user.text_update("привет"))
        assert (status, fields) == (200, {})
        sent = user.session.calls_of(SendMessage)
        assert len(sent) >= 2
        rows = await outbox(services.sessions)
        assert {r.status for r in rows} == {OutboxStatus.SENT}


async def test_an_event_not_served_in_time_is_answered_ok_and_replied_by_bot_api(services):
    async with webhook(Fixed([OutText("Позже")]), services.sessions, wait_s=0.3, run=False) as hook:
        user = hook.harness.user(5004)
        status, fields = await hook.post(user, user.text_update("привет"))
        assert (status, fields) == (200, {})  # nobody served it within the wait
        await hook.processor.drain()
        assert [c.text for c in user.session.calls_of(SendMessage)] == ["Позже"]
        assert [r.status for r in await outbox(services.sessions)] == [OutboxStatus.SENT]


class GivingUp(Handover):
    """The request gives up (its client went away) just after the processor took it."""

    request: asyncio.Task | None = None

    def take(self, platform: str, key: str):
        waiter = super().take(platform, key)
        assert self.request is not None
        self.request.cancel()
        return waiter


async def test_a_request_that_gave_up_after_its_reply_was_taken_gets_it_by_bot_api(services):
    handover = GivingUp(services.sessions, wait_s=5)
    harness = TgHarness.for_core(Fixed([OutText("Ответ")]), services.sessions)
    harness.channel.handover = handover
    processor = Processor(
        services.sessions, {"tg": harness.channel}, harness.core, handover=handover
    )
    harness.processor = processor
    user = harness.user(5005)
    update = user.text_update("привет").model_dump(mode="json", exclude_none=True)
    raw = list(harness.channel.raw_events([update]))
    await processor.accept(raw)
    handover.request = asyncio.create_task(
        handover.answer_for("tg", raw[0].key, "5005", True, lambda chat, rows: None)
    )
    await asyncio.sleep(0)  # the request waits
    await processor.drain()
    with contextlib.suppress(asyncio.CancelledError):
        assert await handover.request is None
    assert [c.text for c in user.session.calls_of(SendMessage)] == ["Ответ"]
    assert [r.status for r in await outbox(services.sessions)] == [OutboxStatus.SENT]


class ServedWhileLooking(Handover):
    """The processor takes and gives the answer while the request looks at the inbox."""

    async def _look(self, platform: str, key: str) -> inbox.HandedReply:
        waiter = self.take(platform, key)
        assert waiter is not None
        Handover.give(waiter, {"method": "sendMessage", "text": "Ответ"})
        return inbox.HandedReply(pending=False)  # the event is done by now


async def test_an_answer_given_while_the_request_looks_at_the_inbox_is_not_lost(services):
    handover = ServedWhileLooking(services.sessions, wait_s=2)
    answer = await handover.answer_for("tg", "1", "5006", True, lambda _c, _m: None)
    assert answer == {"method": "sendMessage", "text": "Ответ"}


class HandedElsewhere(Handover):
    """Another process handed the event's reply to an answer its client never got."""

    async def _look(self, platform: str, key: str) -> inbox.HandedReply:
        return inbox.HandedReply(False, "5007", [{"kind": "text", "text": "Ответ"}])


async def test_a_redelivery_waiting_here_gets_the_reply_handed_elsewhere(services):
    """Telegram gave up on the first request (its answer came too late) and delivered the
    update again while the first process was still serving it: the retry's answer is the
    handed reply, or nobody ever gets it."""
    handover = HandedElsewhere(services.sessions, wait_s=2)
    answer = await handover.answer_for("tg", "1", "5007", True, lambda chat, rows: (chat, rows))
    assert answer == ("5007", [{"kind": "text", "text": "Ответ"}])
