"""python -m bot export …"""

from __future__ import annotations

import shutil
import sqlite3
import zipfile

import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from bot.cli import app
from tests.export_fixtures import MUN_A, built_region


@pytest.fixture
def cli_env(tmp_path, tmp_path_factory, monkeypatch):
    region = built_region(tmp_path_factory)
    copy = tmp_path / "cli.sqlite3"
    shutil.copyfile(region.database, copy)
    monkeypatch.setenv("DATA_DIR", str(region.data_dir))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{copy}")
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    for name in ("BOT_TOKEN", "TELEGRAM_API_URL", "ADMINS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env
    return region


def test_export_command_with_every_option(cli_env, tmp_path) -> None:
    out, documents = tmp_path / "выгрузка.xlsx", tmp_path / "документы.zip"
    result = CliRunner().invoke(
        app,
        [
            "export",
            "--out",
            str(out),
            "--campaign",
            str(cli_env.school_campaign),
            "--municipality",
            "  алексеевский РАЙОН ",
            "--documents",
            str(documents),
            "--include-drafts",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Готово" in result.output and "анкет 3 из 4" in result.output
    assert "в расчёте показателей 3" in result.output  # the draft counts with --include-drafts
    wb = load_workbook(out)
    assert wb.sheetnames[0] == "Ответы — Анкета ОО"  # the one campaign's form
    rows = list(wb["Ответы — Анкета ОО"].iter_rows(values_only=True))[2:]
    assert {row[2] for row in rows} == {MUN_A}
    assert {row[0] for row in rows} == {cli_env.school_campaign}
    with zipfile.ZipFile(documents) as archive:
        names = archive.namelist()
    assert names and all(name.startswith(f"{MUN_A}/") for name in names)
    assert f"Документы: {len(names)} файлов" in result.output


def test_export_everything_by_default(cli_env, tmp_path) -> None:
    out = tmp_path / "all.xlsx"
    result = CliRunner().invoke(app, ["export", "--out", str(out)])
    assert result.exit_code == 0, result.output
    campaigns = {
        row[0] for row in list(load_workbook(out)["Прогресс"].iter_rows(values_only=True))[2:]
    }
    assert campaigns == {1, 2, 3}


def test_export_command_errors(cli_env, tmp_path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        app, ["export", "--out", str(tmp_path / "x.xlsx"), "--municipality", "Нет"]
    )
    assert result.exit_code == 2 and "не найден" in result.output
    result = runner.invoke(app, ["export", "--out", str(tmp_path / "x.xlsx"), "--campaign", "99"])
    assert result.exit_code == 1 and "№99" in result.output
    assert not (tmp_path / "x.xlsx").exists()


def test_export_names_the_sheets_where_missing_files_are_marked(cli_env, tmp_path) -> None:
    database = tmp_path / "cli.sqlite3"
    with sqlite3.connect(database) as conn:  # one document lost from the disk
        conn.execute("UPDATE attachments SET storage_path = '00/00/missing.pdf' WHERE id = 1")
    out, documents = tmp_path / "out.xlsx", tmp_path / "docs.zip"
    result = CliRunner().invoke(app, ["export", "--out", str(out), "--documents", str(documents)])
    assert result.exit_code == 0, result.output
    assert "Не нашлось на диске файлов: 1 (отмечены в листах «Ответы — …»)." in result.output
    assert any(name.startswith("Ответы — ") for name in load_workbook(out).sheetnames)
