"""`roadmap import` from the command line: the header above the data, the period read from
the title (issue 7, items 12 and 13)."""

from __future__ import annotations

import json
from pathlib import Path

import openpyxl
import pytest
from typer.testing import CliRunner

from bot.cli import app

HEADER = ["№", "Мероприятие", "Сроки", "Ответственный"]


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return tmp_path


def _xlsx(path: Path, rows: list[list]) -> Path:
    wb = openpyxl.Workbook()
    for row in rows:
        wb.active.append(row)
    wb.save(path)
    return path


def test_srok_rows_are_imported_not_taken_for_the_header(cli_env: Path) -> None:
    path = _xlsx(
        cli_env / "plan.xlsx",
        [
            ["Дорожная карта на 2024 год"],
            HEADER,
            ["1.", "Проведение мероприятия для директоров", "Срок — 20.09.2024", "Директор школы"],
        ],
    )
    result = CliRunner().invoke(app, ["roadmap", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert "пунктов новых 1" in result.output
    assert "Период из заголовка таблицы: 01.01.2024–31.12.2024" in result.output


def test_no_items_says_why(cli_env: Path) -> None:
    path = _xlsx(cli_env / "empty.xlsx", [["Дорожная карта на 2024 год"], HEADER])
    result = CliRunner().invoke(app, ["roadmap", "import", str(path)])
    assert result.exit_code == 1
    assert "нет ни одной строки с мероприятием" in result.output
    assert "Файл не загружен" in result.output
    assert not (cli_env / "data").exists()


def test_period_is_read_from_the_title(cli_env: Path) -> None:
    path = _xlsx(
        cli_env / "ac.xlsx",
        [
            ["Дорожная карта на 2024/2025 учебный год"],
            HEADER,
            ["1.", "Мониторинг", "не реже 1 раза в месяц", "Директор школы"],
        ],
    )
    result = CliRunner().invoke(app, ["roadmap", "import", str(path), "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    (entry,) = json.loads(result.output)
    assert entry["period"] == {"start": "2024-09-01", "end": "2025-08-31"}
    assert entry["title"] == "Дорожная карта на 2024/2025 учебный год"
    assert len(entry["rows"][0]["due_dates"]) == 12  # one per month, not one in total
    assert entry["applies_to"] == {"kind": "shnor_shnsu"}  # a regional roadmap's default
    assert entry["rows"][0]["applies_to"] == {"kind": "shnor_shnsu"}


def test_period_is_asked_for_only_when_the_title_has_none(cli_env: Path) -> None:
    path = _xlsx(cli_env / "x.xlsx", [["Дорожная карта"], HEADER, ["1.", "А", "май", "ОО"]])
    result = CliRunner().invoke(app, ["roadmap", "import", str(path), "--dry-run"])
    assert result.exit_code == 2
    assert "укажите его: --period 2024" in result.output
    given = CliRunner().invoke(
        app, ["roadmap", "import", str(path), "--period", "2024", "--dry-run"]
    )
    assert given.exit_code == 0, given.output
    assert "2024-05-31" in given.output
