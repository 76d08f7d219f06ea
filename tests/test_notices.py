"""Notices: a message from one person's action to another, queued in the event's transaction
and sent once by the reminder sender, to the preferred account, with a fall back."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from handlers.types import Button, OutText
from storage import notices
from storage.models import Account, Delivery, DeliveryStatus, Person
from tests.reminder_helpers import (
    TG,
    FixedClock,
    World,
    build_world,
    utc,
    world_database,
)
from tests.test_link_reminders import link, reminders

NOW = utc(2026, 3, 2, 9, 0)


@pytest.fixture(params=["sqlite", "postgres"])
async def world(request, tmp_path: Path):
    sessions, engine, drop = await world_database(request.param, tmp_path)
    w = await build_world(sessions, engine)
    yield w
    await drop()


async def queue(world: World, chat: str, text: str, key: str) -> bool:
    async with world.sessions() as session:
        message = OutText(text, [[Button("Открыть", "v|1")]])
        queued = await notices.notify(session, world.people[chat], message, key=key, now=NOW)
        await session.commit()
        return queued


async def test_a_notice_is_sent_once_with_its_buttons(world: World) -> None:
    assert await queue(world, "d1", "Анкета возвращена на доработку.", "returned:1:1")
    assert not await queue(world, "d1", "Анкета возвращена на доработку.", "returned:1:1")
    r, messengers = reminders(world, FixedClock(NOW))
    await r.tick()
    await r.tick()
    sent = [m for chat, m in messengers[TG].sent if chat == "d1"]
    assert [m.text for m in sent] == ["Анкета возвращена на доработку."]
    assert sent[0].buttons == [[Button("Открыть", "v|1")]]
    async with world.sessions() as session:
        rows = list(await session.scalars(select(Delivery).where(Delivery.kind == "notice")))
    assert [(r.status, r.person_id) for r in rows] == [(DeliveryStatus.SENT, world.people["d1"])]


async def test_a_blocked_account_falls_back_to_the_other_one(world: World) -> None:
    await link(world, "d1", "vk", "vk-d1")
    r, messengers = reminders(world, FixedClock(NOW))
    messengers[TG].blocked.add("d1")
    async with world.sessions() as session:  # Telegram was used last
        account = await session.get(Account, world.accounts["d1"])
        account.last_active_at = NOW
        await session.commit()
    assert await queue(world, "d1", "Школа отправила анкету.", "submitted:1:1")
    await r.tick()
    assert messengers["vk"].texts("vk-d1") == ["Школа отправила анкету."]


async def test_nobody_to_reach_queues_nothing(world: World) -> None:
    async with world.sessions() as session:
        person = await session.get(Person, world.people["d1"])
        person.removed_at = NOW
        await session.commit()
    assert not await queue(world, "d1", "Текст", "k:1")
