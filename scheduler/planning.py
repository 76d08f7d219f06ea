"""Planning deliveries: the deadlines near now, who should be reminded of each, and the
``deliveries`` rows that record it (inserted once per key, whoever plans first)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import ReminderSettings
from scheduler.recipients import (
    Geography,
    Recipient,
    one_per_person,
    recipient_from_row,
    recipient_query,
)
from scheduler.timing import Window, as_utc
from storage import roadmaps_db as rdb
from storage.database import dialect_insert
from storage.models import (
    SENT_STATUSES,
    Campaign,
    CampaignTarget,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Municipality,
    Region,
    Response,
    Roadmap,
    RoadmapItem,
    Role,
    respondent_key,
)

INSERT_CHUNK = 500


@dataclass(frozen=True)
class Occurrence:
    """One deadline: an item's due date or a campaign's deadline."""

    kind: str  # "item" | "campaign"
    source_id: int
    due_on: date
    created_at: datetime


async def zones(session: AsyncSession, platforms: Sequence[str], default_zone: str) -> list[str]:
    """The time zones of everyone who can get reminders."""
    query = recipient_query(platforms).with_only_columns(
        func.coalesce(Municipality.timezone, Region.timezone)
    )
    found = {z or default_zone for z in await session.scalars(query.distinct())}
    return sorted(found)


async def occurrences(
    session: AsyncSession, settings: ReminderSettings, earliest: datetime, now: datetime
) -> list[Occurrence]:
    """Deadlines near enough to ``[earliest, now]`` for one of their offsets to fall in it."""
    widest = max(settings.offsets, default=0) + 2
    lo = earliest.date() - timedelta(days=settings.overdue_after_days + 2)
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


def delivery_row(
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


async def insert_new(session: AsyncSession, rows: list[dict]) -> list[str]:
    """Insert rows whose key is new; returns the statuses of the rows added."""
    added: list[str] = []
    for start in range(0, len(rows), INSERT_CHUNK):
        chunk = rows[start : start + INSERT_CHUNK]
        statement = (
            dialect_insert(session, Delivery)
            .values(chunk)
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(Delivery.status)
        )
        added.extend(await session.scalars(statement))
    return added


class Planner:
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
        platforms: Sequence[str],
        default_zone: str,
        occurrences: Sequence[Occurrence],
    ) -> Planner:
        self = cls()
        everyone = [
            recipient_from_row(row, default_zone)
            for row in await session.execute(recipient_query(platforms))
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
                        Response.status.in_(SENT_STATUSES),
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
