"""The contract between a messenger channel (Telegram, VK, MAX) and the durable intake.

A channel knows its platform's wire format and nothing about our database:

* ``raw_events`` turns what the platform delivered (a polling batch or one webhook body)
  into :class:`RawEvent` rows: a key unique per platform, the chat that orders it, and the
  update's JSON as it came. The intake stores them before the platform is told they arrived.
* ``poll`` long-polls and hands each batch to ``sink``; it confirms the batch to the platform
  (Telegram ``offset``, VK ``ts``, MAX ``marker``) only after ``sink`` returned.
* ``parse`` understands one stored event for the core. It may call the platform (answer a
  button press, remove a pressed keyboard) but never touches our database; it runs again if
  the process died before the event was marked done, so those calls must be harmless twice.
* ``webhook`` checks one webhook request's secret and hands its events to ``sink``; the HTTP
  answer (status, body) it returns is the acknowledgement, so it is sent only after ``sink``.
* ``start`` checks the token and sets the platform up (commands, subscriptions) and raises
  :class:`ChannelSetupError` with a Russian message an operator can act on; ``close`` frees it.
* ``send``/``edit`` deliver what the core said. ``dedup`` is our outgoing message's id, so a
  platform that can deduplicate (VK ``random_id``) never shows a resent message twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from handlers.types import FileFetcher, Incoming, Outgoing, OutText, Platform
from scheduler.ratelimit import TokenRate


@dataclass(frozen=True, slots=True)
class RawEvent:
    """One platform update as received, before it is understood."""

    platform: Platform
    key: str  # Telegram update_id, VK event_id, MAX message.body.mid / callback.callback_id
    chat_id: str | None  # events of one chat are processed in order, one at a time
    payload: dict[str, Any]  # the update's JSON, stored in the inbox as it came


@dataclass(frozen=True, slots=True)
class Parsed:
    """What a stored event means: an event for the core, or a reply the adapter gives itself
    (unsupported content, an edited message), or nothing at all (a group chat, a service
    update)."""

    incoming: Incoming | None = None
    reply: str | None = None
    unreachable: bool = False  # the user stopped or blocked the bot (MAX bot_stopped, VK deny)


# stores the events (committed) before the platform is told; returns how many were new
Sink = Callable[[list[RawEvent]], Awaitable[int | None]]
# a webhook's HTTP answer: a status and a text, or form fields (a method the platform runs,
# bot/handover.py)
WebhookAnswer = tuple[int, str | dict[str, str]]


class ChannelSetupError(Exception):
    """The platform refused our setup (bad token, bot features off): the message, in Russian,
    says what the operator should do. The runner prints it without a traceback."""


class Channel(Protocol):
    platform: Platform
    fetcher: FileFetcher
    webhook_path: str  # "/telegram", "/vk", "/max" on the one webhook server

    async def start(self, *, webhook_url: str | None = None) -> None: ...

    async def close(self) -> None: ...

    async def webhook(
        self, headers: Mapping[str, str], body: bytes, sink: Sink
    ) -> WebhookAnswer: ...

    def raw_events(self, body: Any) -> Iterable[RawEvent]: ...

    async def poll(self, sink: Sink) -> None:
        """Long-poll until cancelled; confirm each batch only after ``sink`` returned."""
        ...

    async def parse(self, event: RawEvent) -> Parsed: ...

    async def send(
        self, chat_id: str, message: Outgoing, *, dedup: str | None = None
    ) -> str | None:
        """Deliver and return the platform message id. Raises ``RecipientBlocked`` or
        ``RetryLater`` (nothing was delivered); any other error leaves delivery unknown."""
        ...

    async def edit(self, chat_id: str, message_id: str, message: OutText) -> None: ...

    def share_rate(self, rate: TokenRate) -> None:
        """Take every send and edit with this token from ``rate``: the token's one budget,
        shared with every process on it (and with this process's unprompted messages)."""
        ...
