"""Roadmaps in the database: scope, audience, completions and progress (saving is in
``storage.roadmaps_save``).

The pure part (parsing deadlines, reading tables and YAML) lives in ``roadmaps/``; this
module only stores its result and answers questions about it.

Who does an item: its ``executor_roles`` (see ``roadmaps.model``). A school reports the
items with the ``director`` role, a municipality the ``municipal`` ones, the region the
``regional`` ones. Each due date of an item is one occurrence to report (recurring items
have several); an item without a date has one occurrence at the end of the period.
Completion per school is the share of its occurrences reported done — what seed 002
measures as «Исполнение дорожной карты не менее 30-40%» by 30.06.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from roadmaps.audience import ALL, AppliesTo, SchoolFacts
from roadmaps.deadlines import Deadline
from storage import repo
from storage.files import StoredFile
from storage.models import (
    ItemCompletion,
    Municipality,
    Person,
    Region,
    Roadmap,
    RoadmapItem,
    Role,
    School,
    respondent_key,
    utcnow,
)

DIRECTOR, MUNICIPAL, REGIONAL, INSTITUTION = "director", "municipal", "regional", "institution"
ROLE_OF_LEVEL = {"school": DIRECTOR, "municipality": MUNICIPAL, "region": REGIONAL}


def region_key(region_id: int) -> str:
    return f"region:{region_id}"


def parse_key(key: str) -> tuple[str, int]:
    kind, _, raw = key.partition(":")
    return kind, int(raw)


def occurrences(due_dates: Sequence[str], period_end: date) -> list[date]:
    """Due dates to report: every due date, or the period end for an item without one."""
    return [date.fromisoformat(d) for d in due_dates] or [period_end]


async def scope_text(session: AsyncSession, roadmap: Roadmap) -> str:
    audience = AppliesTo.from_json(roadmap.applies_to) or ALL
    who = "" if audience.kind == "all" else f", {audience.describe()}"
    if roadmap.municipality_id is not None:
        municipality = await session.get(Municipality, roadmap.municipality_id)
        return f"муниципалитет «{municipality.name}»{who}"
    if roadmap.region_id is not None:
        region = await session.get(Region, roadmap.region_id)
        return f"регион «{region.name}»{who}"
    return "все школы" if not who else who.removeprefix(", ")


@dataclass
class RoadmapRow:
    roadmap: Roadmap
    items: int
    undated: int
    scope: str
    schools: int


async def list_roadmaps(session: AsyncSession) -> list[RoadmapRow]:
    rows = []
    for roadmap in await session.scalars(select(Roadmap).order_by(Roadmap.id)):
        items = list(
            await session.scalars(
                select(RoadmapItem).where(
                    RoadmapItem.roadmap_id == roadmap.id, RoadmapItem.active.is_(True)
                )
            )
        )
        rows.append(
            RoadmapRow(
                roadmap,
                len(items),
                sum(1 for i in items if not i.due_dates),
                await scope_text(session, roadmap),
                len(await schools_in_scope(session, roadmap)),
            )
        )
    return rows


# --- scope ---------------------------------------------------------------------------------


async def active_roadmaps(session: AsyncSession) -> list[Roadmap]:
    return list(
        await session.scalars(select(Roadmap).where(Roadmap.active.is_(True)).order_by(Roadmap.id))
    )


def facts_of(school: School) -> SchoolFacts:
    return SchoolFacts(
        school.code, school.name, school.is_shnor, school.is_shnsu, school.is_risk_zone
    )


def audience_of(item: RoadmapItem, roadmap: Roadmap) -> AppliesTo:
    """Whom the item applies to: its own ``applies_to``, else its roadmap's, else everyone."""
    return AppliesTo.from_json(item.applies_to) or AppliesTo.from_json(roadmap.applies_to) or ALL


def for_school(item: RoadmapItem, roadmap: Roadmap, school: SchoolFacts | None) -> bool:
    """The item is a school item and applies to this school (``None``: no school to check)."""
    return school is None or audience_of(item, roadmap).matches(school)


def for_municipality(item: RoadmapItem, roadmap: Roadmap, schools: Sequence[SchoolFacts]) -> bool:
    """A municipality's own item reaches it when the item is for all schools or for at least
    one of the municipality's schools (a ШНОР roadmap is nothing to a district without ШНОР)."""
    audience = audience_of(item, roadmap)
    return audience.kind == "all" or any(audience.matches(s) for s in schools)


async def schools_in_scope(session: AsyncSession, roadmap: Roadmap) -> list[School]:
    """Schools of the roadmap's geography that at least one of its audiences reaches."""
    audiences = {AppliesTo.from_json(roadmap.applies_to) or ALL}
    for item in await items_of(session, [roadmap.id]):
        audiences.add(audience_of(item, roadmap))
    return [
        s
        for s in await geographic_schools(session, roadmap)
        if any(a.matches(facts_of(s)) for a in audiences)
    ]


async def geographic_schools(session: AsyncSession, roadmap: Roadmap) -> list[School]:
    query = select(School).order_by(School.name, School.id)
    if roadmap.municipality_id is not None:
        query = query.where(School.municipality_id == roadmap.municipality_id)
    elif roadmap.region_id is not None:
        query = query.join(Municipality, Municipality.id == School.municipality_id).where(
            Municipality.region_id == roadmap.region_id
        )
    return list(await session.scalars(query))


async def municipalities_in_scope(session: AsyncSession, roadmap: Roadmap) -> list[Municipality]:
    query = select(Municipality).order_by(Municipality.name, Municipality.id)
    if roadmap.municipality_id is not None:
        query = query.where(Municipality.id == roadmap.municipality_id)
    elif roadmap.region_id is not None:
        query = query.where(Municipality.region_id == roadmap.region_id)
    return list(await session.scalars(query))


def covers(roadmap: Roadmap, region_id: int | None, municipality_id: int | None) -> bool:
    if roadmap.municipality_id is not None:
        return roadmap.municipality_id == municipality_id
    if roadmap.region_id is not None:
        return roadmap.region_id == region_id
    return True


@dataclass(frozen=True)
class Place:
    """Where a person works: the keys they report for and the scope they oversee."""

    role: str
    school_id: int | None
    municipality_id: int | None
    region_id: int | None
    school: SchoolFacts | None = None  # a director's school, for the items' audience
    municipality_schools: tuple[SchoolFacts, ...] = ()  # a municipal coordinator's schools

    @property
    def own_key(self) -> str | None:
        if self.role == Role.DIRECTOR and self.school_id is not None:
            return respondent_key(self.school_id, None)
        if self.role == Role.MUNICIPAL and self.municipality_id is not None:
            return respondent_key(None, self.municipality_id)
        if self.role == Role.REGIONAL and self.region_id is not None:
            return region_key(self.region_id)
        return None

    @property
    def executor_role(self) -> str | None:
        return {Role.DIRECTOR: DIRECTOR, Role.MUNICIPAL: MUNICIPAL, Role.REGIONAL: REGIONAL}.get(
            self.role
        )


async def place_of(session: AsyncSession, person: Person) -> Place:
    school_id, municipality_id, region_id = person.school_id, person.municipality_id, None
    facts = None
    if school_id is not None:
        school = await session.get(School, school_id)
        municipality_id = school.municipality_id if school else municipality_id
        facts = facts_of(school) if school else None
    if municipality_id is not None:
        municipality = await session.get(Municipality, municipality_id)
        region_id = municipality.region_id if municipality else None
    if region_id is None:
        region_id = person.region_id
    schools: tuple[SchoolFacts, ...] = ()
    if person.role == Role.MUNICIPAL and municipality_id is not None:
        query = select(School).where(School.municipality_id == municipality_id)
        schools = tuple(facts_of(s) for s in await session.scalars(query))
    return Place(person.role, school_id, municipality_id, region_id, facts, schools)


async def roadmaps_for(session: AsyncSession, place: Place) -> list[Roadmap]:
    found = [
        r
        for r in await active_roadmaps(session)
        if covers(r, place.region_id, place.municipality_id)
        or (place.role == Role.REGIONAL and r.region_id == place.region_id)
        or (place.role == Role.ADMIN)
    ]
    if place.role == Role.DIRECTOR and place.school is not None:

        def reaches(item: RoadmapItem, roadmap: Roadmap) -> bool:
            return applies(item, DIRECTOR) and for_school(item, roadmap, place.school)

    elif place.role == Role.MUNICIPAL and place.municipality_id is not None:

        def reaches(item: RoadmapItem, roadmap: Roadmap) -> bool:
            return for_municipality(item, roadmap, place.municipality_schools)

    else:
        return found
    by_id = {r.id: r for r in found}
    reached = {
        item.roadmap_id
        for item in await items_of(session, list(by_id))
        if reaches(item, by_id[item.roadmap_id])
    }
    return [r for r in found if r.id in reached]


def is_mine(item: RoadmapItem, roadmap: Roadmap, place: Place) -> bool:
    """The person reports this item: their role is among its executors, and a director's
    school is among the schools it applies to."""
    role = place.executor_role
    if role is None or not applies(item, role):
        return False
    if role == MUNICIPAL:
        return for_municipality(item, roadmap, place.municipality_schools)
    return role != DIRECTOR or for_school(item, roadmap, place.school)


async def items_of(session: AsyncSession, roadmap_ids: Iterable[int]) -> list[RoadmapItem]:
    ids = list(roadmap_ids)
    if not ids:
        return []
    return list(
        await session.scalars(
            select(RoadmapItem)
            .where(RoadmapItem.roadmap_id.in_(ids), RoadmapItem.active.is_(True))
            .order_by(RoadmapItem.roadmap_id, RoadmapItem.position)
        )
    )


# --- completions ---------------------------------------------------------------------------


class AlreadyDone(Exception):
    def __init__(self, completion: ItemCompletion) -> None:
        super().__init__("already reported")
        self.completion = completion


async def mark_done(
    session: AsyncSession,
    item: RoadmapItem,
    key: str,
    due_on: date,
    person_id: int | None,
    *,
    note: str | None = None,
    evidence: StoredFile | None = None,
    evidence_name: str | None = None,
    platform: str | None = None,
    file_id: str | None = None,
    at: datetime | None = None,
) -> ItemCompletion:
    """Record one occurrence as done; raises AlreadyDone if it is reported already."""
    found = await completion_of(session, item.id, key, due_on)
    if found is not None:
        raise AlreadyDone(found)
    kind, raw = parse_key(key)
    completion = ItemCompletion(
        item_id=item.id,
        respondent_key=key,
        school_id=raw if kind == "school" else None,
        municipality_id=raw if kind == "municipality" else None,
        due_on=due_on,
        done_at=at or utcnow(),
        done_by=person_id,
        note=note,
        evidence_name=evidence_name,
        evidence_platform=platform,
        evidence_file_id=file_id,
    )
    if evidence is not None:
        completion.evidence_path = evidence.relative_path
        completion.evidence_sha256 = evidence.sha256
        completion.evidence_size = evidence.size
        completion.evidence_mime = evidence.mime_type
    try:
        async with session.begin_nested():
            session.add(completion)
    except IntegrityError:  # reported a moment ago from another chat
        raise AlreadyDone(await completion_of(session, item.id, key, due_on)) from None
    await repo.audit(
        session,
        "roadmap_done",
        "roadmap_item",
        item.id,
        person_id,
        respondent=key,
        due_on=due_on.isoformat(),
        evidence=evidence_name,
    )
    return completion


async def completion_of(
    session: AsyncSession, item_id: int, key: str, due_on: date
) -> ItemCompletion | None:
    return await session.scalar(
        select(ItemCompletion).where(
            ItemCompletion.item_id == item_id,
            ItemCompletion.respondent_key == key,
            ItemCompletion.due_on == due_on,
        )
    )


async def done_set(
    session: AsyncSession, item_ids: Iterable[int], keys: Iterable[str] | None = None
) -> set[tuple[int, str, date]]:
    """(item id, respondent key, occurrence) of every reported occurrence."""
    ids = list(item_ids)
    if not ids:
        return set()
    query = select(
        ItemCompletion.item_id, ItemCompletion.respondent_key, ItemCompletion.due_on
    ).where(ItemCompletion.item_id.in_(ids))
    if keys is not None:
        keys = list(keys)
        if not keys:
            return set()
        query = query.where(ItemCompletion.respondent_key.in_(keys))
    return {(i, k, d) for i, k, d in await session.execute(query)}


# --- progress ------------------------------------------------------------------------------


@dataclass
class Progress:
    done: int = 0
    total: int = 0
    due: int = 0  # occurrences whose date has come
    due_done: int = 0

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.total) if self.total else 0

    @property
    def overdue(self) -> int:
        return self.due - self.due_done


def applies(item: RoadmapItem, role: str) -> bool:
    return role in (item.executor_roles or [])


def progress_for(
    items: Iterable[RoadmapItem],
    roadmap: Roadmap,
    place: Place,
    done: set[tuple[int, str, date]],
    today: date,
) -> Progress:
    """The person's own progress (their role and key), counting only the items for them."""
    role, key = place.executor_role, place.own_key
    if role is None or key is None:
        return Progress()
    schools = place.municipality_schools if role == MUNICIPAL else None
    return progress_of(items, roadmap, role, key, done, today, place.school, schools)


def item_occurrences(item: RoadmapItem, roadmap: Roadmap) -> list[date]:
    return occurrences(item.due_dates or [], roadmap.period_end)


def progress_of(
    items: Iterable[RoadmapItem],
    roadmap: Roadmap,
    role: str,
    key: str,
    done: set[tuple[int, str, date]],
    today: date,
    school: SchoolFacts | None = None,
    municipality_schools: Sequence[SchoolFacts] | None = None,
) -> Progress:
    """Progress of one respondent; a school's (a municipality's) counts only the items that
    apply to it (see :func:`for_school`, :func:`for_municipality`)."""
    result = Progress()
    for item in items:
        if item.roadmap_id != roadmap.id or not applies(item, role):
            continue
        if role == DIRECTOR and not for_school(item, roadmap, school):
            continue
        if (
            role == MUNICIPAL
            and municipality_schools is not None
            and not for_municipality(item, roadmap, municipality_schools)
        ):
            continue
        for due_on in item_occurrences(item, roadmap):
            is_done = (item.id, key, due_on) in done
            result.total += 1
            result.done += is_done
            if due_on < today:
                result.due += 1
                result.due_done += is_done
    return result


async def school_progress(
    session: AsyncSession, roadmap: Roadmap, today: date
) -> dict[int, Progress]:
    items = await items_of(session, [roadmap.id])
    schools = await schools_in_scope(session, roadmap)
    done = await done_set(session, [i.id for i in items])
    return {
        s.id: progress_of(
            items, roadmap, DIRECTOR, respondent_key(s.id, None), done, today, facts_of(s)
        )
        for s in schools
    }


async def municipality_progress(
    session: AsyncSession, roadmap: Roadmap, today: date
) -> dict[int, tuple[Progress, Progress]]:
    """Per municipality: (its own items, all its schools' items together)."""
    items = await items_of(session, [roadmap.id])
    done = await done_set(session, [i.id for i in items])
    schools_by_municipality: dict[int, list[School]] = defaultdict(list)
    for school in await schools_in_scope(session, roadmap):
        schools_by_municipality[school.municipality_id].append(school)
    facts_by_municipality: dict[int, list[SchoolFacts]] = defaultdict(list)
    for school in await geographic_schools(session, roadmap):
        facts_by_municipality[school.municipality_id].append(facts_of(school))
    out = {}
    for municipality in await municipalities_in_scope(session, roadmap):
        key = respondent_key(None, municipality.id)
        facts = facts_by_municipality.get(municipality.id, [])
        own = progress_of(items, roadmap, MUNICIPAL, key, done, today, None, facts)
        schools = Progress()
        for school in schools_by_municipality.get(municipality.id, []):
            key = respondent_key(school.id, None)
            p = progress_of(items, roadmap, DIRECTOR, key, done, today, facts_of(school))
            schools.done += p.done
            schools.total += p.total
            schools.due += p.due
            schools.due_done += p.due_done
        out[municipality.id] = (own, schools)
    return out


def milestones(roadmap: Roadmap) -> list[dict[str, Any]]:
    return sorted(
        (roadmap.definition or {}).get("milestones") or [], key=lambda m: m.get("date", "")
    )


def next_milestone(roadmap: Roadmap, today: date) -> dict[str, Any] | None:
    """The first milestone on or after today (or the last one, once all have passed)."""
    stones = milestones(roadmap)
    for stone in stones:
        if date.fromisoformat(stone["date"]) >= today:
            return stone
    return stones[-1] if stones else None


def deadline_of(item: RoadmapItem) -> Deadline | None:
    return Deadline.from_json(item.deadline) if item.deadline else None


# --- the export's «Дорожная карта» sheet -----------------------------------------------------


@dataclass
class MatrixCell:
    status: str  # done | overdue | upcoming | undated
    due_on: date | None
    evidence: str | None = None
    done_at: datetime | None = None


async def roadmap_matrix(
    session: AsyncSession, roadmap: Roadmap, today: date
) -> tuple[list[RoadmapItem], list[School], dict[tuple[int, int], list[MatrixCell]]]:
    """Items × schools with the state of each occurrence, for an export sheet."""
    items = [i for i in await items_of(session, [roadmap.id]) if applies(i, DIRECTOR)]
    schools = await schools_in_scope(session, roadmap)
    completions = {
        (c.item_id, c.respondent_key, c.due_on): c
        for c in await session.scalars(
            select(ItemCompletion).where(ItemCompletion.item_id.in_([i.id for i in items]))
        )
    }
    cells: dict[tuple[int, int], list[MatrixCell]] = {}
    for item in items:
        for school in schools:
            if not for_school(item, roadmap, facts_of(school)):
                continue  # the item is not for this school: no cells at all
            key = respondent_key(school.id, None)
            row = []
            for due_on in item_occurrences(item, roadmap):
                c = completions.get((item.id, key, due_on))
                if c is not None:
                    row.append(MatrixCell("done", due_on, c.evidence_name or c.note, c.done_at))
                elif not item.due_dates:
                    row.append(MatrixCell("undated", None))
                else:
                    row.append(MatrixCell("overdue" if due_on < today else "upcoming", due_on))
            cells[(item.id, school.id)] = row
    return items, schools, cells


async def school_completions(
    session: AsyncSession, item_ids: Sequence[int], school_ids: Sequence[int]
) -> list[tuple[int, int, date, str | None, str | None]]:
    """(item id, school id, occurrence, evidence name, note) of the given schools' reports.

    For the export, one chunk of schools at a time: memory holds a chunk, never all
    completions × schools of a large region. Selected by school only (its index) and
    filtered by item here: with both in SQL, SQLite may walk the item index and read every
    school's completions for each chunk.
    """
    if not item_ids or not school_ids:
        return []
    wanted = set(item_ids)
    rows = await session.execute(
        select(
            ItemCompletion.item_id,
            ItemCompletion.school_id,
            ItemCompletion.due_on,
            ItemCompletion.evidence_name,
            ItemCompletion.note,
        ).where(ItemCompletion.school_id.in_(list(school_ids)))
    )
    return [(i, s, d, name, note) for i, s, d, name, note in rows if i in wanted]
