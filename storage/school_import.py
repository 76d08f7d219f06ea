"""Parse the schools list that admins import (``python -m bot import-schools FILE.xlsx``).

Pure parsing, no database. ``SchoolStream`` reads the first sheet one row at a time
(openpyxl read-only) and yields every good row; afterwards its ``issues`` hold every
problem it found. ``parse_schools`` does the same into a list, for small files. If
there is any problem the caller must import nothing and show them (``str(issue)`` is
a Russian sentence). At most ``MAX_ROWS`` filled rows are read; the template's example
rows (marked «(пример)») are skipped and counted.

Layout: the header row is looked for in the first ``HEADER_SCAN_ROWS`` rows (title
rows above it are fine); headers are matched case-insensitively, with whitespace
collapsed, 'ё' == 'е' and hints in brackets ignored ("ШНОР (да/нет)" == "ШНОР").
Unknown columns are ignored. Rows where all recognised columns are empty are skipped.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from storage.school_cells import (
    COLUMNS,
    FLAG_FIELDS,
    REQUIRED_FIELDS,
    cell_text,
    name_digest,
    normalize_header,
)
from storage.school_cells import normalize_key as normalize_key
from storage.school_cells import parse_flag as parse_flag
from storage.school_template import EXAMPLE_MARK
from storage.school_template import write_schools_template as write_schools_template
from storage.xlsx_safety import MSG_BROKEN, UnsafeWorkbookError, open_workbook_safely

HEADER_SCAN_ROWS = 10
MAX_ROWS = 200_000  # filled rows under the header; more is refused (README)
PROGRESS_EVERY = 1000
MAX_COLUMNS = 60
MAX_ERRORS = 200
MAX_TEXT_LEN = 500
MAX_CODE_LEN = 50


@dataclass(frozen=True, slots=True)
class SchoolRow:
    row: int  # Excel row number, 1-based
    municipality: str
    name: str
    code: str | None
    shnor: bool
    shnsu: bool
    risk_zone: bool
    director: str | None


@dataclass(frozen=True, slots=True)
class ImportIssue:
    row: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        if self.row is not None and self.column:
            return f"Строка {self.row}, столбец «{self.column}»: {self.message}"
        if self.row is not None:
            return f"Строка {self.row}: {self.message}"
        if self.column:
            return f"Столбец «{self.column}»: {self.message}"
        return self.message


@dataclass(slots=True)
class SchoolImport:
    rows: list[SchoolRow] = field(default_factory=list)
    errors: list[ImportIssue] = field(default_factory=list)
    examples_skipped: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors and bool(self.rows)


# ---------------------------------------------------------------- text helpers


def _quote(text: str, limit: int = 60) -> str:
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"«{text}»"


def _plural_errors(n: int) -> str:
    if n % 10 == 1 and n % 100 != 11:
        return "ошибка"
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return "ошибки"
    return "ошибок"


# ---------------------------------------------------------------- error collector


class IssueLog:
    """Problems of one import, capped at ``limit`` (the rest are only counted)."""

    def __init__(self, limit: int = MAX_ERRORS) -> None:
        self.items: list[ImportIssue] = []
        self.dropped = 0
        self.limit = limit

    def add(self, row: int | None, column: str | None, message: str) -> None:
        if len(self.items) < self.limit:
            self.items.append(ImportIssue(row, column, message))
        else:
            self.dropped += 1

    def __bool__(self) -> bool:
        return bool(self.items)

    def result(self) -> list[ImportIssue]:
        if not self.dropped:
            return list(self.items)
        tail = ImportIssue(
            None,
            None,
            f"…и ещё {self.dropped} {_plural_errors(self.dropped)}. "
            "Исправьте перечисленные выше и загрузите файл снова, чтобы увидеть остальные.",
        )
        return [*self.items, tail]


# ---------------------------------------------------------------- header detection


@dataclass(slots=True)
class _Header:
    row: int
    fields: dict[str, int]  # field id -> 0-based column index
    titles: dict[str, str]  # field id -> header text as written in the file
    found: list[str]  # all non-empty header texts, in order
    duplicates: dict[str, list[int]]  # field id -> all 0-based column indexes, if > 1


def _read_header(row_no: int, values: tuple[object, ...]) -> _Header:
    fields: dict[str, int] = {}
    titles: dict[str, str] = {}
    found: list[str] = []
    seen: dict[str, list[int]] = {}
    for idx, value in enumerate(values):
        text = cell_text(value)
        if not text:
            continue
        found.append(text)
        norm = normalize_header(text)
        for field_id, (_, variants) in COLUMNS.items():
            if norm in variants:
                seen.setdefault(field_id, []).append(idx)
                if field_id not in fields:
                    fields[field_id] = idx
                    titles[field_id] = text
                break
    duplicates = {f: cols for f, cols in seen.items() if len(cols) > 1}
    return _Header(row_no, fields, titles, found, duplicates)


def _pick_header(candidates: list[tuple[int, tuple[object, ...]]]) -> _Header | None:
    """First row with all required columns; else the row with most known columns."""
    best: _Header | None = None
    for row_no, values in candidates:
        header = _read_header(row_no, values)
        if all(f in header.fields for f in REQUIRED_FIELDS):
            return header
        if header.found and (best is None or len(header.fields) > len(best.fields)):
            best = header
    return best


# ---------------------------------------------------------------- parsing


def _is_blank(values: Iterable[object]) -> bool:
    return all(cell_text(v) == "" for v in values)


def _iter_sheet(
    path: Path, on_open: Callable[[int | None], None] | None = None
) -> Iterator[tuple[int, tuple[object, ...]]]:
    """Yield (Excel row number, values) of the first sheet; closes the workbook.

    ``on_open`` gets the row count the sheet declares (``<dimension>``; may be wrong or
    missing), for a progress bar only.
    """
    wb = open_workbook_safely(path, read_only=True)
    try:
        sheets = wb.worksheets
        if not sheets or not hasattr(sheets[0], "iter_rows"):
            return
        ws = sheets[0]
        if on_open is not None:
            on_open(ws.max_row)
        # Some generators write a wrong <dimension>; read the rows that really exist.
        ws.reset_dimensions()
        rows = enumerate(ws.iter_rows(max_col=MAX_COLUMNS, values_only=True), start=1)
        while True:
            try:
                row_no, values = next(rows)
            except StopIteration:
                return
            except Exception as exc:  # sheet XML is parsed lazily and can fail in many ways
                raise UnsafeWorkbookError(MSG_BROKEN) from exc
            yield row_no, tuple(values)
    finally:
        wb.close()


class SchoolStream:
    """The good rows of a schools file, read and checked one at a time.

    Iterate once; afterwards ``issues`` holds every problem (if any, import nothing),
    ``examples_skipped`` the template's example rows that were left out. Memory is
    bounded by the duplicate index (a code and a name key per row), not by the rows.
    """

    def __init__(
        self,
        path: Path | str,
        on_progress: Callable[[int, int | None], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.issues = IssueLog()
        self.examples_skipped = 0
        self.rows_read = 0
        self.declared_rows: int | None = None
        self._on_progress = on_progress

    def _opened(self, declared: int | None) -> None:
        self.declared_rows = declared
        if self._on_progress is not None:
            self._on_progress(0, declared)

    def __iter__(self) -> Iterator[SchoolRow]:
        sheet = _iter_sheet(self.path, self._opened)
        try:
            yield from _parse(sheet, self)
        except UnsafeWorkbookError as exc:
            self.issues.add(None, None, str(exc))
        finally:
            sheet.close()  # closes the workbook even when parsing stopped early
            if self._on_progress is not None:
                self._on_progress(self.rows_read, self.rows_read)


def parse_schools(path: Path | str) -> SchoolImport:
    """Parse the whole schools .xlsx into memory (small files, tests). Never raises for bad
    input; for big files iterate a ``SchoolStream`` instead."""
    stream = SchoolStream(path)
    rows = list(stream)
    return SchoolImport(rows, stream.issues.result(), stream.examples_skipped)


def _thousands(n: int) -> str:
    return f"{n:,}".replace(",", " ")


def _parse(
    sheet: Iterator[tuple[int, tuple[object, ...]]], out: SchoolStream
) -> Iterator[SchoolRow]:
    issues = out.issues
    head: list[tuple[int, tuple[object, ...]]] = []
    for row_no, values in sheet:
        head.append((row_no, values))
        if row_no >= HEADER_SCAN_ROWS:
            break

    header = _pick_header([(n, v) for n, v in head if not _is_blank(v)])
    if header is None:
        if any(not _is_blank(v) for _, v in sheet):
            issues.add(
                None,
                None,
                f"В первых {HEADER_SCAN_ROWS} строках первого листа нет строки заголовков. "
                "Поставьте заголовки («Муниципалитет», «Наименование ОО» и другие) "
                "в верхнюю строку таблицы и загрузите файл снова.",
            )
        else:
            issues.add(
                None,
                None,
                "В файле нет ни одной школы: первый лист пустой. "
                "Заполните таблицу по шаблону и загрузите файл снова.",
            )
        return

    missing = [COLUMNS[f][0] for f in REQUIRED_FIELDS if f not in header.fields]
    if missing:
        found = ", ".join(_quote(t, 40) for t in header.found[:15])
        if len(header.found) > 15:
            found += " и другие"
        names = ", ".join(f"«{m}»" for m in missing)
        what = "обязательного столбца" if len(missing) == 1 else "обязательных столбцов"
        issues.add(
            None,
            None,
            f"В таблице нет {what} {names}. "
            f"В строке заголовков (строка {header.row}) найдены столбцы: {found}. "
            "Переименуйте или добавьте столбцы и загрузите файл снова.",
        )
    from openpyxl.utils import get_column_letter  # lazy: openpyxl is slow to import at start

    for field_id, cols in header.duplicates.items():
        letters = ", ".join(get_column_letter(c + 1) for c in cols)
        issues.add(
            header.row,
            COLUMNS[field_id][0],
            f"этот столбец встречается несколько раз (столбцы {letters}). "
            "Оставьте один и загрузите файл снова.",
        )
    if missing:
        return

    yielded = 0
    filled = 0
    code_rows: dict[str, int] = {}
    name_rows: dict[bytes, int] = {}  # name_digest -> row * 2 + (1 if it has a code)
    municipality_keys: dict[str, str] = {}
    progress_every = PROGRESS_EVERY if out._on_progress is not None else 0
    data = (item for item in head if item[0] > header.row)
    for row_no, values in itertools.chain(data, sheet):
        out.rows_read = row_no
        if progress_every and row_no % progress_every == 0:
            out._on_progress(row_no, out.declared_rows)
        school = _parse_row(row_no, values, header, issues, out)
        if school is None:
            continue
        filled += 1
        if filled > MAX_ROWS:
            issues.add(
                None,
                None,
                f"В таблице больше {_thousands(MAX_ROWS)} строк со школами — столько за один "
                "раз не загрузить. Разделите файл на части (например, по муниципалитетам) "
                "и загрузите их по очереди.",
            )
            return
        if school is _SKIPPED or school is _BAD:
            continue
        if school.code is not None:
            code_key = school.code.casefold()
            first = code_rows.setdefault(code_key, row_no)
            if first != row_no:
                issues.add(
                    row_no,
                    header.titles["code"],
                    f"код {_quote(school.code)} уже указан в строке {first}. "
                    "У каждой школы должен быть свой код — исправьте или удалите повтор.",
                )
                continue
        m_key = municipality_keys.get(school.municipality)
        if m_key is None:  # one key string per municipality, computed once
            m_key = municipality_keys[school.municipality] = normalize_key(school.municipality)
        mark = row_no * 2 + (school.code is not None)
        clash = name_rows.setdefault(name_digest(m_key, normalize_key(school.name)), mark)
        clash_row = clash >> 1
        if clash_row != row_no:
            if clash & 1 and school.code:
                advice = (
                    "с другим кодом. В одном муниципалитете наименования школ не должны "
                    "повторяться: уточните наименование (например, добавьте населённый пункт)."
                )
            else:
                advice = ". Удалите повтор или уточните наименование."
            issues.add(
                row_no,
                None,
                f"школа {_quote(school.name)} ({school.municipality}) уже указана "
                f"в строке {clash_row}" + (" " if advice[0] != "." else "") + advice,
            )
            continue
        yielded += 1
        yield school

    if not yielded and not issues:
        if out.examples_skipped:
            message = (
                "В файле только строки-примеры из шаблона (с пометкой «(пример)»). "
                "Удалите их, впишите свои школы и загрузите файл снова."
            )
        else:
            message = (
                "В файле нет ни одной школы: под строкой заголовков пусто. "
                "Заполните таблицу и загрузите файл снова."
            )
        issues.add(None, None, message)


def _parse_row(
    row_no: int, values: tuple[object, ...], header: _Header, issues: IssueLog, out: SchoolStream
) -> SchoolRow | None:
    """The row's school; None for a blank row, ``_BAD`` for a bad one (its problems go to
    ``issues``), ``_SKIPPED`` for a template example row."""

    width = len(values)
    raw = {f: values[i] if i < width else None for f, i in header.fields.items()}
    cells = {f: cell_text(v) for f, v in raw.items()}
    if not any(cells.values()):
        return None
    if EXAMPLE_MARK in cells["name"].casefold():
        out.examples_skipped += 1
        return _SKIPPED

    before = len(issues.items) + issues.dropped
    titles = header.titles

    def text(field_id: str, what: str, limit: int) -> str:
        value = cells.get(field_id, "")
        if len(value) > limit:
            issues.add(
                row_no,
                titles[field_id],
                f"{what} длиннее {limit} символов. Сократите текст в ячейке.",
            )
        return value

    municipality = text("municipality", "название муниципалитета", MAX_TEXT_LEN)
    if not municipality:
        issues.add(
            row_no,
            titles["municipality"],
            "не указан муниципалитет. Заполните ячейку или удалите строку.",
        )
    name = text("name", "наименование школы", MAX_TEXT_LEN)
    if not name:
        issues.add(
            row_no,
            titles["name"],
            "не указано наименование школы. Заполните ячейку или удалите строку.",
        )
    code = text("code", "код", MAX_CODE_LEN)
    director = text("director", "ФИО директора", MAX_TEXT_LEN)

    flags: dict[str, bool] = {}
    for field_id in FLAG_FIELDS:
        value = raw.get(field_id)
        parsed = parse_flag(cells[field_id] if isinstance(value, str) else value)
        if parsed is None:
            issues.add(
                row_no,
                titles[field_id],
                f"непонятное значение {_quote(cells[field_id], 40)}. Укажите «да» или «нет».",
            )
            parsed = False
        flags[field_id] = parsed

    if len(issues.items) + issues.dropped != before:
        return _BAD
    return SchoolRow(
        row=row_no,
        municipality=municipality,
        name=name,
        code=None if _is_dash(code) else code,
        shnor=flags["shnor"],
        shnsu=flags["shnsu"],
        risk_zone=flags["risk_zone"],
        director=None if _is_dash(director) else director,
    )


_BAD = SchoolRow(0, "", "", None, False, False, False, None)
_SKIPPED = SchoolRow(0, "", "", None, False, False, False, None)


def _is_dash(text: str) -> bool:
    """Empty, or only dashes ("-", "—"): people put these in optional cells for "none"."""
    return text.strip("-–— ") == ""
