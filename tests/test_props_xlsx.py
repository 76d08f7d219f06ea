"""Random cells in a real .xlsx file, imported (issue 11 §4): the schools list and a roadmap
table give either rows or Russian errors, never an exception."""

from __future__ import annotations

import re
import tempfile
from datetime import date, datetime
from pathlib import Path

import openpyxl
from hypothesis import example, given, settings
from hypothesis import strategies as st
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from roadmaps.deadlines import Period
from roadmaps.importer import import_xlsx
from roadmaps.xlsx_table import PeriodNotFound
from storage.school_import import parse_schools

CYRILLIC = re.compile(r"[а-яё]", re.IGNORECASE)

WORDS = [
    "да",
    "нет",
    "Да ",
    "НЕТ",
    "1",
    "0",
    "+",
    "-",
    "(пример)",
    "Северный район",
    "МБОУ СОШ № 1",
    "до 12.03.2024",
    "в течение года",
    "ежемесячно",
    "Директор ОО",
    "МОУО",
    "31.02.2024",
    "ШНОР",
    "Зона риска",
    "Муниципалитет",
    "№",
    "=1/0",
    "=A1",
    "#REF!",
    "\u00a0",
    "",
]
CELL = st.one_of(
    st.none(),
    st.sampled_from(WORDS),
    st.text(max_size=80).map(lambda s: ILLEGAL_CHARACTERS_RE.sub("", s)),
    st.text(min_size=400, max_size=900, alphabet="абв "),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.dates(date(1900, 3, 1), date(2100, 1, 1)),
    st.datetimes(datetime(1900, 3, 1), datetime(2100, 1, 1)),
    st.times().map(lambda t: t.replace(microsecond=0)),
)
ROWS = st.lists(st.lists(CELL, max_size=9), max_size=12)

SCHOOL_HEADERS = st.lists(
    st.sampled_from(
        [
            "Муниципалитет",
            "Наименование ОО",
            "Код ОО",
            "ШНОР",
            "ШНСУ",
            "Зона риска",
            "Директор",
            "Прочее",
            None,
            "муниципалитет",
            "Наименование ОО",
        ]
    ),
    max_size=8,
)
ROADMAP_HEADERS = st.lists(
    st.sampled_from(
        [
            "№ п/п",
            "Мероприятие",
            "Сроки",
            "Ответственный",
            "Показатель",
            "Для кого",
            "Информационное сопровождение",
            None,
            "Сроки реализации",
            "Исполнители",
        ]
    ),
    max_size=8,
)


FOLDER = tempfile.TemporaryDirectory(prefix="props-xlsx-")  # removed when the module is gone


def _write(rows: list[list[object]], title_rows: list[list[object]] = ()) -> Path:
    path = Path(FOLDER.name) / "table.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    for row in [*title_rows, *rows]:
        ws.append(row)
    wb.save(path)
    return path


def _russian(text: str) -> bool:
    return bool(CYRILLIC.search(text))


@settings(max_examples=60, deadline=None)
@given(header=SCHOOL_HEADERS, rows=ROWS, above=st.lists(st.lists(CELL, max_size=3), max_size=3))
@example(header=["Муниципалитет", "Наименование ОО", "ШНОР"], rows=[["Р", "Школа", "да"]], above=[])
def test_a_random_schools_table_gives_rows_or_russian_errors(header, rows, above):
    result = parse_schools(_write([header, *rows], above))
    if header[:2] == ["Муниципалитет", "Наименование ОО"] and rows == [["Р", "Школа", "да"]]:
        assert [r.name for r in result.rows] == ["Школа"] and result.rows[0].shnor
    assert result.rows or result.errors
    for issue in result.errors:
        assert _russian(str(issue)), issue
    if not result.errors:
        for row in result.rows:
            assert row.municipality.strip() and row.name.strip()
            assert isinstance(row.shnor, bool) and isinstance(row.risk_zone, bool)


@settings(max_examples=60, deadline=None)
@given(
    header=ROADMAP_HEADERS,
    rows=ROWS,
    above=st.lists(st.lists(CELL, max_size=3), max_size=3),
    period=st.sampled_from([None, Period.calendar_year(2024), Period.academic_year(2024)]),
)
@example(
    header=["№", "Мероприятие", "Сроки", "Ответственный"],
    rows=[[1, "Совещание", "до 12.03.2024", "МОУО"]],
    above=[],
    period=Period.calendar_year(2024),
)
def test_a_random_roadmap_table_gives_items_or_russian_problems(header, rows, above, period):
    path = _write([header, *rows], above)
    try:
        result = import_xlsx(path, roadmap_id="t", title=None, period=period, level="region")
    except PeriodNotFound as exc:  # the chat then asks for the period
        assert period is None and _russian(str(exc))
        return
    assert result.roadmap.items or result.problems
    if rows == [[1, "Совещание", "до 12.03.2024", "МОУО"]] and header[1] == "Мероприятие":
        assert [i.action for i in result.roadmap.items] == ["Совещание"]
    for problem in result.problems:
        assert _russian(problem.message), problem


@settings(max_examples=30, deadline=None)
@given(data=st.binary(max_size=2000))
def test_random_bytes_named_xlsx_are_refused_in_russian(data):
    path = Path(FOLDER.name) / "bytes.xlsx"
    path.write_bytes(b"PK\x03\x04" + data if data[:1] == b"\x00" else data)
    schools = parse_schools(path)
    assert schools.errors and all(_russian(str(e)) for e in schools.errors)
    roadmap = import_xlsx(path, roadmap_id="t", title="Т", period=None, level="region")
    assert roadmap.problems and all(_russian(p.message) for p in roadmap.problems)
