"""The invites workbook: a code and a deep link per platform, per school and municipality."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from openpyxl import Workbook
from openpyxl.utils import get_column_letter

from exports.safe import text_cell
from storage.admin import InviteRow

ROLE_NAMES = {
    "director": "Директор школы",
    "municipal": "Муниципальный координатор",
    "regional": "Региональный координатор",
}
HEADERS = ("Муниципалитет", "Наименование ОО", "Роль", "Код")
TAIL = ("Команда", "Использован")
WIDTHS = (34, 60, 26, 12)
LINK_WIDTH = 46
TAIL_WIDTHS = (20, 12)

LinkBuilder = Callable[[str], str]


def deep_link(username: str | None, code: str) -> str:
    return f"https://t.me/{username}?start={code}" if username else ""


def write_invites(
    path: Path, rows: Sequence[InviteRow], links: Sequence[tuple[str, LinkBuilder]] = ()
) -> None:
    """``links``: a (column header, code → link) pair per configured platform."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Приглашения")
    sheet.freeze_panes = "A2"
    headers = (*HEADERS, *(header for header, _ in links), *TAIL)
    widths = (*WIDTHS, *(LINK_WIDTH for _ in links), *TAIL_WIDTHS)
    for index, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    sheet.append(headers)
    for row in rows:
        sheet.append(
            [
                text_cell(sheet, row.municipality),
                text_cell(sheet, row.school or "—"),
                ROLE_NAMES.get(row.role, row.role),
                row.code,
                *(build(row.code) for _, build in links),
                f"/start {row.code}",
                "да" if row.used else "нет",
            ]
        )
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(headers))}{len(rows) + 1}"
    path.parent.mkdir(parents=True, exist_ok=True)
    workbook.save(path)
