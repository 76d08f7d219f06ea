"""What a coordinator's review reads: the responses waiting in their scope, a response's
documents (stored or not), and the people a verdict is told to."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    Attachment,
    AttachmentStatus,
    Campaign,
    Municipality,
    Person,
    Response,
    Role,
    School,
)
from storage.review import UNDER_REVIEW
from storage.scope import Scope


@dataclass(frozen=True, slots=True)
class Waiting:
    response: Response
    campaign: Campaign
    school: School
    municipality: Municipality


def _waiting_query(scope: Scope):
    return (
        select(Response, Campaign, School, Municipality)
        .join(Campaign, Campaign.id == Response.campaign_id)
        .join(School, School.id == Response.school_id)
        .join(Municipality, Municipality.id == School.municipality_id)
        .where(Response.status.in_(UNDER_REVIEW), scope.school_clause())
    )


async def waiting(
    session: AsyncSession, scope: Scope, *, offset: int, limit: int
) -> tuple[list[Waiting], int]:
    """School responses in scope that wait for review, newest first, and how many in all."""
    total = await session.scalar(select(func.count()).select_from(_waiting_query(scope).subquery()))
    rows = await session.execute(
        _waiting_query(scope)
        .order_by(Response.submitted_at.desc(), Response.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return [Waiting(*row) for row in rows], total or 0


async def documents(session: AsyncSession, response_id: int) -> list[Attachment]:
    """Every document of a response that was not rejected: stored, pending or failed."""
    rows = await session.scalars(
        select(Attachment)
        .where(
            Attachment.response_id == response_id,
            Attachment.status != AttachmentStatus.REJECTED,
        )
        .order_by(Attachment.id)
    )
    return list(rows)


async def respondents(session: AsyncSession, response: Response) -> list[int]:
    """Who answers for the response: the school's directors (or, for a municipality's
    response, its municipal coordinators), not removed."""
    if response.school_id is not None:
        clause = (Person.role == Role.DIRECTOR) & (Person.school_id == response.school_id)
    else:
        clause = (Person.role == Role.MUNICIPAL) & (
            Person.municipality_id == response.municipality_id
        )
    rows = await session.scalars(
        select(Person.id).where(clause, Person.removed_at.is_(None)).order_by(Person.id)
    )
    return list(rows)
