"""What the bad-input property tests compare before and after an event: the rows a reply
must not write, where each conversation stands, and whether the intake saw a crash."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import func, select

from bot.processor import ERROR_TEXT
from handlers.types import OutFile, OutText
from handlers.wire import decode
from storage.models import (
    Account,
    Answer,
    AnswerReview,
    Attachment,
    AuditLog,
    ConversationState,
    Delivery,
    InboxEvent,
    InboxStatus,
    Invite,
    OutboxMessage,
    Person,
    Response,
    ResponseEvent,
)

WATCHED = (
    Answer,
    AnswerReview,
    AuditLog,
    Delivery,
    Attachment,
    Response,
    ResponseEvent,
    Person,
    Account,
    Invite,
)
CYRILLIC = re.compile(r"[а-яё]", re.IGNORECASE)


@dataclass(frozen=True)
class Snapshot:
    counts: dict[str, int]
    positions: dict[int, tuple[str, int | None, str | None, int]]
    outbox: int


async def snapshot(sessions) -> Snapshot:
    async with sessions() as session:
        counts = {
            m.__tablename__: await session.scalar(select(func.count()).select_from(m))
            for m in WATCHED
        }
        positions = {
            s.account_id: (s.mode, s.response_id, s.question_id, s.row)
            for s in await session.scalars(select(ConversationState))
        }
        outbox = await session.scalar(select(func.max(OutboxMessage.id))) or 0
    return Snapshot(counts, positions, outbox)


async def replies_since(sessions, before: Snapshot) -> list[str]:
    """Texts the bot recorded for sending since ``before`` (every platform)."""
    async with sessions() as session:
        rows = await session.scalars(
            select(OutboxMessage).where(OutboxMessage.id > before.outbox).order_by(OutboxMessage.id)
        )
        out = [decode(r.message) for r in rows]
    # a file without a caption comes right after the text that announces it
    return [m.text if isinstance(m, OutText) else m.caption for m in out if not _bare_file(m)]


def _bare_file(message) -> bool:
    return isinstance(message, OutFile) and not message.caption


async def assert_no_crash(sessions, before: Snapshot) -> list[str]:
    """Every inbox event done, no apology, only Russian replies. Returns the reply texts."""
    async with sessions() as session:
        broken = list(
            await session.execute(
                select(InboxEvent.event_key, InboxEvent.status, InboxEvent.error_type).where(
                    (InboxEvent.status != InboxStatus.DONE) | InboxEvent.error_type.is_not(None)
                )
            )
        )
    assert not broken, broken
    texts = await replies_since(sessions, before)
    assert ERROR_TEXT not in texts, texts
    for text in texts:
        assert CYRILLIC.search(text), texts
    return texts


async def assert_harmless(sessions, before: Snapshot, *, moves: bool = False) -> list[str]:
    """No crash (see :func:`assert_no_crash`) and nothing written; the conversation stays
    where it was unless ``moves``. Returns the reply texts."""
    texts = await assert_no_crash(sessions, before)
    after = await snapshot(sessions)
    assert after.counts == before.counts, f"rows written: {before.counts} -> {after.counts}"
    if not moves:
        assert after.positions == before.positions, (before.positions, after.positions)
    return texts
