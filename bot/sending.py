"""Sending the outbox of the durable intake: each chat's recorded replies in order, with the
platform's retry-after honoured; the outcomes (sent marks) are committed by the caller."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from bot.channel import Channel
from handlers.types import RecipientBlocked, RetryLater, TokenRejected
from handlers.wire import decode
from storage import inbox
from storage.models import Account, OutboxMessage, OutboxStatus, utcnow

log = logging.getLogger("bot.processor")

MAX_SEND_RETRIES = 3
MAX_RETRY_AFTER_S = 60.0
MARK_EVERY_S = 0.1  # while a batch's replies go out, their sent marks are committed this often

Mark = tuple[int, OutboxStatus, str | None]  # outbox id, outcome, platform message id


class Sending:
    """The processor's sending half (a mixin: ``sessions``, ``channels`` and ``_write``)."""

    sessions: async_sessionmaker
    channels: dict[str, Channel]

    def _write(self) -> contextlib.AbstractAsyncContextManager[None]:
        raise NotImplementedError

    async def _commit_marks(
        self, marks: list[Mark], connection: AsyncConnection | None = None
    ) -> None:
        """Commit the marks so far; the ones other chats of the batch add meanwhile stay."""
        if not marks:
            return
        taken = list(marks)
        async with self._write(), self._session(connection) as session:
            await inbox.mark_replies(session, taken)
            await session.commit()
        written = set(taken)
        marks[:] = [m for m in marks if m not in written]

    # --- sending -----------------------------------------------------------------------------

    async def _flush(self, chat: inbox.ChatKey, marks: list[Mark]) -> None:
        """Send the chat's recorded replies in order (see :meth:`_send_rows`)."""
        channel = self.channels.get(chat[0])
        if channel is None:
            return
        async with self.sessions() as session:
            replies = await inbox.pending_replies(session, chat)
        await self._send_rows(chat, replies, marks)

    def _session(self, connection: AsyncConnection | None) -> AsyncSession:
        return self.sessions() if connection is None else self.sessions(bind=connection)

    async def _flush_many(
        self,
        chats: Sequence[inbox.ChatKey],
        marks: list[Mark],
        connection: AsyncConnection | None = None,
    ) -> None:
        """:meth:`_flush` of several chats: one query, then each chat's replies in order."""
        async with self._session(connection) as session:
            found = await inbox.pending_replies_of(session, chats)
        await self._send_chats(found, marks, connection)

    async def _send_chats(
        self,
        by_chat: Mapping[inbox.ChatKey, Sequence[OutboxMessage | inbox.Reply]],
        marks: list[Mark],
        connection: AsyncConnection | None = None,
    ) -> None:
        """Each chat's replies in order, the chats at once. While the slowest chat still
        sends, the marks so far are committed every :data:`MARK_EVERY_S` (on ``connection``,
        idle meanwhile): a process killed then leaves only the sends in flight unmarked,
        which another worker would send again."""
        if not by_chat:
            return
        sending = asyncio.ensure_future(
            asyncio.gather(*(self._send_rows(chat, rows, marks) for chat, rows in by_chat.items()))
        )
        try:
            while not (await asyncio.wait({sending}, timeout=MARK_EVERY_S))[0]:
                await self._commit_marks(marks, connection)
        except BaseException:
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)
            raise
        sending.result()

    async def _send_rows(
        self, chat: inbox.ChatKey, replies: Sequence[OutboxMessage | inbox.Reply], marks: list[Mark]
    ) -> None:
        """Send recorded replies in order; each outcome goes to ``marks``, which the caller
        commits right after."""
        channel = self.channels.get(chat[0])
        if channel is None:
            return
        for reply in replies:
            status, message_id = await self._send(channel, reply.chat_id, reply.id, reply.message)
            if status is None:  # the token was revoked: these stay for the next process
                return
            marks.append((reply.id, status, message_id))
            if status == OutboxStatus.BLOCKED:
                await self._commit_marks(marks)
                await self._mark_unreachable(reply.platform, reply.chat_id)

    async def _mark_unreachable(self, platform: str, chat_id: str) -> None:
        """Coordinators see who blocked the bot; a failure here must not resend anything."""
        try:
            async with self.sessions() as session:
                await session.execute(
                    update(Account)
                    .where(
                        Account.platform == platform,
                        Account.chat_id == chat_id,
                        Account.unreachable_since.is_(None),
                    )
                    .values(unreachable_since=utcnow())
                )
                await session.commit()
        except Exception:
            log.exception("Не удалось отметить чат %s как недоступный", chat_id)

    async def _send(
        self, channel: Channel, chat_id: str, reply_id: int, data: Mapping[str, Any]
    ) -> tuple[OutboxStatus | None, str | None]:
        """The outcome to mark; None (no mark) when the platform refused the token."""
        for attempt in range(MAX_SEND_RETRIES + 1):
            try:
                message = decode(data)
                message_id = await channel.send(chat_id, message, dedup=str(reply_id))
                return OutboxStatus.SENT, message_id
            except RetryLater as wait:
                if attempt == MAX_SEND_RETRIES:
                    break
                await asyncio.sleep(min(wait.seconds, MAX_RETRY_AFTER_S))
            except TokenRejected:
                log.error(
                    "Платформа %s не приняла токен бота; ответ %s останется неотправленным",
                    channel.platform,
                    reply_id,
                )
                return None, None
            except RecipientBlocked:
                log.warning("Чат %s заблокировал бота; ответ не доставлен", chat_id)
                return OutboxStatus.BLOCKED, None
            except Exception:
                log.exception("Не удалось отправить ответ %s в чат %s", reply_id, chat_id)
                return OutboxStatus.FAILED, None
        log.warning("Ответ %s в чат %s: платформа просит подождать, сдаюсь", reply_id, chat_id)
        return OutboxStatus.FAILED, None
