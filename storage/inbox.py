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

from sqlalchemy import and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from storage.database import dialect_insert
from storage.models import InboxEvent, InboxStatus, OutboxMessage, OutboxStatus, utcnow

KEEP_KEYS = timedelta(hours=48)  # at least 24 h, so a late redelivery is still recognised


@dataclass(frozen=True, slots=True)
class NewEvent:
    platform: str
    key: str
    chat_id: str | None
    payload: dict[str, Any]


ChatKey = tuple[str, str | None]  # (platform, chat id)


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
        dialect_insert(session, InboxEvent)
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


def _chats_filter(model: type[InboxEvent] | type[OutboxMessage], chats: Iterable[ChatKey]) -> Any:
    """Any of ``chats``: one ``IN`` per platform (and ``IS NULL`` for chat-less events)."""
    by_platform: dict[str, list[str]] = {}
    chatless: list[str] = []
    for platform, chat_id in chats:
        if chat_id is None:
            chatless.append(platform)
        else:
            by_platform.setdefault(platform, []).append(chat_id)
    clauses = [
        and_(model.platform == platform, model.chat_id.in_(ids))
        for platform, ids in by_platform.items()
    ]
    clauses += [and_(model.platform == p, model.chat_id.is_(None)) for p in chatless]
    return or_(*clauses)


async def claim_batch(session: AsyncSession, chats: Sequence[ChatKey]) -> list[InboxEvent]:
    """The oldest pending event of each chat, every attempt counted in one statement (the
    caller commits before processing, as :func:`claim_next`). In ``id`` order. A chat whose
    oldest event was tried before is left out: it is claimed on its own (:func:`claim_next`),
    so an event that kills the process never counts an attempt of its batch mates again."""
    if not chats:
        return []
    oldest = (
        select(func.min(InboxEvent.id))
        .where(InboxEvent.status == InboxStatus.PENDING, _chats_filter(InboxEvent, chats))
        .group_by(InboxEvent.platform, InboxEvent.chat_id)
    )
    claimed = await session.scalars(
        update(InboxEvent)
        .where(InboxEvent.id.in_(oldest), InboxEvent.attempts == 0)
        .values(attempts=InboxEvent.attempts + 1)
        .returning(InboxEvent)
        .execution_options(synchronize_session=False)
    )
    return sorted(claimed, key=lambda e: e.id)


@dataclass(frozen=True, slots=True)
class Reply:
    """An outbox row as recorded by :func:`record_replies` (what sending needs)."""

    id: int
    inbox_id: int | None
    platform: str
    chat_id: str
    message: dict[str, Any]
    handed: bool = False


Link = AsyncSession | AsyncConnection


async def record_replies(
    link: Link,
    replies: Sequence[tuple[int | None, str, str, list[dict[str, Any]]]],
    handed: frozenset[int] = frozenset(),
) -> list[Reply]:
    """Outbox rows of several events in one statement: (inbox id, platform, chat id, the
    encoded messages in order) each. Returns them with their ids, in the order given. The
    replies of an event in ``handed`` are recorded as handed to its webhook answer."""
    now = utcnow()
    rows = [
        {
            "inbox_id": inbox_id,
            "platform": platform,
            "chat_id": chat_id,
            "position": position,
            "message": message,
            "status": OutboxStatus.HANDED if inbox_id in handed else OutboxStatus.PENDING,
            "attempts": 0,
            "created_at": now,
            "sent_at": now if inbox_id in handed else None,
        }
        for inbox_id, platform, chat_id, messages in replies
        for position, message in enumerate(messages)
    ]
    if not rows:
        return []
    table = OutboxMessage.__table__
    result = await link.execute(
        insert(table).returning(table.c.id, sort_by_parameter_order=True), rows
    )
    return [
        Reply(
            int(id_),
            row["inbox_id"],
            row["platform"],
            row["chat_id"],
            row["message"],
            row["status"] == OutboxStatus.HANDED,
        )
        for (id_,), row in zip(result.all(), rows, strict=True)
    ]


async def unhand(link: Link, event_ids: Iterable[int]) -> None:
    """Replies handed to webhook answers that were never given (the request gave up):
    pending again, to be sent by Bot API calls."""
    table = OutboxMessage.__table__
    await link.execute(
        update(table)
        .where(table.c.inbox_id.in_(list(event_ids)), table.c.status == OutboxStatus.HANDED)
        .values(status=OutboxStatus.PENDING, sent_at=None)
    )


@dataclass(frozen=True, slots=True)
class HandedReply:
    pending: bool  # the event is not processed yet
    chat_id: str | None = None
    handed: list[dict[str, Any]] | None = None  # its replies handed to a webhook answer


async def handed_reply(session: AsyncSession, platform: str, key: str) -> HandedReply:
    """A redelivered event: still pending, or the replies its webhook answer carried."""
    rows = (
        await session.execute(
            select(InboxEvent.status, OutboxMessage.chat_id, OutboxMessage.message)
            .outerjoin(
                OutboxMessage,
                and_(
                    OutboxMessage.inbox_id == InboxEvent.id,
                    OutboxMessage.status == OutboxStatus.HANDED,
                ),
            )
            .where(InboxEvent.platform == platform, InboxEvent.event_key == key)
            .order_by(OutboxMessage.position, OutboxMessage.id)
        )
    ).all()
    if not rows:
        return HandedReply(pending=False)
    status, chat_id, _message = rows[0]
    handed = [message for _s, _c, message in rows if message is not None]
    return HandedReply(status == InboxStatus.PENDING, chat_id, handed or None)


async def finish_many(link: Link, event_ids: Sequence[int], status: InboxStatus) -> None:
    if event_ids:
        await link.execute(
            update(InboxEvent.__table__)
            .where(InboxEvent.__table__.c.id.in_(event_ids))
            .values(status=status, error_type=None, processed_at=utcnow())
        )


async def note_error(link: Link, event_id: int, error_type: str) -> None:
    """A failed attempt that will be retried: only its error is kept."""
    table = InboxEvent.__table__
    await link.execute(update(table).where(table.c.id == event_id).values(error_type=error_type))


async def pending_replies_of(
    session: AsyncSession, chats: Sequence[ChatKey]
) -> dict[ChatKey, list[OutboxMessage]]:
    """:func:`pending_replies` of several chats in one query."""
    found: dict[ChatKey, list[OutboxMessage]] = {}
    if not chats:
        return found
    rows = await session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.status == OutboxStatus.PENDING, _chats_filter(OutboxMessage, chats))
        .order_by(OutboxMessage.inbox_id, OutboxMessage.position, OutboxMessage.id)
    )
    for row in rows:
        found.setdefault((row.platform, row.chat_id), []).append(row)
    return found


async def mark_replies(link: Link, marks: Sequence[tuple[int, OutboxStatus, str | None]]) -> None:
    """The outcomes of several sends in one (executemany) statement."""
    if not marks:
        return
    table = OutboxMessage.__table__
    now = utcnow()
    await link.execute(
        update(table)
        .where(table.c.id == bindparam("reply_id"))
        .values(
            status=bindparam("new_status", type_=table.c.status.type),
            attempts=table.c.attempts + 1,
            platform_message_id=func.coalesce(
                bindparam("message_id", type_=table.c.platform_message_id.type),
                table.c.platform_message_id,
            ),
            sent_at=func.coalesce(bindparam("sent", type_=table.c.sent_at.type), table.c.sent_at),
        ),
        [
            {
                "reply_id": reply_id,
                "new_status": status,
                "message_id": message_id if status == OutboxStatus.SENT else None,
                "sent": now if status == OutboxStatus.SENT else None,
            }
            for reply_id, status, message_id in marks
        ],
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
