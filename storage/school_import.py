"""Parse the schools list that admins import (``python -m bot import-schools FILE.xlsx``).

Pure parsing, no database. ``parse_schools`` reads the first sheet and returns every
good row and every problem it found; if ``errors`` is not empty the caller must
import nothing and show the errors (``str(issue)`` is a Russian sentence).

Layout: the header row is looked for in the first ``HEADER_SCAN_ROWS`` rows (title
rows above it are fine); headers are matched case-insensitively, with whitespace
collapsed, 'ё' == 'е' and hints in brackets ignored ("ШНОР (да/нет)" == "ШНОР").
Unknown columns are ignored. Rows where all recognised columns are empty are skipped.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import openpyxl
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation

from storage.xlsx_safety import MSG_BROKEN, UnsafeWorkbookError, open_workbook_safely

HEADER_SCAN_ROWS = 10
MAX_COLUMNS = 60
MAX_ERRORS = 200
MAX_TEXT_LEN = 500
MAX_CODE_LEN = 50

# Field id -> (canonical header, accepted header variants, already normalised).
COLUMNS: dict[str, tuple[str, frozenset[str]]] = {
    "municipality": (
        "Муниципалитет",
        frozenset(
            {
                "муниципалитет",
                "муниципальное образование",
                "мо",
                "муниципальный район",
                "муниципальный округ",
                "муниципальный район городской округ",
                "муниципальный район/городской округ",
                "городской округ",
                "район",
            }
        ),
    ),
    "name": (
        "Наименование ОО",
        frozenset(
            {
                "наименование оо",
                "наименование образовательной организации",
                "полное наименование оо",
                "полное наименование образовательной организации",
                "краткое наименование оо",
                "краткое наименование образовательной организации",
                "сокращенное наименование оо",
                "сокращенное наименование образовательной организации",
                "наименование школы",
                "название школы",
                "название оо",
                "наименование",
                "образовательная организация",
                "оо",
                "школа",
            }
        ),
    ),
    "code": (
        "Код ОО",
        frozenset(
            {
                "код оо",
                "код",
                "код образовательной организации",
                "код школы",
            }
        ),
    ),
    "shnor": ("ШНОР", frozenset({"шнор"})),
    "shnsu": ("ШНСУ", frozenset({"шнсу"})),
    "risk_zone": ("Зона риска", frozenset({"зона риска", "в зоне риска", "риск"})),
    "director": (
        "Директор",
        frozenset(
            {
                "директор",
                "фио директора",
                "директор фио",
                "директор оо",
                "руководитель",
                "фио руководителя",
                "руководитель оо",
                "руководитель фио",
            }
        ),
    ),
}
REQUIRED_FIELDS = ("municipality", "name")
FLAG_FIELDS = ("shnor", "shnsu", "risk_zone")

TRUE_WORDS = frozenset({"да", "+", "1", "x", "х", "true", "v", "✓", "✔"})
FALSE_WORDS = frozenset({"нет", "-", "–", "—", "0", "false"})

_BRACKETS = re.compile(r"\([^)]*\)|\[[^\]]*\]")
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))
_QUOTES = str.maketrans({c: '"' for c in "«»“”„‟″'`"})


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

    @property
    def ok(self) -> bool:
        return not self.errors and bool(self.rows)


# ---------------------------------------------------------------- text helpers


def collapse(text: str) -> str:
    """Strip, drop invisible characters and collapse inner whitespace (incl. NBSP)."""
    return " ".join(text.translate(_INVISIBLE).split())


def normalize_key(text: str) -> str:
    """Comparison key for names: case, 'ё', quotes and whitespace do not matter.

    Use it in the database importer too, so the file and the DB agree on duplicates.
    """
    return collapse(text).casefold().replace("ё", "е").translate(_QUOTES)


def normalize_header(text: str) -> str:
    text = _BRACKETS.sub(" ", text)
    text = normalize_key(text).strip(" .:*№#")
    return collapse(text)


def cell_text(value: object) -> str:
    """Cell value as collapsed text; numbers like 39001.0 become "39001"."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "да" if value else "нет"
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, dt.datetime):
        if value.time() == dt.time():
            return value.date().strftime("%d.%m.%Y")
        return value.strftime("%d.%m.%Y %H:%M")
    if isinstance(value, dt.date):
        return value.strftime("%d.%m.%Y")
    return collapse(str(value))


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


def parse_flag(value: object) -> bool | None:
    """True/False for a recognised yes/no value (empty = False), None if unrecognised."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    text = cell_text(value).casefold()
    if text == "":
        return False
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    return None


# ---------------------------------------------------------------- error collector


class _Issues:
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


def _iter_sheet(path: Path) -> Iterator[tuple[int, tuple[object, ...]]]:
    """Yield (Excel row number, values) of the first sheet; closes the workbook."""
    wb = open_workbook_safely(path, read_only=True)
    try:
        sheets = wb.worksheets
        if not sheets or not hasattr(sheets[0], "iter_rows"):
            return
        ws = sheets[0]
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


def parse_schools(path: Path | str) -> SchoolImport:
    """Parse the schools .xlsx; see the module docstring. Never raises for bad input."""
    sheet = _iter_sheet(Path(path))
    try:
        return _parse(sheet, _Issues())
    except UnsafeWorkbookError as exc:
        return SchoolImport([], [ImportIssue(None, None, str(exc))])
    finally:
        sheet.close()  # closes the workbook even when parsing stopped early


def _parse(sheet: Iterator[tuple[int, tuple[object, ...]]], issues: _Issues) -> SchoolImport:
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
        return SchoolImport([], issues.result())

    missing = [COLUMNS[f][0] for f in REQUIRED_FIELDS if f not in header.fields]
    if missing:
        found = ", ".join(_quote(t, 40) for t in header.found[:15])
        if len(header.found) > 15:
            found += " и другие"
        names = ", ".join(f"«{m}»" for m in missing)
        word = "столбца" if len(missing) == 1 else "столбцов"
        issues.add(
            None,
            None,
            f"В таблице нет обязательного {word} {names}. "
            f"В строке заголовков (строка {header.row}) найдены столбцы: {found}. "
            "Переименуйте или добавьте столбцы и загрузите файл снова.",
        )
    for field_id, cols in header.duplicates.items():
        letters = ", ".join(get_column_letter(c + 1) for c in cols)
        issues.add(
            header.row,
            COLUMNS[field_id][0],
            f"этот столбец встречается несколько раз (столбцы {letters}). "
            "Оставьте один и загрузите файл снова.",
        )
    if missing:
        return SchoolImport([], issues.result())

    rows: list[SchoolRow] = []
    code_rows: dict[str, int] = {}
    key_rows: dict[tuple[str, str], list[tuple[int, bool]]] = {}
    data = (item for item in head if item[0] > header.row)
    for row_no, values in itertools.chain(data, sheet):
        school = _parse_row(row_no, values, header, issues)
        if school is None:
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
        key = (normalize_key(school.municipality), normalize_key(school.name))
        earlier = key_rows.setdefault(key, [])
        clash = next((r for r, has_code in earlier if not has_code or school.code is None), None)
        earlier.append((row_no, school.code is not None))
        if clash is not None:
            issues.add(
                row_no,
                None,
                f"школа {_quote(school.name)} ({school.municipality}) уже указана "
                f"в строке {clash}. Удалите повтор или укажите у обеих школ разные коды ОО.",
            )
            continue
        rows.append(school)

    if not rows and not issues:
        issues.add(
            None,
            None,
            "В файле нет ни одной школы: под строкой заголовков пусто. "
            "Заполните таблицу и загрузите файл снова.",
        )
    return SchoolImport(rows, issues.result())


def _parse_row(
    row_no: int, values: tuple[object, ...], header: _Header, issues: _Issues
) -> SchoolRow | None:
    def raw(field_id: str) -> object:
        idx = header.fields.get(field_id)
        if idx is None or idx >= len(values):
            return None
        return values[idx]

    if _is_blank(raw(f) for f in header.fields):
        return None

    before = len(issues.items) + issues.dropped
    titles = header.titles

    def text(field_id: str, what: str, limit: int) -> str:
        value = cell_text(raw(field_id))
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
    code = text("code", "код", MAX_CODE_LEN) if "code" in header.fields else ""
    director = text("director", "ФИО директора", MAX_TEXT_LEN) if "director" in titles else ""

    flags: dict[str, bool] = {}
    for field_id in FLAG_FIELDS:
        value = raw(field_id)
        parsed = parse_flag(value)
        if parsed is None:
            issues.add(
                row_no,
                titles[field_id],
                f"непонятное значение {_quote(cell_text(value), 40)}. Укажите «да» или «нет».",
            )
            parsed = False
        flags[field_id] = parsed

    if len(issues.items) + issues.dropped != before:
        return None
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


def _is_dash(text: str) -> bool:
    """Empty, or only dashes ("-", "—"): people put these in optional cells for "none"."""
    return text.strip("-–— ") == ""


# ---------------------------------------------------------------- template


TEMPLATE_HEADERS = (
    "Муниципалитет",
    "Код ОО",
    "Наименование ОО",
    "ШНОР",
    "ШНСУ",
    "Зона риска",
    "Директор",
)
TEMPLATE_EXAMPLES = (
    (
        "Городской округ Пример",
        "39001",
        "МБОУ «Средняя школа № 1» (пример)",
        "да",
        "нет",
        "нет",
        "Иванова Анна Петровна",
    ),
    (
        "Примерный муниципальный район",
        "",
        "МКОУ «Основная школа с. Пример» (пример)",
        "нет",
        "да",
        "да",
        "",
    ),
)
TEMPLATE_HELP = (
    "Как заполнить таблицу школ",
    "",
    "1. Заполняйте только первый лист «Школы»: одна строка — одна школа.",
    "2. Удалите две строки-примера и впишите свои школы.",
    "3. Обязательные столбцы: «Муниципалитет» и «Наименование ОО».",
    "4. «Код ОО» — необязательный, но если указан, он должен быть у каждой школы свой.",
    "5. «ШНОР», «ШНСУ», «Зона риска»: «да» или «нет» (можно «+»/«-», «1»/«0», «х»). "
    "Пустая ячейка — «нет».",
    "6. «Директор» — ФИО, необязательно.",
    "7. Сохраните файл в формате .xlsx.",
)


def write_schools_template(path: Path | str) -> Path:
    """Write an .xlsx template with the headers, two example rows and a help sheet."""
    path = Path(path)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Школы"
    ws.append(list(TEMPLATE_HEADERS))
    for example in TEMPLATE_EXAMPLES:
        ws.append(list(example))
    bold = Font(bold=True)
    for idx, title in enumerate(TEMPLATE_HEADERS, start=1):
        cell = ws.cell(row=1, column=idx)
        cell.font = bold
        cell.alignment = Alignment(wrap_text=True, vertical="center")
        width = {"Наименование ОО": 50, "Муниципалитет": 32, "Директор": 32}.get(title, 12)
        ws.column_dimensions[get_column_letter(idx)].width = width
    code_col = get_column_letter(TEMPLATE_HEADERS.index("Код ОО") + 1)
    for row in range(2, 2001):
        ws[f"{code_col}{row}"].number_format = "@"  # keep leading zeros in codes
    ws.freeze_panes = "A2"

    yes_no = DataValidation(type="list", formula1='"да,нет"', allow_blank=True)
    yes_no.error = "Выберите «да» или «нет»."
    yes_no.errorTitle = "Недопустимое значение"
    ws.add_data_validation(yes_no)
    for title in ("ШНОР", "ШНСУ", "Зона риска"):
        col = get_column_letter(TEMPLATE_HEADERS.index(title) + 1)
        yes_no.add(f"{col}2:{col}2000")

    help_ws = wb.create_sheet("Инструкция")
    for line in TEMPLATE_HELP:
        help_ws.append([line])
    help_ws["A1"].font = bold
    help_ws.column_dimensions["A"].width = 110

    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path
