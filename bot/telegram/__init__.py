"""Telegram over aiogram 3: :mod:`.render` (limits, rendering, services) and :mod:`.channel`
(the :class:`bot.channel.Channel` implementation)."""

from bot.processor import ERROR_TEXT
from bot.telegram.channel import (
    BAD_TOKEN_TEXT,
    EDITED_TEXT,
    SECRET_HEADER,
    GetRawUpdates,
    TelegramChannel,
    webhook_secret_for,
)
from bot.telegram.render import (
    BOT_COMMANDS,
    MAX_CALLBACK_DATA_BYTES,
    MAX_TEXT_LENGTH,
    UNSUPPORTED_TEXT,
    TelegramFileFetcher,
    TelegramMessenger,
    build_keyboard,
    create_bot,
    message_to_incoming,
    parse_command,
    render,
    set_commands,
    split_text,
    utf16_len,
)

__all__ = [
    "BAD_TOKEN_TEXT",
    "BOT_COMMANDS",
    "EDITED_TEXT",
    "ERROR_TEXT",
    "MAX_CALLBACK_DATA_BYTES",
    "MAX_TEXT_LENGTH",
    "SECRET_HEADER",
    "UNSUPPORTED_TEXT",
    "GetRawUpdates",
    "TelegramChannel",
    "TelegramFileFetcher",
    "TelegramMessenger",
    "build_keyboard",
    "create_bot",
    "message_to_incoming",
    "parse_command",
    "render",
    "set_commands",
    "split_text",
    "utf16_len",
    "webhook_secret_for",
]
