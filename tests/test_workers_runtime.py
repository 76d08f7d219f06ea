"""Two real bot processes (``run_bot``) on one PostgreSQL: only the leader runs the jobs.

Each bot has its own token and fake Bot API server, so whoever sends a notice shows who ran
the reminder tick. The leader stops (SIGTERM's path): the other takes over and sends the
next notice; every notice arrives exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg
from sqlalchemy.engine import make_url

from bot.config import load_settings
from bot.runner import run_bot
from bot.telegram.channel import SECRET_HEADER
from handlers.types import OutText
from scheduler.leader import lock_key
from storage import notices
from storage.database import create_engine, create_sessionmaker
from storage.models import Account, Person
from tests.fake_bot_api import FakeBotApi
from tests.pg import requires_postgres, temporary_database
from tests.runtime import free_port

CHAT = 5550777


async def holders(url: str) -> int:
    key = lock_key("scheduler")
    connection = await asyncpg.connect(
        make_url(url).set(drivername="postgresql").render_as_string(False)
    )
    try:
        return await connection.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND classid = $1::bigint::oid AND objid = $2::bigint::oid AND objsubid = 1"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            (key >> 32) & 0xFFFFFFFF,
            key & 0xFFFFFFFF,
        )
    finally:
        await connection.close()


async def queue_notice(url: str, person_id: int, text: str) -> None:
    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine)() as session:
            now = datetime.now(UTC)
            assert await notices.notify(
                session, person_id, OutText(text), key=f"test:{text}", now=now
            )
            await session.commit()
    finally:
        await engine.dispose()


async def add_person(url: str) -> int:
    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine)() as session:
            now = datetime.now(UTC)
            person = Person(role="director", full_name="Ольга", created_at=now)
            session.add(person)
            await session.flush()
            session.add(
                Account(
                    person_id=person.id,
                    platform="tg",
                    platform_user_id=str(CHAT),
                    chat_id=str(CHAT),
                    created_at=now,
                )
            )
            await session.commit()
            return person.id
    finally:
        await engine.dispose()


def received(api: FakeBotApi, text: str) -> int:
    return sum(1 for sent in api.sent if sent.chat_id == CHAT and sent.text == text)


async def until(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "not reached in time"
        await asyncio.sleep(0.1)


@requires_postgres
async def test_two_bot_processes_one_runs_the_jobs_and_the_other_takes_over(
    tmp_path: Path, monkeypatch
) -> None:
    apis = [FakeBotApi(token="4242:FAKE-TOKEN"), FakeBotApi(token="4243:OTHER-TOKEN")]
    async with temporary_database() as url:
        person = await add_person(url)
        await queue_notice(url, person, "Первое уведомление")
        settings = []
        for i, api in enumerate(apis):
            base = await api.start()
            for name, value in {
                "DATA_DIR": str(tmp_path / f"worker{i}"),
                "DATABASE_URL": url,
                "BOT_TOKEN": api.token,
                "TELEGRAM_API_URL": base,
                "WORKERS": "2",
                "LEADER_RETRY_SECONDS": "0.3",
                "REMINDER_QUIET_START": "00:00",  # no quiet hours: the test may run at night
                "REMINDER_QUIET_END": "00:00",
            }.items():
                monkeypatch.setenv(name, value)
            settings.append(load_settings(env_file=None))
        stops = [asyncio.Event(), asyncio.Event()]
        # One after the other: in one test process two migrations at once trip over alembic's
        # module globals (separate processes do not share them).
        bots = [asyncio.create_task(run_bot(settings[0], stop=stops[0]))]
        try:

            async def locked() -> bool:
                return await holders(url) == 1

            await until(locked, 60)
            bots.append(asyncio.create_task(run_bot(settings[1], stop=stops[1])))

            async def first_sent() -> bool:
                return sum(received(api, "Первое уведомление") for api in apis) >= 1

            await until(first_sent, 60)
            leader = next(i for i, api in enumerate(apis) if received(api, "Первое уведомление"))
            other = 1 - leader
            assert await holders(url) == 1  # one lock, held by the leader
            await asyncio.sleep(1.5)  # the follower's scheduler stays paused meanwhile
            assert [received(api, "Первое уведомление") for api in apis] == [
                int(i == leader) for i in range(2)
            ]

            # Queued while the leader still runs, whose next tick is a minute away; SIGTERM:
            # it hands the lock back on its way out, and the other's first tick sends it.
            await queue_notice(url, person, "Второе уведомление")
            stops[leader].set()
            await asyncio.wait_for(bots[leader], 30)

            async def second_sent() -> bool:
                return received(apis[other], "Второе уведомление") >= 1

            await until(second_sent, 40)
            await asyncio.sleep(1.0)
            assert received(apis[other], "Второе уведомление") == 1
            assert received(apis[leader], "Второе уведомление") == 0
            assert sum(received(api, "Первое уведомление") for api in apis) == 1
        finally:
            for stop in stops:
                stop.set()
            for bot in bots:
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(bot, 30)
            for api in apis:
                await api.stop()


@requires_postgres
async def test_two_webhook_workers_share_one_token_on_postgresql(
    tmp_path: Path, monkeypatch
) -> None:
    """WORKERS=2 behind a load balancer: both start on one token, both take updates, one
    runs the jobs; a request without the webhook secret is refused."""
    api = FakeBotApi()
    base = await api.start()
    ports = [free_port(), free_port()]
    async with temporary_database() as url:
        settings = []
        for i, port in enumerate(ports):
            for name, value in {
                "DATA_DIR": str(tmp_path / f"worker{i}"),
                "DATABASE_URL": url,
                "BOT_TOKEN": api.token,
                "TELEGRAM_API_URL": base,
                "WEBHOOK_BASE_URL": f"http://127.0.0.1:{port}",
                "WEBHOOK_LISTEN": f"127.0.0.1:{port}",
                "TELEGRAM_WEBHOOK_SECRET": "worker-secret",
                "WORKERS": "2",
                "LEADER_RETRY_SECONDS": "0.3",
            }.items():
                monkeypatch.setenv(name, value)
            settings.append(load_settings(env_file=None))
        stops = [asyncio.Event(), asyncio.Event()]
        bots = [asyncio.create_task(run_bot(settings[0], stop=stops[0]))]
        try:

            async def locked() -> bool:
                return await holders(url) == 1

            await until(locked, 60)  # one after the other: see the test above
            bots.append(asyncio.create_task(run_bot(settings[1], stop=stops[1])))
            async with aiohttp.ClientSession() as http:

                async def post(port: int, text: str, secret: str | None) -> int:
                    update = {
                        "update_id": api.next_id(),
                        "message": api._message(CHAT, text=text),
                    }
                    headers = {SECRET_HEADER: secret} if secret else {}
                    try:
                        return await api.post_update(
                            http, f"http://127.0.0.1:{port}/telegram", update, headers
                        )
                    except aiohttp.ClientConnectionError:
                        return 0

                async def second_serves() -> bool:
                    return await post(ports[1], "привет", None) == 403

                await until(second_serves, 60)  # the second worker started: not refused
                for i, port in enumerate(ports):
                    api._mark = len(api.sent)
                    assert await post(port, f"/help {i}", "worker-secret") == 200
                    await api.reply(CHAT, "не зарегистрированы")  # answered
            assert not any(bot.done() for bot in bots)  # neither was refused or failed
            assert await holders(url) == 1
        finally:
            for stop in stops:
                stop.set()
            for bot in bots:
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(bot, 30)
            await api.stop()
