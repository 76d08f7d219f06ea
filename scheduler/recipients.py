"""Who can get reminders: an account per person, its time zone, and the geography of
schools and municipalities that decides whose items are whose."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from roadmaps.audience import SchoolFacts
from scheduler.timing import as_utc
from storage import roadmaps_db as rdb
from storage.models import Account, Municipality, Person, Region, Roadmap, RoadmapItem, Role, School

T = TypeVar("T")


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
    return pick_preferred(
        accounts,
        unreachable=lambda a: a.unreachable,
        chosen=lambda a: a.platform == a.notify_platform,
        recency=lambda a: (as_utc(a.last_active_at or a.created_at), a.account_id),
    )


def pick_preferred(
    accounts: Sequence[T],
    *,
    unreachable: Callable[[T], bool],
    chosen: Callable[[T], bool],
    recency: Callable[[T], Any],
) -> T:
    """The rule of :func:`preferred` for any account-like rows (storage/notices.py uses it
    on ``Account`` rows)."""
    reachable = [a for a in accounts if not unreachable(a)] or list(accounts)
    return max([a for a in reachable if chosen(a)] or reachable, key=recency)


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


def recipient_query(platforms: Sequence[str]):
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
            Person.removed_at.is_(None),  # removed by an admin: no reminders
            Account.deactivated_at.is_(None),  # switched off by an admin
        )
    )


def recipient_from_row(row, default_zone: str) -> Recipient:
    (aid, pid, platform, chat, role, sid, mid, rid, zone, created, unreachable, last, notify) = row
    return Recipient(
        aid, pid, platform, chat, role, sid, mid, rid, zone or default_zone, created,
        unreachable is not None, last, notify,
    )  # fmt: skip


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
