"""The layout of a roadmap table in .xlsx: file checks, rows, the header and the title.

The header is looked for *above* the data: a row that starts with an item number («1.»,
«1.1.2») is data, and so is a cell with a date in it («Срок — 20.09.2024»), so neither is
ever taken for the header. The rows above the header hold the title, and the title often
says the period («на 2024 год», «на 2024/2025 учебный год»).
"""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roadmaps.deadlines import Period

MAX_FILE_BYTES = 20 * 1024 * 1024  # the upload itself
MAX_UNCOMPRESSED_BYTES = 100 * 1024 * 1024  # all zip members together
MAX_COMPRESSION_RATIO = 100  # for members (and the whole archive) above 1 MB unpacked
MAX_MEMBERS = 2000
MAX_ROWS = 5000
MAX_COLS = 60
HEADER_SCAN_ROWS = 30

# --------------------------------------------------------------------------- columns


@dataclass(frozen=True)
class Column:
    field: str
    title: str  # shown to users
    variants: tuple[str, ...]  # matched as substrings of the normalised header
    required: bool


# Matched in this order, so "Сроки проведения мероприятия" is a deadline column and
# "Ответственный за мероприятие" an executors column; the action column comes last.
COLUMNS: tuple[Column, ...] = (
    Column("deadline", "Сроки", ("срок", "датаисполнения", "датапроведения"), True),
    Column("executors", "Ответственный", ("ответствен", "исполнител"), True),
    Column("indicator", "Показатель", ("показател", "индикатор"), False),
    Column(
        "evidence",
        "Информационное сопровождение",
        (
            "информационноесопровождение",
            "формаотчетности",
            "формапредставления",
            "результат",
            "подтвержда",
            "отчетныйдокумент",
            "продукт",
        ),
        False,
    ),
    Column(
        "applies_to",
        "Для кого",
        ("длякого", "охват", "целеваягруппа", "категорияшкол", "категорияоо"),
        False,
    ),
    Column(
        "action",
        "Мероприятие",
        (
            "мероприяти",
            "описаниедействия",
            "содержание",
            "наименованиезадачи",
            "задача",
            "действи",
        ),
        True,
    ),
)
_NUMBER_HEADERS = {"№", "№п/п", "№пп", "№п.п", "п/п", "пп", "номер", "n", "no", "№№"}
HEADER_HINTS = {
    "number": "«№» / «№ п/п»",
    "action": "«Мероприятие» / «Описание действия» / «Наименование мероприятия» / «Содержание»",
    "deadline": "«Сроки» / «Сроки исполнения» / «Сроки реализации» / «Дата исполнения» / «Срок»",
    "executors": "«Ответственный» / «Исполнители» / «Ответственные исполнители»",
    "indicator": "«Показатель» / «Целевой показатель»",
    "evidence": "«Информационное сопровождение» / «Форма отчетности» / «Результат»",
    "applies_to": "«Для кого» / «Охват»",
}


def _norm_header(value: Any) -> str:
    s = str(value).lower().replace("ё", "е")
    return re.sub(r"[\s:*]+", "", s).rstrip(".")


_DATE_IN_CELL = re.compile(r"\d{1,2}\s*[./]\s*\d{1,2}(?!\d)")
# «Срок — в течение года», «Ответственный: директор»: a label with its value is data
_LABELLED = re.compile(r"(?:\s[-\u2013\u2014]\s|:)\s*\S")
_ITEM_NUMBER = re.compile(r"^\d{1,3}(?:\.\d{1,3})*\.?$")
MAX_HEADER_CELL = 150


def _header_field(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    if len(text) > MAX_HEADER_CELL or _DATE_IN_CELL.search(text) or _LABELLED.search(text):
        return None  # a header cell never holds a date or a value: «Срок — 20.09.2024»
    h = _norm_header(value)
    if not h:
        return None
    if h in _NUMBER_HEADERS or (h.startswith("№") and len(h) <= 6):
        return "number"
    for col in COLUMNS:
        if any(v in h for v in col.variants):
            return col.field
    return None


def _map_header(cells: tuple[str, ...]) -> dict[str, int]:
    mapping: dict[str, int] = {}
    for idx, value in enumerate(cells):
        field = _header_field(value) if value else None
        if field and field not in mapping:
            mapping[field] = idx
    return mapping


# --------------------------------------------------------------------------- file checks


class Reject(Exception):
    pass


def check_xlsx_file(path: Path) -> None:
    """Reject anything that is not a plausible, reasonably sized .xlsx (zip bombs too)."""
    try:
        size = path.stat().st_size
    except OSError:
        raise Reject("Файл не найден или недоступен.") from None
    if size == 0:
        raise Reject("Файл пустой.")
    if size > MAX_FILE_BYTES:
        raise Reject(f"Файл слишком большой (больше {MAX_FILE_BYTES // 2**20} МБ).")
    with path.open("rb") as fh:
        head = fh.read(8)
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise Reject(
            "Это файл в старом формате Excel (.xls) или защищённый паролем файл. "
            "Откройте его в Excel и сохраните как «Книга Excel (.xlsx)» без пароля."
        )
    if not head.startswith(b"PK"):
        raise Reject("Файл не является таблицей Excel (.xlsx).")
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        raise Reject("Файл повреждён или не является таблицей Excel (.xlsx).") from None
    names = {i.filename for i in infos}
    if "xl/workbook.xml" not in names or "[Content_Types].xml" not in names:
        raise Reject(
            "Файл не является таблицей Excel (.xlsx) — возможно, это документ Word "
            "или обычный архив."
        )
    if len(infos) > MAX_MEMBERS:
        raise Reject("Файл Excel устроен подозрительно (слишком много частей) и не принят.")
    if any(i.flag_bits & 0x1 for i in infos):
        raise Reject("Файл зашифрован. Сохраните его без пароля.")
    total = sum(i.file_size for i in infos)
    packed = sum(i.compress_size for i in infos)
    if total > MAX_UNCOMPRESSED_BYTES:
        raise Reject(
            f"Таблица после распаковки больше {MAX_UNCOMPRESSED_BYTES // 2**20} МБ — "
            "файл не принят. Удалите лишние листы и картинки."
        )
    suspicious = [
        i
        for i in infos
        if i.file_size > 2**20 and i.file_size > MAX_COMPRESSION_RATIO * max(i.compress_size, 1)
    ]
    if suspicious or (total > 2**20 and total > MAX_COMPRESSION_RATIO * max(packed, 1)):
        raise Reject(
            "Файл сжат подозрительно сильно (похоже на «zip-бомбу») и не принят. "
            "Пересохраните таблицу в Excel."
        )


# --------------------------------------------------------------------------- xlsx


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        value = value.date()
    if isinstance(value, dt.date):
        return value.strftime("%d.%m.%Y")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ")
    lines = [re.sub(r"[ \t]+", " ", ln).strip() for ln in text.split("\n")]
    return "\n".join(ln for ln in lines if ln)


def one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def is_column_numbers(cells: list[str]) -> bool:
    """Rows like "1 | 2 | 3 | 4" under a Russian table header."""
    values = [c for c in cells if c]
    return len(values) >= 3 and values == [str(i) for i in range(1, len(values) + 1)]


def read_rows(path: Path) -> Iterable[tuple[str, list[list[str]]]]:
    """(sheet title, rows as text) for every worksheet; closes the workbook."""
    import openpyxl  # local: only needed for xlsx imports

    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        for ws in wb.worksheets:
            if not hasattr(ws, "iter_rows"):
                continue  # chartsheets
            ws.reset_dimensions()  # some writers store wrong dimensions
            rows = []
            for n, row in enumerate(ws.iter_rows(values_only=True)):
                if n >= MAX_ROWS:
                    break
                rows.append([_cell_text(v) for v in row[:MAX_COLS]])
            yield ws.title, rows
    finally:
        wb.close()


def looks_like_item(cells: list[str]) -> bool:
    """A data row: its first filled cell is an item number and something else is filled."""
    filled = [c for c in cells if c]
    return len(filled) >= 2 and bool(_ITEM_NUMBER.match(filled[0])) and not is_column_numbers(cells)


def is_repeated_header(cells: list[str], header: list[str], mapping: dict[str, int]) -> bool:
    """The header printed again on the next page: the same texts in the same columns."""
    same = [
        i
        for i in mapping.values()
        if i < len(cells)
        and i < len(header)
        and cells[i]
        and _norm_header(cells[i]) == _norm_header(header[i])
    ]
    return len(same) >= 2


def find_header(rows: list[list[str]]) -> tuple[int, dict[str, int]] | None:
    """The header row: the first one with every required column, above the first item row."""
    best: tuple[int, dict[str, int]] | None = None
    for idx, cells in enumerate(rows[:HEADER_SCAN_ROWS]):
        if looks_like_item(cells):
            break  # the data has begun: the header is above it or missing
        mapping = _map_header(tuple(cells))
        if {"action", "deadline"} <= mapping.keys() or len(mapping) >= 3:
            if best is None or len(mapping) > len(best[1]):
                best = (idx, mapping)
            if all(c.field in mapping for c in COLUMNS if c.required):
                return idx, mapping
    return best


# --------------------------------------------------------------------------- title and period

_ACADEMIC = re.compile(
    r"(?P<prep>на|в)\s+(?P<y1>20\d\d)\s*[-/]\s*(?P<y2>20\d\d|\d\d)\s*(?:гг?\.?\s*)?"
    r"уч(?:ебн[а-я]*)?\.?\s*(?:год[а-я]*|гг?\.?)"
)
_YEARS = re.compile(
    r"(?P<prep>на|в)\s+(?P<y1>20\d\d)\s*-\s*(?P<y2>20\d\d)\s*(?:год(?:ы|ах|ов)|гг\.?)"
)
_YEAR = re.compile(r"(?P<prep>на|в)\s+(?P<y1>20\d\d)\s*(?:год[а-я]*|г\.)(?![а-я])")
_DASHES = str.maketrans({ch: "-" for ch in "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"})
_FRONT_MATTER = re.compile(r"^(?:приложение|утвержден|к\s+приказу|согласован)", re.IGNORECASE)


class PeriodNotFound(ValueError):
    """The title does not say the period (or says several); the message is Russian."""


@dataclass(frozen=True)
class TitleInfo:
    title: str | None
    period: Period | None
    periods_found: int


def _periods_in(text: str) -> dict[str, set[Period]]:
    s = re.sub(r"\s+", " ", text.lower().replace("ё", "е").translate(_DASHES))
    found: dict[str, set[Period]] = {"на": set(), "в": set()}
    taken: list[tuple[int, int]] = []
    for rx in (_ACADEMIC, _YEARS, _YEAR):
        for m in rx.finditer(s):
            if any(a <= m.start() < b for a, b in taken):
                continue
            taken.append(m.span())
            y1 = int(m.group("y1"))
            raw2 = m.groupdict().get("y2")
            if rx is _YEAR:
                found[m.group("prep")].add(Period.calendar_year(y1))
                continue
            y2 = int(raw2) + (2000 if len(raw2) == 2 else 0)
            if rx is _ACADEMIC and y2 == y1 + 1:
                found[m.group("prep")].add(Period.academic_year(y1))
            elif rx is _YEARS and y2 > y1:
                found[m.group("prep")].add(Period(dt.date(y1, 1, 1), dt.date(y2, 12, 31)))
    return found


def read_title(rows: list[list[str]], header_idx: int) -> TitleInfo:
    """The title and the period written in the rows above the header.

    «на 2024 год» (what the roadmap is for) wins over «в 2023 году» (a report on the past
    year is often in the same sentence); two different periods with the same preposition
    are not a period at all.
    """
    texts = [one_line(" ".join(c for c in cells if c)) for cells in rows[:header_idx] if any(cells)]
    texts = [t for t in texts if t and not _FRONT_MATTER.match(t)]
    title = next((t for t in texts if re.search(r"дорожн|план", t, re.IGNORECASE)), None)
    title = title or max(texts, key=len, default=None)
    found = _periods_in(" ".join(texts))
    for prep in ("на", "в"):
        if found[prep]:
            periods = found[prep]
            chosen = next(iter(periods)) if len(periods) == 1 else None
            return TitleInfo(title, chosen, len(periods))
    return TitleInfo(title, None, 0)
