"""The admin CLI against a real SQLite file: schools, invites, campaigns."""

from __future__ import annotations

import asyncio

import openpyxl
from sqlalchemy import text
from typer.testing import CliRunner

from bot.cli import app
from storage.database import create_engine, upgrade_sync

runner = CliRunner()


def write_schools(
    path,
    rows,
    headers=(
        "Муниципалитет",
        "Наименование ОО",
        "Код ОО",
        "ШНОР",
        "ШНСУ",
        "Зона риска",
        "Директор",
    ),
):
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["Перечень ШНОР/ШНСУ"])  # a title row above the header
    sheet.append(list(headers))
    for row in rows:
        sheet.append(list(row))
    workbook.save(path)
    return path


GOOD = [
    ("Гурьевский округ", "МАОУ СОШ № 1", 39001, "да", "нет", "да", "Иванов И. И."),
    ("Гурьевский округ", "МАОУ СОШ № 2", 39002, "нет", "да", "нет", None),
    ("Неманский округ", "МБОУ СОШ п. Лунино", None, "+", "", "", None),
]


def count(settings, table: str) -> int:
    upgrade_sync(settings.storage.url)

    async def go():
        engine = create_engine(settings.storage.url)
        async with engine.connect() as conn:
            value = (await conn.execute(text(f"select count(*) from {table}"))).scalar()
        await engine.dispose()
        return value

    return asyncio.run(go())


def test_import_schools_is_idempotent(settings, tmp_path):
    path = write_schools(tmp_path / "schools.xlsx", GOOD)
    result = runner.invoke(
        app, ["import-schools", str(path), "--region", "Калининградская область"]
    )
    assert result.exit_code == 0, result.output
    assert "новых школ 3" in result.output
    assert count(settings, "schools") == 3 and count(settings, "municipalities") == 2
    again = runner.invoke(app, ["import-schools", str(path), "--region", "Калининградская область"])
    assert "новых школ 0" in again.output and "без изменений 3" in again.output
    changed = [list(r) for r in GOOD]
    changed[1][1] = "МАОУ СОШ № 2 им. Героев"  # renamed: matched by its code
    write_schools(path, changed)
    third = runner.invoke(app, ["import-schools", str(path), "--region", "Калининградская область"])
    assert "обновлено 1" in third.output
    assert count(settings, "schools") == 3


def test_malformed_schools_file_imports_nothing(settings, tmp_path):
    bad = [*GOOD, ("Неманский округ", "", None, "может быть", "", "", None)]
    path = write_schools(tmp_path / "bad.xlsx", bad)
    result = runner.invoke(
        app, ["import-schools", str(path), "--region", "Калининградская область"]
    )
    assert result.exit_code == 1
    assert "Строка 6" in result.output and "«ШНОР»" in result.output
    assert "Файл не загружен" in result.output
    assert count(settings, "schools") == 0

    wrong = write_schools(tmp_path / "h.xlsx", GOOD, ("Колонка A", "Колонка B"))
    headers = runner.invoke(app, ["import-schools", str(wrong), "--region", "Область"])
    assert headers.exit_code == 1 and "Муниципалитет" in headers.output

    not_xlsx = tmp_path / "list.xlsx"
    not_xlsx.write_text("Муниципалитет;Наименование ОО\n", encoding="utf-8")
    result = runner.invoke(app, ["import-schools", str(not_xlsx), "--region", "Область"])
    assert result.exit_code == 1 and "xlsx" in result.output
    assert count(settings, "schools") == 0


def test_invites_keep_codes_unless_reissued(settings, tmp_path):
    path = write_schools(tmp_path / "s.xlsx", GOOD)
    assert runner.invoke(app, ["import-schools", str(path), "--region", "Область"]).exit_code == 0
    out = tmp_path / "invites.xlsx"
    result = runner.invoke(app, ["invites", "--out", str(out), "--bot-username", "shnor_bot"])
    assert result.exit_code == 0, result.output
    sheet = openpyxl.load_workbook(out).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:5] == ("Муниципалитет", "Наименование ОО", "Роль", "Код", "Ссылка Telegram")
    assert len(rows) == 1 + 2 + 3  # two municipalities and three schools
    school_row = next(r for r in rows if r[1] == "МАОУ СОШ № 1")
    assert school_row[4] == f"https://t.me/shnor_bot?start={school_row[3]}"
    codes = {r[3] for r in rows[1:]}

    runner.invoke(app, ["invites", "--out", str(out)])
    assert {
        r[3] for r in list(openpyxl.load_workbook(out).active.iter_rows(values_only=True))[1:]
    } == codes

    runner.invoke(app, ["invites", "--out", str(out), "--reissue"])
    reissued = {
        r[3] for r in list(openpyxl.load_workbook(out).active.iter_rows(values_only=True))[1:]
    }
    assert reissued.isdisjoint(codes)
    assert count(settings, "invites") == 10  # five revoked, five live


def test_campaign_open_targets_schools(settings, tmp_path):
    path = write_schools(tmp_path / "s.xlsx", GOOD)
    assert runner.invoke(app, ["import-schools", str(path), "--region", "Область"]).exit_code == 0
    result = runner.invoke(
        app, ["campaign", "open", "--form", "shnor_school", "--deadline", "2030-12-15"]
    )
    assert result.exit_code == 0, result.output
    assert "для 3 участников" in result.output and "15.12.2030" in result.output
    only = runner.invoke(
        app,
        [
            "campaign",
            "open",
            "--form",
            "shnor_school",
            "--deadline",
            "2030-12-15",
            "--only",
            "shnsu",
            "--municipality",
            "Гурьевский округ",
            "--force",  # those schools already have it open (tests/test_campaigns.py)
        ],
    )
    assert "для 1 участников" in only.output
    listing = runner.invoke(app, ["campaign", "list"])
    assert "отправили 0 из 3" in listing.output
    unknown = runner.invoke(app, ["campaign", "open", "--form", "nope", "--deadline", "2030-12-15"])
    assert unknown.exit_code == 2 and "shnor_school" in unknown.output
    bad_date = runner.invoke(
        app, ["campaign", "open", "--form", "shnor_school", "--deadline", "15 декабря"]
    )
    assert bad_date.exit_code == 2


def test_db_upgrade_and_forms_list(settings):
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    listing = runner.invoke(app, ["forms", "list"])
    assert "shnor_school v1" in listing.output and "program_report v1" in listing.output


def test_campaign_list_on_a_new_database_says_how_to_open_one(settings):
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    listing = runner.invoke(app, ["campaign", "list"])
    assert listing.exit_code == 0
    assert "Анкетирований пока нет" in listing.output and "campaign open" in listing.output
