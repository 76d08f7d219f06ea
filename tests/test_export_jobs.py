"""Exports as jobs: queued by the button, run by whichever worker claims them, once.

Two workers are two ExportChat instances (their own worker ids) over one database; on
PostgreSQL two engines claim from one queue at once.
"""

from __future__ import annotations

import asyncio
import io
import os
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import select, update

import handlers.export_chat as export_chat
from handlers.export_chat import ExportChat
from handlers.types import OutFile
from storage import export_jobs
from storage.database import create_engine, create_sessionmaker
from storage.export_jobs import ExportJob, ExportJobStatus
from tests.reminder_helpers import postgres_db, postgres_engine, sqlite_db
from tests.test_export_chat import (
    REGIONAL_ID,
    buttons,
    command,
    messenger,  # noqa: F401 - fixture
    press,
    services,  # noqa: F401 - fixture
)

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


async def jobs(svc) -> list[ExportJob]:
    async with svc.sessions() as session:
        return list(await session.scalars(select(ExportJob).order_by(ExportJob.id)))


async def ask_for_export(svc, user_id: str = REGIONAL_ID) -> list:
    replies = await command(svc, user_id, "/export 2")
    return await press(svc, user_id, buttons(replies)[export_chat.BTN_TABLE])


async def test_another_worker_runs_a_job_this_one_queued(services, messenger) -> None:  # noqa: F811
    this = services.conversation.exports
    this.slots = 0  # e.g. busy with its own exports: it queues and does not run
    replies = await ask_for_export(services)
    assert replies[0].text.startswith("⏳ Выгрузка «Муниципальный мониторинг 2024» в очереди")
    [job] = await jobs(services)
    assert job.status == ExportJobStatus.QUEUED and job.chat_id == REGIONAL_ID
    assert messenger.sent == []

    other = ExportChat(services.conversation)  # another worker process on the same database
    other.progress_every = 0.01
    other.kick()
    await other.wait()
    files = [m for _, m in messenger.sent if isinstance(m, OutFile)]
    assert [f.filename.rsplit(".", 1)[1] for f in files] == ["xlsx"]
    book = load_workbook(io.BytesIO(messenger.files[files[0].filename]))
    assert any(name.startswith("Ответы") for name in book.sheetnames)
    [job] = await jobs(services)
    assert job.status == ExportJobStatus.DONE and job.claimed_by == other.worker
    assert job.attempts == 1
    # nothing left for anybody
    assert await export_jobs.claim(services.sessions, "third", ["tg"], datetime.now(UTC)) is None


async def test_a_dead_workers_job_is_run_again_by_another(services, messenger) -> None:  # noqa: F811
    services.conversation.exports.slots = 0
    await ask_for_export(services)
    # A worker claimed it and died: its claim is not refreshed any more.
    long_ago = datetime.now(UTC) - timedelta(minutes=10)
    dead = await export_jobs.claim(services.sessions, "dead-worker", ["tg"], long_ago)
    assert dead is not None
    other = ExportChat(services.conversation)
    other.progress_every = 0.01
    other.kick()
    await other.wait()
    assert sum(isinstance(m, OutFile) for _, m in messenger.sent) == 1
    [job] = await jobs(services)
    assert job.status == ExportJobStatus.DONE and job.attempts == 2
    assert job.claimed_by == other.worker
    # the dead worker, were it only slow, finds its claim gone and sends nothing
    assert not await export_jobs.heartbeat(services.sessions, job.id, "dead-worker", NOW)


async def test_a_job_abandoned_too_often_is_reported_as_failed(services, messenger) -> None:  # noqa: F811
    services.conversation.exports.slots = 0
    await ask_for_export(services)
    async with services.sessions() as session:
        await session.execute(
            update(ExportJob).values(
                status=ExportJobStatus.RUNNING,
                claimed_by="dead",
                claimed_at=datetime.now(UTC) - timedelta(hours=1),
                attempts=export_jobs.MAX_ATTEMPTS,
            )
        )
        await session.commit()
    other = ExportChat(services.conversation)
    other.kick()
    await other.wait()
    assert [m.text for _, m in messenger.sent] == [export_chat.FAILED]
    [job] = await jobs(services)
    assert job.status == ExportJobStatus.FAILED
    # and the person can ask again
    services.conversation.exports.slots = 2
    replies = await ask_for_export(services)
    assert replies == []
    await services.conversation.exports.wait()
    assert sum(isinstance(m, OutFile) for _, m in messenger.sent) == 1


async def test_a_queued_export_counts_as_busy(services, messenger) -> None:  # noqa: F811
    services.conversation.exports.slots = 0
    await ask_for_export(services)
    replies = await ask_for_export(services)
    assert replies[0].text == export_chat.BUSY
    assert len(await jobs(services)) == 1


async def enqueue_many(sessions, count: int) -> None:
    async with sessions() as session:
        for i in range(count):
            await export_jobs.enqueue(
                session, platform="tg", user_id=str(i), chat_id=str(i), request={}, now=NOW
            )
        await session.commit()


async def claim_all(sessions, worker: str) -> list[int]:
    claimed = []
    while True:
        job = await export_jobs.claim(sessions, worker, ["tg"], NOW)
        if job is None:
            return claimed
        claimed.append(job.id)
        await asyncio.sleep(0)


async def check_claimed_once(sessions, claims: list[list[int]], count: int) -> None:
    every = Counter(i for worker in claims for i in worker)
    assert len(every) == count and max(every.values()) == 1  # all taken, none twice
    assert all(claims), "both workers took a share"
    async with sessions() as session:
        rows = list(await session.scalars(select(ExportJob)))
    assert {r.status for r in rows} == {ExportJobStatus.RUNNING}
    assert all(r.attempts == 1 for r in rows)


async def test_two_workers_claim_from_one_sqlite_queue(tmp_path: Path) -> None:
    url, engine, sessions = await sqlite_db(tmp_path)
    second = create_engine(url)
    try:
        await enqueue_many(sessions, 30)
        claims = await asyncio.gather(
            claim_all(sessions, "a"), claim_all(create_sessionmaker(second), "b")
        )
        await check_claimed_once(sessions, list(claims), 30)
    finally:
        await second.dispose()
        await engine.dispose()


@pytest.mark.skipif(not os.environ.get("TEST_POSTGRES_URL"), reason="TEST_POSTGRES_URL not set")
async def test_two_workers_claim_from_one_postgresql_queue() -> None:
    _engine, sessions, drop, schema = await postgres_db()
    second = postgres_engine(schema)
    try:
        await enqueue_many(sessions, 60)
        makers = [sessions, create_sessionmaker(second)]
        claims = await asyncio.gather(*(claim_all(makers[i % 2], f"w{i}") for i in range(4)))
        await check_claimed_once(sessions, list(claims), 60)
    finally:
        await second.dispose()
        await drop()


async def test_finished_jobs_are_pruned_after_a_week(tmp_path: Path) -> None:
    from scheduler.runner import prune_inbox

    _, engine, sessions = await sqlite_db(tmp_path)
    try:
        await enqueue_many(sessions, 3)
        now = datetime.now(UTC)
        old = await export_jobs.claim(sessions, "w", ["tg"], now)
        recent = await export_jobs.claim(sessions, "w", ["tg"], now)
        assert old and recent
        await export_jobs.finish(sessions, old.id, "w", now - timedelta(days=8))
        await export_jobs.finish(sessions, recent.id, "w", now - timedelta(days=1), error="x")
        assert await prune_inbox(sessions) >= 1
        async with sessions() as session:
            left = {j.id: j.status for j in await session.scalars(select(ExportJob))}
        assert old.id not in left  # finished a week ago: gone
        assert left[recent.id] == ExportJobStatus.FAILED  # recent: kept
        assert ExportJobStatus.QUEUED in left.values()  # unfinished: never pruned
    finally:
        await engine.dispose()


async def test_a_running_export_keeps_its_claim_fresh(services, messenger, monkeypatch) -> None:  # noqa: F811
    release = asyncio.Event()
    real = export_chat.run_export

    async def slow_export(*args, **kwargs):
        await release.wait()
        return await real(*args, **kwargs)

    monkeypatch.setattr(export_chat, "run_export", slow_export)
    exports = services.conversation.exports
    exports.heartbeat_every = 0.0
    await ask_for_export(services)
    await asyncio.sleep(0.05)
    [job] = await jobs(services)
    first = job.claimed_at
    await asyncio.sleep(0.2)
    [job] = await jobs(services)
    assert job.status == ExportJobStatus.RUNNING and job.claimed_at > first
    # a fresh claim is not taken over by another worker
    assert await export_jobs.claim(services.sessions, "other", ["tg"], datetime.now(UTC)) is None
    release.set()
    await exports.wait()
    assert sum(isinstance(m, OutFile) for _, m in messenger.sent) == 1
