"""Tests for storage.school_import and storage.xlsx_safety (pure parsing, no DB)."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import openpyxl
import pytest

from storage import school_import, xlsx_safety
from storage.school_import import (
    ImportIssue,
    SchoolRow,
    normalize_key,
    parse_flag,
    parse_schools,
    write_schools_template,
)
from storage.xlsx_safety import (
    MSG_BROKEN,
    MSG_NOT_XLSX,
    MSG_NOT_ZIP,
    MSG_TOO_BIG,
    UnsafeWorkbookError,
    defusedxml_enabled,
    open_workbook_safely,
)

HEADERS = ["Муниципалитет", "Код ОО", "Наименование ОО", "ШНОР", "ШНСУ", "Зона риска", "Директор"]


def make_xlsx(path: Path, rows: list[list[object]], *, extra_sheet: bool = False) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    for row in rows:
        ws.append(row)
    if extra_sheet:
        other = wb.create_sheet("Другое")
        other.append(HEADERS)
        other.append(["Город", "1", "Школа на втором листе", "да", "да", "да", ""])
    wb.save(path)
    return path


def only_error(result) -> ImportIssue:
    assert len(result.errors) == 1, [str(e) for e in result.errors]
    return result.errors[0]


# ---------------------------------------------------------------- good files


def test_good_file_with_title_row_variants_and_all_flag_spellings(tmp_path: Path) -> None:
    path = make_xlsx(
        tmp_path / "schools.xlsx",
        [
            ["Список школ ШНОР/ШНСУ на 2025 год"],
            [],
            [
                "№ п/п",
                "  Муниципальное   образование ",
                "Код",
                "Полное наименование ОО",
                "ШНОР (да/нет)",
                "шнсу",
                "ЗОНА РИСКА",
                "ФИО директора",
            ],
            [
                1,
                "Город  Калининград",
                39001.0,
                " МАОУ  «СОШ № 1» ",
                "да",
                "нет",
                "",
                "Иванов  И. И.",
            ],
            [2, "Гурьевский МО", 39002, "МБОУ «Школа\u00a0№ 2»", "+", "-", "x", None],
            [None, None, None, None, None, None, None, None],
            [3, "Зеленоградский МО", "039003", "МБОУ «Школа № 3»", "1", "0", "х", "—"],
            [4, "Светлогорский МО", None, "МБОУ «Школа № 4»", "TRUE", "False", "Нет", ""],
            [5, "Балтийский МО", None, "МБОУ «Школа № 5»", True, False, 1, "Петрова А. А."],
            [6, "Балтийский МО", "", "МБОУ «Школа № 6»", "Да", "НЕТ", 0, None],
            [7, "   ", None, None, None, None, None, None],  # only "№" filled: skipped
        ],
    )
    result = parse_schools(path)
    assert result.errors == []
    assert result.ok
    assert result.rows == [
        SchoolRow(
            4, "Город Калининград", "МАОУ «СОШ № 1»", "39001", True, False, False, "Иванов И. И."
        ),
        SchoolRow(5, "Гурьевский МО", "МБОУ «Школа № 2»", "39002", True, False, True, None),
        SchoolRow(7, "Зеленоградский МО", "МБОУ «Школа № 3»", "039003", True, False, True, None),
        SchoolRow(8, "Светлогорский МО", "МБОУ «Школа № 4»", None, True, False, False, None),
        SchoolRow(9, "Балтийский МО", "МБОУ «Школа № 5»", None, True, False, True, "Петрова А. А."),
        SchoolRow(10, "Балтийский МО", "МБОУ «Школа № 6»", None, True, False, False, None),
    ]


def test_other_header_variants_and_yo(tmp_path: Path) -> None:
    path = make_xlsx(
        tmp_path / "s.xlsx",
        [
            ["Муниципалитет", "Наименование образовательной организации", "Руководитель"],
            ["Район", "Школа", "Сидоров С. С."],
        ],
    )
    result = parse_schools(path)
    assert result.errors == []
    assert result.rows == [
        SchoolRow(2, "Район", "Школа", None, False, False, False, "Сидоров С. С.")
    ]

    path = make_xlsx(
        tmp_path / "yo.xlsx",
        [["муниципалитет:", "Сокращённое наименование ОО*"], ["Район", "Школа"]],
    )
    result = parse_schools(path)
    assert result.errors == []
    assert [r.name for r in result.rows] == ["Школа"]


def test_only_first_sheet_is_read(tmp_path: Path) -> None:
    path = make_xlsx(
        tmp_path / "s.xlsx", [HEADERS, ["Город", "", "Школа", "", "", "", ""]], extra_sheet=True
    )
    result = parse_schools(path)
    assert [r.name for r in result.rows] == ["Школа"]


def test_extension_does_not_matter(tmp_path: Path) -> None:
    path = make_xlsx(tmp_path / "s.xlsx", [HEADERS, ["Город", "", "Школа", "", "", "", ""]])
    renamed = path.rename(tmp_path / "upload.tmp")
    assert [r.name for r in parse_schools(renamed).rows] == ["Школа"]


def test_template_round_trip(tmp_path: Path) -> None:
    path = write_schools_template(tmp_path / "sub" / "template.xlsx")
    assert path.exists()
    only_examples = parse_schools(path)
    assert only_examples.rows == [] and only_examples.examples_skipped == 2
    assert "строки-примеры" in str(only_error(only_examples))

    wb = openpyxl.load_workbook(path)
    for row in wb.active.iter_rows(min_row=2, max_row=3):
        row[2].value = row[2].value.replace(" (пример)", "")
    wb.save(path)
    result = parse_schools(path)
    assert result.errors == [] and result.examples_skipped == 0
    assert len(result.rows) == 2
    first, second = result.rows
    assert first.code == "39001" and first.shnor and not first.shnsu
    assert first.director == "Иванова Анна Петровна"
    assert second.code is None and second.shnsu and second.risk_zone and second.director is None
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == ["Школы", "Инструкция"]


# ---------------------------------------------------------------- structure errors


def test_missing_name_header(tmp_path: Path) -> None:
    path = make_xlsx(
        tmp_path / "s.xlsx",
        [["Муниципалитет", "Учреждение", "ШНОР"], ["Город", "1", "да"]],
    )
    issue = only_error(parse_schools(path))
    assert issue.row is None
    text = str(issue)
    assert "нет обязательного столбца «Наименование ОО»" in text
    assert "«Муниципалитет», «Учреждение», «ШНОР»" in text


def test_missing_both_required_headers(tmp_path: Path) -> None:
    path = make_xlsx(tmp_path / "s.xlsx", [["Город", "Учреждение"], ["Х", "У"]])
    text = str(only_error(parse_schools(path)))
    assert "нет обязательных столбцов «Муниципалитет», «Наименование ОО»" in text
    assert "«Город», «Учреждение»" in text


def test_empty_sheet(tmp_path: Path) -> None:
    path = make_xlsx(tmp_path / "s.xlsx", [])
    assert str(only_error(parse_schools(path))).startswith("В файле нет ни одной школы")


def test_header_without_data(tmp_path: Path) -> None:
    path = make_xlsx(tmp_path / "s.xlsx", [HEADERS, [None] * 7, ["", " ", "", "", "", "", ""]])
    assert str(only_error(parse_schools(path))).startswith("В файле нет ни одной школы")


def test_header_not_in_first_ten_rows(tmp_path: Path) -> None:
    path = make_xlsx(tmp_path / "s.xlsx", [[None]] * 11 + [HEADERS, ["Г", "", "Ш"]])
    assert "строки заголовков" in str(only_error(parse_schools(path)))


def test_duplicate_header_column(tmp_path: Path) -> None:
    path = make_xlsx(
        tmp_path / "s.xlsx",
        [["Муниципалитет", "Наименование ОО", "ШНОР", "шнор"], ["Г", "Ш", "да", "нет"]],
    )
    issue = only_error(parse_schools(path))
    assert (issue.row, issue.column) == (1, "ШНОР")
    assert "C, D" in issue.message


# ---------------------------------------------------------------- row errors


def test_bad_flag_value_names_row_and_column(tmp_path: Path) -> None:
    rows: list[list[object]] = [["Список школ"], HEADERS]
    rows += [["Город", str(i), f"Школа {i}", "да", "", "", ""] for i in range(4)]
    rows.append(["Город", "9", "Школа 9", "может быть", "", "", ""])  # row 7
    issue = only_error(parse_schools(make_xlsx(tmp_path / "s.xlsx", rows)))
    assert (issue.row, issue.column) == (7, "ШНОР")
    assert str(issue) == (
        "Строка 7, столбец «ШНОР»: непонятное значение «может быть». Укажите «да» или «нет»."
    )


def test_all_errors_are_collected_and_no_rows_returned_for_bad_ones(tmp_path: Path) -> None:
    rows = [
        HEADERS,
        ["Город", "1", "Школа 1", "да", "", "", ""],  # 2 ok
        ["", "2", "Школа 2", "", "", "", ""],  # 3 no municipality
        ["Город", "3", "", "", "", "", ""],  # 4 no name
        ["Город", "4", "Ш" * 501, "", "", "", ""],  # 5 too long
        ["Город", "5", "Школа 5", "", "2", "ага", ""],  # 6 two bad flags
    ]
    result = parse_schools(make_xlsx(tmp_path / "s.xlsx", rows))
    assert [r.row for r in result.rows] == [2]
    assert not result.ok
    got = [(e.row, e.column) for e in result.errors]
    assert got == [
        (3, "Муниципалитет"),
        (4, "Наименование ОО"),
        (5, "Наименование ОО"),
        (6, "ШНСУ"),
        (6, "Зона риска"),
    ]
    assert "длиннее 500 символов" in result.errors[2].message


def test_duplicates(tmp_path: Path) -> None:
    rows = [
        HEADERS,
        ["Город", 100, "Школа 1", "", "", "", ""],  # 2
        ["Район", "100", "Школа 2", "", "", "", ""],  # 3 duplicate code
        ["Город", None, "МБОУ «Школа 3»", "", "", "", ""],  # 4
        ["город", None, 'мбоу  "Школа 3"', "", "", "", ""],  # 5 duplicate name, no code
        ["Город", "7", "Школа 1", "", "", "", ""],  # 6 same name, other code: the DB can't
        ["Город", "8", "Школа Ёлочка", "", "", "", ""],  # 7
        ["Город", None, "школа елочка", "", "", "", ""],  # 8 clashes with coded row 7
        ["Район", "9", "Школа 1", "", "", "", ""],  # 9 same name elsewhere: fine
    ]
    result = parse_schools(make_xlsx(tmp_path / "s.xlsx", rows))
    assert [r.row for r in result.rows] == [2, 4, 7, 9]
    assert [(e.row, e.column) for e in result.errors] == [
        (3, "Код ОО"),
        (5, None),
        (6, None),
        (8, None),
    ]
    assert "строке 2" in result.errors[0].message
    assert "строке 4" in result.errors[1].message
    assert "строке 2" in result.errors[2].message and "уточните" in result.errors[2].message
    assert "строке 7" in result.errors[3].message


def test_example_rows_are_skipped_and_counted(tmp_path: Path) -> None:
    rows = [
        HEADERS,
        ["Городской округ Пример", "39001", "МБОУ «Средняя школа № 1» (пример)", "да", "", "", ""],
        ["Город", "1", "Школа 1", "", "", "", ""],
        ["Город", "", "Школа 2 (ПРИМЕР)", "", "", "", ""],
        ["Город", "", "Школа «Пример»", "", "", "", ""],  # a real name with the word in it
    ]
    result = parse_schools(make_xlsx(tmp_path / "s.xlsx", rows))
    assert result.errors == []
    assert [r.name for r in result.rows] == ["Школа 1", "Школа «Пример»"]
    assert result.examples_skipped == 2


def test_row_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [HEADERS] + [["Город", "", f"Школа {i}", "", "", "", ""] for i in range(4)]
    path = make_xlsx(tmp_path / "s.xlsx", rows)
    monkeypatch.setattr(school_import, "MAX_ROWS", 4)
    assert len(parse_schools(path).rows) == 4
    monkeypatch.setattr(school_import, "MAX_ROWS", 3)
    result = parse_schools(path)
    assert not result.ok
    assert "больше 3 строк" in str(only_error(result))


def test_default_row_limit_is_documented() -> None:
    assert school_import.MAX_ROWS == 200_000
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    assert "200 000" in readme


def test_error_cap(tmp_path: Path) -> None:
    rows = [HEADERS] + [["Город", "", f"Школа {i}", "??", "", "", ""] for i in range(250)]
    result = parse_schools(make_xlsx(tmp_path / "s.xlsx", rows))
    assert len(result.errors) == 201
    assert str(result.errors[-1]).startswith("…и ещё 50 ошибок.")
    assert result.errors[199].row == 201


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, False),
        ("", False),
        ("  ", False),
        ("да", True),
        ("ДА", True),
        ("нет", False),
        ("+", True),
        ("-", False),
        ("1", True),
        ("0", False),
        (1, True),
        (0.0, False),
        ("x", True),
        ("X", True),
        ("х", True),  # Cyrillic
        ("Х", True),
        ("true", True),
        ("FALSE", False),
        (True, True),
        ("может быть", None),
        (2, None),
        ("yes", None),
    ],
)
def test_parse_flag(value: object, expected: bool | None) -> None:
    assert parse_flag(value) is expected


def test_normalize_key() -> None:
    assert normalize_key(" МБОУ  «Школа Ёлка» ") == normalize_key('мбоу "школа елка"')


def test_issue_str_forms() -> None:
    assert str(ImportIssue(None, None, "Текст.")) == "Текст."
    assert str(ImportIssue(3, None, "текст.")) == "Строка 3: текст."
    assert str(ImportIssue(None, "ШНОР", "текст.")) == "Столбец «ШНОР»: текст."


# ---------------------------------------------------------------- unsafe files


def test_defusedxml_is_used() -> None:
    assert openpyxl.xml.DEFUSEDXML is True
    assert defusedxml_enabled()


def test_missing_and_empty_file(tmp_path: Path) -> None:
    with pytest.raises(UnsafeWorkbookError, match="не найден"):
        open_workbook_safely(tmp_path / "nope.xlsx")
    with pytest.raises(UnsafeWorkbookError, match="не найден"):
        open_workbook_safely(tmp_path)  # a directory
    empty = tmp_path / "empty.xlsx"
    empty.write_bytes(b"")
    issue = only_error(parse_schools(empty))
    assert issue.row is None and "пустой" in issue.message


def test_csv_renamed_to_xlsx(tmp_path: Path) -> None:
    path = tmp_path / "schools.xlsx"
    path.write_text("Муниципалитет;Наименование ОО\nГород;Школа\n", encoding="utf-8")
    assert only_error(parse_schools(path)).message == MSG_NOT_ZIP


def test_random_bytes_and_old_xls(tmp_path: Path) -> None:
    path = tmp_path / "random.xlsx"
    path.write_bytes(os.urandom(4096))
    assert only_error(parse_schools(path)).message == MSG_NOT_ZIP
    xls = tmp_path / "old.xlsx"
    xls.write_bytes(bytes.fromhex("D0CF11E0A1B11AE1") + b"\0" * 1024)
    assert only_error(parse_schools(xls)).message == MSG_NOT_ZIP


def test_zip_that_is_not_xlsx(tmp_path: Path) -> None:
    path = tmp_path / "archive.xlsx"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hello")
        zf.writestr("content.xml", "<a/>")
    assert only_error(parse_schools(path)).message == MSG_NOT_XLSX


def test_corrupted_xlsx(tmp_path: Path) -> None:
    path = tmp_path / "broken.xlsx"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("xl/workbook.xml", "<<< not xml")
    with pytest.raises(UnsafeWorkbookError) as exc:
        open_workbook_safely(path)
    assert str(exc.value) == MSG_BROKEN
    assert only_error(parse_schools(path)).message == MSG_BROKEN


def _rewrite_member(src: Path, dst: Path, name: str, data: bytes) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info, data if info.filename == name else zin.read(info))


def test_xml_entities_in_sheet_are_rejected(tmp_path: Path) -> None:
    good = make_xlsx(tmp_path / "good.xlsx", [HEADERS, ["Г", "", "Ш", "", "", "", ""]])
    evil_sheet = (
        b'<?xml version="1.0"?>\n'
        b'<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>\n'
        b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        b'<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>&lol2;</t></is></c></row>'
        b"</sheetData></worksheet>"
    )
    evil = tmp_path / "evil.xlsx"
    _rewrite_member(good, evil, "xl/worksheets/sheet1.xml", evil_sheet)
    assert only_error(parse_schools(evil)).message == MSG_BROKEN


def forbid_decompression(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything reads a zip member or hands the file to openpyxl."""

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the archive must be rejected without decompressing it")

    monkeypatch.setattr(zipfile.ZipFile, "open", forbidden)
    monkeypatch.setattr(zipfile.ZipFile, "read", forbidden)
    monkeypatch.setattr(openpyxl, "load_workbook", forbidden)


def zeros_zip(path: Path, megabytes: int) -> Path:
    """An xlsx-looking zip whose sheet is `megabytes` MB of zeros, written streaming."""
    chunk = bytes(1024 * 1024)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("xl/workbook.xml", "<workbook/>")
        with zf.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as member:
            for _ in range(megabytes):
                member.write(chunk)
    return path


def test_zip_bomb_is_rejected_without_decompressing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = zeros_zip(tmp_path / "bomb.xlsx", 300)
    assert path.stat().st_size < 3 * 1024 * 1024
    forbid_decompression(monkeypatch)
    with pytest.raises(UnsafeWorkbookError) as exc:
        open_workbook_safely(path)
    assert str(exc.value) == MSG_TOO_BIG
    assert only_error(parse_schools(path)).message == MSG_TOO_BIG


def test_highly_compressed_member_is_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = zeros_zip(tmp_path / "ratio.xlsx", 20)  # under 200 MB, but ratio ~1000
    forbid_decompression(monkeypatch)
    assert only_error(parse_schools(path)).message == MSG_TOO_BIG


def test_too_large_total_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.xlsx"
    with zipfile.ZipFile(path, "w") as zf:  # stored, ratio 1
        zf.writestr("xl/workbook.xml", "<workbook/>")
        zf.writestr("xl/worksheets/sheet1.xml", os.urandom(64 * 1024))
    monkeypatch.setattr(xlsx_safety, "MAX_TOTAL_UNCOMPRESSED", 32 * 1024)
    forbid_decompression(monkeypatch)
    assert only_error(parse_schools(path)).message == MSG_TOO_BIG


def test_too_many_members_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "many.xlsx"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("xl/workbook.xml", "<workbook/>")
        for i in range(10_000):
            zf.writestr(f"xl/media/{i}.txt", b"")
    forbid_decompression(monkeypatch)
    assert only_error(parse_schools(path)).message == MSG_TOO_BIG


def test_open_workbook_safely_returns_workbook(tmp_path: Path) -> None:
    path = make_xlsx(tmp_path / "s.xlsx", [HEADERS])
    wb = open_workbook_safely(path, read_only=False)
    try:
        assert wb.active["A1"].value == "Муниципалитет"
    finally:
        wb.close()
