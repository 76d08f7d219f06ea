"""Telegram wire details: the Bot, commands, rendering and splitting within Telegram's limits,
Message -> :class:`Incoming`, and the file fetcher and messenger over the Bot API.

* Telegram counts message length in UTF-16 code units; long texts are split on line
  boundaries with that measure.
* All parts of one Outgoing are rendered (and validated) before the first one is sent, so a
  bad button payload is refused before anything goes out.
* Content the core cannot use (stickers, voice, locations…) maps to ``None``: the channel
  answers it with :data:`UNSUPPORTED_TEXT` itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.base import BaseSession
from aiogram.client.session.middlewares.base import BaseRequestMiddleware
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.methods import TelegramMethod
from aiogram.types import (
    BotCommand,
    FSInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)

from bot.text_parts import BOT_COMMANDS, parse_command, split_text, utf16_len
from bot.text_parts import UNSUPPORTED_TEXT as UNSUPPORTED_TEXT
from handlers.types import (
    Button,
    EventKind,
    Incoming,
    IncomingDocument,
    OutFile,
    Outgoing,
    OutText,
    Platform,
    RecipientBlocked,
    RetryLater,
    TokenRejected,
    UserRef,
)
from scheduler.ratelimit import TokenRate

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_TEXT_LENGTH = 4096  # UTF-16 code units
MAX_CAPTION_LENGTH = 1024  # UTF-16 code units
MAX_CALLBACK_DATA_BYTES = 64
MAX_RETRY_AFTER_ATTEMPTS = 2


# --------------------------------------------------------------------------- bot & commands


def create_bot(
    token: str,
    api_url: str | None = None,
    local_files: bool = False,
    *,
    session: BaseSession | None = None,
) -> Bot:
    """Create the aiogram Bot: plain-text messages, optionally a self-hosted Bot API server.

    ``api_url`` is the base of a self-hosted server (``http://127.0.0.1:8081``); with
    ``local_files`` the server runs with ``--local`` and files are read straight from its disk
    (aiogram then opens ``file_path`` locally, so the bot must see the server's filesystem).
    ``session`` overrides the HTTP session (tests pass a recording one).
    """
    if session is None:
        if api_url:
            api = TelegramAPIServer.from_base(api_url, is_local=local_files)
            session = AiohttpSession(api=api)
        else:
            session = AiohttpSession()
    return Bot(token=token, session=session, default=DefaultBotProperties(parse_mode=None))


async def set_commands(bot: Bot) -> None:
    await bot.set_my_commands(
        [BotCommand(command=command, description=text) for command, text in BOT_COMMANDS]
    )


# --------------------------------------------------------------------------- rendering


def build_keyboard(rows: Sequence[Sequence[Button]]) -> InlineKeyboardMarkup | None:
    """Render button rows as an inline keyboard; ``None`` when there are no buttons.

    Raises ValueError for a payload Telegram would reject (empty or over 64 bytes UTF-8).
    """
    keyboard: list[list[InlineKeyboardButton]] = []
    for row in rows:
        rendered: list[InlineKeyboardButton] = []
        for button in row:
            size = len(button.payload.encode("utf-8"))
            if not 1 <= size <= MAX_CALLBACK_DATA_BYTES:
                raise ValueError(
                    f"Button payload must be 1..{MAX_CALLBACK_DATA_BYTES} bytes, got {size}: "
                    f"{button.payload!r} (button {button.text!r})"
                )
            if not button.text.strip():
                raise ValueError(f"Button with payload {button.payload!r} has empty text")
            rendered.append(InlineKeyboardButton(text=button.text, callback_data=button.payload))
        if rendered:
            keyboard.append(rendered)
    if not keyboard:
        return None
    return InlineKeyboardMarkup(inline_keyboard=keyboard)


@dataclass(frozen=True, slots=True)
class _TextPart:
    text: str
    markup: InlineKeyboardMarkup | None = None


@dataclass(frozen=True, slots=True)
class _FilePart:
    path: Path
    filename: str
    caption: str | None = None


_Part = _TextPart | _FilePart


def render(message: Outgoing) -> list[_Part]:
    """Turn one Outgoing into Bot API sends. Validates everything up front."""
    if isinstance(message, OutText):
        markup = build_keyboard(message.buttons)
        if not message.text.strip():
            raise ValueError("OutText with empty text cannot be sent to Telegram")
        chunks = split_text(message.text)
        parts: list[_Part] = [_TextPart(chunk) for chunk in chunks[:-1]]
        parts.append(_TextPart(chunks[-1], markup))  # the keyboard goes under the last chunk
        return parts
    if isinstance(message, OutFile):
        caption = message.caption.strip()
        if utf16_len(caption) <= MAX_CAPTION_LENGTH:
            return [_FilePart(message.path, message.filename, caption or None)]
        # Too long for a caption: send the file bare and the text right after it.
        return [_FilePart(message.path, message.filename)] + [
            _TextPart(chunk) for chunk in split_text(caption)
        ]
    raise TypeError(f"Unsupported outgoing message: {message!r}")


async def _call(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a Bot API call, waiting out flood control (429) a couple of times."""
    for attempt in range(MAX_RETRY_AFTER_ATTEMPTS + 1):
        try:
            return await factory()
        except TelegramRetryAfter as e:
            if attempt == MAX_RETRY_AFTER_ATTEMPTS:
                raise
            log.warning("Flood control, retrying in %s s", e.retry_after)
            await asyncio.sleep(e.retry_after)
    raise AssertionError("unreachable")  # pragma: no cover


async def _send_part(bot: Bot, chat_id: int | str, part: _Part, retry: bool = True) -> Message:
    call = _call if retry else (lambda factory: factory())
    if isinstance(part, _TextPart):
        return await call(
            lambda: bot.send_message(chat_id=chat_id, text=part.text, reply_markup=part.markup)
        )
    return await call(
        lambda: bot.send_document(
            chat_id=chat_id,
            document=FSInputFile(part.path, filename=part.filename),
            caption=part.caption,
        )
    )


def _is_not_modified(error: TelegramBadRequest) -> bool:
    return "message is not modified" in error.message.lower()


# --------------------------------------------------------------------------- incoming


def _user_ref(message_chat_id: int, from_user: Any) -> UserRef:
    return UserRef(
        platform=Platform.TELEGRAM,
        user_id=str(from_user.id),
        chat_id=str(message_chat_id),
        display_name=from_user.full_name or None,
    )


def message_to_incoming(message: Message) -> Incoming | None:
    """Translate a private-chat message; ``None`` for content the core does not handle."""
    assert message.from_user is not None
    user = _user_ref(message.chat.id, message.from_user)
    if message.text is not None:
        parsed = parse_command(message.text)
        if parsed is not None:
            command, args = parsed
            return Incoming(
                user=user,
                kind=EventKind.COMMAND,
                text=message.text,
                command=command,
                args=args,
            )
        return Incoming(user=user, kind=EventKind.TEXT, text=message.text)
    # GIFs arrive with both ``animation`` and ``document`` set; they are not documents for us.
    if message.document is not None and message.animation is None:
        doc = message.document
        return Incoming(
            user=user,
            kind=EventKind.DOCUMENT,
            text=message.caption or "",
            document=IncomingDocument(
                file_id=doc.file_id,
                file_name=doc.file_name,
                mime_type=doc.mime_type,
                size=doc.file_size,
                file_unique_id=doc.file_unique_id,
            ),
        )
    if message.photo:
        largest = max(message.photo, key=lambda p: (p.width * p.height, p.file_size or 0))
        return Incoming(
            user=user,
            kind=EventKind.PHOTO,
            text=message.caption or "",
            document=IncomingDocument(
                file_id=largest.file_id,
                file_name=None,
                mime_type="image/jpeg",  # Telegram re-encodes compressed photos as JPEG
                size=largest.file_size,
                file_unique_id=largest.file_unique_id,
            ),
        )
    return None


# --------------------------------------------------------------------------- send rate

_RATED_PREFIXES = ("send", "edit", "copy", "forward")


class SharedRate(BaseRequestMiddleware):
    """Every send and edit of the bot takes a slot of the token's :class:`TokenRate` (shared
    by every process on the token); a 429 pauses them all."""

    def __init__(self, rate: TokenRate) -> None:
        self.rate = rate

    async def __call__(self, make_request: Any, bot: Bot, method: TelegramMethod[Any]) -> Any:
        if not method.__api_method__.lower().startswith(_RATED_PREFIXES):
            return await make_request(bot, method)
        async with self.rate.request():
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as e:
                await self.rate.pause(e.retry_after)
                raise


# --------------------------------------------------------------------------- services


class TelegramFileFetcher:
    """:class:`handlers.types.FileFetcher` over the Bot API.

    Downloads into a hidden temp file next to ``dest`` and renames it on success, so a partial
    download never looks complete. Raises (TelegramBadRequest for an unknown/too big file,
    aiohttp errors for a broken transfer, ValueError when Telegram gives no file path).
    """

    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    async def fetch(self, file_id: str, dest: Path) -> None:
        dest = Path(dest)
        file = await _call(lambda: self.bot.get_file(file_id))
        if not file.file_path:
            raise ValueError(f"Telegram returned no file_path for {file_id!r}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
        try:
            await self.bot.download_file(file.file_path, destination=tmp)
            os.replace(tmp, dest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


class TelegramMessenger:
    """:class:`handlers.types.Messenger` for bot-initiated messages (reminders, progress).

    A blocked bot raises :class:`RecipientBlocked`, flood control on the first part
    :class:`RetryLater`; other errors propagate, except "message is not modified" on edit.
    """

    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    async def send(self, chat_id: str, message: Outgoing) -> str | None:
        """Flood control on the first part raises RetryLater (nothing delivered yet; the
        caller's rate limiter waits); later parts wait it out here. 403 -> RecipientBlocked."""
        last: Message | None = None
        try:
            for index, part in enumerate(render(message)):
                if index == 0:
                    try:
                        last = await _send_part(self.bot, chat_id, part, retry=False)
                    except TelegramRetryAfter as e:
                        raise RetryLater(e.retry_after) from e
                else:
                    last = await _send_part(self.bot, chat_id, part)
        except TelegramForbiddenError as e:
            raise RecipientBlocked(e.message) from e
        except TelegramUnauthorizedError as e:
            raise TokenRejected(e.message) from e
        return str(last.message_id) if last is not None else None

    async def edit(self, chat_id: str, message_id: str, message: OutText) -> None:
        markup = build_keyboard(message.buttons)
        text = message.text
        if utf16_len(text) > MAX_TEXT_LENGTH:
            log.warning("Edited text of %s chars truncated to fit Telegram", len(text))
            text = split_text(text, MAX_TEXT_LENGTH - 2)[0] + "\n…"
        try:
            await _call(
                lambda: self.bot.edit_message_text(
                    chat_id=chat_id, message_id=int(message_id), text=text, reply_markup=markup
                )
            )
        except TelegramBadRequest as e:
            if not _is_not_modified(e):
                raise
