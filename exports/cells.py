"""Cell values and column pieces shared by the export's sheets: plain Python, no openpyxl."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from exports.specs import ColumnSpec
from forms.schema import Question, QuestionKind

STATUS_NAMES = {
    "draft": "черновик",
    "submitted": "отправлена",
    "returned": "возвращена",
    "resubmitted": "исправлена и отправлена",
    "accepted": "принята",
}
NOT_STARTED = "не начата"
YES, NO = "да", "нет"
DATE_FORMAT = "DD.MM.YYYY"
DATETIME_FORMAT = "DD.MM.YYYY HH:MM"
PERCENT_FORMAT = "0.0%"
MAX_CELL_TEXT = 32_000  # Excel's limit is 32,767 characters


def local_naive(value: datetime | None, zone: ZoneInfo) -> datetime | None:
    """Excel has no time zones: the moment in ``zone``, without tzinfo (naive = UTC)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(zone).replace(tzinfo=None)


def number(value: float | None) -> float | int | None:
    if value is None:
        return None
    return int(value) if float(value).is_integer() else value


def status_name(status: str) -> str:
    return STATUS_NAMES.get(status, status)


def question_header(q: Question) -> str:
    return q.short or q.text


def answer_value(q: Question, value: Any) -> Any:
    if value is None:
        return None
    kind = q.kind
    if kind is QuestionKind.YES_NO:
        return YES if value is True else NO if value is False else str(value)
    if kind is QuestionKind.CHOICE:
        return next((c.text for c in q.choices if c.id == value), str(value))
    if isinstance(value, bool):
        return YES if value else NO
    if isinstance(value, int | float | date):
        return value
    return str(value)


def shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def identity_columns() -> list[ColumnSpec]:
    """The columns that name a respondent: campaign, municipality, school."""
    return [
        ColumnSpec("campaign_id", "№ анкетирования", 9),
        ColumnSpec("campaign", "Анкетирование", 28),
        ColumnSpec("municipality", "Муниципалитет", 28),
        ColumnSpec("school", "Наименование ОО", 42),
        ColumnSpec("school_code", "Код ОО", 12),
    ]
