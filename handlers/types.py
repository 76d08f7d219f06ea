"""Platform-neutral conversation types.

Adapters in ``bot/`` translate platform updates into :class:`Incoming` and render
:class:`Outgoing` messages back. Nothing here knows about aiogram, vkbottle or maxapi.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol


class Platform(StrEnum):
    TELEGRAM = "tg"
    VK = "vk"
    MAX = "max"
    CONSOLE = "console"


class EventKind(StrEnum):
    TEXT = "text"
    COMMAND = "command"
    BUTTON = "button"
    DOCUMENT = "document"
    PHOTO = "photo"  # a picture sent as a compressed photo, not as a file


@dataclass(frozen=True, slots=True)
class UserRef:
    platform: Platform
    user_id: str
    chat_id: str
    display_name: str | None = None


@dataclass(frozen=True, slots=True)
class IncomingDocument:
    """A file the user sent. ``file_id`` is the platform's handle; the console uses a path."""

    file_id: str
    file_name: str | None = None
    mime_type: str | None = None
    size: int | None = None
    file_unique_id: str | None = None


@dataclass(frozen=True, slots=True)
class Incoming:
    user: UserRef
    kind: EventKind
    text: str = ""
    command: str | None = None  # without the slash, lower-case: "start"
    args: str = ""  # the rest of the command line: "/start ABC" -> "ABC"
    payload: str | None = None  # button callback data
    document: IncomingDocument | None = None
    message_id: str | None = None  # the platform message that carried a button, if any


@dataclass(frozen=True, slots=True)
class Button:
    text: str
    payload: str


@dataclass(slots=True)
class OutText:
    text: str
    buttons: list[list[Button]] = field(default_factory=list)


@dataclass(slots=True)
class OutFile:
    path: Path
    filename: str
    caption: str = ""


Outgoing = OutText | OutFile


class FileFetcher(Protocol):
    """Downloads a platform file by its id into ``dest``. Raises on failure."""

    async def fetch(self, file_id: str, dest: Path) -> None: ...


class RecipientBlocked(Exception):
    """The recipient blocked the bot (Telegram 403): do not retry, mark them unreachable."""


class TokenRejected(Exception):
    """The platform no longer accepts the bot's token (revoked): nothing was delivered. The
    reply stays unsent for the process that runs with the new token."""


class RetryLater(Exception):
    """The platform asked to slow down; nothing was delivered. Retry after ``seconds``."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"retry after {seconds} s")
        self.seconds = float(seconds)


class Messenger(Protocol):
    """Sends messages the bot initiates (reminders, export progress) to a chat."""

    async def send(self, chat_id: str, message: Outgoing) -> str | None:
        """Send and return the platform message id (if the platform has one).

        Raises :class:`RecipientBlocked` or :class:`RetryLater` (before anything was
        delivered); any other exception leaves it unknown whether the message arrived.
        """
        ...

    async def edit(self, chat_id: str, message_id: str, message: OutText) -> None: ...
