"""The review of a response: verdicts per answer and the response's steps, with history.

Statuses: draft → submitted → (returned → resubmitted)* → accepted. Every step is a
``response_events`` row (who, when, why) and an audit row; every verdict is an
``answer_reviews`` row (the latest) and an audit row with the old and the new verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from forms.engine import Slot
from storage import repo
from storage.models import (
    AnswerReview,
    AuditLog,
    Response,
    ResponseEvent,
    ResponseStatus,
    Verdict,
)

# which status may move to which: anything else is refused (a stale button, a forged one)
MOVES: dict[str, tuple[str, ...]] = {
    ResponseStatus.DRAFT: (ResponseStatus.SUBMITTED,),
    ResponseStatus.SUBMITTED: (ResponseStatus.RETURNED, ResponseStatus.ACCEPTED),
    ResponseStatus.RETURNED: (ResponseStatus.RESUBMITTED,),
    ResponseStatus.RESUBMITTED: (ResponseStatus.RETURNED, ResponseStatus.ACCEPTED),
    # an admin reopens an accepted response for the school («campaign reopen»)
    ResponseStatus.ACCEPTED: (ResponseStatus.RETURNED,),
}
# a coordinator may review (accept, return) a response in these statuses
UNDER_REVIEW = (ResponseStatus.SUBMITTED, ResponseStatus.RESUBMITTED)


class BadMove(Exception):
    """The response is not in a status that allows this step."""


async def move(
    session: AsyncSession,
    response: Response,
    status: str,
    person_id: int | None,
    now: datetime,
    comment: str | None = None,
) -> ResponseEvent:
    if status not in MOVES.get(response.status, ()):
        raise BadMove(f"{response.status} → {status}")
    old = response.status
    response.status = status
    response.updated_at = now
    if status in (ResponseStatus.SUBMITTED, ResponseStatus.RESUBMITTED):
        response.submitted_at = now
        response.submitted_by = person_id
    event = ResponseEvent(
        response_id=response.id, status=status, person_id=person_id, at=now, comment=comment
    )
    session.add(event)
    await repo.audit(
        session, "status", "response", response.id, person_id, old=old, new=status, comment=comment
    )
    return event


async def verdicts(session: AsyncSession, response_id: int) -> dict[Slot, AnswerReview]:
    rows = await session.scalars(
        select(AnswerReview).where(AnswerReview.response_id == response_id)
    )
    return {Slot(r.question_id, r.row): r for r in rows}


async def set_verdict(
    session: AsyncSession,
    response_id: int,
    slot: Slot,
    verdict: str,
    person_id: int | None,
    now: datetime,
    comment: str | None = None,
    snapshot: dict[str, Any] | None = None,
) -> AnswerReview:
    """The coordinator's verdict on one answer; a second verdict replaces the first (both
    are in the audit log). ``snapshot``: the answer as the coordinator saw it
    ({"value", "note", "documents": [names]})."""
    if verdict not in (Verdict.ACCEPTED, Verdict.RETURNED):
        raise ValueError(f"unknown verdict {verdict!r}")
    row = await session.scalar(
        select(AnswerReview).where(
            AnswerReview.response_id == response_id,
            AnswerReview.question_id == slot.question_id,
            AnswerReview.row == slot.row,
        )
    )
    old = None
    if row is None:
        row = AnswerReview(
            response_id=response_id, question_id=slot.question_id, row=slot.row, verdict=verdict
        )
        session.add(row)
    else:
        old = {"verdict": row.verdict, "comment": row.comment}
    row.verdict, row.comment, row.person_id, row.at = verdict, comment, person_id, now
    row.fixed_at, row.snapshot = None, snapshot
    await repo.audit(
        session,
        "verdict",
        "response",
        response_id,
        person_id,
        question=slot.question_id,
        row=slot.row,
        old=old,
        new={"verdict": verdict, "comment": comment},
    )
    return row


async def returned_slots(session: AsyncSession, response_id: int) -> list[Slot]:
    """The answers sent back for revision, whether fixed since or not."""
    found = await verdicts(session, response_id)
    return [slot for slot, row in found.items() if row.verdict == Verdict.RETURNED]


async def history(session: AsyncSession, response_id: int) -> list[ResponseEvent]:
    rows = await session.scalars(
        select(ResponseEvent)
        .where(ResponseEvent.response_id == response_id)
        .order_by(ResponseEvent.at, ResponseEvent.id)
    )
    return list(rows)


def _utc(moment: datetime | None) -> datetime | None:
    """SQLite gives back naive datetimes; they are UTC."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


async def open_returns(session: AsyncSession, response: Response) -> dict[Slot, AnswerReview]:
    """The answers returned in the current round, which alone the school may change: none
    (and no query) unless the response is RETURNED. A verdict older than the last
    submission belongs to an earlier round; none at all means a whole reopen."""
    if response.status != ResponseStatus.RETURNED:
        return {}
    since = _utc(response.submitted_at)
    found = await verdicts(session, response.id)
    return {
        slot: row
        for slot, row in found.items()
        if row.verdict == Verdict.RETURNED and (since is None or _utc(row.at) >= since)
    }


@dataclass
class Touch:
    """What the school did to one answer after its verdict, read from the audit log."""

    changed: bool = False  # the value, the note or a document was written
    attached: set[int] = field(default_factory=set)  # attachment ids added since


_CHANGES = ("answer", "note", "attach", "attachment_removed", "attachments_removed")


async def touched_since_verdicts(session: AsyncSession, response_id: int) -> dict[Slot, Touch]:
    """Per answer with a verdict: the writes after its latest verdict (one query)."""
    rows = await session.scalars(
        select(AuditLog)
        .where(
            AuditLog.entity == "response",
            AuditLog.entity_id == response_id,
            AuditLog.action.in_(("verdict", *_CHANGES)),
        )
        .order_by(AuditLog.id)
    )
    touched: dict[Slot, Touch] = {}
    for row in rows:
        details = row.details or {}
        if "question" not in details:
            continue
        slot = Slot(details["question"], int(details.get("row") or 0))
        if row.action == "verdict":
            touched[slot] = Touch()
        elif slot in touched:
            touched[slot].changed = True
            if row.action == "attach" and details.get("attachment") is not None:
                touched[slot].attached.add(int(details["attachment"]))
    return touched
