"""The README's «Дорожная карта» paragraph names the sheet's real headers and statuses."""

from __future__ import annotations

from pathlib import Path

from openpyxl import load_workbook

from exports.data import ExportScope
from exports.roadmap import DONE, OVERDUE, SHEET_ROADMAP, TOTAL
from tests.test_export_roadmap import export

README = Path(__file__).resolve().parent.parent / "README.md"


def roadmap_paragraph() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"### The «{SHEET_ROADMAP}» sheet")
    return text[start : text.index("\n## ", start)]


async def test_readme_describes_the_roadmap_sheet_as_written(tmp_path, tmp_path_factory) -> None:
    out = await export(tmp_path, tmp_path_factory, ExportScope(), writer_process=False)
    rows = list(load_workbook(out)[SHEET_ROADMAP].iter_rows(values_only=True))
    headers = " ".join(str(h) for h in rows[1])
    cells = {str(c) for row in rows[2:] for c in row if c is not None}
    doc = " ".join(roadmap_paragraph().split())
    for header in (
        "Муниципалитет",
        "Наименование ОО",
        "Код ОО",
        "Исполнение дорожной карты, %",
        "Выполнено (сроков)",
        "Всего сроков",
        "Просрочено (сроков)",
        ": подтверждение",
    ):
        assert header in doc and header in headers, header
    assert "«Ориентир «…» к ДД.ММ.ГГГГ достигнут»" in doc and "Ориентир «" in headers
    for status in (DONE, OVERDUE):
        assert f"«{status}»" in doc and status in cells, status
    assert "«в срок до ДД.ММ»" in doc and any(c.startswith("в срок до ") for c in cells)
    assert f"«{TOTAL}»" in doc and TOTAL in cells
    assert "«выполнено в X из Y»" in doc and any(c.startswith("выполнено в ") for c in cells)
