"""Saving imported roadmaps: insert or update by id, items matched by number, bundled
roadmaps only into their own region."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from roadmaps import model
from roadmaps.audience import ALL, school_key
from roadmaps.deadlines import Period
from storage import repo
from storage.models import Municipality, Region, Roadmap, RoadmapItem, School
from storage.roadmaps_db import geographic_schools, schools_in_scope, scope_text


@dataclass
class SaveSummary:
    key: str
    roadmap_id: int
    created: bool
    items_new: int = 0
    items_updated: int = 0
    items_retired: int = 0
    unchanged: bool = False
    scope: str = ""
    schools: int = 0
    warnings: list[str] = field(default_factory=list)


def checksum(roadmap: model.Roadmap) -> str:
    data = json.dumps(roadmap.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(data.encode()).hexdigest()


async def _resolve_scope(
    session: AsyncSession, region_name: str | None, municipality_name: str | None
) -> tuple[Region | None, Municipality | None, list[str]]:
    warnings: list[str] = []
    region = None
    if region_name:
        region = await session.scalar(select(Region).where(Region.name == region_name))
        if region is None:
            warnings.append(
                f"Регион «{region_name}» не найден в базе: напоминания по карте пойдут, "
                "когда в базе появятся его школы (или укажите --region так, как он назван "
                "в списке школ)."
            )
            region = await repo.get_or_create_region(session, region_name)
    municipality = None
    if municipality_name:
        query = select(Municipality).where(Municipality.name == municipality_name)
        if region is not None:
            query = query.where(Municipality.region_id == region.id)
        found = list(await session.scalars(query))
        if len(found) == 1:
            municipality = found[0]
        elif len(found) > 1:
            warnings.append(
                f"Муниципалитет «{municipality_name}» есть в нескольких регионах: укажите --region."
            )
        else:
            warnings.append(
                f"Муниципалитет «{municipality_name}» не найден в базе: укажите --municipality "
                "так, как он назван в списке школ."
            )
            if region is not None:
                municipality = await repo.get_or_create_municipality(
                    session, region, municipality_name
                )
    return region, municipality, warnings


async def save_roadmap(
    session: AsyncSession,
    roadmap: model.Roadmap,
    *,
    region: str | None = None,
    municipality: str | None = None,
    source_file: str | None = None,
) -> SaveSummary:
    """Insert or update a roadmap by its id; items are matched by number.

    Items missing from a new version are retired (kept for their completions), never
    deleted. ``region``/``municipality`` override the names written in the roadmap.
    """
    region_name = region or roadmap.region
    municipality_name = municipality or roadmap.municipality
    if roadmap.level != "municipality" and municipality is None:
        municipality_name = None
    region_row, municipality_row, warnings = await _resolve_scope(
        session, region_name, municipality_name
    )
    digest = checksum(roadmap)
    row = await session.scalar(select(Roadmap).where(Roadmap.key == roadmap.id))
    created = row is None
    if row is None:
        row = Roadmap(key=roadmap.id)
        session.add(row)
    unchanged = not created and row.checksum == digest
    row.title = roadmap.title
    row.level = roadmap.level
    row.period_start = roadmap.period.start
    row.period_end = roadmap.period.end
    row.region_id = region_row.id if region_row else None
    row.municipality_id = municipality_row.id if municipality_row else None
    row.source = source_file or roadmap.source
    row.checksum = digest
    row.definition = roadmap.model_dump(mode="json", exclude={"items"})
    row.applies_to = (roadmap.applies_to or ALL).to_json()
    row.active = True
    await session.flush()

    summary = SaveSummary(roadmap.id, row.id, created, unchanged=unchanged, warnings=warnings)
    existing = {
        item.number: item
        for item in await session.scalars(
            select(RoadmapItem).where(RoadmapItem.roadmap_id == row.id)
        )
    }
    seen: set[str] = set()
    for position, item in enumerate(roadmap.items):
        seen.add(item.number)
        values = _item_values(item, roadmap.period, position)
        db_item = existing.get(item.number)
        if db_item is None:
            session.add(RoadmapItem(roadmap_id=row.id, number=item.number, **values))
            summary.items_new += 1
            continue
        if any(getattr(db_item, k) != v for k, v in values.items()):
            for k, v in values.items():
                setattr(db_item, k, v)
            summary.items_updated += 1
    for number, db_item in existing.items():
        if number not in seen and db_item.active:
            db_item.active = False
            summary.items_retired += 1
    await session.flush()
    summary.warnings.extend(await _unknown_named_schools(session, row, roadmap))
    schools = await schools_in_scope(session, row)
    summary.schools = len(schools)
    summary.scope = await scope_text(session, row)
    await repo.audit(
        session,
        "roadmap_import",
        "roadmap",
        row.id,
        None,
        key=roadmap.id,
        new=summary.items_new,
        updated=summary.items_updated,
        retired=summary.items_retired,
    )
    return summary


def _item_values(item: model.RoadmapItem, period: Period, position: int) -> dict[str, Any]:
    dues = item.due_dates(period)
    return {
        "position": position,
        "section": item.section,
        "action": item.action,
        "deadline_text": item.deadline_text,
        "deadline": item.deadline.to_json() if item.deadline else None,
        "due_date": max(dues) if dues else None,
        "due_dates": [d.isoformat() for d in sorted(set(dues))],
        "executor_roles": list(item.executor_roles),
        "executors": "; ".join(item.executors) or None,
        "level": item.level,
        "indicator": item.indicator,
        "evidence": item.evidence,
        "active": True,
        "applies_to": item.applies_to.to_json() if item.applies_to else None,
    }


async def _unknown_named_schools(
    session: AsyncSession, row: Roadmap, roadmap: model.Roadmap
) -> list[str]:
    """Named schools of the roadmap or its items that the database does not have (yet)."""
    named = [a for a in [roadmap.applies_to, *(i.applies_to for i in roadmap.items)] if a]
    wanted = {s for a in named if a.kind == "schools" for s in a.schools}
    if not wanted:
        return []
    known: set[str] = set()
    for school in await geographic_schools(session, row):
        known.add(school_key(school.name))
        if school.code:
            known.add(school_key(school.code))
    missing = sorted(s for s in wanted if school_key(s) not in known)
    if not missing:
        return []
    return [
        "Не найдены в базе школы из столбца «Для кого»: "
        + "; ".join(missing[:10])
        + (" …" if len(missing) > 10 else "")
        + ". Проверьте коды и названия (как в списке школ) или загрузите школы."
    ]


@dataclass
class Skipped:
    key: str
    reason: str  # Russian, for the operator


async def home_region(session: AsyncSession, roadmap: model.Roadmap) -> str | Skipped:
    """The database's name of the region a bundled roadmap belongs to, or why it is skipped.

    Only regions that have schools count: a roadmap of another region must never be loaded
    (its reminders would reach nobody, or — with a region override — the wrong schools).
    """
    from storage.school_import import normalize_key

    with_schools = (
        select(Region.name)
        .join(Municipality, Municipality.region_id == Region.id)
        .join(School, School.municipality_id == Municipality.id)
        .distinct()
    )
    names = sorted(await session.scalars(with_schools))
    wanted = normalize_key(roadmap.region or "")
    for name in names:
        if normalize_key(name) == wanted:
            return name
    if not names:
        return Skipped(
            roadmap.id,
            f"карта для региона «{roadmap.region}», а в базе ещё нет школ — сначала "
            "загрузите список школ (python3 scripts/dev.py import-schools …), затем повторите",
        )
    listed = ", ".join(f"«{n}»" for n in names)
    return Skipped(
        roadmap.id, f"карта для региона «{roadmap.region}», а школы в базе — из региона {listed}"
    )


_GENERIC = re.compile(
    r"\b(?:районн\w*|район\w*|муниципальн\w*|образовани\w*|округ\w*|городск\w*|поселени\w*|"
    r"рмо|мр|мо|го|г)\b\.?"
)
_ADJECTIVE_END = re.compile(r"(?:ский|ская|ское|ские|ского|ий|ый|ой|ая|ое|ые)$")


def _stem(name: str) -> str:
    """ "Черноземельское районное муниципальное образование" and "Черноземельский район"
    have the same stem: the name without generic words and the adjective's ending."""
    from storage.school_import import normalize_key

    words = _GENERIC.sub(" ", normalize_key(name)).split()
    return " ".join(_ADJECTIVE_END.sub("", w) for w in words)


async def home_of(
    session: AsyncSession, roadmap: model.Roadmap
) -> tuple[str, str | None] | Skipped:
    """Region and municipality (as the database names them) of a bundled roadmap, or why it
    is skipped. The municipality is matched by name, or by its stem when exactly one of the
    region's municipalities has it; never created."""
    from storage.school_import import normalize_key

    region = await home_region(session, roadmap)
    if isinstance(region, Skipped):
        return region
    if roadmap.level != "municipality" or not roadmap.municipality:
        return region, None
    query = (
        select(Municipality.name)
        .join(Region, Region.id == Municipality.region_id)
        .where(Region.name == region)
        .order_by(Municipality.name)
    )
    names = list(await session.scalars(query))
    exact = [n for n in names if normalize_key(n) == normalize_key(roadmap.municipality)]
    stem = _stem(roadmap.municipality)
    similar = [n for n in names if stem and _stem(n) == stem]
    for found in (exact, similar):
        if len(found) == 1:
            return region, found[0]
    listed = ", ".join(f"«{n}»" for n in names) or "нет"
    return Skipped(
        roadmap.id,
        f"карта муниципалитета «{roadmap.municipality}», а такого муниципалитета в регионе "
        f"«{region}» нет (в базе: {listed}) — загрузите карту из файла .yaml с "
        '--municipality "название, как в списке школ"',
    )


async def save_bundled(session: AsyncSession) -> tuple[list[SaveSummary], list[Skipped]]:
    """Load the roadmaps shipped with the bot (seeds 002 and 003), each only into its region."""
    from roadmaps.importer import load_bundled

    saved: list[SaveSummary] = []
    skipped: list[Skipped] = []
    for roadmap in load_bundled():
        home = await home_of(session, roadmap)
        if isinstance(home, Skipped):
            skipped.append(home)
        else:
            region, municipality = home
            saved.append(
                await save_roadmap(session, roadmap, region=region, municipality=municipality)
            )
    return saved, skipped
