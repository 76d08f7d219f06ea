"""Import roadmaps from .xlsx tables and from the bundled YAML files.

Problems are collected, not raised: an unreadable deadline becomes a :class:`RowProblem`
with its row and the item is kept with ``deadline=None`` and ``deadline_error``. Problems
that stop the import (not an .xlsx, no header, a required column missing) leave the
roadmap without items. ``row`` is the 1-based spreadsheet row; 0 means "the whole file".
For YAML files ``row`` is the item's ordinal number in the file.
"""

from __future__ import annotations

import datetime as dt
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError

from roadmaps import xlsx_table as table
from roadmaps.audience import AppliesTo, AppliesToError, parse_applies_to
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
from roadmaps.xlsx_table import COLUMNS, HEADER_HINTS, PeriodNotFound
from roadmaps.xlsx_table import one_line as _one_line

__all__ = [
    "COLUMNS",
    "ImportResult",
    "PeriodNotFound",
    "RoadmapFormatError",
    "RowProblem",
    "import_xlsx",
    "import_yaml",
    "import_yaml_all",
    "load_bundled",
]


Severity = Literal["error", "warning"]


class RowProblem(BaseModel):
    row: int  # 1-based source row; 0 = the whole file
    column: str | None = None
    message: str
    severity: Severity = "error"
    blocking: bool = False  # nothing may be saved until it is fixed (e.g. whom an item is for)


class ImportResult(BaseModel):
    roadmap: Roadmap
    problems: list[RowProblem] = Field(default_factory=list)
    period_from_title: bool = False  # an xlsx roadmap whose period was read from its title

    @property
    def ok(self) -> bool:
        """No errors (warnings allowed)."""
        return not any(p.severity == "error" for p in self.problems)

    @property
    def blocking(self) -> list[RowProblem]:
        return [p for p in self.problems if p.blocking]

    @property
    def errors(self) -> list[RowProblem]:
        return [p for p in self.problems if p.severity == "error"]


class RoadmapFormatError(ValueError):
    """A YAML roadmap file is malformed (message in Russian)."""


def _empty(roadmap_id: str, title: str, period: Period, level: Level, **meta: Any) -> Roadmap:
    return Roadmap(id=roadmap_id, title=title, level=level, period=period, **meta)


def import_xlsx(
    path: str | Path,
    *,
    roadmap_id: str,
    title: str | None,
    period: Period | None,
    level: Level,
    region: str | None = None,
    municipality: str | None = None,
    applies_to: AppliesTo | None = None,
) -> ImportResult:
    """Read a roadmap table from an .xlsx file (first sheet that has a header row).

    ``title``/``period`` ``None``: read from the title rows above the header; a period
    that is not there raises :class:`PeriodNotFound` (ask the user for it).
    """
    path = Path(path)
    meta = {"region": region, "municipality": municipality, "applies_to": applies_to}
    fallback = Period.calendar_year(dt.date.today().year)

    def failed(message: str, row: int = 0, **kw: Any) -> ImportResult:
        empty = _empty(roadmap_id, title or path.stem, period or fallback, level, **meta)
        return ImportResult(roadmap=empty, problems=[RowProblem(row=row, message=message, **kw)])

    try:
        table.check_xlsx_file(path)
    except table.Reject as exc:
        return failed(str(exc))

    found: tuple[list[list[str]], int, dict[str, int]] | None = None
    best_partial: tuple[str, int, dict[str, int]] | None = None
    try:
        for sheet, rows in table.read_rows(path):
            header = table.find_header(rows)
            if header is None:
                continue
            idx, mapping = header
            if all(c.field in mapping for c in COLUMNS if c.required):
                found = (rows, idx, mapping)
                break
            if best_partial is None or len(mapping) > len(best_partial[2]):
                best_partial = (sheet, idx, mapping)
    except Exception as exc:  # openpyxl raises many kinds on broken files
        return failed(
            f"Не удалось прочитать таблицу: {type(exc).__name__}. Пересохраните файл в Excel."
        )

    if found is None:
        if best_partial is None:
            expected = "; ".join(HEADER_HINTS[c.field] for c in COLUMNS if c.required)
            return failed(f"Не найдена строка заголовков таблицы. Ожидаются столбцы: {expected}.")
        sheet, idx, mapping = best_partial
        result = failed("")
        result.problems = [
            RowProblem(
                row=idx + 1,
                column=col.title,
                message=(
                    f"На листе «{sheet}» нет обязательного столбца «{col.title}». "
                    f"Ожидается заголовок {HEADER_HINTS[col.field]}."
                ),
            )
            for col in COLUMNS
            if col.required and col.field not in mapping
        ]
        return result

    rows, header_idx, mapping = found
    info = table.read_title(rows, header_idx)
    if period is None:
        if info.period is None:
            raise PeriodNotFound(_period_question(info))
        period = info.period
    problems: list[RowProblem] = []
    items = _rows_to_items(rows, header_idx, mapping, period, level, problems)
    if not items and not problems:
        problems.append(
            RowProblem(
                row=header_idx + 1,
                message=(
                    f"Под строкой заголовков (стр. {header_idx + 1}) нет ни одной строки с "
                    "мероприятием. Проверьте, что пункты карты на том же листе под заголовком "
                    "и в столбце «Мероприятие» заполнены."
                ),
            )
        )
    _ensure_unique_numbers(items, problems, _number_title(rows[header_idx], mapping))
    roadmap = _empty(roadmap_id, title or info.title or path.stem, period, level, **meta)
    return ImportResult(
        roadmap=roadmap.model_copy(update={"items": items}),
        problems=problems,
        period_from_title=info.period is not None and info.period == period,
    )


def _period_question(info: table.TitleInfo) -> str:
    where = f"в заголовке «{_one_line(info.title)[:100]}»" if info.title else "над таблицей"
    if info.periods_found > 1:
        return (
            f"{where.capitalize()} указано несколько периодов — укажите период карты: "
            "--period 2024 (календарный год) или --period 2024-2025 (учебный год)."
        )
    return (
        f"Период карты не указан {where} — укажите его: --period 2024 (календарный год) "
        "или --period 2024-2025 (учебный год)."
    )


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
    content_fields = ("deadline", "executors", "indicator", "evidence", "applies_to")
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
        if table.is_repeated_header(cells, header_cells, mapping):
            continue  # the header repeated on every printed page
        if table.is_column_numbers(cells):
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
            applies_to=get(cells, "applies_to") or None,
            applies_to_column=titles.get("applies_to"),
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
    applies_to: Any = None,
    applies_to_column: str | None = "applies_to",
) -> RoadmapItem:
    """Make an item: parse its deadline and audience, classify executors, report problems."""
    audience = None
    if applies_to is not None:
        try:
            audience = parse_applies_to(applies_to)
        except AppliesToError as exc:
            problems.append(
                RowProblem(row=row, column=applies_to_column, message=str(exc), blocking=True)
            )
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
        applies_to=audience,
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
        "applies_to",
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
            applies_to=(
                parse_applies_to(data["applies_to"]) if data.get("applies_to") is not None else None
            ),
        )
    except AppliesToError as exc:
        raise RoadmapFormatError(f"{where}: applies_to: {exc}") from exc
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
        "applies_to",
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
                    applies_to=it.get("applies_to"),
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
