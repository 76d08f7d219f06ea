"""The processor's events that go alone, each in its own transaction: retries (one after
another, so only the one in flight has its attempt counted if the process dies again) and
files (downloaded inside the transaction); and giving up on an event."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import metrics
from bot.channel import Channel, Parsed, RawEvent
from bot.handover import Answer, Handover, Waiter
from bot.sending import Mark
from handlers.types import Incoming, Outgoing, OutText, Platform
from handlers.wire import encode
from storage import inbox
from storage.models import InboxEvent, InboxStatus, OutboxMessage, OutboxStatus, utcnow

log = logging.getLogger("bot.processor")

ERROR_TEXT = "Произошла ошибка. Попробуйте ещё раз чуть позже или напишите /resume."

Handle = Callable[[AsyncSession, Incoming], Awaitable[list[Outgoing]]]


def _raw(event: InboxEvent) -> RawEvent:
    return RawEvent(Platform(event.platform), event.event_key, event.chat_id, event.payload)


def _error_type(exc: BaseException) -> str:
    return type(exc).__name__[:200]


class LoneEvents:
    """A mixin of :class:`bot.processor.Processor`."""

    sessions: async_sessionmaker
    channels: dict[str, Channel]
    handle: Handle
    max_attempts: int
    retry_delay: float
    _stopping: bool
    _not_before: dict[inbox.ChatKey, float]

    def _write(self) -> contextlib.AbstractAsyncContextManager[None]:
        raise NotImplementedError

    async def _flush(self, chat: inbox.ChatKey, marks: list[Mark]) -> None:
        raise NotImplementedError

    async def _send_rows(self, chat: inbox.ChatKey, replies: Sequence, marks: list[Mark]) -> None:
        raise NotImplementedError

    async def _commit_marks(self, marks: list[Mark]) -> None:
        raise NotImplementedError

    async def _mark_unreachable(self, platform: str, chat_id: str) -> None:
        raise NotImplementedError

    def _hand(
        self, event: InboxEvent, channel: Channel, chat_id: str, replies: Sequence[Outgoing]
    ) -> tuple[Waiter, Answer] | None:
        raise NotImplementedError

    async def _hand_over(self, handed: Iterable[tuple[int, tuple[Waiter, Answer]]]) -> set[int]:
        raise NotImplementedError

    async def _retry_alone(self, chats: Sequence[inbox.ChatKey]) -> None:
        """Events tried before (failed, or their process died), one after another: only the
        one in flight has its attempt counted if the process dies again."""
        for chat in chats:
            if self._stopping:
                return
            async with self._write(), self.sessions() as session:
                event = await inbox.claim_next(session, chat)
                await session.commit()
            if event is not None:
                await self._serve_lone(event, None)

    async def _serve_lone(self, event: InboxEvent, parsed: Parsed | None) -> None:
        """An event (already claimed) in its own transaction, then its chat's replies."""
        chat = (event.platform, event.chat_id)
        marks: list[Mark] = []
        try:
            replies = await self._process(event, parsed)
            if replies is None:
                await self._flush(chat, marks)
            else:
                await self._send_rows(chat, replies, marks)
        except Exception:
            log.exception("Чат %s:%s: сбой обработки, повторю позже", *chat)
            await asyncio.sleep(self.retry_delay)
        finally:
            try:
                await self._commit_marks(marks)
            except Exception:
                log.exception("Чат %s:%s: не удалось отметить отправленные ответы", *chat)

    # --- one event -------------------------------------------------------------------------

    async def _process(
        self, event: InboxEvent, parsed: Parsed | None = None
    ) -> list[OutboxMessage] | None:
        """One event whose attempt is already counted (committed), in its own transaction
        (``parsed``: already parsed). Returns the outbox rows it recorded, to be sent now;
        None when the chat's outbox must be read instead."""
        attempt = event.attempts
        channel = self.channels.get(event.platform)
        if channel is None:
            log.error("Событие %s: платформа %s не запущена", event.id, event.platform)
            await self._give_up(event, "NoChannel", apologize=False)
            return None
        if attempt > self.max_attempts:
            log.error("Событие %s: превышено число попыток, пропускаю", event.id)
            await self._give_up(event, event.error_type or "TooManyAttempts")
            return None
        stage = "parse"
        try:
            if parsed is None:
                parsed = await channel.parse(_raw(event))
            stage = "core"
            async with self.sessions() as session:
                replies: list[Outgoing] = []
                chat_id = event.chat_id
                if parsed.incoming is not None:
                    replies = await self.handle(session, parsed.incoming)
                    chat_id = chat_id or parsed.incoming.user.chat_id
                elif parsed.reply is not None:
                    replies = [OutText(parsed.reply)]
                check = getattr(channel, "check", None)
                for reply in replies:
                    if check is not None:
                        check(reply)  # refuse what the platform would reject, before commit
                rows: list[OutboxMessage] = []
                handed = None
                if replies and chat_id is not None:
                    rows = inbox.add_replies(
                        session, event, event.platform, chat_id, [encode(r) for r in replies]
                    )
                    handed = self._hand(event, channel, chat_id, replies)
                    for row in rows if handed is not None else []:
                        row.status, row.sent_at = OutboxStatus.HANDED, utcnow()
                await inbox.finish(session, event.id, InboxStatus.DONE)
                try:
                    await session.commit()
                except BaseException:
                    if handed is not None:
                        Handover.give(handed[0], None)
                    raise
            if handed is not None and not await self._hand_over([(event.id, handed)]):
                rows = []  # the webhook answer carries them
                metrics.handed(event.platform)
            metrics.processed(event.platform)
            if parsed.unreachable and event.chat_id is not None:
                await self._mark_unreachable(event.platform, event.chat_id)
            return rows
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception(
                "Событие %s (%s, чат %s): ошибка на шаге %s, попытка %s из %s",
                event.id,
                event.platform,
                event.chat_id,
                stage,
                attempt,
                self.max_attempts,
            )
            if stage == "parse" and isinstance(exc, ValueError):
                # The library cannot read this update (pydantic's ValidationError is a
                # ValueError): it never will, so it is failed at once, not retried.
                await self._give_up(event, _error_type(exc))
                return None
            await self._failed_attempt(event, attempt, exc)
            return None

    async def _failed_attempt(self, event: InboxEvent, attempt: int, exc: Exception) -> None:
        if attempt >= self.max_attempts:
            await self._give_up(event, _error_type(exc))
            return
        async with self._write(), self.sessions() as session:
            await inbox.note_error(session, event.id, _error_type(exc))
            await session.commit()
        # retried by a later batch (alone), not before the pause
        until = asyncio.get_running_loop().time() + self.retry_delay
        self._not_before[(event.platform, event.chat_id)] = until

    async def _give_up(self, event: InboxEvent, error_type: str, *, apologize: bool = True) -> None:
        async with self._write(), self.sessions() as session:
            await inbox.finish(session, event.id, InboxStatus.FAILED, error_type)
            if apologize and event.chat_id is not None:
                inbox.add_replies(
                    session, event, event.platform, event.chat_id, [encode(OutText(ERROR_TEXT))]
                )
            await session.commit()
