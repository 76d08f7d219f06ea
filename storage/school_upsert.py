"""Write a schools list into the database: match, check, upsert in batches.

Rows come one at a time (``SchoolStream``). Each is matched to a school of the region
by its code, else by municipality + name (``normalize_key``), and checked against the
database: a code of another region's school, a school recorded with another code, a
rename onto another school, two rows for one school are problems, reported with the
row. While there is no problem the rows are written in batches of ``BATCH_SIZE`` with
Core inserts and updates; after the first one nothing more is written and the caller
rolls the transaction back, so a file imports whole or not at all.

The index of the schools already there holds ids, codes, name keys and a fingerprint,
never ORM objects, so memory stays small for a big region.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage import repo
from storage.models import Municipality, Region, School
from storage.school_cells import name_digest
from storage.school_import import ImportIssue, IssueLog, SchoolRow, normalize_key

BATCH_SIZE = 1000
TICK_EVERY = 50  # rows between two chances for the batch in flight to progress
SCHOOLS = School.__table__
MUNICIPALITIES = Municipality.__table__
CODE = "Код ОО"


@dataclass
class ImportSummary:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    municipalities_created: int = 0


class RegionChoiceError(ValueError):
    """No region was given and the database cannot tell which; ``str()`` is Russian."""


class SchoolImportError(ValueError):
    def __init__(self, issues: list[ImportIssue]) -> None:
        super().__init__("\n".join(map(str, issues)))
        self.issues = issues


async def resolve_region(session: AsyncSession, name: str | None, timezone: str) -> Region:
    """The region to import into: the one named (matched like school names, created if
    new), else the only one in the database; otherwise ``RegionChoiceError``."""
    regions = list(await session.scalars(select(Region).order_by(Region.name)))
    if name is not None and name.strip():
        wanted = normalize_key(name)
        found = next((r for r in regions if normalize_key(r.name) == wanted), None)
        return found or await repo.get_or_create_region(session, " ".join(name.split()), timezone)
    if len(regions) == 1:
        return regions[0]
    if not regions:
        raise RegionChoiceError(
            "Укажите регион: в базе ещё нет ни одного региона. Например: "
            "python3 scripts/dev.py import-schools ФАЙЛ.xlsx --region «Калининградская область»"
        )
    names = ", ".join(f"«{r.name}»" for r in regions)
    raise RegionChoiceError(
        f"В базе несколько регионов: {names}. Укажите, в какой загружать: "
        f"--region «{regions[0].name}»"
    )


def _fingerprint(name: str, shnor: bool, shnsu: bool, risk: bool, director: str | None) -> int:
    return hash((name, bool(shnor), bool(shnsu), bool(risk), director))


class _Index:
    """What the database already holds, keyed the way rows are matched."""

    def __init__(self) -> None:
        self.municipalities: dict[str, int] = {}  # name key -> id
        self.by_code: dict[str, int] = {}  # casefolded code -> school id (this region)
        self.by_name: dict[bytes, int] = {}  # name_digest(municipality id, name key) -> id
        self.state: dict[int, tuple[int, str | None, int]] = {}  # id -> (mun., code, print)
        self.foreign: dict[str, int] = {}  # casefolded code -> region id (other regions)
        self.region_names: dict[int, str] = {}

    @classmethod
    async def load(cls, session: AsyncSession, region_id: int) -> _Index:
        index = cls()
        for mid, name in await session.execute(
            select(Municipality.id, Municipality.name).where(Municipality.region_id == region_id)
        ):
            index.municipalities[normalize_key(name)] = mid
        index.region_names = dict((await session.execute(select(Region.id, Region.name))).all())
        query = select(
            School.id,
            School.municipality_id,
            School.code,
            School.name,
            School.is_shnor,
            School.is_shnsu,
            School.is_risk_zone,
            School.director_name,
            Municipality.region_id,
        ).join(Municipality, Municipality.id == School.municipality_id)
        rows = await session.stream(query.execution_options(yield_per=BATCH_SIZE))
        async for sid, mid, code, name, shnor, shnsu, risk, director, rid in rows:
            if rid != region_id:
                if code:
                    index.foreign[code.casefold()] = rid
                continue
            if code:
                index.by_code[code.casefold()] = sid
            index.by_name[name_digest(str(mid), normalize_key(name))] = sid
            index.state[sid] = (mid, code, _fingerprint(name, shnor, shnsu, risk, director))
        return index


class _Writer:
    """Batches of inserts and updates. A full batch is handed to the driver and written
    while the next one is read (SQLite and asyncpg work outside the event loop); at most
    one batch is in flight, and nothing else uses the session meanwhile."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.inserts: list[dict[str, object]] = []
        self.updates: list[dict[str, object]] = []
        self._in_flight: asyncio.Task[None] | None = None

    def pending(self) -> int:
        return len(self.inserts) + len(self.updates)

    def drop(self) -> None:
        self.inserts.clear()
        self.updates.clear()

    async def flush(self) -> None:
        """Start writing the pending batch (after the one in flight has been written)."""
        await self.wait()
        inserts, updates = self.inserts, self.updates
        self.inserts, self.updates = [], []
        if inserts or updates:
            self._in_flight = asyncio.ensure_future(self._write(inserts, updates))
            await asyncio.sleep(0)

    async def tick(self) -> None:
        """Let the batch in flight move on (the rows are read without awaiting)."""
        if self._in_flight is not None:
            await asyncio.sleep(0)

    async def wait(self) -> None:
        if self._in_flight is not None:
            task, self._in_flight = self._in_flight, None
            await task

    async def _write(self, inserts: list[dict[str, object]], updates: list[dict[str, object]]):
        if inserts:
            await self.session.execute(insert(SCHOOLS), inserts)
        if updates:
            statement = (
                update(SCHOOLS)
                .where(SCHOOLS.c.id == bindparam("b_id"))
                .values(
                    municipality_id=bindparam("b_municipality_id"),
                    code=bindparam("b_code"),
                    name=bindparam("b_name"),
                    is_shnor=bindparam("b_is_shnor"),
                    is_shnsu=bindparam("b_is_shnsu"),
                    is_risk_zone=bindparam("b_is_risk_zone"),
                    director_name=bindparam("b_director_name"),
                )
            )
            await self.session.execute(statement, updates)


async def upsert_schools(
    session: AsyncSession, region: Region, rows: Iterable[SchoolRow], issues: IssueLog
) -> ImportSummary:
    """Match, check and write ``rows`` (see the module docstring). Problems go to
    ``issues`` (which may already hold the file's own); if it is not empty afterwards,
    roll back."""
    run = _Run(session, region, await _Index.load(session, region.id), issues)
    try:
        for count, row in enumerate(rows):
            if count % TICK_EVERY == 0:
                await run.writer.tick()
            mid = await run.municipality_id(row.municipality)
            sid = _match(row, mid, normalize_key(row.name), run.index, issues)
            if sid is not None and sid != -1:
                first = run.matched.setdefault(sid, row.row)
                if first != row.row:
                    issues.add(
                        row.row,
                        None,
                        f"это та же школа, что в строке {first} (совпадает код или наименование "
                        "в базе). Удалите повтор или исправьте код.",
                    )
            if issues:
                run.writer.drop()  # nothing more is written; the rows are only checked
                continue
            run.stage(row, mid, sid)
            if run.writer.pending() >= BATCH_SIZE:
                await run.writer.flush()
        if not issues:
            await run.writer.flush()
        await run.writer.wait()
    finally:
        with contextlib.suppress(Exception):  # only when the loop itself failed
            await run.writer.wait()
    if not issues:
        await repo.audit(
            session, "import_schools", "region", region.id, None, **run.summary.__dict__
        )
    return run.summary


class _Run:
    """The state of one import: what is there, what was matched, what is being written."""

    def __init__(
        self, session: AsyncSession, region: Region, index: _Index, issues: IssueLog
    ) -> None:
        self.session = session
        self.region_id = region.id
        self.index = index
        self.issues = issues
        self.writer = _Writer(session)
        self.summary = ImportSummary()
        self.matched: dict[int, int] = {}  # school id -> the row that matched it
        self.keys: dict[str, str] = {}  # municipality as written -> key; names repeat a lot
        self.placeholder = 0

    async def municipality_id(self, name: str) -> int:
        key = self.keys.get(name)
        if key is None:
            key = self.keys[name] = normalize_key(name)
        mid = self.index.municipalities.get(key)
        if mid is None:
            self.summary.municipalities_created += 1
            if self.issues:  # nothing is written any more: a stand-in id for the checks
                self.placeholder -= 1
                mid = self.placeholder
            else:
                await self.writer.wait()
                result = await self.session.execute(
                    insert(MUNICIPALITIES).values(region_id=self.region_id, name=name)
                )
                mid = result.inserted_primary_key[0]
            self.index.municipalities[key] = mid
        return mid

    def stage(self, row: SchoolRow, mid: int, sid: int | None) -> None:
        """Queue the insert or update of one checked row, or count it as unchanged."""
        values = {
            "municipality_id": mid,
            "name": row.name,
            "is_shnor": row.shnor,
            "is_shnsu": row.shnsu,
            "is_risk_zone": row.risk_zone,
            "director_name": row.director,
        }
        if sid is None:
            self.writer.inserts.append({**values, "code": row.code})
            self.summary.created += 1
            return
        old = self.index.state[sid]
        code = row.code or old[1]
        now = (mid, code, _fingerprint(row.name, row.shnor, row.shnsu, row.risk_zone, row.director))
        if old == now:
            self.summary.unchanged += 1
            return
        values["code"] = code
        self.writer.updates.append({"b_id": sid, **{f"b_{k}": v for k, v in values.items()}})
        self.summary.updated += 1


def _match(row: SchoolRow, mid: int, name_key: str, index: _Index, issues: IssueLog) -> int | None:
    """The id of the school this row updates, None for a new school, -1 for a problem."""
    code_key = row.code.casefold() if row.code else None
    if code_key is not None and code_key in index.foreign:
        region = index.region_names.get(index.foreign[code_key], "")
        issues.add(
            row.row,
            CODE,
            f"код «{row.code}» уже есть у школы в регионе «{region}». Проверьте код; если "
            f"файл относится к этому региону, загрузите его с --region «{region}».",
        )
        return -1
    by_name = index.by_name.get(name_digest(str(mid), name_key))
    sid = index.by_code.get(code_key) if code_key is not None else None
    if sid is not None:
        if by_name is not None and by_name != sid:
            other = index.state[by_name][1]
            issues.add(
                row.row,
                None,
                f"в муниципалитете «{row.municipality}» уже есть другая школа "
                f"«{row.name}»" + (f" (код «{other}»)" if other else "") + ". "
                "Уточните наименование или код.",
            )
            return -1
        return sid
    if by_name is not None:
        old_code = index.state[by_name][1]
        if old_code and row.code and old_code.casefold() != code_key:
            issues.add(
                row.row,
                CODE,
                f"школа «{row.name}» ({row.municipality}) записана в базе с кодом «{old_code}», "
                f"а в файле — «{row.code}». Если это та же школа, укажите код «{old_code}»; "
                "если другая — уточните наименование.",
            )
            return -1
    return by_name
