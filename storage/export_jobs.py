"""The queue of chat exports: a row per export, claimed by one worker at a time.

A claim is one conditional UPDATE (on PostgreSQL the candidate row is picked ``FOR UPDATE
SKIP LOCKED``, so workers claiming at once take different jobs and never wait on each
other). The running worker refreshes ``claimed_at``; a job whose worker stopped refreshing
(it died) is claimed again after ``stale_after``, and reported as failed after
:data:`MAX_ATTEMPTS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Index, Integer, String, Text, and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from storage.models import Base, utcnow


class ExportJobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class ExportJob(Base):
    """An export asked for in the chat; any worker process claims and runs it
    (handlers/export_chat.py). ``claimed_at`` is the running worker's heartbeat."""

    __tablename__ = "export_jobs"
    __table_args__ = (
        Index("ix_export_jobs_status", "status", "id"),
        Index("ix_export_jobs_user", "platform", "user_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str] = mapped_column(String(64))
    chat_id: Mapped[str] = mapped_column(String(64))
    request: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), default=ExportJobStatus.QUEUED)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


MAX_ATTEMPTS = 2
STALE_AFTER = timedelta(minutes=5)
KEEP_FINISHED = timedelta(days=7)


async def enqueue(
    session: AsyncSession,
    *,
    platform: str,
    user_id: str,
    chat_id: str,
    request: dict[str, Any],
    now: datetime,
) -> int:
    job = ExportJob(
        platform=platform,
        user_id=user_id,
        chat_id=chat_id,
        request=request,
        status=ExportJobStatus.QUEUED,
        attempts=0,
        created_at=now,
    )
    session.add(job)
    await session.flush()
    return job.id


async def unfinished(
    session: AsyncSession, platform: str, user_id: str, stale_after: timedelta, now: datetime
) -> bool:
    """Whether the person already has an export queued or running (not a dead one)."""
    count = await session.scalar(
        select(func.count())
        .select_from(ExportJob)
        .where(
            ExportJob.platform == platform,
            ExportJob.user_id == user_id,
            or_(
                ExportJob.status == ExportJobStatus.QUEUED,
                and_(
                    ExportJob.status == ExportJobStatus.RUNNING,
                    ExportJob.claimed_at >= now - stale_after,
                ),
            ),
        )
    )
    return bool(count)


async def claim(
    sessions: async_sessionmaker,
    worker: str,
    platforms: Sequence[str],
    now: datetime,
    stale_after: timedelta = STALE_AFTER,
) -> ExportJob | None:
    """Take the oldest queued (or abandoned) job of these platforms; None when there is none."""
    claimable = and_(
        ExportJob.platform.in_(list(platforms)),
        or_(
            ExportJob.status == ExportJobStatus.QUEUED,
            and_(
                ExportJob.status == ExportJobStatus.RUNNING,
                ExportJob.claimed_at < now - stale_after,
            ),
        ),
    )
    async with sessions() as session:
        candidate = select(ExportJob.id).where(claimable).order_by(ExportJob.id).limit(1)
        if session.get_bind().dialect.name == "postgresql":
            candidate = candidate.with_for_update(skip_locked=True)
        job = await session.scalar(
            update(ExportJob)
            .where(ExportJob.id == candidate.scalar_subquery(), claimable)
            .values(
                status=ExportJobStatus.RUNNING,
                claimed_by=worker,
                claimed_at=now,
                attempts=ExportJob.attempts + 1,
            )
            .returning(ExportJob)
            .execution_options(synchronize_session=False)
        )
        await session.commit()
        return job


async def heartbeat(sessions: async_sessionmaker, job_id: int, worker: str, now: datetime) -> bool:
    """Refresh the claim; False when another worker took the job over."""
    async with sessions() as session:
        result = await session.execute(
            update(ExportJob)
            .where(
                ExportJob.id == job_id,
                ExportJob.claimed_by == worker,
                ExportJob.status == ExportJobStatus.RUNNING,
            )
            .values(claimed_at=now)
        )
        await session.commit()
        return result.rowcount == 1


async def finish(
    sessions: async_sessionmaker,
    job_id: int,
    worker: str,
    now: datetime,
    *,
    error: str | None = None,
) -> bool:
    async with sessions() as session:
        result = await session.execute(
            update(ExportJob)
            .where(ExportJob.id == job_id, ExportJob.claimed_by == worker)
            .values(
                status=ExportJobStatus.FAILED if error else ExportJobStatus.DONE,
                error=error,
                finished_at=now,
            )
        )
        await session.commit()
        return result.rowcount == 1


async def prune(session: AsyncSession, now: datetime, keep: timedelta = KEEP_FINISHED) -> int:
    """Forget finished jobs older than ``keep`` (the queue stays small)."""
    result = await session.execute(
        delete(ExportJob).where(
            ExportJob.status.in_([ExportJobStatus.DONE, ExportJobStatus.FAILED]),
            ExportJob.finished_at < now - keep,
        )
    )
    return result.rowcount or 0
