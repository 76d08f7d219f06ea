"""Reminders before roadmap and questionnaire deadlines, sent exactly once.

Everything is a plain async method taking its time from an injected UTC clock; the
APScheduler job (``scheduler/runner.py``) only calls :meth:`Reminders.tick` every minute.

A tick:

1. **plans** — for every deadline (a roadmap item's due date, a campaign's deadline),
   every offset (default 7, 3, 1 and 0 days before) and the escalation after it, and every
   recipient time zone, a send moment at ``send_time`` local. Moments that have come get a
   row in ``deliveries`` keyed by kind + item/campaign + due date + offset + account, so
   re-planning (another tick, another process, a restart) can never add a second one. A
   moment whose window has already closed (the bot was down) is recorded as ``missed``;
2. **recovers** claims of a process that died: rows it never handed to a messenger go
   back to ``pending``; rows it may have sent become ``failed`` — never sent twice;
3. **expires** pending rows past their window (``grace`` after the send time, and never
   into the recipient's quiet hours) as ``missed``;
4. **claims** due rows atomically (``UPDATE … WHERE status = 'pending' … RETURNING``; on
   PostgreSQL the candidates are picked ``FOR UPDATE SKIP LOCKED``) in small batches,
   renders them (the content is decided at send time: a school that reported the item, or
   submitted the questionnaire meanwhile, gets nothing) and sends them through the
   rate-limited :class:`~scheduler.sender.Sender`. The attempt is recorded before the
   message leaves, the result right after.

Who gets what:

* a director — the items their school must do (executor role ``director``), one message
  per morning listing them; campaign deadlines of their school with a continue button;
* a municipal / regional coordinator — one digest of the items due soon in their scope
  with the schools (municipalities) that have not reported them, and who blocked the bot;
* after a due date, the coordinator one level up gets the overdue list: schools → the
  municipal coordinator, municipalities → the regional one.

This module runs the tick, claims and sends; the parts live beside it: ``planning``
(deadlines, who is due, the rows), ``rendering`` (rows into messages), ``reminder_texts``,
``recipients`` (accounts and geography), ``timing`` (send windows) and ``delivery_status``
(who blocked the bot, the admin report).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from bot.config import ReminderSettings
from handlers.registry import FormRegistry
from scheduler import planning
from scheduler.delivery_status import DeliveryReport, delivery_report, unreachable_below
from scheduler.recipients import Recipient, preferred, recipient_from_row, recipient_query
from scheduler.reminder_texts import days_left
from scheduler.rendering import Job, Renderer
from scheduler.sender import Outcome, Sender
from scheduler.timing import Window, as_utc, send_window
from storage.models import Account, Delivery, DeliveryStatus

# what other modules and tests import from here
__all__ = [
    "INTERRUPTED",
    "DeliveryReport",
    "Reminders",
    "TickStats",
    "as_utc",
    "days_left",
    "delivery_report",
    "reminders_tick",
    "send_window",
    "unreachable_below",
]

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted while sending: not resent, the message may have arrived"
CLAIM_LOCK_KEY = 0x5E4D_0001  # pg_advisory_xact_lock key serializing claims


@dataclass
class TickStats:
    planned: int = 0
    missed: int = 0
    recovered: int = 0
    interrupted: int = 0
    sent: int = 0
    failed: int = 0
    unreachable: int = 0
    cancelled: int = 0

    def add(self, status: str, count: int = 1) -> None:
        name = {
            DeliveryStatus.SENT: "sent",
            DeliveryStatus.FAILED: "failed",
            DeliveryStatus.UNREACHABLE: "unreachable",
            DeliveryStatus.CANCELLED: "cancelled",
        }[DeliveryStatus(status)]
        setattr(self, name, getattr(self, name) + count)


def default_claimer() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Reminders:
    def __init__(
        self,
        sessions: async_sessionmaker,
        sender: Sender,
        settings: ReminderSettings,
        *,
        forms: FormRegistry | None = None,
        default_zone: str = "Europe/Moscow",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        claimer: str | None = None,
        batch_size: int | None = None,
    ) -> None:
        self.sessions = sessions
        self.sender = sender
        self.settings = settings
        self.forms = forms
        self.default_zone = default_zone
        self.clock = clock
        self.claimer = claimer or default_claimer()
        # accounts claimed at a time: about two seconds of sending
        self.batch_size = batch_size or max(10, round(settings.rate_per_s * 2))
        self._planned: dict[tuple, datetime] = {}  # planning units done in this process
        # Small status writes of this process go one at a time: on SQLite, writers that
        # collide back off for milliseconds, which would delay the sends waiting on them.
        self._write_lock = asyncio.Lock()
        bind = sessions.kw.get("bind")
        self.dialect = bind.dialect.name if bind is not None else "sqlite"

    def now(self) -> datetime:
        return as_utc(self.clock())

    # --- the tick ----------------------------------------------------------------------

    async def tick(self) -> TickStats:
        stats = TickStats()
        if not self.settings.enabled:
            return stats
        now = self.now()
        stats.planned, stats.missed = await self.plan(now)
        stats.recovered, stats.interrupted = await self.recover(now)
        stats.missed += await self.expire(now)
        await self.send_due(stats)
        return stats

    # --- planning ------------------------------------------------------------------------

    async def plan(self, now: datetime) -> tuple[int, int]:
        """Create the deliveries whose moment has come; returns (pending, missed) added."""
        s = self.settings
        earliest = now - s.grace - timedelta(days=s.missed_lookback_days)
        platforms = self.sender.platforms
        async with self.sessions() as session:
            zones = await planning.zones(session, platforms, self.default_zone)
            if not zones:
                return 0, 0
            occurrences = await planning.occurrences(session, s, earliest, now)
            units: list[tuple[tuple, planning.Occurrence, int, str, Window]] = []
            for occ in occurrences:
                for offset in self._offsets():
                    day = occ.due_on - timedelta(days=offset)
                    for zone in zones:
                        window = send_window(day, zone, s)
                        if not earliest <= window.due_at <= now:
                            continue
                        if window.due_at < occ.created_at:
                            continue  # the deadline did not exist yet at that moment
                        unit = (occ.kind, occ.source_id, occ.due_on, offset, zone)
                        if unit in self._planned:
                            continue
                        units.append((unit, occ, offset, zone, window))
            if not units:
                return 0, 0
            planner = await planning.Planner.load(
                session, platforms, self.default_zone, [u[1] for u in units]
            )
            rows = []
            for _unit, occ, offset, zone, window in units:
                status = (
                    DeliveryStatus.PENDING if now <= window.send_until else DeliveryStatus.MISSED
                )
                for kind, recipient in planner.recipients(occ, offset, zone):
                    if window.due_at < as_utc(recipient.created_at):
                        continue
                    rows.append(
                        planning.delivery_row(kind, occ, offset, recipient, window, status, now)
                    )
            added = await planning.insert_new(session, rows)
            await session.commit()
        for unit, *_rest, window in units:
            self._planned[unit] = window.due_at
        self._prune(earliest)
        pending = sum(1 for r in added if r == DeliveryStatus.PENDING)
        return pending, len(added) - pending

    def _offsets(self) -> list[int]:
        return [*self.settings.offsets, -self.settings.overdue_after_days]

    def _prune(self, earliest: datetime) -> None:
        for unit in [u for u, at in self._planned.items() if at < earliest]:
            del self._planned[unit]

    # --- recovery and expiry -------------------------------------------------------------

    async def recover(self, now: datetime) -> tuple[int, int]:
        """Claims older than the timeout: back to pending if never handed to a messenger,
        failed if they may have been sent. Returns (returned, failed)."""
        stale = now - timedelta(seconds=self.settings.claim_timeout_seconds)
        async with self.sessions() as session:
            returned = await session.execute(
                update(Delivery)
                .where(
                    Delivery.status == DeliveryStatus.CLAIMED,
                    Delivery.claimed_at < stale,
                    Delivery.attempts == 0,
                )
                .values(status=DeliveryStatus.PENDING, claimed_by=None, claimed_at=None)
            )
            failed = await session.execute(
                update(Delivery)
                .where(
                    Delivery.status == DeliveryStatus.CLAIMED,
                    Delivery.claimed_at < stale,
                    Delivery.attempts > 0,
                )
                .values(status=DeliveryStatus.FAILED, error=INTERRUPTED)
            )
            await session.commit()
        if failed.rowcount:
            log.warning("%s deliveries were interrupted mid-send and not resent", failed.rowcount)
        return returned.rowcount or 0, failed.rowcount or 0

    async def expire(self, now: datetime) -> int:
        async with self.sessions() as session:
            result = await session.execute(
                update(Delivery)
                .where(Delivery.status == DeliveryStatus.PENDING, Delivery.send_until < now)
                .values(
                    status=DeliveryStatus.MISSED,
                    error="not sent within the grace window (the bot was down or busy)",
                )
            )
            await session.commit()
        if result.rowcount:
            log.warning("%s reminders missed their window", result.rowcount)
        return result.rowcount or 0

    # --- claiming ------------------------------------------------------------------------

    async def claim(self, now: datetime, limit: int) -> list[int]:
        """Atomically take every due delivery of up to ``limit`` accounts (so one person
        gets one message a morning). Safe across processes sharing the database.

        One ``UPDATE … WHERE status = 'pending' … RETURNING`` statement: on SQLite it runs
        under the database write lock; on PostgreSQL claims are serialized by a
        transaction-level advisory lock (held for milliseconds) and the rows are picked
        ``FOR UPDATE SKIP LOCKED``, so two processes never take the same row nor split one
        person's deliveries between them.
        """
        due = (
            Delivery.status == DeliveryStatus.PENDING,
            Delivery.due_at <= now,
            Delivery.send_until >= now,
            Delivery.platform.in_(list(self.sender.platforms)),
        )
        accounts = (
            select(Delivery.account_id)
            .where(*due)
            .group_by(Delivery.account_id)
            .order_by(func.min(Delivery.due_at), Delivery.account_id)
            .limit(limit)
        )
        candidates = select(Delivery.id).where(*due, Delivery.account_id.in_(accounts))
        async with self.sessions() as session:
            if self.dialect == "postgresql":
                await session.execute(select(func.pg_advisory_xact_lock(CLAIM_LOCK_KEY)))
                candidates = candidates.with_for_update(skip_locked=True)
            ids = list(
                await session.scalars(
                    update(Delivery)
                    .where(Delivery.id.in_(candidates), *due)
                    .values(status=DeliveryStatus.CLAIMED, claimed_by=self.claimer, claimed_at=now)
                    .returning(Delivery.id)
                )
            )
            await session.commit()
        return sorted(ids)

    # --- sending -------------------------------------------------------------------------

    async def send_due(self, stats: TickStats | None = None) -> TickStats:
        """Claim, render and send until nothing is due; claims ahead only a little."""
        stats = stats or TickStats()
        queue: asyncio.Queue[Job | None] = asyncio.Queue(maxsize=self.batch_size)
        workers = [
            asyncio.create_task(self._worker(queue, stats))
            for _ in range(self.settings.concurrency)
        ]
        try:
            while True:
                ids = await self.claim(self.now(), self.batch_size)
                if not ids:
                    break
                for job in await self._render(ids, stats):
                    await queue.put(job)
        finally:
            for _ in workers:
                await queue.put(None)
            await asyncio.gather(*workers, return_exceptions=True)
        return stats

    async def _worker(self, queue: asyncio.Queue[Job | None], stats: TickStats) -> None:
        while True:
            job = await queue.get()
            if job is None:
                return
            try:
                await self._send(job, stats)
            except Exception:
                log.exception("reminder %s could not be sent", job.ids)

    async def _send(self, job: Job, stats: TickStats) -> None:
        async def before() -> bool:
            async with self._write_lock, self.sessions() as session:
                result = await session.execute(
                    update(Delivery)
                    .where(
                        Delivery.id.in_(job.ids),
                        Delivery.status == DeliveryStatus.CLAIMED,
                        Delivery.claimed_by == self.claimer,
                    )
                    .values(attempts=Delivery.attempts + 1)
                )
                await session.commit()
            return (result.rowcount or 0) == len(job.ids)

        result = await self.sender.send(job.platform, job.chat_id, job.message, before=before)
        tried = {(job.platform, job.chat_id)}
        while result.outcome == Outcome.BLOCKED and job.person_id is not None:
            other = await self._fallback(job, tried)
            if other is None:
                break
            tried.add((other.platform, other.chat_id))
            result = await self.sender.send(
                other.platform, other.chat_id, job.message, before=before
            )
        if result.outcome == Outcome.SKIPPED:
            log.warning("deliveries %s were taken back before sending", job.ids)
            return
        if result.outcome == Outcome.REFUSED:  # a revoked token: the next process sends them
            await self._requeue(job.ids)
            return
        status, error = {
            Outcome.SENT: (DeliveryStatus.SENT, None),
            Outcome.BLOCKED: (DeliveryStatus.UNREACHABLE, result.error),
            Outcome.FAILED: (DeliveryStatus.FAILED, result.error),
        }[result.outcome]
        await self._finish(job.ids, status, error)
        stats.add(status, len(job.ids))

    async def _fallback(self, job: Job, tried: set[tuple[str, str]]) -> Recipient | None:
        """The person's next reachable account after a send was refused as blocked; the
        deliveries are moved to it."""
        async with self._write_lock, self.sessions() as session:
            query = recipient_query(self.sender.platforms).where(Account.person_id == job.person_id)
            accounts = [
                r
                for r in (
                    recipient_from_row(row, self.default_zone)
                    for row in await session.execute(query)
                )
                if (r.platform, r.chat_id) not in tried and not r.unreachable
            ]
            if not accounts:
                return None
            other = preferred(accounts)
            await session.execute(
                update(Delivery)
                .where(Delivery.id.in_(job.ids), Delivery.status == DeliveryStatus.CLAIMED)
                .values(account_id=other.account_id, platform=other.platform)
            )
            await session.commit()
        log.info("deliveries %s go to the person's %s account instead", job.ids, other.platform)
        return other

    async def _requeue(self, ids: Iterable[int]) -> None:
        """Back to pending, the attempt not counted: the platform took nothing."""
        async with self._write_lock, self.sessions() as session:
            await session.execute(
                update(Delivery)
                .where(Delivery.id.in_(list(ids)), Delivery.status == DeliveryStatus.CLAIMED)
                .values(
                    status=DeliveryStatus.PENDING,
                    claimed_by=None,
                    claimed_at=None,
                    attempts=Delivery.attempts - 1,
                )
            )
            await session.commit()

    async def _finish(self, ids: Iterable[int], status: str, error: str | None = None) -> None:
        ids = list(ids)
        if not ids:
            return
        values: dict = {"status": status, "error": error}
        if status == DeliveryStatus.SENT:
            values["sent_at"] = self.now()
        async with self._write_lock, self.sessions() as session:
            await session.execute(
                update(Delivery)
                .where(Delivery.id.in_(ids), Delivery.status == DeliveryStatus.CLAIMED)
                .values(**values)
            )
            await session.commit()

    # --- rendering -----------------------------------------------------------------------

    async def _render(self, ids: list[int], stats: TickStats) -> list[Job]:
        async with self.sessions() as session:
            rows = list(
                await session.scalars(
                    select(Delivery).where(Delivery.id.in_(ids)).order_by(Delivery.id)
                )
            )
            renderer = await Renderer.load(
                session,
                rows,
                platforms=self.sender.platforms,
                default_zone=self.default_zone,
                now=self.now,
                forms=self.forms,
            )
            jobs, cancelled, unreachable = await renderer.jobs()
            await session.commit()  # deliveries moved to another account of their person
        await self._finish(cancelled, DeliveryStatus.CANCELLED)
        await self._finish(unreachable, DeliveryStatus.UNREACHABLE, "the recipient blocked the bot")
        stats.add(DeliveryStatus.CANCELLED, len(cancelled))
        stats.add(DeliveryStatus.UNREACHABLE, len(unreachable))
        return jobs


async def reminders_tick(reminders: Reminders) -> None:
    """The APScheduler job."""
    stats = await reminders.tick()
    if stats.sent or stats.missed or stats.failed or stats.unreachable:
        log.info("reminders: %s", stats)
