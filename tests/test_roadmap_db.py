"""Roadmaps in the database: bundled seeds, re-import, completions, progress, CLI."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from bot.cli import app
from roadmaps.deadlines import Deadline
from roadmaps.importer import load_bundled
from storage import roadmaps_db as rdb
from storage.models import ItemCompletion, Roadmap, RoadmapItem
from storage.roadmaps_save import save_bundled, save_roadmap
from tests.reminder_helpers import (
    KALININGRAD,
    World,
    add_roadmap,
    build_world,
    roadmap,
    sqlite_db,
)


@pytest.fixture
async def world(tmp_path: Path):
    _, engine, sessions = await sqlite_db(tmp_path)
    w = await build_world(sessions, engine)
    yield w
    await engine.dispose()


async def roadmap_row(world: World, key: str) -> Roadmap:
    async with world.sessions() as session:
        return await session.scalar(select(Roadmap).where(Roadmap.key == key))


async def test_bundled_seeds_load_into_the_database(world: World) -> None:
    async with world.sessions() as session:
        summaries, skipped = await save_bundled(session)
        assert skipped == []
        await session.commit()
    by_key = {s.key: s for s in summaries}
    assert by_key["kaliningrad_2023"].items_new == 32
    assert by_key["chernozemelsky_2022_2023_oko"].items_new == 17
    assert by_key["chernozemelsky_2022_2023_shnor"].items_new == 11
    assert by_key["kaliningrad_2023"].schools == 4  # the Kaliningrad region of the test world
    assert by_key["kaliningrad_2023"].scope == f"регион «{KALININGRAD}», ШНОР и ШНСУ"

    async with world.sessions() as session:
        again, _ = await save_bundled(session)
        await session.commit()
        assert all(s.unchanged and s.items_new == s.items_updated == 0 for s in again)
        rows = await rdb.list_roadmaps(session)
        items = {
            i.number: i
            for i in await session.scalars(
                select(RoadmapItem)
                .join(Roadmap, Roadmap.id == RoadmapItem.roadmap_id)
                .where(Roadmap.key == "kaliningrad_2023")
            )
        }
    assert {r.roadmap.key: r.items for r in rows} == {
        "chernozemelsky_2022_2023_oko": 17,
        "chernozemelsky_2022_2023_shnor": 11,
        "kaliningrad_2023": 32,
    }
    first = items["1"]
    assert first.due_date == date(2023, 2, 15)
    assert first.evidence == "Приказы о назначении ответственных"
    assert "director" in first.executor_roles
    assert Deadline.from_json(first.deadline).end == date(2023, 2, 15)
    nineteen = items["19"]  # "2023 в соответствии с графиком на первое, второе полугодие"
    assert nineteen.due_dates == ["2023-06-30", "2023-12-31"]
    assert nineteen.due_date == date(2023, 12, 31)
    milestones = rdb.milestones(await roadmap_row(world, "kaliningrad_2023"))
    assert [m["min_percent"] for m in milestones] == [30, 80]


async def test_reimport_updates_retires_and_keeps_completions(world: World) -> None:
    first = roadmap(
        [
            ("1", "Отчёт", "До 15.02.2023", ["director"]),
            ("2", "Совещание", "До 01.03.2023", ["municipal"]),
        ]
    )
    await add_roadmap(world, first)
    async with world.sessions() as session:
        item = await session.scalar(select(RoadmapItem).where(RoadmapItem.number == "1"))
        await rdb.mark_done(session, item, "school:1", date(2023, 2, 15), None, note="Приказ 1")
        await session.commit()
    second = roadmap(
        [
            ("1", "Отчёт о назначении", "До 20.02.2023", ["director"]),
            ("3", "Новый пункт", "Март 2023", ["director"]),
        ]
    )
    async with world.sessions() as session:
        summary = await save_roadmap(session, second)
        await session.commit()
        assert (summary.created, summary.items_new, summary.items_updated) == (False, 1, 1)
        assert summary.items_retired == 1
        items = {i.number: i for i in await session.scalars(select(RoadmapItem))}
        assert items["1"].action == "Отчёт о назначении"
        assert items["1"].due_date == date(2023, 2, 20)
        assert items["2"].active is False
        assert await session.scalar(select(ItemCompletion.note)) == "Приказ 1"


async def test_completion_progress_and_matrix(world: World) -> None:
    rm = roadmap(
        [
            ("1", "Первый", "До 15.02.2023", ["director"]),
            ("2", "Второй", "30.06.2023", ["director", "municipal"]),
            ("3", "Третий", "ежегодно май сентябрь", ["director"]),  # two occurrences
            ("4", "Региональный", "До 01.12.2023", ["regional"]),
        ]
    )
    roadmap_id = await add_roadmap(world, rm)
    school_1 = world.schools["Школа 1"]
    async with world.sessions() as session:
        row = await session.get(Roadmap, roadmap_id)
        items = {i.number: i for i in await rdb.items_of(session, [roadmap_id])}
        await rdb.mark_done(session, items["1"], f"school:{school_1}", date(2023, 2, 15), None)
        await rdb.mark_done(
            session, items["3"], f"school:{school_1}", date(2023, 5, 31), None, note="Справка"
        )
        with pytest.raises(rdb.AlreadyDone):
            await rdb.mark_done(session, items["1"], f"school:{school_1}", date(2023, 2, 15), None)
        await session.commit()
        progress = await rdb.school_progress(session, row, date(2023, 7, 1))
        assert progress[school_1].total == 4 and progress[school_1].done == 2
        assert progress[school_1].percent == 50
        assert progress[school_1].due == 3 and progress[school_1].overdue == 1  # item 2
        assert progress[world.schools["Школа 2"]].percent == 0
        by_municipality = await rdb.municipality_progress(session, row, date(2023, 7, 1))
        own, schools = by_municipality[world.municipalities["Гурьевский округ"]]
        assert (own.total, schools.total, schools.done) == (1, 8, 2)
        assert rdb.next_milestone(row, date(2023, 3, 1))["min_percent"] == 30
        _items, schools_list, cells = await rdb.roadmap_matrix(session, row, date(2023, 7, 1))
        assert len(schools_list) == 4
        assert [c.status for c in cells[(items["3"].id, school_1)]] == ["done", "upcoming"]
        assert cells[(items["3"].id, school_1)][0].evidence == "Справка"
        assert [c.status for c in cells[(items["2"].id, school_1)]] == ["overdue"]


# --- CLI -------------------------------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return tmp_path


def test_cli_dry_run_json_shows_how_each_deadline_was_read(cli_env: Path) -> None:
    result = CliRunner().invoke(app, ["roadmap", "import", "--bundled", "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    report = {entry["id"]: entry for entry in json.loads(result.output)}
    rows = {row["number"]: row for row in report["kaliningrad_2023"]["rows"]}
    assert rows["2"]["deadline_text"] == "01.02-15.05.2023"
    assert rows["2"]["deadline"]["kind"] == "range"
    assert rows["2"]["deadline"]["start"] == "2023-02-01"
    assert rows["2"]["due_dates"] == ["2023-05-15"]
    assert rows["23"]["deadline"]["kind"] == "month" and rows["23"]["due_dates"] == ["2023-08-31"]
    shnor = {row["number"]: row for row in report["chernozemelsky_2022_2023_shnor"]["rows"]}
    assert shnor["1.2.9"]["deadline"]["kind"] == "none"  # "План РМО"
    assert not (cli_env / "data").exists()  # a dry run touches no database


def make_roadmap_xlsx(path: Path) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["План-график"])
    ws.append(["№", "Мероприятие", "Сроки исполнения", "Ответственный", "Показатель"])
    ws.append(["Организационные мероприятия"])
    ws.append(["1.", "Назначить ответственных", "До 15.02.2023", "Руководители школ", "100%"])
    ws.append(["2.", "Провести семинар", "когда-нибудь потом", "МОУО", ""])
    ws.append(["3.", "Мониторинг", "Март-май", "Руководители школ", ""])
    wb.save(path)
    return path


def test_cli_imports_xlsx_reporting_unreadable_rows(cli_env: Path) -> None:
    path = make_roadmap_xlsx(cli_env / "Карта района.xlsx")
    runner = CliRunner()
    dry = runner.invoke(
        app, ["roadmap", "import", str(path), "--period", "2023", "--dry-run", "--json"]
    )
    assert dry.exit_code == 0, dry.output
    (entry,) = json.loads(dry.output)
    rows = {row["number"]: row for row in entry["rows"]}
    assert rows["1."]["deadline"]["end"] == "2023-02-15" and rows["1."]["row"] == 4
    assert rows["2."]["deadline"] is None and rows["2."]["error"]
    assert rows["2."]["row"] == 5
    assert rows["3."]["deadline"]["kind"] == "range"
    assert any(p["row"] == 5 for p in entry["problems"])

    text = runner.invoke(app, ["roadmap", "import", str(path), "--period", "2023", "--dry-run"])
    assert "стр. 5" in text.output and "не разобрано" in text.output

    done = runner.invoke(
        app, ["roadmap", "import", str(path), "--period", "2023", "--id", "district_2023"]
    )
    assert done.exit_code == 0, done.output
    assert "Карта «district_2023» загружена: пунктов новых 3" in done.output
    assert "стр. 5, п. 2." in done.output
    listing = runner.invoke(app, ["roadmap", "list"])
    assert "district_2023" in listing.output and "пунктов 3 (без срока 1)" in listing.output
    status = runner.invoke(app, ["reminders", "status"])
    assert status.exit_code == 0 and "Напоминания" in status.output


def test_cli_needs_a_file_or_bundled(cli_env: Path) -> None:
    result = CliRunner().invoke(app, ["roadmap", "import"])
    assert result.exit_code == 2
    bad = CliRunner().invoke(app, ["roadmap", "import", str(cli_env / "x.xlsx"), "--dry-run"])
    assert bad.exit_code == 2


def test_bundled_seed_models_match_the_database_shape() -> None:
    for rm in load_bundled():
        for item in rm.items:
            assert item.number and item.action
