"""Shared test world for roadmap and reminder tests: a database, people, a fake clock."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from bot.config import ReminderSettings
from handlers.types import Outgoing, OutText, RecipientBlocked, RetryLater
from roadmaps import model
from roadmaps.deadlines import Period, parse_deadline
from scheduler.reminders import Reminders
from scheduler.sender import Sender
from storage.database import create_engine, create_sessionmaker
from storage.models import Account, Campaign, CampaignTarget, Municipality, Person, Region, School
from storage.roadmaps_save import save_roadmap

KALININGRAD = "Калининградская область"
KALMYKIA = "Республика Калмыкия"
TG = "tg"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


class FixedClock:
    """A UTC clock that only moves when told to."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def set(self, now: datetime) -> None:
        self.now = now


class FakeMessenger:
    """Records sends; chats in ``blocked`` raise RecipientBlocked; ``flood`` queues 429s."""

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self.sent: list[tuple[str, OutText]] = []
        self.times: list[tuple[str, float]] = []
        self.blocked: set[str] = set()
        self.flood: list[float] = []
        self.fail: dict[str, Exception] = {}
        self.clock = clock
        self.delay: float = 0.0

    async def send(self, chat_id: str, message: Outgoing) -> str | None:
        if self.delay:
            await asyncio.sleep(self.delay)
        if chat_id in self.blocked:
            raise RecipientBlocked("Forbidden: bot was blocked by the user")
        if self.flood:
            raise RetryLater(self.flood.pop(0))
        if chat_id in self.fail:
            raise self.fail.pop(chat_id)
        assert isinstance(message, OutText)
        self.sent.append((chat_id, message))
        if self.clock is not None:
            self.times.append((chat_id, self.clock()))
        return str(len(self.sent))

    async def edit(self, chat_id: str, message_id: str, message: OutText) -> None:
        self.sent.append((chat_id, message))

    def texts(self, chat_id: str) -> list[str]:
        return [m.text for c, m in self.sent if c == chat_id]

    def chats(self) -> list[str]:
        return [c for c, _ in self.sent]


async def no_sleep(_seconds: float) -> None:
    await asyncio.sleep(0)


class JumpClock:
    """Monotonic time that jumps forward when someone sleeps (order is not simulated)."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


class VirtualTime:
    """Virtual monotonic time for the sender: sleepers wake in order, instantly."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._seq), future))
        await future

    async def run(self, awaitable: Awaitable[Any]) -> Any:
        task = asyncio.ensure_future(awaitable)
        while not task.done():
            for _ in range(20):  # let every ready task run until it sleeps or finishes
                await asyncio.sleep(0)
            if task.done():
                break
            if self._sleepers:
                at, _, future = heapq.heappop(self._sleepers)
                self.now = max(self.now, at)
                if not future.cancelled():
                    future.set_result(None)
        return task.result()


@dataclass
class World:
    sessions: async_sessionmaker
    engine: AsyncEngine
    regions: dict[str, int] = field(default_factory=dict)
    municipalities: dict[str, int] = field(default_factory=dict)
    schools: dict[str, int] = field(default_factory=dict)
    people: dict[str, int] = field(default_factory=dict)  # chat id -> person id
    accounts: dict[str, int] = field(default_factory=dict)  # chat id -> account id


async def sqlite_db(tmp_path: Path) -> tuple[str, AsyncEngine, async_sessionmaker]:
    """A migrated SQLite database (a copy of the test run's migrated template)."""
    from tests.sqlite_template import copy_migrated

    target = tmp_path / "test.sqlite3"
    await asyncio.to_thread(copy_migrated, target)  # the first one migrates (alembic)
    url = f"sqlite+aiosqlite:///{target}"
    engine = create_engine(url)
    return url, engine, create_sessionmaker(engine)


def postgres_engine(schema: str) -> AsyncEngine:
    from sqlalchemy.ext.asyncio import create_async_engine

    return create_async_engine(
        os.environ["TEST_POSTGRES_URL"],
        connect_args={"server_settings": {"search_path": schema}},
        pool_size=20,
    )


async def postgres_db() -> tuple[AsyncEngine, async_sessionmaker, Callable, str]:
    """Tables in a fresh schema of TEST_POSTGRES_URL; the returned coroutine drops it."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from storage.models import Base

    base = os.environ["TEST_POSTGRES_URL"]
    schema = f"t_{uuid.uuid4().hex[:10]}"
    engine = create_async_engine(
        base, connect_args={"server_settings": {"search_path": schema}}, pool_size=20
    )
    async with engine.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)

    async def drop() -> None:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await engine.dispose()

    return engine, create_sessionmaker(engine), drop, schema


async def world_database(
    kind: str, tmp_path: Path
) -> tuple[async_sessionmaker, AsyncEngine, Callable]:
    """A fresh database for a world fixture parametrized ["sqlite", "postgres"] (PostgreSQL
    skipped when TEST_POSTGRES_URL is unset); the coroutine returned tears it down."""
    import pytest

    if kind == "sqlite":
        _, engine, sessions = await sqlite_db(tmp_path)
        return sessions, engine, engine.dispose
    if not os.environ.get("TEST_POSTGRES_URL"):
        pytest.skip("TEST_POSTGRES_URL is not set")
    engine, sessions, drop, _schema = await postgres_db()
    return sessions, engine, drop


async def build_world(sessions: async_sessionmaker, engine: AsyncEngine) -> World:
    """Kaliningrad (UTC+2): 2 municipalities × 2 schools; Kalmykia (UTC+3): 1 × 1.

    Directors d1..d5, municipal coordinators m1..m3, regional coordinators r1, r2.
    """
    world = World(sessions, engine)
    created = utc(2022, 1, 1)
    async with sessions() as session:
        kgd = Region(name=KALININGRAD, timezone="Europe/Kaliningrad")
        klm = Region(name=KALMYKIA, timezone="Europe/Moscow")
        session.add_all([kgd, klm])
        await session.flush()
        world.regions = {KALININGRAD: kgd.id, KALMYKIA: klm.id}
        layout = [
            (kgd, "Гурьевский округ", ["Школа 1", "Школа 2"]),
            (kgd, "Зеленоградский округ", ["Школа 3", "Школа 4"]),
            (klm, "Черноземельский район", ["Школа 5"]),
        ]
        d = 0
        for m, (region, municipality_name, school_names) in enumerate(layout, start=1):
            municipality = Municipality(region_id=region.id, name=municipality_name)
            session.add(municipality)
            await session.flush()
            world.municipalities[municipality_name] = municipality.id
            await _person(session, world, f"m{m}", "municipal", created, municipality=municipality)
            for school_name in school_names:
                school = School(municipality_id=municipality.id, name=school_name, is_shnor=True)
                session.add(school)
                await session.flush()
                world.schools[school_name] = school.id
                d += 1
                await _person(session, world, f"d{d}", "director", created, school=school)
        await _person(session, world, "r1", "regional", created, region=kgd)
        await _person(session, world, "r2", "regional", created, region=klm)
        await session.commit()
    return world


async def _person(
    session,
    world: World,
    chat: str,
    role: str,
    created: datetime,
    *,
    school: School | None = None,
    municipality: Municipality | None = None,
    region: Region | None = None,
) -> None:
    person = Person(
        role=role,
        full_name=f"Человек {chat}",
        school_id=school.id if school else None,
        municipality_id=(
            school.municipality_id if school else (municipality.id if municipality else None)
        ),
        region_id=region.id if region else None,
        created_at=created,
    )
    session.add(person)
    await session.flush()
    account = Account(
        person_id=person.id,
        platform=TG,
        platform_user_id=chat,
        chat_id=chat,
        created_at=created,
    )
    session.add(account)
    await session.flush()
    world.people[chat] = person.id
    world.accounts[chat] = account.id


def roadmap(
    items: list[tuple[str, str, str, list[str]]],
    *,
    key: str = "test_2023",
    region: str | None = KALININGRAD,
    period: Period | None = None,
) -> model.Roadmap:
    """Items as (number, action, deadline text, executor roles)."""
    period = period or Period.calendar_year(2023)
    built = []
    for row, (number, action, deadline, roles) in enumerate(items, start=1):
        built.append(
            model.RoadmapItem(
                number=number,
                action=action,
                deadline_text=deadline,
                deadline=parse_deadline(deadline, period),
                executors=[{"director": "Руководители школ"}.get(r, r) for r in roles],
                executor_roles=roles,
                level=model.derive_level(roles, "region"),
                evidence=f"Справка к п. {number}",
                row=row,
            )
        )
    return model.Roadmap(
        id=key,
        title="Тестовая дорожная карта",
        level="region",
        region=region,
        period=period,
        items=built,
        milestones=[
            model.Milestone(date=date(2023, 6, 30), min_percent=30, max_percent=40, text="30-40%")
        ],
    )


IMPORTED = datetime(2023, 1, 1, tzinfo=UTC)


async def add_roadmap(world: World, rm: model.Roadmap, imported: datetime | None = IMPORTED) -> int:
    from storage.models import Roadmap

    async with world.sessions() as session:
        summary = await save_roadmap(session, rm)
        if imported is not None:
            row = await session.get(Roadmap, summary.roadmap_id)
            row.imported_at = imported
        await session.commit()
    return summary.roadmap_id


async def add_campaign(
    world: World,
    deadline: date,
    schools: list[str],
    *,
    title: str = "Мониторинг ШНОР",
    form_id: str = "shnor_school",
    form_version: int = 1,
    created: datetime | None = None,
) -> int:
    async with world.sessions() as session:
        campaign = Campaign(
            form_id=form_id,
            form_version=form_version,
            title=title,
            opens_on=date(2023, 1, 1),
            deadline=deadline,
            created_at=created or utc(2023, 1, 1),
        )
        for name in schools:
            sid = world.schools[name]
            school = await session.get(School, sid)
            campaign.targets.append(
                CampaignTarget(
                    respondent_key=f"school:{sid}",
                    school_id=sid,
                    municipality_id=school.municipality_id,
                )
            )
        session.add(campaign)
        await session.commit()
        return campaign.id


def settings(**overrides: Any) -> ReminderSettings:
    values: dict[str, Any] = {"grace_minutes": 240, "send_time": time(9, 0)}
    values.update(overrides)
    return ReminderSettings(_env_file=None, **values)  # type: ignore[call-arg]


def make_reminders(
    world: World,
    clock: FixedClock,
    messenger: FakeMessenger,
    *,
    forms: Any = None,
    claimer: str | None = None,
    **overrides: Any,
) -> Reminders:
    config = settings(**overrides)
    jump = JumpClock()
    sender = Sender(
        {TG: messenger},
        rate_per_s=config.rate_per_s,
        per_chat_per_s=config.per_chat_per_s,
        sessions=world.sessions,
        clock=jump.clock,
        sleep=jump.sleep,
        now=clock,
    )
    return Reminders(
        world.sessions,
        sender,
        config,
        forms=forms,
        clock=clock,
        claimer=claimer,
    )
