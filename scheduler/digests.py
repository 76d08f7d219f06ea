"""The coordinators' daily digest of submissions, at 09:00 their local time.

A coordinator who chose the digest (handlers/notify_flow.py; regional ones by default)
gets one message a day listing the submissions and resubmissions in their scope since the
previous digest's cut-off, with the totals «отправили X из Y» per open campaign. The
message is a ``deliveries`` row (storage.notices, kind digest) keyed by person and local
date, so it is queued once however many ticks and processes run; the reminder tick sends
it. A day's digest covers events up to that day's 09:00 local, so a digest queued late
(the bot was down at 09:00; it is still queued until 21:00 local) says exactly what the
09:00 one would have. Nothing to say: no message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handlers import notice_texts as t
from handlers.submission_notices import mode_of
from handlers.types import OutText
from scheduler.timing import as_utc
from storage import broadcasts, notices
from storage.models import (
    SENT_STATUSES,
    Campaign,
    CampaignTarget,
    Delivery,
    DeliveryKind,
    Municipality,
    NotifyMode,
    Person,
    Region,
    Response,
    ResponseEvent,
    ResponseStatus,
    Role,
    School,
)
from storage.scope import Scope

SEND_TIME = time(9, 0)
LAST_TIME = time(21, 0)  # a digest not queued by then (the bot was down) waits for tomorrow
MAX_LINES = 50
EVENTS = (ResponseStatus.SUBMITTED, ResponseStatus.RESUBMITTED)


def digest_key(person_id: int, day: date) -> str:
    return f"digest:{person_id}:{day.isoformat()}"


@dataclass(frozen=True)
class Due:
    person: Person
    zone: ZoneInfo
    day: date  # local
    cutoff: datetime  # 09:00 local of ``day``, as UTC
    until: datetime  # 21:00 local, as UTC

    @property
    def key(self) -> str:
        return digest_key(self.person.id, self.day)


async def send_digests(
    sessions: async_sessionmaker,
    clock: Callable[[], datetime],
    *,
    default_zone: str = "Europe/Moscow",
    checked: set[str] | None = None,
) -> int:
    """The APScheduler job (every minute): queue today's digests that are due. ``checked``
    (kept by the caller between ticks) spares re-reading a digest already decided today.
    Returns how many digests were queued."""
    now = as_utc(clock())
    checked = checked if checked is not None else set()
    queued = 0
    async with sessions() as session:
        due = [d for d in await _due(session, now, default_zone) if d.key not in checked]
        if not due:
            return 0
        taken = set(
            await session.scalars(
                select(Delivery.key).where(Delivery.key.in_([d.key for d in due]))
            )
        )
        for item in due:
            checked.add(item.key)
            if item.key in taken:
                continue
            message = await digest(session, item, now)
            if message is None:
                continue
            queued += await notices.notify(
                session,
                item.person.id,
                message,
                key=item.key,
                now=now,
                kind=DeliveryKind.DIGEST,
                window=item.until - now,
            )
        await session.commit()
    if len(checked) > 10_000:  # a long-running process: forget past days
        checked.clear()
    return queued


async def _due(session: AsyncSession, now: datetime, default_zone: str) -> list[Due]:
    """Coordinators in digest mode whose local time is between 09:00 and 21:00."""
    region_id = func.coalesce(Municipality.region_id, Person.region_id)
    query = (
        select(Person, func.coalesce(Municipality.timezone, Region.timezone))
        .outerjoin(Municipality, Municipality.id == Person.municipality_id)
        .outerjoin(Region, Region.id == region_id)
        .where(Person.role.in_([Role.MUNICIPAL, Role.REGIONAL]), Person.removed_at.is_(None))
        .order_by(Person.id)
    )
    found = []
    for person, zone_name in await session.execute(query):
        if mode_of(person) != NotifyMode.DIGEST:
            continue
        zone = ZoneInfo(zone_name or default_zone)
        local = now.astimezone(zone)
        start = datetime.combine(local.date(), SEND_TIME, tzinfo=zone)
        end = datetime.combine(local.date(), LAST_TIME, tzinfo=zone)
        if start <= local < end:
            found.append(
                Due(
                    person,
                    zone,
                    local.date(),
                    start.astimezone(now.tzinfo),
                    end.astimezone(now.tzinfo),
                )
            )
    return found


async def _since(session: AsyncSession, item: Due) -> datetime:
    """The previous digest's cut-off (its day's 09:00 local); the day before, if none."""
    previous = await session.scalar(
        select(func.max(Delivery.key)).where(
            Delivery.kind == DeliveryKind.DIGEST,
            Delivery.person_id == item.person.id,
            Delivery.key < item.key,
            Delivery.key.like(f"digest:{item.person.id}:%"),
        )
    )
    if previous:
        try:
            day = date.fromisoformat(previous.rsplit(":", 1)[1])
            return as_utc(datetime.combine(day, SEND_TIME, tzinfo=item.zone))
        except ValueError:
            pass
    return item.cutoff - timedelta(days=1)


async def digest(session: AsyncSession, item: Due, now: datetime) -> OutText | None:
    scope = Scope.of(item.person)
    since = await _since(session, item)
    rows = list(
        await session.execute(
            select(
                ResponseEvent.at,
                ResponseEvent.status,
                School.name,
                Municipality.name,
                Campaign.title,
            )
            .join(Response, Response.id == ResponseEvent.response_id)
            .join(School, School.id == Response.school_id)
            .join(Municipality, Municipality.id == School.municipality_id)
            .join(Campaign, Campaign.id == Response.campaign_id)
            .where(
                ResponseEvent.status.in_(list(EVENTS)),
                ResponseEvent.at >= since,
                ResponseEvent.at < item.cutoff,
                scope.school_clause(),
            )
            .order_by(ResponseEvent.at, ResponseEvent.id)
        )
    )
    if not rows:
        return None
    lines = [t.DIGEST_TITLE, ""]
    for at, status, school, municipality, campaign in rows[:MAX_LINES]:
        line = t.DIGEST_LINE.format(
            when=as_utc(at).astimezone(item.zone).strftime("%d.%m %H:%M"),
            school=school,
            municipality=municipality,
            campaign=campaign,
        )
        lines.append(line + (t.DIGEST_RESUBMITTED if status == ResponseStatus.RESUBMITTED else ""))
    if len(rows) > MAX_LINES:
        lines.append(t.DIGEST_MORE.format(count=len(rows) - MAX_LINES))
    totals = await campaign_totals(session, scope, item.day)
    if totals:
        lines += ["", t.DIGEST_TOTALS]
        lines += [
            t.DIGEST_TOTAL_LINE.format(campaign=title, sent=sent, total=total)
            for title, sent, total in totals
        ]
    lines += ["", t.DIGEST_FOOTER]
    return OutText("\n".join(lines))


async def campaign_totals(
    session: AsyncSession, scope: Scope, today: date
) -> list[tuple[str, int, int]]:
    """(title, sent, targeted) per open campaign, over the schools of the scope."""
    campaigns = await broadcasts.open_campaigns(session, scope, today)
    if not campaigns:
        return []
    ids = [c.id for c in campaigns]
    targeted = dict(
        (
            await session.execute(
                select(CampaignTarget.campaign_id, func.count())
                .join(School, School.id == CampaignTarget.school_id)
                .where(CampaignTarget.campaign_id.in_(ids), scope.school_clause())
                .group_by(CampaignTarget.campaign_id)
            )
        ).all()
    )
    sent = dict(
        (
            await session.execute(
                select(Response.campaign_id, func.count())
                .join(School, School.id == Response.school_id)
                .where(
                    Response.campaign_id.in_(ids),
                    Response.status.in_(list(SENT_STATUSES)),
                    scope.school_clause(),
                )
                .group_by(Response.campaign_id)
            )
        ).all()
    )
    return [(c.title, sent.get(c.id, 0), targeted.get(c.id, 0)) for c in campaigns]
