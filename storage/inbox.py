"""Inbox and outbox rows of the durable intake: plain queries, no platform knowledge.

The inbox is unique on (platform, event_key), so a redelivered update is ignored on insert.
Rows are handed out per chat in arrival order (``id``); the outbox keeps the replies of an
event in ``position`` order until they are sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import InboxEvent, InboxStatus, OutboxMessage, OutboxStatus, utcnow

KEEP_KEYS = timedelta(hours=48)  # at least 24 h, so a late redelivery is still recognised


@dataclass(frozen=True, slots=True)
class NewEvent:
    platform: str
    key: str
    chat_id: str | None
    payload: dict[str, Any]


ChatKey = tuple[str, str | None]  # (platform, chat id)


def _insert_ignoring_duplicates(session: AsyncSession):
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return pg_insert(InboxEvent)
    if dialect == "sqlite":
        return sqlite_insert(InboxEvent)
    raise RuntimeError(f"the inbox does not support the {dialect} dialect")


async def insert_events(session: AsyncSession, events: Sequence[NewEvent]) -> int:
    """Insert-or-ignore; returns how many were new. The caller commits."""
    if not events:
        return 0
    now = utcnow()
    rows = [
        {
            "platform": e.platform,
            "event_key": e.key,
            "chat_id": e.chat_id,
            "payload": e.payload,
            "status": InboxStatus.PENDING,
            "attempts": 0,
            "received_at": now,
        }
        for e in events
    ]
    statement = (
        _insert_ignoring_duplicates(session)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["platform", "event_key"])
        .returning(InboxEvent.id)
    )
    return len((await session.execute(statement)).all())


def _chat_filter(model: type[InboxEvent] | type[OutboxMessage], chat: ChatKey) -> list[Any]:
    platform, chat_id = chat
    column = model.chat_id
    return [
        model.platform == platform,
        column.is_(None) if chat_id is None else column == chat_id,
    ]


async def busy_chats(session: AsyncSession, limit: int) -> list[ChatKey]:
    """Chats with pending events or unsent replies, the oldest first."""
    chats, _unsent = await busy_chats_and_unsent(session, limit)
    return chats


async def busy_chats_and_unsent(
    session: AsyncSession, limit: int
) -> tuple[list[ChatKey], set[ChatKey]]:
    """:func:`busy_chats`, and which of them have unsent replies (the others need no look
    into the outbox before their next event)."""
    inbox = (
        select(InboxEvent.platform, InboxEvent.chat_id, func.min(InboxEvent.id).label("first"))
        .where(InboxEvent.status == InboxStatus.PENDING)
        .group_by(InboxEvent.platform, InboxEvent.chat_id)
        .order_by(func.min(InboxEvent.id))
        .limit(limit)
    )
    outbox = (
        select(OutboxMessage.platform, OutboxMessage.chat_id)
        .where(OutboxMessage.status == OutboxStatus.PENDING)
        .group_by(OutboxMessage.platform, OutboxMessage.chat_id)
        .limit(limit)
    )
    chats: dict[ChatKey, None] = {}
    for platform, chat_id in (await session.execute(outbox)).all():
        chats[(platform, chat_id)] = None
    unsent = set(chats)
    for platform, chat_id, _first in (await session.execute(inbox)).all():
        chats[(platform, chat_id)] = None
    return list(chats)[:limit], unsent


async def claim_next(session: AsyncSession, chat: ChatKey) -> InboxEvent | None:
    """The chat's oldest pending event with its attempt counted, in one statement; the
    caller commits (so an event that kills the process is given up on after a few tries)."""
    oldest = (
        select(func.min(InboxEvent.id))
        .where(InboxEvent.status == InboxStatus.PENDING, *_chat_filter(InboxEvent, chat))
        .scalar_subquery()
    )
    return await session.scalar(
        update(InboxEvent)
        .where(InboxEvent.id == oldest)
        .values(attempts=InboxEvent.attempts + 1)
        .returning(InboxEvent)
        .execution_options(synchronize_session=False)
    )


async def next_event(session: AsyncSession, chat: ChatKey) -> InboxEvent | None:
    return await session.scalar(
        select(InboxEvent)
        .where(InboxEvent.status == InboxStatus.PENDING, *_chat_filter(InboxEvent, chat))
        .order_by(InboxEvent.id)
        .limit(1)
    )


async def start_attempt(session: AsyncSession, event_id: int) -> int:
    """Count an attempt before processing, so an event that kills the process is given up
    after a few restarts instead of looping forever. Returns the attempt number."""
    attempts = await session.scalar(
        update(InboxEvent)
        .where(InboxEvent.id == event_id)
        .values(attempts=InboxEvent.attempts + 1)
        .returning(InboxEvent.attempts)
    )
    return int(attempts or 0)


async def finish(
    session: AsyncSession, event_id: int, status: InboxStatus, error_type: str | None = None
) -> None:
    await session.execute(
        update(InboxEvent)
        .where(InboxEvent.id == event_id)
        .values(status=status, error_type=error_type, processed_at=utcnow())
    )


def add_replies(
    session: AsyncSession,
    event: InboxEvent | None,
    platform: str,
    chat_id: str,
    messages: Iterable[dict[str, Any]],
) -> list[OutboxMessage]:
    rows = [
        OutboxMessage(
            inbox_id=event.id if event is not None else None,
            platform=platform,
            chat_id=chat_id,
            position=position,
            message=message,
            status=OutboxStatus.PENDING,
            attempts=0,
        )
        for position, message in enumerate(messages)
    ]
    session.add_all(rows)
    return rows


async def pending_replies(session: AsyncSession, chat: ChatKey) -> list[OutboxMessage]:
    return list(
        await session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.status == OutboxStatus.PENDING, *_chat_filter(OutboxMessage, chat))
            .order_by(OutboxMessage.inbox_id, OutboxMessage.position, OutboxMessage.id)
        )
    )


async def mark_reply(
    session: AsyncSession,
    reply_id: int,
    status: OutboxStatus,
    message_id: str | None = None,
) -> None:
    values: dict[str, Any] = {"status": status, "attempts": OutboxMessage.attempts + 1}
    if status == OutboxStatus.SENT:
        values |= {"platform_message_id": message_id, "sent_at": utcnow()}
    await session.execute(update(OutboxMessage).where(OutboxMessage.id == reply_id).values(values))


async def prune(session: AsyncSession, now: datetime | None = None) -> int:
    """Delete finished events older than :data:`KEEP_KEYS` whose replies are all settled."""
    cutoff = (now or utcnow()) - KEEP_KEYS
    unsent = select(OutboxMessage.inbox_id).where(
        OutboxMessage.status == OutboxStatus.PENDING, OutboxMessage.inbox_id.is_not(None)
    )
    old = select(InboxEvent.id).where(
        InboxEvent.status.in_([InboxStatus.DONE, InboxStatus.FAILED]),
        InboxEvent.received_at < cutoff,
        InboxEvent.id.not_in(unsent),
    )
    await session.execute(delete(OutboxMessage).where(OutboxMessage.inbox_id.in_(old)))
    result = await session.execute(delete(InboxEvent).where(InboxEvent.id.in_(old)))
    return int(result.rowcount or 0)


async def backlog(session: AsyncSession) -> dict[str, int]:
    pending = await session.scalar(
        select(func.count()).select_from(InboxEvent).where(InboxEvent.status == InboxStatus.PENDING)
    )
    unsent = await session.scalar(
        select(func.count())
        .select_from(OutboxMessage)
        .where(OutboxMessage.status == OutboxStatus.PENDING)
    )
    failed = await session.scalar(
        select(func.count()).select_from(InboxEvent).where(InboxEvent.status == InboxStatus.FAILED)
    )
    return {"pending": int(pending or 0), "unsent": int(unsent or 0), "failed": int(failed or 0)}


async def last_event_per_platform(session: AsyncSession) -> dict[str, datetime]:
    rows = await session.execute(
        select(InboxEvent.platform, func.max(InboxEvent.received_at)).group_by(InboxEvent.platform)
    )
    return {platform: at for platform, at in rows.all()}
