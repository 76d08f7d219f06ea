"""The processor of the durable intake: inbox rows in, core effects and outbox rows out.

For each chat, one event at a time in arrival order; chats run concurrently, and the events of
several chats are worked off together (group commit). One batch (up to ``batch_size`` chats,
whatever is pending now: a lone user does not wait):

1. take the oldest pending event of each chat and count the attempts, in one statement
   (committed), so an event that kills the process is given up on;
2. ``channel.parse`` each (may call the platform: it is harmless twice), concurrently;
3. in ONE transaction, each event in its own SAVEPOINT: the core's effects (an event that
   raises is rolled back alone); then the outbox rows and the inbox done-marks of them all,
   and one commit. A transaction takes at most ``BATCH_BUDGET_S`` of work; the rest of the
   batch goes in the next one;
4. after the commit, send every chat's replies in order; the sent marks are committed in one
   statement before the chats are let go.

Some events go alone, each in its own transaction, outside the batch's: retries (an event
that failed, or whose process died, is claimed on its own and they run one after another,
so a killer event counts no attempt of others) and files (the core downloads them inside
the transaction, so a slow download never holds the batch's writer).

A Telegram webhook request that waits in this process (bot/handover.py) gets its event's
replies in its HTTP answer: they are recorded as handed in step 3 and given to the request
after the commit, never sent by a Bot API call (bot/handing.py).

A restart resumes both halves: pending inbox rows are processed, recorded-but-unsent replies
are sent (never generated again). An event whose parse or core raises is retried a few times,
then marked failed and the user gets :data:`ERROR_TEXT` once (recorded in the outbox with
the failure mark). On PostgreSQL the chats of a batch are claimed with session-level advisory
locks (held elsewhere: skipped for now), so several worker processes never serve one chat at
once; on SQLite there is one process, and its batches take the one writer in turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from bot import chat_locks, metrics
from bot.channel import Channel, Parsed, RawEvent
from bot.chat_locks import Held
from bot.handing import HandingOver
from bot.handover import Answer, Handover, Waiter
from bot.lone_events import ERROR_TEXT, Handle, LoneEvents, _error_type, _raw
from bot.sending import Mark, Sending
from handlers.types import (
    EventKind,
    Incoming,
    Outgoing,
    OutText,
)
from handlers.wire import encode
from storage import inbox
from storage.models import InboxEvent, InboxStatus

log = logging.getLogger(__name__)


BATCH_SIZE = 32  # chats whose events share one transaction
BATCH_BUDGET_S = 0.2  # a batch's transaction commits after this much work (the writer is shared)
MAX_ATTEMPTS = 3
HELD_ELSEWHERE_RETRY_S = 0.5


@dataclass(slots=True)
class _Item:
    """One event of a batch: parsed (or the parse error), then its replies or error."""

    event: InboxEvent
    channel: Channel
    parsed: Parsed | None
    error: BaseException | None
    replies: list[Outgoing] = field(default_factory=list)
    handed: tuple[Waiter, Answer] | None = None  # its one reply goes in the webhook answer


def _slow(parsed: Parsed) -> bool:
    """A file: the core downloads it inside the transaction (up to the attach timeout)."""
    incoming = parsed.incoming
    return incoming is not None and (
        incoming.document is not None or incoming.kind in (EventKind.DOCUMENT, EventKind.PHOTO)
    )


def core_handler(core: Any) -> Handle:
    """``core.handle_in(session, event)`` runs inside our transaction; a core with only
    ``handle(event)`` (test doubles) commits on its own."""
    handle_in = getattr(core, "handle_in", None)
    if handle_in is not None:
        return handle_in

    async def handle(_session: AsyncSession, event: Incoming) -> list[Outgoing]:
        return await core.handle(event)

    return handle


class Processor(Sending, HandingOver, LoneEvents):
    def __init__(
        self,
        sessions: async_sessionmaker,
        channels: Mapping[str, Channel],
        core: Any,
        *,
        concurrency: int = 4,  # batches at once; on PostgreSQL each holds one connection
        batch_size: int = BATCH_SIZE,
        max_attempts: int = MAX_ATTEMPTS,
        retry_delay: float = 0.5,
        idle_interval: float = 1.0,
        handover: Handover | None = None,
        foreign_grace: float = 0.0,
    ) -> None:
        self.sessions = sessions
        self.channels = dict(channels)
        self.handle = core_handler(core)
        self.concurrency = concurrency
        # a core that commits on its own (test doubles) shares no transaction: chats alone
        self.batch_size = max(1, batch_size) if hasattr(core, "handle_in") else 1
        self.max_attempts = max_attempts
        self.retry_delay = retry_delay
        self.idle_interval = idle_interval
        engine = sessions.kw.get("bind")
        if not isinstance(engine, AsyncEngine):
            raise TypeError("the processor needs a sessionmaker bound to an AsyncEngine")
        self._bind: AsyncEngine = engine
        self._postgres = engine.dialect.name == "postgresql"
        self._writer = asyncio.Lock()  # SQLite: one writer; PostgreSQL does not take it
        self._active: set[inbox.ChatKey] = set()
        # chats held by another worker, or whose event just failed: not before then
        self._not_before: dict[inbox.ChatKey, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._stopping = False
        # webhook answers (bot/handover.py); with several workers, the chats whose events
        # another worker accepted are left to it for ``foreign_grace`` seconds
        self.handover = handover
        if handover is not None:
            handover.wake = self._wake.set
        self.foreign_grace = foreign_grace if handover is not None else 0.0
        self._foreign_seen: dict[inbox.ChatKey, float] = {}

    # --- intake ------------------------------------------------------------------------

    async def accept(self, events: Sequence[RawEvent]) -> int:
        """Store events (insert-or-ignore) and commit; only then may the caller confirm
        them to the platform. Returns how many were new. A store under way is finished even
        if the caller is cancelled (SIGTERM cancels the polls): a SQLite statement cut off
        mid-way kept the writer taken, so the replies in flight lost their sent marks."""
        store = asyncio.ensure_future(self._store(events))
        try:
            return await asyncio.shield(store)
        except asyncio.CancelledError:
            while not store.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait([store])
            if not store.cancelled():
                store.exception()  # retrieved; unstored, unconfirmed: the platform resends
            raise

    async def _store(self, events: Sequence[RawEvent]) -> int:
        rows = [inbox.NewEvent(str(e.platform), e.key, e.chat_id, e.payload) for e in events]
        # SQLite: the process's writers take turns here (a waiting SQLite writer polls)
        async with self._write(), self.sessions() as session:
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
                    if not self._waiting():
                        return
                    await asyncio.sleep(self._backoff_left())
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
            timeout = self.idle_interval
            if self._waiting():
                timeout = min(timeout, self._backoff_left())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def stop(self, timeout: float = 10.0) -> None:
        """Take no new events; let running ones finish and send their replies (bounded)."""
        self._stopping = True
        self._wake.set()
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                log.warning("Остановка: %s пакетов не успели завершиться", len(pending))
                await asyncio.gather(*pending, return_exceptions=True)

    def _waiting(self) -> bool:
        return bool(self._not_before or self._foreign_seen)

    def _backoff_left(self) -> float:
        now = asyncio.get_running_loop().time()
        moments = [*self._not_before.values()]
        moments += [seen + self.foreign_grace for seen in self._foreign_seen.values()]
        # a moment already past waits for a free batch: :meth:`_done` wakes the loop then
        future = [moment for moment in moments if moment > now]
        return min(future) - now if future else self.idle_interval

    async def _spawn(self) -> int:
        if self._stopping:
            return 0
        free = self.concurrency - len(self._tasks)
        if free <= 0:
            return 0
        limit = len(self._active) + self.batch_size * free
        if self.foreign_grace:
            limit *= 4  # other workers' fresh chats are in the list too, and left for now
        async with self.sessions() as session:
            chats, unsent = await inbox.busy_chats_and_unsent(session, limit)
        now = asyncio.get_running_loop().time()
        for chat, until in list(self._not_before.items()):
            if until <= now:
                del self._not_before[chat]
        ready = [c for c in chats if c not in self._active and c not in self._not_before]
        if self.foreign_grace:
            ready = self._own_or_left(ready, now)
        if not ready:
            return 0
        count = min(free, -(-len(ready) // self.batch_size))
        ready = ready[: count * self.batch_size]
        size = -(-len(ready) // count)
        for start in range(0, len(ready), size):
            batch = ready[start : start + size]
            self._active.update(batch)
            task = asyncio.create_task(
                self._serve_batch(batch, unsent), name=f"batch of {len(batch)}"
            )
            self._tasks.add(task)
            task.add_done_callback(self._done)
        return count

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._wake.set()

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[None]:
        if self._postgres:
            yield
            return
        async with self._writer:
            yield

    def _claim(self, chats: Sequence[inbox.ChatKey]) -> AbstractAsyncContextManager[Held]:
        return chat_locks.claim(self._bind, chats)

    async def _release(self, held: Held, chats: Sequence[inbox.ChatKey]) -> None:
        """Let chats go before the rest of the batch is done (their replies are sent)."""
        await chat_locks.release(held, chats)
        self._let_go(held, chats)

    # --- one batch -------------------------------------------------------------------------

    async def _serve_batch(self, chats: list[inbox.ChatKey], unsent: set[inbox.ChatKey]) -> None:
        marks: list[Mark] = []
        lone: dict[inbox.ChatKey, asyncio.Task[None]] = {}
        held: Held | None = None
        try:
            async with self._claim(chats) as held, self._awaiting(lone):
                skipped = set(chats).difference(held.chats)
                if skipped:  # another worker serves them: not asked for again for a while
                    until = asyncio.get_running_loop().time() + HELD_ELSEWHERE_RETRY_S
                    self._not_before.update(dict.fromkeys(skipped, until))
                    self._let_go(held, skipped)
                if not held.chats:
                    return
                events = await self._claim_events(held, unsent, marks)
                claimed = {(e.platform, e.chat_id) for e in events}
                retries = [c for c in held.chats if c not in claimed]
                if retries:  # tried before: one at a time, each claimed on its own
                    task = asyncio.create_task(self._retry_alone(retries))
                    lone.update(dict.fromkeys(retries, task))
                batch = await self._prepare(events, lone)
                await self._run_batch(held.connection, batch, marks)
                await self._commit_marks(marks, held.connection)  # before the chats go
                await self._release(held, [c for c in held.chats if c not in lone])
        except Exception:
            log.exception("Пакет из %s чатов: сбой обработки, повторю позже", len(chats))
            await asyncio.sleep(self.retry_delay)
        finally:
            try:
                await self._commit_marks(marks)
            except Exception:
                log.exception("Не удалось отметить отправленные ответы")
            finally:
                # only the chats still ours: the ones let go may be another batch's by now
                self._active.difference_update(held.mine if held else chats)

    def _let_go(self, held: Held, chats: Iterable[inbox.ChatKey]) -> None:
        chats = set(chats) & held.mine
        held.mine.difference_update(chats)
        self._active.difference_update(chats)

    @contextlib.asynccontextmanager
    async def _awaiting(self, lone: dict[inbox.ChatKey, asyncio.Task[None]]) -> AsyncIterator[None]:
        """The events that went alone finish while their chats are still held."""
        try:
            yield
        finally:
            if lone:
                await asyncio.gather(*lone.values(), return_exceptions=True)

    async def _claim_events(
        self, held: Held, unsent: set[inbox.ChatKey], marks: list[Mark]
    ) -> list[InboxEvent]:
        """Replies left unsent (a crash; on PostgreSQL maybe another worker's) go first; then
        the oldest event of each chat is claimed (committed with those sent marks). On the
        batch's own connection: no wait for the pool."""
        chats = held.chats
        leftovers = chats if self._postgres else [c for c in chats if c in unsent]
        if leftovers:
            await self._flush_many(leftovers, marks, held.connection)
        async with self._write(), self.sessions(bind=held.connection) as session:
            await inbox.mark_replies(session, marks)
            events = await inbox.claim_batch(session, chats)
            await session.commit()
        marks.clear()
        return events

    async def _prepare(
        self, events: Sequence[InboxEvent], lone: dict[inbox.ChatKey, asyncio.Task[None]]
    ) -> list[_Item]:
        """Parse the claimed events; the ones that go alone are started on their own."""
        items: list[_Item] = []
        fresh: list[tuple[InboxEvent, Channel]] = []
        for event in events:
            chat = (event.platform, event.chat_id)
            channel = self.channels.get(event.platform)
            if channel is not None:
                fresh.append((event, channel))
            else:  # given up on, alone
                lone[chat] = asyncio.create_task(self._serve_lone(event, None))
        parsed_all = await asyncio.gather(
            *(channel.parse(_raw(event)) for event, channel in fresh), return_exceptions=True
        )
        for (event, channel), parsed in zip(fresh, parsed_all, strict=True):
            if isinstance(parsed, asyncio.CancelledError):
                raise parsed
            if isinstance(parsed, BaseException):
                items.append(_Item(event, channel, None, parsed))
            elif _slow(parsed):
                lone[(event.platform, event.chat_id)] = asyncio.create_task(
                    self._serve_lone(event, parsed)
                )
            else:
                items.append(_Item(event, channel, parsed, None))
        return items

    async def _run_batch(
        self, connection: AsyncConnection, items: list[_Item], marks: list[Mark]
    ) -> None:
        """The batch's events in as few transactions as the time budget allows; after each
        commit its replies are sent (each chat's in order)."""
        loop = asyncio.get_running_loop()
        left = list(items)
        while left:
            alone = len(left) == 1  # a lone user: a plain transaction, no savepoint
            async with self._write():
                await connection.begin()
                try:
                    if not self._postgres:
                        # SAVEPOINTs need the transaction begun (pysqlite begins only before
                        # a write); and the writer taken now: no "database is locked" later
                        await connection.exec_driver_sql("BEGIN IMMEDIATE")
                    started = loop.time()
                    chunk: list[_Item] = []
                    while left and (not chunk or loop.time() - started < BATCH_BUDGET_S):
                        item = left.pop(0)
                        chunk.append(item)
                        if item.error is None:
                            await self._run_one(connection, item, savepoint=not alone)
                    if alone and chunk[0].error is not None:
                        await connection.rollback()  # its effects go; its failure is recorded
                        await connection.begin()
                    replies = await self._record(connection, chunk)
                    await connection.commit()
                except BaseException:
                    await connection.rollback()
                    for item in chunk:  # their webhook requests answer nothing
                        if item.handed is not None:
                            Handover.give(item.handed[0], None)
                    raise
            await self._after_commit(chunk, replies, marks, connection)
            if left:  # replies that went out are marked so at once, not when the batch ends
                await self._commit_marks(marks, connection)

    async def _run_one(
        self, connection: AsyncConnection, item: _Item, *, savepoint: bool = True
    ) -> None:
        """One event in its own SAVEPOINT of the batch's transaction (and its own session);
        without ``savepoint`` the caller rolls the transaction back if the event failed."""
        event, parsed = item.event, item.parsed
        assert parsed is not None
        mode = "create_savepoint" if savepoint else "rollback_only"
        async with self.sessions(bind=connection, join_transaction_mode=mode) as s:
            try:
                replies: list[Outgoing] = []
                if parsed.incoming is not None:
                    replies = await self.handle(s, parsed.incoming)
                elif parsed.reply is not None:
                    replies = [OutText(parsed.reply)]
                check = getattr(item.channel, "check", None)
                for reply in replies:
                    if check is not None:
                        check(reply)  # refuse what the platform would reject, before commit
                await s.commit()  # releases the savepoint: the outer commit makes it durable
                item.replies = replies
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception(
                    "Событие %s (%s, чат %s): ошибка на шаге core, попытка %s из %s",
                    event.id,
                    event.platform,
                    event.chat_id,
                    event.attempts,
                    self.max_attempts,
                )
                await s.rollback()  # to the savepoint: only this event's effects
                item.error = exc

    async def _record(self, connection: AsyncConnection, chunk: list[_Item]) -> list[inbox.Reply]:
        """Outbox rows, done-marks and failure marks of a chunk, in its transaction."""
        done: list[int] = []
        outbox: list[tuple[int | None, str, str, list[dict[str, Any]]]] = []
        handed: set[int] = set()
        for item in chunk:
            event = item.event
            if item.error is None:
                chat_id = event.chat_id
                if chat_id is None and item.parsed and item.parsed.incoming is not None:
                    chat_id = item.parsed.incoming.user.chat_id
                if item.replies and chat_id is not None:
                    messages = [encode(r) for r in item.replies]
                    outbox.append((event.id, event.platform, chat_id, messages))
                    item.handed = self._hand(event, item.channel, chat_id, item.replies)
                    if item.handed is not None:
                        handed.add(event.id)
                done.append(event.id)
                continue
            exc = item.error
            parse_error = item.parsed is None
            if parse_error:
                log.error(
                    "Событие %s (%s, чат %s): ошибка на шаге parse: %s",
                    event.id,
                    event.platform,
                    event.chat_id,
                    _error_type(exc),
                    exc_info=exc,
                )
            if (parse_error and isinstance(exc, ValueError)) or event.attempts >= self.max_attempts:
                # the library cannot read this update (pydantic's ValidationError is a
                # ValueError): it never will, so it is failed at once, not retried
                await inbox.finish(connection, event.id, InboxStatus.FAILED, _error_type(exc))
                if event.chat_id is not None:
                    apology = [encode(OutText(ERROR_TEXT))]
                    outbox.append((event.id, event.platform, event.chat_id, apology))
            else:  # retried alone, after a pause
                await inbox.note_error(connection, event.id, _error_type(exc))
                until = asyncio.get_running_loop().time() + self.retry_delay
                self._not_before[(event.platform, event.chat_id)] = until
        await inbox.finish_many(connection, done, InboxStatus.DONE)
        return await inbox.record_replies(connection, outbox, frozenset(handed))

    async def _after_commit(
        self,
        chunk: list[_Item],
        replies: list[inbox.Reply],
        marks: list[Mark],
        connection: AsyncConnection,
    ) -> None:
        gone = await self._hand_over(
            (item.event.id, item.handed) for item in chunk if item.handed is not None
        )
        by_chat: dict[inbox.ChatKey, list[inbox.Reply]] = {}
        for reply in replies:
            if reply.handed and reply.inbox_id not in gone:
                metrics.handed(reply.platform)
                continue
            by_chat.setdefault((reply.platform, reply.chat_id), []).append(reply)
        await self._send_chats(by_chat, marks, connection)
        for item in chunk:
            event = item.event
            if item.error is None:
                metrics.processed(event.platform)
            unreachable = item.error is None and item.parsed and item.parsed.unreachable
            if unreachable and event.chat_id is not None:
                await self._mark_unreachable(event.platform, event.chat_id)
