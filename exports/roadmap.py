"""The «Дорожная карта» sheet of the export: roadmap items × schools.

One row per school covered by an active roadmap (in the export's scope: a municipal
coordinator sees only their municipality's schools), in the other sheets' order
(municipality name, school name). For every roadmap, its completion columns come first, then
two columns per school item (an item with the ``director`` executor role):

* the state — «выполнено» (every occurrence reported), «просрочено» (an occurrence whose date
  has passed is not reported), «в срок до ДД.ММ» (the nearest unreported occurrence), or
  empty when the roadmap does not cover the school or the item is not for it («Для кого»);
* the evidence — the name of the evidence document and the note of each reported occurrence
  (prefixed with the occurrence's date for recurring items).

Completion is measured as seed 002 does («Исполнение дорожной карты не менее 30-40%» by
30.06, «80-90%» by 30.11): reported occurrences of the school's items over all of them, the
same figure as :func:`storage.roadmaps_db.progress_of`. Beside it: the overdue occurrences
and, for a roadmap with milestones, whether the school has reached the next one (as of the
export date). A last «Итого» row sums the schools up.

No active roadmap with school items in the scope: the sheet is left out (the workbook keeps
its six sheets; importing a roadmap — ``python -m bot roadmap import --bundled`` — adds it).

Loading streams like :mod:`exports.data`: the ordered school ids first, then per chunk the
schools with their completions (:func:`storage.roadmaps_db.school_completions`), each chunk in
a short session of its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import and_, false, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from exports.specs import ColumnSpec
from roadmaps.audience import ALL, AppliesTo, SchoolFacts
from storage import roadmaps_db as rdb
from storage.models import Municipality, School

SHEET_ROADMAP = "Дорожная карта"
DONE = "выполнено"
OVERDUE = "просрочено"
TOTAL = "Итого"
MAX_TITLE = 60
MAX_ACTION = 120
MAX_CELL_TEXT = 32_000


@dataclass(frozen=True, slots=True)
class RoadmapItemInfo:
    id: int
    number: str
    action: str
    deadline_text: str
    occurrences: tuple[date, ...]  # what the school reports; the period end when undated
    audience: AppliesTo = ALL  # the schools it applies to (roadmaps.audience)


@dataclass(frozen=True, slots=True)
class MilestoneInfo:
    date: date
    min_percent: int
    text: str


@dataclass(frozen=True, slots=True)
class RoadmapInfo:
    id: int
    key: str
    title: str
    region_id: int | None
    municipality_id: int | None
    items: tuple[RoadmapItemInfo, ...]
    milestones: tuple[MilestoneInfo, ...] = ()
    named_ids: frozenset[int] = frozenset()  # schools named by an item's «школы: …»

    def covers(self, region_id: int | None, municipality_id: int | None) -> bool:
        if self.municipality_id is not None:
            return self.municipality_id == municipality_id
        if self.region_id is not None:
            return self.region_id == region_id
        return True

    def reaches(self, school: RoadmapSchool) -> bool:
        """Its scope covers the school and at least one of its items applies to it."""
        return self.covers(school.region_id, school.municipality_id) and any(
            item.audience.matches(school.facts) for item in self.items
        )

    def next_milestone(self, today: date) -> MilestoneInfo | None:
        """The first milestone on or after today, or the last one once all have passed."""
        for stone in self.milestones:
            if stone.date >= today:
                return stone
        return self.milestones[-1] if self.milestones else None


@dataclass(slots=True)
class RoadmapSchool:
    """One school of the sheet with its reported occurrences."""

    id: int
    name: str
    code: str | None
    municipality_id: int
    municipality: str
    region_id: int
    is_shnor: bool = False
    is_shnsu: bool = False
    is_risk_zone: bool = False
    # (item id, occurrence) -> (evidence name, note)
    done: dict[tuple[int, date], tuple[str | None, str | None]] = field(default_factory=dict)

    @property
    def facts(self) -> SchoolFacts:
        return SchoolFacts(self.code, self.name, self.is_shnor, self.is_shnsu, self.is_risk_zone)


@dataclass(slots=True)
class RoadmapChunk:
    """A chunk of the sheet's schools, travelling through the export queue after the targets."""

    schools: list[RoadmapSchool]


# --- loading -------------------------------------------------------------------------------


async def load_roadmaps(session: AsyncSession, municipality_id: int | None) -> list[RoadmapInfo]:
    """Active roadmaps with school items that reach the scope (``None``: everything)."""
    region_id = None
    if municipality_id is not None:
        municipality = await session.get(Municipality, municipality_id)
        if municipality is None:
            return []
        region_id = municipality.region_id
    out: list[RoadmapInfo] = []
    for roadmap in await rdb.active_roadmaps(session):
        items = tuple(
            RoadmapItemInfo(
                item.id,
                item.number,
                item.action,
                item.deadline_text or "",
                tuple(rdb.item_occurrences(item, roadmap)),
                rdb.audience_of(item, roadmap),
            )
            for item in await rdb.items_of(session, [roadmap.id])
            if rdb.applies(item, rdb.DIRECTOR)
        )
        if not items:
            continue
        stones = tuple(
            MilestoneInfo(date.fromisoformat(m["date"]), int(m["min_percent"]), m.get("text", ""))
            for m in rdb.milestones(roadmap)
        )
        info = RoadmapInfo(
            roadmap.id,
            roadmap.key,
            roadmap.title,
            roadmap.region_id,
            roadmap.municipality_id,
            items,
            stones,
            await _named_schools(session, roadmap, items),
        )
        if municipality_id is None or info.covers(region_id, municipality_id):
            out.append(info)
    return out


async def _named_schools(
    session: AsyncSession, roadmap: Any, items: Sequence[RoadmapItemInfo]
) -> frozenset[int]:
    """Ids of the schools named by the items' audiences (matched as roadmaps.audience does)."""
    named = [item.audience for item in items if item.audience.kind == "schools"]
    if not named:
        return frozenset()
    return frozenset(
        s.id
        for s in await rdb.geographic_schools(session, roadmap)
        if any(a.matches(rdb.facts_of(s)) for a in named)
    )


def _audience_condition(roadmap: RoadmapInfo):
    """SQL for "at least one item of the roadmap applies to the school"."""
    kinds = {item.audience.kind for item in roadmap.items}
    if "all" in kinds:
        return true()
    parts = []
    if "shnor_shnsu" in kinds:
        parts += [School.is_shnor.is_(True), School.is_shnsu.is_(True)]
    if "risk_zone" in kinds:
        parts.append(School.is_risk_zone.is_(True))
    if roadmap.named_ids:
        parts.append(School.id.in_(sorted(roadmap.named_ids)))
    return or_(*parts) if parts else false()


def _schools_query(roadmaps: Sequence[RoadmapInfo], municipality_id: int | None):
    covered = []
    for roadmap in roadmaps:
        if roadmap.municipality_id is not None:
            where = School.municipality_id == roadmap.municipality_id
        elif roadmap.region_id is not None:
            where = Municipality.region_id == roadmap.region_id
        else:
            where = true()
        covered.append(and_(where, _audience_condition(roadmap)))
    query = (
        select(School.id)
        .join(Municipality, Municipality.id == School.municipality_id)
        .where(or_(*covered) if covered else false())
    )
    if municipality_id is not None:
        query = query.where(School.municipality_id == municipality_id)
    return query


async def count_schools(
    session: AsyncSession, roadmaps: Sequence[RoadmapInfo], municipality_id: int | None
) -> int:
    if not roadmaps:
        return 0
    query = _schools_query(roadmaps, municipality_id)
    return int(await session.scalar(select(func.count()).select_from(query.subquery())) or 0)


async def iter_roadmap_schools(
    sessions: async_sessionmaker,
    roadmaps: Sequence[RoadmapInfo],
    municipality_id: int | None,
    chunk_size: int,
) -> AsyncIterator[RoadmapChunk]:
    """The sheet's schools in order, ``chunk_size`` at a time, with their completions."""
    if not roadmaps:
        return
    async with sessions() as session:
        query = _schools_query(roadmaps, municipality_id).order_by(
            Municipality.name, Municipality.id, School.name, School.id
        )
        ids = list(await session.scalars(query))
    item_ids = [item.id for roadmap in roadmaps for item in roadmap.items]
    for start in range(0, len(ids), chunk_size):
        async with sessions() as session:
            yield await _load_chunk(session, ids[start : start + chunk_size], item_ids)


async def _load_chunk(
    session: AsyncSession, school_ids: Sequence[int], item_ids: Sequence[int]
) -> RoadmapChunk:
    rows = await session.execute(
        select(
            School.id,
            School.name,
            School.code,
            Municipality.id,
            Municipality.name,
            Municipality.region_id,
            School.is_shnor,
            School.is_shnsu,
            School.is_risk_zone,
        )
        .join(Municipality, Municipality.id == School.municipality_id)
        .where(School.id.in_(school_ids))
    )
    schools = {row[0]: RoadmapSchool(*row) for row in rows}
    for item_id, school_id, due_on, name, note in await rdb.school_completions(
        session, item_ids, school_ids
    ):
        school = schools.get(school_id)
        if school is not None:
            school.done[(item_id, due_on)] = (name, note)
    return RoadmapChunk([schools[sid] for sid in school_ids if sid in schools])


# --- the sheet -----------------------------------------------------------------------------


def _short(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _day(value: date) -> str:
    return value.strftime("%d.%m.%Y")


def item_state(occurrences: Sequence[date], done: set[date], today: date) -> str:
    """«выполнено», «просрочено» or «в срок до ДД.ММ» (the nearest unreported date)."""
    pending = [d for d in occurrences if d not in done]
    if not pending:
        return DONE
    if any(d < today for d in pending):
        return OVERDUE
    return f"в срок до {min(pending):%d.%m}"


def evidence_text(name: str | None, note: str | None) -> str | None:
    parts = [p.strip() for p in (name, note) if p and p.strip()]
    return " — ".join(parts) or None


class RoadmapSheet:
    """Columns and rows of the sheet; plain values, written by the export's book."""

    def __init__(self, roadmaps: Sequence[RoadmapInfo], today: date, percent_format: str) -> None:
        self.roadmaps = list(roadmaps)
        self.today = today
        self.percent_format = percent_format
        self.many = len(self.roadmaps) > 1
        # per roadmap: [occurrences, done, overdue, schools]; per item: schools done, covered
        self.totals = {r.id: [0, 0, 0, 0] for r in self.roadmaps}
        self.item_totals = {i.id: [0, 0] for r in self.roadmaps for i in r.items}
        self.schools = 0
        self.stones = {r.id: r.next_milestone(today) for r in self.roadmaps}

    def _prefix(self, roadmap: RoadmapInfo) -> str:
        return f"«{_short(roadmap.title, MAX_TITLE)}»: " if self.many else ""

    def columns(self) -> list[ColumnSpec]:
        columns = [
            ColumnSpec("municipality", "Муниципалитет", 28),
            ColumnSpec("school", "Наименование ОО", 42),
            ColumnSpec("school_code", "Код ОО", 12),
        ]
        for roadmap in self.roadmaps:
            prefix = self._prefix(roadmap)
            key = roadmap.key
            columns += [
                ColumnSpec(
                    f"{key}__percent",
                    f"{prefix}Исполнение дорожной карты, %",
                    14,
                    self.percent_format,
                ),
                ColumnSpec(f"{key}__done", f"{prefix}Выполнено (сроков)", 11),
                ColumnSpec(f"{key}__total", f"{prefix}Всего сроков", 10),
                ColumnSpec(f"{key}__overdue", f"{prefix}Просрочено (сроков)", 11),
            ]
            stone = self.stones[roadmap.id]
            if stone is not None:
                columns.append(
                    ColumnSpec(
                        f"{key}__milestone",
                        f"{prefix}Ориентир «{stone.text}» к {_day(stone.date)} достигнут",
                        16,
                    )
                )
            for item in roadmap.items:
                header = f"{prefix}п. {item.number}. {_short(item.action, MAX_ACTION)}"
                if item.deadline_text:
                    header += f" ({_short(item.deadline_text, 60)})"
                columns += [
                    ColumnSpec(f"{key}.{item.number}", header, 18),
                    ColumnSpec(
                        f"{key}.{item.number}__evidence",
                        f"{prefix}п. {item.number}: подтверждение",
                        30,
                    ),
                ]
        return columns

    def row(self, school: RoadmapSchool) -> list[Any]:
        today = self.today
        self.schools += 1
        row: list[Any] = [school.municipality, school.name, school.code]
        for roadmap in self.roadmaps:
            stone = self.stones[roadmap.id]
            width = 4 + (stone is not None) + 2 * len(roadmap.items)
            if not roadmap.reaches(school):
                row.extend([None] * width)
                continue
            total = done = overdue = 0
            cells: list[Any] = []
            facts = school.facts
            for item in roadmap.items:
                if not item.audience.matches(facts):
                    cells += [None, None]  # the item is not for this school
                    continue
                reported: set[date] = set()
                evidence: list[str] = []
                for due_on in item.occurrences:
                    total += 1
                    found = school.done.get((item.id, due_on))
                    if found is None:
                        overdue += due_on < today
                        continue
                    done += 1
                    reported.add(due_on)
                    text = evidence_text(*found)
                    if text and len(item.occurrences) > 1:
                        text = f"{due_on:%d.%m}: {text}"
                    if text:
                        evidence.append(text)
                state = item_state(item.occurrences, reported, today)
                counts = self.item_totals[item.id]
                counts[0] += state == DONE
                counts[1] += 1
                joined = "\n".join(evidence) or None
                if joined is not None and len(joined) > MAX_CELL_TEXT:
                    joined = joined[:MAX_CELL_TEXT] + "…"
                cells += [state, joined]
            sums = self.totals[roadmap.id]
            sums[0] += total
            sums[1] += done
            sums[2] += overdue
            sums[3] += 1
            row += [done / total if total else None, done, total, overdue]
            if stone is not None:
                reached = total and 100 * done / total >= stone.min_percent
                row.append("да" if reached else "нет")
            row += cells
        return row

    def total_row(self) -> list[Any] | None:
        if not self.schools:
            return None
        row: list[Any] = [TOTAL, f"школ: {self.schools}", None]
        for roadmap in self.roadmaps:
            total, done, overdue, _schools = self.totals[roadmap.id]
            row += [done / total if total else None, done, total, overdue]
            if self.stones[roadmap.id] is not None:
                row.append(None)
            for item in roadmap.items:
                finished, covered = self.item_totals[item.id]
                row += [f"выполнено в {finished} из {covered}" if covered else None, None]
        return row
