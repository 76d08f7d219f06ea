"""Replies carried in the webhook's own HTTP answer (Telegram), delivered exactly once.

A reply sent with a Bot API call is marked sent only after Telegram answers; a process that
dies in between leaves the mark unwritten, and the reply is sent again (Telegram has no
idempotency key). Telegram also executes a method returned as the answer to its webhook
request, and it delivers an update again until one such answer arrives. So when an event's
whole reply is one text message, the processor records that outbox row as ``handed`` in the
event's own transaction and the webhook request, still open, answers with it:

* the process dies before the commit: the event is still pending, Telegram delivers the
  update again, and its reply is produced then;
* it dies after the commit but before the answer went out: Telegram delivers the update
  again; the event is a duplicate, and its ``handed`` row is the answer to the retry;
* the answer went out: Telegram executed it, and nobody sends that row again.

The webhook request waits at most ``wait_s`` for its event; after that (a busy chat, an
event served by another worker) the replies go by Bot API calls, as before. Only the
process that accepted the webhook request can answer it, so with several workers each one
leaves the other Telegram chats alone for a moment (:class:`bot.processor.Processor`'s
``foreign_grace``): the worker holding a chat's request serves it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker

from storage import inbox

Answer = dict[str, Any]  # a Bot API method as JSON: {"method": "sendMessage", ...}
EventRef = tuple[str, str]  # platform, event key

DEFAULT_WAIT_S = 10.0
# while it waits, the request looks this often whether another worker served its event
LOOK_EVERY_S = 0.5
# once its event's commit has begun, the request waits for the outcome at most this long
COMMIT_WAIT_S = 60.0


@dataclass
class Waiter:
    chat: tuple[str, str]
    outcome: asyncio.Future[Answer | None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    taken: bool = False  # the processor is committing a handed row for it


class Handover:
    """The open webhook requests of this process, by event (one event loop: no locks)."""

    def __init__(self, sessions: async_sessionmaker, wait_s: float = DEFAULT_WAIT_S) -> None:
        self.sessions = sessions
        self.wait_s = wait_s
        self._waiting: dict[EventRef, Waiter] = {}
        self.wake: Callable[[], None] = lambda: None  # the processor's: look at the inbox now

    async def answer_for(
        self, platform: str, key: str, chat_id: str, fresh: bool, build: Callable[..., Any]
    ) -> Answer | None:
        """The answer to a webhook request whose event is stored (``fresh``: just now).

        ``build(chat_id, message)`` turns a recorded reply into the answer (None: it cannot
        be one). A duplicate is looked up first: its handed row is the answer again."""
        if not fresh:
            found = await self._look(platform, key)
            if found.handed is not None:
                return build(found.chat_id or chat_id, found.handed)
            if not found.pending:
                return None
        ref = (platform, key)
        waiter = Waiter((platform, chat_id))
        self._waiting[ref] = waiter  # before any await: the processor may run next
        self.wake()
        loop = asyncio.get_running_loop()
        until = loop.time() + self.wait_s
        try:
            while not waiter.taken and (left := until - loop.time()) > 0:
                with contextlib.suppress(TimeoutError):
                    return await asyncio.wait_for(
                        asyncio.shield(waiter.outcome), min(left, LOOK_EVERY_S)
                    )
                if waiter.taken:
                    continue
                found = await self._look(platform, key)
                if waiter.outcome.done():  # given meanwhile
                    return waiter.outcome.result()
                if not found.pending and not waiter.taken:
                    # served by another process: handed to an answer that never arrived
                    # (this is the redelivery), or sent by Bot API calls
                    if found.handed is not None:
                        return build(found.chat_id or chat_id, found.handed)
                    return None
            if not waiter.taken:
                return None
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(asyncio.shield(waiter.outcome), COMMIT_WAIT_S)
            return None
        finally:
            if self._waiting.get(ref) is waiter:
                del self._waiting[ref]
            if not waiter.outcome.done():
                waiter.outcome.cancel()  # a late give() sees nobody waits

    async def _look(self, platform: str, key: str) -> inbox.HandedReply:
        async with self.sessions() as session:
            return await inbox.handed_reply(session, platform, key)

    def chats(self) -> set[tuple[str, str]]:
        """The chats with a request waiting here: the processor serves them first."""
        return {w.chat for w in self._waiting.values() if not w.outcome.done()}

    def waiting(self, platform: str, key: str) -> bool:
        waiter = self._waiting.get((platform, key))
        return waiter is not None and not waiter.outcome.done()

    def take(self, platform: str, key: str) -> Waiter | None:
        """The processor is about to commit a handed row for this event: the request must
        now wait for :meth:`give` (or the row would be handed to nobody)."""
        waiter = self._waiting.get((platform, key))
        if waiter is None or waiter.outcome.done():
            return None
        waiter.taken = True
        return waiter

    @staticmethod
    def give(waiter: Waiter, answer: Answer | None) -> bool:
        """After the commit: the answer goes out with the request. False when the request
        is gone (it gave up waiting): the caller sends the row itself."""
        if waiter.outcome.done():
            return False
        waiter.outcome.set_result(answer)
        return True
