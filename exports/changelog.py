"""The «Журнал изменений» sheet: every audited change of a response in the export's scope.

One row per audit row (``entity`` "response"): when (local time), who, their role, school,
municipality, campaign, question, old value, new value and the action — answers, notes,
documents added or removed (by file name), coordinators' verdicts and the response's status
steps (:mod:`storage.repo`, :mod:`storage.review`). Oldest first, as the log was written.

Loading streams like :mod:`exports.data`: keyset pages of the audit log joined to the
responses of the export's campaigns (and municipality), each page in a short session of its
own; :class:`ChangelogSheet` turns a page into plain rows (no database, no openpyxl).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from exports.archive import question_label
from exports.cells import (
    DATETIME_FORMAT,
    answer_value,
    local_naive,
    question_header,
    shorten,
    status_name,
)
from exports.specs import ColumnSpec
from forms.engine import FormEngine
from storage.models import AuditLog, Campaign, Municipality, Person, Response, School, Verdict
from storage.repo import decode_value

SHEET_CHANGELOG = "Журнал изменений"
MAX_TEXT = 1000
SYSTEM = "система"
ROLES = {
    "director": "директор",
    "municipal": "муниципальный координатор",
    "regional": "региональный координатор",
    "admin": "администратор",
}
ACTIONS = {
    "answer": "ответ изменён",
    "note": "пояснение изменено",
    "attach": "документ добавлен",
    "attachment_removed": "документ удалён",
    "attachments_removed": "документы удалены",
    "verdict": "решение координатора",
    "status": "статус анкеты",
    "prefill_response": "взяты прошлые ответы",
    "reopen_response": "анкета открыта для исправлений",
}
VERDICTS = {Verdict.ACCEPTED: "принят", Verdict.RETURNED: "возвращён"}


@dataclass(frozen=True, slots=True)
class ChangeInfo:
    id: int
    at: datetime
    action: str
    details: dict[str, Any]
    person: str | None
    role: str | None
    campaign_id: int
    campaign: str
    form_id: str
    form_version: int
    municipality: str
    school: str | None


@dataclass(frozen=True, slots=True)
class ChangeChunk:
    """A page of «Журнал изменений», after the targets and the roadmap."""

    changes: list[ChangeInfo]


async def iter_changes(
    sessions: async_sessionmaker,
    campaign_ids: Sequence[int],
    municipality_id: int | None,
    chunk_size: int,
) -> AsyncIterator[ChangeChunk]:
    """The audit rows of the campaigns' responses (in the municipality, when given)."""
    if not campaign_ids:
        return
    place = func.coalesce(School.municipality_id, Response.municipality_id)
    query = (
        select(
            AuditLog.id,
            AuditLog.at,
            AuditLog.action,
            AuditLog.details,
            Person.full_name,
            Person.role,
            Campaign.id,
            Campaign.title,
            Campaign.form_id,
            Response.form_version,
            Municipality.name,
            School.name,
        )
        .join(Response, Response.id == AuditLog.entity_id)
        .join(Campaign, Campaign.id == Response.campaign_id)
        .outerjoin(School, School.id == Response.school_id)
        .join(Municipality, Municipality.id == place)
        .outerjoin(Person, Person.id == AuditLog.person_id)
        .where(AuditLog.entity == "response", Response.campaign_id.in_(list(campaign_ids)))
        .order_by(AuditLog.id)
        .limit(chunk_size)
    )
    if municipality_id is not None:
        query = query.where(place == municipality_id)
    last = 0
    while True:
        async with sessions() as session:
            rows = list(await session.execute(query.where(AuditLog.id > last)))
        if not rows:
            return
        yield ChangeChunk([ChangeInfo(*row[:3], row[3] or {}, *row[4:]) for row in rows])
        if len(rows) < chunk_size:
            return
        last = rows[-1][0]


class ChangelogSheet:
    def __init__(self, engine: Callable[[str, int], FormEngine], zone: ZoneInfo) -> None:
        self.engine = engine
        self.zone = zone

    @staticmethod
    def columns() -> list[ColumnSpec]:
        return [
            ColumnSpec("at", "Когда", 17, DATETIME_FORMAT),
            ColumnSpec("person", "Кто", 26),
            ColumnSpec("role", "Роль", 16),
            ColumnSpec("school", "Наименование ОО", 36),
            ColumnSpec("municipality", "Муниципалитет", 24),
            ColumnSpec("campaign", "Анкетирование", 24),
            ColumnSpec("question", "Вопрос", 36),
            ColumnSpec("old", "Было", 24),
            ColumnSpec("new", "Стало", 24),
            ColumnSpec("action", "Действие", 20),
        ]

    def row(self, change: ChangeInfo) -> list[Any]:
        details = change.details
        engine = self._engine(change)
        question = None
        qid = details.get("question")
        if isinstance(qid, str) and engine is not None:
            question = self._question(engine, qid)
        old, new = self._values(engine, change.action, details)
        return [
            local_naive(change.at, self.zone),
            change.person or (None if change.role else SYSTEM),
            ROLES.get(change.role, change.role) if change.role else None,
            change.school,
            change.municipality,
            f"№{change.campaign_id} {change.campaign}",
            question,
            old,
            new,
            ACTIONS.get(change.action, change.action),
        ]

    def _engine(self, change: ChangeInfo) -> FormEngine | None:
        try:
            return self.engine(change.form_id, change.form_version)
        except LookupError:  # a form version no longer loaded
            return None

    @staticmethod
    def _question(engine: FormEngine, qid: str) -> str:
        try:
            q = engine.question(qid)
            number = engine.section_of(qid).shown_number
        except LookupError:
            return qid
        return question_label(number, None, question_header(q))

    @staticmethod
    def _values(engine: FormEngine | None, action: str, details: dict[str, Any]) -> list[Any]:
        old, new = details.get("old"), details.get("new")
        if action == "answer":
            return [_answer(engine, details.get("question"), v) for v in (old, new)]
        if action in ("attach", "attachment_removed", "attachments_removed"):
            if action == "attachment_removed" and old is None:  # rows of before old/new
                old = {"name": details.get("name")}
            return [_document(v) for v in (old, new)]
        if action == "verdict":
            return [_verdict(v) for v in (old, new)]
        if action == "status":
            comment = details.get("comment")
            shown = status_name(str(new)) if new else None
            if shown and comment:
                shown = f"{shown}: {comment}"
            return [status_name(str(old)) if old else None, _text(shown)]
        return [_text(old), _text(new)]


def _answer(engine: FormEngine | None, qid: Any, value: Any) -> Any:
    if value is None or engine is None or not isinstance(qid, str):
        return _text(value)
    try:
        q = engine.question(qid)
    except LookupError:
        return _text(value)
    cell = answer_value(q, decode_value(value))
    return _text(cell) if isinstance(cell, str) else cell


def _document(value: Any) -> str | None:
    if isinstance(value, dict):
        return _text(value.get("name"))
    return None


def _verdict(value: Any) -> str | None:
    if not isinstance(value, dict):
        return None
    shown = VERDICTS.get(value.get("verdict"), value.get("verdict"))
    comment = value.get("comment")
    return _text(f"{shown}: {comment}" if comment else shown)


def _text(value: Any) -> Any:
    if isinstance(value, bool):
        return "да" if value else "нет"
    if value is None or isinstance(value, int | float):
        return value
    return shorten(str(value), MAX_TEXT)
