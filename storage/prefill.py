"""Starting a new campaign from the respondent's last submitted answers of the same form."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage import repo
from storage.models import (
    SENT_STATUSES,
    Answer,
    Attachment,
    Campaign,
    Response,
    utcnow,
)

# the statuses whose answers a director may start from
REUSABLE = SENT_STATUSES


async def previous_response(
    session: AsyncSession, campaign: Campaign, key: str
) -> tuple[Response, Campaign] | None:
    """The respondent's latest submitted response to another campaign of the same form."""
    row = (
        await session.execute(
            select(Response, Campaign)
            .join(Campaign, Campaign.id == Response.campaign_id)
            .where(
                Campaign.form_id == campaign.form_id,
                Campaign.id != campaign.id,
                Response.respondent_key == key,
                Response.status.in_(REUSABLE),
            )
            .order_by(Response.submitted_at.desc(), Response.id.desc())
            .limit(1)
        )
    ).first()
    return (row[0], row[1]) if row else None


async def copy_answers(
    session: AsyncSession,
    source: Response,
    target: Response,
    known: Callable[[str], bool],
    person_id: int | None,
) -> tuple[int, int]:
    """Copy answers and their documents (references to the same stored files) into an empty
    response; questions the target's form version lacks are left out. Returns the counts."""
    has_answers = await session.scalar(
        select(func.count()).select_from(Answer).where(Answer.response_id == target.id)
    )
    if has_answers:  # someone of the same school started it a moment ago
        return 0, 0
    now = utcnow()
    copied: set[tuple[str, int]] = set()
    for answer in await session.scalars(
        select(Answer).where(Answer.response_id == source.id).order_by(Answer.id)
    ):
        if not known(answer.question_id):
            continue
        copied.add((answer.question_id, answer.row))
        session.add(
            Answer(
                response_id=target.id,
                question_id=answer.question_id,
                row=answer.row,
                value=answer.value,
                note=answer.note,
                form_version=target.form_version,
                answered_by=person_id,
                answered_at=now,
            )
        )
    documents = 0
    for file in await repo.attachments_for(session, source.id):
        if (file.question_id, file.row) not in copied:
            continue
        documents += 1
        session.add(
            Attachment(
                response_id=target.id,
                question_id=file.question_id,
                row=file.row,
                original_name=file.original_name,
                size=file.size,
                mime_type=file.mime_type,
                sha256=file.sha256,
                storage_path=file.storage_path,
                platform=file.platform,
                platform_file_id=file.platform_file_id,
                status=file.status,
                uploaded_by=file.uploaded_by,
            )
        )
    target.updated_at = now
    await session.flush()
    await repo.audit(
        session,
        "prefill_response",
        "response",
        target.id,
        person_id,
        source=source.id,
        answers=len(copied),
        documents=documents,
    )
    return len(copied), documents
