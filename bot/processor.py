"""The processor of the durable intake: inbox rows in, core effects and outbox rows out.

For each chat, one event at a time in arrival order; chats run concurrently. One event:

1. take the chat's oldest pending event and count the attempt, in one statement (committed),
   so an event that kills the process is given up on;
2. ``channel.parse`` (may call the platform: it is harmless twice);
3. in ONE transaction: the core's effects, the outbox rows and the inbox done-mark;
4. after the commit, send the outbox rows in order (the rows just recorded are sent as they
   are; the outbox is read only for leftovers and apologies); the sent marks are committed
   with step 1 of the chat's next event, or on their own when there is none.

A restart resumes both halves: pending inbox rows are processed, recorded-but-unsent replies
are sent (never generated again). An event whose parse or core raises is retried a few times,
then marked failed and the user gets :data:`ERROR_TEXT` once (recorded in the outbox with
the failure mark). On PostgreSQL a chat is claimed with a session-level advisory lock, so
several worker processes never serve one chat at once; on SQLite there is one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot import metrics
from bot.channel import Channel, RawEvent
from handlers.types import (
    Incoming,
    Outgoing,
    OutText,
    Platform,
    RecipientBlocked,
    RetryLater,
)
from handlers.wire import decode, encode
from storage import inbox
from storage.models import Account, InboxEvent, InboxStatus, OutboxMessage, OutboxStatus, utcnow

log = logging.getLogger(__name__)

ERROR_TEXT = "Произошла ошибка. Попробуйте ещё раз чуть позже или напишите /resume."

MAX_ATTEMPTS = 3
MAX_SEND_RETRIES = 3
MAX_RETRY_AFTER_S = 60.0
HELD_ELSEWHERE_RETRY_S = 0.5

Handle = Callable[[AsyncSession, Incoming], Awaitable[list[Outgoing]]]
Mark = tuple[int, OutboxStatus, str | None]  # outbox id, outcome, platform message id


async def _write_marks(session: AsyncSession, marks: Sequence[Mark]) -> None:
    for reply_id, status, message_id in marks:
        await inbox.mark_reply(session, reply_id, status, message_id)


def core_handler(core: Any) -> Handle:
    """``core.handle_in(session, event)`` runs inside our transaction; a core with only
    ``handle(event)`` (test doubles) commits on its own."""
    handle_in = getattr(core, "handle_in", None)
    if handle_in is not None:
        return handle_in

    async def handle(_session: AsyncSession, event: Incoming) -> list[Outgoing]:
        return await core.handle(event)

    return handle


def _lock_key(chat: inbox.ChatKey) -> int:
    digest = hashlib.sha256(f"chat:{chat[0]}:{chat[1]}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _error_type(exc: BaseException) -> str:
    return type(exc).__name__[:200]


class Processor:
    def __init__(
        self,
        sessions: async_sessionmaker,
        channels: Mapping[str, Channel],
        core: Any,
        *,
        concurrency: int = 4,  # on PostgreSQL each busy chat holds two pooled connections
        max_attempts: int = MAX_ATTEMPTS,
        retry_delay: float = 0.5,
        idle_interval: float = 1.0,
    ) -> None:
        self.sessions = sessions
        self.channels = dict(channels)
        self.handle = core_handler(core)
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.retry_delay = retry_delay
        self.idle_interval = idle_interval
        engine = sessions.kw.get("bind")
        self._engine: AsyncEngine | None = (
            engine
            if isinstance(engine, AsyncEngine) and engine.dialect.name == "postgresql"
            else None
        )
        self._active: set[inbox.ChatKey] = set()
        # chats another worker holds: not asked for again until then (no busy loop)
        self._held_elsewhere: dict[inbox.ChatKey, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._stopping = False

    # --- intake ------------------------------------------------------------------------

    async def accept(self, events: Sequence[RawEvent]) -> int:
        """Store events (insert-or-ignore) and commit; only then may the caller confirm
        them to the platform. Returns how many were new."""
        rows = [inbox.NewEvent(str(e.platform), e.key, e.chat_id, e.payload) for e in events]
        async with self.sessions() as session:
            new = await inbox.insert_events(session, rows)
            await session.commit()
        if new:
            self._wake.set()
        return new

    sink = accept  # the :data:`bot.channel.Sink` handed to ``poll`` and ``webhook``

    # --- loop ----------------------------------------------------------------------------

    async def drain(self) -> None:
        """Process until nothing is pending and nothing is running (tests, shutdown)."""
        while True:
            spawned = await self._spawn()
            if not self._tasks:
                if not spawned:
                    return
                continue
            await asyncio.wait(set(self._tasks), return_when=asyncio.FIRST_COMPLETED)

    async def run(self) -> None:
        """Serve until :meth:`stop`; wakes on new events or every ``idle_interval``."""
        while not self._stopping:
            self._wake.clear()
            try:
                await self._spawn()
            except Exception:
                log.exception("Не удалось прочитать очередь входящих; повторю")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.idle_interval)

    async def stop(self, timeout: float = 10.0) -> None:
        """Take no new events; let running ones finish and send their replies (bounded)."""
        self._stopping = True
        self._wake.set()
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                log.warning("Остановка: %s чатов не успели завершиться", len(pending))
                await asyncio.gather(*pending, return_exceptions=True)

    async def _spawn(self) -> int:
        if self._stopping:
            return 0
        free = self.concurrency - len(self._tasks)
        if free <= 0:
            return 0
        async with self.sessions() as session:
            chats, unsent = await inbox.busy_chats_and_unsent(session, self.concurrency * 4)
        spawned = 0
        now = asyncio.get_running_loop().time()
        for chat in chats:
            if spawned >= free:
                break
            if chat in self._active or self._held_elsewhere.get(chat, 0.0) > now:
                continue
            self._held_elsewhere.pop(chat, None)
            self._active.add(chat)
            task = asyncio.create_task(
                self._serve_chat(chat, chat in unsent), name=f"chat {chat[0]}:{chat[1]}"
            )
            self._tasks.add(task)
            task.add_done_callback(self._done)
            spawned += 1
        return spawned

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._wake.set()

    @contextlib.asynccontextmanager
    async def _claim(self, chat: inbox.ChatKey) -> AsyncIterator[bool]:
        """Across processes on PostgreSQL: an advisory lock per chat, held while serving."""
        if self._engine is None:
            yield True
            return
        key = _lock_key(chat)
        async with self._engine.connect() as connection:
            claimed = bool(await connection.scalar(select(func.pg_try_advisory_lock(key))))
            await connection.commit()
            try:
                yield claimed
            finally:
                if claimed:
                    await connection.scalar(select(func.pg_advisory_unlock(key)))
                    await connection.commit()

    async def _serve_chat(self, chat: inbox.ChatKey, unsent: bool = True) -> None:
        # sent marks are committed together with the claim of the chat's next event: one
        # write transaction instead of two (SQLite has one writer at a time)
        marks: list[Mark] = []
        try:
            async with self._claim(chat) as claimed:
                if not claimed:
                    self._held_elsewhere[chat] = (
                        asyncio.get_running_loop().time() + HELD_ELSEWHERE_RETRY_S
                    )
                    return
                if unsent or self._engine is not None:  # another worker may have left some
                    await self._flush(chat, marks)
                while not self._stopping:
                    async with self.sessions() as session:
                        await _write_marks(session, marks)
                        event = await inbox.claim_next(session, chat)
                        await session.commit()
                    marks.clear()
                    if event is None:
                        break
                    replies = await self._process(event)
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
            finally:
                self._active.discard(chat)

    async def _commit_marks(self, marks: list[Mark]) -> None:
        if not marks:
            return
        async with self.sessions() as session:
            await _write_marks(session, marks)
            await session.commit()
        marks.clear()

    # --- one event -------------------------------------------------------------------------

    async def _process(self, event: InboxEvent) -> list[OutboxMessage] | None:
        """One event whose attempt is already counted (committed). Returns the outbox rows
        it recorded, to be sent now; None when the chat's outbox must be read instead."""
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
        raw = RawEvent(Platform(event.platform), event.event_key, event.chat_id, event.payload)
        stage = "parse"
        try:
            parsed = await channel.parse(raw)
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
                if replies and chat_id is not None:
                    rows = inbox.add_replies(
                        session, event, event.platform, chat_id, [encode(r) for r in replies]
                    )
                await inbox.finish(session, event.id, InboxStatus.DONE)
                await session.commit()
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
        async with self.sessions() as session:
            row = await session.get(InboxEvent, event.id)
            if row is not None:
                row.error_type = _error_type(exc)
            await session.commit()
        await asyncio.sleep(self.retry_delay)

    async def _give_up(self, event: InboxEvent, error_type: str, *, apologize: bool = True) -> None:
        async with self.sessions() as session:
            await inbox.finish(session, event.id, InboxStatus.FAILED, error_type)
            if apologize and event.chat_id is not None:
                inbox.add_replies(
                    session, event, event.platform, event.chat_id, [encode(OutText(ERROR_TEXT))]
                )
            await session.commit()

    # --- sending -----------------------------------------------------------------------------

    async def _flush(self, chat: inbox.ChatKey, marks: list[Mark]) -> None:
        """Send the chat's recorded replies in order (see :meth:`_send_rows`)."""
        channel = self.channels.get(chat[0])
        if channel is None:
            return
        async with self.sessions() as session:
            replies = await inbox.pending_replies(session, chat)
        await self._send_rows(chat, replies, marks)

    async def _send_rows(
        self, chat: inbox.ChatKey, replies: Sequence[OutboxMessage], marks: list[Mark]
    ) -> None:
        """Send recorded replies in order; each outcome goes to ``marks``, which the caller
        commits right after (with its next claim)."""
        channel = self.channels.get(chat[0])
        if channel is None:
            return
        for reply in replies:
            status, message_id = await self._send(channel, reply.chat_id, reply.id, reply.message)
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
    ) -> tuple[OutboxStatus, str | None]:
        for attempt in range(MAX_SEND_RETRIES + 1):
            try:
                message = decode(data)
                message_id = await channel.send(chat_id, message, dedup=str(reply_id))
                return OutboxStatus.SENT, message_id
            except RetryLater as wait:
                if attempt == MAX_SEND_RETRIES:
                    break
                await asyncio.sleep(min(wait.seconds, MAX_RETRY_AFTER_S))
            except RecipientBlocked:
                log.warning("Чат %s заблокировал бота; ответ не доставлен", chat_id)
                return OutboxStatus.BLOCKED, None
            except Exception:
                log.exception("Не удалось отправить ответ %s в чат %s", reply_id, chat_id)
                return OutboxStatus.FAILED, None
        log.warning("Ответ %s в чат %s: платформа просит подождать, сдаюсь", reply_id, chat_id)
        return OutboxStatus.FAILED, None
