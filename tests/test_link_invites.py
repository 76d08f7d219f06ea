"""`invites` writes a deep link per configured platform: Telegram, VK and MAX."""

from __future__ import annotations

import openpyxl
import pytest
from typer.testing import CliRunner

from bot.cli import app
from tests.test_cli import GOOD, count, write_schools

runner = CliRunner()
BASE = ("Муниципалитет", "Наименование ОО", "Роль", "Код")
TAIL = ("Команда", "Использован")


@pytest.fixture
def schools(settings, tmp_path, monkeypatch):
    for name in ("VK_TOKEN", "VK_GROUP_ID", "MAX_TOKEN", "MAX_API_URL"):
        monkeypatch.delenv(name, raising=False)
    path = write_schools(tmp_path / "s.xlsx", GOOD)
    assert runner.invoke(app, ["import-schools", str(path), "--region", "Область"]).exit_code == 0
    return settings


def sheet_rows(path) -> list[tuple]:
    return list(openpyxl.load_workbook(path).active.iter_rows(values_only=True))


def test_a_link_column_per_platform_given(schools, tmp_path):
    out = tmp_path / "invites.xlsx"
    result = runner.invoke(
        app,
        [
            "invites", "--out", str(out), "--bot-username", "shnor_bot",
            "--vk-group", "shnor_monitoring", "--max-bot", "shnor_max_bot",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = sheet_rows(out)
    assert rows[0] == (*BASE, "Ссылка Telegram", "Ссылка VK", "Ссылка MAX", *TAIL)
    school = next(r for r in rows if r[1] == "МАОУ СОШ № 1")
    code = school[3]
    assert school[4:7] == (
        f"https://t.me/shnor_bot?start={code}",
        f"https://vk.me/shnor_monitoring?ref={code}",
        f"https://max.ru/shnor_max_bot?start={code}",
    )
    assert school[7] == f"/start {code}"
    assert "Ссылки не построены" not in result.output


def test_only_the_platforms_given_get_columns(schools, tmp_path):
    out = tmp_path / "invites.xlsx"
    result = runner.invoke(app, ["invites", "--out", str(out), "--vk-group", "@club123"])
    assert result.exit_code == 0, result.output
    rows = sheet_rows(out)
    assert rows[0] == (*BASE, "Ссылка VK", *TAIL)
    assert all(r[4] == f"https://vk.me/club123?ref={r[3]}" for r in rows[1:])


def test_the_vk_group_comes_from_the_settings(schools, tmp_path, monkeypatch):
    monkeypatch.setenv("VK_TOKEN", "vk-token")
    monkeypatch.setenv("VK_GROUP_ID", "4242")
    out = tmp_path / "invites.xlsx"
    result = runner.invoke(app, ["invites", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = sheet_rows(out)
    assert rows[0] == (*BASE, "Ссылка VK", *TAIL)
    assert rows[1][4] == f"https://vk.me/club4242?ref={rows[1][3]}"


def test_no_platform_no_link_columns_and_a_hint(schools, tmp_path):
    out = tmp_path / "invites.xlsx"
    result = runner.invoke(app, ["invites", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sheet_rows(out)[0] == (*BASE, *TAIL)
    assert "Ссылки не построены" in result.output and "--vk-group" in result.output


@pytest.mark.parametrize(
    ("option", "value"),
    [("--bot-username", "shnor bot"), ("--vk-group", "vk.com/club1?x"), ("--max-bot", "бот")],
)
def test_a_malformed_name_is_refused_and_nothing_is_written(schools, tmp_path, option, value):
    out = tmp_path / "invites.xlsx"
    result = runner.invoke(app, ["invites", "--out", str(out), option, value])
    assert result.exit_code == 2
    assert f"{option}: «{value}»" in result.output and "например" in result.output
    assert not out.exists()
    assert count(schools, "invites") == 0
