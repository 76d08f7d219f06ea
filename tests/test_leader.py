"""Scheduler jobs run in one process at a time: a PostgreSQL advisory-lock leader.

Two "processes" are two engines (their own connections) on one PostgreSQL database. Killing
the leader's connection (``pg_terminate_backend``, what PostgreSQL does when the process
dies) hands the jobs over within a few seconds, and the reminders still go out once each.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import asyncpg
import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import select
from sqlalchemy.engine import make_url

from scheduler.leader import Leader, lock_key, run_when_leading
from storage.database import create_engine, create_sessionmaker
from storage.models import Delivery, DeliveryStatus
from tests.pg import POSTGRES_URL, requires_postgres, temporary_database
from tests.reminder_helpers import (
    FakeMessenger,
    FixedClock,
    add_roadmap,
    build_world,
    make_reminders,
    postgres_db,
    postgres_engine,
    roadmap,
    sqlite_db,
    utc,
)
from tests.test_reminders_delivery import ITEMS, add_directors

RETRY_S = 0.2
TAKEOVER_S = 5.0
MORNING_KGD = utc(2023, 2, 8, 7, 0)


def _plain_admin() -> str:
    return make_url(POSTGRES_URL).set(drivername="postgresql").render_as_string(False)


async def kill_holder(name: str) -> int:
    """Terminate the backend holding the leader lock ``name``; how many were killed."""
    key = lock_key(name)
    admin = await asyncpg.connect(_plain_admin())
    try:
        return await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory'"
            " AND granted AND classid = $1::bigint::oid AND objid = $2::bigint::oid"
            " AND objsubid = 1",
            (key >> 32) & 0xFFFFFFFF,
            key & 0xFFFFFFFF,
        )
    finally:
        await admin.close()


async def until(condition, timeout: float = TAKEOVER_S) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_sqlite_has_one_process_and_it_always_leads(tmp_path: Path) -> None:
    _, engine, _ = await sqlite_db(tmp_path)
    elected: list[bool] = []
    leader = Leader(engine, on_elected=lambda: elected.append(True))
    try:
        assert await leader.step() is True
        assert await leader.step() is True
        assert elected == [True]  # told once, not on every check
    finally:
        await leader.close()
        await engine.dispose()


@requires_postgres
async def test_one_leader_and_a_takeover_when_its_connection_dies() -> None:
    async with temporary_database() as url:
        engines = [create_engine(url), create_engine(url)]
        events: list[str] = []
        leaders = [
            Leader(
                engine,
                "takeover",
                retry_s=RETRY_S,
                on_elected=lambda i=i: events.append(f"elected {i}"),
                on_deposed=lambda i=i: events.append(f"deposed {i}"),
            )
            for i, engine in enumerate(engines)
        ]
        stop = asyncio.Event()
        tasks = [asyncio.create_task(leader.run(stop)) for leader in leaders]
        try:
            await until(lambda: any(leader.leading for leader in leaders))
            await asyncio.sleep(RETRY_S * 5)  # the follower keeps trying and keeps failing
            assert [leader.leading for leader in leaders].count(True) == 1
            first = next(i for i, leader in enumerate(leaders) if leader.leading)
            other = 1 - first
            assert events == [f"elected {first}"]

            assert await kill_holder("takeover") == 1  # the leader's process "died"
            took = await until(lambda: leaders[other].leading)
            assert took < TAKEOVER_S
            await until(lambda: not leaders[first].leading)
            assert [leader.leading for leader in leaders] == [i == other for i in range(2)]
            assert sorted(events) == sorted(
                [f"elected {first}", f"deposed {first}", f"elected {other}"]
            )

            # The old leader reconnects and stays a follower.
            await asyncio.sleep(RETRY_S * 5)
            assert [leader.leading for leader in leaders] == [i == other for i in range(2)]
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            for engine in engines:
                await engine.dispose()


@requires_postgres
async def test_clean_shutdown_hands_over_at_once() -> None:
    async with temporary_database() as url:
        engines = [create_engine(url), create_engine(url)]
        leaders = [Leader(engine, "handover", retry_s=RETRY_S) for engine in engines]
        try:
            assert await leaders[0].step() is True
            assert await leaders[1].step() is False
            await leaders[0].close()
            assert leaders[0].leading is False
            assert await leaders[1].step() is True
        finally:
            for leader in leaders:
                await leader.close()
            for engine in engines:
                await engine.dispose()


@requires_postgres
async def test_two_schedulers_send_each_reminder_once_across_a_leader_crash() -> None:
    engine, sessions, drop, schema = await postgres_db()
    second = postgres_engine(schema)
    try:
        world = await build_world(sessions, engine)
        await add_roadmap(world, roadmap(ITEMS, region=None))
        await add_directors(world, 40)
        messenger = FakeMessenger()
        messenger.delay = 0.002
        clock = FixedClock(MORNING_KGD)
        ticks: Counter[int] = Counter()
        off_duty: list[int] = []
        leaders: list[Leader] = []
        schedulers: list[AsyncIOScheduler] = []
        for node, node_engine in enumerate([engine, second]):
            reminders = make_reminders(world, clock, messenger, claimer=f"node{node}")
            reminders.sessions = create_sessionmaker(node_engine)
            reminders.sender.sessions = reminders.sessions
            reminders.batch_size = 5

            async def tick(node: int = node, reminders=reminders) -> None:
                if not leaders[node].leading:
                    off_duty.append(node)
                ticks[node] += 1
                await reminders.tick()

            scheduler = AsyncIOScheduler(timezone="UTC")
            scheduler.add_job(tick, "interval", seconds=0.1, max_instances=1, coalesce=True)
            schedulers.append(scheduler)
            leaders.append(run_when_leading(scheduler, node_engine, retry_s=RETRY_S, name=schema))
        stop = asyncio.Event()
        tasks = [asyncio.create_task(leader.run(stop)) for leader in leaders]
        try:
            await until(lambda: sum(ticks.values()) >= 3)
            first = next(i for i, leader in enumerate(leaders) if leader.leading)
            other = 1 - first
            assert ticks[other] == 0  # the follower's scheduler stays paused
            sent_before = len(messenger.sent)
            assert sent_before > 0
            await kill_holder(schema)
            await until(lambda: not leaders[first].leading)
            clock.set(utc(2023, 2, 12, 7, 0))  # 3 days before: the next reminders are due
            # the new leader may have ticked on the old clock while the old one learnt it had
            # lost the lock: count from now; the second tick from now starts after one ended
            seen = ticks[other]
            await until(lambda: ticks[other] >= seen + 2, timeout=4 * TAKEOVER_S)
            assert len(messenger.sent) > sent_before  # the new leader sent them
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            for scheduler in schedulers:
                scheduler.shutdown(wait=False)
        assert off_duty == []  # no job ran in a process that was not leading
        async with sessions() as session:
            rows = list(await session.scalars(select(Delivery)))
        assert rows and {r.status for r in rows} == {DeliveryStatus.SENT}
        texts = Counter((chat, message.text) for chat, message in messenger.sent)
        assert max(texts.values()) == 1
        assert len(messenger.sent) == len({(r.account_id, r.offset_days) for r in rows})
        assert {r.claimed_by for r in rows} == {"node0", "node1"}
    finally:
        await second.dispose()
        await drop()


@pytest.fixture(autouse=True)
def _quiet_apscheduler(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="apscheduler")
