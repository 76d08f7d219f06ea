"""Broadcasts: who is in an audience (always within the sender's scope), the sender's past
broadcasts, and what became of each one's deliveries."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    SENT_STATUSES,
    Account,
    Broadcast,
    Campaign,
    CampaignTarget,
    Delivery,
    DeliveryStatus,
    Municipality,
    Person,
    Response,
    Role,
    School,
)
from storage.scope import Scope


class Audience:
    """``broadcasts.audience["kind"]``."""

    DIRECTORS = "directors"  # directors of every school in the sender's scope
    MUNICIPALITY = "municipality"  # directors of one municipality (regional, admin)
    COORDINATORS = "coordinators"  # municipal coordinators (regional, admin)
    NOT_SUBMITTED = "not_submitted"  # directors who have not sent an open campaign's form


WIDE_KINDS = (Audience.MUNICIPALITY, Audience.COORDINATORS)  # regional coordinators and admins


def may_choose(scope: Scope, kind: str) -> bool:
    if not scope.is_coordinator:
        return False
    if kind in WIDE_KINDS:
        return scope.role in (Role.REGIONAL, Role.ADMIN)
    return kind in (Audience.DIRECTORS, Audience.NOT_SUBMITTED)


async def municipalities(session: AsyncSession, scope: Scope) -> list[Municipality]:
    query = select(Municipality).where(scope.municipality_clause())
    return list(await session.scalars(query.order_by(Municipality.name, Municipality.id)))


async def open_campaigns(session: AsyncSession, scope: Scope, today: date) -> list[Campaign]:
    """Open campaigns with at least one school of the scope among their targets."""
    query = (
        select(Campaign)
        .join(CampaignTarget, CampaignTarget.campaign_id == Campaign.id)
        .join(School, School.id == CampaignTarget.school_id)
        .where(Campaign.closed_at.is_(None), Campaign.opens_on <= today, scope.school_clause())
        .distinct()
        .order_by(Campaign.deadline, Campaign.id)
    )
    return list(await session.scalars(query))


async def open_campaign(
    session: AsyncSession, scope: Scope, today: date, campaign_id: int | None
) -> Campaign | None:
    """The campaign if it is open and reaches the scope; None for anything else."""
    for campaign in await open_campaigns(session, scope, today):
        if campaign.id == campaign_id:
            return campaign
    return None


def _reachable(query):
    """People who are not removed and have an active account."""
    active = select(Account.person_id).where(Account.deactivated_at.is_(None))
    return query.where(Person.removed_at.is_(None), Person.id.in_(active))


async def recipients(
    session: AsyncSession, scope: Scope, audience: dict, today: date
) -> list[int] | None:
    """The people the audience reaches, in the sender's scope; None when the audience is
    not the sender's to choose (a forged municipality or campaign, a wrong role)."""
    kind = audience.get("kind")
    if not isinstance(kind, str) or not may_choose(scope, kind):
        return None
    directors = (
        select(Person.id)
        .join(School, School.id == Person.school_id)
        .where(Person.role == Role.DIRECTOR, scope.school_clause())
    )
    if kind == Audience.DIRECTORS:
        query = directors
    elif kind == Audience.MUNICIPALITY:
        municipality_id = audience.get("municipality_id")
        if not isinstance(municipality_id, int) or not await scope.sees_municipality(
            session, municipality_id
        ):
            return None
        query = directors.where(School.municipality_id == municipality_id)
    elif kind == Audience.COORDINATORS:
        query = (
            select(Person.id)
            .join(Municipality, Municipality.id == Person.municipality_id)
            .where(Person.role == Role.MUNICIPAL, scope.municipality_clause())
        )
    else:
        campaign_id = audience.get("campaign_id")
        campaign = await open_campaign(
            session, scope, today, campaign_id if isinstance(campaign_id, int) else None
        )
        if campaign is None:
            return None
        sent = select(Response.school_id).where(
            Response.campaign_id == campaign.id,
            Response.school_id.is_not(None),
            Response.status.in_(list(SENT_STATUSES)),
        )
        targets = select(CampaignTarget.school_id).where(CampaignTarget.campaign_id == campaign.id)
        query = directors.where(School.id.in_(targets), School.id.not_in(sent))
    return list(await session.scalars(_reachable(query).order_by(Person.id).distinct()))


async def recent(session: AsyncSession, person_id: int, limit: int = 5) -> list[Broadcast]:
    query = (
        select(Broadcast)
        .where(Broadcast.person_id == person_id, Broadcast.confirmed_at.is_not(None))
        .order_by(Broadcast.id.desc())
        .limit(limit)
    )
    return list(await session.scalars(query))


@dataclass(frozen=True)
class Unreached:
    name: str
    place: str  # school and municipality, or the municipality
    platform: str


@dataclass
class Report:
    delivered: int = 0
    waiting: int = 0
    failed: int = 0
    unreachable: list[Unreached] = field(default_factory=list)


WAITING = (DeliveryStatus.PENDING, DeliveryStatus.CLAIMED)
FAILED = (DeliveryStatus.FAILED, DeliveryStatus.MISSED, DeliveryStatus.CANCELLED)


async def report(session: AsyncSession, broadcast_id: int) -> Report:
    result = Report()
    counts = await session.execute(
        select(Delivery.status, func.count())
        .where(Delivery.broadcast_id == broadcast_id)
        .group_by(Delivery.status)
    )
    for status, count in counts:
        if status == DeliveryStatus.SENT:
            result.delivered += count
        elif status in WAITING:
            result.waiting += count
        elif status in FAILED:
            result.failed += count
    rows = await session.execute(
        select(Person.full_name, School.name, Municipality.name, Delivery.platform)
        .join(Person, Person.id == Delivery.person_id)
        .outerjoin(School, School.id == Person.school_id)
        .outerjoin(Municipality, Municipality.id == Person.municipality_id)
        .where(
            Delivery.broadcast_id == broadcast_id,
            Delivery.status == DeliveryStatus.UNREACHABLE,
        )
        .order_by(Municipality.name, School.name, Person.id)
    )
    for name, school, municipality, platform in rows:
        place = ", ".join(p for p in (school, municipality) if p)
        result.unreachable.append(Unreached(name or "без имени", place, platform))
    return result
