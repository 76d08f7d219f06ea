"""Reminders follow campaign management: none after close, the new deadline after extend."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from storage.admin import close_campaign, extend_campaign
from tests.reminder_helpers import (
    FakeMessenger,
    FixedClock,
    World,
    add_campaign,
    build_world,
    make_reminders,
    sqlite_db,
    utc,
)

DEADLINE = date(2023, 2, 15)
MORNING_KGD = utc(2023, 2, 8, 7, 0)  # 09:00 Kaliningrad, 7 days before the deadline


@pytest.fixture
async def world(tmp_path: Path):
    _, engine, sessions = await sqlite_db(tmp_path)
    yield await build_world(sessions, engine)
    await engine.dispose()


async def test_a_closed_campaign_gets_no_more_reminders(world: World) -> None:
    campaign_id = await add_campaign(world, DEADLINE, ["Школа 1"], title="Анкета А")
    clock = FixedClock(MORNING_KGD)
    messenger = FakeMessenger()
    reminders = make_reminders(world, clock, messenger)
    await reminders.tick()
    assert any("Анкета А" in t for t in messenger.texts("d1"))  # 7 days before: sent
    async with world.sessions() as session:
        await close_campaign(session, campaign_id)
        await session.commit()
    for days in (4, 6, 7, 8):  # 3 and 1 days before, the day, the day after
        clock.set(MORNING_KGD + timedelta(days=days))
        await reminders.tick()
    assert sum("Анкета А" in t for t in messenger.texts("d1")) == 1
    assert not any("Анкета А" in t for t in messenger.texts("m1"))  # no overdue digest


async def test_an_extended_campaign_is_reminded_of_the_new_deadline_only(world: World) -> None:
    campaign_id = await add_campaign(world, DEADLINE, ["Школа 1"], title="Анкета А")
    clock = FixedClock(MORNING_KGD)
    messenger = FakeMessenger()
    reminders = make_reminders(world, clock, messenger)
    await reminders.tick()  # plans 7, 3, 1, 0 days before 15.02
    async with world.sessions() as session:
        await extend_campaign(session, campaign_id, date(2023, 3, 1), date(2023, 2, 8))
        await session.commit()
    before = len(messenger.texts("d1"))
    for days in (4, 6, 7):  # 3 and 1 days before the old deadline, and the old day
        clock.set(MORNING_KGD + timedelta(days=days))
        await reminders.tick()
    assert len(messenger.texts("d1")) == before
    clock.set(utc(2023, 2, 22, 7, 0))  # 7 days before the new deadline
    await reminders.tick()
    late = [t for t in messenger.texts("d1")[before:] if "Анкета А" in t]
    assert len(late) == 1 and "1 марта" in late[0]


async def test_reminders_planned_for_the_old_deadline_are_cancelled_on_extend(
    world: World,
) -> None:
    campaign_id = await add_campaign(world, DEADLINE, ["Школа 1"], title="Анкета А")
    messenger = FakeMessenger()
    reminders = make_reminders(world, FixedClock(MORNING_KGD), messenger)
    pending, _missed = await reminders.plan(MORNING_KGD)  # planned, not yet sent
    assert pending
    async with world.sessions() as session:
        await extend_campaign(session, campaign_id, date(2023, 3, 1), date(2023, 2, 8))
        await session.commit()
    await reminders.tick()
    assert not any("Анкета А" in t for t in messenger.texts("d1"))
