"""Import roadmaps from .xlsx tables and from the bundled YAML files.

Problems are collected, not raised: an unreadable deadline becomes a :class:`RowProblem`
with its row and the item is kept with ``deadline=None`` and ``deadline_error``. Problems
that stop the import (not an .xlsx, no header, a required column missing) leave the
roadmap without items. ``row`` is the 1-based spreadsheet row; 0 means "the whole file".
For YAML files ``row`` is the item's ordinal number in the file.
"""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError

from roadmaps.deadlines import DeadlineParseError, Period, parse_deadline
from roadmaps.model import (
    Level,
    Milestone,
    Roadmap,
    RoadmapItem,
    derive_level,
    executor_roles,
    split_executors,
)

__all__ = [
    "COLUMNS",
    "ImportResult",
    "RoadmapFormatError",
    "RowProblem",
    "import_xlsx",
    "import_yaml",
    "import_yaml_all",
    "load_bundled",
]

MAX_FILE_BYTES = 20 * 1024 * 1024  # the upload itself
MAX_UNCOMPRESSED_BYTES = 100 * 1024 * 1024  # all zip members together
MAX_COMPRESSION_RATIO = 100  # for members (and the whole archive) above 1 MB unpacked
MAX_MEMBERS = 2000
MAX_ROWS = 5000
MAX_COLS = 60
HEADER_SCAN_ROWS = 30

Severity = Literal["error", "warning"]


class RowProblem(BaseModel):
    row: int  # 1-based source row; 0 = the whole file
    column: str | None = None
    message: str
    severity: Severity = "error"


class ImportResult(BaseModel):
    roadmap: Roadmap
    problems: list[RowProblem] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No errors (warnings allowed)."""
        return not any(p.severity == "error" for p in self.problems)

    @property
    def errors(self) -> list[RowProblem]:
        return [p for p in self.problems if p.severity == "error"]


class RoadmapFormatError(ValueError):
    """A YAML roadmap file is malformed (message in Russian)."""


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
}


def _norm_header(value: Any) -> str:
    s = str(value).lower().replace("ё", "е")
    return re.sub(r"[\s:*]+", "", s).rstrip(".")


def _header_field(value: Any) -> str | None:
    if value is None:
        return None
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


class _Reject(Exception):
    pass


def _check_xlsx_file(path: Path) -> None:
    """Reject anything that is not a plausible, reasonably sized .xlsx (zip bombs too)."""
    try:
        size = path.stat().st_size
    except OSError:
        raise _Reject("Файл не найден или недоступен.") from None
    if size == 0:
        raise _Reject("Файл пустой.")
    if size > MAX_FILE_BYTES:
        raise _Reject(f"Файл слишком большой (больше {MAX_FILE_BYTES // 2**20} МБ).")
    with path.open("rb") as fh:
        head = fh.read(8)
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise _Reject(
            "Это файл в старом формате Excel (.xls) или защищённый паролем файл. "
            "Откройте его в Excel и сохраните как «Книга Excel (.xlsx)» без пароля."
        )
    if not head.startswith(b"PK"):
        raise _Reject("Файл не является таблицей Excel (.xlsx).")
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        raise _Reject("Файл повреждён или не является таблицей Excel (.xlsx).") from None
    names = {i.filename for i in infos}
    if "xl/workbook.xml" not in names or "[Content_Types].xml" not in names:
        raise _Reject(
            "Файл не является таблицей Excel (.xlsx) — возможно, это документ Word "
            "или обычный архив."
        )
    if len(infos) > MAX_MEMBERS:
        raise _Reject("Файл Excel устроен подозрительно (слишком много частей) и не принят.")
    if any(i.flag_bits & 0x1 for i in infos):
        raise _Reject("Файл зашифрован. Сохраните его без пароля.")
    total = sum(i.file_size for i in infos)
    packed = sum(i.compress_size for i in infos)
    if total > MAX_UNCOMPRESSED_BYTES:
        raise _Reject(
            f"Таблица после распаковки больше {MAX_UNCOMPRESSED_BYTES // 2**20} МБ — "
            "файл не принят. Удалите лишние листы и картинки."
        )
    suspicious = [
        i
        for i in infos
        if i.file_size > 2**20 and i.file_size > MAX_COMPRESSION_RATIO * max(i.compress_size, 1)
    ]
    if suspicious or (total > 2**20 and total > MAX_COMPRESSION_RATIO * max(packed, 1)):
        raise _Reject(
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


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _is_column_numbers(cells: list[str]) -> bool:
    """Rows like "1 | 2 | 3 | 4" under a Russian table header."""
    values = [c for c in cells if c]
    return len(values) >= 3 and values == [str(i) for i in range(1, len(values) + 1)]


def _read_rows(path: Path) -> Iterable[tuple[str, list[list[str]]]]:
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


def _find_header(rows: list[list[str]]) -> tuple[int, dict[str, int]] | None:
    best: tuple[int, dict[str, int]] | None = None
    for idx, cells in enumerate(rows[:HEADER_SCAN_ROWS]):
        mapping = _map_header(tuple(cells))
        if {"action", "deadline"} <= mapping.keys() or len(mapping) >= 3:
            if best is None or len(mapping) > len(best[1]):
                best = (idx, mapping)
            if all(c.field in mapping for c in COLUMNS if c.required):
                return idx, mapping
    return best


def _empty(roadmap_id: str, title: str, period: Period, level: Level, **meta: Any) -> Roadmap:
    return Roadmap(id=roadmap_id, title=title, level=level, period=period, **meta)


def import_xlsx(
    path: str | Path,
    *,
    roadmap_id: str,
    title: str,
    period: Period,
    level: Level,
    region: str | None = None,
    municipality: str | None = None,
) -> ImportResult:
    """Read a roadmap table from an .xlsx file (first sheet that has a header row)."""
    path = Path(path)
    meta = {"region": region, "municipality": municipality}
    empty = _empty(roadmap_id, title, period, level, **meta)
    try:
        _check_xlsx_file(path)
    except _Reject as exc:
        return ImportResult(roadmap=empty, problems=[RowProblem(row=0, message=str(exc))])

    problems: list[RowProblem] = []
    found: tuple[list[list[str]], int, dict[str, int]] | None = None
    best_partial: tuple[str, int, dict[str, int]] | None = None
    try:
        for sheet, rows in _read_rows(path):
            header = _find_header(rows)
            if header is None:
                continue
            idx, mapping = header
            if all(c.field in mapping for c in COLUMNS if c.required):
                found = (rows, idx, mapping)
                break
            if best_partial is None or len(mapping) > len(best_partial[2]):
                best_partial = (sheet, idx, mapping)
    except Exception as exc:  # openpyxl raises many kinds on broken files
        msg = f"Не удалось прочитать таблицу: {type(exc).__name__}. Пересохраните файл в Excel."
        return ImportResult(roadmap=empty, problems=[RowProblem(row=0, message=msg)])

    if found is None:
        if best_partial is None:
            expected = "; ".join(HEADER_HINTS[c.field] for c in COLUMNS if c.required)
            msg = f"Не найдена строка заголовков таблицы. Ожидаются столбцы: {expected}."
            return ImportResult(roadmap=empty, problems=[RowProblem(row=0, message=msg)])
        sheet, idx, mapping = best_partial
        for col in COLUMNS:
            if col.required and col.field not in mapping:
                problems.append(
                    RowProblem(
                        row=idx + 1,
                        column=col.title,
                        message=(
                            f"На листе «{sheet}» нет обязательного столбца «{col.title}». "
                            f"Ожидается заголовок {HEADER_HINTS[col.field]}."
                        ),
                    )
                )
        return ImportResult(roadmap=empty, problems=problems)

    rows, header_idx, mapping = found
    items = _rows_to_items(rows, header_idx, mapping, period, level, problems)
    _ensure_unique_numbers(items, problems, _number_title(rows[header_idx], mapping))
    roadmap = empty.model_copy(update={"items": items})
    return ImportResult(roadmap=roadmap, problems=problems)


def _rows_to_items(
    rows: list[list[str]],
    header_idx: int,
    mapping: dict[str, int],
    period: Period,
    level: Level,
    problems: list[RowProblem],
) -> list[RoadmapItem]:
    header_cells = rows[header_idx]
    titles = {f: _one_line(header_cells[i]) for f, i in mapping.items()}
    content_fields = ("deadline", "executors", "indicator", "evidence")
    content_cols = [mapping[f] for f in content_fields if f in mapping]
    first_cols = sorted(mapping.values())[:2]

    def get(cells: list[str], field: str) -> str:
        i = mapping.get(field)
        return cells[i] if i is not None and i < len(cells) else ""

    items: list[RoadmapItem] = []
    section: str | None = None
    last_was_section = False
    auto_number = 0
    for idx in range(header_idx + 1, len(rows)):
        cells = rows[idx]
        rownum = idx + 1
        filled = [i for i, c in enumerate(cells) if c]
        if not filled:
            continue
        repeat = _map_header(tuple(cells))
        if len(repeat) >= 2 and repeat.items() <= mapping.items():
            continue  # the header repeated on every printed page
        if _is_column_numbers(cells):
            continue
        has_content = any(c < len(cells) and cells[c] for c in content_cols)
        if not has_content and (len(filled) == 1 or all(i in first_cols for i in filled)):
            text = _one_line(" ".join(cells[i] for i in filled))
            section = f"{section} / {text}" if last_was_section and section else text
            last_was_section = True
            continue
        last_was_section = False

        action = get(cells, "action")
        if not action:
            problems.append(
                RowProblem(
                    row=rownum,
                    column=titles.get("action"),
                    message="Не указано мероприятие — строка пропущена.",
                )
            )
            continue
        auto_number += 1
        number = _one_line(get(cells, "number")) if "number" in mapping else str(auto_number)
        item = build_item(
            number=number,
            action=action,
            deadline_text=_one_line(get(cells, "deadline")),
            executors=split_executors(get(cells, "executors")),
            indicator=get(cells, "indicator") or None,
            evidence=get(cells, "evidence") or None,
            section=section,
            row=rownum,
            period=period,
            default_level=level,
            problems=problems,
            deadline_column=titles.get("deadline"),
        )
        items.append(item)
    return items


def _number_title(header_cells: list[str], mapping: dict[str, int]) -> str | None:
    i = mapping.get("number")
    return _one_line(header_cells[i]) if i is not None else None


def _ensure_unique_numbers(
    items: list[RoadmapItem], problems: list[RowProblem], column: str | None = "№"
) -> None:
    """Item numbers identify items (one row per number in the database): make them unique.

    An empty number becomes "стр. N"; a repeated one gets " (стр. N)" appended; both
    are reported as warnings.
    """
    seen: set[str] = set()
    for it in items:
        if not it.number:
            it.number = f"стр. {it.row}"
            problems.append(
                RowProblem(
                    row=it.row,
                    column=column,
                    severity="warning",
                    message=f"Не указан номер пункта — присвоен номер «{it.number}».",
                )
            )
        elif it.number in seen:
            old = it.number
            it.number = f"{old} (стр. {it.row})"
            problems.append(
                RowProblem(
                    row=it.row,
                    column=column,
                    severity="warning",
                    message=f"Номер пункта «{old}» повторяется — присвоен номер «{it.number}».",
                )
            )
        seen.add(it.number)


def build_item(
    *,
    number: str,
    action: str,
    deadline_text: str,
    executors: list[str],
    row: int,
    period: Period,
    default_level: Level,
    problems: list[RowProblem],
    indicator: str | None = None,
    evidence: str | None = None,
    section: str | None = None,
    level: Level | None = None,
    deadline_column: str | None = "Сроки",
) -> RoadmapItem:
    """Make an item: parse its deadline, classify executors, report problems."""
    deadline = None
    error = None
    if not deadline_text:
        error = "срок не указан"
        problems.append(RowProblem(row=row, column=deadline_column, message="Не указан срок."))
    else:
        try:
            deadline = parse_deadline(deadline_text, period)
        except DeadlineParseError as exc:
            error = exc.reason
            problems.append(RowProblem(row=row, column=deadline_column, message=str(exc)))
    if deadline is not None and deadline.kind != "none":
        lo = deadline.start or deadline.end
        hi = deadline.end
        if lo and hi and (hi < period.start or lo > period.end):
            problems.append(
                RowProblem(
                    row=row,
                    column=deadline_column,
                    severity="warning",
                    message=(
                        f"Срок «{deadline_text}» не попадает в период дорожной карты "
                        f"{period} — проверьте год."
                    ),
                )
            )
    roles = executor_roles(executors)
    return RoadmapItem(
        number=number,
        action=action,
        deadline_text=deadline_text,
        deadline=deadline,
        deadline_error=error,
        executors=executors,
        executor_roles=roles,
        level=level or derive_level(roles, default_level),
        section=section,
        indicator=indicator,
        evidence=evidence,
        row=row,
    )


# --------------------------------------------------------------------------- yaml


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.date):
        return value.strftime("%d.%m.%Y")
    return str(value).strip()


def _roadmap_from_dict(data: Any, where: str) -> ImportResult:
    if not isinstance(data, dict):
        raise RoadmapFormatError(f"{where}: ожидается описание дорожной карты (словарь)")
    known = {
        "id",
        "title",
        "level",
        "region",
        "municipality",
        "period",
        "source",
        "milestones",
        "sections",
        "items",
    }
    unknown = set(data) - known
    if unknown:
        raise RoadmapFormatError(f"{where}: неизвестные поля {sorted(unknown)}")
    try:
        period = Period(**data["period"])
        shell = Roadmap(
            id=str(data["id"]),
            title=data["title"],
            level=data["level"],
            region=data.get("region"),
            municipality=data.get("municipality"),
            period=period,
            source=data.get("source"),
            milestones=[Milestone(**m) for m in data.get("milestones") or []],
        )
    except (KeyError, TypeError, ValueError, ValidationError) as exc:
        raise RoadmapFormatError(f"{where}: неверное описание дорожной карты: {exc}") from exc

    raw_items: list[tuple[str | None, dict[str, Any]]] = []
    for sec in data.get("sections") or []:
        for it in sec.get("items") or []:
            raw_items.append((sec.get("title"), it))
    for it in data.get("items") or []:
        raw_items.append((it.get("section"), it))

    problems: list[RowProblem] = []
    items = []
    allowed = {
        "number",
        "action",
        "deadline",
        "executors",
        "indicator",
        "evidence",
        "level",
        "section",
        "row",
    }
    for n, (section, it) in enumerate(raw_items, start=1):
        if not isinstance(it, dict) or set(it) - allowed or "action" not in it:
            raise RoadmapFormatError(f"{where}: пункт {n} описан неверно: {it!r}")
        executors = it.get("executors") or []
        if isinstance(executors, str):
            executors = split_executors(executors)
        try:
            items.append(
                build_item(
                    number=_text(it.get("number")) or str(n),
                    action=_text(it["action"]),
                    deadline_text=_text(it.get("deadline")),
                    executors=[_text(e) for e in executors],
                    indicator=_text(it.get("indicator")) or None,
                    evidence=_text(it.get("evidence")) or None,
                    section=section,
                    level=it.get("level"),
                    row=int(it.get("row") or n),
                    period=period,
                    default_level=shell.level,
                    problems=problems,
                )
            )
        except ValidationError as exc:
            raise RoadmapFormatError(f"{where}: пункт {n} описан неверно: {exc}") from exc
    _ensure_unique_numbers(items, problems, "number")
    return ImportResult(roadmap=shell.model_copy(update={"items": items}), problems=problems)


def _load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise RoadmapFormatError(f"{path.name}: не удалось прочитать YAML: {exc}") from exc


def import_yaml_all(path: str | Path) -> list[ImportResult]:
    """All roadmaps of a YAML file: a single roadmap or ``roadmaps: [...]``."""
    path = Path(path)
    data = _load_yaml(path)
    if isinstance(data, dict) and set(data) == {"roadmaps"}:
        return [
            _roadmap_from_dict(rm, f"{path.name}[{i}]") for i, rm in enumerate(data["roadmaps"])
        ]
    return [_roadmap_from_dict(data, path.name)]


def import_yaml(path: str | Path) -> ImportResult:
    """The single roadmap of a YAML file (see :func:`import_yaml_all` for several)."""
    results = import_yaml_all(path)
    if len(results) != 1:
        raise RoadmapFormatError(
            f"{Path(path).name}: в файле {len(results)} дорожных карт, а ожидается одна"
        )
    return results[0]


def bundled_results() -> list[ImportResult]:
    """Import results of every YAML file under ``roadmaps/data`` (sorted by file name)."""
    out: list[ImportResult] = []
    data_dir = resources.files("roadmaps") / "data"
    for entry in sorted(data_dir.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            with resources.as_file(entry) as p:
                out.extend(import_yaml_all(p))
    return out


def load_bundled() -> list[Roadmap]:
    """The ready roadmaps shipped with the bot; raises if any of them has errors."""
    roadmaps = []
    for res in bundled_results():
        if not res.ok:
            details = "; ".join(f"пункт в строке {p.row}: {p.message}" for p in res.errors)
            raise RoadmapFormatError(f"дорожная карта {res.roadmap.id}: {details}")
        roadmaps.append(res.roadmap)
    return roadmaps
