"""Messages from one person's action to another person: «анкета возвращена», «школа
отправила анкету», a broadcast. Each is a ``deliveries`` row with its text in ``message``
and a unique key, so it is sent once, after the commit of the event that caused it, by the
same rate-limited sender as reminders (scheduler/reminders.py), to the person's preferred
account, with a fall back to their other accounts when one is blocked."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from handlers.types import OutText
from handlers.wire import encode
from scheduler.recipients import pick_preferred
from scheduler.timing import as_utc
from storage.database import dialect_insert
from storage.models import Account, Delivery, DeliveryKind, DeliveryStatus, Person

# a notice nobody could send for this long (the bot was down) is dropped as missed
NOTICE_WINDOW = timedelta(days=3)
MESSAGE_KINDS = (DeliveryKind.NOTICE, DeliveryKind.DIGEST, DeliveryKind.BROADCAST)


async def preferred_account(session: AsyncSession, person_id: int) -> Account | None:
    """The account that gets the person's messages: reachable on the chosen platform, else
    reachable and used last, else (all blocked) the one used last. None: no active account,
    or the person was removed."""
    person = await session.get(Person, person_id)
    if person is None or person.removed_at is not None:
        return None
    accounts = list(
        await session.scalars(
            select(Account).where(Account.person_id == person_id, Account.deactivated_at.is_(None))
        )
    )
    if not accounts:
        return None
    return pick_preferred(
        accounts,
        unreachable=lambda a: a.unreachable_since is not None,
        chosen=lambda a: a.platform == person.notify_platform,
        recency=lambda a: (as_utc(a.last_active_at or a.created_at), a.id),
    )


async def notify(
    session: AsyncSession,
    person_id: int,
    message: OutText,
    *,
    key: str,
    now: datetime,
    kind: str = DeliveryKind.NOTICE,
    broadcast_id: int | None = None,
    campaign_id: int | None = None,
    window: timedelta = NOTICE_WINDOW,
) -> bool:
    """Queue one message to a person; False when the key is taken (already queued) or the
    person has no account to reach."""
    account = await preferred_account(session, person_id)
    if account is None:
        return False
    row = {
        "key": key[:200],
        "kind": kind,
        "campaign_id": campaign_id,
        "account_id": account.id,
        "platform": account.platform,
        "offset_days": 0,
        "due_on": now.date(),
        "due_at": now,
        "send_until": now + window,
        "status": DeliveryStatus.PENDING,
        "attempts": 0,
        "created_at": now,
        "message": encode(message),
        "broadcast_id": broadcast_id,
        "person_id": person_id,
    }
    result = await session.execute(
        dialect_insert(session, Delivery)
        .values(row)
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(Delivery.id)
    )
    return result.scalar() is not None


async def notify_all(
    session: AsyncSession,
    person_ids: Iterable[int],
    message: OutText,
    *,
    key: str,
    now: datetime,
    kind: str = DeliveryKind.NOTICE,
    broadcast_id: int | None = None,
) -> int:
    """Queue the message to every person once (``key`` + ``:p<person>``); returns how many
    were queued."""
    queued = 0
    for person_id in dict.fromkeys(person_ids):
        queued += await notify(
            session,
            person_id,
            message,
            key=f"{key}:p{person_id}",
            now=now,
            kind=kind,
            broadcast_id=broadcast_id,
        )
    return queued
