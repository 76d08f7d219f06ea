"""Telling coordinators that a school in their scope submitted or resubmitted: a notice
each time, or nothing now for those who chose the daily digest (scheduler/digests.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from handlers import callbacks as cb
from handlers.types import Button, OutText
from storage import notices
from storage.models import Municipality, NotifyMode, Person, Response, Role, School

SUBMITTED = "🔔 {school} ({municipality}) отправила анкету «{title}»."
RESUBMITTED = "🔔 {school} ({municipality}) исправила и снова отправила анкету «{title}»."
BTN_OPEN = "Открыть анкету"
NOTICE_LIMIT = 3900


def mode_of(person: Person) -> str:
    """A municipal coordinator hears of each submission; a regional one, by default, in
    the daily digest (hundreds of schools); each can choose in chat."""
    if person.notify_mode:
        return person.notify_mode
    return NotifyMode.DIGEST if person.role == Role.REGIONAL else NotifyMode.EACH


async def coordinators_of(session: AsyncSession, school: School) -> list[Person]:
    """Municipal coordinators of the school's municipality and regional ones of its region."""
    municipality = await session.get(Municipality, school.municipality_id)
    query = select(Person).where(
        Person.removed_at.is_(None),
        or_(
            (Person.role == Role.MUNICIPAL) & (Person.municipality_id == school.municipality_id),
            (Person.role == Role.REGIONAL)
            & (
                Person.region_id.is_(None)
                | (Person.region_id == (municipality.region_id if municipality else None))
            ),
        ),
    )
    return list(await session.scalars(query.order_by(Person.id)))


async def submitted(
    session: AsyncSession,
    response: Response,
    title: str,
    now: datetime,
    *,
    resubmitted: bool = False,
    event_id: int | None = None,
    changes: list[str] | None = None,
) -> int:
    """Queue a notice to every coordinator of the school who wants each one; returns how
    many were queued. ``event_id`` (the response_events row) keeps repeated submissions
    apart and the same one from being told twice. ``changes``: what a resubmission changed
    in the returned answers (handlers/revision_flow.py), one line each."""
    if response.school_id is None:
        return 0
    school = await session.get(School, response.school_id)
    municipality = await session.get(Municipality, school.municipality_id)
    text = (RESUBMITTED if resubmitted else SUBMITTED).format(
        school=school.name, municipality=municipality.name if municipality else "", title=title
    )
    if changes:
        text = _fit("\n\n".join((text, "\n".join(changes))))
    message = OutText(text, [[Button(BTN_OPEN, cb.encode(cb.Action.COORD_REVIEW, response.id, 0))]])
    people = [p.id for p in await coordinators_of(session, school) if mode_of(p) == NotifyMode.EACH]
    step = event_id if event_id is not None else int(now.timestamp())
    return await notices.notify_all(
        session, people, message, key=f"submitted:{response.id}:{step}", now=now
    )


def _fit(text: str) -> str:
    """A message fits every platform (VK and MAX cut at 4000 characters)."""
    return text if len(text) <= NOTICE_LIMIT else text[: NOTICE_LIMIT - 1].rstrip() + "…"
