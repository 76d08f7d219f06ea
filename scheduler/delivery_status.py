"""What coordinators and admins are told about deliveries: who blocked the bot, and the
status counts with the latest problems."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Account, Delivery, DeliveryStatus, Municipality, Person, Role, School


async def unreachable_below(
    session: AsyncSession, role: str, municipality_id: int | None, region_id: int | None
) -> list[str]:
    """People a coordinator oversees whose every account blocked the bot."""
    if role == Role.MUNICIPAL and municipality_id is not None:
        query = (
            select(Person.id, School.name, Person.full_name)
            .join(School, School.id == Person.school_id)
            .where(School.municipality_id == municipality_id, Person.role == Role.DIRECTOR)
        )
    elif role == Role.REGIONAL:
        query = (
            select(Person.id, Municipality.name, Person.full_name)
            .join(Municipality, Municipality.id == Person.municipality_id)
            .where(Person.role == Role.MUNICIPAL)
        )
        if region_id is not None:
            query = query.where(Municipality.region_id == region_id)
    else:
        return []
    people = {pid: (place, name) for pid, place, name in await session.execute(query)}
    if not people:
        return []
    reachable: dict[int, bool] = {}
    for pid, since in await session.execute(
        select(Account.person_id, Account.unreachable_since).where(
            Account.person_id.in_(list(people))
        )
    ):
        reachable[pid] = reachable.get(pid, False) or since is None
    out = []
    for pid, ok in reachable.items():
        if not ok:
            place, name = people[pid]
            out.append(f"{place} ({name})" if name else place)
    return sorted(out)


@dataclass
class DeliveryReport:
    counts: dict[str, int]
    problems: list[tuple[Delivery, str]]  # missed / failed / unreachable with the chat


async def delivery_report(session: AsyncSession, limit: int = 20) -> DeliveryReport:
    query = select(Delivery.status, func.count()).group_by(Delivery.status)
    counts = {status: count for status, count in await session.execute(query)}
    problems = []
    query = (
        select(Delivery, Account.chat_id)
        .join(Account, Account.id == Delivery.account_id)
        .where(
            Delivery.status.in_(
                [DeliveryStatus.MISSED, DeliveryStatus.FAILED, DeliveryStatus.UNREACHABLE]
            )
        )
        .order_by(Delivery.due_at.desc(), Delivery.id.desc())
        .limit(limit)
    )
    for delivery, chat in await session.execute(query):
        problems.append((delivery, chat))
    return DeliveryReport(counts, problems)
