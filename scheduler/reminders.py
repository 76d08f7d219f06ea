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
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import ReminderSettings
from handlers import callbacks as cb
from handlers.registry import FormRegistry
from handlers.texts import human_date
from handlers.types import Button, OutText
from roadmaps.audience import SchoolFacts
from scheduler.sender import Outcome, Sender
from storage import repo
from storage import roadmaps_db as rdb
from storage.models import (
    Account,
    Campaign,
    CampaignTarget,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Municipality,
    Person,
    Region,
    Response,
    ResponseStatus,
    Roadmap,
    RoadmapItem,
    Role,
    School,
    respondent_key,
)

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted while sending: not resent, the message may have arrived"
MAX_LISTED = 15  # names listed in a digest line before "и ещё N"
INSERT_CHUNK = 500
CLAIM_LOCK_KEY = 0x5E4D_0001  # pg_advisory_xact_lock key serializing claims

# --- texts ---------------------------------------------------------------------------------

ITEMS_TITLE = "⏰ Сроки по дорожной карте «{roadmap}»:"
ITEM_LINE = "• {when}: п. {number}. {action}"
EVIDENCE_LINE = "  Подтверждение: {evidence}"
ITEMS_HINT = "Когда пункт выполнен, отметьте его и приложите документ: /deadlines"
DIGEST_TITLE = "📋 Сроки по дорожной карте «{roadmap}» ({scope}):"
DIGEST_OWN = "  Ваша отметка о выполнении: ещё нет."
DIGEST_SCHOOLS = "  Отметили школы: {done} из {total}. Не отметили: {names}"
DIGEST_MUNICIPALITIES = "  Отметили муниципалитеты: {done} из {total}. Не отметили: {names}"
DIGEST_INFO = "  Исполнители: {executors}"
OVERDUE_TITLE = "⚠️ Просрочено по дорожной карте «{roadmap}» ({scope}):"
OVERDUE_LINE = "• п. {number}. {action} — срок был {due}"
OVERDUE_SCHOOLS = "  Не отметили выполнение ({count}): {names}"
UNREACHABLE_LINE = "🔕 Не получают напоминания (заблокировали бота): {names}"
CAMPAIGN_TEXT = (
    "⏰ Анкета «{title}»: {left} (срок — {deadline}), заполнено {done} из {total}. "
    "Пожалуйста, завершите и отправьте её."
)
CAMPAIGN_TEXT_NO_PROGRESS = (
    "⏰ Анкета «{title}»: {left} (срок — {deadline}). Пожалуйста, заполните и отправьте её."
)
CAMPAIGN_OVERDUE_TITLE = "⚠️ Срок анкеты «{title}» прошёл ({deadline}). Не отправили ({count}):"
BTN_CONTINUE = "▶ Продолжить заполнение"
BTN_START = "▶ Начать заполнение"


def plural(n: int, one: str, few: str, many: str) -> str:
    n = abs(n)
    if n % 10 == 1 and n % 100 != 11:
        return one
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return few
    return many


def days_left(days: int) -> str:
    """«осталось 3 дня», «остался 1 день», «сегодня последний день»."""
    if days <= 0:
        return "сегодня последний день"
    verb = "остался" if plural(days, "1", "", "") == "1" else "осталось"
    return f"{verb} {days} {plural(days, 'день', 'дня', 'дней')}"


def when_text(due_on: date, today: date) -> str:
    days = (due_on - today).days
    if days == 0:
        return f"сегодня, {human_date(due_on)}"
    if days == 1:
        return f"завтра, {human_date(due_on)}"
    if days > 1:
        return f"до {human_date(due_on)} (через {days} {plural(days, 'день', 'дня', 'дней')})"
    return f"срок был {human_date(due_on)}"


def listed(names: Sequence[str], limit: int = MAX_LISTED) -> str:
    shown = ", ".join(names[:limit])
    if len(names) > limit:
        shown += f" и ещё {len(names) - limit}"
    return shown


def shorten(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


# --- time ----------------------------------------------------------------------------------


def as_utc(moment: datetime) -> datetime:
    """SQLite returns naive datetimes; everything stored here is UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True)
class Window:
    due_at: datetime  # UTC
    send_until: datetime  # UTC


def send_window(day: date, zone: str, settings: ReminderSettings) -> Window:
    """When a delivery for ``day`` (local) goes out, and until when it may still go."""
    tz = ZoneInfo(zone)
    local = datetime.combine(day, settings.send_time, tzinfo=tz)
    quiet_day = day if settings.quiet_start > settings.send_time else day + timedelta(days=1)
    quiet = datetime.combine(quiet_day, settings.quiet_start, tzinfo=tz)
    if settings.quiet_start == settings.quiet_end:
        quiet = local + timedelta(days=1)
    until = min(local + settings.grace, quiet)
    return Window(local.astimezone(UTC), until.astimezone(UTC))


# --- who -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipient:
    account_id: int
    person_id: int
    platform: str
    chat_id: str
    role: str
    school_id: int | None
    municipality_id: int | None
    region_id: int | None
    zone: str
    created_at: datetime
    unreachable: bool
    last_active_at: datetime | None = None
    notify_platform: str | None = None  # the person's choice; None: the platform used last


def preferred(accounts: Sequence[Recipient]) -> Recipient:
    """The one account of a person that gets reminders and notices: a reachable one on the
    platform the person chose, else the reachable one used last (all blocked: the last one,
    so the delivery is recorded as unreachable and the coordinator is told)."""
    reachable = [a for a in accounts if not a.unreachable] or list(accounts)
    chosen = [a for a in reachable if a.platform == a.notify_platform]
    return max(
        chosen or reachable,
        key=lambda a: (as_utc(a.last_active_at or a.created_at), a.account_id),
    )


def one_per_person(recipients: Iterable[Recipient]) -> list[Recipient]:
    """Reduce every person's accounts to the preferred one; it counts as registered since
    the person's first account."""
    by_person: dict[int, list[Recipient]] = defaultdict(list)
    for recipient in recipients:
        by_person[recipient.person_id].append(recipient)
    chosen = []
    for accounts in by_person.values():
        first = min(as_utc(a.created_at) for a in accounts)
        chosen.append(replace(preferred(accounts), created_at=first))
    return chosen


def _recipient_query(platforms: Sequence[str]):
    municipality_id = func.coalesce(School.municipality_id, Person.municipality_id)
    return (
        select(
            Account.id,
            Account.person_id,
            Account.platform,
            Account.chat_id,
            Person.role,
            Person.school_id,
            municipality_id,
            func.coalesce(Municipality.region_id, Person.region_id),
            func.coalesce(Municipality.timezone, Region.timezone),
            Account.created_at,
            Account.unreachable_since,
            Account.last_active_at,
            Person.notify_platform,
        )
        .join(Person, Person.id == Account.person_id)
        .outerjoin(School, School.id == Person.school_id)
        .outerjoin(Municipality, Municipality.id == municipality_id)
        .outerjoin(Region, Region.id == func.coalesce(Municipality.region_id, Person.region_id))
        .where(
            Account.platform.in_(list(platforms)),
            Person.role.in_([Role.DIRECTOR, Role.MUNICIPAL, Role.REGIONAL]),
        )
    )


@dataclass
class Geography:
    """Schools and municipalities with their parents, loaded once per planning pass."""

    school_municipality: dict[int, int] = field(default_factory=dict)
    school_name: dict[int, str] = field(default_factory=dict)
    school_facts: dict[int, SchoolFacts] = field(default_factory=dict)
    municipality_region: dict[int, int] = field(default_factory=dict)
    municipality_name: dict[int, str] = field(default_factory=dict)

    @classmethod
    async def load(cls, session: AsyncSession) -> Geography:
        geo = cls()
        for sid, mid, name, code, shnor, shnsu, risk in await session.execute(
            select(
                School.id,
                School.municipality_id,
                School.name,
                School.code,
                School.is_shnor,
                School.is_shnsu,
                School.is_risk_zone,
            )
        ):
            geo.school_municipality[sid] = mid
            geo.school_name[sid] = name
            geo.school_facts[sid] = SchoolFacts(code, name, shnor, shnsu, risk)
        query = select(Municipality.id, Municipality.region_id, Municipality.name)
        for mid, rid, name in await session.execute(query):
            geo.municipality_region[mid] = rid
            geo.municipality_name[mid] = name
        return geo

    def school_region(self, school_id: int) -> int | None:
        return self.municipality_region.get(self.school_municipality.get(school_id, -1))

    def schools_of(self, roadmap: Roadmap, item: RoadmapItem) -> list[int]:
        """Schools of the roadmap's scope that the item applies to (its ``applies_to``)."""
        audience = rdb.audience_of(item, roadmap)
        return [
            sid
            for sid, mid in self.school_municipality.items()
            if rdb.covers(roadmap, self.municipality_region.get(mid), mid)
            and audience.matches(self.school_facts[sid])
        ]

    def municipalities_reached(self, roadmap: Roadmap, item: RoadmapItem) -> list[int]:
        """Municipalities of the scope whose own part of the item applies to them: all of
        them for an item for every school, else those with a school the item is for."""
        if rdb.audience_of(item, roadmap).kind == "all":
            return self.municipalities_of(roadmap)
        with_schools = {self.school_municipality[sid] for sid in self.schools_of(roadmap, item)}
        return [mid for mid in self.municipalities_of(roadmap) if mid in with_schools]

    def reaches(self, item: RoadmapItem, roadmap: Roadmap, school_id: int) -> bool:
        facts = self.school_facts.get(school_id)
        return facts is not None and rdb.audience_of(item, roadmap).matches(facts)

    def municipalities_of(self, roadmap: Roadmap) -> list[int]:
        return [
            mid for mid, rid in self.municipality_region.items() if rdb.covers(roadmap, rid, mid)
        ]


# --- sources -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Occurrence:
    """One deadline: an item's due date or a campaign's deadline."""

    kind: str  # "item" | "campaign"
    source_id: int
    due_on: date
    created_at: datetime


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


@dataclass
class Job:
    """One message to one account, covering one or more deliveries."""

    ids: list[int]
    platform: str
    chat_id: str
    message: OutText
    person_id: int | None = None  # to fall back to the person's other accounts


def spread(jobs: list[Job]) -> list[Job]:
    """Order jobs so that messages to one chat are far apart (each chat waits a second
    between messages; a worker must not sit on the second one while others are ready)."""
    seen: dict[tuple[str, str], int] = defaultdict(int)
    ranked = []
    for index, job in enumerate(jobs):
        chat = (job.platform, job.chat_id)
        ranked.append((seen[chat], index, job))
        seen[chat] += 1
    return [job for *_, job in sorted(ranked, key=lambda r: (r[0], r[1]))]


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
            zones = await self._zones(session, platforms)
            if not zones:
                return 0, 0
            occurrences = await self._occurrences(session, earliest, now)
            units: list[tuple[tuple, Occurrence, int, str, Window]] = []
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
            planner = await _Planner.load(session, self, platforms, [u[1] for u in units])
            rows = []
            for _unit, occ, offset, zone, window in units:
                status = (
                    DeliveryStatus.PENDING if now <= window.send_until else DeliveryStatus.MISSED
                )
                for kind, recipient in planner.recipients(occ, offset, zone):
                    if window.due_at < as_utc(recipient.created_at):
                        continue
                    rows.append(self._row(kind, occ, offset, recipient, window, status, now))
            added = await self._insert(session, rows)
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

    async def _zones(self, session: AsyncSession, platforms: Sequence[str]) -> list[str]:
        query = _recipient_query(platforms).with_only_columns(
            func.coalesce(Municipality.timezone, Region.timezone)
        )
        found = {z or self.default_zone for z in await session.scalars(query.distinct())}
        return sorted(found)

    async def _occurrences(
        self, session: AsyncSession, earliest: datetime, now: datetime
    ) -> list[Occurrence]:
        widest = max(self.settings.offsets, default=0) + 2
        lo = earliest.date() - timedelta(days=self.settings.overdue_after_days + 2)
        hi = now.date() + timedelta(days=widest)
        out: list[Occurrence] = []
        query = (
            select(RoadmapItem, Roadmap.imported_at)
            .join(Roadmap, Roadmap.id == RoadmapItem.roadmap_id)
            .where(
                Roadmap.active.is_(True),
                RoadmapItem.active.is_(True),
                RoadmapItem.due_date.is_not(None),
                RoadmapItem.due_date >= lo,
            )
        )
        for item, imported_at in await session.execute(query):
            for raw in item.due_dates or []:
                due_on = date.fromisoformat(raw)
                if lo <= due_on <= hi:
                    out.append(Occurrence("item", item.id, due_on, as_utc(imported_at)))
        campaigns = await session.scalars(
            select(Campaign).where(
                Campaign.closed_at.is_(None), Campaign.deadline >= lo, Campaign.deadline <= hi
            )
        )
        for campaign in campaigns:
            out.append(
                Occurrence("campaign", campaign.id, campaign.deadline, as_utc(campaign.created_at))
            )
        return out

    def _row(
        self,
        kind: str,
        occ: Occurrence,
        offset: int,
        recipient: Recipient,
        window: Window,
        status: str,
        now: datetime,
    ) -> dict:
        source = "item" if occ.kind == "item" else "campaign"
        # per person, not per account: a person who moves to another platform between two
        # planning passes is not reminded twice
        key = f"{kind}:{occ.source_id}:{occ.due_on.isoformat()}:{offset}:p{recipient.person_id}"
        return {
            "key": key,
            "kind": kind,
            "item_id": occ.source_id if source == "item" else None,
            "campaign_id": occ.source_id if source == "campaign" else None,
            "account_id": recipient.account_id,
            "platform": recipient.platform,
            "offset_days": offset,
            "due_on": occ.due_on,
            "due_at": window.due_at,
            "send_until": window.send_until,
            "status": status,
            "attempts": 0,
            "created_at": now,
            "error": (
                "the bot was not running in the send window"
                if status == DeliveryStatus.MISSED
                else None
            ),
        }

    async def _insert(self, session: AsyncSession, rows: list[dict]) -> list[str]:
        """Insert rows whose key is new; returns the statuses of the rows added."""
        module = postgresql if self.dialect == "postgresql" else sqlite
        added: list[str] = []
        for start in range(0, len(rows), INSERT_CHUNK):
            chunk = rows[start : start + INSERT_CHUNK]
            statement = (
                module.insert(Delivery)
                .values(chunk)
                .on_conflict_do_nothing(index_elements=["key"])
                .returning(Delivery.status)
            )
            added.extend(await session.scalars(statement))
        return added

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
            query = _recipient_query(self.sender.platforms).where(
                Account.person_id == job.person_id
            )
            accounts = [
                r
                for r in (
                    _recipient(row, self.default_zone) for row in await session.execute(query)
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
            renderer = await _Renderer.load(session, self, rows)
            jobs, cancelled, unreachable = await renderer.jobs()
            await session.commit()  # deliveries moved to another account of their person
        await self._finish(cancelled, DeliveryStatus.CANCELLED)
        await self._finish(unreachable, DeliveryStatus.UNREACHABLE, "the recipient blocked the bot")
        stats.add(DeliveryStatus.CANCELLED, len(cancelled))
        stats.add(DeliveryStatus.UNREACHABLE, len(unreachable))
        return jobs


def _recipient(row, default_zone: str) -> Recipient:
    (aid, pid, platform, chat, role, sid, mid, rid, zone, created, unreachable, last, notify) = row
    return Recipient(
        aid, pid, platform, chat, role, sid, mid, rid, zone or default_zone, created,
        unreachable is not None, last, notify,
    )  # fmt: skip


class _Planner:
    """Who should get a delivery for an occurrence, as of now."""

    def __init__(self) -> None:
        self.recipients_by_zone: dict[str, list[Recipient]] = defaultdict(list)
        self.geo = Geography()
        self.items: dict[int, RoadmapItem] = {}
        self.roadmaps: dict[int, Roadmap] = {}
        self.done: set[tuple[int, str, date]] = set()
        self.campaigns: dict[int, Campaign] = {}
        self.targets: dict[int, list[CampaignTarget]] = defaultdict(list)
        self.submitted: set[tuple[int, str]] = set()

    @classmethod
    async def load(
        cls,
        session: AsyncSession,
        reminders: Reminders,
        platforms: Sequence[str],
        occurrences: Sequence[Occurrence],
    ) -> _Planner:
        self = cls()
        everyone = [
            _recipient(row, reminders.default_zone)
            for row in await session.execute(_recipient_query(platforms))
        ]
        for recipient in one_per_person(everyone):
            self.recipients_by_zone[recipient.zone].append(recipient)
        self.geo = await Geography.load(session)
        item_ids = {o.source_id for o in occurrences if o.kind == "item"}
        campaign_ids = {o.source_id for o in occurrences if o.kind == "campaign"}
        if item_ids:
            for item in await session.scalars(
                select(RoadmapItem).where(RoadmapItem.id.in_(item_ids))
            ):
                self.items[item.id] = item
            roadmap_ids = {i.roadmap_id for i in self.items.values()}
            for roadmap in await session.scalars(
                select(Roadmap).where(Roadmap.id.in_(roadmap_ids))
            ):
                self.roadmaps[roadmap.id] = roadmap
            self.done = await rdb.done_set(session, item_ids)
        if campaign_ids:
            for campaign in await session.scalars(
                select(Campaign).where(Campaign.id.in_(campaign_ids))
            ):
                self.campaigns[campaign.id] = campaign
            for target in await session.scalars(
                select(CampaignTarget).where(CampaignTarget.campaign_id.in_(campaign_ids))
            ):
                self.targets[target.campaign_id].append(target)
            self.submitted = set(
                await session.execute(
                    select(Response.campaign_id, Response.respondent_key).where(
                        Response.campaign_id.in_(campaign_ids),
                        Response.status == ResponseStatus.SUBMITTED,
                    )
                )
            )
        return self

    def recipients(
        self, occ: Occurrence, offset: int, zone: str
    ) -> Iterable[tuple[str, Recipient]]:
        people = self.recipients_by_zone.get(zone, [])
        if occ.kind == "item":
            yield from self._item_recipients(occ, offset, people)
        else:
            yield from self._campaign_recipients(occ, offset, people)

    def _item_recipients(
        self, occ: Occurrence, offset: int, people: list[Recipient]
    ) -> Iterable[tuple[str, Recipient]]:
        item = self.items.get(occ.source_id)
        roadmap = self.roadmaps.get(item.roadmap_id) if item else None
        if item is None or roadmap is None:
            return
        roles = set(item.executor_roles or [])
        geo = self.geo

        def open_school(sid: int) -> bool:
            return (item.id, respondent_key(sid, None), occ.due_on) not in self.done

        def open_municipality(mid: int) -> bool:
            return (item.id, respondent_key(None, mid), occ.due_on) not in self.done

        schools = geo.schools_of(roadmap, item) if rdb.DIRECTOR in roles else []
        open_schools_by_m: dict[int, int] = defaultdict(int)
        for sid in schools:
            if open_school(sid):
                open_schools_by_m[geo.school_municipality[sid]] += 1
        municipalities = geo.municipalities_reached(roadmap, item) if rdb.MUNICIPAL in roles else []
        reached_m = set(municipalities)
        open_m_by_region: dict[int, int] = defaultdict(int)
        for mid in municipalities:
            if open_municipality(mid):
                open_m_by_region[geo.municipality_region[mid]] += 1
        overdue = offset < 0
        for r in people:
            if r.role == Role.DIRECTOR:
                if overdue or r.school_id is None or rdb.DIRECTOR not in roles:
                    continue
                if (
                    rdb.covers(roadmap, r.region_id, r.municipality_id)
                    and geo.reaches(item, roadmap, r.school_id)
                    and open_school(r.school_id)
                ):
                    yield DeliveryKind.ITEM, r
            elif r.role == Role.MUNICIPAL:
                if r.municipality_id is None or not rdb.covers(
                    roadmap, r.region_id, r.municipality_id
                ):
                    continue
                late_schools = open_schools_by_m.get(r.municipality_id, 0) > 0
                if overdue:
                    if late_schools:
                        yield DeliveryKind.OVERDUE, r
                elif late_schools or (
                    r.municipality_id in reached_m and open_municipality(r.municipality_id)
                ):
                    yield DeliveryKind.ITEM, r
            elif r.role == Role.REGIONAL:
                if roadmap.region_id is not None and roadmap.region_id != r.region_id:
                    continue
                own_open = (
                    rdb.REGIONAL in roles
                    and r.region_id is not None
                    and (item.id, rdb.region_key(r.region_id), occ.due_on) not in self.done
                )
                late_m = (
                    open_m_by_region.get(r.region_id, 0) > 0
                    if r.region_id is not None
                    else any(open_m_by_region.values())
                )
                if overdue:
                    if late_m:
                        yield DeliveryKind.OVERDUE, r
                elif own_open or late_m or (rdb.DIRECTOR in roles and open_schools_by_m):
                    yield DeliveryKind.ITEM, r
                elif rdb.INSTITUTION in roles and not roles & {rdb.MUNICIPAL, rdb.DIRECTOR}:
                    yield DeliveryKind.ITEM, r  # institutions have no accounts: tell the region

    def _campaign_recipients(
        self, occ: Occurrence, offset: int, people: list[Recipient]
    ) -> Iterable[tuple[str, Recipient]]:
        campaign = self.campaigns.get(occ.source_id)
        if campaign is None:
            return
        day = occ.due_on - timedelta(days=offset)
        if offset >= 0 and campaign.opens_on > day:
            return
        open_keys = {
            t.respondent_key
            for t in self.targets.get(campaign.id, [])
            if (campaign.id, t.respondent_key) not in self.submitted
        }
        if offset >= 0:
            for r in people:
                key = None
                if r.role == Role.DIRECTOR and r.school_id is not None:
                    key = respondent_key(r.school_id, None)
                elif r.role == Role.MUNICIPAL and r.municipality_id is not None:
                    key = respondent_key(None, r.municipality_id)
                if key in open_keys:
                    yield DeliveryKind.CAMPAIGN, r
            return
        late_by_m: set[int] = set()
        late_m_by_region: set[int | None] = set()
        for t in self.targets.get(campaign.id, []):
            if t.respondent_key not in open_keys:
                continue
            if t.school_id is not None:
                late_by_m.add(t.municipality_id or self.geo.school_municipality.get(t.school_id))
            elif t.municipality_id is not None:
                late_m_by_region.add(self.geo.municipality_region.get(t.municipality_id))
        for r in people:
            municipal = r.role == Role.MUNICIPAL and r.municipality_id in late_by_m
            regional = (
                r.role == Role.REGIONAL
                and bool(late_m_by_region)
                and (r.region_id is None or r.region_id in late_m_by_region)
            )
            if municipal or regional:
                yield DeliveryKind.CAMPAIGN_OVERDUE, r


class _Renderer:
    """Turns claimed deliveries into messages, with the state as of now."""

    def __init__(self, session: AsyncSession, reminders: Reminders) -> None:
        self.session = session
        self.reminders = reminders
        self.rows: list[Delivery] = []
        self.recipients: dict[int, Recipient] = {}
        self.geo = Geography()
        self.items: dict[int, RoadmapItem] = {}
        self.roadmaps: dict[int, Roadmap] = {}
        self.done: set[tuple[int, str, date]] = set()
        self.unreachable_people: list[Recipient] = []
        self.by_person: dict[int, list[Recipient]] = defaultdict(list)

    @classmethod
    async def load(
        cls, session: AsyncSession, reminders: Reminders, rows: list[Delivery]
    ) -> _Renderer:
        self = cls(session, reminders)
        self.rows = rows
        account_ids = {r.account_id for r in rows}
        people = select(Account.person_id).where(Account.id.in_(account_ids))
        query = _recipient_query(reminders.sender.platforms)
        for row in await session.execute(query.where(Account.person_id.in_(people))):
            recipient = _recipient(row, reminders.default_zone)
            self.recipients[recipient.account_id] = recipient
            self.by_person[recipient.person_id].append(recipient)
        item_ids = {r.item_id for r in rows if r.item_id is not None}
        if item_ids:
            for item in await session.scalars(
                select(RoadmapItem).where(RoadmapItem.id.in_(item_ids))
            ):
                self.items[item.id] = item
            for roadmap in await session.scalars(
                select(Roadmap).where(Roadmap.id.in_({i.roadmap_id for i in self.items.values()}))
            ):
                self.roadmaps[roadmap.id] = roadmap
            self.done = await rdb.done_set(session, item_ids)
        if any(r.role != Role.DIRECTOR for r in self.recipients.values()):
            self.geo = await Geography.load(session)  # digests name schools and districts
        return self

    async def jobs(self) -> tuple[list[Job], list[int], list[int]]:
        jobs: list[Job] = []
        cancelled: list[int] = []
        unreachable: list[int] = []
        groups: dict[tuple, list[Delivery]] = defaultdict(list)
        for row in self.rows:
            recipient = self.recipients.get(row.account_id)
            if recipient is None:
                cancelled.append(row.id)  # the account is gone or changed role
                continue
            if recipient.unreachable:
                # blocked since it was planned: the person's other account, if any
                recipient = preferred(self.by_person[recipient.person_id])
                if recipient.unreachable:
                    unreachable.append(row.id)
                    continue
                row.account_id, row.platform = recipient.account_id, recipient.platform
            if row.kind == DeliveryKind.CAMPAIGN:
                groups[(row.kind, row.account_id, row.id)].append(row)
            else:
                groups[(row.kind, row.account_id)].append(row)
        for (kind, account_id, *_), rows in groups.items():
            recipient = self.recipients[account_id]
            if kind == DeliveryKind.ITEM:
                message, used = await self._items(recipient, rows)
            elif kind == DeliveryKind.OVERDUE:
                message, used = await self._overdue(recipient, rows)
            elif kind == DeliveryKind.CAMPAIGN:
                message, used = await self._campaign(recipient, rows[0])
            else:
                message, used = await self._campaign_overdue(recipient, rows)
            if message is None:
                cancelled.extend(r.id for r in rows)
                continue
            cancelled.extend(r.id for r in rows if r.id not in used)
            jobs.append(
                Job(
                    [r.id for r in rows if r.id in used],
                    recipient.platform,
                    recipient.chat_id,
                    message,
                    recipient.person_id,
                )
            )
        return spread(jobs), cancelled, unreachable

    def _today(self, recipient: Recipient) -> date:
        return self.reminders.now().astimezone(ZoneInfo(recipient.zone)).date()

    def _is_done(self, item_id: int, key: str, due_on: date) -> bool:
        return (item_id, key, due_on) in self.done

    def _scope_name(self, recipient: Recipient) -> str:
        if recipient.role == Role.MUNICIPAL and recipient.municipality_id is not None:
            return self.geo.municipality_name.get(recipient.municipality_id, "муниципалитет")
        return "регион"

    def _open_schools(self, item: RoadmapItem, roadmap: Roadmap, due_on: date, r: Recipient):
        if r.role == Role.REGIONAL:
            schools = [
                sid
                for sid in self.geo.schools_of(roadmap, item)
                if r.region_id is None or self.geo.school_region(sid) == r.region_id
            ]
        else:
            schools = [
                sid
                for sid in self.geo.schools_of(roadmap, item)
                if self.geo.school_municipality.get(sid) == r.municipality_id
            ]
        late = [sid for sid in schools if not self._is_done(item.id, f"school:{sid}", due_on)]
        return schools, late

    def _open_municipalities(self, item: RoadmapItem, roadmap: Roadmap, due_on: date, r):
        municipalities = [
            mid
            for mid in self.geo.municipalities_reached(roadmap, item)
            if r.region_id is None or self.geo.municipality_region.get(mid) == r.region_id
        ]
        late = [
            mid
            for mid in municipalities
            if not self._is_done(item.id, respondent_key(None, mid), due_on)
        ]
        return municipalities, late

    def _late_line(
        self, template: str, everyone: list[int], late: list[int], names: dict[int, str]
    ) -> str:
        """«done of total» and who is late, for schools or municipalities alike."""
        return template.format(
            done=len(everyone) - len(late),
            total=len(everyone),
            names=listed(self._names(late, names)),
        )

    def _names(self, ids: list[int], names: dict[int, str]) -> list[str]:
        return sorted(names.get(i, str(i)) for i in ids)

    def _active_items(self, rows: list[Delivery]):
        """(delivery, item, roadmap) for deliveries whose item is still active, by due date."""
        for row in sorted(rows, key=lambda d: (d.due_on, d.item_id)):
            item = self.items.get(row.item_id)
            roadmap = self.roadmaps.get(item.roadmap_id) if item else None
            if item is not None and roadmap is not None and item.active:
                yield row, item, roadmap

    async def _items(self, r: Recipient, rows: list[Delivery]) -> tuple[OutText | None, set]:
        today = self._today(r)
        by_roadmap: dict[int, list[str]] = defaultdict(list)
        used: set[int] = set()
        for row, item, roadmap in self._active_items(rows):
            roles = set(item.executor_roles or [])
            lines = [
                ITEM_LINE.format(
                    when=when_text(row.due_on, today).capitalize(),
                    number=item.number.rstrip("."),
                    action=shorten(item.action),
                )
            ]
            if r.role == Role.DIRECTOR:
                if self._is_done(item.id, respondent_key(r.school_id, None), row.due_on):
                    continue
                if item.evidence:
                    lines.append(EVIDENCE_LINE.format(evidence=shorten(item.evidence, 120)))
            else:
                extra = self._digest_lines(item, roadmap, row.due_on, r, roles)
                if extra is None:
                    continue
                lines.extend(extra)
            by_roadmap[roadmap.id].extend(lines)
            used.add(row.id)
        if not used:
            return None, used
        parts = []
        for roadmap_id, lines in by_roadmap.items():
            title = shorten(self.roadmaps[roadmap_id].title, 90)
            if r.role == Role.DIRECTOR:
                parts.append("\n".join([ITEMS_TITLE.format(roadmap=title), *lines]))
            else:
                head = DIGEST_TITLE.format(roadmap=title, scope=self._scope_name(r))
                parts.append("\n".join([head, *lines]))
        if r.role == Role.DIRECTOR:
            parts.append(ITEMS_HINT)
        else:
            blocked = await self._unreachable_below(r)
            if blocked:
                parts.append(UNREACHABLE_LINE.format(names=listed(blocked)))
        return OutText("\n\n".join(parts)), used

    def _digest_lines(
        self, item: RoadmapItem, roadmap: Roadmap, due_on: date, r: Recipient, roles: set[str]
    ) -> list[str] | None:
        lines: list[str] = []
        pending = False
        own = None
        if r.role == Role.MUNICIPAL and rdb.MUNICIPAL in roles:
            own = respondent_key(None, r.municipality_id)
        elif r.role == Role.REGIONAL and rdb.REGIONAL in roles and r.region_id is not None:
            own = rdb.region_key(r.region_id)
        if own is not None and not self._is_done(item.id, own, due_on):
            lines.append(DIGEST_OWN)
            pending = True
        if rdb.DIRECTOR in roles:
            schools, late = self._open_schools(item, roadmap, due_on, r)
            if late:
                pending = True
                lines.append(self._late_line(DIGEST_SCHOOLS, schools, late, self.geo.school_name))
        if r.role == Role.REGIONAL and rdb.MUNICIPAL in roles:
            municipalities, late = self._open_municipalities(item, roadmap, due_on, r)
            if late:
                pending = True
                lines.append(
                    self._late_line(
                        DIGEST_MUNICIPALITIES, municipalities, late, self.geo.municipality_name
                    )
                )
        institutions_only = rdb.INSTITUTION in roles and not roles & {rdb.MUNICIPAL, rdb.DIRECTOR}
        if not pending and r.role == Role.REGIONAL and institutions_only:
            lines.append(DIGEST_INFO.format(executors=shorten(item.executors or "—", 120)))
            pending = True
        return lines if pending else None

    async def _overdue(self, r: Recipient, rows: list[Delivery]) -> tuple[OutText | None, set]:
        by_roadmap: dict[int, list[str]] = defaultdict(list)
        used: set[int] = set()
        for row, item, roadmap in self._active_items(rows):
            roles = set(item.executor_roles or [])
            if r.role == Role.MUNICIPAL and rdb.DIRECTOR in roles:
                _, late = self._open_schools(item, roadmap, row.due_on, r)
                names = self._names(late, self.geo.school_name)
            elif r.role == Role.REGIONAL and rdb.MUNICIPAL in roles:
                _, late = self._open_municipalities(item, roadmap, row.due_on, r)
                names = self._names(late, self.geo.municipality_name)
            else:
                continue
            if not names:
                continue
            by_roadmap[roadmap.id].extend(
                [
                    OVERDUE_LINE.format(
                        number=item.number.rstrip("."),
                        action=shorten(item.action),
                        due=human_date(row.due_on),
                    ),
                    OVERDUE_SCHOOLS.format(count=len(names), names=listed(names)),
                ]
            )
            used.add(row.id)
        if not used:
            return None, used
        parts = [
            "\n".join(
                [
                    OVERDUE_TITLE.format(
                        roadmap=shorten(self.roadmaps[rid].title, 90),
                        scope=self._scope_name(r),
                    ),
                    *lines,
                ]
            )
            for rid, lines in by_roadmap.items()
        ]
        blocked = await self._unreachable_below(r)
        if blocked:
            parts.append(UNREACHABLE_LINE.format(names=listed(blocked)))
        return OutText("\n\n".join(parts)), used

    async def _campaign(self, r: Recipient, row: Delivery) -> tuple[OutText | None, set]:
        session = self.session
        campaign = await session.get(Campaign, row.campaign_id)
        if campaign is None or campaign.closed_at is not None:
            return None, set()
        if r.role == Role.DIRECTOR:
            key = respondent_key(r.school_id, None)
        else:
            key = respondent_key(None, r.municipality_id)
        target = await session.scalar(
            select(CampaignTarget.id).where(
                CampaignTarget.campaign_id == campaign.id, CampaignTarget.respondent_key == key
            )
        )
        if target is None:
            return None, set()
        response = await session.scalar(
            select(Response).where(
                Response.campaign_id == campaign.id, Response.respondent_key == key
            )
        )
        if response is not None and response.status == ResponseStatus.SUBMITTED:
            return None, set()
        today = self._today(r)
        left = days_left((campaign.deadline - today).days)
        progress = await self._progress(campaign, response, r)
        if progress is None:
            text = CAMPAIGN_TEXT_NO_PROGRESS.format(
                title=campaign.title, left=left, deadline=human_date(campaign.deadline)
            )
        else:
            done, total = progress
            text = CAMPAIGN_TEXT.format(
                title=campaign.title,
                left=left,
                deadline=human_date(campaign.deadline),
                done=done,
                total=total,
            )
        label = BTN_CONTINUE if response is not None else BTN_START
        button = Button(label, cb.encode(cb.Action.CAMPAIGN, campaign.id))
        return OutText(text, [[button]]), {row.id}

    async def _progress(
        self, campaign: Campaign, response: Response | None, r: Recipient
    ) -> tuple[int, int] | None:
        forms = self.reminders.forms
        if forms is None:
            return None
        try:
            engine = forms.engine(
                campaign.form_id, response.form_version if response else campaign.form_version
            )
        except LookupError:
            return None
        flags: dict[str, bool] = {}
        if r.school_id is not None:
            school = await self.session.get(School, r.school_id)
            flags = school.flags() if school else {}
        answers = await repo.load_answers(self.session, response.id) if response else {}
        return engine.progress(answers, flags)

    async def _campaign_overdue(
        self, r: Recipient, rows: list[Delivery]
    ) -> tuple[OutText | None, set]:
        parts = []
        used: set[int] = set()
        for row in rows:
            campaign = await self.session.get(Campaign, row.campaign_id)
            if campaign is None or campaign.closed_at is not None:
                continue
            submitted = set(
                await self.session.scalars(
                    select(Response.respondent_key).where(
                        Response.campaign_id == campaign.id,
                        Response.status == ResponseStatus.SUBMITTED,
                    )
                )
            )
            names = []
            for t in await self.session.scalars(
                select(CampaignTarget).where(CampaignTarget.campaign_id == campaign.id)
            ):
                if t.respondent_key in submitted:
                    continue
                if r.role == Role.MUNICIPAL and t.school_id is not None:
                    if (t.municipality_id or self.geo.school_municipality.get(t.school_id)) == (
                        r.municipality_id
                    ):
                        names.append(self.geo.school_name.get(t.school_id, str(t.school_id)))
                elif r.role == Role.REGIONAL and t.school_id is None and t.municipality_id:
                    region = self.geo.municipality_region.get(t.municipality_id)
                    if r.region_id is None or region == r.region_id:
                        names.append(self.geo.municipality_name.get(t.municipality_id, ""))
            if not names:
                continue
            names.sort()
            parts.append(
                CAMPAIGN_OVERDUE_TITLE.format(
                    title=campaign.title, deadline=human_date(campaign.deadline), count=len(names)
                )
                + "\n"
                + listed(names, 50)
            )
            used.add(row.id)
        if not used:
            return None, used
        blocked = await self._unreachable_below(r)
        if blocked:
            parts.append(UNREACHABLE_LINE.format(names=listed(blocked)))
        return OutText("\n\n".join(parts)), used

    async def _unreachable_below(self, r: Recipient) -> list[str]:
        return await unreachable_below(self.session, r.role, r.municipality_id, r.region_id)


async def unreachable_below(
    session: AsyncSession, role: str, municipality_id: int | None, region_id: int | None
) -> list[str]:
    """People a coordinator oversees whose every account blocked the bot."""
    if role == Role.MUNICIPAL and municipality_id is not None:
        query = (
            select(Person.id, School.name, Person.full_name)
            .join(School, School.id == Person.school_id)
            .where(School.municipality_id == municipality_id, Person.role == Role.DIRECTOR)
        )
    elif role == Role.REGIONAL:
        query = (
            select(Person.id, Municipality.name, Person.full_name)
            .join(Municipality, Municipality.id == Person.municipality_id)
            .where(Person.role == Role.MUNICIPAL)
        )
        if region_id is not None:
            query = query.where(Municipality.region_id == region_id)
    else:
        return []
    people = {pid: (place, name) for pid, place, name in await session.execute(query)}
    if not people:
        return []
    reachable: dict[int, bool] = {}
    for pid, since in await session.execute(
        select(Account.person_id, Account.unreachable_since).where(
            Account.person_id.in_(list(people))
        )
    ):
        reachable[pid] = reachable.get(pid, False) or since is None
    out = []
    for pid, ok in reachable.items():
        if not ok:
            place, name = people[pid]
            out.append(f"{place} ({name})" if name else place)
    return sorted(out)


# --- admin view ----------------------------------------------------------------------------


@dataclass
class DeliveryReport:
    counts: dict[str, int]
    problems: list[tuple[Delivery, str]]  # missed / failed / unreachable with the chat


async def delivery_report(session: AsyncSession, limit: int = 20) -> DeliveryReport:
    query = select(Delivery.status, func.count()).group_by(Delivery.status)
    counts = {status: count for status, count in await session.execute(query)}
    problems = []
    query = (
        select(Delivery, Account.chat_id)
        .join(Account, Account.id == Delivery.account_id)
        .where(
            Delivery.status.in_(
                [DeliveryStatus.MISSED, DeliveryStatus.FAILED, DeliveryStatus.UNREACHABLE]
            )
        )
        .order_by(Delivery.due_at.desc(), Delivery.id.desc())
        .limit(limit)
    )
    for delivery, chat in await session.execute(query):
        problems.append((delivery, chat))
    return DeliveryReport(counts, problems)


async def reminders_tick(reminders: Reminders) -> None:
    """The APScheduler job."""
    stats = await reminders.tick()
    if stats.sent or stats.missed or stats.failed or stats.unreachable:
        log.info("reminders: %s", stats)
