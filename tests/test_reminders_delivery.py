"""Exactly once: restarts, downtime (grace window, missed), stale claims, blocked people,
several processes claiming at once (SQLite here, PostgreSQL when TEST_POSTGRES_URL is set)."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from scheduler.reminders import INTERRUPTED, Reminders, delivery_report
from storage.database import create_engine, create_sessionmaker
from storage.models import Account, Delivery, DeliveryStatus, Person, School
from tests.reminder_helpers import (
    TG,
    FakeMessenger,
    FixedClock,
    World,
    add_campaign,
    add_roadmap,
    build_world,
    make_reminders,
    postgres_db,
    postgres_engine,
    roadmap,
    sqlite_db,
    utc,
)

ITEMS = [
    ("1", "Назначить ответственных", "До 15.02.2023", ["director", "municipal"]),
    ("2", "Входной мониторинг", "01.02-15.02.2023", ["director"]),
]
MORNING_KGD = utc(2023, 2, 8, 7, 0)  # 09:00 Kaliningrad, 7 days before 15.02


@pytest.fixture
async def world(tmp_path: Path):
    _, engine, sessions = await sqlite_db(tmp_path)
    w = await build_world(sessions, engine)
    await add_roadmap(w, roadmap(ITEMS, region=None))
    yield w
    await engine.dispose()


async def statuses(world: World) -> Counter:
    async with world.sessions() as session:
        return Counter(await session.scalars(select(Delivery.status)))


async def test_restart_between_ticks_sends_nothing_twice(world: World) -> None:
    clock = FixedClock(MORNING_KGD)
    messenger = FakeMessenger()
    first = make_reminders(world, clock, messenger)
    stats = await first.tick()
    sent = len(messenger.sent)
    assert stats.sent >= sent > 0
    for minutes in (1, 2, 30, 240):  # a new process each time, same morning
        clock.set(MORNING_KGD + timedelta(minutes=minutes))
        again = make_reminders(world, clock, messenger)
        stats = await again.tick()
        assert stats.sent == 0 and stats.planned == 0
    assert len(messenger.sent) == sent
    assert max(Counter(messenger.chats()).values()) == 1
    counts = await statuses(world)
    assert counts[DeliveryStatus.SENT] == stats.sent or counts[DeliveryStatus.SENT] >= sent
    assert set(counts) == {DeliveryStatus.SENT}


async def test_late_start_inside_the_grace_window_sends_once(world: World) -> None:
    clock = FixedClock(utc(2023, 2, 8, 10, 30))  # down since before 09:00; now 12:30 KGD
    messenger = FakeMessenger()
    reminders = make_reminders(world, clock, messenger)
    stats = await reminders.tick()
    # Kaliningrad (window until 13:00 local = 11:00 UTC): sent late.
    # Moscow (09:00 = 06:00 UTC, window until 10:00 UTC): missed, never sent.
    assert sorted(c for c in messenger.chats() if c.startswith("d")) == ["d1", "d2", "d3", "d4"]
    assert stats.missed > 0
    clock.set(utc(2023, 2, 8, 10, 45))
    await make_reminders(world, clock, messenger).tick()
    assert "d5" not in messenger.chats()
    async with world.sessions() as session:
        report = await delivery_report(session)
    assert report.counts[DeliveryStatus.MISSED] == 6  # d5, m3, r2: both items each
    assert {chat for d, chat in report.problems} == {"d5", "m3", "r2"}


async def test_downtime_past_the_window_marks_missed_and_never_sends(world: World) -> None:
    clock = FixedClock(MORNING_KGD)
    messenger = FakeMessenger()
    reminders = make_reminders(world, clock, messenger)
    # planned but the process died before sending (e.g. rows claimed by nobody)
    await reminders.plan(MORNING_KGD)
    assert (await statuses(world))[DeliveryStatus.PENDING] > 0
    clock.set(utc(2023, 2, 8, 15, 0))  # 17:00 KGD: the window closed at 13:00
    stats = await make_reminders(world, clock, messenger).tick()
    assert messenger.sent == []
    assert stats.missed > 0
    assert set(await statuses(world)) == {DeliveryStatus.MISSED}
    clock.set(utc(2023, 2, 12, 7, 0))  # the next offset (3 days) works as usual
    await make_reminders(world, clock, messenger).tick()
    assert "d1" in messenger.chats()


async def test_days_of_downtime_are_recorded_as_missed(world: World) -> None:
    clock = FixedClock(utc(2023, 2, 13, 7, 0))  # down on 08.02 and 12.02 (7 and 3 days)
    messenger = FakeMessenger()
    stats = await make_reminders(world, clock, messenger, missed_lookback_days=3).tick()
    assert messenger.sent == []
    assert stats.missed > 0
    async with world.sessions() as session:
        missed = list(
            await session.scalars(select(Delivery).where(Delivery.status == DeliveryStatus.MISSED))
        )
    assert {d.offset_days for d in missed} == {3}  # 08.02 is beyond the 3-day lookback


async def test_stale_claims_of_a_dead_process(world: World) -> None:
    clock = FixedClock(MORNING_KGD)
    messenger = FakeMessenger()
    dead = make_reminders(world, clock, messenger, claimer="dead")
    await dead.plan(MORNING_KGD)
    ids = await dead.claim(MORNING_KGD, limit=1000)
    d1, d2 = world.accounts["d1"], world.accounts["d2"]
    async with world.sessions() as session:  # d2's message was handed to Telegram, d1's not
        await session.execute(update(Delivery).where(Delivery.account_id == d2).values(attempts=1))
        await session.commit()
    assert ids
    clock.set(MORNING_KGD + timedelta(minutes=5))  # younger than the claim timeout
    alive = make_reminders(world, clock, messenger, claimer="alive")
    await alive.tick()
    assert messenger.sent == []
    clock.set(MORNING_KGD + timedelta(minutes=11))
    stats = await alive.tick()
    assert stats.interrupted == 2 and stats.recovered > 0
    assert "d1" in messenger.chats() and "d2" not in messenger.chats()
    async with world.sessions() as session:
        rows = list(await session.scalars(select(Delivery).where(Delivery.account_id == d2)))
        mine = list(await session.scalars(select(Delivery).where(Delivery.account_id == d1)))
    assert {r.status for r in rows} == {DeliveryStatus.FAILED}
    assert rows[0].error == INTERRUPTED
    assert {r.status for r in mine} == {DeliveryStatus.SENT}
    assert {r.claimed_by for r in mine} == {"alive"}


async def test_blocked_recipient_is_not_retried_and_shown_to_the_coordinator(
    world: World,
) -> None:
    clock = FixedClock(MORNING_KGD)
    messenger = FakeMessenger()
    messenger.blocked.add("d2")
    stats = await make_reminders(world, clock, messenger).tick()
    assert stats.unreachable == 2  # both items for d2, one message attempt
    async with world.sessions() as session:
        account = await session.get(Account, world.accounts["d2"])
        assert account.unreachable_since is not None
        rows = list(
            await session.scalars(
                select(Delivery).where(Delivery.account_id == world.accounts["d2"])
            )
        )
    assert {r.status for r in rows} == {DeliveryStatus.UNREACHABLE}
    assert {r.attempts for r in rows} == {1}
    # the coordinator's digest of the same morning went before d2 was known to block
    clock.set(utc(2023, 2, 12, 7, 0))
    messenger.blocked.clear()  # even if Telegram would accept now, we do not try
    await make_reminders(world, clock, messenger).tick()
    assert "d2" not in messenger.chats()
    digest = messenger.texts("m1")[-1]
    assert "🔕 Не получают напоминания (заблокировали бота): Школа 2 (Человек d2)" in digest
    async with world.sessions() as session:
        report = await delivery_report(session)
    assert report.counts[DeliveryStatus.UNREACHABLE] == 4


async def test_failed_send_is_not_retried(world: World) -> None:
    clock = FixedClock(MORNING_KGD)
    messenger = FakeMessenger()
    messenger.fail["d1"] = TimeoutError("timed out")  # may have arrived: never resent
    stats = await make_reminders(world, clock, messenger).tick()
    assert stats.failed == 2
    clock.set(MORNING_KGD + timedelta(minutes=1))
    await make_reminders(world, clock, messenger).tick()
    assert "d1" not in messenger.chats()


async def test_campaign_deliveries_are_separate_messages(world: World) -> None:
    await add_campaign(world, date(2023, 2, 11), ["Школа 1"], title="Анкета А")
    await add_campaign(world, date(2023, 2, 11), ["Школа 1"], title="Анкета Б")
    messenger = FakeMessenger()
    await make_reminders(world, FixedClock(MORNING_KGD), messenger).tick()
    texts = messenger.texts("d1")
    assert len(texts) == 3  # the roadmap items (one message) and one per campaign
    assert sum("Анкета А" in t for t in texts) == 1 and sum("Анкета Б" in t for t in texts) == 1


# --- several processes ------------------------------------------------------------------------


async def add_directors(world: World, count: int) -> list[str]:
    """More director accounts (several people per school) to make races likely."""
    chats = []
    async with world.sessions() as session:
        schools = list(await session.scalars(select(School).order_by(School.id)))
        for i in range(count):
            school = schools[i % len(schools)]
            person = Person(
                role="director",
                school_id=school.id,
                municipality_id=school.municipality_id,
                created_at=utc(2022, 1, 1),
            )
            session.add(person)
            await session.flush()
            chat = f"x{i}"
            session.add(
                Account(
                    person_id=person.id,
                    platform=TG,
                    platform_user_id=chat,
                    chat_id=chat,
                    created_at=utc(2022, 1, 1),
                )
            )
            chats.append(chat)
        await session.commit()
    return chats


async def race(world: World, sessionmakers: list, processes: int = 4) -> FakeMessenger:
    messenger = FakeMessenger()
    messenger.delay = 0.001
    clock = FixedClock(MORNING_KGD)
    contenders: list[Reminders] = []
    for i in range(processes):
        r = make_reminders(world, clock, messenger, claimer=f"p{i}")
        r.sessions = sessionmakers[i % len(sessionmakers)]
        r.sender.sessions = r.sessions
        r.batch_size = 3
        contenders.append(r)
    await asyncio.gather(*(r.tick() for r in contenders))
    await asyncio.gather(*(r.tick() for r in contenders))
    return messenger


async def check_exactly_once(world: World, messenger: FakeMessenger, sessions) -> None:
    async with sessions() as session:
        rows = list(await session.scalars(select(Delivery)))
    assert rows and {r.status for r in rows} == {DeliveryStatus.SENT}
    assert len({r.claimed_by for r in rows}) > 1  # the work was shared
    texts = Counter((chat, message.text) for chat, message in messenger.sent)
    assert max(texts.values()) == 1, [k for k, v in texts.items() if v > 1]
    accounts_with_rows = {r.account_id for r in rows}
    assert len(messenger.sent) == len(accounts_with_rows)  # one message per person


async def test_two_claimers_race_on_sqlite(world: World, tmp_path: Path) -> None:
    await add_directors(world, 60)
    url = f"sqlite+aiosqlite:///{tmp_path / 'test.sqlite3'}"
    other = create_engine(url)  # a second "process": its own engine and connections
    try:
        messenger = await race(world, [world.sessions, create_sessionmaker(other)])
        await check_exactly_once(world, messenger, world.sessions)
    finally:
        await other.dispose()


@pytest.mark.skipif(not os.environ.get("TEST_POSTGRES_URL"), reason="TEST_POSTGRES_URL not set")
async def test_two_claimers_race_on_postgresql() -> None:
    engine, sessions, drop, schema = await postgres_db()
    second = postgres_engine(schema)  # another "process" with its own connections
    try:
        world = await build_world(sessions, engine)
        await add_roadmap(world, roadmap(ITEMS, region=None))
        await add_directors(world, 80)
        messenger = await race(world, [sessions, create_sessionmaker(second)], processes=6)
        await check_exactly_once(world, messenger, sessions)
        clock = FixedClock(MORNING_KGD + timedelta(minutes=3))  # a restart changes nothing
        stats = await make_reminders(world, clock, messenger).tick()
        assert stats.sent == 0 and stats.planned == 0
    finally:
        await second.dispose()
        await drop()


@pytest.mark.skipif(not os.environ.get("TEST_POSTGRES_URL"), reason="TEST_POSTGRES_URL not set")
async def test_postgresql_campaigns_missed_and_blocked() -> None:
    engine, sessions, drop, _schema = await postgres_db()
    try:
        world = await build_world(sessions, engine)
        await add_roadmap(world, roadmap(ITEMS, region=None))
        await add_campaign(world, date(2023, 2, 11), ["Школа 1", "Школа 5"])
        messenger = FakeMessenger()
        messenger.blocked.add("d2")
        clock = FixedClock(utc(2023, 2, 8, 10, 30))  # Moscow window closed, Kaliningrad open
        stats = await make_reminders(world, clock, messenger).tick()
        # missed: d5 (2 items + campaign), m3 and r2 (2 items each); d2 blocked (2 items)
        assert stats.missed == 7 and stats.unreachable == 2
        assert "d5" not in messenger.chats() and len(messenger.texts("d1")) == 2
        counts = await statuses(world)
        assert counts[DeliveryStatus.MISSED] == 7
    finally:
        await drop()


async def test_scheduler_wiring(tmp_path: Path) -> None:
    """The tick runs every minute, coalesced, one instance; downloads share the sender."""
    from bot.app import create_services
    from bot.config import (
        AppSettings,
        ReminderSettings,
        Settings,
        StorageSettings,
        TelegramSettings,
    )
    from scheduler.runner import create_scheduler
    from scheduler.sender import RateLimitedMessenger

    settings = Settings(
        telegram=TelegramSettings(_env_file=None),  # type: ignore[call-arg]
        storage=StorageSettings(_env_file=None, DATA_DIR=tmp_path),  # type: ignore[call-arg]
        app=AppSettings(_env_file=None),  # type: ignore[call-arg]
        reminders=ReminderSettings(_env_file=None, rate_per_s=10),  # type: ignore[call-arg]
    )
    services = await create_services(settings)
    try:
        scheduler = create_scheduler(services, {TG: FakeMessenger()})
        job = scheduler.get_job("reminders")
        assert job.coalesce is True and job.max_instances == 1
        assert job.trigger.interval == timedelta(minutes=1)
        reminders = job.args[0]
        assert reminders.sender.limiter.interval == pytest.approx(0.1)
        downloads = scheduler.get_job("retry_downloads")
        assert isinstance(downloads.args[3][TG], RateLimitedMessenger)
        assert downloads.args[3][TG].sender is reminders.sender
    finally:
        await services.close()
