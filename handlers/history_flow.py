"""«История» of a response: every change, verdict and status step, newest first, paged.

Opened by the button ``hi|<response>|<page>`` (other flows show it with
:func:`history_button`) or by ``/history`` — the person's own latest response, or
``/history N`` for response N. Coordinators whose scope (:mod:`storage.scope`) sees the
school, and the school's own director, may read it; anything else (a forged id, another
municipality's school) is refused without a word about the response.

The audit log is the source (``entity`` "response"): answers, notes and documents from
:mod:`storage.repo`, verdicts and status steps from :mod:`storage.review`.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from forms.engine import FormEngine, Slot
from handlers import callbacks as cb
from handlers import history_texts as texts
from handlers import render
from handlers.core_context import CoreContext
from handlers.flow import Routes
from handlers.types import Button
from handlers.walk_state import Turn
from storage import repo
from storage.models import (
    AuditLog,
    Campaign,
    Municipality,
    Person,
    Response,
    Role,
    School,
    Verdict,
)
from storage.scope import Scope

log = logging.getLogger(__name__)

ACTION = "hi"  # hi|<response>|<page>
COMMAND = "history"
PAGE_LIMIT = 3500  # characters of one message
QUESTION_LIMIT = 40
VALUE_LIMIT = 60
COMMENT_LIMIT = 300  # a coordinator's comment is what the director has to act on


def history_button(response_id: int, page: int = 0) -> Button:
    return Button(texts.BTN_HISTORY, cb.encode(ACTION, response_id, page))


class HistoryFlow:
    def __init__(self, core: CoreContext) -> None:
        self.core = core

    def routes(self) -> Routes:
        return Routes(commands={COMMAND: self.command}, actions={ACTION: self.button})

    async def command(self, turn: Turn, args: str) -> None:
        words = args.split()
        if words:
            response_id = cb.Payload(ACTION, (words[0].lstrip("№#"),)).int_arg(0)
        else:
            response_id = await self._own_latest(turn)
            if response_id is None:
                turn.say(texts.NO_RESPONSE)
                return
        await self.show(turn, response_id, 0)

    async def button(self, turn: Turn, payload: cb.Payload) -> None:
        await self.show(turn, payload.int_arg(0), payload.int_arg(1) or 0)

    async def _own_latest(self, turn: Turn) -> int | None:
        person = turn.person
        if person.school_id is not None:
            where = Response.school_id == person.school_id
        elif person.role == Role.MUNICIPAL and person.municipality_id is not None:
            where = Response.municipality_id == person.municipality_id
        else:
            return None
        return await turn.session.scalar(
            select(Response.id).where(where).order_by(Response.id.desc()).limit(1)
        )

    async def show(self, turn: Turn, response_id: int | None, page: int) -> None:
        session = turn.session
        loaded = await repo.load_response(session, response_id) if response_id else None
        if loaded is None or not await self._may_see(turn, loaded[0]):
            log.warning("account %s asked for the history of %s", turn.account.id, response_id)
            turn.say(texts.NOT_AVAILABLE)
            return
        response, campaign, school = loaded
        place = school.name if school is not None else await self._municipality_name(turn, response)
        lines = await self._lines(turn, response, campaign, school)
        if not lines:
            turn.say(texts.EMPTY.format(title=campaign.title, school=place))
            return
        title = texts.TITLE.format(title=campaign.title, school=place)
        pages = paginate(lines, PAGE_LIMIT - len(title) - 40)
        page = min(page, len(pages) - 1)
        parts = [title, "", *pages[page]]
        buttons: list[Button] = []
        if len(pages) > 1:
            parts += ["", texts.PAGE.format(page=page + 1, pages=len(pages))]
            if page > 0:
                buttons.append(Button(texts.BTN_NEWER, cb.encode(ACTION, response.id, page - 1)))
            if page + 1 < len(pages):
                buttons.append(Button(texts.BTN_OLDER, cb.encode(ACTION, response.id, page + 1)))
        turn.say("\n".join(parts), [buttons] if buttons else None)

    async def _may_see(self, turn: Turn, response: Response) -> bool:
        scope = Scope.of(turn.person)
        if response.school_id is not None:
            return await scope.sees_school(turn.session, response.school_id)
        if not scope.is_coordinator:
            return False
        return await scope.sees_municipality(turn.session, response.municipality_id)

    @staticmethod
    async def _municipality_name(turn: Turn, response: Response) -> str:
        found = await turn.session.get(Municipality, response.municipality_id)
        return found.name if found is not None else ""

    async def _lines(
        self, turn: Turn, response: Response, campaign: Campaign, school: School | None
    ) -> list[str]:
        session = turn.session
        rows = list(
            await session.scalars(
                select(AuditLog)
                .where(AuditLog.entity == "response", AuditLog.entity_id == response.id)
                .order_by(AuditLog.at.desc(), AuditLog.id.desc())
            )
        )
        if not rows:
            return []
        ids = {r.person_id for r in rows if r.person_id is not None}
        people = (
            {p.id: p for p in await session.scalars(select(Person).where(Person.id.in_(ids)))}
            if ids
            else {}
        )
        engine = self.core.forms.engine(campaign.form_id, response.form_version)
        answers = await repo.load_answers(session, response.id)
        visible = engine.slots(answers, school.flags() if school is not None else {})
        numbers = {slot: index for index, slot in enumerate(visible, start=1)}
        zone = self.core.config.timezone
        lines = []
        for row in rows:
            what = describe(engine, numbers, row.action, row.details or {})
            if what is None:
                continue
            when = repo.as_utc(row.at).astimezone(zone).strftime("%d.%m %H:%M")
            lines.append(f"{when} {who(people.get(row.person_id))}: {what}")
        return lines


def paginate(lines: list[str], limit: int) -> list[list[str]]:
    """Consecutive lines in pages of at most ``limit`` characters (a longer line alone)."""
    pages: list[list[str]] = [[]]
    size = 0
    for line in lines:
        if pages[-1] and size + len(line) + 1 > limit:
            pages.append([])
            size = 0
        pages[-1].append(render.shorten(line, limit))
        size += len(line) + 1
    return pages


def who(person: Person | None) -> str:
    """«Иванова А. П. (директор)»; a change without a person (CLI, system) is «система»."""
    if person is None:
        return texts.SYSTEM
    role = texts.ROLES.get(person.role, person.role)
    name = short_name(person.full_name)
    return f"{name} ({role})" if name else role


def short_name(full_name: str | None) -> str:
    words = (full_name or "").split()
    if not words:
        return ""
    initials = [w if w.endswith(".") else f"{w[0]}." for w in words[1:3]]
    return " ".join([words[0], *initials])


def describe(
    engine: FormEngine, numbers: dict[Slot, int], action: str, details: dict[str, Any]
) -> str | None:
    """One change in words, or None for audit rows the history does not show."""
    old, new = details.get("old"), details.get("new")
    if action == "status":
        status = texts.STATUS.get(str(new))
        if status is None:
            return None
        comment = details.get("comment")
        if not comment:
            return status
        return texts.STATUS_COMMENT.format(status=status, comment=_short(comment, COMMENT_LIMIT))
    if action == "prefill_response":
        return texts.PREFILL.format(answers=details.get("answers", 0))
    qid = details.get("question")
    if not isinstance(qid, str):
        return None
    slot = Slot(qid, int(details.get("row") or 0))
    question = question_label(engine, numbers, slot)
    if action == "answer":
        return texts.ANSWER.format(
            question=question, old=_value(engine, qid, old), new=_value(engine, qid, new)
        )
    if action == "note":
        if not old:
            return texts.NOTE_ADDED.format(question=question, new=_short(new))
        if not new:
            return texts.NOTE_REMOVED.format(question=question)
        return texts.NOTE.format(question=question, old=_short(old), new=_short(new))
    if action == "attach":
        name = new.get("name") if isinstance(new, dict) else None
        return texts.DOCUMENT_ADDED.format(question=question, name=_short(name))
    if action == "attachment_removed":
        name = old.get("name") if isinstance(old, dict) else details.get("name")
        return texts.DOCUMENT_REMOVED.format(question=question, name=_short(name))
    if action == "attachments_removed":  # rows written before one row per file
        return texts.DOCUMENTS_REMOVED.format(question=question, count=details.get("count", 0))
    if action == "verdict" and isinstance(new, dict):
        if new.get("verdict") == Verdict.ACCEPTED:
            return texts.VERDICT_ACCEPTED.format(question=question)
        comment = new.get("comment")
        if comment:
            comment = _short(comment, COMMENT_LIMIT)
            return texts.VERDICT_RETURNED.format(question=question, comment=comment)
        return texts.VERDICT_RETURNED_BARE.format(question=question)
    return None


def question_label(engine: FormEngine, numbers: dict[Slot, int], slot: Slot) -> str:
    """«№3 «Число учителей…»» — the number the director sees now, when the question shows."""
    try:
        title = render.label(engine, slot)
    except LookupError:
        title = slot.question_id
    title = f"«{render.shorten(title, QUESTION_LIMIT)}»"
    number = numbers.get(slot)
    return f"№{number} {title}" if number else title


def _value(engine: FormEngine, question_id: str, value: Any) -> str:
    if value is None:
        return texts.EMPTY_VALUE
    try:
        question = engine.question(question_id)
    except LookupError:
        return _short(str(value))
    return _short(render.format_value(question, repo.decode_value(value)))


def _short(text: object, limit: int = VALUE_LIMIT) -> str:
    return render.shorten(str(text or texts.EMPTY_VALUE), limit)
