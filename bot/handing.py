"""The processor's half of webhook answers (bot/handover.py): which chats it serves now, and
the replies it hands to a waiting webhook request instead of sending them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence

from sqlalchemy.ext.asyncio import async_sessionmaker

from bot.channel import Channel
from bot.handover import Answer, Handover, Waiter
from handlers.types import Outgoing, Platform
from storage import inbox
from storage.models import InboxEvent


class HandingOver:
    """A mixin of :class:`bot.processor.Processor` (``sessions``, ``_write``)."""

    sessions: async_sessionmaker
    handover: Handover | None
    foreign_grace: float
    _foreign_seen: dict[inbox.ChatKey, float]

    def _write(self) -> contextlib.AbstractAsyncContextManager[None]:
        raise NotImplementedError

    def _own_or_left(self, chats: list[inbox.ChatKey], now: float) -> list[inbox.ChatKey]:
        """The chats whose webhook request waits here (only this process can answer it),
        the other platforms' chats, and the other Telegram chats once they have waited
        ``foreign_grace`` (their worker is busy, or died)."""
        assert self.handover is not None
        own = self.handover.chats()
        telegram = str(Platform.TELEGRAM)
        seen = {c: self._foreign_seen.get(c, now) for c in chats if c[0] == telegram}
        ready = [
            c for c in chats if c in own or c not in seen or now - seen[c] >= self.foreign_grace
        ]
        taken = set(ready)
        self._foreign_seen = {c: t for c, t in seen.items() if c not in taken}
        return ready

    def _hand(
        self, event: InboxEvent, channel: Channel, chat_id: str, replies: Sequence[Outgoing]
    ) -> tuple[Waiter, Answer] | None:
        """The webhook answer carrying the event's replies, if its request waits here (the
        caller records them as handed, in the event's transaction)."""
        build = getattr(channel, "webhook_answer", None)
        handover = self.handover
        if handover is None or build is None or not replies:
            return None
        if not handover.waiting(event.platform, event.event_key):
            return None
        answer = build(chat_id, replies)
        if answer is None:
            return None
        waiter = handover.take(event.platform, event.event_key)
        return None if waiter is None else (waiter, answer)

    async def _hand_over(self, handed: Iterable[tuple[int, tuple[Waiter, Answer]]]) -> set[int]:
        """After the commit: each handed reply goes out with its webhook answer. Returns
        the events whose request gave up meanwhile; their rows are pending again (committed)
        and the caller sends them."""
        gone = {
            event_id for event_id, (waiter, answer) in handed if not Handover.give(waiter, answer)
        }
        if gone:
            async with self._write(), self.sessions() as session:
                await inbox.unhand(session, gone)
                await session.commit()
        return gone
