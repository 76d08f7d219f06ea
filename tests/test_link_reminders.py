"""Reminders for a person on several platforms: the platform used last, the chosen one,
and a fallback to the person's other accounts when one is unreachable."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from scheduler.reminders import Reminders
from scheduler.sender import Sender
from storage.models import Account, Delivery, DeliveryStatus, Person
from tests.reminder_helpers import (
    TG,
    FakeMessenger,
    FixedClock,
    JumpClock,
    World,
    add_roadmap,
    build_world,
    roadmap,
    settings,
    utc,
    world_database,
)

ITEMS = [("2", "Входной мониторинг", "01.02-15.02.2023", ["director"])]
MORNING_KGD = utc(2023, 2, 8, 7, 0)  # 09:00 Kaliningrad, 7 days before 15.02
EARLIER = utc(2023, 2, 7, 12, 0)


@pytest.fixture(params=["sqlite", "postgres"])
async def world(request, tmp_path: Path):
    sessions, engine, drop = await world_database(request.param, tmp_path)
    w = await build_world(sessions, engine)
    await add_roadmap(w, roadmap(ITEMS, region=None))
    await link(w, "d1", "vk", "vk-d1")
    await link(w, "d1", "max", "max-d1")
    yield w
    await drop()


async def link(world: World, chat: str, platform: str, other_chat: str) -> None:
    """Another platform's account for the person behind ``chat`` (as /link creates it)."""
    async with world.sessions() as session:
        account = Account(
            person_id=world.people[chat],
            platform=platform,
            platform_user_id=other_chat,
            chat_id=other_chat,
            created_at=utc(2023, 2, 1),  # linked later than the person registered
        )
        session.add(account)
        await session.flush()
        world.accounts[other_chat] = account.id
        await session.commit()


async def used(world: World, **moments) -> None:
    async with world.sessions() as session:
        for chat, moment in moments.items():
            account = await session.get(Account, world.accounts[chat.replace("_", "-")])
            account.last_active_at = moment
        await session.commit()


async def choose(world: World, chat: str, platform: str | None) -> None:
    async with world.sessions() as session:
        person = await session.get(Person, world.people[chat])
        person.notify_platform = platform
        await session.commit()


def reminders(world: World, clock: FixedClock) -> tuple[Reminders, dict[str, FakeMessenger]]:
    messengers = {TG: FakeMessenger(), "vk": FakeMessenger(), "max": FakeMessenger()}
    config = settings()
    jump = JumpClock()
    sender = Sender(
        messengers,
        rate_per_s=config.rate_per_s,
        per_chat_per_s=config.per_chat_per_s,
        sessions=world.sessions,
        clock=jump.clock,
        sleep=jump.sleep,
        now=clock,
    )
    return Reminders(world.sessions, sender, config, clock=clock), messengers


def d1_chats(messengers: dict[str, FakeMessenger]) -> list[tuple[str, str]]:
    return [
        (platform, chat)
        for platform, m in messengers.items()
        for chat in m.chats()
        if chat.endswith("d1")
    ]


async def d1_deliveries(world: World) -> list[Delivery]:
    ids = [world.accounts[c] for c in ("d1", "vk-d1", "max-d1")]
    async with world.sessions() as session:
        return list(await session.scalars(select(Delivery).where(Delivery.account_id.in_(ids))))


async def test_the_reminder_goes_to_the_platform_used_last(world: World) -> None:
    await used(world, d1=EARLIER, vk_d1=EARLIER + timedelta(hours=2), max_d1=EARLIER)
    r, messengers = reminders(world, FixedClock(MORNING_KGD))
    await r.tick()
    assert d1_chats(messengers) == [("vk", "vk-d1")]
    assert "Входной мониторинг" in messengers["vk"].texts("vk-d1")[0]
    assert messengers[TG].texts("d2")  # people with one account are reminded as before


async def test_without_activity_the_person_gets_one_message(world: World) -> None:
    r, messengers = reminders(world, FixedClock(MORNING_KGD))
    await r.tick()
    # never active on any platform: still one message, not one per account
    assert len(d1_chats(messengers)) == 1


async def test_the_chosen_platform_wins_over_the_last_used(world: World) -> None:
    await used(world, d1=EARLIER, vk_d1=EARLIER + timedelta(hours=2), max_d1=EARLIER)
    await choose(world, "d1", "max")
    r, messengers = reminders(world, FixedClock(MORNING_KGD))
    await r.tick()
    assert d1_chats(messengers) == [("max", "max-d1")]


async def test_an_unreachable_chosen_account_falls_back_to_the_last_used(world: World) -> None:
    await used(world, d1=EARLIER + timedelta(hours=3), vk_d1=EARLIER, max_d1=EARLIER)
    await choose(world, "d1", "max")
    async with world.sessions() as session:
        account = await session.get(Account, world.accounts["max-d1"])
        account.unreachable_since = EARLIER
        await session.commit()
    r, messengers = reminders(world, FixedClock(MORNING_KGD))
    await r.tick()
    assert d1_chats(messengers) == [(TG, "d1")]


async def test_blocked_at_send_time_falls_back_to_the_other_account(world: World) -> None:
    await used(world, d1=EARLIER, vk_d1=EARLIER + timedelta(hours=2), max_d1=None)
    r, messengers = reminders(world, FixedClock(MORNING_KGD))
    messengers["vk"].blocked.add("vk-d1")
    stats = await r.tick()
    assert d1_chats(messengers) == [(TG, "d1")]
    assert stats.unreachable == 0
    rows = await d1_deliveries(world)
    assert {(r.status, r.account_id, r.platform) for r in rows} == {
        (DeliveryStatus.SENT, world.accounts["d1"], TG)
    }
    async with world.sessions() as session:
        vk_account = await session.get(Account, world.accounts["vk-d1"])
        assert vk_account.unreachable_since is not None


async def test_blocked_after_planning_is_redirected_before_sending(world: World) -> None:
    await used(world, d1=EARLIER, vk_d1=EARLIER + timedelta(hours=2), max_d1=None)
    clock = FixedClock(MORNING_KGD)
    r, messengers = reminders(world, clock)
    planned, _missed = await r.plan(MORNING_KGD)
    assert planned
    async with world.sessions() as session:
        account = await session.get(Account, world.accounts["vk-d1"])
        account.unreachable_since = MORNING_KGD
        await session.commit()
    await r.send_due()
    assert d1_chats(messengers) == [(TG, "d1")]


async def test_switching_platforms_between_passes_does_not_repeat_a_reminder(
    world: World,
) -> None:
    await used(world, d1=EARLIER, vk_d1=EARLIER + timedelta(hours=2), max_d1=None)
    clock = FixedClock(MORNING_KGD)
    r, messengers = reminders(world, clock)
    await r.tick()
    await used(world, d1=MORNING_KGD + timedelta(minutes=5))
    clock.set(MORNING_KGD + timedelta(minutes=30))
    again, more = reminders(world, clock)
    stats = await again.tick()
    assert stats.planned == 0
    assert d1_chats(messengers) == [("vk", "vk-d1")] and d1_chats(more) == []
