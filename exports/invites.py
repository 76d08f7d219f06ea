"""The invites workbook: a code and a deep link per school and per municipality."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from openpyxl import Workbook
from openpyxl.utils import get_column_letter

from exports.safe import text_cell
from storage.admin import InviteRow

ROLE_NAMES = {"director": "Директор школы", "municipal": "Муниципальный координатор"}
HEADERS = ("Муниципалитет", "Наименование ОО", "Роль", "Код", "Ссылка", "Команда", "Использован")
WIDTHS = (34, 60, 26, 12, 46, 20, 12)


def deep_link(username: str | None, code: str) -> str:
    return f"https://t.me/{username}?start={code}" if username else ""


def write_invites(path: Path, rows: Sequence[InviteRow], bot_username: str | None) -> None:
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Приглашения")
    sheet.freeze_panes = "A2"
    for index, width in enumerate(WIDTHS, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    sheet.append(HEADERS)
    for row in rows:
        sheet.append(
            [
                text_cell(sheet, row.municipality),
                text_cell(sheet, row.school or "—"),
                ROLE_NAMES.get(row.role, row.role),
                row.code,
                deep_link(bot_username, row.code),
                f"/start {row.code}",
                "да" if row.used else "нет",
            ]
        )
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(HEADERS))}{len(rows) + 1}"
    path.parent.mkdir(parents=True, exist_ok=True)
    workbook.save(path)
