"""Who a roadmap applies to (issue 7, item 14): all schools, ШНОР+ШНСУ, the risk zone, named
schools — read from YAML and xlsx, stored, and honoured by progress, the matrix, reminders,
/deadlines; `--bundled` loads a roadmap only into its own region."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from pathlib import Path

import openpyxl
import pytest
import yaml
from sqlalchemy import select, update
from typer.testing import CliRunner

from bot.cli import app
from roadmaps.audience import ALL, AppliesTo, AppliesToError, SchoolFacts, parse_applies_to
from roadmaps.deadlines import Period
from roadmaps.importer import import_xlsx, import_yaml
from storage import roadmaps_db as rdb
from storage.database import create_engine, create_sessionmaker, upgrade
from storage.models import Municipality, Region, Roadmap, RoadmapItem, School
from tests.reminder_helpers import (
    FakeMessenger,
    FixedClock,
    World,
    add_roadmap,
    build_world,
    make_reminders,
    roadmap,
    sqlite_db,
    utc,
)
from tests.test_deadlines_chat import WiredConversation, say

SHNOR = AppliesTo(kind="shnor_shnsu")
RISK = AppliesTo(kind="risk_zone")


# ------------------------------------------------------------------ reading the value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("все школы", ALL),
        ("Все", ALL),
        ("all", ALL),
        ("ШНОР/ШНСУ", SHNOR),
        ("ШНОР и ШНСУ", SHNOR),
        ("шнор+шнсу", SHNOR),
        ("shnor_shnsu", SHNOR),
        ("Зона риска", RISK),
        ("школы зоны риска", RISK),
        (
            "школы: МБОУ СОШ № 1; 39-002",
            AppliesTo(kind="schools", schools=("МБОУ СОШ № 1", "39-002")),
        ),
        (["Школа 4"], AppliesTo(kind="schools", schools=("Школа 4",))),
        ({"kind": "risk_zone"}, RISK),
    ],
)
def test_values_are_read(value, expected):
    assert parse_applies_to(value) == expected


@pytest.mark.parametrize("value", ["кому-нибудь", "", "школы:", [], {"kind": "schools"}])
def test_unreadable_values_say_what_to_write(value):
    with pytest.raises(AppliesToError, match="«все школы», «ШНОР/ШНСУ», «зона риска»"):
        parse_applies_to(value)


def test_matching():
    plain = SchoolFacts("39-002", "МБОУ «СОШ № 2»")
    shnor = SchoolFacts(None, "Школа 1", is_shnor=True)
    risky = SchoolFacts(None, "Школа 3", is_shnsu=True, is_risk_zone=True)
    assert ALL.matches(plain) and SHNOR.matches(shnor) and SHNOR.matches(risky)
    assert not SHNOR.matches(plain) and RISK.matches(risky) and not RISK.matches(shnor)
    named = parse_applies_to("школы: 39-002; школа 1")
    assert named.matches(plain) and named.matches(shnor) and not named.matches(risky)
    assert parse_applies_to(["мбоу сош № 2"]).matches(plain)  # quotes and case do not matter


def test_defaults_by_level_and_item_override():
    rm = roadmap([("1", "А", "До 15.02.2023", ["director"])])
    assert rm.applies_to == SHNOR  # a region's roadmap: its ШНОР/ШНСУ
    district = rm.model_copy(update={"level": "municipality", "applies_to": None})
    assert type(district).model_validate(district.model_dump()).applies_to == ALL
    item = rm.items[0].model_copy(update={"applies_to": RISK})
    assert rm.audience(item) == RISK and rm.audience(rm.items[0]) == SHNOR


# ------------------------------------------------------------------ import


def test_xlsx_column_for_whom(tmp_path):
    path = tmp_path / "plan.xlsx"
    wb = openpyxl.Workbook()
    for row in [
        ["Дорожная карта на 2024 год"],
        ["№", "Мероприятие", "Сроки", "Ответственный", "Для кого"],
        ["1.", "Семинар", "До 01.03.2024", "Директор школы", "Все школы"],
        ["2.", "Диагностика", "До 01.04.2024", "Директор школы", "Зона риска"],
        ["3.", "Отчёт", "До 01.05.2024", "Директор школы", None],
        ["4.", "Визит", "До 01.06.2024", "Директор школы", "школы: 39-001; Школа 5"],
    ]:
        wb.active.append(row)
    wb.save(path)
    res = import_xlsx(path, roadmap_id="t", title=None, period=None, level="region")
    assert res.ok, res.problems
    items = {i.number: i for i in res.roadmap.items}
    assert items["1."].applies_to == ALL and items["2."].applies_to == RISK
    assert items["3."].applies_to is None and res.roadmap.audience(items["3."]) == SHNOR
    assert items["4."].applies_to.schools == ("39-001", "Школа 5")
    override = import_xlsx(
        path, roadmap_id="t", title=None, period=None, level="region", applies_to=ALL
    )
    assert override.roadmap.applies_to == ALL


def test_xlsx_unreadable_for_whom_blocks_the_import(tmp_path):
    path = tmp_path / "bad.xlsx"
    wb = openpyxl.Workbook()
    for row in [
        ["Дорожная карта на 2024 год"],
        ["№", "Мероприятие", "Сроки", "Ответственный", "Для кого"],
        ["1.", "Семинар", "До 01.03.2024", "Директор школы", "для хороших"],
    ]:
        wb.active.append(row)
    wb.save(path)
    res = import_xlsx(path, roadmap_id="t", title=None, period=None, level="region")
    (problem,) = res.blocking
    assert problem.row == 3 and problem.column == "Для кого"
    assert "Не понятно, для кого пункт: «для хороших»" in problem.message


def test_yaml_applies_to(tmp_path):
    path = tmp_path / "rm.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "id": "r",
                "title": "Карта",
                "level": "region",
                "applies_to": "all",
                "period": {"start": date(2024, 1, 1), "end": date(2024, 12, 31)},
                "items": [
                    {"number": "1", "action": "А", "deadline": "май", "applies_to": "зона риска"},
                    {"number": "2", "action": "Б", "deadline": "май"},
                ],
            },
            allow_unicode=True,
        ),
        encoding="utf-8",
    )
    rm = import_yaml(path).roadmap
    assert rm.applies_to == ALL
    assert rm.items[0].applies_to == RISK and rm.items[1].applies_to is None


# ------------------------------------------------------------------ the database


@pytest.fixture
async def world(tmp_path: Path):
    """Школа 2 is neither ШНОР nor ШНСУ; Школа 3 is in the risk zone (see build_world)."""
    _, engine, sessions = await sqlite_db(tmp_path)
    w = await build_world(sessions, engine)
    async with sessions() as session:
        await session.execute(
            update(School).where(School.id == w.schools["Школа 2"]).values(is_shnor=False)
        )
        await session.execute(
            update(School).where(School.id == w.schools["Школа 3"]).values(is_risk_zone=True)
        )
        await session.commit()
    yield w
    await engine.dispose()


def mixed_roadmap():
    rm = roadmap(
        [
            ("1", "Для ШНОР", "До 15.02.2023", ["director"]),
            ("2", "Для всех", "До 15.02.2023", ["director"]),
            ("3", "Для зоны риска", "До 15.02.2023", ["director"]),
            ("4", "Для Школы 4", "До 15.02.2023", ["director"]),
        ]
    )
    audiences = [None, ALL, RISK, AppliesTo(kind="schools", schools=("Школа 4",))]
    items = [
        i.model_copy(update={"applies_to": a}) for i, a in zip(rm.items, audiences, strict=True)
    ]
    return rm.model_copy(update={"items": items})


async def test_progress_and_matrix_count_only_the_schools_items(world: World) -> None:
    roadmap_id = await add_roadmap(world, mixed_roadmap())
    async with world.sessions() as session:
        row = await session.get(Roadmap, roadmap_id)
        assert row.applies_to == {"kind": "shnor_shnsu"}
        stored = {i.number: i.applies_to for i in await rdb.items_of(session, [roadmap_id])}
        assert stored == {
            "1": None,
            "2": {"kind": "all"},
            "3": {"kind": "risk_zone"},
            "4": {"kind": "schools", "schools": ["Школа 4"]},
        }
        progress = await rdb.school_progress(session, row, date(2023, 3, 1))
        totals = {
            name: progress[sid].total for name, sid in world.schools.items() if sid in progress
        }
        assert totals == {"Школа 1": 2, "Школа 2": 1, "Школа 3": 3, "Школа 4": 3}
        items, _schools, cells = await rdb.roadmap_matrix(session, row, date(2023, 3, 1))
        first = next(i for i in items if i.number == "1")
        assert (first.id, world.schools["Школа 2"]) not in cells
        assert (first.id, world.schools["Школа 1"]) in cells


async def test_a_shnor_roadmap_does_not_reach_other_schools(world: World) -> None:
    rm = roadmap([("1", "Для ШНОР", "До 15.02.2023", ["director"])])
    roadmap_id = await add_roadmap(world, rm)
    async with world.sessions() as session:
        row = await session.get(Roadmap, roadmap_id)
        names = [s.name for s in await rdb.schools_in_scope(session, row)]
        assert names == ["Школа 1", "Школа 3", "Школа 4"]
        row.applies_to = None  # a roadmap stored before migration 0003: every school
        assert len(await rdb.schools_in_scope(session, row)) == 4


async def test_reminders_go_only_to_the_schools_an_item_is_for(world: World) -> None:
    await add_roadmap(world, mixed_roadmap())
    clock = FixedClock(utc(2023, 2, 8, 7, 0))  # 7 days before, 09:00 in Kaliningrad
    messenger = FakeMessenger(clock=clock)
    await make_reminders(world, clock, messenger).tick()
    d1 = "\n".join(messenger.texts("d1"))  # Школа 1: ШНОР
    d2 = "\n".join(messenger.texts("d2"))  # Школа 2: not ШНОР
    d3 = "\n".join(messenger.texts("d3"))  # Школа 3: ШНОР, risk zone
    assert "Для ШНОР" in d1 and "Для всех" in d1 and "Для зоны риска" not in d1
    assert "Для всех" in d2 and "Для ШНОР" not in d2 and "Для Школы 4" not in d2
    assert "Для зоны риска" in d3 and "Для Школы 4" not in d3
    assert "Для Школы 4" in "\n".join(messenger.texts("d4"))


async def test_deadlines_in_chat_list_only_the_schools_items(world: World, tmp_path) -> None:
    from forms.loader import load_bundled
    from handlers.conversation import CoreConfig
    from handlers.registry import FormRegistry
    from storage.files import FileStore

    await add_roadmap(world, mixed_roadmap())
    conv = WiredConversation(
        world.sessions,
        FormRegistry(load_bundled()),
        FileStore(tmp_path / "files"),
        CoreConfig(admins=()),
        clock=FixedClock(datetime(2023, 2, 12, 8, 0, tzinfo=UTC)),
    )
    (reply,) = await say(conv, "d2", "/deadlines")
    assert "Для всех" in reply.text and "Для ШНОР" not in reply.text
    assert "(0 из 1)" in reply.text
    (refused,) = await say(conv, "d2", "/deadlines done 1")
    assert refused.text.startswith("Пункт «1» не найден")
    (mine,) = await say(conv, "d1", "/deadlines done 1 Приказ 5")
    assert mine.text.startswith("✅ П. 1")


# ------------------------------------------------------------------ --bundled


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return tmp_path


async def _kalmykia_only(data: Path, municipality: str = "Черноземельский район") -> str:
    url = f"sqlite+aiosqlite:///{data / 'bot.sqlite3'}"
    data.mkdir(parents=True, exist_ok=True)
    await upgrade(url)
    engine = create_engine(url)
    async with create_sessionmaker(engine)() as session:
        region = Region(name="Республика Калмыкия")
        session.add(region)
        await session.flush()
        municipality = Municipality(region_id=region.id, name=municipality)
        session.add(municipality)
        await session.flush()
        session.add(School(municipality_id=municipality.id, name="Школа", is_shnor=True))
        await session.commit()
    await engine.dispose()
    return url


async def _keys(url: str) -> tuple[dict[str, str | None], list[str], list[str]]:
    engine = create_engine(url)
    async with create_sessionmaker(engine)() as session:
        rows = list(
            await session.execute(select(Roadmap.key, Municipality.name).outerjoin(Municipality))
        )
        regions = list(await session.scalars(select(Region.name)))
        municipalities = list(await session.scalars(select(Municipality.name)))
    await engine.dispose()
    return dict(rows), regions, municipalities


def test_bundled_loads_only_the_databases_region(cli_env: Path) -> None:
    url = asyncio.run(_kalmykia_only(cli_env / "data"))
    result = CliRunner().invoke(app, ["roadmap", "import", "--bundled"])
    assert result.exit_code == 0, result.output
    assert "Карта «kaliningrad_2023» пропущена" in result.output
    assert "для региона «Калининградская область»" in result.output
    assert "«Республика Калмыкия»" in result.output
    keys, regions, municipalities = asyncio.run(_keys(url))
    # "Черноземельское районное муниципальное образование" of seed 003 is the district the
    # database calls "Черноземельский район": matched, not made up
    assert keys == {
        "chernozemelsky_2022_2023_oko": "Черноземельский район",
        "chernozemelsky_2022_2023_shnor": "Черноземельский район",
    }
    assert regions == ["Республика Калмыкия"]  # no Kaliningrad region was made up
    assert municipalities == ["Черноземельский район"]
    assert "школ 1" in result.output


def test_bundled_municipal_roadmap_of_an_unknown_district_is_skipped(cli_env: Path) -> None:
    url = asyncio.run(_kalmykia_only(cli_env / "data", "Яшкульский район"))
    result = CliRunner().invoke(app, ["roadmap", "import", "--bundled"])
    assert result.exit_code == 1
    assert "Карта «chernozemelsky_2022_2023_oko» пропущена" in result.output
    assert "(в базе: «Яшкульский район»)" in result.output
    keys, _regions, municipalities = asyncio.run(_keys(url))
    assert keys == {} and municipalities == ["Яшкульский район"]


def test_bundled_into_an_empty_database_loads_nothing_and_says_why(cli_env: Path) -> None:
    result = CliRunner().invoke(app, ["roadmap", "import", "--bundled"])
    assert result.exit_code == 1
    assert "в базе ещё нет школ" in result.output and "import-schools" in result.output


def test_bundled_refuses_a_region_override(cli_env: Path) -> None:
    result = CliRunner().invoke(
        app, ["roadmap", "import", "--bundled", "--region", "Калининградская область"]
    )
    assert result.exit_code == 2
    assert "только в свой регион" in result.output


def test_xlsx_applies_to_option_and_blocking_cell(cli_env: Path) -> None:
    asyncio.run(_kalmykia_only(cli_env / "data"))
    path = cli_env / "plan.xlsx"
    wb = openpyxl.Workbook()
    for row in [
        ["Дорожная карта на 2024 год"],
        ["№", "Мероприятие", "Сроки", "Ответственный", "Для кого"],
        ["1.", "Семинар", "До 01.03.2024", "Директор школы", "для хороших"],
    ]:
        wb.active.append(row)
    wb.save(path)
    bad = CliRunner().invoke(app, ["roadmap", "import", str(path)])
    assert bad.exit_code == 1
    assert "стр. 3" in bad.output and "Не понятно, для кого пункт" in bad.output
    assert "Файл не загружен" in bad.output
    wb.active["E3"] = "все школы"
    wb.save(path)
    good = CliRunner().invoke(
        app,
        [
            "roadmap",
            "import",
            str(path),
            "--region",
            "Республика Калмыкия",
            "--applies-to",
            "risk_zone",
        ],
    )
    assert good.exit_code == 0, good.output
    assert "школы зоны риска" in good.output
    wrong = CliRunner().invoke(app, ["roadmap", "import", str(path), "--applies-to", "кому-то"])
    assert wrong.exit_code == 2 and "--applies-to" in wrong.output


def test_period_of_a_stored_item_is_kept():
    # sanity: a stored JSON of an older version has no applies_to and means "as the roadmap"
    assert AppliesTo.from_json(None) is None
    assert Period.calendar_year(2023).contains(date(2023, 5, 1))
    assert RoadmapItem.__table__.c.applies_to.nullable


async def _no_shnor_in_zelenogradsk(world: World) -> None:
    async with world.sessions() as session:
        await session.execute(
            update(School)
            .where(School.municipality_id == world.municipalities["Зеленоградский округ"])
            .values(is_shnor=False, is_risk_zone=False)
        )
        await session.commit()


async def test_a_shnor_roadmap_is_nothing_to_a_district_without_shnor(world: World, tmp_path):
    """m1 (Гурьевский: Школа 1 is ШНОР) gets the municipal item, m2 (Зеленоградский, no
    ШНОР left) neither gets reminded nor sees it in /deadlines; an item for all reaches both."""
    from forms.loader import load_bundled
    from handlers.conversation import CoreConfig
    from handlers.registry import FormRegistry
    from storage.files import FileStore

    await _no_shnor_in_zelenogradsk(world)
    rm = roadmap(
        [
            ("1", "Совещание МОУО по ШНОР", "До 15.02.2023", ["municipal"]),
            ("2", "Совещание для всех", "До 15.02.2023", ["municipal"]),
        ]
    )
    items = [rm.items[0], rm.items[1].model_copy(update={"applies_to": ALL})]
    await add_roadmap(world, rm.model_copy(update={"items": items}))
    clock = FixedClock(utc(2023, 2, 8, 7, 0))
    messenger = FakeMessenger(clock=clock)
    await make_reminders(world, clock, messenger).tick()
    m1, m2 = ("\n".join(messenger.texts(c)) for c in ("m1", "m2"))
    assert "Совещание МОУО по ШНОР" in m1 and "Совещание для всех" in m1
    assert "Совещание МОУО по ШНОР" not in m2 and "Совещание для всех" in m2

    conv = WiredConversation(
        world.sessions,
        FormRegistry(load_bundled()),
        FileStore(tmp_path / "files"),
        CoreConfig(admins=()),
        clock=FixedClock(datetime(2023, 2, 12, 8, 0, tzinfo=UTC)),
    )
    (listing,) = await say(conv, "m2", "/deadlines")
    assert "Совещание для всех" in listing.text and "по ШНОР" not in listing.text
    assert "(0 из 1)" in listing.text
    (refused,) = await say(conv, "m2", "/deadlines done 1 Протокол")
    assert refused.text.startswith("Пункт «1» не найден")
