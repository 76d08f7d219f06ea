"""`python -m bot import-schools` against a real SQLite file: regions, re-imports, examples,
limits, batches. Every operator error is a short Russian message, exit 1, nothing written."""

from __future__ import annotations

import asyncio
import io

import openpyxl
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from bot.cli import app
from bot.schools_cli import import_progress
from storage import school_import, school_upsert
from storage.database import create_engine, upgrade_sync
from storage.school_import import write_schools_template
from tests.pg import requires_postgres, temporary_database

runner = CliRunner()
REGION = "Калининградская область"
HEADERS = ("Муниципалитет", "Наименование ОО", "Код ОО", "ШНОР", "ШНСУ", "Зона риска", "Директор")
GOOD = [
    ("Гурьевский округ", "МАОУ СОШ № 1", 39001, "да", "нет", "да", "Иванов И. И."),
    ("Гурьевский округ", "МАОУ СОШ № 2", 39002, "нет", "да", "нет", None),
    ("Неманский округ", "МБОУ СОШ п. Лунино", None, "+", "", "", None),
]


def write_schools(path, rows, headers=HEADERS):
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(list(headers))
    for row in rows:
        sheet.append(list(row))
    workbook.save(path)
    return path


def query(settings, sql: str) -> list[tuple]:
    upgrade_sync(settings.storage.url)

    async def go():
        engine = create_engine(settings.storage.url)
        async with engine.connect() as conn:
            rows = (await conn.execute(text(sql))).all()
        await engine.dispose()
        return [tuple(r) for r in rows]

    return asyncio.run(go())


def count(settings, table: str) -> int:
    return query(settings, f"select count(*) from {table}")[0][0]


def schools(settings) -> list[tuple]:
    return query(settings, "select code, name, is_shnor, director_name from schools order by name")


def invoke(*args: str):
    result = runner.invoke(app, ["import-schools", *args])
    assert "Traceback" not in result.output and "Error" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    return result


# ---------------------------------------------------------------- item 8: regions and re-import


def test_reimport_without_region_uses_the_only_region(settings, tmp_path):
    path = write_schools(tmp_path / "schools.xlsx", GOOD)
    first = invoke(str(path), "--region", REGION)
    assert first.exit_code == 0, first.output
    again = invoke(str(path))
    assert again.exit_code == 0, again.output
    assert REGION in again.output
    assert "новых школ 0" in again.output and "без изменений 3" in again.output
    assert count(settings, "schools") == 3
    assert query(settings, "select name from regions") == [(REGION,)]


def test_region_is_matched_ignoring_case_and_spaces(settings, tmp_path):
    path = write_schools(tmp_path / "schools.xlsx", GOOD)
    assert invoke(str(path), "--region", REGION).exit_code == 0
    again = invoke(str(path), "--region", "  калининградская   ОБЛАСТЬ ")
    assert again.exit_code == 0, again.output
    assert "без изменений 3" in again.output
    assert count(settings, "regions") == 1


def test_without_region_on_an_empty_database_asks_for_it(settings, tmp_path):
    path = write_schools(tmp_path / "schools.xlsx", GOOD)
    result = invoke(str(path))
    assert result.exit_code == 1
    assert "--region" in result.output
    assert "ещё нет ни одного региона" in result.output
    assert count(settings, "schools") == 0 and count(settings, "regions") == 0


def test_without_region_when_there_are_several_names_them(settings, tmp_path):
    first = write_schools(tmp_path / "a.xlsx", GOOD)
    assert invoke(str(first), "--region", REGION).exit_code == 0
    other = write_schools(tmp_path / "b.xlsx", [("Город Псков", "МБОУ СОШ № 5", 60005, "", "", "")])
    assert invoke(str(other), "--region", "Псковская область").exit_code == 0
    result = invoke(str(first))
    assert result.exit_code == 1
    assert "«Калининградская область»" in result.output and "«Псковская область»" in result.output
    assert "--region" in result.output
    assert count(settings, "schools") == 4


def test_codes_of_another_region_are_refused_and_nothing_written(settings, tmp_path):
    path = write_schools(tmp_path / "schools.xlsx", GOOD)
    assert invoke(str(path), "--region", REGION).exit_code == 0
    before = schools(settings)
    result = invoke(str(path), "--region", "Другая область")
    assert result.exit_code == 1
    assert "Файл не загружен" in result.output
    assert "Строка 2" in result.output and "39001" in result.output
    assert f"«{REGION}»" in result.output
    assert schools(settings) == before
    assert query(settings, "select name from regions") == [(REGION,)]


def test_a_school_whose_code_changed_is_refused_not_crashed(settings, tmp_path):
    path = write_schools(tmp_path / "schools.xlsx", GOOD)
    assert invoke(str(path), "--region", REGION).exit_code == 0
    before = schools(settings)
    changed = [list(r) for r in GOOD]
    changed[0][2] = 39999  # same municipality and name, another code
    write_schools(path, changed)
    result = invoke(str(path))
    assert result.exit_code == 1
    assert "Строка 2" in result.output and "39001" in result.output and "39999" in result.output
    assert schools(settings) == before


def test_renaming_onto_another_school_is_refused(settings, tmp_path):
    path = write_schools(tmp_path / "schools.xlsx", GOOD)
    assert invoke(str(path), "--region", REGION).exit_code == 0
    before = schools(settings)
    # 39002 renamed to the name of 39001, which is not in the file any more
    write_schools(path, [("Гурьевский округ", "МАОУ СОШ № 1", 39002, "", "", "", None)])
    result = invoke(str(path))
    assert result.exit_code == 1 and "Строка 2" in result.output
    assert schools(settings) == before


def test_reimport_updates_moves_and_keeps_codes(settings, tmp_path):
    path = write_schools(tmp_path / "schools.xlsx", GOOD)
    assert invoke(str(path), "--region", REGION).exit_code == 0
    changed = [list(r) for r in GOOD]
    changed[1][0] = "Неманский округ"  # 39002 moved to another municipality: matched by code
    changed[2][2] = 39003  # Лунино gets a code: matched by municipality + name
    changed[2][6] = "Петров П. П."
    write_schools(path, changed)
    result = invoke(str(path))
    assert result.exit_code == 0, result.output
    assert "новых школ 0, обновлено 2, без изменений 1" in result.output
    assert query(
        settings,
        "select s.code, m.name from schools s join municipalities m on m.id = s.municipality_id "
        "order by s.code",
    ) == [("39001", "Гурьевский округ"), ("39002", "Неманский округ"), ("39003", "Неманский округ")]


# ---------------------------------------------------------------- item 9: template examples


def test_template_example_rows_are_skipped(settings, tmp_path):
    path = write_schools_template(tmp_path / "schools.xlsx")
    workbook = openpyxl.load_workbook(path)
    workbook.active.append(["Гурьевский округ", "39001", "МАОУ СОШ № 1", "да", "нет", "нет", ""])
    workbook.save(path)
    result = invoke(str(path), "--region", REGION)
    assert result.exit_code == 0, result.output
    assert "новых школ 1" in result.output
    assert "пропущено строк-примеров из шаблона: 2" in result.output
    assert [s[1] for s in schools(settings)] == ["МАОУ СОШ № 1"]
    invites = runner.invoke(app, ["invites", "--out", str(tmp_path / "inv.xlsx")])
    assert invites.exit_code == 0, invites.output
    names = [
        r[1]
        for r in openpyxl.load_workbook(tmp_path / "inv.xlsx").active.iter_rows(
            min_row=2, values_only=True
        )
    ]
    assert not any("пример" in (n or "") for n in names)


def test_template_with_only_examples_is_refused(settings, tmp_path):
    path = write_schools_template(tmp_path / "template.xlsx")
    result = invoke(str(path), "--region", REGION)
    assert result.exit_code == 1
    assert "пример" in result.output and "Удалите" in result.output
    assert count(settings, "schools") == 0 and count(settings, "regions") == 0


# ---------------------------------------------------------------- items 10 and 28: size


def test_an_error_after_written_batches_leaves_nothing(settings, tmp_path, monkeypatch):
    monkeypatch.setattr(school_upsert, "BATCH_SIZE", 2)
    rows = [("Город", f"Школа {i}", 100 + i, "", "", "", None) for i in range(7)]
    rows.append(("Город", "Школа плохая", 999, "может быть", "", "", None))  # row 9
    path = write_schools(tmp_path / "schools.xlsx", rows)
    result = invoke(str(path), "--region", REGION)
    assert result.exit_code == 1 and "Строка 9" in result.output
    assert count(settings, "schools") == 0 and count(settings, "municipalities") == 0
    assert count(settings, "regions") == 0

    write_schools(path, rows[:-1])
    good = invoke(str(path), "--region", REGION)
    assert good.exit_code == 0, good.output
    assert "новых школ 7" in good.output and count(settings, "schools") == 7


def test_row_limit_is_refused_before_reading_everything(settings, tmp_path, monkeypatch):
    monkeypatch.setattr(school_import, "MAX_ROWS", 5)
    read: list[int] = []
    original = school_import._iter_sheet

    def spy(path, *args):
        for item in original(path, *args):
            read.append(item[0])
            yield item

    monkeypatch.setattr(school_import, "_iter_sheet", spy)
    rows = [("Город", f"Школа {i}", 100 + i, "", "", "", None) for i in range(50)]
    result = invoke(str(write_schools(tmp_path / "big.xlsx", rows)), "--region", REGION)
    assert result.exit_code == 1
    assert "больше 5 строк" in result.output and "Разделите" in result.output
    assert max(read) <= max(7, school_import.HEADER_SCAN_ROWS)  # not the 51 rows
    assert count(settings, "schools") == 0


def test_progress_bar_only_on_a_terminal(settings, tmp_path):
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Tty()
    with import_progress(total=10, stream=screen) as advance:
        advance(10)
    assert "10" in screen.getvalue()

    quiet = io.StringIO()
    with import_progress(total=10, stream=quiet) as advance:
        advance(10)
    assert quiet.getvalue() == ""


@pytest.mark.parametrize("bad", ["missing.xlsx", "dir"])
def test_unreadable_paths_are_plain_messages(settings, tmp_path, bad):
    (tmp_path / "dir").mkdir()
    result = invoke(str(tmp_path / bad), "--region", REGION)
    assert result.exit_code == 1 and "Файл не найден" in result.output
    assert count(settings, "regions") == 0


def test_template_into_an_unwritable_place_is_a_plain_message(settings, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = invoke(str(blocker / "template.xlsx"), "--template")
    assert result.exit_code == 1 and "Не удалось записать шаблон" in result.output


# ---------------------------------------------------------------- PostgreSQL


@requires_postgres
async def test_reimport_and_rollback_on_postgres(settings, tmp_path, monkeypatch):
    monkeypatch.setattr(school_upsert, "BATCH_SIZE", 2)
    path = write_schools(tmp_path / "schools.xlsx", GOOD)
    async with temporary_database() as url:
        monkeypatch.setenv("DATABASE_URL", url)
        first = await asyncio.to_thread(invoke, str(path), "--region", REGION)
        assert first.exit_code == 0, first.output
        again = await asyncio.to_thread(invoke, str(path))
        assert again.exit_code == 0 and "без изменений 3" in again.output, again.output
        other = await asyncio.to_thread(invoke, str(path), "--region", "Другая область")
        assert other.exit_code == 1 and "39001" in other.output
        bad = write_schools(
            tmp_path / "bad.xlsx",
            [*GOOD, ("Новый округ", "Новая школа", 1, "", "", "", None), ("Г", "Ш", 2, "?")],
        )
        failed = await asyncio.to_thread(invoke, str(bad))
        assert failed.exit_code == 1 and "Строка 6" in failed.output
        engine = create_engine(url)
        async with engine.connect() as conn:
            counts = [
                (await conn.execute(text(f"select count(*) from {table}"))).scalar()
                for table in ("regions", "municipalities", "schools")
            ]
        await engine.dispose()
        assert counts == [1, 2, 3]


def test_unreachable_database_is_a_plain_message(settings, tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:1/nothing")
    path = write_schools(tmp_path / "schools.xlsx", GOOD)
    result = invoke(str(path), "--region", REGION)
    assert result.exit_code == 1
    assert "база данных недоступна" in result.output and "DATABASE_URL" in result.output


async def test_rows_are_written_in_batches_while_they_are_read(services, monkeypatch):
    from storage.admin import import_schools
    from storage.school_import import SchoolRow

    monkeypatch.setattr(school_upsert, "BATCH_SIZE", 10)
    consumed = 0
    writes: list[tuple[int, int]] = []  # (rows read so far, rows in the batch)
    original = school_upsert._Writer._write

    async def spy(self, inserts, updates):
        writes.append((consumed, len(inserts) + len(updates)))
        await original(self, inserts, updates)

    monkeypatch.setattr(school_upsert._Writer, "_write", spy)

    def rows():
        nonlocal consumed
        for i in range(95):
            consumed += 1
            yield SchoolRow(i + 2, "Город", f"Школа {i}", str(1000 + i), False, False, False, None)

    async with services.sessions() as session:
        summary = await import_schools(session, REGION, rows(), "Europe/Moscow")
        await session.commit()
    assert summary.created == 95
    assert [size for _, size in writes] == [10] * 9 + [5]
    assert writes[0][0] <= 11 and writes[-2][0] < 95  # written as they come, not at the end
    async with services.sessions() as session:
        assert (await session.execute(text("select count(*) from schools"))).scalar() == 95
